package kvtest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/tarstore/tarstore/kv"
)

// fixture is the store most read tests run on: values at three depths, an
// empty value, and dictionaries holding values and dictionaries.
var fixture = map[string]string{
	"/v":              "0123456789",
	"/empty":          "",
	"/d/x":            "x in d",
	"/d/sub/y":        "y in d/sub",
	"/d/sub/deeper/z": "z in d/sub/deeper",
}

func (su *suite) fixtureEnv(t *testing.T) *env {
	e := su.start(t)
	e.fill(fixture)
	return e
}

// Error tables on the fixture, shared by the read operations.
var (
	// valueReadErrors: operations that need a value.
	valueReadErrors = []errCase{
		{"/d", kv.ErrValueExpected, ""},
		{"/d/sub", kv.ErrValueExpected, ""},
		{"/", kv.ErrValueExpected, ""},
		{"/nothing", kv.ErrNotFound, ""},
		{"/d/nothing", kv.ErrNotFound, ""},
		{"/d/su", kv.ErrNotFound, ""},  // a string prefix of /d/sub, not a key
		{"/v/x", kv.ErrNotFound, ""},   // through a prefix value
		{"/v/x/y", kv.ErrNotFound, ""}, // through a prefix value
	}
	// dictReadErrors: operations that need a dictionary.
	dictReadErrors = []errCase{
		{"/v", kv.ErrDictionaryExpected, ""},
		{"/empty", kv.ErrDictionaryExpected, ""},
		{"/d/x", kv.ErrDictionaryExpected, ""},
		{"/nothing", kv.ErrNotFound, ""},
		{"/d/nothing", kv.ErrNotFound, ""},
		{"/v/x", kv.ErrNotFound, ""},
		{"/d/x/y", kv.ErrNotFound, ""},
	}
	// anyReadErrors: operations on values and dictionaries alike.
	anyReadErrors = []errCase{
		{"/nothing", kv.ErrNotFound, ""},
		{"/d/nothing", kv.ErrNotFound, ""},
		{"/d/su", kv.ErrNotFound, ""},
		{"/v/x", kv.ErrNotFound, ""},
		{"/v/x/y", kv.ErrNotFound, ""},
		{"/d/x/y", kv.ErrNotFound, ""},
	}
)

func (su *suite) testExists(t *testing.T) {
	t.Run("table", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, c := range []struct {
			key  string
			want kv.Kind
		}{
			{"/v", kv.Value},
			{"/empty", kv.Value},
			{"/d/x", kv.Value},
			{"/d/sub/deeper/z", kv.Value},
			{"/d", kv.Dictionary},
			{"/d/sub", kv.Dictionary},
			{"/d/sub/deeper", kv.Dictionary},
			{"/", kv.Dictionary},
			{"/nothing", kv.None},
			{"/d/nothing", kv.None},
			{"/d/su", kv.None},    // a string prefix of /d/sub
			{"/d/sub/d", kv.None}, // a string prefix of /d/sub/deeper
			{"/v/x", kv.None},     // through a prefix value
			{"/v/x/y", kv.None},   // through a prefix value
			{"/empty/x", kv.None},
		} {
			e.wantKind(c.key, c.want)
		}
	})
	t.Run("root_empty", func(t *testing.T) {
		e := su.start(t)
		e.wantKind("/", kv.Dictionary)
		e.wantKind("/a", kv.None)
	})
}

func (su *suite) testGet(t *testing.T) {
	t.Run("value", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, k := range sortedKeys(fixture) {
			e.wantValue(k, fixture[k])
		}
	})
	t.Run("empty_value", func(t *testing.T) {
		e := su.fixtureEnv(t)
		got, err := e.s.Get(mk("/empty"))
		if err != nil || len(got) != 0 {
			t.Errorf("Get(/empty) = %s, %v; want an empty value", quote(got), err)
		}
	})
	t.Run("result_is_a_copy", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, read := range []struct {
			name string
			get  func() ([]byte, error)
		}{
			{"Get(/v)", func() ([]byte, error) { return e.s.Get(mk("/v")) }},
			{"GetPartial(/v, 2, 5)", func() ([]byte, error) { return e.s.GetPartial(mk("/v"), 2, 5) }},
		} {
			b, err := read.get()
			if err != nil {
				t.Fatalf("%s: %v", read.name, err)
			}
			for i := range b {
				b[i] = '!'
			}
			e.wantValue("/v", fixture["/v"])
		}
	})
	t.Run("errors", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.wantErrors("Get", "get", func(k kv.Key) error { _, err := e.s.Get(k); return err }, valueReadErrors)
	})
}

