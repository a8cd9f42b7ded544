package kvtar

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// Invariant C (SPEC §4): archives written by GNU tar, bsdtar, Python and Go
// open as stores holding what extraction yields, and writing to them keeps
// Invariant A.

// foreignRoom returns the room to add after a foreign archive on its
// device: the journal area and room for the writes, 1 MiB; 4 MiB when a
// value is over 512 KiB (renaming the sparse sparse.bin writes its 3 MiB
// expanded). Small devices keep the test fast under -race.
func foreignRoom(t testing.TB, raw []byte) int {
	v, _ := goView(t, bytes.NewReader(padImage(raw, 512, 1024)))
	for _, f := range v.files {
		if f.size > 512<<10 {
			return 4 << 20
		}
	}
	return 1 << 20
}

// padImage returns the archive followed by zeroes: at least extra bytes
// more, to a multiple of ss.
func padImage(raw []byte, ss, extra int) []byte {
	n := (len(raw) + extra + ss - 1) / ss * ss
	img := make([]byte, n)
	copy(img, raw)
	return img
}

// writeTemp writes b to a temporary file and returns its path.
func writeTemp(t testing.TB, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "archive.tar")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

// requireNotExposed checks that Check reports every member the view does
// not expose (symlinks, dangling hard links, unsafe names), as non-fatal.
func requireNotExposed(t testing.TB, probs []Problem, other map[string]string) {
	t.Helper()
	for name, what := range other {
		i := slices.IndexFunc(probs, func(p Problem) bool { return p.Name == name })
		if i < 0 {
			t.Errorf("Check does not report %q (%s); problems: %v", name, what, probs)
			continue
		}
		if probs[i].Fatal {
			t.Errorf("Check reports %s as fatal", probs[i])
		}
	}
}

// sameImage fails unless the device holds img.
func sameImage(t testing.TB, dev *mem.Device, img []byte, what string) {
	t.Helper()
	sameBytes(t, dev.Bytes(), img, what)
}

// sameArchive is sameImage for the archive area (below limit): a writable
// open that repairs leaves a checkpoint in the journal area.
func sameArchive(t testing.TB, dev *mem.Device, img []byte, limit int64, what string) {
	t.Helper()
	sameBytes(t, dev.Bytes()[:limit], img[:limit], what)
}

func sameBytes(t testing.TB, got, img []byte, what string) {
	t.Helper()
	if !bytes.Equal(got, img) {
		i := 0
		for i < len(got) && got[i] == img[i] {
			i++
		}
		t.Fatalf("%s: the device changed (first difference at byte %d)", what, i)
	}
}

// A model is the expected contents of a store under writes.
type model struct{ v view }

func (m *model) set(k string, data []byte) {
	m.remove(k)
	m.v.files[k] = bytesView(data)
}

func (m *model) remove(k string) {
	for p := range m.v.files {
		if p == k || strings.HasPrefix(p, k+"/") {
			delete(m.v.files, p)
		}
	}
	for p := range m.v.dirs {
		if p == k || strings.HasPrefix(p, k+"/") {
			delete(m.v.dirs, p)
		}
	}
}

// rename moves src (and what is below it) to dst, which does not exist.
func (m *model) rename(src, dst string) {
	for p, f := range m.v.files {
		if p == src || strings.HasPrefix(p, src+"/") {
			delete(m.v.files, p)
			m.v.files[dst+p[len(src):]] = f
		}
	}
	for p := range m.v.dirs {
		if p == src || strings.HasPrefix(p, src+"/") {
			delete(m.v.dirs, p)
			m.v.dirs[dst+p[len(src):]] = true
		}
	}
}

// A foreignWrite is a write to a foreign archive, applied to the store and
// to the model.
type foreignWrite struct {
	name  string
	do    func(s *Store) error
	model func(m *model)
}

