package loopback

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(t0)

	_, err := New(filepath.Join(dir, "missing"), clk)
	wantErr(t, err, kv.ErrStorage, "open", "/")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: %v does not wrap fs.ErrNotExist", err)
	}

	writeFile(t, dir, "file", "x")
	_, err = New(filepath.Join(dir, "file"), clk)
	wantErr(t, err, kv.ErrStorage, "open", "/")
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Errorf("root is a file: %v carries no *fs.PathError", err)
	}

	_, err = New(dir, nil)
	wantErr(t, err, kv.ErrInvalidArgument, "open", "/")

	// The reserved name taken by something that is not a directory.
	other := t.TempDir()
	writeFile(t, other, stagingName, "not a directory")
	_, err = New(other, clk)
	wantErr(t, err, kv.ErrStorage, "open", "/")
	if b, _ := os.ReadFile(filepath.Join(other, stagingName)); string(b) != "not a directory" {
		t.Errorf("New touched the file in the way: %q", b)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	s := openAt(t, dir, clk)
	_, err := New(dir, clk)
	wantErr(t, err, kv.ErrStorage, "open", "/")
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second New: %v, want ErrInUse", err)
	}
	set(t, s, "/a", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, dir, clk)
	if got := get(t, s2, "/a"); got != "1" {
		t.Fatalf("after reopen: %q", got)
	}
}

