package file

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockGrace is how long lock keeps trying a held lock before it gives up.
// The lock belongs to an open file description, which a process that forks
// shares with its child until the child execs (the descriptor is
// close-on-exec): a program that closes a device and opens it again while
// another goroutine starts a process can find its own lock still held for
// that moment.
const lockGrace = time.Second

// lock takes the advisory lock that keeps a second writer (or a reader and a
// writer) off one image or device node: shared for a read-only open,
// exclusive otherwise. A lock still held after lockGrace yields
// EWOULDBLOCK, which Open reports as hw.ErrBusy. The lock belongs to fd's
// open file description and is released when fd is closed.
func lock(fd int, shared bool) error {
	how := unix.LOCK_EX | unix.LOCK_NB
	if shared {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	deadline := time.Now().Add(lockGrace)
	for {
		err := retry(func() error { return unix.Flock(fd, how) })
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK || time.Now().After(deadline) {
			return os.NewSyscallError("flock", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
