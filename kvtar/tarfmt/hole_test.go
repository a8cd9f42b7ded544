package tarfmt

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// holeByWrites makes a hole of n blocks the way the store does: the span
// holds old bytes (random binary here, or an old member), and only
// HoleWrites are applied.
func holeByWrites(n int64, old func(off, size int64) []byte) func(t *testing.T, f *os.File, off int64) int64 {
	return func(t *testing.T, f *os.File, off int64) int64 {
		if _, err := f.WriteAt(old(off, n*BlockSize), off); err != nil {
			t.Fatal(err)
		}
		writes, err := HoleWrites(off, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range writes {
			if _, err := f.WriteAt(w.Data, w.Offset); err != nil {
				t.Fatal(err)
			}
		}
		return n * BlockSize
	}
}

func randomBytes(off, size int64) []byte { return pattern(uint64(off), int(size)) }

// holeInMemory makes a hole of n blocks with EncodeHole.
func holeInMemory(n int64, filler byte) func(t *testing.T, f *os.File, off int64) int64 {
	return func(t *testing.T, f *os.File, off int64) int64 {
		b, err := EncodeHole(n, filler)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		return int64(len(b))
	}
}

// removedMember writes a member (with an x header: its name is long) and
// then turns its whole span, x header included, into a hole.
func removedMember(name string, size int) func(t *testing.T, f *os.File, off int64) int64 {
	return func(t *testing.T, f *os.File, off int64) int64 {
		hdr, err := EncodeHeader(Header{Name: name, Typeflag: TypeReg, Size: int64(size), Mode: 0o644, ModTime: t0})
		if err != nil {
			t.Fatal(err)
		}
		if len(hdr) == BlockSize {
			t.Fatal("no x header")
		}
		span := append(append(hdr, pattern(9, size)...), Padding(int64(size))...)
		return holeByWrites(int64(len(span)/BlockSize), func(int64, int64) []byte { return span })(t, f, off)
	}
}

// TestHolesReaders interleaves members and holes of many sizes and
// fillers; every reader must see exactly the members.
func TestHolesReaders(t *testing.T) {
	var ws []want
	for i := 0; i < 14; i++ {
		size := []int{0, 1, 700, 5000}[i%4]
		name := fmt.Sprintf("m%02d.bin", i)
		if i%5 == 3 {
			name = strings.Repeat("long-", 30) + name // an x header after a hole
		}
		ws = append(ws, want{Header: Header{Name: name, Typeflag: TypeReg, Size: int64(size), Mode: 0o644,
			Uid: 1, Gid: 2, Uname: "u", Gname: "g", ModTime: t0}, Data: pattern(uint64(i), size)})
	}
	holes := [][]func(t *testing.T, f *os.File, off int64) int64{
		{holeInMemory(1, 0)},
		{holeInMemory(2, ' ')},
		{holeByWrites(1025, randomBytes)},                               // exactly 512 KiB of data
		{holeByWrites(1026, randomBytes)},                               // 1025 + a 1-block chunk
		{holeByWrites(3*1025+7, randomBytes)},                           // several chunks
		{holeInMemory(3, 0), holeInMemory(1, 0)},                        // consecutive holes
		{removedMember(strings.Repeat("gone", 60), 3000)},               // x header + member removed
		{holeByWrites(1024, randomBytes), holeByWrites(2, randomBytes)}, // 512 KiB - 512 B, then more
		{holeInMemory(2, '\n')},
		{holeByWrites(5000, randomBytes)},
		{removedMember(strings.Repeat("z", 200), 0)},
		{holeInMemory(1025, 0xff)},
		{holeByWrites(3, func(off, size int64) []byte { return make([]byte, size) })},
	}
	var pieces []piece
	for i := range ws {
		if i > 0 && i-1 < len(holes) {
			for _, h := range holes[i-1] {
				pieces = append(pieces, piece{hole: h})
			}
		}
		pieces = append(pieces, piece{member: &ws[i]})
	}
	// A hole first, before any member.
	pieces = append([]piece{{hole: holeByWrites(4, randomBytes)}}, pieces...)
	path := writeArchive(t, pieces)
	checkAllReaders(t, path, ws, true)

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := decodeArchive(data, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	holesSeen := 0
	for _, g := range res.globals {
		if !g.Hole || g.Records != nil || g.DataSize > MaxHoleChunkData {
			t.Errorf("global %+v", g)
		}
		holesSeen++
	}
	if holesSeen < 20 {
		t.Errorf("%d hole chunks decoded: %q", holesSeen, res.events)
	}
}

func TestHoleChunks(t *testing.T) {
	for _, c := range []struct {
		blocks int64
		want   []int64
	}{
		{1, []int64{1}}, {2, []int64{2}}, {1024, []int64{1024}}, {1025, []int64{1025}},
		{1026, []int64{1025, 1}}, {2051, []int64{1025, 1025, 1}}, {2050, []int64{1025, 1025}},
	} {
		chunks, err := HoleChunks(1024, c.blocks)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		off := int64(1024)
		for _, ch := range chunks {
			got = append(got, ch.Blocks)
			if ch.Offset != off {
				t.Errorf("%d: chunk at %d, want %d", c.blocks, ch.Offset, off)
			}
			off += ch.Blocks * BlockSize
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%d blocks: chunks %v, want %v", c.blocks, got, c.want)
		}
	}
	for _, c := range []struct{ off, blocks int64 }{{0, 0}, {0, -1}, {100, 1}, {-512, 1}, {512, 1 << 60}} {
		if _, err := HoleChunks(c.off, c.blocks); err == nil {
			t.Errorf("HoleChunks(%d, %d) succeeded", c.off, c.blocks)
		}
	}
	if _, err := HoleHeader(100); err == nil {
		t.Error("HoleHeader(100) succeeded")
	}
}

// TestHoleEveryChunkSize: for every chunk size the record fills the data
// exactly and decodes as a hole, including the sizes where the length's
// digit count changes (512 has 3 digits, 1024 4, 10240 5 (21 blocks),
// 100352 6 (197 blocks)).
func TestHoleEveryChunkSize(t *testing.T) {
	var sizes []int64
	for n := int64(1); n <= maxChunkBlocks; n++ {
		if n <= 25 || (190 <= n && n <= 200) || n >= 1020 || n%97 == 0 {
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		h, err := EncodeHole(n, 'x')
		if err != nil {
			t.Fatal(err)
		}
		if n > 1 {
			recs, err := ParseRecords(h[BlockSize:])
			if err != nil || len(recs) != 1 || recs[0].Key != "comment" {
				t.Fatalf("%d blocks: %v %v", n, recs, err)
			}
		}
		res, err := decodeArchive(h, int64(len(h)))
		if err != nil || len(res.globals) != 1 || !res.globals[0].Hole || res.globals[0].End != n*BlockSize {
			t.Fatalf("%d blocks: %v %q", n, err, res.events)
		}
	}
}

// TestHoleWritesCover: HoleWrites touch only the header, the prefix and the
// last byte of each chunk, in order.
func TestHoleWritesCover(t *testing.T) {
	writes, err := HoleWrites(512, 2051)
	if err != nil {
		t.Fatal(err)
	}
	if len(writes) != 3+3+1 {
		t.Fatalf("%d writes", len(writes))
	}
	last := int64(0)
	for _, w := range writes {
		if w.Offset < last {
			t.Errorf("write at %d before %d", w.Offset, last)
		}
		last = w.Offset + int64(len(w.Data))
	}
	if !bytes.Equal(writes[1].Data, []byte("524288 comment=")) || writes[2].Offset != 512+1025*512-1 {
		t.Errorf("writes %v", writes[:3])
	}
}