// foreignWrites picks targets in the freshly opened store s: a new key, an
// overwrite, a partial write in place, a removal (the largest value: the
// 9 GiB sparse huge.bin where there is one), a value renamed (a sparse one
// where there is one) and a directory renamed. Values sharing data with
// hard links are left alone (see TestForeignHardLinkTargetWrites).
func foreignWrites(s *Store) []foreignWrite {
	type cand struct {
		k    kv.Key
		m    *member
		size int64
	}
	var plain []cand
	var dirs []kv.Key
	each(&s.ix.root, kv.Root, func(n *node, k kv.Key) {
		switch {
		case n.isValue():
			if n.val.link == nil && n.val.linked == 0 {
				plain = append(plain, cand{k, n.val, n.val.size})
			}
		case n.dir != nil && !k.IsRoot():
			dirs = append(dirs, k)
		}
	})
	used := map[kv.Key]bool{}
	pick := func(ok func(c cand) bool) (cand, bool) {
		for _, c := range plain {
			if !used[c.k] && ok(c) {
				used[c.k] = true
				return c, true
			}
		}
		return cand{}, false
	}
	small := func(c cand) bool { return c.size <= 8<<20 }
	newKey := kv.MustKey("/tarstore-new/value")
	newData := pattern(21, 3000)
	ws := []foreignWrite{{
		name:  "set a new key",
		do:    func(s *Store) error { return s.Set(newKey, newData) },
		model: func(m *model) { m.set(newKey.String(), newData) },
	}}
	// The removal first, so that the largest value is not picked for a
	// copy.
	var largest cand
	for _, c := range plain {
		if c.size >= largest.size {
			largest = c
		}
	}
	if largest.m != nil {
		used[largest.k] = true
	}
	if c, ok := pick(small); ok {
		data := pattern(22, 1500)
		ws = append(ws, foreignWrite{
			name:  "overwrite " + c.k.String(),
			do:    func(s *Store) error { return s.Set(c.k, data) },
			model: func(m *model) { m.set(c.k.String(), data) },
		})
	}
	if c, ok := pick(func(c cand) bool { return c.size > 0 && c.size <= smallValue && c.m.sparse == nil }); ok {
		patch := []byte("patched")
		ws = append(ws, foreignWrite{
			name: "set_partial in place " + c.k.String(),
			do:   func(s *Store) error { return s.SetPartial(c.k, 0, patch) },
			model: func(m *model) {
				data := bytes.Clone(m.v.files[c.k.String()].data)
				if len(data) < len(patch) {
					data = append(data, make([]byte, len(patch)-len(data))...)
				}
				copy(data, patch)
				m.v.files[c.k.String()] = bytesView(data)
			},
		})
	}
	if largest.m != nil {
		c := largest
		ws = append(ws, foreignWrite{
			name:  "remove " + c.k.String(),
			do:    func(s *Store) error { return s.Remove(c.k) },
			model: func(m *model) { m.remove(c.k.String()) },
		})
	}
	c, ok := pick(func(c cand) bool { return small(c) && c.m.sparse != nil })
	if !ok {
		c, ok = pick(small)
	}
	if ok {
		dst := kv.MustKey("/renamed-value")
		ws = append(ws, foreignWrite{
			name:  "rename " + c.k.String(),
			do:    func(s *Store) error { return s.Rename(c.k, dst) },
			model: func(m *model) { m.rename(c.k.String(), dst.String()) },
		})
	}
	if len(dirs) > 0 {
		src, dst := dirs[0], kv.MustKey("/renamed-dir/inner")
		ws = append(ws, foreignWrite{
			name:  "rename dictionary " + src.String(),
			do:    func(s *Store) error { return s.Rename(src, dst) },
			model: func(m *model) { m.rename(src.String(), dst.String()) },
		})
	}
	return ws
}

// How often foreignRoundTrip checks Invariant A while it writes.
type checkEvery int

const (
	checkAtEnd     checkEvery = iota // everything after the last write
	checkGoEach                      // Check and archive/tar after each write, the tools at the end
	checkToolsEach                   // everything after each write
)

