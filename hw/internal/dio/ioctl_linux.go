package dio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// IoctlGetUint64 issues an ioctl that writes a u64 through its pointer
// argument, such as BLKGETSIZE64.
func IoctlGetUint64(fd int, req uint) (uint64, error) {
	var v uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&v)))
	if errno != 0 {
		return 0, errno
	}
	return v, nil
}

// IoctlRange issues an ioctl whose argument points to a {start, length} pair
// of u64 byte offsets, such as BLKZEROOUT and BLKDISCARD.
func IoctlRange(fd int, req uint, start, length uint64) error {
	r := [2]uint64{start, length}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&r)))
	if errno != 0 {
		return errno
	}
	return nil
}
