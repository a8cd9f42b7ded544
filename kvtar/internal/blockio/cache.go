package blockio

import (
	"sync"

	"github.com/tarstore/tarstore/hw"
)

// cacheSectors is how many sectors a Cached device remembers.
const cacheSectors = 16

// Cached wraps dev in a device that remembers the first and last sector of
// each of its recent writes and serves reads of them from memory. Those
// are the sectors the next write of a byte range next to the last one
// writes in part — the sector an append starts in, where the previous
// member ends — so a Batch's read-modify-write of them needs no device
// read.
//
// Cached assumes it is the device's only writer: every write, write-zeroes
// and discard of dev must go through it. A failed write forgets
// everything, since the sectors may hold any version. The cache holds the
// contents the device returns for a read, not what is durable: it says
// nothing about Flush.
func Cached(dev hw.Block) hw.Block {
	return &cached{Block: dev, ss: uint64(dev.Info().SectorSize), m: map[uint64][]byte{}}
}

type cached struct {
	hw.Block
	ss uint64

	mu    sync.Mutex
	m     map[uint64][]byte // sector contents by LBA
	order []uint64          // LBAs in m, oldest first
	spare [][]byte          // the memory of sectors forgotten, for reuse
}

var (
	_ hw.Zeroer    = (*cached)(nil)
	_ hw.Allocator = (*cached)(nil)
)

// Read serves a read of one buffer of cached sectors from memory.
func (c *cached) Read(lba uint64, bufs ...[]byte) error {
	if len(bufs) == 1 && c.fill(lba, bufs[0]) {
		return nil
	}
	return c.Block.Read(lba, bufs...)
}

// fill copies the sectors at lba into p when all of them are cached.
func (c *cached) fill(lba uint64, p []byte) bool {
	n := uint64(len(p)) / c.ss
	if n == 0 || uint64(len(p))%c.ss != 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		if _, ok := c.m[lba+i]; !ok {
			return false
		}
	}
	for i := range n {
		copy(p[i*c.ss:], c.m[lba+i])
	}
	return true
}

// Write writes through and remembers the request's first and last sector.
func (c *cached) Write(lba uint64, bufs ...[]byte) error {
	var n uint64
	for _, b := range bufs {
		n += uint64(len(b)) / c.ss
	}
	c.forget(lba, n)
	if err := c.Block.Write(lba, bufs...); err != nil {
		c.forgetAll()
		return err
	}
	if n == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keep(lba, sectorOf(bufs, c.ss, 0))
	if n > 1 {
		c.keep(lba+n-1, sectorOf(bufs, c.ss, n-1))
	}
	return nil
}

// WriteZeroes zeroes through dev (hw.WriteZeroes) and forgets the range.
func (c *cached) WriteZeroes(lba, sectors uint64) error {
	c.forget(lba, sectors)
	if err := hw.WriteZeroes(c.Block, lba, sectors); err != nil {
		c.forgetAll()
		return err
	}
	return nil
}

// AllocBuffer returns dev's buffers, so that writes stay zero-copy.
func (c *cached) AllocBuffer(n int) []byte { return hw.AllocBuffer(c.Block, n) }

// ReleaseBuffer gives b back to dev (hw.ReleaseBuffer).
func (c *cached) ReleaseBuffer(b []byte) { hw.ReleaseBuffer(c.Block, b) }

// sectorOf returns the i-th sector of the concatenation of bufs.
func sectorOf(bufs [][]byte, ss, i uint64) []byte {
	off := i * ss
	for _, b := range bufs {
		if off < uint64(len(b)) {
			return b[off : off+ss]
		}
		off -= uint64(len(b))
	}
	return nil
}

// keep remembers a copy of sector p at lba, forgetting the oldest sector
// when the cache is full. The caller holds c.mu.
func (c *cached) keep(lba uint64, p []byte) {
	buf, ok := c.m[lba]
	if !ok {
		if len(c.order) == cacheSectors {
			c.drop(c.order[0])
			c.order = append(c.order[:0], c.order[1:]...)
		}
		if n := len(c.spare); n > 0 {
			buf, c.spare = c.spare[n-1], c.spare[:n-1]
		}
		c.order = append(c.order, lba)
	}
	c.m[lba] = append(buf[:0], p...)
}

// drop removes the sector at lba from m and keeps its memory for reuse.
// The caller holds c.mu.
func (c *cached) drop(lba uint64) {
	c.spare = append(c.spare, c.m[lba])
	delete(c.m, lba)
}

// forget drops the cached sectors in [lba, lba+n).
func (c *cached) forget(lba, n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.order[:0]
	for _, l := range c.order {
		if l >= lba && l < lba+n {
			c.drop(l)
			continue
		}
		kept = append(kept, l)
	}
	c.order = kept
}

func (c *cached) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.order {
		c.drop(l)
	}
	c.order = c.order[:0]
}
