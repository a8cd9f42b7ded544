package faulty

import "github.com/tarstore/tarstore/hw"

// Read reads from the wrapped device unless the request fails here.
func (d *Device) Read(lba uint64, bufs ...[]byte) error {
	n, err := d.check("read", lba, bufs)
	return d.run(OpRead, lba, n, err, func() error { return d.dev.Read(lba, bufs...) })
}

// Write writes to the wrapped device unless the request fails here; then
// the device is not sent it and is unchanged.
func (d *Device) Write(lba uint64, bufs ...[]byte) error {
	n, err := d.check("write", lba, bufs)
	return d.run(OpWrite, lba, n, err, func() error { return d.dev.Write(lba, bufs...) })
}

// Flush flushes the wrapped device unless the request fails here.
func (d *Device) Flush() error {
	var err error
	if d.closed.Load() {
		err = d.fail("flush", 0, 0, hw.ErrClosed, nil)
	}
	return d.run(OpFlush, 0, 0, err, d.dev.Flush)
}

// WriteZeroes forwards to the wrapped device's Zeroer unless the request
// fails here. Without a Zeroer it fails with Kind hw.ErrUnsupported, so
// hw.WriteZeroes falls back to writes.
func (d *Device) WriteZeroes(lba, sectors uint64) error {
	z, ok := d.dev.(hw.Zeroer)
	err := d.checkRange("write-zeroes", lba, sectors, ok)
	return d.run(OpWriteZeroes, lba, sectors, err, func() error { return z.WriteZeroes(lba, sectors) })
}

// Discard forwards to the wrapped device's Discarder unless the request
// fails here. Without a Discarder it fails with Kind hw.ErrUnsupported.
func (d *Device) Discard(lba, sectors uint64) error {
	dc, ok := d.dev.(hw.Discarder)
	err := d.checkRange("discard", lba, sectors, ok)
	return d.run(OpDiscard, lba, sectors, err, func() error { return dc.Discard(lba, sectors) })
}

// AllocBuffer returns hw.AllocBuffer of the wrapped device, and counts it
// out (Buffers).
func (d *Device) AllocBuffer(n int) []byte {
	b := hw.AllocBuffer(d.dev, n)
	if len(b) > 0 {
		d.mu.Lock()
		if d.out == nil {
			d.out = map[*byte]int{}
		}
		d.out[&b[0]] = len(b)
		d.bufs.Allocated++
		d.mu.Unlock()
	}
	return b
}

// ReleaseBuffer calls hw.ReleaseBuffer of the wrapped device, and counts
// b back in; a buffer that is not out (released twice, or not this
// device's) is counted as stray.
func (d *Device) ReleaseBuffer(b []byte) {
	if len(b) > 0 {
		d.mu.Lock()
		if _, ok := d.out[&b[0]]; ok {
			delete(d.out, &b[0])
		} else {
			d.bufs.Stray++
		}
		d.mu.Unlock()
	}
	hw.ReleaseBuffer(d.dev, b)
}

// BufferStats counts the buffers of AllocBuffer and ReleaseBuffer: a
// driver with a pool of buffers (DMA memory) has room only for so many, so
// its users must give every one back.
type BufferStats struct {
	Allocated int // buffers AllocBuffer returned
	Out       int // of those, not given back
	OutBytes  int // their bytes
	Stray     int // ReleaseBuffer calls with a buffer that was not out
}

// Buffers returns the buffer counters.
func (d *Device) Buffers() BufferStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.bufs
	for _, n := range d.out {
		s.Out, s.OutBytes = s.Out+1, s.OutBytes+n
	}
	return s
}

// check checks a Read or Write and returns its length in sectors.
func (d *Device) check(op string, lba uint64, bufs [][]byte) (uint64, error) {
	if d.closed.Load() {
		return 0, d.fail(op, lba, 0, hw.ErrClosed, nil)
	}
	return hw.CheckRequest(d.info, op, lba, bufs)
}

// checkRange checks a range request; supported tells whether the wrapped
// device has the capability.
func (d *Device) checkRange(op string, lba, sectors uint64, supported bool) error {
	if d.closed.Load() {
		return d.fail(op, lba, sectors, hw.ErrClosed, nil)
	}
	if err := hw.CheckRange(d.info, op, lba, sectors); err != nil {
		return err
	}
	if !supported {
		return d.fail(op, lba, sectors, hw.ErrUnsupported, nil)
	}
	return nil
}

// run finishes a request of kind op over sectors sectors at lba that the
// checks answered with err: it fails it, or admits it and passes it down
// with io.
func (d *Device) run(op Op, lba, sectors uint64, err error, io func() error) error {
	if err == nil {
		err = d.admit(op, lba, sectors)
	}
	if err != nil {
		return err
	}
	defer d.inflight.Done()
	return io()
}

// admit decides, under the lock, the fate of a checked request: it fails
// it (power lost or failing at it, then an injected fault), or counts it
// and registers it in flight.
func (d *Device) admit(op Op, lba, sectors uint64) error {
	d.mu.Lock()
	if !d.lost && op&OpModify != 0 {
		d.modifies++
		if d.modifies == d.failAt {
			d.lost, d.failAt = true, 0
		}
	}
	if d.lost {
		d.mu.Unlock()
		// No request is admitted once lost is set, so the WaitGroup only
		// drains from here on.
		d.inflight.Wait()
		return d.fail(op.String(), lba, sectors, hw.ErrIO, ErrPowerLost)
	}
	defer d.mu.Unlock()
	if err := d.faults.Fire(op, d.info.Model, lba, sectors); err != nil {
		return err
	}
	d.stats.count(op)
	d.inflight.Add(1)
	return nil
}
