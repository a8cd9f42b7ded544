package kvtar

import (
	"slices"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// Compaction (doc §2). A free region between two members must be one hole
// chunk — one non-empty g header of at most 512 KiB of data — for every
// reader to accept it. A region that one chunk cannot hold (the space of a
// removed large value, or of many adjacent removed values) is closed by
// moving members from the end of the archive into it: each move is a
// placement in a hole (its data goes to the hole's filler, which no reader
// sees, as stage writes; only the hole structure it covers is journaled)
// and the removal of the member from the end, which gives its space back
// to the free tail. Each round of moves is an ordinary transaction, crash-
// safe like any other; between rounds the region is a chain of chunks,
// which every reader but the strictest accepts, and the rounds follow one
// another before the write that made the region returns. The bytes moved
// are at most the region's size (members are taken from the end only while
// they fit), so the cost of a removal is bounded by what it removed.
//
// When the member at the end of the archive does not fit (it is larger than
// the region), the largest member after the region that fits is moved
// instead (fillFromAfter): its old space is freed further towards the end,
// where later rounds deal with it. Compaction stops, leaving the region as
// a chain that Check reports, when no member after the region fits it and
// no neighbour can be taken in (widen), when the store cannot move the
// members (a hard link's target, a sparse or unexposed foreign member), or
// when readers pin the region (it is compacted by the next write after
// they close it).

// compactBudget bounds the bytes one round of compaction moves, so that a
// round's memory and journal record stay small.
const compactBudget = 64 << 20

// compactRoundsMax bounds the rounds of one compaction: each round moves
// the end of archive back, so rounds are finite anyway.
const compactRoundsMax = 1 << 16

// compact runs rounds of compaction until no region needs it or none can
// progress. The caller holds s.wmu and s.mu. A round that fails to write
// fails the store (run sets s.failed: later writes report it); a round
// that finds no room for its journal record ends compaction.
func (s *Store) compact() {
	for range compactRoundsMax {
		if s.failed != nil || s.closed || s.readOnly {
			return
		}
		if !s.compactRound() {
			return
		}
	}
}

// A donor is a member at the end of the archive that compaction may move,
// with the node that binds it.
type donor struct {
	m *member
	n *node
	k kv.Key
}

// donors returns the members of the index from the end of the archive
// backwards, while nothing else lies between them (holes aside): the
// members compaction may take, last first. It stops at a member the store
// cannot move.
func (s *Store) donors() []donor {
	all := s.members()
	slices.SortFunc(all, func(a, b donor) int { return cmp64(b.m.start, a.m.start) })
	// Members the index does not hold (unexposed foreign members,
	// shadowed ones kept for hard links) are in the way.
	var others []extent
	for _, u := range s.unexposed {
		others = append(others, u.m.extent())
	}
	for m := range s.kept {
		others = append(others, m.extent())
	}
	end := s.sp.eoa
	var out []donor
	for _, d := range all {
		if !d.m.movable() || !s.onlyHoles(d.m.end, end, others) {
			break
		}
		out = append(out, d)
		end = d.m.start
	}
	return out
}

// members returns the members the index binds (values and explicit
// directories) that compaction may consider, each with its node and key,
// in key order. The value of a key whose superseded member a value
// streams into stays where it is (dead.go): moving it would release that
// space.
func (s *Store) members() []donor {
	var all []donor
	sk, streaming := s.streamKey()
	each(&s.ix.root, kv.Root, func(n *node, k kv.Key) {
		for _, m := range []*member{n.val, n.dir} {
			if m != nil && !(streaming && m == n.val && k == sk) {
				all = append(all, donor{m, n, k})
			}
		}
	})
	return all
}

// movable reports whether compaction may move m: it holds its own data,
// which no hard link shares, stored contiguously.
func (m *member) movable() bool { return m.owner() == m && m.linked == 0 && m.sparse == nil }

// layout encodes the header d's member gets when it moves, and returns it
// with the member's length from its first header block to the end of its
// padded data.
func (d *donor) layout() (hdr []byte, n int64, err error) {
	hdr, err = memberHeader(d.k, d.m)
	return hdr, int64(len(hdr)) + d.m.size + tarfmt.PadLen(d.m.size), err
}

// moveTo moves d's member to placement p, with header hdr, in a
// transaction of its own, and reports whether it was moved.
func (s *Store) moveTo(d *donor, p placement, hdr []byte) bool {
	t := s.begin()
	if !t.move(d, t.putMember(p, hdr, d.m.size)) {
		return false
	}
	return t.run("compact", kv.Root) == nil
}

// onlyHoles reports whether [from, to) holds nothing but hole chunks (no
// member of others).
func (s *Store) onlyHoles(from, to int64, others []extent) bool {
	for _, o := range others {
		if o.overlaps(extent{from, to - from}) {
			return false
		}
	}
	at := from
	for _, c := range s.sp.chunks {
		if c.off == at && at < to {
			at = c.end()
		}
	}
	return at >= to
}

// compactRound moves members from the end of the archive into the first
// region that needs it and that no reader pins, in one transaction. It
// reports whether it moved anything.
func (s *Store) compactRound() bool {
	avoid := s.avoid()
	var r extent
	found := false
	for _, b := range s.sp.bad() {
		if !slices.ContainsFunc(avoid, b.overlaps) {
			r, found = b, true
			break
		}
	}
	if !found {
		return false
	}
	ds := s.donors()
	// When every member after the region can move into it, all of them
	// move: the region and their old space join the free tail, and no
	// hole is left to grow into the next compaction.
	drain := false
	if n := len(ds); n > 0 && s.onlyHoles(r.end(), ds[n-1].m.start, nil) {
		total := int64(0)
		for _, d := range ds {
			_, l, err := d.layout()
			if err != nil {
				total = r.len + 1
				break
			}
			total += l
		}
		drain = total <= r.len && total <= compactBudget
	}
	t := s.begin()
	rest := r
	moved := int64(0)
	count := 0
	for _, d := range ds {
		if !drain && oneChunk(rest) || moved >= compactBudget {
			break // what is left of the region fits one chunk (normalize lays it out)
		}
		if d.m.start < rest.end() {
			break // the region itself is at the end now
		}
		hdr, n, err := d.layout()
		if err != nil {
			break
		}
		off, ok := fitIn(rest, n, int64(len(hdr)), s.memberAlign(d.m.size), avoid)
		if !ok {
			break
		}
		nm := t.putMember(placement{off: off, from: rest}, hdr, d.m.size)
		if !t.move(&d, nm) {
			return false
		}
		rest = extent{nm.end, rest.end() - nm.end}
		moved += n
		count++
	}
	if count == 0 {
		t.undo()
		return s.fillFromAfter(r, avoid) || s.widen(r)
	}
	// An error fails the store (s.failed), or found no room for the
	// journal record (nothing changed): either way, stop.
	return t.run("compact", kv.Root) == nil
}

// oneChunk reports whether free region r can be laid out as one hole
// chunk, or is empty.
func oneChunk(r extent) bool {
	return r.len == 0 || r.len >= 2*blockSize && r.len <= tarfmt.MaxHoleChunkData+blockSize
}

// widen handles a region that no member from the end of the archive can
// fill (a one-block region left by a foreign one-block member, say): it
// moves a neighbour of the region — the smaller of the members just before
// and just after it that can be moved and leave a region one chunk holds —
// to the end of the archive, so that the region takes in the neighbour's
// space and becomes one chunk. It reports whether it moved anything.
func (s *Store) widen(r extent) bool {
	var best *donor
	for _, d := range s.members() {
		m := d.m
		if !m.movable() || m.end != r.off && m.start != r.end() || !oneChunk(extent{r.off, r.len + m.end - m.start}) {
			continue
		}
		if best == nil || m.end-m.start < best.m.end-best.m.start {
			best = &d
		}
	}
	if best == nil {
		return false
	}
	hdr, n, err := best.layout()
	if err != nil {
		return false
	}
	p, ok := s.sp.placeTail(n, int64(len(hdr)), s.memberAlign(best.m.size), s.avoid())
	return ok && s.moveTo(best, p, hdr)
}

// move queues the move of donor d's member to nm (placed by the caller):
// its data copied, the old member released, the index pointed at nm. It
// reports false, the transaction undone, when reading the data fails.
func (t *txn) move(d *donor, nm *member) bool {
	m := d.m
	nm.mtime, nm.dir = m.mtime, m.dir
	if !m.dir {
		if err := t.copyPatched("compact", d.k, m, nm, 0, nil); err != nil {
			// Reading the member failed: the device is failing; nothing
			// was committed.
			t.undo()
			return false
		}
	}
	t.release(m)
	if !m.dir {
		// A value moved before a member of the same name that the store
		// does not expose (or keeps for hard links) would lose to it at
		// extraction: those go (links.go). The key's superseded member
		// stays if the value still comes after it (dead.go).
		if dd := t.s.dead[d.k]; dd != nil && dd.start < nm.start {
			t.deadKept = append(t.deadKept, dd)
		}
		t.touch(d.k)
	}
	node := d.n
	t.apply = append(t.apply, func() {
		if m.dir {
			node.dir = nm
		} else {
			node.val = nm
		}
	})
	return true
}

// fillFromAfter handles a region the members at the end of the archive do
// not fit (the last one is larger): it moves into it the largest movable
// member that fits, from after the region, or from before it when the
// space that member leaves is one chunk (with the free space around it).
// A member from after the region frees its space further towards the end,
// where later rounds deal with it, so rounds make progress: each moves
// free space later in the archive, or closes a region outright. It reports
// whether it moved anything.
func (s *Store) fillFromAfter(r extent, avoid []extent) bool {
	var best *donor
	var bestOff int64
	var bestHdr []byte
	for _, d := range s.members() {
		m := d.m
		if !m.movable() || r.overlaps(m.extent()) || best != nil && m.end-m.start <= best.m.end-best.m.start {
			continue
		}
		hdr, n, err := d.layout()
		if err != nil {
			continue
		}
		off, ok := fitIn(r, n, int64(len(hdr)), s.memberAlign(m.size), avoid)
		if !ok || m.end <= r.off && !oneChunk(s.sp.vacated(m.extent())) {
			continue // does not fit; or would leave a region of its own before this one
		}
		best, bestOff, bestHdr = &d, off, hdr
	}
	return best != nil && s.moveTo(best, placement{off: bestOff, from: r}, bestHdr)
}