// foreignRoundTrip opens the archive raw on a memory device of ss-byte
// sectors with room after it, read-only and writable, compares the store
// with what archive/tar and GNU tar's extraction of the archive yield,
// then writes to it and checks Invariant A (Check, archive/tar, and GNU
// tar, bsdtar, Python and GNU tar's extraction) as every says, and always
// after the last write. base is what the readers said about the archive
// itself.
func foreignRoundTrip(t *testing.T, raw []byte, ss int, base baseline, every checkEvery) {
	img := padImage(raw, ss, foreignRoom(t, raw))
	want, _ := goView(t, bytes.NewReader(img))
	clk := clock.NewFake(time.Unix(1.7e9, 0))

	// Read-only: the same contents, nothing written.
	dev, err := mem.FromBytes(ss, img)
	require.NoError(t, err)
	s, err := New(clk, dev.ReadOnlyView())
	require.NoError(t, err, "read-only open")
	requireSameView(t, "read-only store vs archive/tar", storeView(t, s), want)
	probs, err := s.Check()
	require.NoError(t, err)
	for _, p := range probs {
		if p.Fatal {
			t.Errorf("read-only Check: %s", p)
		}
	}
	requireNotExposed(t, probs, want.other)
	repairs := slices.ContainsFunc(probs, func(p Problem) bool { return strings.Contains(p.What, "repaired by a writable open") })
	require.NoError(t, s.Close())
	sameImage(t, dev, img, "read-only open")

	// Writable: the same contents after recovery, which writes nothing
	// unless there is something to repair.
	s, err = New(clk, dev)
	require.NoError(t, err, "open")
	checkWhenDone(t, s, dev)
	if !repairs {
		sameImage(t, dev, img, "writable open with nothing to repair")
	}
	requireSameView(t, "store vs archive/tar", storeView(t, s), want)
	checkStoreInvariants(t, s, dev)
	probs, err = s.Check()
	require.NoError(t, err)
	requireNotExposed(t, probs, want.other)

	m := &model{v: want}
	writes := foreignWrites(s)
	if every == checkToolsEach {
		// Emptying the store drops the members it does not expose
		// (symlinks...) too; a value set after that is the only member.
		after := pattern(23, 700)
		writes = append(writes, foreignWrite{
			name:  "remove root",
			do:    func(s *Store) error { return s.Remove(kv.Root) },
			model: func(m *model) { m.v = newView() },
		}, foreignWrite{
			name:  "set after emptying",
			do:    func(s *Store) error { return s.Set(kv.MustKey("/after/emptying"), after) },
			model: func(m *model) { m.set("/after/emptying", after) },
		})
	}
	for i, w := range writes {
		clk.Advance(time.Second)
		require.NoError(t, w.do(s), "%s", w.name)
		w.model(m)
		last := i == len(writes)-1
		if every == checkAtEnd && !last {
			continue
		}
		got, members := checkStoreInvariants(t, s, dev)
		requireSameView(t, "after "+w.name, got, m.v)
		if every == checkToolsEach || last {
			checkReaders(t, imageFile(t, dev, archiveEnd(s)), members, got, base)
		}
		if t.Failed() {
			t.Fatalf("after %q", w.name)
		}
	}
	require.NoError(t, s.Close())
	s, err = New(clk, dev.Reopen())
	require.NoError(t, err, "reopen")
	requireSameView(t, "after reopen", storeView(t, s), m.v)
	checkStoreInvariants(t, s, dev)
	require.NoError(t, s.Close())
}

// foreignBaseline runs the readers on the archive raw (padded as the
// store will see it) and checks that GNU tar's extraction and the
// archive/tar emulation of it agree, so that either can be the oracle.
func foreignBaseline(t *testing.T, raw []byte) baseline {
	t.Helper()
	img := padImage(raw, 512, foreignRoom(t, raw))
	want, members := goView(t, bytes.NewReader(img))
	path := writeTemp(t, img)
	needTools(t)
	dir := t.TempDir()
	runs := toolRuns(path, dir, true)
	for name, r := range runs {
		if name != "tar -x" && r.err == nil {
			require.Equal(t, members, strings.Count(r.stdout, "\n"), "%s lists", r.cmd)
		}
	}
	requireSameView(t, "GNU tar's extraction vs archive/tar", extractedView(t, dir), want)
	return newBaseline(runs)
}

// Every golden archive is opened and written at 512-byte sectors, with
// Check and archive/tar after each write and all the readers after the
// last; toolsEachWrite are those checked with all the readers after every
// write. sectors4096 are those also opened and written at 4096-byte
// sectors (one per writer, and the sparse formats; checked after the last
// write). The choice keeps the test fast.
var (
	toolsEachWrite = map[string]bool{
		"gnutar-gnu.tar":              true,
		"bsdtar-pax.tar":              true,
		"gnutar-posix-sparse-1.0.tar": true,
	}
	sectors4096 = map[string]bool{
		"gnutar-gnu.tar":              true,
		"gnutar-oldgnu-sparse.tar":    true,
		"gnutar-posix-sparse-1.0.tar": true,
		"bsdtar-pax.tar":              true,
		"bsdtar-pax-sparse.tar":       true,
		"python-pax.tar":              true,
		"go-pax.tar":                  true,
	}
)

