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

// AllocBuffer returns hw.AllocBuffer of the wrapped device.
func (d *Device) AllocBuffer(n int) []byte { return hw.AllocBuffer(d.dev, n) }

// ReleaseBuffer calls hw.ReleaseBuffer of the wrapped device.
func (d *Device) ReleaseBuffer(b []byte) { hw.ReleaseBuffer(d.dev, b) }

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
