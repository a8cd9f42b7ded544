package mmio

import (
	"errors"
	"fmt"
)

// Registers is a device's register file, accessed by byte offset with the
// register's natural width. Values are little-endian in the device; the
// methods return and take them in host order. Methods panic on an offset
// outside [0, Len()) or not a multiple of the width.
type Registers interface {
	// Len returns the size of the register file in bytes.
	Len() int
	Read8(off int) uint8
	Read16(off int) uint16
	Read32(off int) uint32
	Write8(off int, v uint8)
	Write16(off int, v uint16)
	Write32(off int, v uint32)
}

// Read64 reads the 64-bit register at off as two 32-bit reads, low half
// first.
func Read64(r Registers, off int) uint64 {
	lo := r.Read32(off)
	hi := r.Read32(off + 4)
	return uint64(hi)<<32 | uint64(lo)
}

// Write64 writes the 64-bit register at off as two 32-bit writes, low half
// first.
func Write64(r Registers, off int, v uint64) {
	r.Write32(off, uint32(v))
	r.Write32(off+4, uint32(v>>32))
}

// ErrRange reports a window that does not lie inside its register file.
var ErrRange = errors.New("mmio: window outside the registers")

// Window returns the n bytes of registers at off of r as a register file of
// its own, whose offset 0 is r's offset off. It returns an error wrapping
// ErrRange unless 0 <= off, 0 <= n and off+n <= r.Len(), so a driver can
// check a location read from the device before using it.
func Window(r Registers, off, n int) (Registers, error) {
	if off < 0 || n < 0 || off > r.Len() || n > r.Len()-off {
		return nil, fmt.Errorf("%w: [%#x,+%#x) in %#x bytes", ErrRange, off, n, r.Len())
	}
	if w, ok := r.(window); ok { // a window of a window
		return window{r: w.r, base: w.base + off, n: n}, nil
	}
	return window{r: r, base: off, n: n}, nil
}

type window struct {
	r       Registers
	base, n int
}

func (w window) at(off, width int) int {
	check(off, width, w.n)
	return w.base + off
}

func (w window) Len() int                  { return w.n }
func (w window) Read8(off int) uint8       { return w.r.Read8(w.at(off, 1)) }
func (w window) Read16(off int) uint16     { return w.r.Read16(w.at(off, 2)) }
func (w window) Read32(off int) uint32     { return w.r.Read32(w.at(off, 4)) }
func (w window) Write8(off int, v uint8)   { w.r.Write8(w.at(off, 1), v) }
func (w window) Write16(off int, v uint16) { w.r.Write16(w.at(off, 2), v) }
func (w window) Write32(off int, v uint32) { w.r.Write32(w.at(off, 4), v) }

// check panics unless an access of width bytes at off lies in n bytes and
// is naturally aligned.
func check(off, width, n int) {
	if off < 0 || off > n-width || off%width != 0 {
		panic(fmt.Sprintf("mmio: %d-bit access at offset %#x of %#x bytes", 8*width, off, n))
	}
}