// TestForeignArchives opens every golden archive of tarfmt/testdata as a
// store (SPEC §4 Invariant C) and writes to it. The go-huge-* archives are
// a 9 GiB member's header without its data: on a device with 1 MiB of
// room they are truncated (kv.ErrCorrupt with the offset); with a device
// big enough they open (TestForeignHugeHeaderOnly). Each archive padded
// only to a sector multiple is smaller than MinDeviceSize: New opens it
// read-only and writes nothing.
func TestForeignArchives(t *testing.T) {
	files, err := filepath.Glob("tarfmt/testdata/*.tar")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			t.Run("exact", func(t *testing.T) {
				// Smaller than a store: read-only, as GNU tar reads it;
				// nothing is written.
				img := padImage(raw, 512, 0)
				require.Less(t, len(img), MinDeviceSize)
				dev, err := mem.FromBytes(512, img)
				require.NoError(t, err)
				s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), dev)
				if strings.HasPrefix(name, "go-huge-") {
					// No end-of-test check: a truncated archive, no store.
					requireCorrupt(t, err, -1) // a header whose data is not there
					sameImage(t, dev, img, "New on a truncated archive")
					return
				}
				require.NoError(t, err)
				checkWhenDone(t, s, dev)
				want, _ := goView(t, bytes.NewReader(padImage(raw, 512, 1<<20)))
				requireSameView(t, "a small archive, read-only", storeView(t, s), want)
				err = s.Set(kv.MustKey("/new"), []byte("x"))
				require.ErrorIs(t, err, kv.ErrReadOnly)
				require.ErrorContains(t, err, "less than the smallest store that takes writes")
				require.NoError(t, s.Close())
				sameImage(t, dev, img, "a read-only open of a small archive")
			})
			if strings.HasPrefix(name, "go-huge-") {
				for _, ss := range []int{512, 4096} {
					img := padImage(raw, ss, 1<<20)
					dev, err := mem.FromBytes(ss, img)
					require.NoError(t, err)
					_, err = New(clock.NewFake(time.Unix(1.7e9, 0)), dev) // truncated: no store, no end-of-test check
					requireCorrupt(t, err, -1)
					sameImage(t, dev, img, "New on a truncated archive")
				}
				return
			}
			base := foreignBaseline(t, raw)
			every := checkGoEach
			if toolsEachWrite[name] {
				every = checkToolsEach
			}
			t.Run("512", func(t *testing.T) { foreignRoundTrip(t, raw, 512, base, every) })
			if sectors4096[name] {
				t.Run("4096", func(t *testing.T) { foreignRoundTrip(t, raw, 4096, base, checkAtEnd) })
			}
		})
	}
}

// requireCorrupt checks that err is a *kv.Error of kind kv.ErrCorrupt whose
// message names an offset (off, unless off < 0).
func requireCorrupt(t testing.TB, err error, off int64) {
	t.Helper()
	require.Error(t, err)
	var ke *kv.Error
	require.True(t, errors.As(err, &ke), "error %v (%T) is not a *kv.Error", err, err)
	require.ErrorIs(t, err, kv.ErrCorrupt, "%v", err)
	if off >= 0 {
		require.Contains(t, err.Error(), fmt.Sprintf("offset %d", off), "%v", err)
	} else {
		require.Contains(t, err.Error(), "offset ", "%v", err)
	}
}