func TestLayout(t *testing.T) {
	s, dir, clk := open(t)
	set(t, s, "/a/b/c", "hello")
	clk.Advance(time.Second)
	set(t, s, "/a/d", "world")

	b, err := os.ReadFile(filepath.Join(dir, "a", "b", "c"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("file a/b/c: %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "a", "d"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(t0.Add(time.Second)) {
		t.Fatalf("mtime of a/d is %v, want the clock's %v to the nanosecond", fi.ModTime(), t0.Add(time.Second))
	}
	if fi, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil || !fi.IsDir() {
		t.Fatalf("a/b is not a directory: %v", err)
	}
	if got := stagingEntries(t, dir); len(got) != 0 {
		t.Fatalf("staging holds %v after the writes", got)
	}
}

func TestReads(t *testing.T) {
	s, _, clk := open(t)
	set(t, s, "/d/v", "0123456789")
	clk.Advance(time.Minute)
	set(t, s, "/d/w", "")
	clk.Advance(time.Minute)
	set(t, s, "/d/sub/x", "x")

	for k, want := range map[string]kv.Kind{"/": kv.Dictionary, "/d": kv.Dictionary, "/d/v": kv.Value,
		"/d/v/x": kv.None, "/nope": kv.None, "/d/sub": kv.Dictionary} {
		if got := kind(t, s, k); got != want {
			t.Errorf("Exists(%s) = %v, want %v", k, got, want)
		}
	}

	partial := []struct {
		off, n int64
		want   string
	}{{0, 3, "012"}, {8, 5, "89"}, {10, 1, ""}, {11, 1, ""}, {3, 0, ""}, {0, 1 << 62, "0123456789"}}
	for _, c := range partial {
		b, err := s.GetPartial(key("/d/v"), c.off, c.n)
		if err != nil || string(b) != c.want || b == nil {
			t.Errorf("GetPartial(%d, %d) = %q (nil %v), %v; want %q", c.off, c.n, b, b == nil, err, c.want)
		}
	}
	_, err := s.GetPartial(key("/d/v"), -1, 1)
	wantErr(t, err, kv.ErrInvalidArgument, "get_partial", "/d/v")
	_, err = s.GetPartial(key("/d"), 0, 1)
	wantErr(t, err, kv.ErrValueExpected, "get_partial", "/d")

	if n, err := s.Size(key("/d/v")); err != nil || n != 10 {
		t.Errorf("Size = %d, %v", n, err)
	}
	_, err = s.Size(key("/d"))
	wantErr(t, err, kv.ErrValueExpected, "size", "/d")
	_, err = s.Size(key("/x"))
	wantErr(t, err, kv.ErrNotFound, "size", "/x")

	es, err := s.List(key("/d"))
	if err != nil {
		t.Fatal(err)
	}
	want := []kv.Entry{{Key: key("/d/sub"), Kind: kv.Dictionary}, {Key: key("/d/v"), Kind: kv.Value}, {Key: key("/d/w"), Kind: kv.Value}}
	if len(es) != len(want) {
		t.Fatalf("List = %v, want %v", es, want)
	}
	for i := range es {
		if es[i] != want[i] {
			t.Fatalf("List = %v, want %v", es, want)
		}
	}
	_, err = s.List(key("/d/v"))
	wantErr(t, err, kv.ErrDictionaryExpected, "list", "/d/v")
	_, err = s.List(key("/d/v/x"))
	wantErr(t, err, kv.ErrNotFound, "list", "/d/v/x")

	// Dictionaries: the latest value directly inside, not below.
	if mt, err := s.LastModified(key("/d")); err != nil || !mt.Equal(t0.Add(time.Minute)) {
		t.Errorf("LastModified(/d) = %v, %v; want %v", mt, err, t0.Add(time.Minute))
	}
	if mt, err := s.LastModified(kv.Root); err != nil || !mt.Equal(time.Unix(0, 0)) {
		t.Errorf("LastModified(/) = %v, %v; want the epoch", mt, err)
	}
	_, err = s.LastModified(key("/q"))
	wantErr(t, err, kv.ErrNotFound, "last_modified", "/q")

	vd, err := s.Digest(key("/d/v"))
	if err != nil || !bytes.Equal(vd, kv.ValueDigest([]byte("0123456789"))) {
		t.Errorf("Digest(/d/v) = %x, %v", vd, err)
	}
	dd, err := s.Digest(key("/d"))
	if err != nil {
		t.Fatal(err)
	}
	subd := kv.DictDigest([]kv.DigestEntry{{Name: "x", Kind: kv.Value, Digest: kv.ValueDigest([]byte("x"))}})
	wantd := kv.DictDigest([]kv.DigestEntry{
		{Name: "sub", Kind: kv.Dictionary, Digest: subd},
		{Name: "v", Kind: kv.Value, Digest: kv.ValueDigest([]byte("0123456789"))},
		{Name: "w", Kind: kv.Value, Digest: kv.ValueDigest(nil)},
	})
	if !bytes.Equal(dd, wantd) {
		t.Errorf("Digest(/d) = %x, want %x", dd, wantd)
	}
	_, err = s.Digest(key("/z"))
	wantErr(t, err, kv.ErrNotFound, "digest", "/z")

	_, err = s.Get(key("/d"))
	wantErr(t, err, kv.ErrValueExpected, "get", "/d")
	_, err = s.Get(key("/d/v/x"))
	wantErr(t, err, kv.ErrNotFound, "get", "/d/v/x")
	if n, err := s.Free(); err != nil || n <= 0 {
		t.Errorf("Free = %d, %v", n, err)
	}
}

func TestWrites(t *testing.T) {
	s, _, clk := open(t)
	set(t, s, "/v", "value")

	wantErr(t, s.Set(kv.Root, nil), kv.ErrValueExpected, "set", "/")
	wantErr(t, s.Set(key("/v/x/y"), nil), kv.ErrDictionaryExpected, "set", "/v")
	wantErr(t, s.SetPartial(key("/v/x"), 0, nil), kv.ErrDictionaryExpected, "set_partial", "/v")
	wantErr(t, s.Allocate(key("/v/x"), 1, time.Time{}), kv.ErrDictionaryExpected, "allocate", "/v")
	wantErr(t, s.SetFrom(key("/v/x"), strings.NewReader("x"), 1), kv.ErrDictionaryExpected, "set", "/v")

	// Set replaces a dictionary whole.
	set(t, s, "/d/a/b", "1")
	set(t, s, "/d/c", "2")
	set(t, s, "/d", "flat")
	if got := dump(t, s); got != `/d v 2024-05-06T07:08:09.123456789Z "flat"`+"\n"+`/v v 2024-05-06T07:08:09.123456789Z "value"` {
		t.Fatalf("after Set over a dictionary:\n%s", got)
	}

	// SetPartial: in place, appending past the end, creating, stamping.
	clk.Advance(time.Hour)
	if err := s.SetPartial(key("/v"), 1, []byte("AL")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPartial(key("/v"), 100, []byte("++")); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "/v"); got != "vALue++" {
		t.Fatalf("after SetPartial: %q", got)
	}
	if mt, _ := s.LastModified(key("/v")); !mt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("SetPartial left mtime %v", mt)
	}
	if err := s.SetPartial(key("/n/p"), 5, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "/n/p"); got != "new" {
		t.Fatalf("SetPartial on a missing key: %q", got)
	}
	wantErr(t, s.SetPartial(key("/n"), 0, []byte("x")), kv.ErrValueExpected, "set_partial", "/n")
	wantErr(t, s.SetPartial(key("/v"), -1, []byte("x")), kv.ErrInvalidArgument, "set_partial", "/v")
	wantErr(t, s.SetPartial(kv.Root, 0, []byte("x")), kv.ErrValueExpected, "set_partial", "/")

	// Allocate: zero-filled, explicit mtime honoured, zero mtime is now.
	mt := time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	if err := s.Allocate(key("/z/big"), 3<<20, mt); err != nil {
		t.Fatal(err)
	}
	b, _ := s.Get(key("/z/big"))
	if len(b) != 3<<20 || !bytes.Equal(b, make([]byte, 3<<20)) {
		t.Fatalf("Allocate: %d bytes, not all zero", len(b))
	}
	if got, _ := s.LastModified(key("/z/big")); !got.Equal(mt) {
		t.Fatalf("Allocate mtime %v, want %v", got, mt)
	}
	if err := s.Allocate(key("/z/now"), 0, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LastModified(key("/z/now")); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Allocate with zero mtime: %v", got)
	}
	wantErr(t, s.Allocate(key("/z/big"), 1, time.Time{}), kv.ErrAlreadyPresent, "allocate", "/z/big")
	wantErr(t, s.Allocate(key("/z"), 1, time.Time{}), kv.ErrAlreadyPresent, "allocate", "/z")
	wantErr(t, s.Allocate(kv.Root, 1, time.Time{}), kv.ErrAlreadyPresent, "allocate", "/")
	wantErr(t, s.Allocate(key("/q"), -1, time.Time{}), kv.ErrInvalidArgument, "allocate", "/q")
	wantErr(t, s.Allocate(key("/q"), 1, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), kv.ErrInvalidArgument, "allocate", "/q")

	// Remove: idempotent, recursive, emptied parents go, the root empties.
	set(t, s, "/r/s/t/u", "x")
	set(t, s, "/r/keep", "k")
	if err := s.Remove(key("/r/s/t/u")); err != nil {
		t.Fatal(err)
	}
	if k := kind(t, s, "/r/s"); k != kv.None {
		t.Fatalf("emptied parent /r/s is %v", k)
	}
	if k := kind(t, s, "/r"); k != kv.Dictionary {
		t.Fatalf("/r is %v", k)
	}
	for _, k := range []string{"/r/s/t/u", "/nope", "/v/x"} {
		if err := s.Remove(key(k)); err != nil {
			t.Fatalf("Remove(%s) of nothing: %v", k, err)
		}
	}
	if err := s.Remove(kv.Root); err != nil {
		t.Fatal(err)
	}
	if es, err := s.List(kv.Root); err != nil || len(es) != 0 {
		t.Fatalf("after Remove(/): %v, %v", es, err)
	}
	if err := s.Remove(kv.Root); err != nil {
		t.Fatalf("Remove(/) of an empty store: %v", err)
	}
}

func TestSetFrom(t *testing.T) {
	s, dir, _ := open(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16+7)
	if err := s.SetFrom(key("/big"), bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Get(key("/big")); !bytes.Equal(b, big) {
		t.Fatal("SetFrom: bytes differ")
	}
	// Only size bytes are taken.
	r := strings.NewReader("abcdef")
	if err := s.SetFrom(key("/pre"), r, 3); err != nil || get(t, s, "/pre") != "abc" || r.Len() != 3 {
		t.Fatalf("SetFrom of a prefix: %v, %q, %d left", err, get(t, s, "/pre"), r.Len())
	}
	set(t, s, "/v", "old")
	err := s.SetFrom(key("/v"), strings.NewReader("short"), 10)
	wantErr(t, err, kv.ErrInvalidArgument, "set", "/v")
	boom := errors.New("boom")
	err = s.SetFrom(key("/v"), io.MultiReader(strings.NewReader("partial"), iotestErr{boom}), 100)
	wantErr(t, err, kv.ErrStorage, "set", "/v")
	if !errors.Is(err, boom) {
		t.Fatalf("SetFrom error %v does not wrap the reader's", err)
	}
	err = s.SetFrom(key("/new"), strings.NewReader(""), 1)
	wantErr(t, err, kv.ErrInvalidArgument, "set", "/new")
	wantErr(t, s.SetFrom(key("/v"), strings.NewReader(""), -1), kv.ErrInvalidArgument, "set", "/v")
	if got := get(t, s, "/v"); got != "old" {
		t.Fatalf("failed SetFrom changed /v to %q", got)
	}
	if k := kind(t, s, "/new"); k != kv.None {
		t.Fatalf("failed SetFrom made /new a %v", k)
	}
	if got := stagingEntries(t, dir); len(got) != 0 {
		t.Fatalf("failed SetFrom left %v in staging", got)
	}
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

func TestRename(t *testing.T) {
	type step struct {
		src, dst string
		err      error
		errKey   string
	}
	cases := []struct {
		name  string
		setup []string // "key=value"
		step
		want string // dump without mtimes: "key=value" or "key/" lines
	}{
		{"value to missing, parents made", []string{"/a/x=1", "/a/y=2"}, step{"/a/x", "/b/c/x2", nil, ""}, "/a/ /a/y=2 /b/ /b/c/ /b/c/x2=1"},
		{"value over value", []string{"/a=1", "/b=2"}, step{"/a", "/b", nil, ""}, "/b=1"},
		{"value into dictionary", []string{"/a=1", "/d/z=2"}, step{"/a", "/d", nil, ""}, "/d/ /d/a=1 /d/z=2"},
		{"value into dictionary, replacing a dictionary", []string{"/a=1", "/d/a/deep=2", "/d/k=3"}, step{"/a", "/d", nil, ""}, "/d/ /d/a=1 /d/k=3"},
		{"dictionary into dictionary, replacing a value", []string{"/s/v=1", "/d/s=2"}, step{"/s", "/d", nil, ""}, "/d/ /d/s/ /d/s/v=1"},
		{"dictionary into dictionary, replacing one", []string{"/s/v=1", "/d/s/old=2", "/d/s/o2=3"}, step{"/s", "/d", nil, ""}, "/d/ /d/s/ /d/s/v=1"},
		{"dictionary to missing", []string{"/s/v=1", "/s/w/x=2"}, step{"/s", "/t/u", nil, ""}, "/t/ /t/u/ /t/u/v=1 /t/u/w/ /t/u/w/x=2"},
		{"source parents emptied", []string{"/p/q/r=1", "/k=2"}, step{"/p/q/r", "/k", nil, ""}, "/k=1"},
		{"source parents emptied, fast path target", []string{"/p/q/r=1"}, step{"/p/q/r", "/n", nil, ""}, "/n=1"},
		{"into own ancestor's place", []string{"/d/x/x/v=1", "/d/x/other=2"}, step{"/d/x/x", "/d", nil, ""}, "/d/ /d/x/ /d/x/v=1"},
		{"value into its own parent", []string{"/d/x=1"}, step{"/d/x", "/d", nil, ""}, "/d/ /d/x=1"},
		{"same value", []string{"/a=1"}, step{"/a", "/a", nil, ""}, "/a=1"},
		{"same dictionary", []string{"/a/b=1"}, step{"/a", "/a", kv.ErrRenameSourcePrefix, "/a"}, "/a/ /a/b=1"},
		{"root", []string{"/a=1"}, step{"/", "/b", kv.ErrRenameSourcePrefix, "/"}, "/a=1"},
		{"source prefix", []string{"/a/b=1"}, step{"/a", "/a/b/c", kv.ErrRenameSourcePrefix, "/a"}, "/a/ /a/b=1"},
		{"value source prefix", []string{"/a=1"}, step{"/a", "/a/b", kv.ErrRenameSourcePrefix, "/a"}, "/a=1"},
		{"missing source", []string{"/a=1"}, step{"/m", "/b", kv.ErrNotFound, "/m"}, "/a=1"},
		{"source through a value", []string{"/a=1"}, step{"/a/b", "/c", kv.ErrNotFound, "/a/b"}, "/a=1"},
		{"dictionary over value", []string{"/s/v=1", "/d=2"}, step{"/s", "/d", kv.ErrValueExpected, "/s"}, "/d=2 /s/ /s/v=1"},
		{"destination through a value", []string{"/s=1", "/d=2"}, step{"/s", "/d/e/f", kv.ErrDictionaryExpected, "/d"}, "/d=2 /s=1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, dir, _ := open(t)
			for _, kvp := range c.setup {
				k, v, _ := strings.Cut(kvp, "=")
				set(t, s, k, v)
			}
			err := s.Rename(key(c.src), key(c.dst))
			if c.err == nil && err != nil {
				t.Fatalf("Rename(%s, %s): %v", c.src, c.dst, err)
			}
			if c.err != nil {
				wantErr(t, err, c.err, "rename", c.errKey)
				if c.err == kv.ErrRenameSourcePrefix {
					var e *kv.Error
					errors.As(err, &e)
					if e.Dest != key(c.dst) {
						t.Fatalf("Dest = %s", e.Dest)
					}
				}
			}
			if got := flat(t, s); got != c.want {
				t.Fatalf("after Rename(%s, %s):\n got %s\nwant %s", c.src, c.dst, got, c.want)
			}
			if got := stagingEntries(t, dir); len(got) != 0 {
				t.Fatalf("staging holds %v", got)
			}
		})
	}
}

// flat is dump without mtimes, on one line: "key=value" and "key/".
func flat(t *testing.T, s kv.RO) string {
	t.Helper()
	var out []string
	var walk func(k kv.Key)
	walk = func(k kv.Key) {
		es, err := s.List(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Kind == kv.Dictionary {
				out = append(out, e.Key.String()+"/")
				walk(e.Key)
			} else {
				out = append(out, e.Key.String()+"="+get(t, s, e.Key.String()))
			}
		}
	}
	walk(kv.Root)
	return strings.Join(out, " ")
}

func TestRenameKeepsMtime(t *testing.T) {
	s, _, clk := open(t)
	set(t, s, "/a", "1")
	clk.Advance(time.Hour)
	if err := s.Rename(key("/a"), key("/b/c")); err != nil {
		t.Fatal(err)
	}
	if mt, _ := s.LastModified(key("/b/c")); !mt.Equal(t0) {
		t.Fatalf("mtime after rename %v, want %v", mt, t0)
	}
}

func TestOpenSnapshot(t *testing.T) {
	s, _, _ := open(t)
	set(t, s, "/a", "first")
	r, err := s.Open(key("/a"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	set(t, s, "/a", "second, longer")
	if err := s.Remove(key("/a")); err != nil {
		t.Fatal(err)
	}
	if r.Size() != 5 {
		t.Fatalf("Size %d", r.Size())
	}
	b, err := io.ReadAll(kv.NewStreamReader(r))
	if err != nil || string(b) != "first" {
		t.Fatalf("reader after replace and remove: %q, %v", b, err)
	}
	buf := make([]byte, 10)
	if n, err := r.ReadAt(buf, 2); n != 3 || err != io.EOF || string(buf[:n]) != "rst" {
		t.Fatalf("ReadAt across the end: %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf, 5); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end: %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.ReadAt(buf[:2], 0); n != 2 || err != nil {
		t.Fatalf("reader after the store closed: %d, %v", n, err)
	}
	_, err = s.Open(key("/a"))
	wantErr(t, err, kv.ErrClosed, "get", "/a")
}

func TestClosed(t *testing.T) {
	s, dir, _ := open(t)
	set(t, s, "/a", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, stagingName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Close left the empty staging directory: %v", err)
	}
	a := key("/a")
	checks := map[string]error{}
	_, checks["exists"] = s.Exists(a)
	_, checks["get"] = s.Get(a)
	_, checks["get_partial"] = s.GetPartial(a, 0, 1)
	_, checks["size"] = s.Size(a)
	_, checks["list"] = s.List(a)
	_, checks["last_modified"] = s.LastModified(a)
	_, checks["digest"] = s.Digest(a)
	checks["set"] = s.Set(a, nil)
	checks["set_partial"] = s.SetPartial(a, 0, nil)
	checks["allocate"] = s.Allocate(key("/b"), 1, time.Time{})
	checks["remove"] = s.Remove(a)
	checks["rename"] = s.Rename(a, key("/c"))
	for op, err := range checks {
		if !errors.Is(err, kv.ErrClosed) {
			t.Errorf("%s after Close: %v", op, err)
		}
	}
	if err := s.SetFrom(a, strings.NewReader("x"), 1); !errors.Is(err, kv.ErrClosed) {
		t.Errorf("SetFrom after Close: %v", err)
	}
	if _, err := s.Free(); !errors.Is(err, kv.ErrClosed) {
		t.Errorf("Free after Close: %v", err)
	}
}

// A slow SetFrom stream holds no lock: a read completes while it is being
// staged (the stream waits for it, so a lock held would deadlock).
func TestSetFromDoesNotBlockReads(t *testing.T) {
	s, _, _ := open(t)
	set(t, s, "/a", "1")
	done := make(chan string)
	go func() {
		v, err := s.Get(key("/a"))
		if err != nil {
			done <- err.Error()
			return
		}
		done <- string(v)
	}()
	r := &gatedReader{data: []byte("streamed"), gate: done, t: t}
	if err := s.SetFrom(key("/b"), r, 8); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "/b"); got != "streamed" {
		t.Fatalf("/b = %q", got)
	}
}

type gatedReader struct {
	data []byte
	gate chan string
	t    *testing.T
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.gate != nil {
		if v := <-r.gate; v != "1" {
			r.t.Errorf("concurrent Get: %s", v)
		}
		r.gate = nil
	}
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestConcurrent(t *testing.T) {
	s, _, _ := open(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				k := key("/w" + string(rune('0'+w)) + "/k" + string(rune('a'+i%5)))
				if err := s.Set(k, bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					if err := s.Remove(k.Parent()); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				if _, err := s.Digest(kv.Root); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.List(kv.Root); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for w := range 4 {
		for i := range 5 {
			k := "/w" + string(rune('0'+w)) + "/k" + string(rune('a'+i))
			if kd := kind(t, s, k); kd == kv.Value {
				if b, _ := s.Get(key(k)); len(b) != 100 {
					t.Fatalf("%s holds %d bytes", k, len(b))
				}
			}
		}
	}
}
