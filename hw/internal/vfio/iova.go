package vfio

import (
	"fmt"
	"math/bits"
)

// The IOVA space this package hands out: from 4 GiB, which keeps clear of
// the x86 MSI window at 0xfee00000 (a reserved region of every IOMMU
// group) and of low memory, up to 512 GiB, the 39-bit address width of
// QEMU's intel-iommu (its default aw-bits) and of most VT-d hardware.
const (
	IOVABase  = 1 << 32
	IOVALimit = 1 << 39
)

// maxIOVAAlign caps the alignment of a mapping's IOVA: a mapping is
// aligned to its size rounded up to a power of two, but no more than 1 GiB
// (the largest IOMMU page).
const maxIOVAAlign = 1 << 30

// iovaAllocator hands out ranges of IOVA space in [next, limit), in
// increasing order, never the same bytes twice: an IOVA unmapped from a
// container is not reused, so a device that still holds a stale address
// faults instead of reaching someone else's memory.
type iovaAllocator struct {
	next, limit uint64
	page        uint64 // sizes are rounded up to whole pages
}

func newIOVAAllocator(page int) *iovaAllocator {
	return &iovaAllocator{next: IOVABase, limit: IOVALimit, page: uint64(page)}
}

// alloc returns the IOVA of size bytes (size rounded up to whole pages,
// which alloc also returns), aligned to that size rounded up to a power
// of two, at least a page and at most 1 GiB.
func (a *iovaAllocator) alloc(size int) (iova, n uint64, err error) {
	if size <= 0 {
		return 0, 0, fmt.Errorf("%w: %d bytes of IOVA space", ErrInvalid, size)
	}
	n = (uint64(size) + a.page - 1) &^ (a.page - 1)
	align := uint64(1) << (64 - bits.LeadingZeros64(n-1)) // n rounded up to a power of two
	align = min(max(align, a.page), maxIOVAAlign)
	iova = (a.next + align - 1) &^ (align - 1)
	if iova < a.next || iova > a.limit || n > a.limit-iova {
		return 0, 0, fmt.Errorf("%w: %#x bytes wanted, next free IOVA %#x, limit %#x", ErrIOVAExhausted, n, a.next, a.limit)
	}
	a.next = iova + n
	return iova, n, nil
}
