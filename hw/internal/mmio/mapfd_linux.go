package mmio

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MapFD maps size bytes of the file open as fd, from offset on, read-write
// and MAP_SHARED: a VFIO device's BAR region, say, whose offset in the
// device file VFIO_DEVICE_GET_REGION_INFO gives. offset must be a multiple
// of the page size. The mapping covers whole pages; Len reports size. The
// mapping holds its own reference to the file: fd may be closed while it
// lasts (for a VFIO device, the device is released only once its last
// mapping is gone too). Errors are *os.SyscallError values.
func MapFD(fd int, offset int64, size int) (*Mapped, error) {
	if size <= 0 || offset < 0 || offset%int64(os.Getpagesize()) != 0 {
		return nil, os.NewSyscallError("mmap", fmt.Errorf("%d bytes at offset %#x: %w", size, offset, unix.EINVAL))
	}
	m, err := mapShared(fd, offset, size)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return m, nil
}

// mapShared maps size bytes of fd at offset, rounded up to whole pages,
// read-write and MAP_SHARED; the error is the bare errno.
func mapShared(fd int, offset int64, size int) (*Mapped, error) {
	page := os.Getpagesize()
	b, err := unix.Mmap(fd, offset, (size+page-1)&^(page-1), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &Mapped{b: b, n: size}, nil
}
