package kvtar

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// Tests of the journal record codec (journal.go, doc §4): round trips of
// records of every shape, golden files that pin the on-disk format, and
// the records decodeRecord must refuse.
//
// The golden files are the encoder's output; after a deliberate format
// change, regenerate them with
//
//	go test ./kvtar -run TestJournalGolden -update
//
// and bump journalMagic: devices written with the old format must not be
// read as the new one.
// jrArea is the end of the archive area the codec tests decode with: hole
// entries must lie before it.
const jrArea = 1 << 30

var updateJournalGolden = flag.Bool("update", false, "rewrite the golden files of testdata/journal from the encoder")

// jrData returns n bytes of a pattern tagged by tag.
func jrData(tag byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = tag + byte(i*7+i>>8)
	}
	return b
}

// jrSpillArea is what the fuzz target's readSpill returns: the first n
// bytes, whatever the offset (so that it allocates nothing itself).
var jrSpillArea = jrData(0x5a, 1<<20)

// A jrShape is a record of one shape.
type jrShape struct {
	name string
	rec  func() *record
	// golden: the encoding is pinned in testdata/journal/<name>.rec (and
	// .spill when spilled).
	golden bool
}

// jrShapes returns records of every shape the encoder is given. The
// golden ones must never change (their bytes are in testdata).
func jrShapes() []jrShape {
	return []jrShape{
		{"checkpoint", func() *record {
			// What checkpoint (txn.go) writes: no writes, eoaBefore == eoaAfter.
			return &record{seq: 42, eoaBefore: 5120, eoaAfter: 5120}
		}, true},
		{"append", func() *record {
			// An early-header append that also zeroes an allocation, its
			// predecessor's commit writes still pending.
			return &record{
				stage:       []extent{{5632, 1024}, {8192, 512}},
				stageCRC:    0x1234abcd,
				commits:     []write{{5120, jrData(1, 16)}, {1536, jrData(2, 3)}},
				zeros:       []extent{{65536, 1 << 20}},
				seq:         43,
				prevPending: true,
				eoaBefore:   5120,
				eoaAfter:    6656,
			}
		}, true},
		{"spilled", func() *record {
			return &record{
				stage:     []extent{{1 << 20, 4096}},
				stageCRC:  0xcafef00d,
				commits:   []write{{512, jrData(3, 40)}, {2048, jrData(4, 9)}, {4096, nil}},
				spill:     2 << 20,
				seq:       44,
				eoaBefore: 6656,
				eoaAfter:  1<<20 + 4096,
			}
		}, true},
		{"holes", func() *record {
			// A remove: two regions laid out as holes (hole entries), a
			// write between them, and a run that is not a layout (one
			// byte differs) kept as writes.
			return jrHoles()
		}, true},
		{"holes spilled", func() *record {
			r := jrHoles()
			r.spill = 4 << 20
			return r
		}, false},
		{"empty", func() *record { return &record{} }, false},
		{"stage only", func() *record {
			return &record{stage: []extent{{0, 0}, {512, 512}, {1 << 40, 1 << 30}}, stageCRC: math.MaxUint32, seq: 7, eoaBefore: 1024, eoaAfter: 1<<40 + 1<<30}
		}, false},
		{"commits inline", func() *record {
			return &record{
				commits:   []write{{5120, jrData(5, 512)}, {1024, jrData(6, 3)}, {9000, jrData(7, 100)}, {5120, jrData(8, 1)}},
				seq:       8,
				eoaBefore: 4096,
				eoaAfter:  4096,
			}
		}, false},
		{"empty commit writes", func() *record {
			return &record{commits: []write{{512, []byte{}}, {1024, jrData(9, 10)}, {0, nil}}, seq: 9}
		}, false},
		{"zeros only", func() *record {
			return &record{zeros: []extent{{65536, 1 << 20}, {2 << 20, 512}, {3 << 20, 0}}, seq: 10, eoaBefore: 1 << 20, eoaAfter: 4 << 20}
		}, false},
		{"prevPending checkpoint", func() *record {
			return &record{prevPending: true, seq: 11, eoaBefore: 1 << 30, eoaAfter: 1 << 30}
		}, false},
		{"spilled, no commit bytes", func() *record {
			return &record{commits: []write{{512, nil}}, spill: 4096, seq: 12}
		}, false},
		{"spilled from the area", func() *record {
			// Spilled bytes taken from jrSpillArea, as the fuzz target's
			// readSpill returns them: a seed that decodes.
			return &record{
				commits: []write{{512, jrSpillArea[:700]}, {8192, jrSpillArea[700:1000]}},
				spill:   1 << 20, seq: 13, eoaBefore: 512, eoaAfter: 9216,
			}
		}, false},
		{"extreme values", func() *record {
			return &record{
				stage:       []extent{{math.MaxInt64 - 1, 1}, {0, math.MaxInt64}},
				stageCRC:    1,
				commits:     []write{{math.MaxInt64 - 2, jrData(10, 2)}},
				zeros:       []extent{{math.MaxInt64, 0}},
				seq:         math.MaxUint64,
				prevPending: true,
				eoaBefore:   math.MaxInt64,
				eoaAfter:    0,
			}
		}, false},
		{"large counts", func() *record { return jrLarge(0) }, false},
		{"large counts spilled", func() *record { return jrLarge(64 << 20) }, false},
	}
}

