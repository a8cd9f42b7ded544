package loopback

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// unexposed checks that k is absent from every read, as the package doc
// says of symlinks and special files.
func unexposed(t *testing.T, s *Store, k string) {
	t.Helper()
	if kd := kind(t, s, k); kd != kv.None {
		t.Errorf("Exists(%s) = %v, want none", k, kd)
	}
	_, err := s.Get(key(k))
	wantErr(t, err, kv.ErrNotFound, "get", k)
	_, err = s.GetPartial(key(k), 0, 1)
	wantErr(t, err, kv.ErrNotFound, "get_partial", k)
	_, err = s.Open(key(k))
	wantErr(t, err, kv.ErrNotFound, "get", k)
	_, err = s.Size(key(k))
	wantErr(t, err, kv.ErrNotFound, "size", k)
	_, err = s.List(key(k))
	wantErr(t, err, kv.ErrNotFound, "list", k)
	_, err = s.LastModified(key(k))
	wantErr(t, err, kv.ErrNotFound, "last_modified", k)
	_, err = s.Digest(key(k))
	wantErr(t, err, kv.ErrNotFound, "digest", k)
	parent := key(k).Parent()
	if pk, err := s.Exists(parent); err == nil && pk == kv.Dictionary {
		es, err := s.List(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Key == key(k) {
				t.Errorf("List(%s) shows %s", parent, k)
			}
		}
	}
}

// sameAs checks that s exposes exactly what a store holding only the given
// values does: same listing and same root digest.
func sameAs(t *testing.T, s *Store, values map[string]string) {
	t.Helper()
	ref, _, _ := open(t)
	for k, v := range values {
		set(t, ref, k, v)
	}
	if got, want := flat(t, s), flat(t, ref); got != want {
		t.Fatalf("store exposes\n %s\nwant\n %s", got, want)
	}
	got, err := s.Digest(kv.Root)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.Digest(kv.Root)
	if !bytes.Equal(got, want) {
		t.Fatalf("root digest %x, want %x", got, want)
	}
}

