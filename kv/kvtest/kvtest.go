// Package kvtest is the conformance suite of tarstore's key-value stores, in
// the manner of testing/fstest.TestFS: the executable form of the semantics
// table of SPEC §3 (repeated in package kv's doc). It also holds NewModel,
// the reference store the suite is validated against.
//
// # Using the suite
//
// A store's tests call TestRW with a Harness that makes fresh stores and
// reopens them:
//
//	func TestConformance(t *testing.T) {
//		kvtest.TestRW(t, kvtest.Harness{
//			New: func(t *testing.T, clk clock.PClock) kv.RW {
//				return mystore.Open(t, t.TempDir(), clk) // fresh and empty
//			},
//			Reopen: func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW {
//				dir := s.(*mystore.Store).Dir()
//				require.NoError(t, s.Close())
//				return mystore.Open(t, dir, clk) // the same storage again
//			},
//			MtimeResolution: time.Second,
//			Check:           func(t *testing.T, s kv.RW) { mystore.Check(t, s) },
//		})
//	}
//
// TestRW runs one subtest per row of the table (go test -run
// 'TestConformance/rename/' runs the rename rows), each on a fresh store
// from Harness.New clocked by a clock.Fake the suite advances before every
// write, so every write has its own mtime. After each subtest that leaves its
// store open, Harness.Check runs on it and the store is closed.
//
// The groups of subtests, in order: exists, get, get_partial, size, list,
// last_modified, digest, set, set_from, set_partial, allocate, remove,
// rename, free, open (the streaming Reader), persistence (Reopen), keys
// (unusual and maximal keys), concurrency, large (streamed values of
// Harness.LargeSize bytes) and close.
//
// # What the suite holds a store to
//
// Beyond the rows of the table, the suite fixes these points, where the
// table leaves a choice:
//
//   - Every error is a *kv.Error wrapping the sentinel. Its Op is the
//     Mirage operation of the method: "exists", "get", "get_partial",
//     "size", "list", "last_modified", "digest", "set", "set_partial",
//     "allocate", "remove", "rename", "free"; Open reports "get" and SetFrom
//     "set", the operations they stream. Its Key is the key argument (the
//     source for Rename, the root for Free), except dictionary_expected on a
//     prefix value, which reports that prefix; rename_source_prefix also
//     carries the destination in Dest. After Close every method fails with
//     closed in that form.
//   - A failed write leaves the store exactly as it was: contents, kinds,
//     digests and mtimes.
//   - Reads through a prefix value (the value /a when reading /a/b) behave
//     as reads of a missing key: Exists reports None, every other read
//     not_found of the key read.
//   - Rename keeps the mtimes of what it moves, as mv does, so it keeps
//     their digests too.
//   - Rename of a value src to a dst below it (/v to /v/w) is
//     rename_source_prefix, as the table's row says for any src that is a
//     prefix of dst; src == dst is a no-op only for a value. Renaming a
//     value into the dictionary that holds it (/d/v to /d) is that no-op.
//   - Allocate of the root is already_present (the root always exists);
//     negative sizes for Allocate and SetFrom, like negative offsets, are
//     invalid_argument.
//   - SetPartial of an empty slice on a missing key creates an empty value
//     ("missing → creates k with content v").
//   - A store stamps a write with its clock read at the write, truncated to
//     Harness.MtimeResolution; explicit Allocate mtimes are truncated alike.
//     Mtimes are compared with time.Time.Equal, so the location is free.
//   - A key of kv.MaxKeyLen bytes made of kv.MaxSegmentLen-byte segments, and
//     segments holding spaces, newlines, backslashes and UTF-8, can be
//     stored, listed and reopened.
//   - Get's result and Set's argument are not shared with the store.
//   - Reader.ReadAt keeps the io.ReaderAt contract: io.EOF when fewer bytes
//     than asked are returned because the value ends, an error for a
//     negative offset.
//
// Timing is never asserted; the concurrency test is meaningful under -race.
//
// # Helpers
//
// Populate fills a store with a small tree that exercises what a store must
// keep (it is what the persistence test reopens); AssertSameContents compares
// two stores key by key: kinds, sizes, bytes, digests and mtimes.
//
// # The model
//
// NewModel is the reference store: a map from keys to values, as plainly
// correct as possible. The package's own tests run the suite on it, and run
// the suite on deliberately wrong variants of it to show that each of their
// bugs makes the suite fail. Other stores' tests can use it as an oracle:
// apply the same operations to both and compare with AssertSameContents.
package kvtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// Harness tells TestRW how to make, reopen and check the store under test.
type Harness struct {
	// New returns a fresh, empty store that stamps modification times with clk.
	New func(t *testing.T, clk clock.PClock) kv.RW
	// Reopen closes s and opens the same storage again with clk (persistence across restart).
	Reopen func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW
	// MtimeResolution is the granularity at which the store keeps mtimes (e.g. time.Second, time.Microsecond, time.Nanosecond); 0 means time.Second.
	MtimeResolution time.Duration
	// LargeSize is the size of the streamed-value tests; 0 means 32 MiB.
	// It must be at least MinLargeSize.
	LargeSize int64
	// Check, if non-nil, is run on the store after every subtest that leaves it open (e.g. kvtar.Check).
	Check func(t *testing.T, s kv.RW)
}

