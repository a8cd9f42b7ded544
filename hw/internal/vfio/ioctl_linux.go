package vfio

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl issues request req on fd with arg passed by value (an integer
// argument, or 0 for none) and returns the ioctl's result, retrying when a
// signal interrupts it. The error is an *os.SyscallError naming the
// request.
func ioctl(fd int, req uint, name string, arg uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg)
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return -1, os.NewSyscallError("ioctl "+name, errno)
	}
}

// ioctlPtr is ioctl with a pointer to b's first byte as the argument: the
// struct (or NUL-terminated string) the request reads and fills in. This
// is the package's only use of unsafe; the conversion to uintptr in the
// argument list of the assembly-implemented unix.Syscall keeps b alive
// and in place for the call (unsafe.Pointer rule 4).
func ioctlPtr(fd int, req uint, name string, b []byte) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return -1, os.NewSyscallError("ioctl "+name, errno)
	}
}
