package kvtar

import (
	"github.com/tarstore/tarstore/hw"
)

// patched is a read-only view of a device with a journal record applied:
// what a writable open would make of it (doc §5). A read-only open of a
// store that was not closed cleanly reads through it, so that it sees the
// last transaction whole even though it may not write the replay.
type patched struct {
	hw.Block
	rec *record
}

// Read reads from the device and applies the record's zero extents and
// commit writes, in that order, to what was read.
func (p *patched) Read(lba uint64, bufs ...[]byte) error {
	if err := p.Block.Read(lba, bufs...); err != nil {
		return err
	}
	off := int64(lba) * int64(p.Info().SectorSize)
	for _, b := range bufs {
		end := off + int64(len(b))
		for _, z := range p.rec.zeros {
			if lo, hi := max(off, z.off), min(end, z.end()); lo < hi {
				clear(b[lo-off : hi-off])
			}
		}
		for _, w := range p.rec.commits {
			we := w.off + int64(len(w.data))
			if lo, hi := max(off, w.off), min(end, we); lo < hi {
				copy(b[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
			}
		}
		off = end
	}
	return nil
}
