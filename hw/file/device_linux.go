package file

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dio"
)

// Compile-time checks of the capabilities a Device offers.
var (
	_ hw.Block     = (*Device)(nil)
	_ hw.Zeroer    = (*Device)(nil)
	_ hw.Discarder = (*Device)(nil)
	_ hw.Allocator = (*Device)(nil)
)

// MaxSectorSize is the largest sector size Open accepts. It is also the size
// of a bounce chunk, so one sector always fits in one.
const MaxSectorSize = 1 << 20

// Causes carried in the Err field of an *hw.Error from Open and Create, for
// errors.Is.
var (
	// ErrSectorSize: Options.SectorSize is not a multiple of 512 and of the
	// detected direct-I/O alignment, or exceeds MaxSectorSize (Kind
	// hw.ErrMisaligned).
	ErrSectorSize = errors.New("invalid sector size")
	// ErrImageSize: Create was asked for a size that is not a positive
	// multiple of 512 (Kind hw.ErrMisaligned).
	ErrImageSize = errors.New("image size is not a positive multiple of 512")
	// ErrFileType: the path is neither a regular file nor a block device
	// (Kind hw.ErrUnsupported).
	ErrFileType = errors.New("not a regular file or block device")
	// ErrNoDirectIO: the file system does not support O_DIRECT for this
	// file (Kind hw.ErrUnsupported).
	ErrNoDirectIO = errors.New("direct I/O not supported")
)

// Options tune Open.
type Options struct {
	// ReadOnly opens the device O_RDONLY with a shared lock; writes fail
	// with hw.ErrReadOnly. A block device that reports BLKROGET is
	// read-only regardless.
	ReadOnly bool
	// SectorSize is the logical sector size to present. 0 uses the detected
	// direct-I/O granularity; otherwise it must be a multiple of 512 and of
	// that granularity, at most MaxSectorSize.
	SectorSize int
}

// Device is an open image file or block device. It is safe for concurrent
// use. See the package documentation for the contract.
type Device struct {
	info     hw.Info
	block    bool // a block device node (ioctls) rather than a regular file (fallocate)
	memAlign int  // buffer address alignment for O_DIRECT: a power of two dividing SectorSize
	bounce   sync.Pool

	// mu is held for reading by every request for as long as it uses fd,
	// and for writing by Close, so fd is never used after it is closed.
	mu sync.RWMutex
	fd int // -1 once closed
}

// Info returns the geometry read at Open. It stays valid after Close.
func (d *Device) Info() hw.Info { return d.info }

// AllocBuffer returns a zeroed page-aligned buffer of n bytes, which Read
// and Write transfer without a bounce copy. n should be a multiple of the
// sector size; a negative n yields nil.
func (d *Device) AllocBuffer(n int) []byte { return dio.Alloc(n, d.memAlign) }

// Close releases the descriptor and with it the lock. It does not flush and
// waits for requests in flight. Closing twice is not an error.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	fd := d.fd
	d.fd = -1
	if err := unix.Close(fd); err != nil {
		return d.fail("close", 0, 0, hw.ErrIO, os.NewSyscallError("close", err))
	}
	return nil
}

// fail builds the *hw.Error for a request on d.
func (d *Device) fail(op string, lba, sectors uint64, kind, err error) error {
	return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: kind, Err: err}
}

// kindOf classifies an errno from open, flock, ioctl or fallocate.
func kindOf(err error) error {
	switch {
	case errors.Is(err, unix.EWOULDBLOCK), errors.Is(err, unix.EBUSY):
		return hw.ErrBusy
	case errors.Is(err, unix.EROFS):
		return hw.ErrReadOnly
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.ENOSYS):
		return hw.ErrUnsupported
	}
	return hw.ErrIO
}

// retry calls f until it fails with something other than EINTR.
func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
