package file

import (
	"os"

	"golang.org/x/sys/unix"
)

// lock takes the advisory lock that keeps a second writer (or a reader and a
// writer) off one image or device node: shared for a read-only open,
// exclusive otherwise, never waiting. A held lock yields EWOULDBLOCK, which
// Open reports as hw.ErrBusy. The lock belongs to fd's open file description
// and is released when fd is closed.
func lock(fd int, shared bool) error {
	how := unix.LOCK_EX | unix.LOCK_NB
	if shared {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	if err := retry(func() error { return unix.Flock(fd, how) }); err != nil {
		return os.NewSyscallError("flock", err)
	}
	return nil
}