// jrHoles is a record whose commit writes are, in order: the layout of
// the hole [8192, +4 blocks), a write, a layout of [1 MiB, +3000 blocks)
// (three chunks), and a run like the layout of [64 KiB, +2 blocks) with one
// byte changed — which stays writes — while its layouts name all three.
func jrHoles() *record {
	a, b, c := extent{8192, 4 * 512}, extent{1 << 20, 3000 * 512}, extent{64 << 10, 2 * 512}
	var commits []write
	commits = append(commits, holeWrites(a)...)
	commits = append(commits, write{512, jrData(14, 30)})
	commits = append(commits, holeWrites(b)...)
	near := holeWrites(c)
	near[len(near)-1].data = bytes.Clone(near[len(near)-1].data)
	near[len(near)-1].data[7] ^= 1
	commits = append(commits, near...)
	return &record{commits: commits, layouts: []extent{c, b, a}, seq: 15, eoaBefore: 4 << 20, eoaAfter: 4 << 20}
}

// TestJournalHoleEntries checks what jrHoles encodes to: a hole entry for
// each run that is exactly a layout, the writes of the others; and that it
// decodes to the same commit writes. A hole entry is refused where its
// extent is not block-aligned, empty, or beyond the archive area.
func TestJournalHoleEntries(t *testing.T) {
	r := jrHoles()
	ents := r.entries()
	var kinds []string
	for _, e := range ents {
		if e.hole > 0 {
			kinds = append(kinds, fmt.Sprintf("hole %d+%d", e.w.off, e.hole))
		} else {
			kinds = append(kinds, fmt.Sprintf("write %d+%d", e.w.off, len(e.w.data)))
		}
	}
	near := holeWrites(extent{64 << 10, 2 * 512})
	want := []string{"hole 8192+2048", "write 512+30", fmt.Sprintf("hole %d+%d", 1<<20, 3000*512)}
	for _, w := range near {
		want = append(want, fmt.Sprintf("write %d+%d", w.off, len(w.data)))
	}
	require.Equal(t, want, kinds)
	head, _ := r.encode()
	require.Less(t, len(head), 88+16*len(ents)+30+len(near)*512+1, "the layouts take no commit bytes")
	got, err := decodeRecord(head, jrArea, nil)
	require.NoError(t, err)
	require.Equal(t, r.commits, got.commits)

	// Hole entries the encoder cannot have written.
	for _, bad := range []extent{{8192, 0}, {8193, 1024}, {8192, 1000}, {jrArea - 1024, 2048}, {-512, 1024}} {
		r := &record{commits: []write{{bad.off, nil}}, seq: 1}
		r.packed = []entry{{w: write{off: bad.off}, hole: bad.len}}
		if bad.len == 0 {
			// Encoded as a zero-length hole entry: by hand.
			r.packed = []entry{{w: write{off: bad.off}, hole: 512}}
		}
		head, _ := r.encode()
		if bad.len == 0 {
			binary.LittleEndian.PutUint64(head[88+8:], entryHole)
			binary.LittleEndian.PutUint32(head[8:], crc32.Checksum(head[12:], castagnoli))
		}
		_, err := decodeRecord(head, jrArea, nil)
		require.ErrorIs(t, err, errNoRecord, "hole entry %+v", bad)
	}
}

// TestJournalReadsV02 decodes records of the previous format (no hole
// entries; testdata/journal/v02): this version reads them, so that a store
// that crashed under the previous one recovers.
func TestJournalReadsV02(t *testing.T) {
	for _, name := range []string{"checkpoint", "append", "spilled"} {
		head, err := os.ReadFile(jrGoldenPath(filepath.Join("v02", name+".rec")))
		require.NoError(t, err)
		require.Equal(t, journalMagic02, string(head[:8]))
		var want *record
		for _, sh := range jrShapes() {
			if sh.name == name {
				want = sh.rec()
			}
		}
		var spill []byte
		if want.spill != 0 {
			spill, err = os.ReadFile(jrGoldenPath(filepath.Join("v02", name+".spill")))
			require.NoError(t, err)
		}
		got, err := decodeRecord(head, jrArea, jrSpills(t, want, spill))
		require.NoError(t, err, name)
		want.encode() // its CRC: the magic is not under it
		requireSameRecord(t, want, got)
	}
}

// jrLarge is a record with thousands of entries in each table.
func jrLarge(spill int64) *record {
	r := &record{spill: spill, seq: 1 << 40, stageCRC: 77, eoaBefore: 1 << 30, eoaAfter: 2 << 30}
	for i := range int64(5000) {
		r.stage = append(r.stage, extent{i * 1024, 512 + i%7})
	}
	for i := range 3000 {
		r.commits = append(r.commits, write{int64(i) * 512, jrData(byte(i), i%65)})
	}
	for i := range int64(2000) {
		r.zeros = append(r.zeros, extent{1<<20 + i*4096, 4096})
	}
	return r
}

