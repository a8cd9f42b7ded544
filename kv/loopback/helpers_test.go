package loopback

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// open returns a store over a fresh directory, the directory, and the fake
// clock the store stamps with. The store is closed at the end of the test.
func open(t *testing.T) (*Store, string, *clock.Fake) {
	t.Helper()
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	return openAt(t, dir, clk), dir, clk
}

func openAt(t *testing.T, dir string, clk clock.PClock) *Store {
	t.Helper()
	s, err := New(dir, clk)
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func key(s string) kv.Key { return kv.MustKey(s) }

func set(t *testing.T, s kv.RW, k, v string) {
	t.Helper()
	if err := s.Set(key(k), []byte(v)); err != nil {
		t.Fatalf("Set(%s): %v", k, err)
	}
}

func get(t *testing.T, s kv.RO, k string) string {
	t.Helper()
	v, err := s.Get(key(k))
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	return string(v)
}

func kind(t *testing.T, s kv.RO, k string) kv.Kind {
	t.Helper()
	kd, err := s.Exists(key(k))
	if err != nil {
		t.Fatalf("Exists(%s): %v", k, err)
	}
	return kd
}

// wantErr checks that err is a *kv.Error with the sentinel, the operation
// and the key.
func wantErr(t *testing.T, err, sentinel error, op, k string) {
	t.Helper()
	var e *kv.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *kv.Error wrapping %v", err, err, sentinel)
	}
	if !errors.Is(err, sentinel) || e.Op != op || e.Key != key(k) {
		t.Fatalf("error %q: want %v from %s on %s, got %v from %s on %s", err, sentinel, op, k, e.Err, e.Op, e.Key)
	}
}

// dump describes everything the store exposes, walking it with List: one
// line per key, "d" for a dictionary and "v <mtime> <bytes>" for a value.
func dump(t *testing.T, s kv.RO) string {
	t.Helper()
	var lines []string
	var walk func(k kv.Key)
	walk = func(k kv.Key) {
		es, err := s.List(k)
		if err != nil {
			t.Fatalf("List(%s): %v", k, err)
		}
		for _, e := range es {
			if e.Kind == kv.Dictionary {
				lines = append(lines, e.Key.String()+" d")
				walk(e.Key)
				continue
			}
			v, err := s.Get(e.Key)
			if err != nil {
				t.Fatalf("Get(%s): %v", e.Key, err)
			}
			mt, err := s.LastModified(e.Key)
			if err != nil {
				t.Fatalf("LastModified(%s): %v", e.Key, err)
			}
			lines = append(lines, fmt.Sprintf("%s v %s %q", e.Key, mt.Format(time.RFC3339Nano), v))
		}
	}
	walk(kv.Root)
	return strings.Join(lines, "\n")
}

// writeFile makes a file by hand, with its parents.
func writeFile(t *testing.T, dir, rel, data string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o666); err != nil {
		t.Fatal(err)
	}
}

// stagingEntries lists what is in the staging directory of dir.
func stagingEntries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, stagingName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// copyTree copies the directory src to dst (which must not exist), keeping
// file contents, mtimes, symlinks and FIFOs: the state a crash would leave.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			return os.Mkdir(q, 0o777)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, q)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(q, b, 0o666); err != nil {
				return err
			}
			return os.Chtimes(q, time.Time{}, fi.ModTime())
		}
		return nil // FIFOs and the like are not part of any scenario
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// recorder collects trace events; it can snapshot the tree before each.
type recorder struct {
	t      *testing.T
	dir    string
	events []string
	snaps  []snapshot // when snapshotting
	snap   bool
	fail   func(event string) error
}

type snapshot struct {
	before string // the event about to happen
	dir    string
}

func (r *recorder) trace(ev string) error {
	if r.snap {
		d := filepath.Join(r.t.TempDir(), "snap")
		copyTree(r.t, r.dir, d)
		r.snaps = append(r.snaps, snapshot{before: ev, dir: d})
	}
	r.events = append(r.events, ev)
	if r.fail != nil {
		return r.fail(ev)
	}
	return nil
}

// indexOf returns the index of the first event matching the pattern (a
// prefix, with "*" standing for any staging counter), or -1.
func indexOf(events []string, pattern string) int {
	for i, e := range events {
		if matchEvent(e, pattern) {
			return i
		}
	}
	return -1
}

// matchEvent matches an event against a pattern in which '#' stands for a
// run of digits.
func matchEvent(e, pattern string) bool {
	for pattern != "" {
		if pattern[0] == '#' {
			n := 0
			for n < len(e) && e[n] >= '0' && e[n] <= '9' {
				n++
			}
			if n == 0 {
				return false
			}
			e, pattern = e[n:], pattern[1:]
			continue
		}
		if e == "" || e[0] != pattern[0] {
			return false
		}
		e, pattern = e[1:], pattern[1:]
	}
	return e == ""
}

// inOrder checks that events matching the patterns happen, in this order.
func inOrder(t *testing.T, events []string, patterns ...string) {
	t.Helper()
	from := 0
	for _, p := range patterns {
		i := indexOf(events[from:], p)
		if i < 0 {
			t.Fatalf("no event %q after position %d in:\n%s", p, from, strings.Join(events, "\n"))
		}
		from += i + 1
	}
}
