package kvtar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// Reader limits (SPEC §4, doc §2): real tar readers refuse long chains of
// special headers. libarchive refuses a 32nd special header (g, x, L, K)
// before a member, and since 3.7.5 a second g header before an entry
// ("Redundant 'g' header", fatal since 3.8.0); 3.8.9 refuses an empty g
// header. Python's tarfile recurses once per special header and fails
// when a g or x header stands right before the end-of-archive blocks; Go
// caps a PAX header at 1 MiB. Debian 12 ships libarchive 3.6.2, so the
// stricter rules are checked here by a reader of our own, independent of
// the store's decoder (tarfmt), on the images the removals below leave:
// every free region between two members must be ONE non-empty g header.

// Special header types the limits count (libarchive's
// header_recursion_depth counts each of them).
const specialTypes = "gxLK"

// maxSpecials is the longest chain of special headers before a member
// that libarchive reads: bsdtar 3.6.2 lists a member after 31 g (or L)
// headers and fails after 32 ("Too many special headers"; SPEC §4 says a
// 33rd, which is one off).
const maxSpecials = 31

// readerLimitsMax bounds the problems readerLimitProblems reports.
const readerLimitsMax = 20

// readerLimitProblems walks the headers of the tar archive in image (size
// bytes) up to its end-of-archive marker and returns what a strict reader
// refuses: more than one g header before a member, an empty g header, a g
// or x header over 1 MiB, more than 31 special headers before a member, a
// special header right before the end of archive, an x header not directly
// before its member. It parses the headers itself (checksum, typeflag,
// octal or base-256 size, the size record of an x header, old GNU sparse
// extension blocks). An error means the walk could not go on (a bad
// checksum, no end-of-archive marker): the image is not a tar archive.
func readerLimitProblems(image io.ReaderAt, size int64) ([]string, error) {
	var probs []string
	report := func(format string, args ...any) {
		if len(probs) < readerLimitsMax {
			probs = append(probs, fmt.Sprintf(format, args...))
		}
	}
	block := make([]byte, rawBlock)
	// Reads go through a window of 8 KiB: the headers of small members
	// are read together.
	win := make([]byte, 8<<10)
	winOff, winLen := int64(0), 0
	read := func(p []byte, off int64) error {
		if off < 0 || off+int64(len(p)) > size {
			return fmt.Errorf("the image (%d bytes) ends before the block at %d: no end-of-archive marker", size, off)
		}
		if off >= winOff && off+int64(len(p)) <= winOff+int64(winLen) {
			copy(p, win[off-winOff:])
			return nil
		}
		if len(p) > len(win) {
			n, err := image.ReadAt(p, off)
			if n == len(p) {
				return nil
			}
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading %d bytes at %d: %w", len(p), off, err)
		}
		n, err := image.ReadAt(win[:min(int64(len(win)), size-off)], off)
		winOff, winLen = off, n
		if n < len(p) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading %d bytes at %d: %w", len(p), off, err)
		}
		copy(p, win)
		return nil
	}
	var chain []specialHeader // special headers since the last member
	paxSize := int64(-1)
	off := int64(0)
	for {
		if err := read(block, off); err != nil {
			return probs, err
		}
		if isZeroBlock(block) {
			if err := read(block, off+rawBlock); err != nil {
				return probs, err
			}
			if !isZeroBlock(block) {
				return probs, fmt.Errorf("a lone zero block at %d is followed by data: not an end-of-archive marker", off)
			}
			if n := len(chain); n > 0 {
				last := chain[n-1]
				report("%s before the end of archive at %d: the %c header at %d is directly followed by the end-of-archive blocks",
					chainString(chain), off, last.typ, last.off)
			}
			return probs, nil
		}
		typ, n, err := parseRawHeader(block)
		if err != nil {
			return probs, fmt.Errorf("header at %d: %w", off, err)
		}
		next := off + rawBlock
		if typ == 'S' && block[482] != 0 { // old GNU sparse: extension blocks
			for {
				if err := read(block, next); err != nil {
					return probs, err
				}
				next += rawBlock
				if block[504] == 0 {
					break
				}
			}
		}
		if strings.IndexByte(specialTypes, typ) >= 0 {
			if k := len(chain); k > 0 && chain[k-1].typ == 'x' {
				report("the x header at %d is not directly before its member: a %c header follows it at %d", chain[k-1].off, typ, off)
			}
			chain = append(chain, specialHeader{typ, off})
			switch {
			case (typ == 'g' || typ == 'x') && n > 1<<20:
				report("the %c header at %d has %d bytes of data: over 1 MiB (Go refuses it, libarchive too)", typ, off, n)
			case typ == 'g' && n == 0:
				report("the g header at %d is empty (size 0): libarchive 3.8.9 refuses it", off)
			case typ == 'x':
				data := make([]byte, n)
				if err := read(data, next); err != nil {
					return probs, err
				}
				if s, ok := paxSizeRecord(data); ok {
					paxSize = s
				}
			}
		} else {
			if g := countType(chain, 'g'); g > 1 {
				report("%d g headers (%s) before the member at %d: libarchive 3.7.5 and later refuse a second g header", g, chainString(chain), off)
			}
			if len(chain) > maxSpecials {
				report("%d special headers before the member at %d (from %d): libarchive refuses more than %d", len(chain), off, chain[0].off, maxSpecials)
			}
			if paxSize >= 0 {
				n = paxSize
			}
			if strings.IndexByte("123456", typ) >= 0 {
				n = 0 // header-only types: readers skip no data
			}
			chain, paxSize = chain[:0], -1
		}
		if n < 0 || n > size {
			return probs, fmt.Errorf("header at %d: size %d", off, n)
		}
		off = next + (n+rawBlock-1)/rawBlock*rawBlock
	}
}