// jrSpills returns a readSpill for the spilled bytes of r: it checks that
// decodeRecord asks for exactly them.
func jrSpills(t testing.TB, r *record, spill []byte) func(off, n int64) ([]byte, error) {
	return func(off, n int64) ([]byte, error) {
		t.Helper()
		if off != r.spill || n != int64(len(spill)) {
			t.Errorf("readSpill(%d, %d), want (%d, %d)", off, n, r.spill, len(spill))
			return nil, errNoRecord
		}
		return bytes.Clone(spill), nil
	}
}

// noSpill is the readSpill of records that must not need one.
func noSpill(t testing.TB) func(off, n int64) ([]byte, error) {
	return func(off, n int64) ([]byte, error) {
		t.Helper()
		t.Errorf("unexpected readSpill(%d, %d)", off, n)
		return nil, errNoRecord
	}
}

// requireSameRecord checks that got is the record want describes (nil
// and empty slices alike).
func requireSameRecord(t testing.TB, want, got *record) {
	t.Helper()
	require.NotNil(t, got)
	require.Equal(t, len(want.stage), len(got.stage), "stage extents")
	for i := range want.stage {
		require.Equal(t, want.stage[i], got.stage[i], "stage extent %d", i)
	}
	require.Equal(t, len(want.zeros), len(got.zeros), "zero extents")
	for i := range want.zeros {
		require.Equal(t, want.zeros[i], got.zeros[i], "zero extent %d", i)
	}
	require.Equal(t, len(want.commits), len(got.commits), "commit writes")
	for i, w := range want.commits {
		g := got.commits[i]
		require.Equal(t, w.off, g.off, "commit write %d offset", i)
		require.True(t, bytes.Equal(w.data, g.data), "commit write %d: %d bytes, want %d", i, len(g.data), len(w.data))
		require.Equal(t, len(g.data), cap(g.data), "commit write %d: capacity beyond its bytes", i)
	}
	require.Equal(t, want.stageCRC, got.stageCRC, "stage CRC")
	require.Equal(t, want.spill, got.spill, "spill")
	require.Equal(t, want.seq, got.seq, "seq")
	require.Equal(t, want.prevPending, got.prevPending, "prevPending")
	require.Equal(t, want.eoaBefore, got.eoaBefore, "eoaBefore")
	require.Equal(t, want.eoaAfter, got.eoaAfter, "eoaAfter")
	require.Equal(t, want.crc, got.crc, "record CRC")
}

// TestJournalRoundTrip encodes records of every shape and decodes them
// back, from the exact bytes and from the sector-padded slot contents.
func TestJournalRoundTrip(t *testing.T) {
	for _, sh := range jrShapes() {
		t.Run(sh.name, func(t *testing.T) {
			r := sh.rec()
			head, spill := r.encode()
			require.Equal(t, crc32.Checksum(head[12:], castagnoli), r.crc, "encode sets crc")
			require.Equal(t, r.crc, binary.LittleEndian.Uint32(head[8:]))
			if r.spill == 0 {
				require.Nil(t, spill, "inline record")
				require.EqualValues(t, r.headSize(), len(head))
			} else {
				require.EqualValues(t, r.commitLen(), len(spill), "spilled bytes")
				require.EqualValues(t, r.headSize()-r.commitLen(), len(head))
			}
			n, err := decodeHead(head)
			require.NoError(t, err)
			require.EqualValues(t, len(head), n)

			got, err := decodeRecord(head, jrArea, jrSpills(t, r, spill))
			require.NoError(t, err)
			requireSameRecord(t, r, got)

			// As readSlot finds it: padded to the sector with zeroes (or
			// with whatever was there), trailing bytes ignored.
			for _, fill := range []byte{0, 0xff} {
				padded := append(bytes.Clone(head), bytes.Repeat([]byte{fill}, 4096)...)
				got, err = decodeRecord(padded, jrArea, jrSpills(t, r, spill))
				require.NoError(t, err)
				requireSameRecord(t, r, got)
			}

			// Encoding the decoded record gives the same bytes.
			again, spill2 := got.encode()
			require.Equal(t, head, again, "re-encoded head")
			require.Equal(t, spill, spill2, "re-encoded spill")
		})
	}
}

