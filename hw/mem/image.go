package mem

import (
	"errors"
	"io"
)

// Size is the capacity in bytes, Info().Size().
func (d *Device) Size() int64 { return d.s.size }

// Allocated is the number of bytes of memory backing the medium: a multiple
// of the 64 KiB chunk size, zero for a device never written with non-zero
// data.
func (d *Device) Allocated() int64 {
	d.s.mu.RLock()
	defer d.s.mu.RUnlock()
	return int64(len(d.s.chunks)) * chunkSize
}

// Bytes returns a copy of the whole image, Size() bytes. Use ReaderAt for
// large devices.
func (d *Device) Bytes() []byte {
	d.s.mu.RLock()
	defer d.s.mu.RUnlock()
	b := make([]byte, d.s.size)
	d.s.readAt(b, 0)
	return b
}

// ReaderAt returns a reader over the whole image: an io.ReaderAt that is
// also an io.Reader and io.Seeker positioned at 0, so that for example
// archive/tar can read the image without copying it. It reads the live
// medium: writes made meanwhile are visible.
func (d *Device) ReaderAt() *io.SectionReader {
	return io.NewSectionReader(imageReader{d.s}, 0, d.s.size)
}

// Clone returns a new, open, writable device of the same geometry holding a
// copy of the medium; later changes to either do not affect the other.
func (d *Device) Clone() *Device {
	d.s.mu.RLock()
	defer d.s.mu.RUnlock()
	info := d.info
	info.ReadOnly = false
	return &Device{s: d.s.clone(), info: info}
}

// Reopen returns a new open handle on the same medium, with this handle's
// read-only flag: what opening the same disk again after Close gives.
func (d *Device) Reopen() *Device {
	return &Device{s: d.s, info: d.info}
}

// ReadOnlyView returns a new open, read-only handle on the same medium.
// Writes through the view fail with hw.ErrReadOnly; writes through other
// handles remain visible to it.
func (d *Device) ReadOnlyView() *Device {
	info := d.info
	info.ReadOnly = true
	return &Device{s: d.s, info: info}
}

// imageReader reads the medium by byte offset.
type imageReader struct{ s *store }

var errNegativeOffset = errors.New("mem: negative offset")

func (r imageReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset
	}
	if off >= r.s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.s.size-off))
	r.s.mu.RLock()
	r.s.readAt(p[:n], off)
	r.s.mu.RUnlock()
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