// Sizes of the streamed value: DefaultLargeSize when Harness.LargeSize is 0,
// and at least MinLargeSize, so that it spans many blocks of any store.
const (
	DefaultLargeSize = 32 << 20
	MinLargeSize     = 64 << 10
)

// TestRW runs the conformance suite on the stores h makes. See the package
// doc for what it covers and how.
func TestRW(t *testing.T, h Harness) {
	if h.New == nil || h.Reopen == nil {
		t.Fatal("kvtest: Harness.New and Harness.Reopen are required")
	}
	if h.MtimeResolution <= 0 {
		h.MtimeResolution = time.Second
	}
	if h.LargeSize == 0 {
		h.LargeSize = DefaultLargeSize
	}
	if h.LargeSize < MinLargeSize {
		t.Fatalf("kvtest: Harness.LargeSize %d is below %d", h.LargeSize, MinLargeSize)
	}
	su := &suite{h: h}
	for _, g := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"exists", su.testExists},
		{"get", su.testGet},
		{"get_partial", su.testGetPartial},
		{"size", su.testSize},
		{"list", su.testList},
		{"last_modified", su.testLastModified},
		{"digest", su.testDigest},
		{"set", su.testSet},
		{"set_from", su.testSetFrom},
		{"set_partial", su.testSetPartial},
		{"allocate", su.testAllocate},
		{"remove", su.testRemove},
		{"rename", su.testRename},
		{"free", su.testFree},
		{"open", su.testOpen},
		{"persistence", su.testPersistence},
		{"keys", su.testKeys},
		{"concurrency", su.testConcurrency},
		{"large", su.testLarge},
		{"close", su.testClose},
	} {
		t.Run(g.name, g.run)
	}
}

type suite struct{ h Harness }

// baseTime is where every store's fake clock starts: well after the epoch,
// with nanoseconds, so that sub-second mtimes are visible.
var baseTime = time.Date(2024, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// env is one subtest's store and clock.
type env struct {
	t      *testing.T
	h      *Harness
	clk    *clock.Fake
	s      kv.RW
	isOpen bool // s is open: the cleanup checks and closes it
}

// start makes a fresh store for the subtest t and arranges for it to be
// checked and closed when t ends.
func (su *suite) start(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, h: &su.h, clk: clock.NewFake(baseTime)}
	e.s = su.h.New(t, e.clk)
	if e.s == nil {
		t.Fatal("kvtest: Harness.New returned nil")
	}
	e.isOpen = true
	t.Cleanup(e.finish)
	return e
}

func (e *env) finish() {
	if !e.isOpen {
		return
	}
	e.isOpen = false
	if e.h.Check != nil {
		e.h.Check(e.t, e.s)
	}
	if err := e.s.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
}

// close closes the store, which must succeed.
func (e *env) close() {
	e.t.Helper()
	e.isOpen = false
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
}

// reopen reopens the store through the harness, an hour later on the clock,
// so that a store that restamps its values on open is caught.
func (e *env) reopen() {
	e.t.Helper()
	e.clk.Advance(time.Hour)
	e.isOpen = false
	e.s = e.h.Reopen(e.t, e.s, e.clk)
	if e.s == nil {
		e.t.Fatal("kvtest: Harness.Reopen returned nil")
	}
	e.isOpen = true
}

// mk parses a key the suite knows to be valid.
func mk(s string) kv.Key { return kv.MustKey(s) }

// trunc is t as the store keeps it.
func (e *env) trunc(t time.Time) time.Time { return t.Truncate(e.h.MtimeResolution) }

// step is how far the clock moves before each write: more than the
// resolution, so consecutive writes get distinct mtimes, and not a whole
// number of seconds, so that the sub-second part changes too.
func (e *env) step() time.Duration {
	return max(e.h.MtimeResolution, time.Second) + 123456789*time.Nanosecond
}

// stamp advances the clock for the next write and returns the mtime that
// write must get.
func (e *env) stamp() time.Time { return e.trunc(e.clk.Advance(e.step())) }

// set binds key to v, which must succeed, and returns the mtime it must get.
func (e *env) set(key, v string) time.Time {
	e.t.Helper()
	at := e.stamp()
	if err := e.s.Set(mk(key), []byte(v)); err != nil {
		e.t.Fatalf("Set(%s): %v", key, err)
	}
	return at
}