// TestJournalLayout checks the fields of an encoded record at the offsets
// the table in journal.go documents.
func TestJournalLayout(t *testing.T) {
	r := &record{
		stage:       []extent{{0x1111, 0x22}},
		stageCRC:    0x33333333,
		commits:     []write{{0x4444, []byte("ab")}, {0x5555, []byte("cde")}},
		zeros:       []extent{{0x6666, 0x77}, {0x8888, 0x99}},
		seq:         0x0102030405060708,
		prevPending: true,
		eoaBefore:   0xaaaa,
		eoaAfter:    0xbbbb,
	}
	for _, spill := range []int64{0, 0xcccc} {
		r.spill = spill
		b, sp := r.encode()
		le := binary.LittleEndian
		n := 88 + 16*5
		if spill == 0 {
			n += 5
		}
		require.Len(t, b, n)
		require.Equal(t, "TSJRNL03", string(b[:8]))
		require.Equal(t, crc32.Checksum(b[12:], castagnoli), le.Uint32(b[8:]))
		require.EqualValues(t, 2, le.Uint32(b[12:]), "nz")
		require.EqualValues(t, n, le.Uint64(b[16:]), "length")
		require.EqualValues(t, spill, le.Uint64(b[24:]), "spill")
		require.EqualValues(t, 5, le.Uint64(b[32:]), "commit bytes")
		require.Equal(t, crc32.Checksum([]byte("abcde"), castagnoli), le.Uint32(b[40:]), "commit CRC")
		require.EqualValues(t, 0x33333333, le.Uint32(b[44:]), "stage CRC")
		require.EqualValues(t, 1, le.Uint32(b[48:]), "ns")
		require.EqualValues(t, 2, le.Uint32(b[52:]), "nc")
		require.EqualValues(t, r.seq, le.Uint64(b[56:]), "seq")
		require.EqualValues(t, flagPrevPending, le.Uint32(b[64:]), "flags")
		require.EqualValues(t, 0, le.Uint32(b[68:]), "reserved")
		require.EqualValues(t, 0xaaaa, le.Uint64(b[72:]), "eoaBefore")
		require.EqualValues(t, 0xbbbb, le.Uint64(b[80:]), "eoaAfter")
		var table []uint64
		for p := 88; p < 88+16*5; p += 8 {
			table = append(table, le.Uint64(b[p:]))
		}
		require.Equal(t, []uint64{0x1111, 0x22, 0x4444, 2, 0x5555, 3, 0x6666, 0x77, 0x8888, 0x99}, table)
		if spill == 0 {
			require.Nil(t, sp)
			require.Equal(t, "abcde", string(b[88+16*5:]))
		} else {
			require.Equal(t, "abcde", string(sp))
		}
	}
}

// TestJournalGolden pins the on-disk format: the encoder's bytes for a few
// records are those of testdata/journal, and decoding those files gives
// the records.
func TestJournalGolden(t *testing.T) {
	for _, sh := range jrShapes() {
		if !sh.golden {
			continue
		}
		t.Run(sh.name, func(t *testing.T) {
			r := sh.rec()
			head, spill := r.encode()
			jrGoldenFile(t, sh.name+".rec", head)
			if spill != nil {
				jrGoldenFile(t, sh.name+".spill", spill)
			}
			if *updateJournalGolden {
				return
			}
			wantHead, err := os.ReadFile(jrGoldenPath(sh.name + ".rec"))
			require.NoError(t, err)
			var wantSpill []byte
			if r.spill != 0 {
				wantSpill, err = os.ReadFile(jrGoldenPath(sh.name + ".spill"))
				require.NoError(t, err)
			}
			got, err := decodeRecord(wantHead, jrArea, jrSpills(t, r, wantSpill))
			require.NoError(t, err, "decoding the golden file")
			requireSameRecord(t, r, got)
		})
	}
}

func jrGoldenPath(name string) string { return filepath.Join("testdata", "journal", name) }

// jrGoldenFile compares got with the golden file name, or writes it with
// -update.
func jrGoldenFile(t *testing.T, name string, got []byte) {
	t.Helper()
	path := jrGoldenPath(name)
	if *updateJournalGolden {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		t.Logf("wrote %s (%d bytes)", path, len(got))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "golden file missing: go test ./kvtar -run TestJournalGolden -update")
	if bytes.Equal(got, want) {
		return
	}
	at := 0
	for at < min(len(got), len(want)) && got[at] == want[at] {
		at++
	}
	t.Errorf("%s: the encoding changed (%d bytes, golden %d; first difference at byte %d, %s).\n"+
		"The golden bytes are the on-disk format: a change needs a new journalMagic, then -update.\n"+
		"got:\n%s\ngolden:\n%s", path, len(got), len(want), at, jrField(at), hex.Dump(got), hex.Dump(want))
}

// jrField names the header field at byte offset at of a record.
func jrField(at int) string {
	fields := []struct {
		end  int
		name string
	}{{8, "magic"}, {12, "record CRC"}, {16, "nz"}, {24, "length"}, {32, "spill"}, {40, "commit bytes"},
		{44, "commit CRC"}, {48, "stage CRC"}, {52, "ns"}, {56, "nc"}, {64, "seq"}, {68, "flags"},
		{72, "reserved"}, {80, "eoaBefore"}, {88, "eoaAfter"}}
	for _, f := range fields {
		if at < f.end {
			return f.name
		}
	}
	return "tables or commit bytes"
}

// jrDecode decodes b, turning a panic into an error the test reports.
func jrDecode(b []byte, readSpill func(off, n int64) ([]byte, error)) (r *record, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("decodeRecord panicked: %v", p)
		}
	}()
	return decodeRecord(b, jrArea, readSpill)
}

