package crash

import (
	"fmt"

	"github.com/tarstore/tarstore/hw"
)

// Read fills bufs from the medium as the writes so far left it (durable
// contents with the pending log applied).
func (d *Device) Read(lba uint64, bufs ...[]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.admit("read", lba, bufs)
	if err != nil {
		return err
	}
	d.stats.Reads++
	d.stats.BytesRead += int64(n) * int64(d.info.SectorSize)
	if err := d.faults.Fire(OpRead, d.info.Model, lba, n); err != nil {
		return err
	}
	return d.current.Read(lba, bufs...)
}

// Write stores bufs at lba: visible to reads at once, durable after the next
// successful Flush.
func (d *Device) Write(lba uint64, bufs ...[]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.admit("write", lba, bufs)
	if err != nil {
		return err
	}
	w := write{lba: lba, sectors: n, data: make([]byte, 0, int(n)*d.info.SectorSize)}
	for _, b := range bufs {
		w.data = append(w.data, b...)
	}
	d.stats.BytesWritten += int64(len(w.data))
	return d.issue(OpWrite, "write", w)
}

// WriteZeroes zeroes sectors sectors at lba; it is a write like any other
// for the pending log, the crash point count and fault injection.
func (d *Device) WriteZeroes(lba, sectors uint64) error {
	return d.zero(OpWriteZeroes, "write-zeroes", lba, sectors)
}

// Discard deallocates sectors sectors at lba. On this device discarded
// sectors read as zeroes; otherwise Discard behaves as WriteZeroes.
func (d *Device) Discard(lba, sectors uint64) error {
	return d.zero(OpDiscard, "discard", lba, sectors)
}

func (d *Device) zero(op Op, name string, lba, sectors uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return d.fail(name, lba, sectors, hw.ErrClosed, nil)
	}
	if err := hw.CheckRange(d.info, name, lba, sectors); err != nil {
		return err
	}
	if d.powerLost {
		return d.fail(name, lba, sectors, hw.ErrIO, ErrPowerLost)
	}
	return d.issue(op, name, write{lba: lba, sectors: sectors})
}

// Flush makes every pending write durable, unless the power is lost or a
// flush fault is armed; then the pending log stays as it is.
func (d *Device) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return d.fail("flush", 0, 0, hw.ErrClosed, nil)
	}
	if d.powerLost {
		return d.fail("flush", 0, 0, hw.ErrIO, ErrPowerLost)
	}
	d.stats.Flushes++
	if err := d.faults.Fire(OpFlush, d.info.Model, 0, 0); err != nil {
		return err
	}
	for i, w := range d.pending {
		if err := apply(d.durable, w, 0, w.sectors); err != nil {
			// Only a caller that closed or replaced the durable medium
			// behind the Device's back gets here. Keep what was not
			// applied pending.
			d.pending = d.pending[i:]
			return d.fail("flush", 0, 0, hw.ErrIO, fmt.Errorf("crash: durable medium: %w", err))
		}
	}
	d.pending = nil
	return nil
}

// admit checks a Read or Write against the device's state and geometry and
// returns its length in sectors. The caller holds mu.
func (d *Device) admit(op string, lba uint64, bufs [][]byte) (uint64, error) {
	if d.closed {
		return 0, d.fail(op, lba, 0, hw.ErrClosed, nil)
	}
	n, err := hw.CheckRequest(d.info, op, lba, bufs)
	if err != nil {
		return 0, err
	}
	if d.powerLost {
		return 0, d.fail(op, lba, n, hw.ErrIO, ErrPowerLost)
	}
	return n, nil
}

// issue sends a valid write to the medium: it counts it, cuts the power if
// this is the armed crash point (the write then joins the pending log
// unacknowledged), fails it if a fault matches, and otherwise applies it to
// what reads see and logs it. The caller holds mu.
func (d *Device) issue(op Op, name string, w write) error {
	d.stats.Writes++
	if d.failAt != 0 && d.stats.Writes == d.failAt {
		d.failAt = 0
		d.powerLost = true
		d.pending = append(d.pending, w)
		return d.fail(name, w.lba, w.sectors, hw.ErrIO, ErrPowerLost)
	}
	if err := d.faults.Fire(op, d.info.Model, w.lba, w.sectors); err != nil {
		return err
	}
	if err := apply(d.current, w, 0, w.sectors); err != nil {
		return err
	}
	d.pending = append(d.pending, w)
	return nil
}
