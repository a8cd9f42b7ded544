package vhostuser

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
)

// Arena is shared memory for a vhost-user back-end: a memfd mapped
// MAP_SHARED in this process, registered with SetMemTable (Region) so that
// the back-end maps the same pages. Rings and I/O buffers must lie in such
// registered memory.
//
// Region uses the mapping's virtual address as the guest physical address
// too, so Addr(off) is valid both in SET_VRING_ADDR (a user address) and in
// descriptors (a guest physical address).
type Arena struct {
	mem  []byte
	addr uint64

	mu sync.Mutex
	fd int // -1 once closed
}

// NewArena creates an arena of size bytes, rounded up to the page size.
func NewArena(size int) (*Arena, error) {
	if size <= 0 {
		return nil, &Error{Op: "arena", Err: fmt.Errorf("%w: size %d", ErrInvalid, size)}
	}
	page := os.Getpagesize()
	size = (size + page - 1) &^ (page - 1)
	fd, err := unix.MemfdCreate("vhost-user-arena", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, &Error{Op: "arena", Err: os.NewSyscallError("memfd_create", err)}
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, &Error{Op: "arena", Err: os.NewSyscallError("ftruncate", err)}
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, &Error{Op: "arena", Err: os.NewSyscallError("mmap", err)}
	}
	return &Arena{mem: mem, addr: dma.AddrOf(mem), fd: fd}, nil
}

// Region returns the arena as memory shared with the back-end, with device
// addresses equal to Addr. It must not be used after Close.
func (a *Arena) Region() dma.Region { return dma.NewRegion(a.mem, a.addr) }

// Bytes returns the arena's memory. It must not be used after Close.
func (a *Arena) Bytes() []byte { return a.mem }

// Len returns the arena's size in bytes.
func (a *Arena) Len() int { return len(a.mem) }

// FD returns the memfd (-1 after Close).
func (a *Arena) FD() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fd
}

// Addr returns the address of byte off of the arena, both the front-end
// virtual address and the guest physical address registered by Region.
// It panics unless 0 <= off <= Len().
func (a *Arena) Addr(off int) uint64 {
	if off < 0 || off > len(a.mem) {
		panic(fmt.Sprintf("vhostuser: arena offset %d out of range [0, %d]", off, len(a.mem)))
	}
	return a.addr + uint64(off)
}

// TableEntry returns the SET_MEM_TABLE entry for the whole arena, with
// GuestAddr = UserAddr = Addr(0).
func (a *Arena) TableEntry() Region {
	return Region{
		GuestAddr: a.addr,
		Size:      uint64(len(a.mem)),
		UserAddr:  a.addr,
		FD:        a.FD(),
	}
}

// Close unmaps the arena and closes the memfd. A back-end that mapped it
// keeps its own mapping until it drops the memory table.
func (a *Arena) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fd < 0 {
		return nil
	}
	err := unix.Munmap(a.mem)
	if cerr := unix.Close(a.fd); err == nil {
		err = cerr
	}
	a.fd = -1
	if err != nil {
		return &Error{Op: "arena", Err: err}
	}
	return nil
}