// jrSmall is the small record the corruption tests change byte by byte.
func jrSmall() *record {
	return &record{
		stage:     []extent{{2048, 512}},
		stageCRC:  0xfeedface,
		commits:   []write{{1536, jrData(11, 16)}},
		zeros:     []extent{{4096, 512}},
		seq:       5,
		eoaBefore: 1536,
		eoaAfter:  2560,
	}
}

// TestJournalEveryByteCorrupt changes every byte of a small record (inline
// and spilled, the spilled bytes included) to every other value: each is
// errNoRecord, found by a checksum (or the magic, or the length) — except
// the one change of the magic to the previous format's, whose records are
// those of this format without hole entries: the record decodes the same.
func TestJournalEveryByteCorrupt(t *testing.T) {
	for _, spilled := range []bool{false, true} {
		r := jrSmall()
		if spilled {
			r.spill = 1 << 20
		}
		head, spill := r.encode()
		for _, padded := range []bool{false, true} {
			b := bytes.Clone(head)
			if padded {
				b = padSector(b, 512)
			}
			for i := range head {
				for v := 1; v < 256; v++ {
					b[i] ^= byte(v)
					got, err := jrDecode(b, jrSpills(t, r, spill))
					if string(b[:8]) == journalMagic02 {
						require.NoError(t, err, "a record of the previous format")
						require.Equal(t, r.commits, got.commits)
						b[i] ^= byte(v)
						continue
					}
					if !errors.Is(err, errNoRecord) {
						t.Fatalf("spilled %v, padded %v: byte %d (%s) ^ %#x: %v, %v, want errNoRecord", spilled, padded, i, jrField(i), v, got, err)
					}
					b[i] ^= byte(v)
				}
			}
		}
		if !spilled {
			continue
		}
		for i := range spill {
			for v := 1; v < 256; v++ {
				bad := bytes.Clone(spill)
				bad[i] ^= byte(v)
				got, err := jrDecode(head, jrSpills(t, r, bad))
				if !errors.Is(err, errNoRecord) {
					t.Fatalf("spilled byte %d ^ %#x: %v, %v, want errNoRecord", i, v, got, err)
				}
			}
		}
	}
}

// TestJournalTruncated decodes every prefix of a record: errNoRecord, as
// is a spilled payload cut short (or longer than the record says).
func TestJournalTruncated(t *testing.T) {
	for _, sh := range jrShapes() {
		r := sh.rec()
		head, spill := r.encode()
		for k := range len(head) {
			got, err := jrDecode(head[:k:k], noSpill(t))
			if !errors.Is(err, errNoRecord) {
				t.Fatalf("%s: %d of %d bytes: %v, %v, want errNoRecord", sh.name, k, len(head), got, err)
			}
			if k < journalHdrSize {
				_, err := decodeHead(head[:k])
				require.ErrorIs(t, err, errNoRecord)
			}
		}
		if spill == nil {
			continue
		}
		for _, cut := range [][]byte{nil, spill[:len(spill)/2], spill[:max(len(spill)-1, 0)], append(bytes.Clone(spill), 0)} {
			if len(cut) == len(spill) {
				continue // the record has no spilled bytes to cut
			}
			got, err := jrDecode(head, func(off, n int64) ([]byte, error) { return cut, nil })
			require.ErrorIs(t, err, errNoRecord, "%s: spilled bytes %d of %d: %v", sh.name, len(cut), len(spill), got)
		}
		if len(spill) > 0 {
			// Spilled bytes cut short, with room beyond them that holds
			// the rest: only their length counts.
			short := append(bytes.Clone(spill), make([]byte, 4096)...)[:len(spill)-1]
			got, err := jrDecode(head, func(off, n int64) ([]byte, error) { return short, nil })
			require.ErrorIs(t, err, errNoRecord, "%s: short spill with capacity: %v", sh.name, got)
		}
	}
}

// jrSeal writes the record CRC of b (b[16:24] says its length).
func jrSeal(b []byte) []byte {
	n := min(int(binary.LittleEndian.Uint64(b[16:])), len(b))
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[12:n], castagnoli))
	return b
}

// A jrHostile is a record changed after encoding, its CRC then fixed: the
// checksums hold, the contents are impossible.
type jrHostile struct {
	name string
	rec  func() *record
	// change changes the encoded head; tab(i) is the offset of entry i
	// of the tables (stage, commits, zeros, in order).
	change func(b []byte, tab func(i int) int) []byte
	// spilled, when not nil, replaces what readSpill returns.
	spilled func(want []byte) []byte
	// reseal: fix the record CRC after change.
	reseal bool
}

func jrPut64(b []byte, at int, v uint64) { binary.LittleEndian.PutUint64(b[at:], v) }
func jrPut32(b []byte, at int, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }

// jrThree is an inline record with three commit writes of 10 bytes.
func jrThree() *record {
	return &record{
		stage:   []extent{{4096, 512}},
		commits: []write{{512, jrData(1, 10)}, {1024, jrData(2, 10)}, {1536, jrData(3, 10)}},
		zeros:   []extent{{8192, 512}},
		seq:     3, eoaBefore: 1024, eoaAfter: 4608,
	}
}

