package vfio

import (
	"errors"
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
)

// MapDMA returns at least size bytes of zeroed memory that the device
// reaches at IOVAs through the IOMMU, as one contiguous range: a
// dma.Region whose device addresses are IOVAs, and a function that
// releases it. It is a dma-memory source for drivers (virtiopci's
// Options.Memory). The memory is:
//
//   - anonymous, private, populated (MAP_POPULATE) and marked
//     MADV_DONTFORK, so that a fork cannot make it copy-on-write under
//     the device; size is rounded up to whole pages;
//   - at an IOVA from the container's allocator: from IOVABase up,
//     aligned to the size rounded up to a power of two (at most 1 GiB),
//     never handed out twice, so a stale device address faults in the
//     IOMMU rather than reaching other memory (ErrIOVAExhausted past
//     IOVALimit);
//   - mapped with VFIO_IOMMU_MAP_DMA, readable and writable by the
//     device; the kernel pins its pages for as long as it is mapped, and
//     counts them against RLIMIT_MEMLOCK unless the process has
//     CAP_IPC_LOCK (root has it; otherwise the map fails with ENOMEM).
//
// release unmaps it (VFIO_IOMMU_UNMAP_DMA, then munmap); it is idempotent,
// and does nothing after Close, which unmaps what is left. Release only
// memory the device can no longer touch (after a reset).
func (d *Device) MapDMA(size int) (r dma.Region, release func() error, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return dma.Region{}, nil, d.err("map DMA", ErrClosed)
	}
	iova, n, err := d.alloc.alloc(size)
	if err == nil && n > math.MaxInt {
		err = fmt.Errorf("%w: %#x bytes", ErrInvalid, n)
	}
	if err != nil {
		return dma.Region{}, nil, d.err("map DMA", err)
	}
	b, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return dma.Region{}, nil, d.err("map DMA", os.NewSyscallError("mmap", err))
	}
	err = os.NewSyscallError("madvise", unix.Madvise(b, unix.MADV_DONTFORK))
	if err == nil {
		m := newDMAMap(dma.AddrOf(b), iova, n)
		_, err = ioctlPtr(d.container, ioctlIOMMUMapDMA, "VFIO_IOMMU_MAP_DMA", m[:])
	}
	if err != nil {
		if uerr := unix.Munmap(b); uerr != nil {
			err = errors.Join(err, os.NewSyscallError("munmap", uerr))
		}
		return dma.Region{}, nil, d.err("map DMA", fmt.Errorf("%#x bytes at IOVA %#x: %w", n, iova, err))
	}
	d.dmas[iova] = b
	release = func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		b, ok := d.dmas[iova]
		if !ok { // released already, or by Close
			return nil
		}
		delete(d.dmas, iova)
		if err := d.unmapDMA(iova, b); err != nil {
			return d.err("unmap DMA", err)
		}
		return nil
	}
	return dma.NewRegion(b, iova), release, nil
}

// unmapDMA removes the IOMMU mapping of b at iova and unmaps b. b is
// unmapped even if the IOMMU mapping could not be removed: the kernel
// keeps the pages it pinned for the mapping until it goes, so the device
// never reaches memory given to someone else.
func (d *Device) unmapDMA(iova uint64, b []byte) error {
	u := newDMAUnmap(iova, uint64(len(b)))
	_, err := ioctlPtr(d.container, ioctlIOMMUUnmapDMA, "VFIO_IOMMU_UNMAP_DMA", u[:])
	if err == nil && u.size() != uint64(len(b)) {
		err = fmt.Errorf("vfio: VFIO_IOMMU_UNMAP_DMA unmapped %#x of %#x bytes at IOVA %#x", u.size(), len(b), iova)
	}
	if uerr := unix.Munmap(b); uerr != nil {
		err = errors.Join(err, os.NewSyscallError("munmap", uerr))
	}
	return err
}