// gnuTarTree makes a tree with everything GNU tar has a special encoding
// for: long names (over 100 and over 256 bytes), an empty directory,
// non-ASCII names, a symlink, a hard link.
func gnuTarTree(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "tree")
	long := filepath.Join(dir, "long", strings.Repeat("p", 120), strings.Repeat("q", 130))
	for _, d := range []string{long, filepath.Join(dir, "emptydir"), filepath.Join(dir, "sub", "dir")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	files := map[string][]byte{
		filepath.Join(long, "file.txt"):         []byte("very long name\n"),
		filepath.Join(dir, "a.txt"):             []byte("a\n"),
		filepath.Join(dir, "héllo wörld.txt"):   []byte("non-ASCII\n"),
		filepath.Join(dir, "sub", "dir", "big"): pattern(30, 10000),
		filepath.Join(dir, "sub", "empty"):      nil,
	}
	for p, data := range files {
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	require.NoError(t, os.Symlink("a.txt", filepath.Join(dir, "symlink")))
	require.NoError(t, os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "hardlink")))
	return dir
}

// TestForeignGNUTarCreated opens archives GNU tar makes in the test, in
// the gnu and posix formats, and writes to them.
func TestForeignGNUTarCreated(t *testing.T) {
	needTools(t)
	tree := gnuTarTree(t)
	for _, format := range []string{"gnu", "posix", "ustar"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "a.tar")
			args := []string{"--format=" + format, "--sort=name", "-cf", path, "-C", tree, "."}
			if format == "ustar" {
				// ustar cannot hold the 250-byte directory name: leave
				// the long tree out.
				args = append(args[:len(args)-1], "a.txt", "emptydir", "sub", "symlink", "hardlink", "héllo wörld.txt")
			}
			if r := runTool("tar", args...); r.err != nil || r.stderr != "" {
				t.Fatalf("%s", r)
			}
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			base := foreignBaseline(t, raw)
			foreignRoundTrip(t, raw, 512, base, checkToolsEach)
			foreignRoundTrip(t, raw, 4096, base, checkAtEnd)
		})
	}
}

// TestForeignHugeHeaderOnly opens the go-huge-* archives (the header of a
// 9 GiB member, without its data) on a sparse device big enough for the
// member: its data reads as zeroes. It writes a key after it and lists the
// archive with every reader (extracting 9 GiB is left out).
func TestForeignHugeHeaderOnly(t *testing.T) {
	const huge = 9 << 30
	for _, name := range []string{"go-huge-gnu.tar", "go-huge-pax.tar"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("tarfmt/testdata", name))
			require.NoError(t, err)
			dev, err := mem.New(512, (huge+16<<20)/512)
			require.NoError(t, err)
			require.NoError(t, dev.Write(0, raw))
			s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), dev)
			require.NoError(t, err)
			checkWhenDone(t, s, dev)
			k := kv.MustKey("/huge.bin")
			size, err := s.Size(k)
			require.NoError(t, err)
			require.EqualValues(t, huge, size)
			for _, off := range windowOffsets(size) {
				p, err := s.GetPartial(k, off, windowLen)
				require.NoError(t, err)
				require.Equal(t, make([]byte, min(windowLen, size-off)), p, "window at %d", off)
			}
			checkStoreInvariants(t, s, dev)
			require.NoError(t, s.Set(kv.MustKey("/after"), []byte("after a huge member\n")))
			want, members := checkStoreInvariants(t, s, dev)
			m := s.ix.lookup(k).val
			data := extent{m.dataOff, m.dataSize}
			checkReaders(t, imageFile(t, dev, archiveEnd(s), data), members, want, baseline{listOnly: true})
			require.NoError(t, s.Close())
		})
	}
}

// gnuTarExact makes, with GNU tar (blocking factor 1: no padding to a
// 10 KiB record), an archive of exactly size bytes: a small file, an empty
// directory and a file big.bin whose size fills the rest. fill writes the
// contents of big.bin given its size and its data offset in the archive.
func gnuTarExact(t *testing.T, size int64, fill func(data []byte, dataOff int64)) []byte {
	t.Helper()
	needTools(t)
	dir := filepath.Join(t.TempDir(), "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "small.txt"), []byte("small\n"), 0o644))
	path := filepath.Join(t.TempDir(), "exact.tar")
	mk := func(data []byte) []byte {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "big.bin"), data, 0o644))
		r := runTool("tar", "--format=gnu", "--sort=name", "-b", "1", "-cf", path, "-C", dir, "big.bin", "emptydir", "small.txt")
		require.NoError(t, r.err, "%s", r)
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		return raw
	}
	// big.bin comes first: its data starts after one header block.
	empty := mk(nil)
	n := size - int64(len(empty)) - 7 // padded to the next block: the archive is size bytes
	require.Positive(t, n)
	data := pattern(40, int(n))
	fill(data, 512)
	raw := mk(data)
	require.EqualValues(t, size, len(raw))
	return raw
}