func TestSymlinksAreNotExposed(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, outside, "secret", "outside")
	dir := t.TempDir()
	writeFile(t, dir, "d/f", "inside")
	links := map[string]string{
		"abs":      filepath.Join(outside, "secret"), // absolute, outside the root
		"absdir":   outside,                          // absolute, a directory outside
		"passwd":   "/etc/passwd",                    // absolute, a system file
		"updir":    "..",
		"indir":    "d", // relative, inside the root
		"infile":   "d/f",
		"d/self":   ".",
		"d/loop":   "loop",
		"dangling": "nothing-here",
	}
	links["escape"] = relPath(t, dir, filepath.Join(outside, "secret")) // relative, leading out
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := openAt(t, dir, clock.NewFake(t0))

	for name := range links {
		unexposed(t, s, "/"+name)
	}
	for _, k := range []string{"/indir/f", "/absdir/secret", "/updir/" + filepath.Base(dir), "/d/self/f"} {
		unexposed(t, s, k)
	}
	sameAs(t, s, map[string]string{"/d/f": "inside"})
	if got, _ := s.LastModified(key("/d")); got.IsZero() {
		t.Fatal("LastModified(/d) is zero")
	}

	// Rename from a path through a symlink: not found.
	wantErr(t, s.Rename(key("/indir/f"), key("/x")), kv.ErrNotFound, "rename", "/indir/f")
	wantErr(t, s.Rename(key("/abs"), key("/x")), kv.ErrNotFound, "rename", "/abs")
	// Removing a key that is a symlink removes nothing.
	if err := s.Remove(key("/indir")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "indir")); err != nil {
		t.Fatalf("Remove of an unexposed key touched the symlink: %v", err)
	}

	// Writes replace the symlink itself, never what it points to.
	set(t, s, "/abs", "replaced")
	set(t, s, "/absdir/new", "n")
	set(t, s, "/indir/g", "g")
	if err := s.SetPartial(key("/infile"), 0, []byte("p")); err != nil {
		t.Fatal(err)
	}
	if err := s.Allocate(key("/passwd"), 4, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(key("/d/f"), key("/escape/deeper")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"abs", "absdir", "indir", "infile", "passwd", "escape"} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s is still a symlink", name)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "outside" {
		t.Fatalf("the file outside changed: %q", b)
	}
	if des, _ := os.ReadDir(outside); len(des) != 1 {
		t.Fatalf("something was written outside the root: %v", des)
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "d")); len(des) != 2 {
		t.Fatalf("the target directory of a replaced symlink changed: %v", des)
	}
	// /d now holds only the symlinks self and loop: not empty, so it
	// stays, as an empty dictionary.
	if es, err := s.List(key("/d")); err != nil || len(es) != 0 {
		t.Fatalf("List(/d) = %v, %v", es, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	sameAs(t, s, map[string]string{
		"/abs": "replaced", "/absdir/new": "n", "/indir/g": "g", "/infile": "p",
		"/passwd": "\x00\x00\x00\x00", "/escape/deeper": "inside",
	})

	// Removing a dictionary removes the symlinks inside it, not their
	// targets.
	if err := os.Symlink(outside, filepath.Join(dir, "absdir", "link")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(key("/absdir")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "outside" {
		t.Fatalf("removing a dictionary reached outside: %q", b)
	}
}

func relPath(t *testing.T, from, to string) string {
	t.Helper()
	r, err := filepath.Rel(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r, "..") {
		t.Fatalf("%s is not outside %s", to, from)
	}
	return r
}

// The root itself may be reached through a symlink: it is resolved once, at
// New.
func TestRootThroughSymlink(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, link, clock.NewFake(t0))
	set(t, s, "/a", "1")
	if b, err := os.ReadFile(filepath.Join(real, "a")); err != nil || string(b) != "1" {
		t.Fatalf("%q, %v", b, err)
	}
}

func TestSpecialFilesAreNotExposed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "d/keep", "k")
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "d", "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	names := []string{"/fifo", "/d/fifo", "/sock"}
	// Device nodes need CAP_MKNOD; where the test may not make one, the
	// FIFO and the socket stand for all special files.
	if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
		names = append(names, "/null")
	} else {
		t.Logf("no device node (mknod: %v)", err)
	}
	s := openAt(t, dir, clock.NewFake(t0))
	for _, k := range names {
		unexposed(t, s, k) // reading a FIFO must not block
	}
	sameAs(t, s, map[string]string{"/d/keep": "k"})

	// A parent holding a FIFO is not empty: removing its last value leaves
	// it, as an empty dictionary.
	if err := s.Remove(key("/d/keep")); err != nil {
		t.Fatal(err)
	}
	if kd := kind(t, s, "/d"); kd != kv.Dictionary {
		t.Fatalf("/d is %v", kd)
	}
	// Writes replace a special file; removing the root leaves them.
	set(t, s, "/fifo", "now a value")
	if err := s.Remove(kv.Root); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.List(kv.Root); len(es) != 0 {
		t.Fatalf("after Remove(/): %v", es)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sock")); err != nil {
		t.Fatalf("Remove(/) removed the socket: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "fifo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the value that replaced the FIFO is still there: %v", err)
	}
}

// Files and directories made by hand are part of the store.
func TestHandMade(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "top", "T")
	writeFile(t, dir, "a/b/c", "C")
	writeFile(t, dir, ".hidden", "dotfiles are ordinary")
	if err := os.MkdirAll(filepath.Join(dir, "empty", "nested-empty"), 0o777); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "a", "b", "c"), mt, mt); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, dir, clock.NewFake(t0))
	if got := flat(t, s); got != "/.hidden=dotfiles are ordinary /a/ /a/b/ /a/b/c=C /empty/ /empty/nested-empty/ /top=T" {
		t.Fatalf("exposed: %s", got)
	}
	if got, _ := s.LastModified(key("/a/b")); !got.Equal(mt) {
		t.Fatalf("LastModified(/a/b) = %v", got)
	}
	if got, _ := s.LastModified(key("/empty")); !got.Equal(time.Unix(0, 0)) {
		t.Fatalf("LastModified of an empty dictionary = %v", got)
	}
	if es, err := s.List(key("/empty/nested-empty")); err != nil || len(es) != 0 {
		t.Fatalf("List of an empty directory: %v, %v", es, err)
	}
	d, _ := s.Digest(key("/empty"))
	want := kv.DictDigest([]kv.DigestEntry{{Name: "nested-empty", Kind: kv.Dictionary, Digest: kv.DictDigest(nil)}})
	if !bytes.Equal(d, want) {
		t.Fatalf("Digest(/empty) = %x, want %x", d, want)
	}
	// Emptied parents go, hand-made or not.
	if err := s.Remove(key("/a/b/c")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("emptied hand-made parents stay: %v", err)
	}
	if err := s.Remove(key("/empty/nested-empty")); err != nil {
		t.Fatal(err)
	}
	if kd := kind(t, s, "/empty"); kd != kv.None {
		t.Fatalf("/empty is %v", kd)
	}
}

