package dma

import (
	"bytes"
	"testing"
)

func TestPoolAllocFree(t *testing.T) {
	mem := mapped(t, 8*Page)
	p := NewPool(NewRegion(mem, 0x10000))
	a, ok := p.Alloc(Page + 1) // two pages
	if !ok || len(a) != Page+1 {
		t.Fatalf("Alloc(Page+1) = %d bytes, %v", len(a), ok)
	}
	b, _ := p.Alloc(3 * Page)
	c, _ := p.Alloc(3 * Page)
	if _, ok := p.Alloc(Page); ok {
		t.Fatal("Alloc succeeded in a full pool")
	}
	for i, x := range [][]byte{a, b, c} {
		addr, ok := p.Addr(x)
		if !ok {
			t.Fatalf("buffer %d not found in the pool", i)
		}
		off := int(addr - 0x10000)
		if &mem[off] != &x[0] {
			t.Fatalf("buffer %d: device address %#x is not its place in the region", i, addr)
		}
	}
	copy(b, bytes.Repeat([]byte{0xaa}, len(b)))
	if !p.Free(b) || p.Free(b) || p.Outstanding() != 2 {
		t.Fatalf("Free: second Free succeeded, or %d outstanding", p.Outstanding())
	}
	if p.Free(make([]byte, Page)) {
		t.Fatal("Free of ordinary memory succeeded")
	}
	// The freed pages are handed out again, zeroed; a and c's neighbours
	// coalesce once they go too.
	d, ok := p.Alloc(3 * Page)
	if !ok || !bytes.Equal(d, make([]byte, 3*Page)) {
		t.Fatalf("Alloc after Free: %v, zeroed %v", ok, bytes.Equal(d, make([]byte, 3*Page)))
	}
	p.Free(a)
	p.Free(c)
	p.Free(d)
	if e, ok := p.Alloc(8 * Page); !ok || len(e) != 8*Page {
		t.Fatalf("the freed pool does not hold one buffer of all its pages: %v", ok)
	}
}

// A buffer never straddles a chunk of memory whose device addresses are
// not contiguous.
func TestPoolChunks(t *testing.T) {
	mem := mapped(t, 4*Page)
	r, err := NewChunkedRegion(mem, 2*Page, []uint64{0x80000, 0x20000})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(r)
	a, _ := p.Alloc(Page)
	b, ok := p.Alloc(2 * Page) // does not fit after a in chunk 0
	if !ok {
		t.Fatal("Alloc(2 pages) failed with a whole chunk free")
	}
	if addr, _ := p.Addr(b); addr != 0x20000 {
		t.Fatalf("2-page buffer at %#x, want the second chunk's 0x20000", addr)
	}
	if _, ok := p.Addr(mem[Page : 3*Page]); ok {
		t.Fatal("Addr of bytes across two chunks succeeded")
	}
	if addr, ok := p.Addr(a[512:1024]); !ok || addr != 0x80000+512 {
		t.Fatalf("Addr of part of a buffer = %#x, %v", addr, ok)
	}
	if r, ok := p.Slice(b[Page:]); !ok || r.Len() != Page || r.Addr(0) != 0x20000+Page || &r.B[0] != &b[Page] {
		t.Fatalf("Slice of the second page of a buffer: %v", ok)
	}
}

// A retired BufferPool hands out ordinary memory and releases its memory
// once releasable and empty, not before.
func TestBufferPool(t *testing.T) {
	mem := mapped(t, 4*Page)
	released := 0
	p := NewBufferPool(NewRegion(mem, 0x10000), func() error { released++; return nil })
	a := p.Alloc(Page)
	if _, ok := p.Addr(a); !ok {
		t.Fatal("Alloc did not come from the pool")
	}
	if big := p.Alloc(8 * Page); len(big) != 8*Page {
		t.Fatalf("Alloc beyond the pool: %d bytes", len(big))
	}
	if err := p.Retire(false); err != nil || released != 0 {
		t.Fatalf("Retire(false): %v, %d releases", err, released)
	}
	if b := p.Alloc(Page); len(b) != Page {
		t.Fatal("Alloc of a retired pool failed")
	} else if _, ok := p.Addr(b); ok {
		t.Fatal("a retired pool handed out a buffer")
	}
	p.Release(a)
	if released != 0 || p.Released() {
		t.Fatal("a pool whose device may still reach it was released")
	}

	p = NewBufferPool(NewRegion(mapped(t, 4*Page), 0x10000), func() error { released++; return nil })
	a = p.Alloc(Page)
	p.Retire(true)
	if released != 0 {
		t.Fatal("released with a buffer out")
	}
	p.Release(make([]byte, Page)) // not the pool's
	if released != 0 {
		t.Fatal("released on the return of another buffer")
	}
	p.Release(a)
	if released != 1 || !p.Released() {
		t.Fatalf("%d releases after the last buffer came back, want 1", released)
	}
	p.Release(a)
	if released != 1 {
		t.Fatal("released twice")
	}
}

// TestNilBufferPool: a driver without a pool hands out ordinary memory and
// ignores releases.
func TestNilBufferPool(t *testing.T) {
	var p *BufferPool
	b := p.Alloc(100)
	if len(b) != 100 {
		t.Fatalf("Alloc(100) of a nil pool: %d bytes", len(b))
	}
	if err := p.Release(b); err != nil {
		t.Fatal(err)
	}
}