// requireReaderLimits fails the test unless the archive in image meets the
// reader limits (readerLimitProblems).
func requireReaderLimits(t testing.TB, image io.ReaderAt, size int64) {
	t.Helper()
	probs, err := readerLimitProblems(image, size)
	if err != nil {
		probs = append(probs, err.Error())
	}
	if len(probs) > 0 {
		t.Fatalf("reader limits:\n  %s", strings.Join(probs, "\n  "))
	}
}

// rawBlock is the tar block, spelled out: the walker does not use the
// store's constants.
const rawBlock = 512

var zeroBlock = make([]byte, rawBlock)

func isZeroBlock(b []byte) bool { return bytes.Equal(b, zeroBlock) }

// parseRawHeader returns the typeflag and the size field of a tar header
// block after checking its checksum (unsigned or signed sum, as readers
// accept either).
func parseRawHeader(b []byte) (byte, int64, error) {
	want, err := parseNumeric(b[148:156])
	if err != nil {
		return 0, 0, fmt.Errorf("checksum field: %w", err)
	}
	unsigned, signed := headerSums(b)
	if want != unsigned && want != signed {
		return 0, 0, fmt.Errorf("bad checksum %d (sum %d)", want, unsigned)
	}
	size, err := parseNumeric(b[124:136])
	if err != nil {
		return 0, 0, fmt.Errorf("size field: %w", err)
	}
	return b[156], size, nil
}

// headerSums returns the unsigned and signed sums of the bytes of header
// block b, its checksum field counted as spaces. The walk runs after every
// removal of some tests: under -race, instrumenting these 512 loads a
// header would make it 50 times slower (b is the walk's own buffer).
//
//go:norace
func headerSums(b []byte) (unsigned, signed int64) {
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return unsigned, signed
}

// parseNumeric parses a numeric header field: octal digits between
// optional spaces and NULs, or base-256 (the high bit of the first byte
// set; negative numbers refused).
func parseNumeric(f []byte) (int64, error) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		if f[0]&0x40 != 0 {
			return 0, errors.New("negative base-256 number")
		}
		v := int64(f[0] & 0x3f)
		for _, c := range f[1:] {
			if v > (1<<63-1)>>8 {
				return 0, errors.New("base-256 number overflows")
			}
			v = v<<8 | int64(c)
		}
		return v, nil
	}
	s := strings.Trim(string(f), " \x00")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not octal", f)
	}
	return v, nil
}

// paxSizeRecord returns the value of the size record of PAX data, if any
// (the last one wins).
func paxSizeRecord(data []byte) (int64, bool) {
	size, found := int64(0), false
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 {
			return size, found
		}
		n, err := strconv.Atoi(string(data[:sp]))
		if err != nil || n <= sp || n > len(data) {
			return size, found
		}
		rec := string(data[sp+1 : n])
		data = data[n:]
		k, v, ok := strings.Cut(strings.TrimSuffix(rec, "\n"), "=")
		if ok && k == "size" {
			if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
				size, found = s, true
			}
		}
	}
	return size, found
}

// A specialHeader is a special header the walk met since the last member.
type specialHeader struct {
	typ byte
	off int64
}

func countType(chain []specialHeader, typ byte) int {
	n := 0
	for _, s := range chain {
		if s.typ == typ {
			n++
		}
	}
	return n
}