func (su *suite) testGetPartial(t *testing.T) {
	t.Run("ranges", func(t *testing.T) {
		e := su.fixtureEnv(t) // /v is "0123456789"
		for _, c := range []struct {
			off, length int64
			want        string
		}{
			{0, 10, "0123456789"},
			{0, 4, "0123"},
			{3, 4, "3456"},
			{6, 4, "6789"},                     // up to the end exactly
			{8, 5, "89"},                       // short read at the end
			{9, 100, "9"},                      // short read at the end
			{3, math.MaxInt64, "3456789"},      // off+length overflows int64
			{0, 0, ""},                         // length 0
			{5, 0, ""},                         // length 0
			{10, 0, ""},                        // length 0 at the end
			{10, 1, ""},                        // off = size
			{11, 5, ""},                        // off > size
			{1 << 40, 1, ""},                   // off far past the end
			{math.MaxInt64, math.MaxInt64, ""}, // off far past the end, overflowing
		} {
			got, err := e.s.GetPartial(mk("/v"), c.off, c.length)
			switch {
			case err != nil:
				t.Errorf("GetPartial(/v, %d, %d): %v", c.off, c.length, err)
			case string(got) != c.want:
				t.Errorf("GetPartial(/v, %d, %d) = %q, want %q", c.off, c.length, got, c.want)
			}
		}
	})
	t.Run("empty_value", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, c := range [][2]int64{{0, 0}, {0, 1}, {5, 5}} {
			got, err := e.s.GetPartial(mk("/empty"), c[0], c[1])
			if err != nil || len(got) != 0 {
				t.Errorf("GetPartial(/empty, %d, %d) = %q, %v; want empty", c[0], c[1], got, err)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, c := range [][2]int64{{-1, 1}, {0, -1}, {-5, -5}, {math.MinInt64, 1}} {
			desc := fmt.Sprintf("GetPartial(/v, %d, %d)", c[0], c[1])
			_, err := e.s.GetPartial(mk("/v"), c[0], c[1])
			wantError(t, desc, err, kv.ErrInvalidArgument, "get_partial", mk("/v"))
		}
		e.wantErrors("GetPartial", "get_partial", func(k kv.Key) error { _, err := e.s.GetPartial(k, 0, 1); return err }, valueReadErrors)
	})
}

func (su *suite) testSize(t *testing.T) {
	t.Run("values", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, k := range sortedKeys(fixture) {
			n, err := e.s.Size(mk(k))
			if err != nil || n != int64(len(fixture[k])) {
				t.Errorf("Size(%s) = %d, %v; want %d", k, n, err, len(fixture[k]))
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.wantErrors("Size", "size", func(k kv.Key) error { _, err := e.s.Size(k); return err }, valueReadErrors)
	})
}

// wantList checks List(key) against "kind key" lines.
func (e *env) wantList(key string, want []string) {
	e.t.Helper()
	entries, err := e.s.List(mk(key))
	if err != nil {
		e.t.Errorf("List(%s): %v", key, err)
		return
	}
	assert.Equal(e.t, want, describe(entries), "List(%s): direct children, absolute keys, sorted by key", key)
}

func (su *suite) testList(t *testing.T) {
	t.Run("sorted", func(t *testing.T) {
		e := su.start(t)
		// Written in an order that is neither sorted nor reversed. Sorting
		// is by key string, so the dictionary /l/a comes before /l/a-b
		// although its values' paths (/l/a/x) sort after it.
		for _, k := range []string{"/l/a0", "/l/é", "/l/a/x", "/l/10", "/l/B", "/l/a.b", "/l/~", "/l/ab", "/l/9", "/l/Z", "/l/a-b", "/l/a/y/z"} {
			e.set(k, k)
		}
		e.wantList("/l", []string{
			"value /l/10",
			"value /l/9",
			"value /l/B",
			"value /l/Z",
			"dictionary /l/a",
			"value /l/a-b",
			"value /l/a.b",
			"value /l/a0",
			"value /l/ab",
			"value /l/~",
			"value /l/é",
		})
		e.wantList("/l/a", []string{"value /l/a/x", "dictionary /l/a/y"})
	})
	t.Run("nested", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.wantList("/", []string{"dictionary /d", "value /empty", "value /v"})
		e.wantList("/d", []string{"dictionary /d/sub", "value /d/x"})
		e.wantList("/d/sub", []string{"dictionary /d/sub/deeper", "value /d/sub/y"})
		e.wantList("/d/sub/deeper", []string{"value /d/sub/deeper/z"})
	})
	t.Run("root_empty", func(t *testing.T) {
		e := su.start(t)
		entries, err := e.s.List(kv.Root)
		if err != nil || len(entries) != 0 {
			t.Errorf("List(/) of an empty store = %v, %v; want no entries and no error", describe(entries), err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.wantErrors("List", "list", func(k kv.Key) error { _, err := e.s.List(k); return err }, dictReadErrors)
	})
}

func (su *suite) testLastModified(t *testing.T) {
	t.Run("value", func(t *testing.T) {
		e := su.start(t)
		t1 := e.set("/a", "first")
		e.wantMtime("/a", t1) // sub-second when the resolution allows
		e.set("/b", "another key")
		e.wantMtime("/a", t1)
		t2 := e.set("/a", "overwritten")
		e.wantMtime("/a", t2)
		t3 := e.stamp()
		if err := e.s.SetPartial(mk("/a"), 2, []byte("patch")); err != nil {
			t.Fatalf("SetPartial(/a): %v", err)
		}
		e.wantMtime("/a", t3)
		t4 := e.stamp()
		if err := e.s.SetFrom(mk("/a"), strings.NewReader("streamed"), 8); err != nil {
			t.Fatalf("SetFrom(/a): %v", err)
		}
		e.wantMtime("/a", t4)
	})
	t.Run("dictionary", func(t *testing.T) {
		e := su.start(t)
		t0 := e.set("/top", "0")
		e.set("/d/a", "1")
		t2 := e.set("/d/b", "2")
		t3 := e.set("/d/sub/c", "3")
		t4 := e.set("/d/sub/deeper/e", "4")
		e.wantMtime("/", t0) // one level: /d is newer but is a dictionary
		e.wantMtime("/d", t2)
		e.wantMtime("/d/sub", t3)
		e.wantMtime("/d/sub/deeper", t4)
		t5 := e.set("/d/a", "1 again")
		e.wantMtime("/d", t5)
		if err := e.s.Remove(mk("/d/a")); err != nil {
			t.Fatalf("Remove(/d/a): %v", err)
		}
		e.wantMtime("/d", t2)
		if err := e.s.Remove(mk("/d/b")); err != nil {
			t.Fatalf("Remove(/d/b): %v", err)
		}
		e.wantMtime("/d", time.Unix(0, 0)) // only a dictionary left in it
	})
	t.Run("no_values", func(t *testing.T) {
		e := su.start(t)
		epoch := time.Unix(0, 0)
		e.wantMtime("/", epoch) // empty root
		e.set("/only/dictionaries/v", "v")
		e.wantMtime("/", epoch)
		e.wantMtime("/only", epoch)
	})
	t.Run("errors", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.wantErrors("LastModified", "last_modified", func(k kv.Key) error { _, err := e.s.LastModified(k); return err }, anyReadErrors)
	})
}

// expectedDigest computes the digest of k from what List and Get return,
// independently of the store's Digest: SHA-256 of a value's bytes, and for
// a dictionary kv.DictDigest over its entries sorted by name.
func expectedDigest(t testing.TB, s kv.RO, k kv.Key, kind kv.Kind) []byte {
	t.Helper()
	if kind == kv.Value {
		v, err := s.Get(k)
		if err != nil {
			t.Fatalf("Get(%s): %v", k, err)
		}
		d := sha256.Sum256(v)
		return d[:]
	}
	entries, err := s.List(k)
	if err != nil {
		t.Fatalf("List(%s): %v", k, err)
	}
	des := []kv.DigestEntry{}
	for _, en := range entries {
		des = append(des, kv.DigestEntry{Name: en.Key.Base(), Kind: en.Kind, Digest: expectedDigest(t, s, en.Key, en.Kind)})
	}
	slices.SortFunc(des, func(a, b kv.DigestEntry) int { return strings.Compare(a.Name, b.Name) })
	return kv.DictDigest(des)
}

// digests returns Digest of each key.
func (e *env) digests(keys ...string) map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	for _, k := range keys {
		d, err := e.s.Digest(mk(k))
		if err != nil {
			e.t.Fatalf("Digest(%s): %v", k, err)
		}
		out[k] = d
	}
	return out
}

// wantDigestsChanged compares digests of before's keys now with before:
// those in changed must differ, the others must be equal.
func (e *env) wantDigestsChanged(what string, before map[string][]byte, changed ...string) {
	e.t.Helper()
	now := e.digests(sortedKeys(before)...)
	for _, k := range sortedKeys(before) {
		same := bytes.Equal(before[k], now[k])
		switch want := slices.Contains(changed, k); {
		case want && same:
			e.t.Errorf("after %s, Digest(%s) did not change", what, k)
		case !want && !same:
			e.t.Errorf("after %s, Digest(%s) changed", what, k)
		}
	}
}

func (su *suite) testDigest(t *testing.T) {
	t.Run("value", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, k := range sortedKeys(fixture) {
			want := sha256.Sum256([]byte(fixture[k]))
			if got := e.digests(k)[k]; !bytes.Equal(got, want[:]) {
				t.Errorf("Digest(%s) = %x, want SHA-256 %x", k, got, want)
			}
		}
	})
	t.Run("dictionary", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.set("/d/sub/deeper/w", "w")
		e.set("/d/sub/deeper/w2/q", "q")
		e.set("/d/a-b", "a-b") // sorts before /d/sub but its path after /d/a/...
		e.set("/d/a/x", "a/x")
		check := func(k kv.Key) {
			want := expectedDigest(t, e.s, k, kv.Dictionary)
			if got := e.digests(k.String())[k.String()]; !bytes.Equal(got, want) {
				t.Errorf("Digest(%s) = %x, want %x (kv.DictDigest of its entries)", k, got, want)
			}
		}
		check(kv.Root)
		walk(t, e.s, func(en kv.Entry) {
			if en.Kind == kv.Dictionary {
				check(en.Key)
			}
		})
	})
	t.Run("root_empty", func(t *testing.T) {
		e := su.start(t)
		if got, want := e.digests("/")["/"], kv.DictDigest(nil); !bytes.Equal(got, want) {
			t.Errorf("Digest(/) of an empty store = %x, want %x", got, want)
		}
	})
	t.Run("changes", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.set("/other/w", "w")
		before := e.digests("/", "/d", "/d/sub", "/d/sub/deeper", "/d/sub/deeper/z", "/d/x", "/other", "/v")
		e.set("/d/sub/deeper/z", fixture["/d/sub/deeper/z"])
		e.wantDigestsChanged("rewriting /d/sub/deeper/z with the same bytes later", before)
		e.set("/d/sub/deeper/z", "changed")
		e.wantDigestsChanged("changing /d/sub/deeper/z", before, "/", "/d", "/d/sub", "/d/sub/deeper", "/d/sub/deeper/z")
		e.set("/d/sub/deeper/z", fixture["/d/sub/deeper/z"])
		e.wantDigestsChanged("restoring /d/sub/deeper/z", before)
		e.set("/d/sub/deeper/new", "")
		e.wantDigestsChanged("adding /d/sub/deeper/new", before, "/", "/d", "/d/sub", "/d/sub/deeper")
		if err := e.s.Remove(mk("/d/sub/deeper/new")); err != nil {
			t.Fatalf("Remove(/d/sub/deeper/new): %v", err)
		}
		e.wantDigestsChanged("removing /d/sub/deeper/new", before)
		if err := e.s.Rename(mk("/other/w"), mk("/other/w2")); err != nil {
			t.Fatalf("Rename(/other/w, /other/w2): %v", err)
		}
		e.wantDigestsChanged("renaming /other/w to /other/w2", before, "/", "/other")
	})
	t.Run("errors", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.wantErrors("Digest", "digest", func(k kv.Key) error { _, err := e.s.Digest(k); return err }, anyReadErrors)
	})
}