// TestForeignFillsDevice opens an archive that fills its device exactly,
// so that its last member and end of archive lie in what would be the
// journal area (also one without the end-of-archive blocks, the device
// ending right after its last member): it opens (read-only and writable),
// reads work, every write fails with kv.ErrNoSpace, and nothing is ever
// written.
func TestForeignFillsDevice(t *testing.T) {
	const size = 128 << 10
	withEnd := gnuTarExact(t, size, func([]byte, int64) {})
	noEnd := gnuTarExact(t, size+1024, func([]byte, int64) {})[:size]
	for _, tc := range []struct {
		name string
		ss   int
		raw  []byte
	}{{"512", 512, withEnd}, {"4096", 4096, withEnd}, {"512 without end of archive", 512, noEnd}, {"4096 without end of archive", 4096, noEnd}} {
		t.Run(tc.name, func(t *testing.T) {
			ss, raw := tc.ss, tc.raw
			want, _ := goView(t, bytes.NewReader(raw))
			for _, ro := range []bool{true, false} {
				dev, err := mem.FromBytes(ss, raw)
				require.NoError(t, err)
				open := dev
				if ro {
					open = dev.ReadOnlyView()
				}
				s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), open)
				require.NoError(t, err)
				checkWhenDone(t, s, dev)
				requireSameView(t, "store", storeView(t, s), want)
				probs, err := s.Check()
				require.NoError(t, err)
				for _, p := range probs {
					require.False(t, p.Fatal, "Check: %s", p)
				}
				wantErr := kv.ErrNoSpace
				if ro {
					wantErr = kv.ErrReadOnly
				}
				k := kv.MustKey("/small.txt")
				for name, err := range map[string]error{
					"set":          s.Set(kv.MustKey("/new"), []byte("x")),
					"set existing": s.Set(k, []byte("y")),
					"set_partial":  s.SetPartial(k, 0, []byte("z")),
					"allocate":     s.Allocate(kv.MustKey("/alloc"), 1, time.Time{}),
					"remove":       s.Remove(k),
					"rename":       s.Rename(k, kv.MustKey("/moved")),
				} {
					require.ErrorIs(t, err, wantErr, "%s", name)
				}
				requireSameView(t, "store after failed writes", storeView(t, s), want)
				require.NoError(t, s.Close())
				sameImage(t, dev, raw, "open, failed writes and close")
			}
		})
	}
}

// TestForeignJournalMagicInData: an archive that fills its device and
// whose data, where the journal area would start, begins with the journal
// magic. The journal area is archive data here: opening must not touch it.
func TestForeignJournalMagicInData(t *testing.T) {
	const size = 128 << 10
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			raw := gnuTarExact(t, size, func(data []byte, dataOff int64) {
				at := size - journalSize(size, int64(ss)) - dataOff
				copy(data[at:], journalMagic)
				clear(data[at+int64(len(journalMagic)) : at+64])
			})
			want, _ := goView(t, bytes.NewReader(raw))
			dev, err := mem.FromBytes(ss, raw)
			require.NoError(t, err)
			s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), dev)
			require.NoError(t, err)
			checkWhenDone(t, s, dev)
			requireSameView(t, "store", storeView(t, s), want)
			require.NoError(t, s.Close())
			sameImage(t, dev, raw, "open and close")
		})
	}
}

// goTar builds an archive with archive/tar: members in order, each a
// header and its data.
type goMember struct {
	hdr  tar.Header
	data []byte
}

func goTar(t testing.TB, ms ...goMember) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		h := m.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.data))
		}
		if h.Mode == 0 && h.Typeflag != tar.TypeXGlobalHeader {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = time.Unix(1e9, 0)
		}
		require.NoError(t, tw.WriteHeader(&h))
		_, err := tw.Write(m.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return b.Bytes()
}

func regMember(name string, data []byte) goMember {
	return goMember{hdr: tar.Header{Name: name, Format: tar.FormatUSTAR}, data: data}
}

func dirMember(name string) goMember {
	return goMember{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatUSTAR}}
}