// jrThreeSpilled is jrThree, spilled to free space of any device.
func jrThreeSpilled() *record {
	r := jrThree()
	r.spill = 16 << 10
	return r
}

// jrHostiles are the records decodeRecord must refuse with errNoRecord.
func jrHostiles() []jrHostile {
	const maxI = math.MaxInt64
	neg := uint64(1) << 63 // as an int64: the most negative
	total := func(b []byte) uint64 { return binary.LittleEndian.Uint64(b[32:]) }
	lenAt := func(tab func(int) int, i int) int { return tab(1+i) + 8 } // commit write i's length
	return []jrHostile{
		{name: "length beyond the buffer", rec: jrThree, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 16, uint64(len(b)+1))
			return b
		}},
		{name: "length below the header", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 16, journalHdrSize-1)
			return b
		}},
		{name: "length 2^63-1", rec: jrThree, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 16, maxI)
			return b
		}},
		{name: "length negative", rec: jrThree, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 16, math.MaxUint64)
			return b
		}},
		{name: "stage count past the record", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut32(b, 48, 6)
			return b
		}},
		{name: "stage count 2^32-1", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut32(b, 48, math.MaxUint32)
			return b
		}},
		{name: "commit count 2^32-1", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut32(b, 52, math.MaxUint32)
			return b
		}},
		{name: "zero count 2^32-1", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut32(b, 12, math.MaxUint32)
			return b
		}},
		{name: "every count 2^32-1", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut32(b, 12, math.MaxUint32)
			jrPut32(b, 48, math.MaxUint32)
			jrPut32(b, 52, math.MaxUint32)
			return b
		}},
		{name: "counts take the commit bytes", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut32(b, 12, 2) // the zero table runs into the 30 commit bytes (not a multiple of 16)
			return b
		}},
		{name: "commit length negative", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			// -1 and 11: the sum is still 30.
			jrPut64(b, lenAt(tab, 0), math.MaxUint64)
			jrPut64(b, lenAt(tab, 1), 21)
			return b
		}},
		{name: "commit lengths overflow", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			// 2^63-1 + 2^63-1 + 32 wraps to 30.
			jrPut64(b, lenAt(tab, 0), maxI)
			jrPut64(b, lenAt(tab, 1), maxI)
			jrPut64(b, lenAt(tab, 2), 32)
			return b
		}},
		{name: "commit length past the commit bytes", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, lenAt(tab, 0), 31)
			jrPut64(b, lenAt(tab, 1), 0)
			jrPut64(b, lenAt(tab, 2), math.MaxUint64)
			return b
		}},
		{name: "commit lengths short of the total", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, lenAt(tab, 2), 9)
			return b
		}},
		{name: "total negative", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 32, neg)
			return b
		}},
		{name: "total past the record", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, 32, total(b)+1)
			jrPut64(b, lenAt(tab, 2), 11)
			return b
		}},
		{name: "commit bytes past the record", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			// The commit bytes end at the record's length; trailing bytes
			// within the length are not commit bytes.
			b = append(b, 0)
			jrPut64(b, 16, uint64(len(b)))
			return b
		}},
		{name: "commit checksum", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			b[40] ^= 1
			return b
		}},
		{name: "stage offset negative", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(0), neg)
			return b
		}},
		{name: "stage length negative", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(0)+8, math.MaxUint64)
			return b
		}},
		{name: "stage extent end overflows", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(0), maxI)
			return b
		}},
		{name: "commit offset negative", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(1), math.MaxUint64-511)
			return b
		}},
		{name: "commit write end overflows", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(2), maxI-5)
			return b
		}},
		{name: "zero offset negative", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(4), neg)
			return b
		}},
		{name: "zero length negative", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(4)+8, neg)
			return b
		}},
		{name: "zero extent end overflows", rec: jrThree, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			jrPut64(b, tab(4)+8, maxI)
			return b
		}},
		{name: "end of archive before negative", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 72, math.MaxUint64)
			return b
		}},
		{name: "end of archive after negative", rec: jrThree, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 80, neg)
			return b
		}},
		{name: "spill negative", rec: jrThreeSpilled, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 24, math.MaxUint64-4095)
			return b
		}},
		{name: "spill end overflows", rec: jrThreeSpilled, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			jrPut64(b, 24, maxI-total(b)+1)
			return b
		}},
		{name: "spill end overflows, huge total", rec: jrThreeSpilled, reseal: true, change: func(b []byte, tab func(int) int) []byte {
			// Both under 2^63, their sum over it: a bounds check
			// off+n > limit in readSpill would pass.
			jrPut64(b, 24, 1<<62)
			jrPut64(b, 32, 1<<62+20)
			jrPut64(b, lenAt(tab, 2), 1<<62)
			return b
		}},
		{name: "spilled bytes checksum", rec: jrThreeSpilled, spilled: func(want []byte) []byte {
			bad := bytes.Clone(want)
			bad[len(bad)-1] ^= 0x80
			return bad
		}},
		{name: "spilled bytes short", rec: jrThreeSpilled, spilled: func(want []byte) []byte { return want[:len(want)-1] }},
		{name: "spilled bytes long", rec: jrThreeSpilled, spilled: func(want []byte) []byte { return append(bytes.Clone(want), 0) }},
		{name: "spilled record with bytes after its tables", rec: jrThreeSpilled, reseal: true, change: func(b []byte, _ func(int) int) []byte {
			b = append(b, make([]byte, 16)...)
			jrPut64(b, 16, uint64(len(b)))
			return b
		}},
	}
}

