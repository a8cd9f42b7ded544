package mmio

import (
	"encoding/binary"
	"sync"
)

// Fake is a register file in Go memory for tests. Without hooks it is plain
// little-endian memory; OnRead and OnWrite let a test model a device: a
// register that reads back differently from what was written, a write with
// side effects, a status that changes over successive reads.
//
// Each access is atomic with respect to the others (a mutex); the hooks run
// outside it, so they may call Peek and Poke, and must synchronize any
// state of their own. Set the hooks before the first access.
type Fake struct {
	// OnRead, when set, is called on every read of width bytes (1, 2 or
	// 4) at off with the value memory holds; the read returns its result.
	OnRead func(off, width int, v uint32) uint32

	// OnWrite, when set, is called on every write instead of storing v:
	// it decides what memory holds afterwards (Poke), if anything.
	OnWrite func(off, width int, v uint32)

	mu  sync.Mutex
	mem []byte
}

// NewFake returns size bytes of zeroed registers.
func NewFake(size int) *Fake { return &Fake{mem: make([]byte, size)} }

// Len returns the size of the register file.
func (f *Fake) Len() int { return len(f.mem) }

// Peek returns the width-byte value memory holds at off, bypassing OnRead.
func (f *Fake) Peek(off, width int) uint32 {
	check(off, width, len(f.mem))
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.mem[off:]
	switch width {
	case 1:
		return uint32(b[0])
	case 2:
		return uint32(binary.LittleEndian.Uint16(b))
	case 4:
		return binary.LittleEndian.Uint32(b)
	}
	panic("mmio: Peek of width other than 1, 2 or 4")
}

// Poke stores the low width bytes of v at off, bypassing OnWrite.
func (f *Fake) Poke(off, width int, v uint32) {
	check(off, width, len(f.mem))
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.mem[off:]
	switch width {
	case 1:
		b[0] = uint8(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, v)
	default:
		panic("mmio: Poke of width other than 1, 2 or 4")
	}
}

func (f *Fake) read(off, width int) uint32 {
	v := f.Peek(off, width)
	if f.OnRead != nil {
		v = f.OnRead(off, width, v)
	}
	return v
}

func (f *Fake) write(off, width int, v uint32) {
	if f.OnWrite != nil {
		check(off, width, len(f.mem))
		f.OnWrite(off, width, v)
		return
	}
	f.Poke(off, width, v)
}

// Read8 reads the 8-bit register at off.
func (f *Fake) Read8(off int) uint8 { return uint8(f.read(off, 1)) }

// Read16 reads the 16-bit register at off.
func (f *Fake) Read16(off int) uint16 { return uint16(f.read(off, 2)) }

// Read32 reads the 32-bit register at off.
func (f *Fake) Read32(off int) uint32 { return f.read(off, 4) }

// Write8 writes the 8-bit register at off.
func (f *Fake) Write8(off int, v uint8) { f.write(off, 1, uint32(v)) }

// Write16 writes the 16-bit register at off.
func (f *Fake) Write16(off int, v uint16) { f.write(off, 2, uint32(v)) }

// Write32 writes the 32-bit register at off.
func (f *Fake) Write32(off int, v uint32) { f.write(off, 4, v) }
