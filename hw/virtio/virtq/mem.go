package virtq

import (
	"fmt"
	"sync/atomic"
)

// Mem is a region of memory shared with the device, addressed by byte offset.
// All offsets passed to its methods are multiples of 4 and the region's start
// must be 4-byte aligned in the memory the device sees, so every access is to
// a naturally aligned 32-bit word. Values are little-endian: Load32/Read32
// return the word's bytes b[0..3] as b0 | b1<<8 | b2<<16 | b3<<24, and
// Store32/Write32 store them that way.
//
// Implementations backed by real shared memory (a memfd mapping, DMA memory)
// must implement Load32 and Store32 as sequentially consistent 32-bit atomic
// operations (sync/atomic LoadUint32/StoreUint32 on the word's address, which
// needs unsafe and is therefore not in this package), and on a big-endian host
// must byte-swap. Read32 and Write32 are plain accesses: ordinary 32-bit loads
// and stores are sufficient (they are ordered by the atomics around them).
//
// Methods may panic on an out-of-range or misaligned offset; the queue never
// passes one.
type Mem interface {
	// Len returns the region's size in bytes.
	Len() int
	// Load32 atomically loads the word at off.
	Load32(off int) uint32
	// Store32 atomically stores the word at off.
	Store32(off int, v uint32)
	// Read32 loads the word at off without synchronization.
	Read32(off int) uint32
	// Write32 stores the word at off without synchronization.
	Write32(off int, v uint32)
}

// Area is a region of shared memory together with the address the device
// uses for its first byte (a guest-physical address, an IOVA, or a
// vhost-user "user address", depending on the transport).
type Area struct {
	Mem  Mem
	Addr uint64
}

// AtomicMem is a Mem backed by Go memory in which every access, plain or
// not, is atomic. It is safe to share between goroutines, which makes it
// suitable for tests with an in-process device and for running under the race
// detector. It is not memory a separate process can see.
type AtomicMem struct {
	w []atomic.Uint32
	n int
}

// NewAtomicMem returns a zeroed AtomicMem of size bytes; size is rounded up to
// a multiple of 4.
func NewAtomicMem(size int) *AtomicMem {
	if size < 0 {
		panic("virtq: negative size")
	}
	size = (size + 3) &^ 3
	return &AtomicMem{w: make([]atomic.Uint32, size/4), n: size}
}

func (m *AtomicMem) word(off int) *atomic.Uint32 {
	if off&3 != 0 || off < 0 || off >= m.n {
		panic(fmt.Sprintf("virtq: bad offset %d in %d-byte AtomicMem", off, m.n))
	}
	return &m.w[off/4]
}

// Len implements Mem.
func (m *AtomicMem) Len() int { return m.n }

// Load32 implements Mem.
func (m *AtomicMem) Load32(off int) uint32 { return m.word(off).Load() }

// Store32 implements Mem.
func (m *AtomicMem) Store32(off int, v uint32) { m.word(off).Store(v) }

// Read32 implements Mem (atomically).
func (m *AtomicMem) Read32(off int) uint32 { return m.word(off).Load() }

// Write32 implements Mem (atomically).
func (m *AtomicMem) Write32(off int, v uint32) { m.word(off).Store(v) }

// Sub returns the n bytes of m starting at off as a Mem. off must be a
// multiple of 4 and the range must lie within m.
func Sub(m Mem, off, n int) (Mem, error) {
	if off < 0 || n < 0 || off&3 != 0 || off+n > m.Len() {
		return nil, fmt.Errorf("%w: sub-range [%d,+%d) of %d-byte region", ErrBadArea, off, n, m.Len())
	}
	if s, ok := m.(subMem); ok {
		return subMem{m: s.m, off: s.off + off, n: n}, nil
	}
	return subMem{m: m, off: off, n: n}, nil
}

type subMem struct {
	m      Mem
	off, n int
}

func (s subMem) at(off int) int {
	if off < 0 || off+4 > s.n {
		panic(fmt.Sprintf("virtq: offset %d out of %d-byte sub-region", off, s.n))
	}
	return s.off + off
}

func (s subMem) Len() int                  { return s.n }
func (s subMem) Load32(off int) uint32     { return s.m.Load32(s.at(off)) }
func (s subMem) Store32(off int, v uint32) { s.m.Store32(s.at(off), v) }
func (s subMem) Read32(off int) uint32     { return s.m.Read32(s.at(off)) }
func (s subMem) Write32(off int, v uint32) { s.m.Write32(s.at(off), v) }

// load16 reads the 16-bit field at off (a multiple of 2) atomically, via the
// aligned word containing it.
func load16(m Mem, off int) uint16 {
	return uint16(m.Load32(off&^3) >> (8 * (off & 2)))
}

// word16 returns the aligned word containing the 16-bit field at off, as
// currently held in memory, with the field replaced by v. Only valid when the
// caller is the sole writer of the whole word.
func word16(m Mem, off int, v uint16) uint32 {
	sh := 8 * (off & 2)
	w := m.Read32(off &^ 3)
	return w&^(0xffff<<sh) | uint32(v)<<sh
}

// write16 stores the 16-bit field at off with a plain read-modify-write of its
// word; the caller must be the sole writer of the whole word.
func write16(m Mem, off int, v uint16) { m.Write32(off&^3, word16(m, off, v)) }

// store16 is write16 with an atomic (sequentially consistent) final store.
func store16(m Mem, off int, v uint16) { m.Store32(off&^3, word16(m, off, v)) }