// bytes returns the head of h and what its readSpill returns.
func (h jrHostile) bytes() (r *record, head, spill []byte) {
	r = h.rec()
	head, spill = r.encode()
	if h.change != nil {
		head = h.change(head, func(i int) int { return journalHdrSize + 16*i })
	}
	if h.reseal {
		head = jrSeal(head)
	}
	if h.spilled != nil {
		spill = h.spilled(spill)
	}
	return r, head, spill
}

// TestJournalHostile decodes records whose checksums hold but whose
// contents are impossible: lengths and counts that overflow or point
// outside the record, negative offsets, a spilled payload that does not
// match. Each is errNoRecord; none panics, and readSpill is never asked
// for a range whose end overflows.
func TestJournalHostile(t *testing.T) {
	for _, h := range jrHostiles() {
		t.Run(h.name, func(t *testing.T) {
			_, head, spill := h.bytes()
			got, err := jrDecode(head, func(off, n int64) ([]byte, error) {
				if off < 0 || n < 0 || off > math.MaxInt64-n {
					t.Errorf("readSpill(%d, %d): a range readSlot's bounds check gets wrong", off, n)
					return nil, errNoRecord
				}
				if n > 1<<20 {
					return nil, errNoRecord
				}
				return spill, nil
			})
			require.ErrorIs(t, err, errNoRecord, "decoded %+v", got)
			require.Nil(t, got)
		})
	}
}

// TestJournalSpillReadError: an error of readSpill is returned as it is
// (an I/O error fails the open; it is not a torn record).
func TestJournalSpillReadError(t *testing.T) {
	r := jrThreeSpilled()
	head, _ := r.encode()
	ioErr := errors.New("device gone")
	_, err := decodeRecord(head, jrArea, func(off, n int64) ([]byte, error) { return nil, ioErr })
	require.ErrorIs(t, err, ioErr)
	require.NotErrorIs(t, err, errNoRecord)
}

// jrNewStore formats a device of size bytes and returns a store on it that
// was not opened (no recovery ran): the journal area is the test's.
func jrNewStore(t testing.TB, ss int, size int64) (*Store, *mem.Device) {
	t.Helper()
	dev, err := mem.New(ss, uint64(size)/uint64(ss))
	require.NoError(t, err)
	require.NoError(t, Format(dev))
	s, err := newStore(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	return s, dev
}

// jrWrite writes p at off on s's device.
func jrWrite(t testing.TB, s *Store, off int64, p []byte) {
	t.Helper()
	b := blockio.NewBatch(s.dev)
	b.Write(off, p)
	require.NoError(t, b.Issue())
	require.NoError(t, s.dev.Flush())
}

// jrWriteRecord writes r's head to journal slot i and its spilled bytes
// (if any, and if they lie on the device) where it says.
func jrWriteRecord(t testing.TB, s *Store, i int, head, spill []byte, at int64) {
	t.Helper()
	jrWrite(t, s, s.slotOff(i), padSector(bytes.Clone(head), s.ss))
	if len(spill) > 0 && at >= 0 && at <= s.limit+s.jsize-int64(len(spill)) {
		jrWrite(t, s, at, spill)
	}
}

// TestJournalSpillOutsideArchive reads spilled records from a device's
// journal slot: spilled bytes inside the archive area are read; a spill
// offset (or end) outside it, into the journal area or past the device or
// wrapping around, is errNoRecord.
func TestJournalSpillOutsideArchive(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		// No end-of-test check: the journal slots hold records written by hand.
		s, _ := jrNewStore(t, ss, 1<<20)
		r := jrSmall()
		r.commits = append(r.commits, write{3072, jrData(12, 1000)})
		n := r.commitLen()
		cases := []struct {
			at int64
			ok bool
		}{
			{s.limit - n, true},
			{s.limit / 2, true},
			{1, true},
			{s.limit - n + 1, false}, // ends in the journal area
			{s.limit, false},
			{s.limit + s.jsize - n, false}, // in the journal area, on the device
			{s.limit + s.jsize, false},     // past the device
			{math.MaxInt64 - n/2, false},   // off+n wraps
			{math.MaxInt64, false},
			{1 << 62, false},
		}
		for _, c := range cases {
			r.spill = c.at
			head, spill := r.encode()
			jrWriteRecord(t, s, int(r.seq%2), head, spill, c.at)
			got, err := s.readSlot(int(r.seq % 2))
			if c.ok {
				require.NoError(t, err, "ss %d spill at %d", ss, c.at)
				requireSameRecord(t, r, got)
			} else {
				require.ErrorIs(t, err, errNoRecord, "ss %d spill at %d (limit %d)", ss, c.at, s.limit)
			}
		}
		// A record longer than its slot is not read at all.
		big := &record{commits: []write{{0, make([]byte, s.slotSize())}}, seq: 1}
		head, _ := big.encode()
		jrWrite(t, s, s.slotOff(1), head[:s.ss])
		_, err := s.readSlot(1)
		require.ErrorIs(t, err, errNoRecord)
	}
}

