package loopback

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

type scenario struct {
	name  string
	setup []string // "key=value"
	op    func(s *Store) error
}

func setOp(k, v string) func(*Store) error {
	return func(s *Store) error { return s.Set(key(k), []byte(v)) }
}

func renameOp(src, dst string) func(*Store) error {
	return func(s *Store) error { return s.Rename(key(src), key(dst)) }
}

func removeOp(k string) func(*Store) error {
	return func(s *Store) error { return s.Remove(key(k)) }
}

var scenarios = []scenario{
	{"set, new parents", []string{"/a/x=1"}, setOp("/b/c/d", "new")},
	{"set over a value", []string{"/a=1"}, setOp("/a", "new")},
	{"set over a dictionary", []string{"/d/x=1", "/d/y/z=2", "/e=3"}, setOp("/d", "new")},
	{"setfrom over a dictionary", []string{"/d/x=1"}, func(s *Store) error {
		return s.SetFrom(key("/d"), strings.NewReader("streamed"), 8)
	}},
	{"allocate, new parents", []string{"/a=1"}, func(s *Store) error {
		return s.Allocate(key("/n/m"), 10, time.Date(2010, 1, 1, 0, 0, 0, 5, time.UTC))
	}},
	{"set_partial creating", []string{"/a/b=1"}, func(s *Store) error {
		return s.SetPartial(key("/a/c/d"), 3, []byte("p"))
	}},
	{"remove a value, parents emptied", []string{"/p/q/r=1", "/k=2"}, removeOp("/p/q/r")},
	{"remove a dictionary", []string{"/d/a=1", "/d/b/c=2", "/k=3"}, removeOp("/d")},
	{"remove the root", []string{"/a=1", "/b/c=2", "/d=3"}, removeOp("/")},
	{"rename a value, new parents", []string{"/a=1", "/b=2"}, renameOp("/a", "/x/y/z")},
	{"rename a value over a value", []string{"/a=1", "/b=2"}, renameOp("/a", "/b")},
	{"rename a value into a dictionary, replacing one", []string{"/a=1", "/d/a/x=2", "/d/k=3"}, renameOp("/a", "/d")},
	{"rename a dictionary, new parents, source parents emptied", []string{"/s/t/u/v=1", "/s/t/u/w/x=2", "/k=3"}, renameOp("/s/t/u", "/n/m")},
	{"rename a dictionary into one, replacing one", []string{"/s/v=1", "/d/s/old=2", "/d/k=3"}, renameOp("/s", "/d")},
	{"rename into its own ancestor's place", []string{"/d/x/x/v=1", "/d/x/other=2"}, renameOp("/d/x/x", "/d")},
}

// TestCrashAtEveryStep takes a copy of the directory before every
// file-system step of each write — the state a crash at that point leaves —
// and checks that New on it recovers either the state before the write or
// the state after it, and that once a copy recovers to "after", every later
// one does: the write commits at one point.
func TestCrashAtEveryStep(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := clock.NewFake(t0)
			s := openAt(t, dir, clk)
			for _, kvp := range sc.setup {
				k, v, _ := strings.Cut(kvp, "=")
				set(t, s, k, v)
				clk.Advance(time.Second)
			}
			before := dump(t, s)
			rec := &recorder{t: t, dir: dir, snap: true}
			s.trace = rec.trace
			if err := sc.op(s); err != nil {
				t.Fatal(err)
			}
			s.trace = nil
			after := dump(t, s)
			if before == after {
				t.Fatal("the write changed nothing")
			}
			committed := false
			for i, sn := range rec.snaps {
				r := openAt(t, sn.dir, clk)
				got := dump(t, r)
				switch {
				case got == after:
					committed = true
				case got == before && !committed:
				default:
					t.Fatalf("crash before step %d (%s) recovers to\n%s\nwant before:\n%s\nor after:\n%s\nsteps:\n%s",
						i, sn.before, got, before, after, strings.Join(rec.events, "\n"))
				}
				if left := stagingEntries(t, sn.dir); len(left) != 0 {
					t.Fatalf("crash before step %d (%s): New left %v in staging", i, sn.before, left)
				}
			}
		})
	}
}

