package blockio

import (
	"errors"

	"github.com/tarstore/tarstore/hw"
)

// Request bounds. A device request (one Read or Write) carries at most MaxIO
// bytes, or one sector when sectors are larger, in at most MaxSegments
// buffers. 1 MiB is hw/file's bounce chunk and hw.WriteZeroes' chunk, large
// enough that the cost of a request is small next to its transfer; 1024 is
// IOV_MAX on Linux, so hw/file passes each request to one preadv/pwritev.
const (
	MaxIO       = 1 << 20
	MaxSegments = 1024
)

// ErrNegativeOffset is the cause (hw.Error.Err) of the error for a negative
// byte offset; its Kind is hw.ErrOutOfRange, so errors.Is(err,
// hw.ErrOutOfRange) covers every request outside the device.
var ErrNegativeOffset = errors.New("blockio: negative offset")

// checkRange validates the byte range [off, off+n) against the device and
// returns the *hw.Error a driver would give for its sectors, or nil. The
// range may be empty; it may end at the device end.
func checkRange(info hw.Info, op string, off, n int64) error {
	size := info.Size()
	if off >= 0 && off <= size && n <= size-off {
		return nil
	}
	e := &hw.Error{Op: op, Device: info.Model, Kind: hw.ErrOutOfRange}
	if off < 0 {
		e.Err = ErrNegativeOffset
		return e
	}
	ss := uint64(info.SectorSize)
	e.LBA = uint64(off) / ss
	if n > 0 {
		e.Sectors = (uint64(off)%ss + uint64(n) + ss - 1) / ss
	}
	return e
}

// geometry is the sector arithmetic of one device.
type geometry struct {
	ss       int64 // sector size
	maxBytes int64 // bytes per request: MaxIO rounded down to sectors, at least one sector
}

func newGeometry(info hw.Info) geometry {
	ss := int64(info.SectorSize)
	return geometry{ss: ss, maxBytes: max(ss, MaxIO/ss*ss)}
}

func (g geometry) down(off int64) int64 { return off - off%g.ss }
func (g geometry) up(off int64) int64   { return g.down(off + g.ss - 1) }
func (g geometry) lba(off int64) uint64 { return uint64(off / g.ss) }

// seg is a run of whole sectors of one request.
type seg struct {
	off  int64  // device byte offset, a multiple of the sector size
	n    int64  // length, a non-zero multiple of the sector size
	data []byte // the n bytes, or nil for a bounce segment the issuer fills
}

// requests packs segments that lie back to back on the device into
// requests of at most maxBytes bytes and MaxSegments buffers, splitting
// segments at sector boundaries, and hands each request to issue.
type requests struct {
	maxBytes int64
	segs     []seg
	n        int64 // bytes in segs
	issue    func(segs []seg) error
}

// add appends s, which must start where the segments added since the last
// flush end, issuing the requests it fills.
func (r *requests) add(s seg) error {
	for s.n > 0 {
		if r.n == r.maxBytes || len(r.segs) == MaxSegments {
			if err := r.flush(); err != nil {
				return err
			}
		}
		part := seg{off: s.off, n: min(s.n, r.maxBytes-r.n)}
		if s.data != nil {
			part.data, s.data = s.data[:part.n], s.data[part.n:]
		}
		r.segs = append(r.segs, part)
		r.n += part.n
		s.off += part.n
		s.n -= part.n
	}
	return nil
}

// flush issues the pending request, if any.
func (r *requests) flush() error {
	if len(r.segs) == 0 {
		return nil
	}
	err := r.issue(r.segs)
	clear(r.segs)
	r.segs, r.n = r.segs[:0], 0
	return err
}

// bufs returns the buffers of segs, reusing dst.
func bufs(dst [][]byte, segs []seg) [][]byte {
	dst = dst[:0]
	for _, s := range segs {
		dst = append(dst, s.data)
	}
	return dst
}
