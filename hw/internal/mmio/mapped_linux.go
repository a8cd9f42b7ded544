package mmio

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mapped is a register file mapped from a file, normally a PCI BAR's sysfs
// resource<N> (Map) or a VFIO device's BAR region (MapFD). It is safe for
// concurrent use, but not concurrently with Close: an access after Close
// panics.
type Mapped struct {
	b []byte // the whole mapping, a multiple of the page size
	n int    // registers in use, n <= len(b)
}

// Map maps the first size bytes of the file at path (such as
// /sys/bus/pci/devices/0000:00:04.0/resource4) read-write and MAP_SHARED.
// The file must be at least size bytes long. The mapping covers whole
// pages; Len reports size.
func Map(path string, size int) (*Mapped, error) {
	if size <= 0 {
		return nil, &os.PathError{Op: "mmap", Path: path, Err: fmt.Errorf("size %d", size)}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < int64(size) { // touching a page past the end of a file raises SIGBUS
		return nil, &os.PathError{Op: "mmap", Path: path, Err: fmt.Errorf("%d bytes wanted, file has %d", size, fi.Size())}
	}
	m, err := mapShared(int(f.Fd()), 0, size)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	return m, nil
}

// Close unmaps the registers. It is idempotent.
func (m *Mapped) Close() error {
	if m.b == nil {
		return nil
	}
	b := m.b
	m.b, m.n = nil, 0
	return os.NewSyscallError("munmap", unix.Munmap(b))
}

// Len returns the size given to Map (0 after Close).
func (m *Mapped) Len() int { return m.n }

func (m *Mapped) ptr(off, width int) unsafe.Pointer {
	check(off, width, m.n)
	return unsafe.Pointer(&m.b[off])
}

// Read8 loads the 8-bit register at off.
func (m *Mapped) Read8(off int) uint8 {
	v := load8((*uint8)(m.ptr(off, 1)))
	fence()
	return v
}

// Read16 loads the 16-bit register at off.
func (m *Mapped) Read16(off int) uint16 {
	v := load16((*uint16)(m.ptr(off, 2)))
	fence()
	return le16(v)
}

// Read32 loads the 32-bit register at off.
func (m *Mapped) Read32(off int) uint32 {
	v := load32((*uint32)(m.ptr(off, 4)))
	fence()
	return le32(v)
}

// Write8 stores v in the 8-bit register at off.
func (m *Mapped) Write8(off int, v uint8) {
	p := (*uint8)(m.ptr(off, 1))
	fence()
	store8(p, v)
}

// Write16 stores v in the 16-bit register at off.
func (m *Mapped) Write16(off int, v uint16) {
	p := (*uint16)(m.ptr(off, 2))
	fence()
	store16(p, le16(v))
}

// Write32 stores v in the 32-bit register at off.
func (m *Mapped) Write32(off int, v uint32) {
	p := (*uint32)(m.ptr(off, 4))
	fence()
	store32(p, le32(v))
}

// The accessors below are single load or store instructions; go:noinline
// keeps the compiler from combining or eliding them (see the package doc).

//go:noinline
func load8(p *uint8) uint8 { return *p }

//go:noinline
func load16(p *uint16) uint16 { return *p }

//go:noinline
func load32(p *uint32) uint32 { return *p }

//go:noinline
func store8(p *uint8, v uint8) { *p = v }

//go:noinline
func store16(p *uint16, v uint16) { *p = v }

//go:noinline
func store32(p *uint32, v uint32) { *p = v }

var barrier atomic.Uint32

// fence orders memory accesses before it against those after it: a
// sequentially consistent read-modify-write (LOCK XADD on amd64, an
// acquire-release one on arm64) that the compiler does not move accesses
// across.
func fence() { barrier.Add(1) }

var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func le16(v uint16) uint16 {
	if nativeLE {
		return v
	}
	return bits.ReverseBytes16(v)
}

func le32(v uint32) uint32 {
	if nativeLE {
		return v
	}
	return bits.ReverseBytes32(v)
}
