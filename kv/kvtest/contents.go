package kvtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// walk calls fn for every key below the root, depth first in List order.
func walk(t testing.TB, s kv.RO, fn func(kv.Entry)) {
	t.Helper()
	var visit func(k kv.Key)
	visit = func(k kv.Key) {
		entries, err := s.List(k)
		if err != nil {
			t.Fatalf("List(%s), listed as a dictionary: %v", k, err)
		}
		for _, en := range entries {
			if en.Key.IsRoot() || en.Key.Parent() != k {
				t.Fatalf("List(%s) returned %s, which is not a direct child", k, short(en.Key.String()))
			}
			fn(en)
			if en.Kind == kv.Dictionary {
				visit(en.Key)
			}
		}
	}
	visit(kv.Root)
}

// Values returns every value of s, read whole with Get, by key string.
func Values(t testing.TB, s kv.RO) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	walk(t, s, func(e kv.Entry) {
		if e.Kind != kv.Value {
			return
		}
		v, err := s.Get(e.Key)
		if err != nil {
			t.Fatalf("Get(%s), listed as a value: %v", short(e.Key.String()), err)
		}
		out[e.Key.String()] = v
	})
	return out
}

// node is what dump records of one key.
type node struct {
	Kind    string
	Size    int64  // values: Size
	Content string // values: hex SHA-256 of the bytes read through Open
	Digest  string // hex of Digest
	Mtime   string // LastModified, UTC, RFC 3339 with nanoseconds
}

// dump reads everything a store shows of its keys, the root included, keyed
// by key string. Values are read through Open, in bounded memory.
func dump(t testing.TB, s kv.RO) map[string]node {
	t.Helper()
	out := map[string]node{}
	record := func(k kv.Key, kind kv.Kind) {
		n := node{Kind: kind.String()}
		d, err := s.Digest(k)
		if err != nil {
			t.Fatalf("Digest(%s): %v", k, err)
		}
		n.Digest = hex.EncodeToString(d)
		m, err := s.LastModified(k)
		if err != nil {
			t.Fatalf("LastModified(%s): %v", k, err)
		}
		n.Mtime = fmtTime(m)
		if kind == kv.Value {
			if n.Size, err = s.Size(k); err != nil {
				t.Fatalf("Size(%s): %v", k, err)
			}
			n.Content = contentHash(t, s, k)
		}
		out[k.String()] = n
	}
	record(kv.Root, kv.Dictionary)
	walk(t, s, func(en kv.Entry) { record(en.Key, en.Kind) })
	return out
}