// Names that cannot be keys (here: the key would pass kv.MaxKeyLen) are not
// exposed.
func TestTooLongNames(t *testing.T) {
	dir := t.TempDir()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seg := strings.Repeat("s", kv.MaxSegmentLen)
	p := seg
	for range 14 {
		p += "/" + seg
	}
	// p is 15 segments, a key of 15*256 = 3840 bytes; one more segment of
	// 255 bytes makes 4096, over the limit, one of 254 fits exactly.
	if err := r.MkdirAll(p, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(p+"/"+seg, []byte("too long"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(p+"/"+seg[:254], []byte("fits"), 0o666); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, dir, clock.NewFake(t0))
	es, err := s.List(key(p))
	if err != nil || len(es) != 1 || es[0].Key.Base() != seg[:254] {
		t.Fatalf("List = %v, %v", es, err)
	}
	if got := get(t, s, p+"/"+seg[:254]); got != "fits" {
		t.Fatalf("%q", got)
	}
	want := kv.DictDigest([]kv.DigestEntry{{Name: seg[:254], Kind: kv.Value, Digest: kv.ValueDigest([]byte("fits"))}})
	if d, _ := s.Digest(key(p)); !bytes.Equal(d, want) {
		t.Fatal("digest counts the entry that is not exposed")
	}
}

func TestStagingIsReserved(t *testing.T) {
	s, dir, _ := open(t)
	set(t, s, "/a", "1")
	if _, err := os.Lstat(filepath.Join(dir, stagingName)); err != nil {
		t.Fatalf("no staging directory while open: %v", err)
	}
	es, _ := s.List(kv.Root)
	if len(es) != 1 || es[0].Key != key("/a") {
		t.Fatalf("List(/) = %v", es)
	}
	sameAs(t, s, map[string]string{"/a": "1"})
	st := "/" + stagingName
	for _, k := range []string{st, st + "/x", st + "/tmp-1"} {
		_, err := s.Exists(key(k))
		wantErr(t, err, kv.ErrInvalidKey, "exists", k)
		_, err = s.Get(key(k))
		wantErr(t, err, kv.ErrInvalidKey, "get", k)
		wantErr(t, s.Set(key(k), nil), kv.ErrInvalidKey, "set", k)
		wantErr(t, s.Remove(key(k)), kv.ErrInvalidKey, "remove", k)
		wantErr(t, s.Rename(key("/a"), key(k)), kv.ErrInvalidKey, "rename", k)
		wantErr(t, s.Rename(key(k), key("/b")), kv.ErrInvalidKey, "rename", k)
		wantErr(t, s.Allocate(key(k), 1, time.Time{}), kv.ErrInvalidKey, "allocate", k)
		wantErr(t, s.SetPartial(key(k), 0, nil), kv.ErrInvalidKey, "set_partial", k)
	}
	// Below the root the name is an ordinary key.
	set(t, s, "/a2/"+stagingName, "fine")
	if got := get(t, s, "/a2/"+stagingName); got != "fine" {
		t.Fatal(got)
	}
	if err := s.Remove(kv.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, stagingName)); err != nil {
		t.Fatalf("Remove(/) took the staging directory: %v", err)
	}
}

// Leftovers of a crash in the staging directory never appear and are
// deleted by New.
func TestStagingLeftovers(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	s := openAt(t, dir, clk)
	set(t, s, "/a", "1")
	s.Close()
	writeFile(t, dir, stagingName+"/tmp-7", "half a value")
	writeFile(t, dir, stagingName+"/trash-3/x/y", "a removed tree")
	writeFile(t, dir, stagingName+"/chain-2/b/c", "new parents")
	writeFile(t, dir, stagingName+"/intent-9", "a half-written intent record")
	if err := os.Symlink("/etc", filepath.Join(dir, stagingName, "link")); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, clk)
	if got := stagingEntries(t, dir); len(got) != 0 {
		t.Fatalf("New left %v in staging", got)
	}
	if got := flat(t, s); got != "/a=1" {
		t.Fatalf("store: %s", got)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatalf("cleaning staging followed a symlink: %v", err)
	}
}
