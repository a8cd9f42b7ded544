package kvtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tarstore/tarstore/kv"
)

// errorStore is the fixture the write error tables run on: a value /v, a
// value /d/w inside a dictionary /d.
var errorStore = map[string]string{
	"/v":     "value",
	"/d/w":   "w",
	"/d/e/f": "f",
}

func (su *suite) testSet(t *testing.T) {
	t.Run("new", func(t *testing.T) {
		e := su.start(t)
		e.set("/a", "hello")
		e.wantValues(map[string]string{"/a": "hello"})
	})
	t.Run("overwrite", func(t *testing.T) {
		e := su.start(t)
		e.set("/a", "a first value, longer than the second")
		e.set("/a", "shorter")
		e.wantValue("/a", "shorter")
		long := repeat("0123456789", 1000)
		e.set("/a", long)
		e.wantValues(map[string]string{"/a": long})
	})
	t.Run("empty_value", func(t *testing.T) {
		e := su.start(t)
		e.set("/e", "")
		e.wantValue("/e", "")
		e.set("/e", "not empty")
		e.set("/e", "")
		e.wantValues(map[string]string{"/e": ""})
	})
	t.Run("creates_parents", func(t *testing.T) {
		e := su.start(t)
		e.set("/p/q/r/s", "deep")
		for _, k := range []string{"/p", "/p/q", "/p/q/r"} {
			e.wantKind(k, kv.Dictionary)
		}
		e.wantValues(map[string]string{"/p/q/r/s": "deep"})
	})
	t.Run("replaces_dictionary", func(t *testing.T) {
		e := su.start(t)
		e.fill(map[string]string{"/d/x": "x", "/d/sub/y": "y", "/d2/z": "z", "/d-1": "-"})
		e.set("/d", "now a value")
		e.wantValues(map[string]string{"/d": "now a value", "/d2/z": "z", "/d-1": "-"})
	})
	t.Run("caller_buffer", func(t *testing.T) {
		e := su.start(t)
		b := []byte("original")
		if err := e.s.Set(mk("/a"), b); err != nil {
			t.Fatalf("Set(/a): %v", err)
		}
		copy(b, "CHANGED!")
		e.wantValue("/a", "original")
	})
	t.Run("errors", func(t *testing.T) {
		e := su.start(t)
		e.fill(errorStore)
		e.wantErrors("Set", "set", func(k kv.Key) error { return e.s.Set(k, []byte("new")) }, []errCase{
			{"/", kv.ErrValueExpected, ""},
			{"/v/x", kv.ErrDictionaryExpected, "/v"},
			{"/v/x/y/z", kv.ErrDictionaryExpected, "/v"},
			{"/d/w/x", kv.ErrDictionaryExpected, "/d/w"},
			{"/d/e/f/g/h", kv.ErrDictionaryExpected, "/d/e/f"},
		})
	})
}

// errReader is the error of failingReader.
var errReader = errors.New("kvtest: the reader failed")

// failingReader returns n bytes, then fails with errReader.
func failingReader(n int) io.Reader {
	return io.MultiReader(bytes.NewReader(pseudoRandom(3, n)), iotest.ErrReader(errReader))
}

