// Package dma is the memory a device reaches by DMA or shares with a
// back-end process: a Region is bytes mapped in this process (outside the
// Go heap, so they never move) together with the address the device uses
// for their first byte — a guest-physical address, an IOVA, or a vhost-user
// "user address", depending on the transport.
//
// It is one of the two places where tarstore's drivers use package unsafe
// (with hw/internal/dio): AddrOf gives the virtual address of mapped memory,
// and Words gives sequentially consistent 32-bit atomic access to words of
// a Region, which shared rings (virtio's split virtqueue, NVMe queues) need
// and sync/atomic provides only through a pointer. Drivers import no unsafe.
package dma

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// AddrOf returns the virtual address of b's first byte. It is meant for
// mmap'd memory, which the Go runtime never moves; the address of Go-heap
// memory is not stable and must not be given to a device. It panics on an
// empty slice.
func AddrOf(b []byte) uint64 {
	if len(b) == 0 {
		panic("dma: address of an empty slice")
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// Region is memory shared with a device: B in this process, and for each
// byte its address in the device's address space. The device addresses are
// contiguous within chunks of Chunk() bytes (the whole region for a memfd or
// an IOMMU mapping; one 2 MiB huge page for physical memory), so a buffer
// handed to a device as one address must not straddle a chunk boundary:
// Carver hands out pieces that never do.
type Region struct {
	B     []byte
	off   int      // offset of B[0] from the start of the mapping
	chunk int      // bytes per contiguous chunk of the mapping, a power of two
	addrs []uint64 // device address of each chunk of the mapping
}

// NewRegion returns b as a region whose device addresses are contiguous,
// starting at addr.
func NewRegion(b []byte, addr uint64) Region {
	chunk := 1
	for chunk < len(b) {
		chunk <<= 1
	}
	return Region{B: b, chunk: chunk, addrs: []uint64{addr}}
}

// NewChunkedRegion returns b as a region made of chunks of chunk bytes (a
// power of two), chunk i at device address addrs[i]; len(b) must be a
// multiple of chunk and addrs must have len(b)/chunk entries.
func NewChunkedRegion(b []byte, chunk int, addrs []uint64) (Region, error) {
	if chunk <= 0 || chunk&(chunk-1) != 0 || len(b)%chunk != 0 || len(addrs) != len(b)/chunk {
		return Region{}, fmt.Errorf("dma: %d bytes in chunks of %d with %d addresses", len(b), chunk, len(addrs))
	}
	return Region{B: b, chunk: chunk, addrs: addrs}, nil
}

// Len returns the region's size in bytes.
func (r Region) Len() int { return len(r.B) }

// Addr returns the device address of byte off of the region (0 <= off <=
// Len(); Addr(Len()) is one past the end of the last chunk's byte).
func (r Region) Addr(off int) uint64 {
	if off < 0 || off > len(r.B) {
		panic(fmt.Sprintf("dma: offset %d outside a %d-byte region", off, len(r.B)))
	}
	m := r.off + off
	i := m / r.chunk
	if i == len(r.addrs) { // one past the end
		return r.addrs[i-1] + uint64(r.chunk)
	}
	return r.addrs[i] + uint64(m%r.chunk)
}

// Contiguous reports whether the n bytes at off have contiguous device
// addresses, so that a device can be given them as one buffer.
func (r Region) Contiguous(off, n int) bool {
	if off < 0 || n < 0 || off+n > len(r.B) {
		return false
	}
	if n == 0 {
		return true
	}
	m := r.off + off
	return m/r.chunk == (m+n-1)/r.chunk
}

// Slice returns the n bytes at off as a Region. It panics when the range
// does not lie in r.
func (r Region) Slice(off, n int) Region {
	if off < 0 || n < 0 || off+n > len(r.B) {
		panic(fmt.Sprintf("dma: range [%d,+%d) outside a %d-byte region", off, n, len(r.B)))
	}
	r.B = r.B[off : off+n : off+n]
	r.off += off
	return r
}

// Words returns the region as 32-bit little-endian words. Its first byte
// must be 4-byte aligned in memory and its length a multiple of 4.
func (r Region) Words() (Words, error) {
	if len(r.B)%4 != 0 || (len(r.B) > 0 && AddrOf(r.B)%4 != 0) {
		return Words{}, fmt.Errorf("dma: %d-byte region is not whole aligned 32-bit words", len(r.B))
	}
	return Words{b: r.B}, nil
}

// Carver hands out pieces of a Region, each aligned and contiguous in
// device address space, never to be returned (drivers carve their rings and
// request slots once at start).
type Carver struct {
	r    Region
	next int
}

// NewCarver returns a Carver over r.
func NewCarver(r Region) *Carver { return &Carver{r: r} }

// Take returns the next n bytes whose device address is a multiple of
// align (a power of two) and that do not straddle a chunk, or an error
// when the region has no such room left.
func (c *Carver) Take(n, align int) (Region, error) {
	if n <= 0 || align <= 0 || align&(align-1) != 0 {
		return Region{}, fmt.Errorf("dma: take %d bytes aligned to %d", n, align)
	}
	off := c.next
	for off+n <= len(c.r.B) {
		if a := c.r.Addr(off); a%uint64(align) != 0 {
			off += int(uint64(align) - a%uint64(align))
			continue
		}
		if !c.r.Contiguous(off, n) { // skip to the next chunk
			m := c.r.off + off
			off += c.r.chunk - m%c.r.chunk
			continue
		}
		c.next = off + n
		return c.r.Slice(off, n), nil
	}
	return Region{}, fmt.Errorf("dma: no %d contiguous bytes left in a %d-byte region (%d used)", n, len(c.r.B), c.next)
}

// Words is byte memory accessed as naturally aligned little-endian 32-bit
// words, with the method set of virtq.Mem: Load32 and Store32 are
// sequentially consistent atomic operations (sync/atomic), Read32 and
// Write32 plain ones. On a big-endian host the values are byte-swapped so
// that memory always holds little-endian words, as virtio and NVMe require.
// Methods panic on an offset that is not a multiple of 4 inside the memory.
type Words struct{ b []byte }

var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func le(v uint32) uint32 {
	if nativeLE {
		return v
	}
	return bits.ReverseBytes32(v)
}

func (w Words) word(off int) *uint32 {
	if off&3 != 0 || off < 0 || off+4 > len(w.b) {
		panic(fmt.Sprintf("dma: word offset %d in %d bytes", off, len(w.b)))
	}
	return (*uint32)(unsafe.Pointer(&w.b[off]))
}

// Len returns the size in bytes.
func (w Words) Len() int { return len(w.b) }

// Load32 atomically loads the word at off.
func (w Words) Load32(off int) uint32 { return le(atomic.LoadUint32(w.word(off))) }

// Store32 atomically stores the word at off.
func (w Words) Store32(off int, v uint32) { atomic.StoreUint32(w.word(off), le(v)) }

// Read32 loads the word at off without synchronization.
func (w Words) Read32(off int) uint32 { return le(*w.word(off)) }

// Write32 stores the word at off without synchronization.
func (w Words) Write32(off int, v uint32) { *w.word(off) = le(v) }