// fill sets the values of m, in key order, each with its own mtime.
func (e *env) fill(m map[string]string) {
	e.t.Helper()
	for _, k := range sortedKeys(m) {
		e.set(k, m[k])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// exists is Exists, which must succeed.
func (e *env) exists(key string) kv.Kind {
	e.t.Helper()
	kind, err := e.s.Exists(mk(key))
	if err != nil {
		e.t.Fatalf("Exists(%s): %v", key, err)
	}
	return kind
}

// wantKind checks what key is bound to.
func (e *env) wantKind(key string, want kv.Kind) {
	e.t.Helper()
	if got := e.exists(key); got != want {
		e.t.Errorf("Exists(%s) = %v, want %v", key, got, want)
	}
}

// wantValue checks that key is bound to the value want, through Exists, Get
// and Size.
func (e *env) wantValue(key, want string) {
	e.t.Helper()
	e.wantKind(key, kv.Value)
	got, err := e.s.Get(mk(key))
	switch {
	case err != nil:
		e.t.Errorf("Get(%s): %v", key, err)
	case string(got) != want:
		e.t.Errorf("Get(%s) = %s, want %s", key, quote(got), quote([]byte(want)))
	}
	n, err := e.s.Size(mk(key))
	switch {
	case err != nil:
		e.t.Errorf("Size(%s): %v", key, err)
	case n != int64(len(want)):
		e.t.Errorf("Size(%s) = %d, want %d", key, n, len(want))
	}
}

// quote shows a value in a failure message, shortened when long.
func quote(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// wantMtime checks LastModified(key).
func (e *env) wantMtime(key string, want time.Time) {
	e.t.Helper()
	got, err := e.s.LastModified(mk(key))
	switch {
	case err != nil:
		e.t.Errorf("LastModified(%s): %v", key, err)
	case !got.Equal(want):
		e.t.Errorf("LastModified(%s) = %v, want %v", key, fmtTime(got), fmtTime(want))
	}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// wantValues checks the whole store: its values are exactly want, and its
// dictionaries exactly the ones those values imply (no empty dictionary is
// left behind).
func (e *env) wantValues(want map[string]string) {
	e.t.Helper()
	const dict = "(dictionary)"
	wantAll := map[string]string{}
	for k, v := range want {
		wantAll[k] = short(v)
		for p := mk(k).Parent(); !p.IsRoot(); p = p.Parent() {
			wantAll[p.String()] = dict
		}
	}
	got := map[string]string{}
	walk(e.t, e.s, func(en kv.Entry) {
		if en.Kind == kv.Dictionary {
			got[en.Key.String()] = dict
			return
		}
		v, err := e.s.Get(en.Key)
		if err != nil {
			e.t.Errorf("Get(%s), listed as a value: %v", en.Key, err)
			return
		}
		got[en.Key.String()] = short(string(v))
	})
	reportDiff(e.t, "the store's keys differ (key: got, want)", diffMaps(wantAll, got, func(s string) string { return s }))
}

// wantError checks that err is the error the table prescribes: it wraps
// sentinel, and it is a *kv.Error of the operation op about key. call names
// the call in failure messages. It returns the *kv.Error, or nil.
func wantError(t testing.TB, call string, err, sentinel error, op string, key kv.Key) *kv.Error {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want %v", call, sentinel)
		return nil
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: error %q (code %s), want %v", call, err, kv.Code(err), sentinel)
	}
	var ke *kv.Error
	if !errors.As(err, &ke) {
		t.Errorf("%s: error %q is a %T, want a *kv.Error", call, err, err)
		return nil
	}
	if ke.Op != op {
		t.Errorf("%s: error %q has Op %q, want %q", call, err, ke.Op, op)
	}
	if ke.Key != key {
		t.Errorf("%s: error %q has Key %s, want %s", call, err, ke.Key, key)
	}
	return ke
}

// unchanged runs f, a failing operation and its checks, and checks that the
// store is exactly as it was before.
func (e *env) unchanged(call string, f func()) {
	e.t.Helper()
	before := dump(e.t, e.s)
	f()
	wantSameDump(e.t, call+" failed but changed the store (key: after, before)", before, dump(e.t, e.s))
}

// errCase is one row of an error table: the operation on key fails with
// sentinel, about errKey (key when empty).
type errCase struct {
	key      string
	sentinel error
	errKey   string
}

// wantErrors runs call on each row's key and checks the error and that
// nothing changed. name is the method, op the Op it must report.
func (e *env) wantErrors(name, op string, call func(k kv.Key) error, cases []errCase) {
	e.t.Helper()
	for _, c := range cases {
		k := mk(c.key)
		ek := k
		if c.errKey != "" {
			ek = mk(c.errKey)
		}
		desc := fmt.Sprintf("%s(%s)", name, k)
		e.stamp() // a failed write must not even touch mtimes
		e.unchanged(desc, func() {
			e.t.Helper()
			wantError(e.t, desc, call(k), c.sentinel, op, ek)
		})
	}
}

// describe renders entries one per line, for comparisons with readable
// diffs.
func describe(entries []kv.Entry) []string {
	out := []string{}
	for _, en := range entries {
		out = append(out, en.Kind.String()+" "+en.Key.String())
	}
	return out
}

// repeat is strings.Repeat, short.
func repeat(s string, n int) string { return strings.Repeat(s, n) }