// TestJournalHostileRecordOpens: a device whose journal slot holds a
// hostile record with valid checksums opens (the record is no record,
// its slot dirty) without a panic or a huge allocation, as does a
// read-only open.
func TestJournalHostileRecordOpens(t *testing.T) {
	for _, h := range jrHostiles() {
		t.Run(h.name, func(t *testing.T) {
			// No end-of-test check: the journal slot holds a record written
			// by hand, whose writes are no archive when a device decodes it
			// ("spilled bytes long": the device holds the right bytes).
			s, dev := jrNewStore(t, 512, 1<<20)
			r, head, spill := h.bytes()
			jrWriteRecord(t, s, int(r.seq%2), head, spill, r.spill)
			for _, ro := range []bool{true, false} {
				d := dev.Clone()
				var s2 *Store
				var err error
				func() {
					defer func() {
						if p := recover(); p != nil {
							err = fmt.Errorf("panic: %v", p)
						}
					}()
					if ro {
						s2, err = New(clock.NewFake(time.Unix(1e9, 0)), d.ReadOnlyView())
					} else {
						s2, err = New(clock.NewFake(time.Unix(1e9, 0)), d)
					}
				}()
				require.NoError(t, err, "read-only %v", ro)
				require.Empty(t, contents(t, s2))
				require.NoError(t, s2.Close())
			}
		})
	}
}

// FuzzDecodeRecord decodes arbitrary bytes as a journal record. It must
// not panic, must not ask readSpill for a range whose end overflows, and
// must allocate in proportion to the record's own length (the spilled
// bytes aside, which readSpill allocates within the archive area); a
// record it accepts is consistent and encodes back to its own bytes (the
// flag bits it ignores aside).
//
//	go test -run '^$' -fuzz FuzzDecodeRecord -fuzztime 60s ./kvtar/
func FuzzDecodeRecord(f *testing.F) {
	for _, sh := range jrShapes() {
		head, _ := sh.rec().encode()
		f.Add(head)
	}
	for _, h := range jrHostiles() {
		_, head, _ := h.bytes()
		f.Add(head)
	}
	small, _ := jrSmall().encode()
	for i := 0; i < len(small); i += 7 {
		f.Add(small[:i])
	}
	f.Add([]byte{})
	f.Add([]byte(journalMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		spill := func(off, n int64) ([]byte, error) {
			if off < 0 || n < 0 || off > math.MaxInt64-n {
				t.Fatalf("readSpill(%d, %d)", off, n)
			}
			if n > int64(len(jrSpillArea)) {
				return nil, errNoRecord // as readSlot does outside the archive area
			}
			return jrSpillArea[:n:n], nil
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := decodeRecord(data, jrArea, spill)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8*uint64(len(data))+1<<20 {
			t.Fatalf("decodeRecord of %d bytes allocated %d bytes", len(data), grew)
		}
		if err != nil {
			if r != nil {
				t.Fatalf("a record and an error: %v", err)
			}
			if !errors.Is(err, errNoRecord) {
				t.Fatalf("error %v, want errNoRecord (readSpill fails with nothing else)", err)
			}
			return
		}
		n, err := decodeHead(data)
		if err != nil || n > int64(len(data)) {
			t.Fatalf("accepted a record whose head is refused: %v", err)
		}
		var total int64
		for _, w := range r.commits {
			if w.off < 0 || w.off > math.MaxInt64-int64(len(w.data)) {
				t.Fatalf("commit write at %d of %d bytes", w.off, len(w.data))
			}
			total += int64(len(w.data))
		}
		for _, e := range slices.Concat(r.stage, r.zeros) {
			if e.off < 0 || e.len < 0 || e.off > math.MaxInt64-e.len {
				t.Fatalf("extent %+v", e)
			}
		}
		if r.spill < 0 || r.eoaBefore < 0 || r.eoaAfter < 0 {
			t.Fatalf("spill %d, end of archive %d, %d", r.spill, r.eoaBefore, r.eoaAfter)
		}
		// Canonical: the bytes of the record, but for the flag bits and
		// the reserved field (which decodeRecord ignores), are what
		// encode makes of it.
		want := bytes.Clone(data[:n])
		jrPut32(want, 64, binary.LittleEndian.Uint32(want[64:])&flagPrevPending)
		jrPut32(want, 68, 0)
		copy(want, journalMagic) // a record of the previous format is encoded in this one
		jrSeal(want)
		again := *r
		head, sp := again.encode()
		if !bytes.Equal(head, want) {
			t.Fatalf("re-encoded:\n%s\nwant:\n%s", hex.Dump(head), hex.Dump(want))
		}
		if r.spill != 0 && int64(len(sp)) != total {
			t.Fatalf("re-encoded spill of %d bytes, want %d", len(sp), total)
		}
	})
}