func (su *suite) testSetFrom(t *testing.T) {
	t.Run("stream", func(t *testing.T) {
		e := su.start(t)
		data := pseudoRandom(4, 100003)
		for _, c := range []struct {
			key  string
			r    io.Reader
			want []byte
		}{
			{"/half", iotest.HalfReader(bytes.NewReader(data)), data},                     // short reads
			{"/dataerr", iotest.DataErrReader(bytes.NewReader(data)), data},               // io.EOF with the last bytes
			{"/onebyte", iotest.OneByteReader(bytes.NewReader(data[:5000])), data[:5000]}, // a byte at a time
		} {
			at := e.stamp()
			if err := e.s.SetFrom(mk(c.key), c.r, int64(len(c.want))); err != nil {
				t.Fatalf("SetFrom(%s): %v", c.key, err)
			}
			e.wantValue(c.key, string(c.want))
			e.wantMtime(c.key, at)
		}
		at := e.stamp()
		if err := e.s.SetFrom(mk("/new/parents/k"), strings.NewReader("v"), 1); err != nil {
			t.Fatalf("SetFrom(/new/parents/k): %v", err)
		}
		e.wantKind("/new/parents", kv.Dictionary)
		e.wantMtime("/new/parents/k", at)
	})
	t.Run("exact_size", func(t *testing.T) {
		e := su.start(t)
		e.stamp()
		if err := e.s.SetFrom(mk("/a"), strings.NewReader("0123456789abcdef"), 10); err != nil {
			t.Fatalf("SetFrom(/a, 16 bytes, 10): %v", err)
		}
		e.wantValue("/a", "0123456789")
		if err := e.s.SetFrom(mk("/z"), strings.NewReader("ignored"), 0); err != nil {
			t.Fatalf("SetFrom(/z, 7 bytes, 0): %v", err)
		}
		e.wantValue("/z", "")
		if err := e.s.SetFrom(mk("/e"), iotest.ErrReader(io.EOF), 0); err != nil {
			t.Fatalf("SetFrom(/e, empty reader, 0): %v", err)
		}
		e.wantValue("/e", "")
	})
	t.Run("short_reader", func(t *testing.T) {
		e := su.start(t)
		e.fill(errorStore)
		for _, c := range []struct {
			key  string
			r    func() io.Reader
			size int64
		}{
			{"/v", func() io.Reader { return strings.NewReader("short") }, 100},
			{"/new/parents/k", func() io.Reader { return strings.NewReader("short") }, 100},
			{"/d/w", func() io.Reader { return bytes.NewReader(pseudoRandom(5, 70000)) }, 70001},
			{"/empty", func() io.Reader { return strings.NewReader("") }, 1},
		} {
			desc := fmt.Sprintf("SetFrom(%s, size %d) from a reader that ends early", c.key, c.size)
			e.stamp()
			e.unchanged(desc, func() {
				wantError(t, desc, e.s.SetFrom(mk(c.key), c.r(), c.size), kv.ErrInvalidArgument, "set", mk(c.key))
			})
		}
	})
	t.Run("failing_reader", func(t *testing.T) {
		e := su.start(t)
		e.fill(errorStore)
		for _, key := range []string{"/v", "/new/parents/k"} {
			for _, n := range []int{0, 1000, 100000} {
				desc := fmt.Sprintf("SetFrom(%s) from a reader failing after %d bytes", key, n)
				e.stamp()
				e.unchanged(desc, func() {
					err := e.s.SetFrom(mk(key), failingReader(n), 1<<20)
					wantError(t, desc, err, kv.ErrStorage, "set", mk(key))
					if err != nil && !errors.Is(err, errReader) {
						t.Errorf("%s: error %q does not wrap the reader's error", desc, err)
					}
				})
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		e := su.start(t)
		e.fill(errorStore)
		e.wantErrors("SetFrom", "set", func(k kv.Key) error { return e.s.SetFrom(k, strings.NewReader("new"), 3) }, []errCase{
			{"/", kv.ErrValueExpected, ""},
			{"/v/x", kv.ErrDictionaryExpected, "/v"},
			{"/d/w/x/y", kv.ErrDictionaryExpected, "/d/w"},
		})
		e.wantErrors("SetFrom with size -1", "set", func(k kv.Key) error { return e.s.SetFrom(k, strings.NewReader("new"), -1) }, []errCase{
			{"/v", kv.ErrInvalidArgument, ""},
			{"/new", kv.ErrInvalidArgument, ""},
		})
	})
}

// setPartial calls SetPartial, which must succeed, and returns the mtime it
// must give.
func (e *env) setPartial(key string, off int64, v string) time.Time {
	e.t.Helper()
	at := e.stamp()
	if err := e.s.SetPartial(mk(key), off, []byte(v)); err != nil {
		e.t.Fatalf("SetPartial(%s, %d, %q): %v", key, off, v, err)
	}
	return at
}

func (su *suite) testSetPartial(t *testing.T) {
	for _, c := range []struct {
		name   string
		before string // "" means the key is missing
		off    int64
		v      string
		want   string
	}{
		{"in_place", "hello world", 6, "WORLD", "hello WORLD"},
		{"at_start", "hello world", 0, "J", "Jello world"},
		{"trailing_unchanged", "0123456789", 2, "xy", "01xy456789"},
		{"overlaps_end", "0123456789", 8, "abcd", "01234567abcd"},
		{"append_at_end", "abc", 3, "de", "abcde"},
		{"past_end", "abc", 10, "de", "abcde"}, // appended at the end, no gap
		{"far_past_end", "abc", 1 << 40, "de", "abcde"},
		{"empty_patch", "abc", 1, "", "abc"},
		{"missing_creates", "", 0, "new", "new"},
		{"missing_creates_at_offset", "", 7, "new", "new"},
		{"missing_creates_empty", "", 0, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := su.start(t)
			e.set("/sibling", "s")
			key := "/p/q/k"
			if c.before != "" {
				e.set(key, c.before)
			}
			at := e.setPartial(key, c.off, c.v)
			e.wantValues(map[string]string{key: c.want, "/sibling": "s"})
			e.wantMtime(key, at)
		})
	}
	t.Run("large_value", func(t *testing.T) {
		e := su.start(t)
		data := pseudoRandom(6, 300000)
		e.set("/big", string(data))
		patch := repeat("P", 5000)
		e.setPartial("/big", 150001, patch)
		copy(data[150001:], patch)
		e.wantValue("/big", string(data))
	})
	t.Run("errors", func(t *testing.T) {
		e := su.start(t)
		e.fill(errorStore)
		e.wantErrors("SetPartial", "set_partial", func(k kv.Key) error { return e.s.SetPartial(k, 0, []byte("new")) }, []errCase{
			{"/", kv.ErrValueExpected, ""},
			{"/d", kv.ErrValueExpected, ""},
			{"/d/e", kv.ErrValueExpected, ""},
			{"/v/x", kv.ErrDictionaryExpected, "/v"},
			{"/d/w/x/y", kv.ErrDictionaryExpected, "/d/w"},
		})
		e.wantErrors("SetPartial at offset -1", "set_partial", func(k kv.Key) error { return e.s.SetPartial(k, -1, []byte("new")) }, []errCase{
			{"/v", kv.ErrInvalidArgument, ""},
			{"/new", kv.ErrInvalidArgument, ""},
		})
	})
}

func (su *suite) testAllocate(t *testing.T) {
	t.Run("zero_filled", func(t *testing.T) {
		e := su.start(t)
		for _, size := range []int64{1, 1000, 70000} {
			key := fmt.Sprintf("/a/b/z%d", size)
			e.stamp()
			if err := e.s.Allocate(mk(key), size, time.Time{}); err != nil {
				t.Fatalf("Allocate(%s, %d): %v", key, size, err)
			}
			e.wantValue(key, string(make([]byte, size)))
		}
		e.wantKind("/a/b", kv.Dictionary)
	})
	t.Run("empty", func(t *testing.T) {
		e := su.start(t)
		if err := e.s.Allocate(mk("/e"), 0, time.Time{}); err != nil {
			t.Fatalf("Allocate(/e, 0): %v", err)
		}
		e.wantValues(map[string]string{"/e": ""})
	})
	t.Run("mtime", func(t *testing.T) {
		e := su.start(t)
		if err := e.s.Allocate(mk("/explicit"), 10, allocMtime); err != nil {
			t.Fatalf("Allocate(/explicit, 10, %v): %v", allocMtime, err)
		}
		e.wantMtime("/explicit", e.trunc(allocMtime))
		at := e.stamp()
		if err := e.s.Allocate(mk("/now"), 10, time.Time{}); err != nil {
			t.Fatalf("Allocate(/now, 10, zero time): %v", err)
		}
		e.wantMtime("/now", at)
		e.wantMtime("/", at)
		e.set("/later", "l")
		e.wantMtime("/explicit", e.trunc(allocMtime))
	})
	t.Run("errors", func(t *testing.T) {
		e := su.start(t)
		e.fill(errorStore)
		e.wantErrors("Allocate", "allocate", func(k kv.Key) error { return e.s.Allocate(k, 10, time.Time{}) }, []errCase{
			{"/v", kv.ErrAlreadyPresent, ""},
			{"/d/w", kv.ErrAlreadyPresent, ""},
			{"/d", kv.ErrAlreadyPresent, ""},
			{"/d/e", kv.ErrAlreadyPresent, ""},
			{"/", kv.ErrAlreadyPresent, ""},
			{"/v/x", kv.ErrDictionaryExpected, "/v"},
			{"/d/w/x/y", kv.ErrDictionaryExpected, "/d/w"},
		})
		e.wantErrors("Allocate of size -1", "allocate", func(k kv.Key) error { return e.s.Allocate(k, -1, time.Time{}) }, []errCase{
			{"/new", kv.ErrInvalidArgument, ""},
		})
	})
}

// remove calls Remove, which must succeed.
func (e *env) remove(key string) {
	e.t.Helper()
	e.stamp()
	if err := e.s.Remove(mk(key)); err != nil {
		e.t.Fatalf("Remove(%s): %v", key, err)
	}
}

// without returns a copy of m without the keys at or below any of keys.
func without(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		drop := false
		for _, p := range keys {
			drop = drop || mk(k).HasPrefix(mk(p))
		}
		if !drop {
			out[k] = v
		}
	}
	return out
}