func linkMember(name, target string) goMember {
	return goMember{hdr: tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeLink, Format: tar.FormatUSTAR}}
}

// TestForeignNames: a leading "./" or "/" is stripped, "." segments are
// dropped, and ".." names are not exposed (reported by Check).
func TestForeignNames(t *testing.T) {
	raw := goTar(t,
		regMember("./dot", []byte("dot\n")),
		regMember("/abs/olute", []byte("absolute\n")),
		regMember("a/./b", []byte("a/b\n")),
		dirMember("./d/"),
		regMember("../evil", []byte("evil\n")),
		regMember("x/../../evil2", []byte("evil\n")),
	)
	for _, ro := range []bool{true, false} {
		img := padImage(raw, 512, 1<<20)
		dev, err := mem.FromBytes(512, img)
		require.NoError(t, err)
		open := dev
		if ro {
			open = dev.ReadOnlyView()
		}
		s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), open)
		require.NoError(t, err)
		checkWhenDone(t, s, dev)
		want := newView()
		want.files["/dot"] = bytesView([]byte("dot\n"))
		want.files["/abs/olute"] = bytesView([]byte("absolute\n"))
		want.files["/a/b"] = bytesView([]byte("a/b\n"))
		want.dirs["/d"] = true
		requireSameView(t, "store", storeView(t, s), want)
		probs, err := s.Check()
		require.NoError(t, err)
		requireNotExposed(t, probs, map[string]string{"../evil": "unsafe", "x/../../evil2": "unsafe"})
		require.NoError(t, s.Close())
		sameImage(t, dev, img, "open")
	}
}

// hardLinkArchive is gnutar-ustar.tar: hello.txt, then hardlink, a hard
// link to hello.txt.
func hardLinkArchive(t testing.TB) []byte {
	raw, err := os.ReadFile("tarfmt/testdata/gnutar-ustar.tar")
	require.NoError(t, err)
	return raw
}

// TestForeignHardLinkTargetWrites writes to the target of a hard link of a
// foreign archive: the link keeps the target's old bytes, as tar
// extraction made it (two names for one file; the store's keys are
// independent values), Check stays clean and GNU tar extracts the store.
// (It failed before links.go materialized links whose target goes: the
// link's value was read from the hole its target's data had become.)
func TestForeignHardLinkTargetWrites(t *testing.T) {
	hello := []byte("hello, world\n")
	for _, tc := range []struct {
		name  string
		do    func(s *Store) error
		model func(m *model)
	}{
		{"remove target", func(s *Store) error { return s.Remove(kv.MustKey("/hello.txt")) },
			func(m *model) { m.remove("/hello.txt") }},
		{"overwrite target", func(s *Store) error { return s.Set(kv.MustKey("/hello.txt"), []byte("new\n")) },
			func(m *model) { m.set("/hello.txt", []byte("new\n")) }},
		{"rename target", func(s *Store) error { return s.Rename(kv.MustKey("/hello.txt"), kv.MustKey("/moved.txt")) },
			func(m *model) { m.rename("/hello.txt", "/moved.txt") }},
		{"set_partial target", func(s *Store) error { return s.SetPartial(kv.MustKey("/hello.txt"), 0, []byte("J")) },
			func(m *model) { m.set("/hello.txt", append([]byte("J"), hello[1:]...)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := hardLinkArchive(t)
			img := padImage(raw, 512, 1<<20)
			want, _ := goView(t, bytes.NewReader(img))
			require.Equal(t, hello, want.files["/hardlink"].data)
			dev, err := mem.FromBytes(512, img)
			require.NoError(t, err)
			s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), dev)
			require.NoError(t, err)
			checkWhenDone(t, s, dev)
			m := &model{v: want}
			require.NoError(t, tc.do(s))
			tc.model(m)
			got := storeView(t, s)
			requireSameView(t, "store", got, m.v)
			_, members := checkStoreInvariants(t, s, dev)
			checkReaders(t, imageFile(t, dev, archiveEnd(s)), members, got, baseline{foreign: true})
			require.NoError(t, s.Close())
		})
	}
}

