package file

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dio"
)

// WriteZeroes zeroes sectors sectors at lba without transferring zeroes:
// BLKZEROOUT on a block device, fallocate(FALLOC_FL_ZERO_RANGE|
// FALLOC_FL_KEEP_SIZE) on a file. Kind hw.ErrUnsupported when the device or
// file system cannot (hw.WriteZeroes then writes zeroes).
func (d *Device) WriteZeroes(lba, sectors uint64) error {
	return d.rangeOp("write-zeroes", lba, sectors)
}

// Discard deallocates sectors sectors at lba: BLKDISCARD on a block device,
// fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE) on a file (which then
// reads back zeroes). Kind hw.ErrUnsupported when the device or file system
// cannot.
func (d *Device) Discard(lba, sectors uint64) error {
	return d.rangeOp("discard", lba, sectors)
}

// rangeOp performs WriteZeroes or Discard.
func (d *Device) rangeOp(op string, lba, sectors uint64) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.fd < 0 {
		return d.fail(op, lba, sectors, hw.ErrClosed, nil)
	}
	if err := hw.CheckRange(d.info, op, lba, sectors); err != nil {
		return err
	}
	if sectors == 0 {
		return nil
	}
	ss := uint64(d.info.SectorSize)
	off, n := lba*ss, sectors*ss
	var call string
	var err error
	for {
		switch {
		case d.block && op == "discard":
			call, err = "ioctl BLKDISCARD", dio.IoctlRange(d.fd, unix.BLKDISCARD, off, n)
		case d.block:
			call, err = "ioctl BLKZEROOUT", dio.IoctlRange(d.fd, unix.BLKZEROOUT, off, n)
		case op == "discard":
			call, err = "fallocate", unix.Fallocate(d.fd,
				unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n))
		default:
			call, err = "fallocate", unix.Fallocate(d.fd,
				unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n))
		}
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		kind := hw.ErrIO
		if k := kindOf(err); k == hw.ErrUnsupported {
			kind = k
		}
		return d.fail(op, lba, sectors, kind, os.NewSyscallError(call, err))
	}
	return nil
}