// contentHash is the hex SHA-256 of the value k, read through Open.
func contentHash(t testing.TB, s kv.RO, k kv.Key) string {
	t.Helper()
	r, err := s.Open(k)
	if err != nil {
		t.Fatalf("Open(%s): %v", k, err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, kv.NewStreamReader(r)); err != nil {
		t.Fatalf("reading %s through Open: %v", k, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// short shows a key or value in a failure message, shortened when long.
func short(s string) string {
	if len(s) <= 80 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...%q (%d bytes)", s[:40], s[len(s)-20:], len(s))
}

func (n node) String() string {
	if n.Kind != kv.Value.String() {
		return fmt.Sprintf("%s digest %.12s mtime %s", n.Kind, n.Digest, n.Mtime)
	}
	return fmt.Sprintf("value of %d bytes, content %.12s digest %.12s mtime %s", n.Size, n.Content, n.Digest, n.Mtime)
}

// diffMaps lists how got differs from want, one line per key.
func diffMaps[V comparable](want, got map[string]V, show func(V) string) []string {
	var out []string
	for _, k := range sortedKeys(want) {
		switch g, ok := got[k]; {
		case !ok:
			out = append(out, fmt.Sprintf("%s: missing, want %s", short(k), show(want[k])))
		case g != want[k]:
			out = append(out, fmt.Sprintf("%s: %s, want %s", short(k), show(g), show(want[k])))
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: %s, want nothing", short(k), show(got[k])))
		}
	}
	return out
}

// reportDiff fails t with the lines of a diff, if there are any, and
// reports whether there were none.
func reportDiff(t testing.TB, what string, diff []string) bool {
	t.Helper()
	if len(diff) == 0 {
		return true
	}
	const most = 25
	more := ""
	if len(diff) > most {
		more = fmt.Sprintf("\n\t... and %d more", len(diff)-most)
		diff = diff[:most]
	}
	t.Errorf("%s:\n\t%s%s", what, strings.Join(diff, "\n\t"), more)
	return false
}

// wantSameDump checks that two dumps are equal.
func wantSameDump(t testing.TB, what string, want, got map[string]node) bool {
	t.Helper()
	return reportDiff(t, what, diffMaps(want, got, node.String))
}

// AssertSameContents checks that got holds exactly what want holds: the
// same keys with the same kinds, and for each the same size, bytes (read
// through Open), digest and last-modified time (compared exactly: clock both
// stores at the coarser resolution). It reports whether they matched.
func AssertSameContents(t testing.TB, want, got kv.RO) bool {
	t.Helper()
	return wantSameDump(t, "the stores differ", dump(t, want), dump(t, got))
}

// PopulateStep is how far Populate advances the clock before each write.
const PopulateStep = time.Second + 234567891*time.Nanosecond

// Populate fills s with a small tree that exercises what a store must keep:
// values at several depths, an empty value, a value spanning many 512-byte
// blocks, an overwritten value, a patched value, a streamed value, a removed
// dictionary, a renamed dictionary, an allocated value with an explicit
// mtime, and keys with a 255-byte segment and UTF-8. clk must be the clock s
// stamps with; Populate advances it by PopulateStep before every write, so
// every write has its own mtime at any resolution up to a second. Every
// operation must succeed.
func Populate(t testing.TB, s kv.RW, clk *clock.Fake) {
	t.Helper()
	do := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("Populate: %s: %v", what, err)
		}
	}
	set := func(key, v string) {
		t.Helper()
		clk.Advance(PopulateStep)
		do("Set("+key+")", s.Set(mk(key), []byte(v)))
	}
	set("/readme", "tarstore conformance suite\n")
	set("/empty", "")
	set("/docs/a.txt", "alpha\n")
	set("/docs/b.txt", "bravo\n")
	set("/docs/deep/er/d", "first version of d, longer than the second")
	set("/docs/deep/er/d", "second version")
	set("/docs/deep/er/c.bin", string(pseudoRandom(1, 70001)))
	set("/tmp/x", "x")
	set("/tmp/y/z", "z")
	set("/old/one", "1")
	set("/old/two/three", "3")
	set("/patched", "0123456789")
	clk.Advance(PopulateStep)
	do("SetPartial(/patched)", s.SetPartial(mk("/patched"), 4, []byte("PATCH")))
	set("/naïve/café ☕", "unicode")
	set("/long/"+repeat("s", kv.MaxSegmentLen)+"/v", "long segment")
	clk.Advance(PopulateStep)
	streamed := pseudoRandom(2, 1<<20+123)
	do("SetFrom(/streamed)", s.SetFrom(mk("/streamed"), strings.NewReader(string(streamed)), int64(len(streamed))))
	clk.Advance(PopulateStep)
	do("Remove(/tmp)", s.Remove(mk("/tmp")))
	clk.Advance(PopulateStep)
	do("Rename(/old, /new/place)", s.Rename(mk("/old"), mk("/new/place")))
	clk.Advance(PopulateStep)
	do("Allocate(/alloc)", s.Allocate(mk("/alloc"), 4096, allocMtime))
	set("/docs/last", "the last write")
}

// allocMtime is the explicit mtime Populate allocates with: long ago, with
// nanoseconds, in a zone other than UTC.
var allocMtime = time.Date(2001, time.February, 3, 4, 5, 6, 987654321, time.FixedZone("UTC+5", 5*3600))

// wantPopulated checks the logical contents Populate leaves.
func (e *env) wantPopulated() {
	e.t.Helper()
	e.wantValue("/readme", "tarstore conformance suite\n")
	e.wantValue("/empty", "")
	e.wantValue("/docs/deep/er/d", "second version")
	e.wantValue("/docs/deep/er/c.bin", string(pseudoRandom(1, 70001)))
	e.wantValue("/patched", "0123PATCH9")
	e.wantValue("/naïve/café ☕", "unicode")
	e.wantValue("/long/"+repeat("s", kv.MaxSegmentLen)+"/v", "long segment")
	e.wantValue("/streamed", string(pseudoRandom(2, 1<<20+123)))
	e.wantKind("/tmp", kv.None)
	e.wantKind("/old", kv.None)
	e.wantValue("/new/place/one", "1")
	e.wantValue("/new/place/two/three", "3")
	e.wantValue("/alloc", string(make([]byte, 4096)))
	e.wantMtime("/alloc", e.trunc(allocMtime))
	e.wantValue("/docs/last", "the last write")
}

// pseudoRandom returns n deterministic pseudo-random bytes for seed.
func pseudoRandom(seed uint64, n int) []byte {
	b := make([]byte, n)
	newStream(seed).Read(b)
	return b
}

// newStream returns a deterministic, endless pseudo-random byte stream.
func newStream(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	copy(s[:], fmt.Sprintf("kvtest stream %d", seed))
	return rand.NewChaCha8(s)
}
