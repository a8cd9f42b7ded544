package kvtar

import (
	"slices"
	"sort"

	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// blockSize is the tar block: every offset and length in the archive is a
// multiple of it.
const blockSize = tarfmt.BlockSize

// eoaSize is the end-of-archive marker: two zero blocks.
const eoaSize = tarfmt.EndOfArchiveSize

// An extent is a byte range of the archive area; in the space map, offsets
// and lengths are multiples of blockSize.
type extent struct{ off, len int64 }

func (e extent) end() int64 { return e.off + e.len }

func (e extent) overlaps(o extent) bool {
	return e.len > 0 && o.len > 0 && e.off < o.end() && o.off < e.end()
}

// space is the free-space map of the archive area (doc §2): the end of
// archive and the hole chunks on the device. Each chunk is one PAX g header
// with its data, as tarfmt.HoleChunks lays them; the map keeps them apart
// (not merged) because which of their blocks are structure depends on where
// each chunk starts. Allocation treats a run of adjacent chunks as one
// hole. Pinned extents (data of members that open readers still use) are
// never allocated.
//
// New members go to the end of archive while the free tail stays larger
// than reserve: an append commits in one round of writes (doc §3), where a
// member placed in a hole needs two and the re-layout of what is left of
// the hole. Once the tail is down to the reserve, holes are reused first
// (best fit), so the space of removed data is used before the device is
// full.
type space struct {
	limit   int64    // end of the archive area: the EOA must end at or before it
	eoa     int64    // offset of the end-of-archive marker
	chunks  []extent // hole chunks, sorted by offset, not overlapping
	reserve int64    // tail space from which holes are reused first
	// resv is the space a value streams into outside the write lock
	// (reserve.go; nil: none): while it lies past the end of archive, the
	// tail ends at its start.
	resv *reservation
}

// tailEnd is where the free tail ends: the archive area's end, or a
// reservation's start.
func (s *space) tailEnd() int64 {
	if s.resv != nil && s.resv.start > s.eoa {
		return s.resv.start
	}
	return s.limit
}

// defaultReserve is the reserve of an archive area of size bytes: an
// eighth of it.
func defaultReserve(size int64) int64 { return size / 8 }

// tailFree is the free space after the end of archive.
func (s *space) tailFree() int64 { return max(0, s.tailEnd()-s.eoa-eoaSize) }

// free is the number of unused bytes: the tail and the holes. The tail
// after a reservation counts: writes that need it wait for the value
// streaming into the reservation to commit (reserve.go), and it is free
// then.
func (s *space) free() int64 {
	n := s.tailFree()
	if s.resv != nil && s.resv.start > s.eoa {
		n += max(0, s.limit-s.resv.end)
	}
	for _, c := range s.chunks {
		n += c.len
	}
	return n
}

// runs returns the maximal runs of adjacent chunks, as extents.
func (s *space) runs() []extent {
	var rs []extent
	for _, c := range s.chunks {
		if n := len(rs); n > 0 && rs[n-1].end() == c.off {
			rs[n-1].len += c.len
			continue
		}
		rs = append(rs, c)
	}
	return rs
}

// largest returns the largest size of data (a multiple of blockSize) a
// member fits now, hdr(size) the size of its header and align(size) the
// alignment of its data, avoiding the extents in avoid; -1 when not even
// an empty one fits. A smaller size fits too, unless every run where it
// could go is exactly one block longer than it needs (place) and the tail
// is full.
func (s *space) largest(hdr, align func(size int64) int64, avoid []extent) int64 {
	best := int64(-1)
	// fits reports whether d bytes fit in run r, or at the tail when r is
	// empty.
	fits := func(r extent, d int64) bool {
		h, a := hdr(d), align(d)
		if r.len == 0 {
			_, ok := s.placeTail(h+d, h, a, avoid)
			return ok
		}
		_, ok := fitRun(r, h+d, h, a, avoid)
		return ok
	}
	// try finds the largest size that fits r from room down: at most a
	// few aligned steps below room.
	try := func(r extent, room int64) {
		for d, tries := room/blockSize*blockSize, 0; d > best && d >= 0 && tries < 64; d, tries = d-blockSize, tries+1 {
			if fits(r, d) {
				best = d
				return
			}
		}
	}
	try(extent{}, s.tailFree()-blockSize)
	for _, r := range s.runs() {
		try(r, r.len-blockSize)
	}
	return best
}

// A placement is where a new member goes.
type placement struct {
	off  int64  // the member's first block
	from extent // the hole run it is taken from; zero when at the tail
	tail bool
	// pad is how many bytes longer than asked the member's header must be
	// (placeMember encodes it so: tarfmt.EncodeHeaderBlocks): one block,
	// where the member would leave a single block of its hole run free,
	// which cannot be a hole (gapOK).
	pad int64
	// dead is the superseded member whose space the member takes
	// (dead.go), from being its hole run; nil when none.
	dead *member
}

// padOK reports whether a header of hdr bytes may grow by one block (it
// has an x header: tarfmt.EncodeHeaderBlocks), for data aligned to align.
func padOK(hdr, align int64) bool { return hdr >= 3*blockSize && align <= blockSize }

// gapOK reports whether g bytes may be left free between two members: none,
// or a hole of at least two blocks (a one-block hole would be an empty g
// header, which current libarchive refuses; doc §2).
func gapOK(g int64) bool { return g == 0 || g >= 2*blockSize }

// fitFrom returns the least p >= off with (p+hdr) % align == 0 and
// gapOK(p-start).
func fitFrom(start, off, hdr, align int64) int64 {
	p := alignUp(off, hdr, align)
	if !gapOK(p - start) {
		p = alignUp(start+2*blockSize, hdr, align)
	}
	return p
}

// alignUp returns the least p >= off with (p+hdr) % align == 0.
func alignUp(off, hdr, align int64) int64 {
	if align <= blockSize {
		return off
	}
	r := (off + hdr) % align
	if r == 0 {
		return off
	}
	return off + align - r
}

// place finds room for a member of n bytes whose data starts hdr bytes
// after its start, such that the data starts on an align boundary (align a
// multiple of blockSize; pass blockSize for no constraint). It prefers the
// end of archive while the tail stays above the reserve, else the
// smallest hole run that fits, else the end of the archive; it never
// overlaps an extent in avoid. It reports false when nothing fits.
//
// A member without alignment whose header has an x header (three blocks or
// more) fits any run at least as long as it: where it would leave one block
// free, its header grows by that block (p.pad). A one-block header cannot
// grow by one block (an x header takes two), so a member with one does not
// fit a run exactly one block longer than itself; it fits any other run at
// least as long.
func (s *space) place(n, hdr, align int64, avoid []extent) (placement, bool) {
	if p, ok := s.placeTail(n, hdr, align, avoid); ok && s.tailEnd()-(p.off+n+eoaSize) >= s.reserve {
		return p, true
	}
	best := placement{}
	found := false
	for _, r := range s.runs() {
		if found && r.len >= best.from.len {
			continue
		}
		if p, ok := fitRun(r, n, hdr, align, avoid); ok {
			best, found = p, true
		}
	}
	if found {
		return best, true
	}
	return s.placeTail(n, hdr, align, avoid)
}

// placeTail places a member as place does, at the end of archive.
func (s *space) placeTail(n, hdr, align int64, avoid []extent) (placement, bool) {
	off := fitFrom(s.eoa, s.eoa, hdr, align)
	for {
		moved := false
		for _, a := range avoid {
			if a.overlaps(extent{off, n}) {
				off = fitFrom(s.eoa, a.end(), hdr, align)
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	if off+n+eoaSize > s.tailEnd() {
		return placement{}, false
	}
	return placement{off: off, tail: true}, true
}

// fitRun places a member in hole run r as place does: where fitIn finds
// room, or else with its header one block longer (p.pad) when it may grow
// (padOK).
func fitRun(r extent, n, hdr, align int64, avoid []extent) (placement, bool) {
	if off, ok := fitIn(r, n, hdr, align, avoid); ok {
		return placement{off: off, from: r}, true
	}
	if padOK(hdr, align) {
		if off, ok := fitIn(r, n+blockSize, hdr+blockSize, align, avoid); ok {
			return placement{off: off, from: r, pad: blockSize}, true
		}
	}
	return placement{}, false
}

// fitIn finds the first offset in run r where n bytes fit with the
// alignment, avoiding the pinned extents, such that what is left of r
// before and after them can be a hole (gapOK).
func fitIn(r extent, n, hdr, align int64, avoid []extent) (int64, bool) {
	off := fitFrom(r.off, r.off, hdr, align)
	for off+n <= r.end() {
		clash := false
		for _, a := range avoid {
			if a.overlaps(extent{off, n}) {
				off = fitFrom(r.off, a.end(), hdr, align)
				clash = true
				break
			}
		}
		if clash {
			continue
		}
		if gapOK(r.end() - off - n) {
			return off, true
		}
		// One block would be left after the member: try one block
		// further (or the next aligned offset).
		off = fitFrom(r.off, off+blockSize, hdr, align)
	}
	return 0, false
}

// valid reports whether run r (a maximal run of adjacent chunks) is laid
// out as readers require (doc §2): one hole chunk, with data, of at most
// maxChunkBlocks blocks.
func (s *space) valid(r extent) bool {
	if r.len == 0 || !oneChunk(r) {
		return false
	}
	i := sort.Search(len(s.chunks), func(i int) bool { return s.chunks[i].off >= r.off })
	return i < len(s.chunks) && s.chunks[i] == r
}

// bad returns the runs that are not valid, in offset order.
func (s *space) bad() []extent {
	var out []extent
	for _, r := range s.runs() {
		if !s.valid(r) {
			out = append(out, r)
		}
	}
	return out
}

// vacated returns the free region e would be part of, were it freed: e
// with the runs of chunks right before and after it.
func (s *space) vacated(e extent) extent {
	v := e
	for _, r := range s.runs() {
		if r.end() == e.off {
			v.off, v.len = r.off, v.len+r.len
		}
		if r.off == e.end() {
			v.len += r.len
		}
	}
	return v
}

// chunksIn counts the chunks in r.
func (s *space) chunksIn(r extent) int {
	n := 0
	for _, c := range s.chunks {
		if r.overlaps(c) {
			n++
		}
	}
	return n
}

// drop removes the chunks of run r from the map.
func (s *space) drop(r extent) {
	kept := s.chunks[:0]
	for _, c := range s.chunks {
		if !r.overlaps(c) {
			kept = append(kept, c)
		}
	}
	s.chunks = kept
}

// take removes [off, off+n) from the map, for a member placed there with
// place. It returns the chunks that were consumed (their structure is on
// the device until the member's writes replace it) and the leftover pieces
// of the run (or, at the tail, the alignment gap) that must be laid out as
// new holes.
func (s *space) take(p placement, n int64) (consumed []extent, leftover []extent) {
	if p.dead != nil {
		// The superseded member's space is not in the map: what the
		// member leaves of it becomes holes.
		if p.off > p.from.off {
			leftover = append(leftover, extent{p.from.off, p.off - p.from.off})
		}
		if end := p.off + n; end < p.from.end() {
			leftover = append(leftover, extent{end, p.from.end() - end})
		}
		return nil, leftover
	}
	if p.tail {
		if p.off > s.eoa {
			leftover = append(leftover, extent{s.eoa, p.off - s.eoa})
		}
		s.eoa = p.off + n
		return nil, leftover
	}
	// Only the chunks the member overlaps are consumed: the rest of the
	// run stays as it is on the device, however large it is.
	m := extent{p.off, n}
	kept := s.chunks[:0:0]
	for _, c := range s.chunks {
		if c.overlaps(m) {
			consumed = append(consumed, c)
			continue
		}
		kept = append(kept, c)
	}
	s.chunks = kept
	if len(consumed) == 0 {
		return nil, nil
	}
	first, last := consumed[0], consumed[len(consumed)-1]
	if p.off > first.off {
		leftover = append(leftover, extent{first.off, p.off - first.off})
	}
	if end := m.end(); end < last.end() {
		leftover = append(leftover, extent{end, last.end() - end})
	}
	return consumed, leftover
}

// addHole records that e is now laid out as hole chunks on the device
// (tarfmt.HoleChunks(e.off, e.len/blockSize)).
func (s *space) addHole(e extent) {
	cs, _ := tarfmt.HoleChunks(e.off, e.len/blockSize)
	for _, c := range cs {
		s.chunks = append(s.chunks, extent{c.Offset, c.Blocks * blockSize})
	}
	sortExtents(s.chunks)
}

// reclaimTail moves the end of archive back over the hole chunks that end
// at it and returns the new end of archive (doc §2: a hole must not stand
// right before the end-of-archive marker). Pinned extents beyond the end of
// archive stay safe: place never allocates over them.
func (s *space) reclaimTail() int64 {
	for n := len(s.chunks); n > 0 && s.chunks[n-1].end() == s.eoa; n-- {
		c := s.chunks[n-1]
		s.eoa = c.off
		s.chunks = s.chunks[:n-1]
	}
	return s.eoa
}

// sortExtents sorts es by offset.
func sortExtents(es []extent) {
	slices.SortFunc(es, func(a, b extent) int { return cmp64(a.off, b.off) })
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
