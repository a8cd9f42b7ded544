package vhostuser

import "unsafe"

// addrOf returns the virtual address of b's first element. It is the one
// use of unsafe in this package: the vhost-user protocol identifies shared
// memory by the front-end's virtual address (Region.UserAddr, SET_VRING_ADDR)
// and unix.Mmap returns only a slice. It is meant for mmap'd memory, which
// the Go runtime never moves; the address of Go-heap memory is not stable
// and must not be given to a back-end.
func addrOf(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