// TestForeignHardLinkToReplacedTarget: a hard link to a file that a later
// member replaces keeps the first file's bytes (tar extraction unlinks the
// old name and creates a new file); the store keeps the first member's
// data for the link, which is not a stray duplicate for Check.
func TestForeignHardLinkToReplacedTarget(t *testing.T) {
	raw := goTar(t,
		regMember("a", []byte("first\n")),
		linkMember("b", "a"),
		regMember("a", []byte("second\n")),
	)
	img := padImage(raw, 512, 1<<20)
	want, _ := goView(t, bytes.NewReader(img))
	require.Equal(t, []byte("first\n"), want.files["/b"].data)
	require.Equal(t, []byte("second\n"), want.files["/a"].data)
	base := foreignBaseline(t, raw)
	for _, ro := range []bool{true, false} {
		dev, err := mem.FromBytes(512, img)
		require.NoError(t, err)
		open := dev
		if ro {
			open = dev.ReadOnlyView()
		}
		s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), open)
		require.NoError(t, err)
		checkWhenDone(t, s, dev)
		requireSameView(t, "store", storeView(t, s), want)
		_, members := checkStoreInvariants(t, s, dev)
		if !ro {
			checkReaders(t, imageFile(t, dev, archiveEnd(s)), members, want, base)
		}
		require.NoError(t, s.Close())
	}
}

// TestForeignRemoveLastLinkToReplacedTarget removes the only link to a
// replaced (shadowed) member.
// The shadowed member was kept at open only for the link; it goes with
// the link, leaving no stray duplicate.
func TestForeignRemoveLastLinkToReplacedTarget(t *testing.T) {
	raw := goTar(t,
		regMember("a", []byte("first\n")),
		linkMember("b", "a"),
		regMember("a", []byte("second\n")),
	)
	img := padImage(raw, 512, 1<<20)
	dev, err := mem.FromBytes(512, img)
	require.NoError(t, err)
	s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	require.NoError(t, s.Remove(kv.MustKey("/b")))
	checkStoreInvariants(t, s, dev)
	require.NoError(t, s.Close())
}

// TestForeignGlobalHeaderAppliesToNewMembers: a PAX global header with
// records (not a hole) applies to every member after it, for GNU tar,
// Python and the store's decoder (Go's archive/tar returns it as an entry
// and applies nothing). New members would inherit its records (an mtime,
// a uname, even a path or size), so the store reads such an archive but
// refuses to write to it (read_only, saying why) and writes nothing.
func TestForeignGlobalHeaderAppliesToNewMembers(t *testing.T) {
	raw := goTar(t,
		regMember("before", []byte("before\n")),
		goMember{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global",
			PAXRecords: map[string]string{"comment": "kept", "uname": "global-user", "mtime": "1234567890.5"}}},
		regMember("after", []byte("after\n")),
	)
	img := padImage(raw, 512, 1<<20)
	dev, err := mem.FromBytes(512, img)
	require.NoError(t, err)
	s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	v, err := s.Get(kv.MustKey("/after"))
	require.NoError(t, err)
	require.Equal(t, []byte("after\n"), v)
	err = s.Set(kv.MustKey("/new"), []byte("x"))
	require.ErrorIs(t, err, kv.ErrReadOnly, "members written after the global header would inherit its records")
	require.Contains(t, err.Error(), "PAX global headers")
	require.NoError(t, s.Close())
	require.Equal(t, img, dev.Bytes(), "nothing written")
}

// TestForeignGarbageAfterEnd: bytes after the end of archive (a reused
// disk, a foreign tool's padding) are never parsed, also where the
// journal area lies; writes keep Invariant A.
func TestForeignGarbageAfterEnd(t *testing.T) {
	raw, err := os.ReadFile("tarfmt/testdata/gnutar-posix.tar")
	require.NoError(t, err)
	end := len(raw)
	for end >= 512 && bytes.Equal(raw[end-512:end], make([]byte, 512)) {
		end -= 512
	}
	img := padImage(raw[:end+1024], 4096, 1<<20) // the archive, two zero blocks, room
	for i := end + 1024; i < len(img); i++ {
		img[i] = byte(i*7 + i>>9) // garbage, never the journal magic
	}
	base := foreignBaseline(t, img)
	for _, ss := range []int{512, 4096} {
		foreignRoundTrip(t, img, ss, base, checkAtEnd)
	}
}