func (su *suite) testRemove(t *testing.T) {
	t.Run("value", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.remove("/v")
		e.remove("/d/sub/y")
		e.wantValues(without(fixture, "/v", "/d/sub/y"))
	})
	t.Run("dictionary", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.set("/d-sibling", "stays")
		e.set("/dd/x", "stays")
		all := maps.Clone(fixture)
		all["/d-sibling"], all["/dd/x"] = "stays", "stays"
		e.remove("/d/sub")
		e.wantValues(without(all, "/d/sub"))
		e.remove("/d")
		e.wantKind("/d", kv.None)
		e.wantValues(map[string]string{"/v": fixture["/v"], "/empty": "", "/d-sibling": "stays", "/dd/x": "stays"})
	})
	t.Run("root", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.remove("/")
		e.wantKind("/", kv.Dictionary)
		e.wantValues(map[string]string{})
		e.wantList("/", []string{})
		e.set("/after", "a")
		e.wantValues(map[string]string{"/after": "a"})
	})
	t.Run("missing", func(t *testing.T) {
		e := su.fixtureEnv(t)
		for _, key := range []string{"/nothing", "/d/nothing", "/d/su", "/v/x", "/v/x/y"} {
			e.stamp()
			e.unchanged("Remove("+key+")", func() {
				if err := e.s.Remove(mk(key)); err != nil {
					t.Errorf("Remove(%s) of a missing key: %v, want success", key, err)
				}
			})
		}
		e.remove("/v")
		e.remove("/v")
	})
	t.Run("emptied_parents", func(t *testing.T) {
		e := su.start(t)
		e.fill(map[string]string{"/p/q/r/v": "v", "/s/t/u": "u", "/s/w": "w", "/x/y/z/w": "w"})
		e.remove("/p/q/r/v")
		for _, k := range []string{"/p/q/r", "/p/q", "/p"} {
			e.wantKind(k, kv.None)
		}
		e.remove("/s/t/u")
		e.wantKind("/s/t", kv.None)
		e.wantKind("/s", kv.Dictionary)
		e.remove("/x/y")
		e.wantKind("/x", kv.None)
		e.wantValues(map[string]string{"/s/w": "w"})
		e.wantList("/", []string{"dictionary /s"})
	})
}

func (su *suite) testFree(t *testing.T) {
	t.Run("non_negative", func(t *testing.T) {
		e := su.start(t)
		check := func(when string) {
			n, err := e.s.Free()
			if err != nil || n < 0 {
				t.Errorf("Free() %s = %d, %v; want a non-negative count and no error", when, n, err)
			}
		}
		check("of an empty store")
		e.fill(fixture)
		e.set("/big", string(pseudoRandom(7, 100000)))
		check("after writes")
		e.remove("/")
		check("after removing everything")
	})
}
