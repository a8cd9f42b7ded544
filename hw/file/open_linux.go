package file

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
)

// Open opens the image file or block device at path for direct I/O, locks it
// (see the package documentation) and reads its geometry. Every error is an
// *hw.Error with Op "open": Kind hw.ErrBusy when another opener holds the
// lock or the device, hw.ErrMisaligned for a bad Options.SectorSize
// (ErrSectorSize), hw.ErrUnsupported for a path that is not a regular file or
// block device (ErrFileType) or a file system without direct I/O
// (ErrNoDirectIO), hw.ErrReadOnly for a writable open on a read-only file
// system, hw.ErrIO otherwise, with the errno in Err.
func Open(path string, opts Options) (*Device, error) {
	fail := func(kind, err error) (*Device, error) { return nil, openErr(path, kind, err) }
	if opts.SectorSize < 0 || opts.SectorSize%512 != 0 || opts.SectorSize > MaxSectorSize {
		return fail(hw.ErrMisaligned, fmt.Errorf("%w: %d is not a multiple of 512 between 512 and %d",
			ErrSectorSize, opts.SectorSize, MaxSectorSize))
	}
	// Look before opening: opening a FIFO would block, and a writable block
	// device is claimed with O_EXCL.
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fail(kindOf(err), os.NewSyscallError("stat", err))
	}
	block, err := fileType(st.Mode)
	if err != nil {
		return fail(hw.ErrUnsupported, err)
	}
	flags := unix.O_DIRECT | unix.O_CLOEXEC
	switch {
	case opts.ReadOnly:
		flags |= unix.O_RDONLY
	case block:
		flags |= unix.O_RDWR | unix.O_EXCL
	default:
		flags |= unix.O_RDWR
	}
	var fd int
	err = retry(func() (err error) {
		fd, err = unix.Open(path, flags, 0)
		return err
	})
	switch {
	case err == unix.EINVAL:
		return fail(hw.ErrUnsupported, fmt.Errorf("%w: %w", ErrNoDirectIO, os.NewSyscallError("open", err)))
	case err != nil:
		return fail(kindOf(err), os.NewSyscallError("open", err))
	}
	d, err := setup(fd, path, opts)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return d, nil
}

// openErr builds the *hw.Error Open returns.
func openErr(path string, kind, err error) error {
	return &hw.Error{Op: "open", Device: path, Kind: kind, Err: err}
}

// setup locks the freshly opened fd and reads the geometry. On failure the
// caller closes fd.
func setup(fd int, path string, opts Options) (*Device, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, openErr(path, hw.ErrIO, os.NewSyscallError("fstat", err))
	}
	block, err := fileType(st.Mode)
	if err != nil {
		return nil, openErr(path, hw.ErrUnsupported, err)
	}
	readOnly := opts.ReadOnly
	if block && !readOnly {
		ro, err := unix.IoctlGetInt(fd, unix.BLKROGET)
		if err != nil {
			return nil, openErr(path, kindOf(err), os.NewSyscallError("ioctl BLKROGET", err))
		}
		readOnly = ro != 0
	}
	if err := lock(fd, readOnly); err != nil {
		return nil, openErr(path, kindOf(err), err)
	}
	g, err := detect(fd, path, block, st)
	if err != nil {
		return nil, err
	}
	ss := g.align
	if opts.SectorSize != 0 {
		if opts.SectorSize%g.align != 0 {
			return nil, openErr(path, hw.ErrMisaligned, fmt.Errorf(
				"%w: %d is not a multiple of the direct-I/O alignment %d",
				ErrSectorSize, opts.SectorSize, g.align))
		}
		ss = opts.SectorSize
	}
	if ss > MaxSectorSize {
		return nil, openErr(path, hw.ErrMisaligned, fmt.Errorf(
			"%w: direct-I/O alignment %d exceeds %d", ErrSectorSize, ss, MaxSectorSize))
	}
	d := &Device{
		info: hw.Info{
			SectorSize: ss,
			Sectors:    uint64(g.size) / uint64(ss),
			ReadOnly:   readOnly,
			Driver:     "file",
			Model:      path,
			Serial:     g.serial,
		},
		block:    block,
		memAlign: g.memAlign,
		fd:       fd,
	}
	chunk := MaxSectorSize / ss * ss
	d.bounce.New = func() any {
		b := d.AllocBuffer(chunk)
		return &b
	}
	return d, nil
}

// fileType reports whether mode is a block device, or ErrFileType when it is
// neither that nor a regular file.
func fileType(mode uint32) (block bool, err error) {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return false, nil
	case unix.S_IFBLK:
		return true, nil
	}
	return false, ErrFileType
}

// Create makes a new sparse image file of size bytes at path, which must not
// exist. size must be a positive multiple of 512; how many sectors the image
// holds depends on the sector size it is opened with (a trailing partial
// sector is ignored). The file gets mode 0666 less the umask, and its
// creation is made durable (the file and its directory are fsynced). Errors
// are *hw.Error with Op "create": Kind hw.ErrMisaligned (ErrImageSize) for a
// bad size, hw.ErrIO otherwise with the errno in Err (errors.Is(err,
// fs.ErrExist) when path exists). A file that cannot be sized and synced is
// removed again.
func Create(path string, size int64) error {
	fail := func(kind, err error) error {
		return &hw.Error{Op: "create", Device: path, Kind: kind, Err: err}
	}
	if size <= 0 || size%512 != 0 {
		return fail(hw.ErrMisaligned, fmt.Errorf("%w: %d", ErrImageSize, size))
	}
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o666)
		return err
	})
	if err != nil {
		return fail(kindOf(err), os.NewSyscallError("open", err))
	}
	if err := retry(func() error { return unix.Ftruncate(fd, size) }); err != nil {
		unix.Close(fd)
		unix.Unlink(path)
		return fail(hw.ErrIO, os.NewSyscallError("ftruncate", err))
	}
	if err := retry(func() error { return unix.Fsync(fd) }); err != nil {
		unix.Close(fd)
		unix.Unlink(path)
		return fail(hw.ErrIO, os.NewSyscallError("fsync", err))
	}
	if err := unix.Close(fd); err != nil {
		unix.Unlink(path)
		return fail(hw.ErrIO, os.NewSyscallError("close", err))
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fail(hw.ErrIO, err)
	}
	return nil
}

// syncDir makes a new directory entry in dir durable.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open", err)
	}
	defer unix.Close(fd)
	if err := retry(func() error { return unix.Fsync(fd) }); err != nil {
		return os.NewSyscallError("fsync", err)
	}
	return nil
}
