package dma

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// HugepageSize is the size of the pages Hugepages maps: 2 MiB, each
// physically contiguous.
const HugepageSize = 2 << 20

var (
	// ErrNoHugepages reports that the huge page pool cannot hold the
	// mapping (see /proc/sys/vm/nr_hugepages and HugePages_Free in
	// /proc/meminfo).
	ErrNoHugepages = errors.New("dma: not enough free 2 MiB huge pages")

	// ErrNoPhysAddr is matched by a *PagemapError: the kernel did not give
	// a page's physical address.
	ErrNoPhysAddr = errors.New("dma: no physical address")
)

// PagemapError reports a /proc/self/pagemap entry that gives no usable
// physical address for the page at virtual address Virt. A present page
// with PFN 0 is what the kernel shows a process without CAP_SYS_ADMIN.
type PagemapError struct {
	Virt   uint64
	Entry  uint64
	Reason string
}

func (e *PagemapError) Error() string {
	return fmt.Sprintf("dma: pagemap entry %#x of page %#x: %s", e.Entry, e.Virt, e.Reason)
}

// Is reports whether target is ErrNoPhysAddr.
func (e *PagemapError) Is(target error) bool { return target == ErrNoPhysAddr }

// Hugepages returns at least size bytes of zeroed memory in 2 MiB huge
// pages (size rounded up), whose device addresses are physical addresses:
// for a PCI device doing DMA without an IOMMU. The mapping is
// MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB (2 MiB), MAP_POPULATE so that every
// page exists now, and MAP_LOCKED; hugetlb pages are never swapped or
// migrated, so their physical addresses hold until release. Each page's
// address is read from /proc/self/pagemap, which needs CAP_SYS_ADMIN
// (otherwise the error matches ErrNoPhysAddr). The region is chunked by
// page (NewChunkedRegion): consecutive pages need not be adjacent in
// physical memory.
//
// release unmaps the memory; it is idempotent. Call it only once the device
// can no longer touch the memory (after a completed reset): the pages go
// back to the pool and may be reused by anyone.
func Hugepages(size int) (r Region, release func() error, err error) {
	if size <= 0 {
		return Region{}, nil, fmt.Errorf("dma: %d bytes of huge pages", size)
	}
	n := (size + HugepageSize - 1) &^ (HugepageSize - 1)
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB|unix.MAP_HUGE_2MB|unix.MAP_POPULATE|unix.MAP_LOCKED)
	if err != nil {
		err = os.NewSyscallError("mmap", err)
		if errors.Is(err, unix.ENOMEM) {
			err = fmt.Errorf("%w for %d bytes: %w", ErrNoHugepages, n, err)
		}
		return Region{}, nil, err
	}
	var once sync.Once
	release = func() error {
		err := error(nil)
		once.Do(func() { err = os.NewSyscallError("munmap", unix.Munmap(b)) })
		return err
	}
	addrs, err := physAddrs(b)
	if err == nil {
		r, err = NewChunkedRegion(b, HugepageSize, addrs)
	}
	if err != nil {
		release()
		return Region{}, nil, err
	}
	return r, release, nil
}

// physAddrs returns the physical address of each huge page of b.
func physAddrs(b []byte) ([]uint64, error) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	page := os.Getpagesize()
	addrs := make([]uint64, 0, len(b)/HugepageSize)
	for off := 0; off < len(b); off += HugepageSize {
		virt := AddrOf(b[off:])
		var entry [8]byte
		if _, err := f.ReadAt(entry[:], int64(virt/uint64(page)*8)); err != nil {
			return nil, fmt.Errorf("dma: reading /proc/self/pagemap: %w", err)
		}
		phys, err := physAddr(entry[:], virt, page)
		if err != nil {
			return nil, err
		}
		if phys%HugepageSize != 0 {
			return nil, &PagemapError{Virt: virt, Entry: binary.NativeEndian.Uint64(entry[:]), Reason: fmt.Sprintf("physical address %#x is not a 2 MiB page", phys)}
		}
		addrs = append(addrs, phys)
	}
	return addrs, nil
}

// pagemap entry bits (Linux Documentation/admin-guide/mm/pagemap.rst).
const (
	pagemapPresent = 1 << 63
	pagemapPFN     = 1<<55 - 1 // bits 0-54
)

// physAddr decodes entry, the 8-byte pagemap entry (native byte order) of
// the page of pageSize bytes holding virtual address virt, into virt's
// physical address.
func physAddr(entry []byte, virt uint64, pageSize int) (uint64, error) {
	if len(entry) != 8 {
		return 0, &PagemapError{Virt: virt, Reason: fmt.Sprintf("%d-byte entry", len(entry))}
	}
	e := binary.NativeEndian.Uint64(entry)
	switch pfn := e & pagemapPFN; {
	case e&pagemapPresent == 0:
		return 0, &PagemapError{Virt: virt, Entry: e, Reason: "page not present"}
	case pfn == 0:
		return 0, &PagemapError{Virt: virt, Entry: e, Reason: "PFN hidden (reading pagemap needs CAP_SYS_ADMIN)"}
	default:
		return pfn*uint64(pageSize) + virt%uint64(pageSize), nil
	}
}
