package kvtar

import (
	"slices"

	"github.com/tarstore/tarstore/kv"
)

// Superseded members (doc §2). Overwriting a large value writes the new
// member elsewhere (the write must be atomic) and frees the old one. The
// freed space is larger than one hole chunk, so readers would refuse it as
// a hole, and compaction would move the new value into it: every
// overwrite of a 64 MiB value would write 128 MiB and read 64 MiB.
//
// Instead, the old member stays in the archive as it is, superseded: a
// member with the same name before the live one, which tar extraction
// replaces with the later member, as it does for `tar -r` (SPEC §4:
// later members replace earlier ones). The store does not expose it, and
// the next write of the same key goes into its space when the new member
// fits there (placeDead, and a reservation: reserve.go): the value just
// written is released then, and since it is usually the last member, its
// space goes back to the tail. An overwrite of a large value thus writes
// its bytes once, alternating between two places.
//
// The rules that keep extraction equal to the store:
//   - a key has at most one superseded member (s.dead), and it lies
//     before the key's live member, which is a value;
//   - an operation that changes the binding of the key (touch: a set, a
//     remove, a rename, a compaction move of the live member) releases it,
//     unless the operation's new member goes into its space, or (a move)
//     lands after it;
//   - only a value whose space one hole chunk cannot hold is superseded
//     (deadWorthy); smaller ones become holes as before.
//
// A superseded member's data is no longer verified: a value streaming into
// its space overwrites it before the transaction that binds the value
// commits (its data region is stage space for that transaction: nothing
// the store or extraction yields depends on it). A crash meanwhile leaves
// it superseded still, with whatever bytes reached it. Recovery checks the
// bytes the newest journal record vouches for (doc §4), so those must not
// change: a transaction that supersedes a value writes a record, even when
// it is otherwise a lone append (txn.retired), and the space is not used
// while the newest record vouches for any of it (deadUsable). Without the
// record, the record that copied a value (compaction copies small values
// from memory) could stay the newest while the value's space, superseded,
// took a stream: a crash then made recovery discard that acknowledged
// transaction and the appends after it. Open recognizes
// superseded members as shadowed duplicates (doc §5 step 4) that qualify
// (scanResult.superseded) and keeps them; Check accepts them.
//
// While a value streams into a superseded member's space outside the lock
// (reserve.go), requests on its key wait for the stream to commit, and
// compaction leaves the key's live member where it is: either would
// release the space the stream writes into.
//
// Superseded space counts as free (Store.free); a write that finds no
// room releases every superseded member before it makes room (room.go).

// deadWorthy reports whether m, a value about to be replaced, is kept as
// superseded rather than released: it holds its own data, and one hole
// chunk could not hold its space.
func deadWorthy(m *member) bool {
	return m != nil && !m.dir && m.movable() && !oneChunk(m.extent())
}

// deadUsable reports whether d's space may take a new member now: no
// reader holds it (a reader that pinned the value before it was superseded
// may still read it), no value streams into it, and in its data region —
// where a new member's bytes go as stage writes, before the transaction's
// record — no commit write a recovery could replay lies (Store.pending,
// Store.replayable) and the newest journal record vouches for no byte (a
// recovery would find them changed and discard that record, doc §4: a
// transaction that supersedes a value writes a record, txn.retired, so
// this holds but for a moment). Its header region is written by the new
// member's transaction as commit writes only. The caller holds s.mu.
func (s *Store) deadUsable(d *member) bool {
	if d == nil || d.pinned() || s.sp.resv != nil && s.sp.resv.dead == d {
		return false
	}
	data := extent{d.dataOff, d.end - d.dataOff}
	return !s.replayOverlaps(data) && !slices.ContainsFunc(s.vouched, data.overlaps)
}

// fitDead places a member of n bytes, with a header of hdr bytes and data
// aligned to align, in the space of superseded member d, such that what is
// left before and after it are one hole chunk each at most.
func (s *Store) fitDead(d *member, n, hdr, align int64) (placement, bool) {
	p, ok := fitRun(d.extent(), n, hdr, align, s.avoid())
	if !ok || p.off-d.start > maxGap || !oneChunk(extent{p.off + n + p.pad, d.end - (p.off + n + p.pad)}) {
		return placement{}, false
	}
	p.dead = d
	return p, true
}

// placeDead places a member for k in the space of k's superseded member,
// when it fits there (fitDead).
func (t *txn) placeDead(k kv.Key, n, hdr, align int64) (placement, bool) {
	s := t.s
	d := s.dead[k]
	if t.noDead || !s.deadUsable(d) {
		return placement{}, false
	}
	return s.fitDead(d, n, hdr, align)
}

