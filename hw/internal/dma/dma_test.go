package dma

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func mapped(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestWordsAreLittleEndian(t *testing.T) {
	r := NewRegion(mapped(t, 4096), 0x10000)
	w, err := r.Words()
	if err != nil {
		t.Fatal(err)
	}
	w.Store32(8, 0x04030201)
	w.Write32(12, 0x08070605)
	if got := r.B[8:16]; string(got) != "\x01\x02\x03\x04\x05\x06\x07\x08" {
		t.Fatalf("memory holds % x", got)
	}
	binary.LittleEndian.PutUint32(r.B[16:], 0xdeadbeef)
	if w.Load32(16) != 0xdeadbeef || w.Read32(16) != 0xdeadbeef {
		t.Fatalf("Load32 %#x Read32 %#x", w.Load32(16), w.Read32(16))
	}
	if w.Len() != 4096 {
		t.Fatalf("Len %d", w.Len())
	}
}

func TestWordsRejectBadOffsets(t *testing.T) {
	w, err := NewRegion(mapped(t, 4096), 0).Words()
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{-4, 2, 4093, 4096} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("offset %d: no panic", off)
				}
			}()
			w.Load32(off)
		}()
	}
}

func TestRegionSlice(t *testing.T) {
	b := mapped(t, 8192)
	r := NewRegion(b, 0x200000)
	s := r.Slice(4096, 100)
	if s.Addr(0) != 0x201000 || s.Len() != 100 || AddrOf(s.B) != AddrOf(b)+4096 {
		t.Fatalf("slice %#x %d", s.Addr(0), s.Len())
	}
	if _, err := r.Slice(2, 8).Words(); err == nil {
		t.Error("misaligned words accepted")
	}
	if _, err := r.Slice(0, 6).Words(); err == nil {
		t.Error("partial word accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("out-of-range Slice did not panic")
		}
	}()
	r.Slice(8000, 200)
}

func TestChunkedRegion(t *testing.T) {
	b := mapped(t, 16384)
	r, err := NewChunkedRegion(b, 4096, []uint64{0x9000, 0x2000, 0x100000, 0x3000})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off  int
		addr uint64
	}{{0, 0x9000}, {4095, 0x9fff}, {4096, 0x2000}, {8200, 0x100008}, {16383, 0x3fff}, {16384, 0x4000}} {
		if got := r.Addr(c.off); got != c.addr {
			t.Errorf("Addr(%d) = %#x, want %#x", c.off, got, c.addr)
		}
	}
	if r.Contiguous(4000, 200) || !r.Contiguous(4096, 4096) || r.Contiguous(16000, 1000) {
		t.Error("Contiguous wrong")
	}
	s := r.Slice(6000, 4000)
	if s.Addr(0) != 0x2000+6000-4096 || s.Addr(3000) != 0x100000+9000-8192 || s.Contiguous(0, 3000) {
		t.Errorf("slice addresses %#x %#x", s.Addr(0), s.Addr(3000))
	}
	if _, err := NewChunkedRegion(b, 3000, nil); err == nil {
		t.Error("chunk 3000 accepted")
	}
	if _, err := NewChunkedRegion(b, 4096, []uint64{1}); err == nil {
		t.Error("too few addresses accepted")
	}
}

func TestCarver(t *testing.T) {
	b := mapped(t, 16384)
	r, err := NewChunkedRegion(b, 4096, []uint64{0x10000, 0x40000, 0x20000, 0x80000})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCarver(r)
	want := []struct {
		n, align int
		addr     uint64
	}{
		{100, 16, 0x10000},
		{16, 16, 0x10070},
		{4000, 4, 0x40000}, // 0x10080+4000 would straddle
		{64, 64, 0x40fc0},
		{4096, 4096, 0x20000},
		{10, 4096, 0x80000},
	}
	for _, w := range want {
		p, err := c.Take(w.n, w.align)
		if err != nil {
			t.Fatal(err)
		}
		if p.Addr(0) != w.addr || p.Len() != w.n || !p.Contiguous(0, w.n) {
			t.Errorf("Take(%d, %d) at %#x (%d bytes), want %#x", w.n, w.align, p.Addr(0), p.Len(), w.addr)
		}
	}
	if _, err := c.Take(4096, 1); err == nil {
		t.Error("Take beyond the region succeeded")
	}
	if _, err := c.Take(1, 3); err == nil {
		t.Error("alignment 3 accepted")
	}
	whole := NewCarver(NewRegion(mapped(t, 8192), 0x1000))
	if p, err := whole.Take(8192, 4096); err != nil || p.Addr(8191) != 0x2fff {
		t.Errorf("contiguous region: %v", err)
	}
}
