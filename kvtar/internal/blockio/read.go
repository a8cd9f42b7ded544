package blockio

import "github.com/tarstore/tarstore/hw"

// ReadAt reads len(p) bytes at byte offset off of dev into p: any offset,
// any length. The whole sectors in the middle of the range are read
// straight into p; a first or last sector that is wanted only in part is
// read into a bounce buffer and copied. The range is read with one vectored
// Read per MaxIO bytes (and MaxSegments buffers).
//
// A zero-length read does no I/O and returns nil. A range that does not lie
// within the device fails, before any I/O, with an *hw.Error of Kind
// hw.ErrOutOfRange (Err ErrNegativeOffset for off < 0). Otherwise the error
// is the device's, and the contents of p are then unspecified.
func ReadAt(dev hw.Block, p []byte, off int64) error {
	info := dev.Info()
	if err := checkRange(info, "read", off, int64(len(p))); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	g := newGeometry(info)
	end := off + int64(len(p))
	first, last := g.down(off), g.up(end)
	r := requests{maxBytes: g.maxBytes}
	var dst [][]byte
	r.issue = func(segs []seg) error {
		dst = bufs(dst, segs)
		return dev.Read(g.lba(segs[0].off), dst...)
	}
	if off == first && end == last {
		// Aligned at both ends: all of p is whole sectors.
		if err := r.add(seg{off: off, n: int64(len(p)), data: p}); err != nil {
			return err
		}
		return r.flush()
	}
	if last-first == g.ss {
		// Part of one sector.
		bounce := hw.AllocBuffer(dev, int(g.ss))
		if err := dev.Read(g.lba(first), bounce); err != nil {
			return err
		}
		copy(p, bounce[off-first:])
		return nil
	}
	// A partial head, a partial tail or both, in different sectors, and
	// whole sectors (possibly none) between them.
	mid, midEnd := g.up(off), g.down(end)
	var head, tail []byte
	n := 0
	if off != mid {
		n++
	}
	if end != midEnd {
		n++
	}
	bounce := hw.AllocBuffer(dev, n*int(g.ss))
	if off != mid {
		head, bounce = bounce[:g.ss], bounce[g.ss:]
		if err := r.add(seg{off: first, n: g.ss, data: head}); err != nil {
			return err
		}
	}
	if mid < midEnd {
		if err := r.add(seg{off: mid, n: midEnd - mid, data: p[mid-off : midEnd-off]}); err != nil {
			return err
		}
	}
	if end != midEnd {
		tail = bounce[:g.ss]
		if err := r.add(seg{off: midEnd, n: g.ss, data: tail}); err != nil {
			return err
		}
	}
	if err := r.flush(); err != nil {
		return err
	}
	if head != nil {
		copy(p, head[off-first:])
	}
	if tail != nil {
		copy(p[midEnd-off:], tail[:end-midEnd])
	}
	return nil
}