// useDead takes the space of superseded member d for a member placed there:
// its data region becomes stage space for this transaction (its header
// region is not: the archive shows the header until the transaction
// commits), and d leaves s.dead once the transaction is applied.
func (t *txn) useDead(d *member) {
	s := t.s
	t.deadKept = append(t.deadKept, d)
	t.invisible = append(t.invisible, extent{d.dataOff, d.end - d.dataOff})
	sortExtents(t.invisible)
	t.apply = append(t.apply, func() { s.forgetDead(d) })
}

// forgetDead removes d from s.dead.
func (s *Store) forgetDead(d *member) {
	for k, m := range s.dead {
		if m == d {
			delete(s.dead, k)
		}
	}
}

// replaceValue queues the replacement of what n holds by nm, the new
// member of k (n may be nil): the old value is superseded when it may be
// (deadWorthy, before nm, and k has no other superseded member left), and
// released otherwise (replace).
func (t *txn) replaceValue(n *node, k kv.Key, nm *member) {
	s := t.s
	if n == nil || !n.isValue() || !deadWorthy(n.val) || n.val.start >= nm.start || t.noDead {
		t.replace(n)
		return
	}
	if d := s.dead[k]; d != nil && !t.keepsDead(d) {
		t.replace(n) // the older superseded member goes (touch); this one too
		return
	}
	o := n.val
	t.retired = append(t.retired, o)
	t.touch(k)
	ix := s.ix
	t.apply = append(t.apply, func() {
		ix.detach(n)
		s.dead[k] = o
	})
}

// keepsDead reports whether this transaction keeps d from release
// (txn.deadKept).
func (t *txn) keepsDead(d *member) bool {
	for _, u := range t.deadKept {
		if u == d {
			return true
		}
	}
	return false
}

// dropDead releases the superseded members under the touched keys, except
// those the transaction keeps (dropTouched).
func (t *txn) dropDead() {
	s := t.s
	for k, d := range s.dead {
		if t.under(k) && !t.keepsDead(d) {
			t.release(d)
			t.apply = append(t.apply, func() { s.forgetDead(d) })
		}
	}
}

// deadBytes is the space of the superseded members no stream writes into.
// The caller holds s.mu.
func (s *Store) deadBytes() int64 {
	n := int64(0)
	for _, d := range s.dead {
		if s.sp.resv == nil || s.sp.resv.dead != d {
			n += d.end - d.start
		}
	}
	return n
}

// free is the number of unused bytes: the free tail, the holes and the
// space of superseded members. The caller holds s.mu.
func (s *Store) free() int64 { return s.sp.free() + s.deadBytes() }

// releaseDead releases, in a transaction of its own, every superseded
// member that no stream writes into, and reports whether it released any.
// The caller holds s.wmu and s.mu.
func (s *Store) releaseDead() bool {
	t := s.begin()
	for _, d := range s.dead {
		if s.sp.resv == nil || s.sp.resv.dead != d {
			t.release(d)
			t.apply = append(t.apply, func() { s.forgetDead(d) })
		}
	}
	if len(t.released) == 0 {
		return false
	}
	return t.run("compact", kv.Root) == nil
}

// streamKey returns the key whose superseded member a value streams into
// outside the lock, if one does.
func (s *Store) streamKey() (kv.Key, bool) {
	if r := s.sp.resv; r != nil && r.dead != nil {
		return r.key, true
	}
	return kv.Key{}, false
}

// superseded splits the shadowed members of a scanned archive into those
// that stay as superseded members — for each key bound to a value, the
// last shadowed member of that key before the value's member, when it
// qualifies (deadWorthy) — and the stray duplicates (doc §5 step 4).
func (res *scanResult) superseded() (dead map[kv.Key]*member, stray []*member) {
	dead = map[kv.Key]*member{}
	for _, m := range res.shadowed {
		k := res.shadowKeys[m]
		n := res.ix.lookup(k)
		if n == nil || !n.isValue() || n.val.start <= m.start || !deadWorthy(m) || m.linked > 0 {
			continue
		}
		if d := dead[k]; d == nil || d.start < m.start {
			dead[k] = m
		}
	}
	for _, m := range res.shadowed {
		if dead[res.shadowKeys[m]] != m {
			stray = append(stray, m)
		}
	}
	return dead, stray
}
