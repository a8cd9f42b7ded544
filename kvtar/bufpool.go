package kvtar

import (
	"sync"

	"github.com/tarstore/tarstore/hw"
)

// A bufPool keeps device buffers of one size for reuse. Making a large
// buffer costs time before the first byte can go into it (the runtime
// zeroes recycled memory; fresh memory faults page by page): measured here
// (in-process A/B, 9 runs), a 64 MiB SetFrom is 2-3% faster with its four
// 1 MiB buffers from the pool than made anew.
//
// It keeps at most keep buffers and gives the others back to the device,
// and drain gives back all it keeps: the buffers of a driver's DMA pool
// (hw.Releaser) must go back to it, or the pool, a few MiB, empties and
// every transfer bounces (a sync.Pool would drop them at a garbage
// collection). The buffers it keeps are held until drain.
type bufPool struct {
	size int
	keep int

	mu   sync.Mutex
	free [][]byte
}

// get returns a buffer of b.size bytes suited to dev, with any contents.
func (b *bufPool) get(dev hw.Block) []byte {
	b.mu.Lock()
	if n := len(b.free); n > 0 {
		p := b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
		b.mu.Unlock()
		return p
	}
	b.mu.Unlock()
	return hw.AllocBuffer(dev, b.size)
}

// put gives p, obtained from get(dev), back for reuse; the caller no longer
// uses it, nor does any request to the device (a buffer of a request that
// failed is not put back: it may complete later).
func (b *bufPool) put(dev hw.Block, p []byte) {
	p = p[:b.size]
	b.mu.Lock()
	if len(b.free) < b.keep {
		b.free = append(b.free, p)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	hw.ReleaseBuffer(dev, p)
}

// drain gives every buffer the pool keeps back to dev.
func (b *bufPool) drain(dev hw.Block) {
	b.mu.Lock()
	free := b.free
	b.free = nil
	b.mu.Unlock()
	for _, p := range free {
		hw.ReleaseBuffer(dev, p)
	}
}
