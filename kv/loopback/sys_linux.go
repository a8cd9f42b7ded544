package loopback

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock(2) on the open directory d;
// closing d releases it.
func lockDir(d *os.File) error {
	c, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := c.Control(func(fd uintptr) {
		lerr = ignoringEINTR(func() error { return syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB) })
	}); err != nil {
		return err
	}
	if errors.Is(lerr, syscall.EWOULDBLOCK) {
		return ErrInUse
	}
	return lerr
}

// freeBytes returns the bytes available to unprivileged users on the file
// system holding the open directory d.
func freeBytes(d *os.File) (int64, error) {
	c, err := d.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st syscall.Statfs_t
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = ignoringEINTR(func() error { return syscall.Fstatfs(int(fd), &st) })
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, os.NewSyscallError("fstatfs", serr)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// reserve gives the open file f size bytes of zeroes: with fallocate(2),
// which reserves the blocks and fails with ENOSPC when they are not there,
// or, on file systems that cannot, as a sparse file.
func reserve(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := c.Control(func(fd uintptr) {
		ferr = ignoringEINTR(func() error { return syscall.Fallocate(int(fd), 0, 0, size) })
	}); err != nil {
		return err
	}
	if errors.Is(ferr, syscall.EOPNOTSUPP) || errors.Is(ferr, syscall.ENOSYS) {
		return f.Truncate(size)
	}
	if ferr != nil {
		return os.NewSyscallError("fallocate", ferr)
	}
	return nil
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

// isNoSpace reports whether err means the file system is out of room for
// the write: no blocks, quota exhausted, or a file larger than it allows.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)
}

// isNotDir reports whether err means a path component is not a directory.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
