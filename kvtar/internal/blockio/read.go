package blockio

import (
	"sync"

	"github.com/tarstore/tarstore/hw"
)

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
	if off == first && end == last && int64(len(p)) <= g.maxBytes {
		// Whole sectors, one request.
		return dev.Read(g.lba(off), p)
	}
	if last-first == g.ss {
		// Part of one sector.
		bounce := getBounce(dev, int(g.ss))
		if err := dev.Read(g.lba(first), bounce); err != nil {
			return err // bounce is not given back: a request that failed may still own it
		}
		copy(p, bounce[off-first:])
		putBounce(dev, bounce)
		return nil
	}
	// Requests go out concurrently (up to MaxInFlight): a large read
	// overlaps the device's latency, and the page faults of a fresh
	// buffer, across its requests.
	var fl inflight
	r := requests{maxBytes: g.maxBytes}
	r.issue = func(segs []seg) error {
		dst := bufs(nil, segs)
		lba := g.lba(segs[0].off)
		fl.start(ioRequest{dev: dev, lba: lba, bufs: dst})
		return nil
	}
	if off == first && end == last {
		// Aligned at both ends: all of p is whole sectors.
		err := r.add(seg{off: off, n: int64(len(p)), data: p})
		if err == nil {
			err = r.flush()
		}
		if werr := fl.wait(); err == nil {
			err = werr
		}
		return err
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
	bounce := getBounce(dev, n*int(g.ss))
	whole := bounce
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
	err := r.flush()
	if werr := fl.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	if head != nil {
		copy(p, head[off-first:])
	}
	if tail != nil {
		copy(p[midEnd-off:], tail[:end-midEnd])
	}
	putBounce(dev, whole)
	return nil
}

// bounceMax is the largest bounce buffer ReadAt keeps for reuse: two
// sectors of 4 KiB.
const bounceMax = 8 << 10

// plainBounce keeps bounce buffers of ordinary memory (for devices that
// are not hw.Allocators) for reuse: a small unaligned read would
// otherwise make and zero a sector's buffer every time.
var plainBounce = sync.Pool{New: func() any { return new([bounceMax]byte) }}

// getBounce returns n bytes of bounce memory for a read from dev, with any
// contents: from dev's Allocator when it has one, else reused ordinary
// memory when n is at most bounceMax.
func getBounce(dev hw.Block, n int) []byte {
	if allocates(dev) || n > bounceMax {
		return hw.AllocBuffer(dev, n)
	}
	return plainBounce.Get().(*[bounceMax]byte)[:n]
}

// allocates reports whether dev has buffers of its own (hw.Allocator),
// looking through the cache (Cached), which passes its device's on.
func allocates(dev hw.Block) bool {
	if c, ok := dev.(*cached); ok {
		dev = c.Block
	}
	_, ok := dev.(hw.Allocator)
	return ok
}

// putBounce gives back b, from getBounce(dev, ...), once the reads into it
// have succeeded: a read that failed may still own it (a request that
// timed out can complete later), and such a buffer is left to the garbage
// collector, or to its device's pool as lost room (hw.Releaser).
func putBounce(dev hw.Block, b []byte) {
	if allocates(dev) {
		hw.ReleaseBuffer(dev, b)
		return
	}
	if cap(b) == bounceMax {
		plainBounce.Put((*[bounceMax]byte)(b[:bounceMax]))
	}
}

// Zero writes zeroes over the n bytes at off (any offset and length): the
// whole sectors in the middle with hw.WriteZeroes (the device's
// write-zeroes command when it has one, else writes of zero buffers), the
// partial sectors at either end by read-modify-write.
func Zero(dev hw.Block, off, n int64) error {
	if n <= 0 {
		return nil
	}
	ss := int64(dev.Info().SectorSize)
	lo := (off + ss - 1) / ss * ss
	hi := (off + n) / ss * ss
	if lo >= hi {
		b := NewBatch(dev)
		b.Write(off, make([]byte, n))
		return b.Issue()
	}
	b := NewBatch(dev)
	if off < lo {
		b.Write(off, make([]byte, lo-off))
	}
	if off+n > hi {
		b.Write(hi, make([]byte, off+n-hi))
	}
	if err := b.Issue(); err != nil {
		return err
	}
	return hw.WriteZeroes(dev, uint64(lo/ss), uint64((hi-lo)/ss))
}
