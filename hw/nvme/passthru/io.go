package passthru

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dio"
	"github.com/tarstore/tarstore/hw/internal/sg"
	"github.com/tarstore/tarstore/hw/nvme"
)

// Read fills bufs, in order, from consecutive sectors starting at lba, with
// Read commands (NVM Command Set 1.0 §3.2.4).
func (d *Device) Read(lba uint64, bufs ...[]byte) error {
	return d.transfer("read", nvme.ReadCommand, lba, bufs)
}

// Write stores bufs, in order, to consecutive sectors starting at lba, with
// Write commands (NVM Command Set 1.0 §3.2.6).
func (d *Device) Write(lba uint64, bufs ...[]byte) error {
	return d.transfer("write", nvme.WriteCommand, lba, bufs)
}

// Flush sends a Flush command (NVMe Base 2.0 §7.1) when the controller has
// a volatile write cache (Identify Controller VWC bit 0), which commits
// every write completed before it. Without one, completed writes are
// already durable, and on a read-only device there are none: Flush then
// only checks that the device is open.
func (d *Device) Flush() error {
	const op = "flush"
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.fds == nil {
		return d.failure(op, 0, 0, hw.ErrClosed, nil)
	}
	if !d.flush || d.info.ReadOnly {
		return nil
	}
	return d.do(op, 0, 0, nvme.FlushCommand(d.nsid), nil)
}

// WriteZeroes zeroes sectors sectors at lba with Write Zeroes commands
// (NVM Command Set 1.0 §3.2.8, DEAC clear) of at most nvme.MaxBlocks
// blocks each. Without the command (ONCS bit 3), or when the controller
// answers Invalid Field (a size it does not take), it fails with
// hw.ErrUnsupported and hw.WriteZeroes falls back to writes.
func (d *Device) WriteZeroes(lba, sectors uint64) error {
	const op = "write-zeroes"
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.rangeCheck(op, d.zeroes, lba, sectors); err != nil || sectors == 0 {
		return err
	}
	for sectors > 0 {
		k := min(sectors, nvme.MaxBlocks)
		if err := d.do(op, lba, k, nvme.WriteZeroesCommand(d.nsid, lba, int(k)), nil); err != nil {
			return err
		}
		lba += k
		sectors -= k
	}
	return nil
}

// Discard deallocates sectors sectors at lba with Dataset Management
// commands (NVM Command Set 1.0 §3.2.3, attribute Deallocate), the ranges
// laid out by nvme.DeallocateRanges. Without the command (ONCS bit 2) it
// fails with hw.ErrUnsupported.
func (d *Device) Discard(lba, sectors uint64) error {
	const op = "discard"
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.rangeCheck(op, d.dealloc, lba, sectors); err != nil || sectors == 0 {
		return err
	}
	perCmd := d.maxXfer / nvme.DSMRangeSize
	for sectors > 0 {
		list, covered := nvme.DeallocateRanges(lba, sectors, d.info.SectorSize, perCmd)
		c := nvme.DeallocateCommand(d.nsid, len(list)/nvme.DSMRangeSize)
		if err := d.do(op, lba, covered, c, list); err != nil {
			return err
		}
		lba += covered
		sectors -= covered
	}
	return nil
}

// rangeCheck validates a write-zeroes or discard; the caller holds mu for
// reading. A nil error with sectors 0 means there is nothing to do.
func (d *Device) rangeCheck(op string, supported bool, lba, sectors uint64) error {
	if d.fds == nil {
		return d.failure(op, lba, sectors, hw.ErrClosed, nil)
	}
	if err := hw.CheckRange(d.info, op, lba, sectors); err != nil {
		return err
	}
	if !supported {
		return d.failure(op, lba, sectors, hw.ErrUnsupported, nil)
	}
	return nil
}

// do sends one I/O command of blocks blocks at lba, moving data (which may
// be empty), and turns its failure into an *hw.Error: a positive ioctl
// result is an NVMe status (a *nvme.StatusError, with the kind it maps
// to), a negative one an errno (hw.ErrIO wrapping an *os.SyscallError).
// The caller holds mu for reading. An EINTR is not retried: the nvme
// driver waits for the command without being interruptible and returns
// EINTR for a command it cancelled (a timeout, a controller reset), which
// may or may not have run.
func (d *Device) do(op string, lba, blocks uint64, nc nvme.Command, data []byte) error {
	d.slots <- struct{}{}
	st, err := d.k.passthru(d.fds[0], ioctlIOCmd, newCmd(nc, len(data), d.timeout), data)
	<-d.slots
	switch {
	case err != nil:
		return d.failure(op, lba, blocks, hw.ErrIO, os.NewSyscallError(ioctlName(ioctlIOCmd), err))
	case st != 0:
		return d.failure(op, lba, blocks, hw.ErrIO, statusError(op, lba, st))
	}
	return nil
}

// transfer performs a Read or Write: the request's bytes, bufs back to
// back, are cut into commands of at most maxXfer bytes, which run
// concurrently (at most Options.Depth ioctls in flight on the device).
// A command's data that lies in one buffer at a dword-aligned address goes
// to the kernel as it is; other data goes through a pooled page-aligned
// bounce buffer. The error is that of the failed command at the lowest
// block; after a failure no further command starts.
func (d *Device) transfer(op string, encode func(nsid uint32, slba uint64, blocks int) nvme.Command, lba uint64, bufs [][]byte) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.fds == nil {
		return d.failure(op, lba, 0, hw.ErrClosed, nil)
	}
	n, err := hw.CheckRequest(d.info, op, lba, bufs)
	if err != nil {
		return err
	}
	ss := d.info.SectorSize
	write := op == "write"
	pieces := sg.Split(int(n)*ss, d.maxXfer)
	one := func(p sg.Piece) error {
		at, blocks := lba+uint64(p.Off/ss), p.Len/ss
		c := encode(d.nsid, at, blocks)
		if data := contiguous(bufs, p); data != nil && !dio.Misaligned(data, dataAlign) {
			return d.do(op, at, uint64(blocks), c, data)
		}
		bp := d.bounce.Get().(*[]byte)
		defer d.bounce.Put(bp)
		data := (*bp)[:p.Len]
		if write {
			sg.Gather(data, bufs, p.Off)
		}
		if err := d.do(op, at, uint64(blocks), c, data); err != nil {
			return err
		}
		if !write {
			sg.Scatter(bufs, p.Off, data)
		}
		return nil
	}
	if len(pieces) == 1 {
		return one(pieces[0])
	}
	errs := make([]error, len(pieces))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(len(pieces), cap(d.slots)) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(pieces) {
					return
				}
				if errs[i] = one(pieces[i]); errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs { // the failure at the lowest block
		if err != nil {
			return err
		}
	}
	return nil
}

// contiguous returns the bytes of piece p of bufs' concatenation when they
// lie in one buffer, else nil.
func contiguous(bufs [][]byte, p sg.Piece) []byte {
	off := p.Off
	for _, b := range bufs {
		if off < len(b) {
			if off+p.Len <= len(b) {
				return b[off : off+p.Len : off+p.Len]
			}
			return nil
		}
		off -= len(b)
	}
	return nil
}
