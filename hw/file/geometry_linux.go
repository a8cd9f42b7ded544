package file

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dio"
)

// geometry is what detect learns about an open descriptor.
type geometry struct {
	align    int    // smallest usable sector size: lcm of 512 and the direct-I/O alignments
	memAlign int    // buffer address alignment, a power of two dividing align
	size     int64  // bytes
	serial   string // block devices only, may be empty
}

// detect reads the geometry of fd, which st describes; errors are Open's.
func detect(fd int, path string, block bool, st unix.Stat_t) (geometry, error) {
	var g geometry
	var offAlign, memAlign int
	if block {
		ss, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
		if err != nil {
			return g, openErr(path, kindOf(err), os.NewSyscallError("ioctl BLKSSZGET", err))
		}
		size, err := dio.IoctlGetUint64(fd, unix.BLKGETSIZE64)
		if err != nil {
			return g, openErr(path, kindOf(err), os.NewSyscallError("ioctl BLKGETSIZE64", err))
		}
		offAlign, g.size = ss, int64(size)
		// The memory alignment only comes from statx; the logical
		// sector size is always enough.
		memAlign = ss
		if _, mem, ok, err := statxDIO(fd); err == nil && ok && mem > 0 {
			memAlign = mem
		}
		g.serial = blockSerial(st.Rdev)
	} else {
		g.size = st.Size
		off, mem, ok, err := statxDIO(fd)
		switch {
		case err == nil && ok && off == 0:
			return g, openErr(path, hw.ErrUnsupported, ErrNoDirectIO)
		case err == nil && ok:
			offAlign, memAlign = off, mem
		default:
			a, err := probeAlign(fd)
			if err != nil {
				return g, openErr(path, hw.ErrUnsupported, fmt.Errorf("%w: %w", ErrNoDirectIO, err))
			}
			offAlign, memAlign = a, a
		}
	}
	if offAlign <= 0 {
		return g, openErr(path, hw.ErrIO, fmt.Errorf("device reports sector size %d", offAlign))
	}
	g.memAlign = pow2Ceil(max(memAlign, 1))
	g.align = lcm(lcm(512, offAlign), g.memAlign)
	return g, nil
}

// statxDIO returns stx_dio_offset_align and stx_dio_mem_align of fd; ok is
// false when the kernel or file system does not report them.
func statxDIO(fd int) (off, mem int, ok bool, err error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx); err != nil {
		return 0, 0, false, err
	}
	if stx.Mask&unix.STATX_DIOALIGN == 0 {
		return 0, 0, false, nil
	}
	return int(stx.Dio_offset_align), int(stx.Dio_mem_align), true, nil
}

// probeAlign finds the direct-I/O granularity of a file whose file system
// does not report it: the first of 512 and 4096 at which an O_DIRECT read of
// that many bytes (from a page-aligned buffer, at a page-aligned offset in
// the first data region) succeeds. The kernel answers EINVAL for a
// granularity that is too small.
func probeAlign(fd int) (int, error) {
	const page = 4096
	buf := dio.Alloc(page, page)
	at, err := unix.Seek(fd, 0, unix.SEEK_DATA)
	if err != nil {
		at = 0 // ENXIO: no data at all; EINVAL: SEEK_DATA unsupported
	}
	at &^= page - 1
	var last error
	for _, a := range []int{512, page} {
		err := retry(func() error {
			_, err := unix.Pread(fd, buf[:a], at)
			return err
		})
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return 0, os.NewSyscallError("pread", err)
		}
		last = err
	}
	return 0, os.NewSyscallError("pread", last)
}

// blockSerial reads the serial number of the block device rdev from sysfs:
// the disk's own attribute (virtio-blk) or its device's (NVMe, some SCSI),
// taking the whole disk's for a partition. It returns "" when there is none.
func blockSerial(rdev uint64) string {
	dir := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(rdev), unix.Minor(rdev))
	if _, err := os.Stat(dir + "/partition"); err == nil {
		dir += "/.." // resolved by the kernel after the symlink, not lexically
	}
	for _, name := range []string{"/serial", "/device/serial"} {
		if b, err := os.ReadFile(dir + name); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				return s
			}
		}
	}
	return ""
}

// pow2Ceil rounds n (> 0) up to a power of two.
func pow2Ceil(n int) int {
	if n&(n-1) == 0 {
		return n
	}
	return 1 << bits.Len(uint(n))
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func lcm(a, b int) int { return a / gcd(a, b) * b }
