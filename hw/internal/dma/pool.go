package dma

import (
	"sort"
	"sync"
)

// Pool hands out buffers carved from a Region — the memory behind a
// driver's hw.Allocator — and finds the device address of any byte of
// them. Buffers are runs of whole pages (Page bytes), first fit, each
// within one chunk of the region so its device addresses are contiguous;
// Free takes one back. It is safe for concurrent use.
type Pool struct {
	r    Region
	base uint64 // virtual address of r.B[0]

	mu   sync.Mutex
	free []span      // sorted by offset, coalesced
	used map[int]int // offset → length of buffers handed out
}

// Memory is mapped memory a device can reach, owned by whoever created
// it (a driver's buffer pool, which outlives the transports that share it
// with the device). Region must not be used after Close.
type Memory interface {
	Region() Region
	Close() error
}

// span is n bytes at offset off of the pool's region.
type span struct{ off, n int }

// Page is the granule of a Pool: every buffer starts on a page of the
// region and takes whole pages.
const Page = 4096

// NewPool returns a Pool over r, whose first byte must be page-aligned in
// memory (mapped memory is).
func NewPool(r Region) *Pool {
	p := &Pool{r: r, used: map[int]int{}}
	if n := r.Len() &^ (Page - 1); n > 0 {
		p.base = AddrOf(r.B)
		p.free = []span{{0, n}}
	}
	return p
}

// Alloc returns a zeroed buffer of n bytes (0 < n), or false when the pool
// has no contiguous room for it.
func (p *Pool) Alloc(n int) ([]byte, bool) {
	if n <= 0 {
		return nil, false
	}
	size := (n + Page - 1) &^ (Page - 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.free {
		off := s.off
		for off+size <= s.off+s.n && !p.r.Contiguous(off, size) {
			// Skip to the next chunk of the region.
			m := p.r.off + off
			off += p.r.chunk - m%p.r.chunk
		}
		if off+size > s.off+s.n {
			continue
		}
		p.take(i, off, size)
		b := p.r.B[off : off+n : off+n]
		clear(b)
		return b, true
	}
	return nil, false
}

// take removes [off, off+size) from free span i and records it as used.
// The caller holds mu.
func (p *Pool) take(i, off, size int) {
	s := p.free[i]
	var rest []span
	if off > s.off {
		rest = append(rest, span{s.off, off - s.off})
	}
	if end := off + size; end < s.off+s.n {
		rest = append(rest, span{end, s.off + s.n - end})
	}
	p.free = append(p.free[:i], append(rest, p.free[i+1:]...)...)
	p.used[off] = size
}

// Free returns a buffer Alloc handed out, given as Alloc returned it (any
// length, the same first byte); it reports false, and does nothing, for
// any other slice.
func (p *Pool) Free(b []byte) bool {
	off, ok := p.offset(b)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	size, ok := p.used[off]
	if !ok {
		return false
	}
	delete(p.used, off)
	i := sort.Search(len(p.free), func(i int) bool { return p.free[i].off > off })
	p.free = append(p.free[:i], append([]span{{off, size}}, p.free[i:]...)...)
	// Coalesce with the neighbours.
	if i+1 < len(p.free) && p.free[i].off+p.free[i].n == p.free[i+1].off {
		p.free[i].n += p.free[i+1].n
		p.free = append(p.free[:i+1], p.free[i+2:]...)
	}
	if i > 0 && p.free[i-1].off+p.free[i-1].n == p.free[i].off {
		p.free[i-1].n += p.free[i].n
		p.free = append(p.free[:i], p.free[i+1:]...)
	}
	return true
}

// Outstanding returns the number of buffers handed out and not freed.
func (p *Pool) Outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

// offset returns the offset of b's first byte in the pool's region, if b
// lies in it.
func (p *Pool) offset(b []byte) (int, bool) {
	if len(b) == 0 || p.base == 0 {
		return 0, false
	}
	a := AddrOf(b)
	if a < p.base || a+uint64(len(b)) > p.base+uint64(p.r.Len()) {
		return 0, false
	}
	return int(a - p.base), true
}

// Addr returns the device address of b's first byte when all of b lies
// in the pool's region with contiguous device addresses, so that a
// device can be given b as one buffer. b need not be a whole buffer of
// Alloc: any part of one will do.
func (p *Pool) Addr(b []byte) (uint64, bool) {
	r, ok := p.Slice(b)
	if !ok {
		return 0, false
	}
	return r.Addr(0), true
}

// Slice returns b as a Region of the pool's, when all of b lies in the
// pool's region with contiguous device addresses (see Addr).
func (p *Pool) Slice(b []byte) (Region, bool) {
	off, ok := p.offset(b)
	if !ok || !p.r.Contiguous(off, len(b)) {
		return Region{}, false
	}
	return p.r.Slice(off, len(b)), true
}

// BufferPool is a driver's buffer pool (hw.Allocator, hw.Releaser): a
// Pool over memory the driver owns, handed out until Retire, and released
// once retired and every buffer came back. It is safe for concurrent use.
type BufferPool struct {
	*Pool
	release func() error // nil if nothing needs releasing

	mu         sync.Mutex
	retired    bool // no more buffers are handed out
	releasable bool // the device no longer reaches the memory
	released   bool
}

// NewBufferPool returns a BufferPool over r; release, if not nil, frees
// r's memory.
func NewBufferPool(r Region, release func() error) *BufferPool {
	return &BufferPool{Pool: NewPool(r), release: release}
}

// Alloc returns a zeroed buffer of n bytes from the pool, or ordinary
// memory when the pool has no room, is retired, or is nil (a driver
// without a pool).
func (p *BufferPool) Alloc(n int) []byte {
	if p == nil {
		return make([]byte, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.retired {
		if b, ok := p.Pool.Alloc(n); ok {
			return b
		}
	}
	return make([]byte, n)
}

// Release takes back a buffer Alloc returned, ignores any other (and
// every buffer when p is nil), and releases the memory when it was the
// last one out of a releasable retired pool.
func (p *BufferPool) Release(b []byte) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.Free(b) {
		return nil
	}
	return p.releaseLocked()
}

// Retire stops handing out buffers. When releasable — the device can no
// longer reach the memory — the memory is released now if no buffer is
// out, else when the last one comes back; otherwise it is kept for good.
func (p *BufferPool) Retire(releasable bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retired, p.releasable = true, releasable
	return p.releaseLocked()
}

// Released reports whether the pool's memory was released.
func (p *BufferPool) Released() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.released
}

func (p *BufferPool) releaseLocked() error {
	if !p.retired || !p.releasable || p.released || p.Outstanding() > 0 {
		return nil
	}
	p.released = true
	if p.release != nil {
		return p.release()
	}
	return nil
}
