package kvtar

import (
	"fmt"
	"slices"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// Check verifies the archive on the device against the store's index (doc
// §5, STYLE 11): it scans the device afresh and reports every difference —
// a key missing or extra, a member at another place or of another size, a
// hole the space map does not know or the other way round, an end of
// archive that is not two zero blocks, a hole right before the end of
// archive, the data of a member that no longer matches the CRC-32C its
// header carries (tarfmt.Tag) — and the members the store does not
// expose. Problems with Fatal
// set mean the store and the device disagree. Check waits for writes in
// progress and blocks new ones while it runs; on a writable store it first
// finishes the compaction that open readers held up.
func (s *Store) Check() ([]Problem, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Compaction that readers held up is done first (compact.go): it is
	// owed by writes already acknowledged.
	s.mu.Lock()
	if !s.closed {
		s.compact()
	}
	s.mu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, kv.Closed("check", kv.Root)
	}
	res, err := s.scan(-1, 0, s.sp.eoa)
	if err != nil {
		return nil, kv.WithOp(err, "check")
	}
	probs := res.problems
	bad := func(off int64, name, format string, args ...any) {
		probs = append(probs, Problem{Offset: off, Name: name, What: fmt.Sprintf(format, args...), Fatal: true})
	}
	// needsRepair reports what a writable open repairs (doc §5): fatal on
	// a writable store, which must have repaired it; on a read-only store,
	// or one whose archive reaches into the journal area (open cannot
	// write), the store and the device agree and the repair waits.
	needsRepair := func(off int64, format string, args ...any) {
		if !s.readOnly && s.sp.eoa+eoaSize <= s.limit {
			bad(off, "", format, args...)
			return
		}
		probs = append(probs, Problem{Offset: off, What: fmt.Sprintf(format, args...) + " (repaired by a writable open)"})
	}

	// Keys: the same values and dictionaries at the same places.
	seen := map[kv.Key]bool{}
	each(&res.ix.root, kv.Root, func(n *node, k kv.Key) {
		seen[k] = true
		mine := s.ix.lookup(k)
		switch {
		case mine == nil:
			bad(0, k.String(), "key on the device is not in the index")
		case mine.kind() != n.kind():
			bad(0, k.String(), "%s on the device, %s in the index", n.kind(), mine.kind())
		case n.isValue():
			a, b := n.val, mine.val
			if a.start != b.start || a.dataOff != b.dataOff || a.end != b.end || a.size != b.size || !a.mtime.Equal(b.mtime) {
				bad(a.start, k.String(), "member [%d,%d) size %d mtime %v on the device, [%d,%d) size %d mtime %v in the index",
					a.start, a.end, a.size, a.mtime, b.start, b.end, b.size, b.mtime)
			}
		}
	})
	each(&s.ix.root, kv.Root, func(n *node, k kv.Key) {
		if !seen[k] {
			bad(0, k.String(), "key in the index is not on the device")
		}
	})
	// Data: members whose header carries the CRC of their data (chained
	// appends, doc §3) still hold that data.
	ioErr := s.eachDamaged(&res.ix.root, func(k kv.Key, m *member) {
		bad(m.start, k.String(), "the data does not match the CRC-32C in its header")
	})
	if ioErr != nil {
		return nil, kv.Storage("check", kv.Root, ioErr)
	}
	if res.ix.count != s.ix.count {
		bad(0, "", "%d values on the device, %d in the index", res.ix.count, s.ix.count)
	}
	// A shadowed member that hard links still use holds their bytes: it
	// stays (doc §5 step 4 releases only the others).
	var stray []*member
	_, shadowed := res.superseded()
	for _, m := range shadowed {
		if m.linked == 0 {
			stray = append(stray, m)
		}
	}
	if len(stray) > 0 {
		needsRepair(stray[0].start, "%d shadowed duplicate members", len(stray))
	}

	// Space: the same end of archive and the same holes.
	if res.sp.eoa != s.sp.eoa {
		bad(res.sp.eoa, "", "end of archive at %d on the device, %d in the space map", res.sp.eoa, s.sp.eoa)
	}
	if !slices.Equal(res.sp.chunks, s.sp.chunks) {
		bad(0, "", "holes on the device %v, in the space map %v", res.sp.chunks, s.sp.chunks)
	}
	// Reader limits (doc §2): every free region between members is one
	// non-empty g header.
	for _, r := range res.sp.runs() {
		if r.end() == res.sp.eoa || res.sp.valid(r) {
			continue
		}
		if n := res.sp.chunksIn(r); n > 1 {
			bad(r.off, "", "a free region of %d bytes is %d PAX g headers in a row: libarchive 3.7.5 and later refuse a second g header before a member, 3.6 more than 31 special headers, and Python recurses once per header", r.len, n)
		} else {
			bad(r.off, "", "a free region of %d bytes is an empty PAX g header, which libarchive 3.8.9 refuses", r.len)
		}
	}
	if n := len(res.sp.chunks); n > 0 && res.sp.chunks[n-1].end() == res.sp.eoa {
		needsRepair(res.sp.chunks[n-1].off, "a hole stands right before the end of archive")
	}
	if res.loneZero {
		needsRepair(res.sp.eoa, "lone zero block followed by data at the end of archive")
	}
	if eoa := res.sp.eoa; eoa+eoaSize <= s.dev.Info().Size() && !res.loneZero {
		var z [eoaSize]byte
		if err := blockio.ReadAt(s.dev, z[:], eoa); err != nil {
			return nil, kv.Storage("check", kv.Root, err)
		}
		var b1, b2 tarfmt.Block
		copy(b1[:], z[:blockSize])
		copy(b2[:], z[blockSize:])
		if !b1.IsZero() || !b2.IsZero() {
			bad(eoa, "", "the end of archive is not two zero blocks")
		}
	}
	if !s.readOnly && s.sp.eoa+eoaSize > s.limit {
		probs = append(probs, Problem{Offset: s.sp.eoa, What: "the archive reaches into the journal area: the store is full"})
	}
	return probs, nil
}

// dataMatchesTag reads the header of m and, when it carries a tag
// (tarfmt.Tag), m's data: it reports whether it has one and whether the
// data matches its CRC.
func (s *Store) dataMatchesTag(m *member) (ok, tagged bool, err error) {
	if m.sparse != nil || m.link != nil || m.dataOff != m.hdr+blockSize {
		return false, false, nil
	}
	var b tarfmt.Block
	if err := blockio.ReadAt(s.dev, b[:], m.hdr); err != nil {
		return false, false, err
	}
	tag, tagged := tarfmt.GetTag(&b)
	if !tagged {
		return false, false, nil
	}
	ok, err = s.dataHasCRC(m.dataOff, m.size, tag.DataCRC)
	return ok, true, err
}

// eachDamaged calls fn for each value under root whose data does not match
// the CRC-32C in its header, and returns the first read error (after which
// it calls fn no more).
func (s *Store) eachDamaged(root *node, fn func(k kv.Key, m *member)) error {
	var ioErr error
	each(root, kv.Root, func(n *node, k kv.Key) {
		if ioErr != nil || !n.isValue() {
			return
		}
		ok, tagged, err := s.dataMatchesTag(n.val)
		switch {
		case err != nil:
			ioErr = err
		case tagged && !ok:
			fn(k, n.val)
		}
	})
	return ioErr
}
