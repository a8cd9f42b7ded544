package file

import (
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dio"
)

// iovMax is the most segments one preadv/pwritev takes (IOV_MAX on Linux).
const iovMax = 1024

// Read fills bufs, in order, from consecutive sectors starting at lba.
func (d *Device) Read(lba uint64, bufs ...[]byte) error { return d.request(false, lba, bufs) }

// Write stores bufs, in order, to consecutive sectors starting at lba.
func (d *Device) Write(lba uint64, bufs ...[]byte) error { return d.request(true, lba, bufs) }

// Flush makes every write completed before the call durable with
// fdatasync(2). It does nothing on a read-only device.
func (d *Device) Flush() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.fd < 0 {
		return d.fail("flush", 0, 0, hw.ErrClosed, nil)
	}
	if d.info.ReadOnly {
		return nil
	}
	if err := retry(func() error { return unix.Fdatasync(d.fd) }); err != nil {
		return d.fail("flush", 0, 0, hw.ErrIO, os.NewSyscallError("fdatasync", err))
	}
	return nil
}

// request validates and performs one Read or Write.
func (d *Device) request(write bool, lba uint64, bufs [][]byte) error {
	op := "read"
	if write {
		op = "write"
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.fd < 0 {
		return d.fail(op, lba, 0, hw.ErrClosed, nil)
	}
	n, err := hw.CheckRequest(d.info, op, lba, bufs)
	if err != nil {
		return err
	}
	ss := int64(d.info.SectorSize)
	done, err := d.transfer(write, bufs, int64(lba)*ss)
	if err != nil {
		at := uint64(done / ss)
		return d.fail(op, lba+at, n-at, hw.ErrIO, err)
	}
	return nil
}

// transfer moves bufs to or from the device at byte offset off and returns
// the number of bytes transferred before an error. Aligned buffers go to the
// kernel as they are; if any is misaligned, the request is bounced.
func (d *Device) transfer(write bool, bufs [][]byte, off int64) (int64, error) {
	for _, b := range bufs {
		if dio.Misaligned(b, d.memAlign) {
			return d.bounced(write, bufs, off)
		}
	}
	var done int64
	for len(bufs) > 0 {
		k := min(len(bufs), iovMax)
		n, err := d.vec(write, bufs[:k], off+done)
		done += n
		if err != nil {
			return done, err
		}
		bufs = bufs[k:]
	}
	return done, nil
}

// bounced transfers bufs, copying the misaligned ones through a pooled
// aligned chunk. Consecutive misaligned buffers share one segment of the
// chunk; each batch (at most iovMax segments and one chunk of bounced bytes)
// is one system call.
func (d *Device) bounced(write bool, bufs [][]byte, off int64) (int64, error) {
	chunkp := d.bounce.Get().(*[]byte)
	defer d.bounce.Put(chunkp)
	chunk := *chunkp

	type copyOut struct{ dst, src []byte }
	var (
		iovs    = make([][]byte, 0, min(len(bufs)+1, iovMax))
		copies  []copyOut // for reads: chunk pieces to hand back
		used    int       // bytes of chunk in this batch
		tail    bool      // the last segment ends at chunk[used]
		done    int64
		lastErr error
	)
	issue := func() bool {
		n, err := d.vec(write, iovs, off+done)
		done += n
		if err != nil {
			lastErr = err
			return false
		}
		for _, c := range copies {
			copy(c.dst, c.src)
		}
		iovs, copies, used, tail = iovs[:0], copies[:0], 0, false
		return true
	}
	for _, b := range bufs {
		if !dio.Misaligned(b, d.memAlign) {
			if len(iovs) == iovMax && !issue() {
				return done, lastErr
			}
			iovs = append(iovs, b)
			tail = false
			continue
		}
		for len(b) > 0 {
			if used == len(chunk) || (len(iovs) == iovMax && !tail) {
				if !issue() {
					return done, lastErr
				}
			}
			n := min(len(b), len(chunk)-used)
			piece := chunk[used : used+n]
			if write {
				copy(piece, b[:n])
			} else {
				copies = append(copies, copyOut{b[:n], piece})
			}
			if tail {
				last := iovs[len(iovs)-1]
				iovs[len(iovs)-1] = chunk[used-len(last) : used+n]
			} else {
				iovs = append(iovs, piece)
			}
			used += n
			tail = true
			b = b[n:]
		}
	}
	if len(iovs) > 0 && !issue() {
		return done, lastErr
	}
	return done, nil
}

// vec transfers iovs (at most iovMax aligned segments) at byte offset off,
// resuming short transfers, and returns the bytes transferred.
func (d *Device) vec(write bool, iovs [][]byte, off int64) (int64, error) {
	if len(iovs) == 1 {
		return d.single(write, iovs[0], off)
	}
	var done int64
	owned := false
	for len(iovs) > 0 {
		var n int
		var err error
		if write {
			n, err = unix.Pwritev(d.fd, iovs, off+done)
		} else {
			n, err = unix.Preadv(d.fd, iovs, off+done)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return done, os.NewSyscallError(callName(write, true), err)
		case n == 0:
			return done, endErr(write)
		}
		done += int64(n)
		for n > 0 {
			if n >= len(iovs[0]) {
				n -= len(iovs[0])
				iovs = iovs[1:]
				continue
			}
			if !owned { // do not modify the caller's slice
				iovs, owned = slices.Clone(iovs), true
			}
			iovs[0] = iovs[0][n:]
			n = 0
		}
	}
	return done, nil
}

// single transfers one aligned buffer at byte offset off.
func (d *Device) single(write bool, b []byte, off int64) (int64, error) {
	var done int64
	for len(b) > 0 {
		var n int
		var err error
		if write {
			n, err = unix.Pwrite(d.fd, b, off+done)
		} else {
			n, err = unix.Pread(d.fd, b, off+done)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return done, os.NewSyscallError(callName(write, false), err)
		case n == 0:
			return done, endErr(write)
		}
		done += int64(n)
		b = b[n:]
	}
	return done, nil
}

// endErr is the cause of a transfer that made no progress: the file ended
// (it was truncated behind the driver's back).
func endErr(write bool) error {
	if write {
		return io.ErrShortWrite
	}
	return io.ErrUnexpectedEOF
}

// callName names the system call for errors.
func callName(write, vectored bool) string {
	switch {
	case write && vectored:
		return "pwritev"
	case write:
		return "pwrite"
	case vectored:
		return "preadv"
	}
	return "pread"
}