// The fsyncs happen, and before what depends on them.
func TestDurabilityOrder(t *testing.T) {
	st := stagingName
	t.Run("set", func(t *testing.T) {
		s, dir, _ := open(t)
		set(t, s, "/a/x", "1")
		rec := &recorder{t: t, dir: dir}
		s.trace = rec.trace
		set(t, s, "/a/b", "2")
		inOrder(t, rec.events, "create "+st+"/tmp-#", "fsync "+st+"/tmp-#", "rename "+st+"/tmp-# a/b", "fsync a")
	})
	t.Run("set with new parents", func(t *testing.T) {
		s, dir, _ := open(t)
		rec := &recorder{t: t, dir: dir}
		s.trace = rec.trace
		set(t, s, "/x/y/z", "1")
		inOrder(t, rec.events, "fsync "+st+"/tmp-#", "mkdir "+st+"/chain-#", "mkdir "+st+"/chain-#/y",
			"rename "+st+"/tmp-# "+st+"/chain-#/y/z", "fsync "+st+"/chain-#/y", "fsync "+st+"/chain-#",
			"rename "+st+"/chain-# x", "fsync .")
	})
	t.Run("set_partial", func(t *testing.T) {
		s, dir, _ := open(t)
		set(t, s, "/a/b", "12345")
		rec := &recorder{t: t, dir: dir}
		s.trace = rec.trace
		if err := s.SetPartial(key("/a/b"), 1, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if len(rec.events) != 1 || rec.events[0] != "fsync a/b" {
			t.Fatalf("steps %v, want the fsync of the file only", rec.events)
		}
	})
	t.Run("allocate", func(t *testing.T) {
		s, dir, _ := open(t)
		rec := &recorder{t: t, dir: dir}
		s.trace = rec.trace
		if err := s.Allocate(key("/v"), 1<<20, time.Time{}); err != nil {
			t.Fatal(err)
		}
		inOrder(t, rec.events, "fsync "+st+"/tmp-#", "rename "+st+"/tmp-# v", "fsync .")
	})
	t.Run("remove", func(t *testing.T) {
		s, dir, _ := open(t)
		set(t, s, "/a/b/c", "1")
		set(t, s, "/a/k", "1")
		rec := &recorder{t: t, dir: dir}
		s.trace = rec.trace
		if err := s.Remove(key("/a/b/c")); err != nil {
			t.Fatal(err)
		}
		// /a/b holds only c: it goes in the same rename.
		inOrder(t, rec.events, "rename a/b "+st+"/trash-#", "fsync a", "removeall "+st+"/trash-#")
	})
	t.Run("journaled", func(t *testing.T) {
		s, dir, _ := open(t)
		set(t, s, "/p/d/x", "1")
		rec := &recorder{t: t, dir: dir}
		s.trace = rec.trace
		set(t, s, "/p/d", "2")
		inOrder(t, rec.events,
			"fsync "+st+"/tmp-#",
			"create "+st+"/intent-#", "fsync "+st+"/intent-#", "rename "+st+"/intent-# "+st+"/intent", "fsync "+st,
			"rename p/d "+st+"/trash-#", "rename "+st+"/tmp-# p/d", "fsync p",
			"remove "+st+"/intent", "fsync "+st, "removeall "+st+"/trash-#")
		// Every directory is fsynced before the record goes.
		last := indexOf(rec.events, "remove "+st+"/intent")
		if i := indexOf(rec.events[last:], "fsync p"); i >= 0 {
			t.Fatalf("fsync of p after the intent record went: %v", rec.events)
		}
	})
	t.Run("rename", func(t *testing.T) {
		s, dir, _ := open(t)
		set(t, s, "/a/b", "1")
		set(t, s, "/a/c", "1")
		rec := &recorder{t: t, dir: dir}
		s.trace = rec.trace
		if err := s.Rename(key("/a/b"), key("/e")); err != nil {
			t.Fatal(err)
		}
		inOrder(t, rec.events, "rename a/b e", "fsync .")
		if indexOf(rec.events, "fsync a") < 0 {
			t.Fatalf("the source directory is not fsynced: %v", rec.events)
		}
	})
}

var errInjected = errors.New("injected")

func TestNoSpaceChangesNothing(t *testing.T) {
	for _, step := range []string{"create " + stagingName + "/tmp-#", "fsync " + stagingName + "/tmp-#", "rename " + stagingName + "/tmp-# a"} {
		t.Run(step, func(t *testing.T) {
			s, dir, _ := open(t)
			set(t, s, "/a", "old")
			rec := &recorder{t: t, dir: dir, fail: func(ev string) error {
				if matchEvent(ev, step) {
					return &os.PathError{Op: "write", Path: ev, Err: syscall.ENOSPC}
				}
				return nil
			}}
			s.trace = rec.trace
			wantErr(t, s.Set(key("/a"), []byte("new")), kv.ErrNoSpace, "set", "/a")
			s.trace = nil
			if got := get(t, s, "/a"); got != "old" {
				t.Fatalf("/a = %q", got)
			}
			if left := stagingEntries(t, dir); len(left) != 0 {
				t.Fatalf("staging holds %v", left)
			}
			set(t, s, "/a", "after")
		})
	}
}

// A journaled write whose steps fail once is finished by the retry.
func TestJournalRetry(t *testing.T) {
	s, dir, _ := open(t)
	set(t, s, "/d/x", "1")
	failed := false
	rec := &recorder{t: t, dir: dir, fail: func(ev string) error {
		if !failed && matchEvent(ev, "rename "+stagingName+"/tmp-# d") {
			failed = true
			return errInjected
		}
		return nil
	}}
	s.trace = rec.trace
	set(t, s, "/d", "v")
	if !failed {
		t.Fatal("nothing failed")
	}
	s.trace = nil
	if got := flat(t, s); got != "/d=v" {
		t.Fatalf("store: %s", got)
	}
	set(t, s, "/e", "writable")
}

// A journaled write that cannot be finished stops writes until New, which
// finishes it.
func TestJournalBroken(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	s := openAt(t, dir, clk)
	set(t, s, "/d/x", "1")
	set(t, s, "/k", "2")
	rec := &recorder{t: t, dir: dir, fail: func(ev string) error {
		if matchEvent(ev, "rename "+stagingName+"/tmp-# d") {
			return errInjected
		}
		return nil
	}}
	s.trace = rec.trace
	err := s.Set(key("/d"), []byte("v"))
	wantErr(t, err, kv.ErrStorage, "set", "/d")
	if !errors.Is(err, errInjected) {
		t.Fatalf("error %v does not carry the cause", err)
	}
	s.trace = nil
	wantErr(t, s.Set(key("/other"), nil), kv.ErrStorage, "set", "/other")
	wantErr(t, s.Remove(key("/k")), kv.ErrStorage, "remove", "/k")
	if got := get(t, s, "/k"); got != "2" {
		t.Fatalf("reads fail too: %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, clk)
	if got := flat(t, s); got != "/d=v /k=2" {
		t.Fatalf("after New: %s", got)
	}
	set(t, s, "/other", "writable again")
}

// A failure while the intent record is written changes nothing: the
// record is dropped (durably) and the write reports the failure.
func TestIntentWriteFails(t *testing.T) {
	s, dir, _ := open(t)
	set(t, s, "/d/x", "1")
	failed := false
	rec := &recorder{t: t, dir: dir, fail: func(ev string) error {
		if !failed && matchEvent(ev, "fsync "+stagingName) {
			failed = true
			return errInjected
		}
		return nil
	}}
	s.trace = rec.trace
	wantErr(t, s.Rename(key("/d"), key("/e/f")), kv.ErrStorage, "rename", "/d")
	s.trace = nil
	if got := flat(t, s); got != "/d/ /d/x=1" {
		t.Fatalf("store: %s", got)
	}
	if left := stagingEntries(t, dir); len(left) != 0 {
		t.Fatalf("staging holds %v", left)
	}
	if err := s.Rename(key("/d"), key("/e/f")); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedIntent(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	s := openAt(t, dir, clk)
	set(t, s, "/a", "1")
	s.Close()
	writeFile(t, dir, intentPath, "garbage")
	_, err := New(dir, clk)
	wantErr(t, err, kv.ErrStorage, "open", "/")
	if !errors.Is(err, errBadIntent) {
		t.Fatalf("New: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, intentPath)); err != nil {
		t.Fatalf("the damaged record was removed: %v", err)
	}
	os.Remove(filepath.Join(dir, intentPath))
	s = openAt(t, dir, clk)
	if got := flat(t, s); got != "/a=1" {
		t.Fatalf("store: %s", got)
	}
}

func TestIntentCodec(t *testing.T) {
	st := stagingName + "/"
	good := []*intent{
		{kind: intentReplace, src: "a/b", mid: st + "mid-1", inner: st + "mid-1", top: "c", trash: st + "trash-2", prune: "a"},
		{kind: intentReplace, mid: st + "tmp-1", inner: st + "tmp-1", top: "d", trash: st + "trash-2"},
		{kind: intentReplace, src: "s", mid: st + "chain-1", inner: st + "chain-1/x/y", top: "t", trash: st + "trash-2"},
		{kind: intentClear, trash: st + "trash-1"},
	}
	for _, in := range good {
		b := in.encode()
		out, err := decodeIntent(b)
		if err != nil || *out != *in {
			t.Fatalf("round trip of %+v: %+v, %v", in, out, err)
		}
		for i := range b {
			c := append([]byte(nil), b...)
			c[i] ^= 0x20
			if _, err := decodeIntent(c); err == nil {
				t.Fatalf("flipped byte %d of %+v accepted", i, in)
			}
		}
		for n := range len(b) {
			if _, err := decodeIntent(b[:n]); err == nil {
				t.Fatalf("%d-byte prefix of %+v accepted", n, in)
			}
		}
	}
	bad := []*intent{
		{kind: intentReplace, src: "../x", mid: st + "m", inner: st + "m", top: "c", trash: st + "t"},
		{kind: intentReplace, mid: "elsewhere", inner: "elsewhere", top: "c", trash: st + "t"},
		{kind: intentReplace, mid: st + "m", inner: st + "m", top: stagingName + "/x", trash: st + "t"},
		{kind: intentReplace, mid: st + "m", inner: st + "m", top: "", trash: st + "t"},
		{kind: intentReplace, mid: st + "m", inner: st + "other/x", top: "c", trash: st + "t"},
		{kind: intentReplace, mid: st + "m", inner: st + "m", top: "/c", trash: st + "t"},
		{kind: intentReplace, mid: st + "m/n", inner: st + "m/n", top: "c", trash: st + "t"},
		{kind: intentReplace, mid: st + "intent", inner: st + "intent", top: "c", trash: st + "t"},
		{kind: intentClear, src: "a", trash: st + "t"},
		{kind: 'X', trash: st + "t"},
	}
	for _, in := range bad {
		if _, err := decodeIntent(in.encode()); err == nil {
			t.Fatalf("%+v accepted", in)
		}
	}
}

func FuzzDecodeIntent(f *testing.F) {
	f.Add((&intent{kind: intentReplace, src: "a", mid: stagingName + "/m", inner: stagingName + "/m", top: "b", trash: stagingName + "/t"}).encode())
	f.Add((&intent{kind: intentClear, trash: stagingName + "/t"}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeIntent(b)
		if err != nil {
			return
		}
		if in.validate() != nil {
			t.Fatal("decoded an invalid record")
		}
		if out, err := decodeIntent(in.encode()); err != nil || *out != *in {
			t.Fatal("re-encoding differs")
		}
	})
}
