package mem

import "github.com/tarstore/tarstore/hw"

// Read fills bufs from consecutive sectors starting at lba.
func (d *Device) Read(lba uint64, bufs ...[]byte) error {
	if d.closed.Load() {
		return d.fail("read", lba, 0, hw.ErrClosed)
	}
	if _, err := hw.CheckRequest(d.info, "read", lba, bufs); err != nil {
		return err
	}
	d.s.mu.RLock()
	defer d.s.mu.RUnlock()
	off := d.offset(lba)
	for _, b := range bufs {
		d.s.readAt(b, off)
		off += int64(len(b))
	}
	return nil
}

// Write stores bufs to consecutive sectors starting at lba. It is durable
// when it returns.
func (d *Device) Write(lba uint64, bufs ...[]byte) error {
	if d.closed.Load() {
		return d.fail("write", lba, 0, hw.ErrClosed)
	}
	if _, err := hw.CheckRequest(d.info, "write", lba, bufs); err != nil {
		return err
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	off := d.offset(lba)
	for _, b := range bufs {
		d.s.writeAt(b, off)
		off += int64(len(b))
	}
	return nil
}

// Flush has nothing to do: writes to memory are durable at once. It fails
// only after Close.
func (d *Device) Flush() error {
	if d.closed.Load() {
		return d.fail("flush", 0, 0, hw.ErrClosed)
	}
	return nil
}

// WriteZeroes zeroes sectors sectors at lba, freeing the memory behind them.
func (d *Device) WriteZeroes(lba, sectors uint64) error {
	return d.zero("write-zeroes", lba, sectors)
}

// Discard deallocates sectors sectors at lba. On this device they then read
// as zeroes, exactly as after WriteZeroes.
func (d *Device) Discard(lba, sectors uint64) error {
	return d.zero("discard", lba, sectors)
}

func (d *Device) zero(op string, lba, sectors uint64) error {
	if d.closed.Load() {
		return d.fail(op, lba, sectors, hw.ErrClosed)
	}
	if err := hw.CheckRange(d.info, op, lba, sectors); err != nil {
		return err
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	d.s.zero(d.offset(lba), int64(sectors)*int64(d.info.SectorSize))
	return nil
}

// offset is the byte offset of lba; lba has been checked against the
// geometry, whose size in bytes fits an int64.
func (d *Device) offset(lba uint64) int64 { return int64(lba) * int64(d.info.SectorSize) }