// chainString describes a chain of special headers: "g@1024 x@2048".
func chainString(chain []specialHeader) string {
	var b strings.Builder
	for i, s := range chain {
		if i == 8 && len(chain) > 10 {
			fmt.Fprintf(&b, " ... (%d in all)", len(chain))
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%c@%d", s.typ, s.off)
	}
	return b.String()
}

// rawTar builds archives header by header for the walker's own tests.
type rawTar struct{ bytes.Buffer }

// add appends a header of type typ for name with data (padded), its size
// field as given (or len(data) when size < 0).
func (a *rawTar) add(typ byte, name string, data []byte, size int64) *rawTar {
	if size < 0 {
		size = int64(len(data))
	}
	h := make([]byte, rawBlock)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], "00000000000\x00")
	h[156] = typ
	copy(h[257:265], "ustar\x0000")
	a.finish(h)
	a.Write(data)
	a.Write(make([]byte, (rawBlock-len(data)%rawBlock)%rawBlock))
	return a
}

// finish writes the checksum of header h and appends it.
func (a *rawTar) finish(h []byte) {
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	a.Write(h)
}

// paxRecord returns PAX data of one record k=v.
func paxRecord(k, v string) []byte {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + 1
	for len(strconv.Itoa(n))+len(rec) != n {
		n = len(strconv.Itoa(n)) + len(rec)
	}
	return []byte(strconv.Itoa(n) + rec)
}

func (a *rawTar) file(name string, n int) *rawTar { return a.add('0', name, pattern(1, n), -1) }
func (a *rawTar) hole(n int) *rawTar {
	return a.add('g', "hole", paxRecord("comment", strings.Repeat("z", n)), -1)
}
func (a *rawTar) end() []byte { a.Write(make([]byte, 2*rawBlock)); return a.Bytes() }

// TestReaderLimitsWalker shows that the walker accepts what readers accept
// and refuses each chain the limits forbid.
func TestReaderLimitsWalker(t *testing.T) {
	huge := paxRecord("comment", strings.Repeat("z", 1<<20))
	base256 := func() []byte { // a member whose size field is base-256
		var a rawTar
		a.file("first", 10)
		h := make([]byte, rawBlock)
		copy(h, "b256")
		copy(h[100:108], "0000644\x00")
		h[124] = 0x80
		h[134], h[135] = 0x02, 0x58 // 600
		h[156] = '0'
		copy(h[257:265], "ustar\x0000")
		a.finish(h)
		a.Write(pattern(2, 1024)) // 600 bytes padded; non-zero filler
		return a.file("last", 1).end()
	}
	paxSized := func() []byte { // an x header's size record sets the data size
		var a rawTar
		a.add('x', "PaxHeaders/big", paxRecord("size", "1500"), -1)
		a.add('0', "big", pattern(3, 1500), 0)
		return a.file("last", 1).end()
	}
	chain := func(n int) []byte {
		var a rawTar
		for range n {
			a.add('L', "././@LongLink", []byte("long\x00"), -1)
		}
		return a.file("m", 1).end()
	}

	for _, c := range []struct {
		name  string
		image []byte
		want  string // a substring of the problem; "" for none
	}{
		{"members only", new(rawTar).file("a", 1).file("b", 0).file("c", 513).end(), ""},
		{"one hole between members", new(rawTar).file("a", 1).hole(300).file("b", 2).end(), ""},
		{"hole, x, member", new(rawTar).hole(10).add('x', "x", paxRecord("path", "p"), -1).file("b", 2).end(), ""},
		{"L and K", new(rawTar).add('L', "l", []byte("n"), -1).add('K', "k", []byte("t"), -1).add('2', "s", nil, -1).end(), ""},
		{"31 special headers", chain(31), ""},
		{"base-256 size", base256(), ""},
		{"PAX size record", paxSized(), ""},
		{"two g in a row", new(rawTar).file("a", 1).hole(10).hole(10).file("b", 2).end(), "2 g headers"},
		{"two g at the start", new(rawTar).hole(10).hole(600).file("b", 2).end(), "2 g headers"},
		{"g, x, g", new(rawTar).hole(10).add('x', "x", paxRecord("path", "p"), -1).hole(1).file("b", 2).end(), "not directly before its member"},
		{"empty g", new(rawTar).file("a", 1).add('g', "g", nil, -1).file("b", 2).end(), "empty (size 0)"},
		{"g before the end", new(rawTar).file("a", 1).hole(10).end(), "directly followed by the end-of-archive blocks"},
		{"x before the end", new(rawTar).file("a", 1).add('x', "x", paxRecord("path", "p"), -1).end(), "directly followed by the end-of-archive blocks"},
		{"32 special headers", chain(32), "32 special headers"},
		{"g over 1 MiB", new(rawTar).file("a", 1).add('g', "g", huge, -1).file("b", 1).end(), "over 1 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			probs, err := readerLimitProblems(bytes.NewReader(c.image), int64(len(c.image)))
			require.NoError(t, err)
			if c.want == "" {
				require.Empty(t, probs)
				return
			}
			require.NotEmpty(t, probs, "the walker accepts it")
			require.Contains(t, strings.Join(probs, "\n"), c.want)
			t.Log(probs)
		})
	}

	// What is not a tar archive stops the walk.
	good := new(rawTar).file("a", 1).end()
	bad := bytes.Clone(good)
	bad[0] ^= 1
	_, err := readerLimitProblems(bytes.NewReader(bad), int64(len(bad)))
	require.ErrorContains(t, err, "bad checksum")
	_, err = readerLimitProblems(bytes.NewReader(good[:len(good)-rawBlock]), int64(len(good)-rawBlock))
	require.ErrorContains(t, err, "no end-of-archive marker")
	lone := append(new(rawTar).file("a", 1).Bytes()[:2*rawBlock:2*rawBlock], make([]byte, rawBlock)...)
	lone = append(lone, new(rawTar).file("b", 1).end()...)
	_, err = readerLimitProblems(bytes.NewReader(lone), int64(len(lone)))
	require.ErrorContains(t, err, "lone zero block")

	// requireReaderLimits fails a test with the problem.
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { recover() }()
		img := new(rawTar).file("a", 1).hole(10).hole(10).file("b", 2).end()
		requireReaderLimits(ft, bytes.NewReader(img), int64(len(img)))
	}()
	require.True(t, ft.failed, "requireReaderLimits passed two g headers in a row")
	require.Contains(t, ft.msg, "2 g headers")
}

