package kvtar

import "slices"

// Making room (doc §2). Free space can be plentiful and still not take a
// member: every hole one block longer than the member (a hole takes two
// blocks, and a one-block header cannot grow by one), or the holes too
// small and the tail full. Then a write that finds no room, while the
// store has as much free space as it needs, makes room and is planned
// again (group.go): members are moved, each in a transaction of its own as
// compaction moves them (moveTo), until the member fits —
//
//   - the member at the end of the archive into a hole where it fits,
//     which gives its space back to the tail;
//   - else the member next to a hole whose space, with the holes around
//     it, would be the largest free region, into a hole elsewhere where it
//     fits: free regions grow into one.
//
// Each move makes the tail or the largest hole strictly larger, so the
// rounds end; they are bounded too (roomRounds, roomBudget). A write that
// still does not fit gets kv.ErrNoSpace. Before any move, the superseded
// members are released (dead.go).

// roomRounds bounds the moves of one makeRoom.
const roomRounds = 256

// roomBudget bounds the bytes one makeRoom moves, beyond the size it makes
// room for.
const roomBudget = 16 << 20

// A roomNeed is a placement that failed: a member of n bytes whose data
// starts hdr bytes after its start, aligned to align.
type roomNeed struct{ n, hdr, align int64 }

// fits reports whether need finds room now.
func (s *Store) fits(need roomNeed) bool {
	_, ok := s.sp.place(need.n, need.hdr, need.align, s.avoid())
	return ok
}

// makeRoom moves members until need fits (see above) and reports whether
// it does. The caller holds s.wmu and s.mu.
func (s *Store) makeRoom(need roomNeed) bool {
	if !s.fits(need) && s.releaseDead() {
		// Superseded members hold free space (dead.go): it is the
		// first to be given back.
		s.compact()
	}
	moved := int64(0)
	for range roomRounds {
		if s.fits(need) {
			return true
		}
		if s.failed != nil || moved > need.n+roomBudget {
			return false
		}
		d, p, hdr, ok := s.roomMove()
		if !ok || !s.moveTo(&d, p, hdr) {
			return false
		}
		moved += int64(len(hdr)) + d.m.end - d.m.dataOff
	}
	return s.fits(need)
}

// roomMove picks the next move of makeRoom: the donor, where it goes, and
// its header there.
func (s *Store) roomMove() (donor, placement, []byte, bool) {
	avoid := s.avoid()
	runs := s.sp.runs()
	// into finds a hole run, other than those next to m, where m fits,
	// with its header there.
	into := func(d donor) (placement, []byte, bool) {
		hdr, n, err := d.layout()
		if err != nil {
			return placement{}, nil, false
		}
		h, align := int64(len(hdr)), s.memberAlign(d.m.size)
		var best placement
		found := false
		for _, r := range runs {
			if r.end() == d.m.start || r.off == d.m.end || found && r.len >= best.from.len {
				continue
			}
			if p, ok := fitRun(r, n, h, align, avoid); ok {
				best, found = p, true
			}
		}
		if found && best.pad > 0 {
			hdr, err = encodeMember(d.k, d.m.dir, d.m.size, d.m.mtime, (h+best.pad)/blockSize)
			found = err == nil
		}
		return best, hdr, found
	}
	pinned := func(m *member) bool { return slices.ContainsFunc(avoid, m.extent().overlaps) }
	// The member at the end of the archive.
	if ds := s.donors(); len(ds) > 0 && !pinned(ds[0].m) {
		if p, hdr, ok := into(ds[0]); ok {
			return ds[0], p, hdr, true
		}
	}
	// The member next to a hole that frees the largest region.
	largest := int64(0)
	for _, r := range runs {
		largest = max(largest, r.len)
	}
	var best donor
	var bestP placement
	var bestHdr []byte
	bestLen := largest
	for _, d := range s.members() {
		m := d.m
		if !m.movable() || pinned(m) {
			continue
		}
		v := s.sp.vacated(m.extent())
		if v.len <= bestLen || v.len == m.end-m.start {
			continue // not larger than the largest region; or no hole next to it
		}
		if p, hdr, ok := into(d); ok {
			best, bestP, bestHdr, bestLen = d, p, hdr, v.len
		}
	}
	return best, bestP, bestHdr, bestLen > largest
}