// fatalRecorder records a fatal failure instead of failing the test.
type fatalRecorder struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	panic(f)
}

// pyExtract extracts an archive with Python's tarfile: argv archive, dir.
// The "data" filter (where tarfile has filters) keeps 3.12 and later from
// warning about the default, which -W error would make an error.
const pyExtract = `
import sys, tarfile
with tarfile.open(sys.argv[1], "r:") as tf:
    if hasattr(tarfile, "data_filter"):
        tf.extractall(sys.argv[2], filter="data")
    else:
        tf.extractall(sys.argv[2])
`

// tarRecord is GNU tar's default record (20 blocks): images end on one.
const tarRecord = 20 * rawBlock

// checkEveryReader checks the store's current state (SPEC §4, Invariant
// A, and the reader limits): Check reports nothing fatal, archive/tar
// reads what the store holds, the image meets the reader limits, GNU tar,
// bsdtar and Python's tarfile (-W error) list the members archive/tar
// lists and extract the store's values, with nothing on stderr.
func checkEveryReader(t testing.TB, s *Store, dev *mem.Device) {
	t.Helper()
	needTools(t)
	want, members := checkStoreInvariants(t, s, dev)
	requireReaderLimits(t, dev.ReaderAt(), dev.Size())
	// The image the tools read ends after the end-of-archive marker:
	// the free tail holds old data no reader looks at.
	s.mu.RLock()
	end := s.sp.eoa + eoaSize
	s.mu.RUnlock()
	path := imageFile(t, dev, min(archiveEnd(s), (end+2*tarRecord-1)/tarRecord*tarRecord))
	dirs := map[string]string{}
	for _, x := range []string{"tar -x", "bsdtar -x", "python -x"} {
		dirs[x] = t.TempDir()
	}
	cmds := map[string][]string{
		"tar -t":    {"tar", "--quoting-style=literal", "-tvf", path},
		"bsdtar -t": {"bsdtar", "-tvf", path},
		"python -t": {pythonExe, "-W", "error", "-c", pyList, path},
		"tar -x":    {"tar", "-x", "-C", dirs["tar -x"], "-f", path},
		"bsdtar -x": {"bsdtar", "-x", "-C", dirs["bsdtar -x"], "-f", path},
		"python -x": {pythonExe, "-W", "error", "-c", pyExtract, path, dirs["python -x"]},
	}
	runs := map[string]toolRun{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, c := range cmds {
		wg.Go(func() {
			r := runTool(c[0], c[1:]...)
			mu.Lock()
			runs[name] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, name := range sortedKeys(runs) {
		r := runs[name]
		if r.err != nil || r.stderr != "" {
			t.Errorf("%s", r)
			continue
		}
		if _, ok := dirs[name]; ok {
			continue
		}
		if n := strings.Count(r.stdout, "\n"); n != members {
			t.Errorf("%s listed %d members, archive/tar %d", r.cmd, n, members)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, name := range sortedKeys(dirs) {
		got := extractedView(t, dirs[name])
		for k, what := range got.other {
			t.Errorf("%s made %s, a %s", name, k, what)
		}
		requireSameView(t, name+" yields", got, want)
	}
}

// memberLayout returns where each member of the index lies, by key (a
// directory member's key ends in "/").
func memberLayout(s *Store) map[string]extent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]extent{}
	each(&s.ix.root, kv.Root, func(n *node, k kv.Key) {
		if n.val != nil {
			out[k.String()] = n.val.extent()
		}
		if n.dir != nil {
			out[k.String()+"/"] = n.dir.extent()
		}
	})
	return out
}

func storeFree(t testing.TB, s *Store) int64 {
	t.Helper()
	f, err := s.Free()
	require.NoError(t, err)
	return f
}

// measureRemoval runs remove, logs how long it took and how many bytes of
// members compaction moved, and checks that Free grew by exactly the
// members removed (their headers and padded data). It returns those bytes.
func measureRemoval(t testing.TB, s *Store, what string, remove func() error) int64 {
	t.Helper()
	before, free := memberLayout(s), storeFree(t, s)
	start := time.Now()
	require.NoError(t, remove(), "%s", what)
	took := time.Since(start)
	after, free2 := memberLayout(s), storeFree(t, s)
	var freed, moved int64
	nmoved := 0
	for k, e := range before {
		switch a, ok := after[k]; {
		case !ok:
			freed += e.len
		case a != e:
			moved += a.len
			nmoved++
		}
	}
	t.Logf("%s: %d members (%d bytes) removed in %v; compaction moved %d members (%d bytes)",
		what, len(before)-len(after), freed, took.Round(time.Millisecond), nmoved, moved)
	require.Equal(t, freed, free2-free, "%s: Free grew by %d bytes, the removed members took %d", what, free2-free, freed)
	return freed
}

// requireReusable checks that the space a removal freed is usable at once
// (nothing waits for a later compaction or a reopen): values of size bytes
// in all, in pieces, are written right after the removal, and removed
// again. requireNeedsFreed showed that they did not fit before.
func requireReusable(t testing.TB, s *Store, dev *mem.Device, size int64) {
	t.Helper()
	piece := int64(256 << 10)
	if size > 16<<20 {
		piece = size/4 + 4096
	}
	dict := kv.MustKey("/reuse")
	for i := int64(0); i*piece < size; i++ {
		n := min(piece, size-i*piece)
		k := kv.MustKey(fmt.Sprintf("/reuse/%03d", i))
		require.NoError(t, s.Allocate(k, n, time.Time{}), "value %d (%d bytes) of %d bytes in the freed space", i, n, size)
	}
	require.NoError(t, s.Remove(dict))
	probs, err := s.Check()
	require.NoError(t, err)
	for _, p := range probs {
		require.False(t, p.Fatal, "Check after the reuse: %s", p)
	}
	requireReaderLimits(t, dev.ReaderAt(), dev.Size())
}

// requireNeedsFreed checks that size bytes do not fit before the removal:
// the device is small enough for requireReusable to show that the freed
// space is used.
func requireNeedsFreed(t testing.TB, s *Store, size int64) {
	t.Helper()
	require.Less(t, storeFree(t, s), size, "the device is too large for the reuse check")
}

// setValues writes values of the given sizes under prefix (prefix/00,
// prefix/01, ...), one after the other; tag seeds their contents, and the
// values of a size differ in their first bytes (pattern is slow under
// -race: it is made once a size).
func setValues(t testing.TB, s *Store, prefix string, tag byte, sizes ...int) {
	t.Helper()
	bufs := map[int][]byte{}
	for i, n := range sizes {
		k := kv.MustKey(fmt.Sprintf("%s/%02d", prefix, i))
		b, ok := bufs[n]
		if !ok {
			b = pattern(tag, n)
			bufs[n] = b
		}
		v := bytes.Clone(b)
		copy(v, fmt.Sprint(i))
		require.NoError(t, s.Set(k, v))
	}
}

// Values written before and after the ones a scenario removes, so that
// removals happen in the middle of the archive. The values after are the
// members compaction moves (from the end of the archive).
var (
	beforeSizes = []int{100, 70000, 3000}
	afterSizes  = []int{5000, 10, 200000, 1536, 0}
)

func writeBefore(t testing.TB, s *Store) { setValues(t, s, "/before", 10, beforeSizes...) }
func writeAfter(t testing.TB, s *Store)  { setValues(t, s, "/after", 20, afterSizes...) }

// repeatSize returns n copies of size.
func repeatSize(size, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = size
	}
	return out
}

// patternReader streams pattern bytes without end, holding 63 KiB.
type patternReader struct {
	block []byte
	off   int
}

func newPatternReader(tag byte) *patternReader { return &patternReader{block: pattern(tag, 251*256)} }

func (r *patternReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.block[r.off:])
		n += c
		r.off = (r.off + c) % len(r.block)
	}
	return n, nil
}

// membersBytes is the space values of the given sizes take as members
// with short keys: a header, the data padded, and at most 4 KiB of
// alignment for values of 64 KiB and more (doc §1).
func membersBytes(sizes ...int) int64 {
	n := int64(0)
	for _, size := range sizes {
		n += rawBlock + (int64(size)+rawBlock-1)/rawBlock*rawBlock
		if size >= 64<<10 {
			n += 4 << 10
		}
	}
	return n
}

// deviceFor returns the size of a device for a scenario whose members take
// used bytes besides the values before and after, and that removes
// removed bytes of them: about half of removed is free before the
// removal, so that writing removed bytes again needs the space the
// removal frees (requireNeedsFreed, requireReusable).
func deviceFor(used, removed int64) uint64 {
	n := membersBytes(append(beforeSizes, afterSizes...)...) + used + removed/2
	n = n * 64 / 63 // the journal area takes a 64th
	return uint64(n+(128<<10)) >> 16 << 16
}

// A limitsScenario writes values, removes some from the middle, and checks
// every reader.
type limitsScenario struct {
	name    string
	sectors []int
	device  uint64 // bytes
	run     func(t *testing.T, s *Store, dev *mem.Device)
}

// removeValue is the scenario of one value of size bytes, written by put,
// removed from the middle of the archive.
func removeValue(size int64, put func(s *Store, k kv.Key) error) func(t *testing.T, s *Store, dev *mem.Device) {
	return func(t *testing.T, s *Store, dev *mem.Device) {
		k := kv.MustKey("/big")
		writeBefore(t, s)
		require.NoError(t, put(s, k))
		writeAfter(t, s)
		requireNeedsFreed(t, s, size)
		measureRemoval(t, s, fmt.Sprintf("remove a %d-byte value", size), func() error { return s.Remove(k) })
		checkEveryReader(t, s, dev)
		requireReusable(t, s, dev, size)
	}
}

// removeDict is the scenario of n adjacent values of size bytes in one
// dictionary, removed together from the middle of the archive. On a tight
// device (deviceFor) the values did not fit again before the removal.
func removeDict(n, size int, tight bool) func(t *testing.T, s *Store, dev *mem.Device) {
	return func(t *testing.T, s *Store, dev *mem.Device) {
		writeBefore(t, s)
		setValues(t, s, "/dict", 1, repeatSize(size, n)...)
		writeAfter(t, s)
		total := int64(n) * int64(size)
		if tight {
			requireNeedsFreed(t, s, total)
		}
		measureRemoval(t, s, fmt.Sprintf("remove a dictionary of %d values of %d bytes", n, size), func() error {
			return s.Remove(kv.MustKey("/dict"))
		})
		checkEveryReader(t, s, dev)
		requireReusable(t, s, dev, total)
	}
}

// removeOneByOne is the scenario of n adjacent values of size bytes
// removed one at a time, in the order order returns (indexes), the reader
// limits checked after each removal and every reader at the end.
func removeOneByOne(n, size int, order func(n int) []int) func(t *testing.T, s *Store, dev *mem.Device) {
	return func(t *testing.T, s *Store, dev *mem.Device) {
		writeBefore(t, s)
		setValues(t, s, "/one", 1, repeatSize(size, n)...)
		writeAfter(t, s)
		free := storeFree(t, s)
		start := time.Now()
		var walk time.Duration
		for i, j := range order(n) {
			require.NoError(t, s.Remove(kv.MustKey(fmt.Sprintf("/one/%02d", j))), "removal %d (value %d)", i, j)
			w0 := time.Now()
			probs, err := readerLimitProblems(dev.ReaderAt(), dev.Size())
			walk += time.Since(w0)
			if err != nil || len(probs) > 0 {
				t.Fatalf("after removal %d (value %d): %v %s", i, j, err, strings.Join(probs, "\n  "))
			}
		}
		t.Logf("%d removals in %v (the walks of readerLimitProblems after each: %v)", n, time.Since(start).Round(time.Millisecond), walk.Round(time.Millisecond))
		require.Equal(t, membersBytes(repeatSize(size, n)...), storeFree(t, s)-free, "Free grew by the removed members")
		checkEveryReader(t, s, dev)
		requireReusable(t, s, dev, int64(n)*int64(size))
	}
}

func inOrder(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// oddsThenEvens removes every other value first (separate holes), then the
// others (each removal joins two holes).
func oddsThenEvens(n int) []int {
	var out []int
	for i := 1; i < n; i += 2 {
		out = append(out, i)
	}
	for i := 0; i < n; i += 2 {
		out = append(out, i)
	}
	return out
}

// allocatedValue writes a value of size zero bytes with a few bytes of data at
// its head and tail (so that its data is not all zeroes), without holding
// it in memory (hw/mem is sparse).
func allocatedValue(size int64) func(s *Store, k kv.Key) error {
	return func(s *Store, k kv.Key) error {
		if err := s.Allocate(k, size, time.Time{}); err != nil {
			return err
		}
		if err := s.SetPartial(k, 0, []byte("head of a removed value")); err != nil {
			return err
		}
		return s.SetPartial(k, size-4, []byte("tail"))
	}
}

// streamedValue writes a value of size bytes of pattern, streamed.
func streamedValue(size int64) func(s *Store, k kv.Key) error {
	return func(s *Store, k kv.Key) error {
		return s.SetFrom(k, io.LimitReader(newPatternReader(7), size), size)
	}
}

// mixedSizes are the sizes of the every-other scenario's values, in turn:
// below a block, several blocks, aligned (64 KiB and up), above a hole
// chunk (512 KiB), and exact block multiples.
var mixedSizes = []int{10, 1000, 600 << 10, 5000, 70000, 513 << 10, 512, 1<<20 + 3, 0, 200000, 1536, 700 << 10}

// everyOther is the scenario of n values, of sizes taken in turn from
// sizes, of which every other one is removed (one at a time, the reader
// limits checked after each removal).
func everyOther(n int, sizes []int) func(t *testing.T, s *Store, dev *mem.Device) {
	return func(t *testing.T, s *Store, dev *mem.Device) {
		writeBefore(t, s)
		vs := make([]int, n)
		for i := range vs {
			vs[i] = sizes[i%len(sizes)]
		}
		setValues(t, s, "/mixed", 1, vs...)
		writeAfter(t, s)
		start := time.Now()
		for i := 1; i < n; i += 2 {
			measureRemoval(t, s, fmt.Sprintf("remove /mixed/%02d (%d bytes)", i, vs[i]), func() error {
				return s.Remove(kv.MustKey(fmt.Sprintf("/mixed/%02d", i)))
			})
			if probs, err := readerLimitProblems(dev.ReaderAt(), dev.Size()); err != nil || len(probs) > 0 {
				t.Fatalf("after removing /mixed/%02d: %v\n  %s", i, err, strings.Join(probs, "\n  "))
			}
		}
		t.Logf("%d removals in %v", n/2, time.Since(start).Round(time.Millisecond))
		checkEveryReader(t, s, dev)
	}
}

// renameBack is the scenario of values under 600-byte keys (a PAX path
// record) renamed to 120-byte keys (a ustar header: the header shrinks)
// and back: a small value and an aligned one.
func renameBack(t *testing.T, s *Store, dev *mem.Device) {
	seg := strings.Repeat
	long := func(c string) kv.Key {
		return kv.MustKey("/" + seg(c, 200) + "/" + seg("b", 200) + "/" + seg("c", 197))
	}
	short := func(c string) kv.Key { return kv.MustKey("/" + seg(c, 60) + "/" + seg("y", 58)) }
	require.Len(t, long("a").String(), 600)
	require.Len(t, short("x").String(), 120)
	writeBefore(t, s)
	require.NoError(t, s.Set(long("a"), pattern(5, 5000)))
	require.NoError(t, s.Set(long("d"), pattern(6, 100000)))
	writeAfter(t, s)
	require.NoError(t, s.Rename(long("a"), short("x")))
	require.NoError(t, s.Rename(long("d"), short("z")))
	checkEveryReader(t, s, dev)
	require.NoError(t, s.Rename(short("x"), long("a")))
	require.NoError(t, s.Rename(short("z"), long("d")))
	checkEveryReader(t, s, dev)
}

func limitsScenarios() []limitsScenario {
	both := []int{512, 4096}
	const mib = 1 << 20
	// A multi-GiB value costs little (Allocate zero-fills a sparse
	// device) but its hole chain does: 6 000 chunk headers, each
	// allocating a 64 KiB piece of hw/mem. CI removes 600 MiB.
	hugeSize := int64(600 * mib)
	if os.Getenv("TARSTORE_LONG") == "1" {
		hugeSize = 3 << 30
	}
	dict2000 := membersBytes(repeatSize(1<<10, 2000)...)
	return []limitsScenario{
		{name: "two adjacent small values", sectors: both, device: 4 * mib, run: func(t *testing.T, s *Store, dev *mem.Device) {
			writeBefore(t, s)
			setValues(t, s, "/mid", 1, 100, 700)
			writeAfter(t, s)
			measureRemoval(t, s, "remove /mid/00", func() error { return s.Remove(kv.MustKey("/mid/00")) })
			checkEveryReader(t, s, dev)
			measureRemoval(t, s, "remove /mid/01, next to its hole", func() error { return s.Remove(kv.MustKey("/mid/01")) })
			checkEveryReader(t, s, dev)
		}},
		{name: "one 600 KiB value", sectors: both, device: deviceFor(membersBytes(600<<10), 600<<10),
			run: removeValue(600<<10, func(s *Store, k kv.Key) error { return s.Set(k, pattern(3, 600<<10)) })},
		{name: "2000 values of 1 KiB, a dictionary", sectors: both, device: deviceFor(dict2000, 2000<<10), run: removeDict(2000, 1<<10, true)},
		// The record of that removal once wrote 16 bytes per removed member
		// into a journal slot of 64 KiB, and past it (the device's end).
		{name: "2000 values of 1 KiB, a dictionary, 8 MiB device", sectors: []int{512}, device: 8 * mib, run: removeDict(2000, 1<<10, false)},
		// 360 values: the run of holes outgrows one chunk (512 KiB) at the
		// 342nd removal.
		{name: "360 values of 1 KiB, one by one", sectors: []int{512}, device: 4 * mib, run: removeOneByOne(360, 1<<10, inOrder)},
		{name: "360 values of 1 KiB, odds then evens", sectors: []int{4096}, device: 4 * mib, run: removeOneByOne(360, 1<<10, oddsThenEvens)},
		{name: "48 values of 1 MiB, a dictionary", sectors: both, device: deviceFor(membersBytes(repeatSize(mib, 48)...), 48*mib), run: removeDict(48, mib, true)},
		{name: "one 100 MiB value", sectors: []int{4096}, device: deviceFor(membersBytes(100*mib), 100*mib), run: removeValue(100*mib, streamedValue(100*mib))},
		{name: fmt.Sprintf("one %d MiB value", hugeSize>>20), sectors: []int{4096}, device: deviceFor(membersBytes(int(hugeSize)), hugeSize),
			run: removeValue(hugeSize, allocatedValue(hugeSize))},
		{name: "every other of 60 values up to 400 KiB", sectors: both, device: 64 * mib,
			run: everyOther(60, []int{10, 1000, 400 << 10, 5000, 70000, 0, 512, 200000, 1536, 300 << 10})},
		{name: "rename a 600-byte key to 120 bytes and back", sectors: both, device: 4 * mib, run: renameBack},

		// Regions the last member does not fit (it is larger): compaction
		// moves other members in (fillFromAfter).
		{name: "every other of 60 values", sectors: both, device: 64 * mib, run: everyOther(60, mixedSizes)},
		{name: "a 600 KiB value before a 2 MiB one", sectors: both, device: 8 * mib, run: func(t *testing.T, s *Store, dev *mem.Device) {
			writeBefore(t, s)
			require.NoError(t, s.Set(kv.MustKey("/big"), pattern(3, 600<<10)))
			writeAfter(t, s)
			require.NoError(t, s.Set(kv.MustKey("/last"), pattern(4, 2<<20)))
			measureRemoval(t, s, "remove /big", func() error { return s.Remove(kv.MustKey("/big")) })
			checkEveryReader(t, s, dev)
		}},
	}
}

// TestReaderLimitsAtScale removes values from the middle of the archive —
// small and adjacent, larger than a hole chunk, thousands of them, a
// value of hundreds of MiB (3 GiB with TARSTORE_LONG=1) — and checks that
// what is left meets the reader limits and reads in every reader, and that
// the space is free at once.
func TestReaderLimitsAtScale(t *testing.T) {
	needTools(t)
	for _, sc := range limitsScenarios() {
		for _, ss := range sc.sectors {
			t.Run(fmt.Sprintf("%s/%d", sc.name, ss), func(t *testing.T) {
				t.Parallel()
				s, dev := newMemStore(t, ss, sc.device)
				t.Cleanup(func() { require.NoError(t, s.Close()) })
				sc.run(t, s, dev)
			})
		}
	}
}
