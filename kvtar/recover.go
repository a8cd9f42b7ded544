package kvtar

import (
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// open runs recovery (doc §5) and builds the in-memory state.
func (s *Store) open() error {
	replayed := false
	if !s.readOnly {
		var err error
		if replayed, err = s.replayJournal(); err != nil {
			return kv.Storage("open", kv.Root, err)
		}
	} else if err := s.viewJournal(); err != nil {
		return kv.Storage("open", kv.Root, err)
	}
	res, err := s.scan(s.verifyFrom, s.verifySeed, s.knownEnd)
	s.verifyFrom = -1
	if err != nil {
		return err
	}
	if s.jsize == 0 && res.sp.eoa+blockSize > s.limit {
		// A device too small for a store (newStore), whose archive
		// runs to its end without an end-of-archive marker: cut short.
		return &kv.Error{Op: "open", Key: kv.Root, Err: kv.ErrCorrupt, Cause: ErrTooSmall,
			Detail: fmt.Sprintf("%d bytes, need at least %d: the archive runs to the end of the device without an end-of-archive marker, it is cut short",
				s.limit, MinDeviceSize)}
	}
	s.ix = res.ix
	s.sp = res.sp
	if s.knownEnd >= 0 && s.sp.eoa != s.knownEnd && !s.readOnly {
		// Chained appends follow the newest record: Close writes a
		// checkpoint that says where the archive ends now.
		s.journalDirty = true
	}
	if s.sp.eoa+eoaSize > s.limit {
		// The archive reaches into the journal area: what lies there is
		// archive data, which Close must not overwrite.
		s.journalDirty = false
	}
	s.unexposed = res.foreign
	if res.links {
		indexLinks(&s.ix.root)
	}
	s.sp.limit = s.limit
	s.sp.reserve = defaultReserve(s.limit)
	if res.globals && !s.readOnly {
		// Members written after a PAX global header with records would
		// inherit them (a global mtime, uname, even path or size): the
		// store does not write to such an archive.
		s.readOnly = true
		s.whyReadOnly = "the archive has PAX global headers with records, which new members would inherit"
	}
	if len(res.damaged) > 0 && !s.repair {
		s.damage = fmt.Sprintf("the archive is damaged before its end: %d region(s) do not decode, the first at offset %d; what lay there is lost, the members after it were found again",
			len(res.damaged), res.damaged[0].off)
		if !s.readOnly {
			// A write could land on what follows the damage, which
			// the store found again: repair decides.
			s.readOnly = true
			s.whyReadOnly = s.damage + "; `tarstore check --repair` turns the damage into free space"
		}
	}
	if s.readOnly {
		return nil
	}
	// Repairs that keep what tar extraction yields: end the archive before
	// an append that did not complete, zero the block after a lone zero
	// block, turn shadowed duplicates into holes, reclaim a hole at the
	// tail; with Repair, turn damaged regions into holes. The journal
	// gets its checkpoint only after them: until then it still says which
	// appends the scan must check.
	needTail := len(s.sp.chunks) > 0 && s.sp.chunks[len(s.sp.chunks)-1].end() == s.sp.eoa
	// Free regions that readers refuse (chains of g headers, empty g
	// headers: images written before doc §2's rules) are laid out again or
	// compacted.
	needLayout := len(s.sp.bad()) > 0
	// Shadowed members that qualify stay as superseded members (dead.go);
	// the others are stray duplicates.
	dead, stray := res.superseded()
	s.dead = dead
	if !res.cut && !res.loneZero && len(stray) == 0 && len(res.damaged) == 0 && !needTail && !needLayout || s.sp.eoa+eoaSize > s.limit {
		// Nothing to repair; or the archive reaches into the journal
		// area: the store is full and must not write there.
		if replayed && s.sp.eoa+eoaSize <= s.limit {
			if err := s.writeCheckpoint(s.sp.eoa); err != nil {
				return kv.Storage("open", kv.Root, err)
			}
		} else if !s.journalDirty && s.knownEnd >= 0 {
			// The newest record is a checkpoint at the end of the
			// archive: it is the base an append may commit on (doc §3).
			s.journalBase, s.chain = true, s.verifySeed
		}
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.begin()
	switch {
	case res.cut:
		t.commit(s.sp.eoa, make([]byte, eoaSize))
	case res.loneZero:
		t.commit(s.sp.eoa+blockSize, make([]byte, blockSize))
	}
	for _, m := range stray {
		if m.linked == 0 {
			t.release(m)
		} else {
			s.kept[m] = res.shadowKeys[m]
		}
	}
	for _, e := range res.damaged {
		t.lost = append(t.lost, e)
		s.repaired = append(s.repaired, Problem{Offset: e.off, Fatal: true,
			What: fmt.Sprintf("the %d bytes from offset %d did not decode (damage before the end of the archive): now free space", e.len, e.off)})
	}
	if err := t.run("open", kv.Root); err != nil {
		return err
	}
	s.compact()
	if s.failed != nil {
		return kv.Storage("open", kv.Root, s.failed)
	}
	// The repairs are done: the journal says where the archive ends.
	if err := s.writeCheckpoint(s.sp.eoa); err != nil {
		return kv.Storage("open", kv.Root, err)
	}
	return nil
}

// readJournal reads the two journal slots (doc §4) and works out what a
// recovery applies: it picks the newest valid record (newestRecord),
// checks whether its stage extents hold the bytes its step 1 wrote
// (stageIntact), and leaves the rest to decideReplay. A slot that starts
// with the magic but holds no valid record makes the state dirty.
func (s *Store) readJournal() (journalState, error) {
	var recs [2]*record
	dirty := false
	for i := range recs {
		var err error
		recs[i], err = s.readSlot(i)
		switch {
		case errors.Is(err, errNoRecord):
			dirty = true
		case err != nil:
			return journalState{verifyFrom: -1, knownEnd: -1, dirty: dirty}, err
		}
	}
	newest, other := newestRecord(recs)
	ok := false
	if newest != nil {
		var err error
		if ok, err = s.stageIntact(newest); err != nil {
			return journalState{verifyFrom: -1, knownEnd: -1, dirty: dirty, seq: newest.seq}, err
		}
	}
	js := decideReplay(newest, other, ok, s.limit)
	js.dirty = dirty
	return js, nil
}

// newestRecord orders the valid records of the two journal slots (nil: no
// valid record in the slot): the one with the highest number first, slot
// 0's when both have the same (which the store never writes).
func newestRecord(slots [2]*record) (newest, other *record) {
	newest, other = slots[0], slots[1]
	if newest == nil || (other != nil && other.seq > newest.seq) {
		newest, other = other, newest
	}
	return newest, other
}

// decideReplay is the recovery decision of doc §4, without I/O: given the
// newest valid record of the journal (nil: none), the record in the other
// slot (nil: none), whether the newest record's stage extents hold the
// bytes its step 1 wrote (stageOK; stageIntact), and the end of the
// archive area (limit), it returns what a recovery applies. The rules:
//
//   - No record: nothing to replay (replay nil), nothing to verify
//     (verifyFrom -1), seq 0.
//   - seq is the newest record's number: the next record is seq+1.
//   - The predecessor is the other record when the newest says that its
//     predecessor's commit writes were still pending (prevPending) and the
//     other record is number seq-1; otherwise there is none (a stale
//     record, seq-3 say, or a checkpoint's spilled predecessor, is never
//     replayed). The predecessor needs no stage check: a later record
//     exists only once its step 1 was flushed. Only its commit writes are
//     replayed, not its zero extents (also flushed by then).
//   - Stage intact: the newest transaction is applied. The replay is the
//     predecessor's commit writes, then the newest record's, in that order
//     (the later write wins where they overlap), with the newest record's
//     zero extents, which are zeroed first (before the predecessor's
//     writes too: a transaction zeroes only stage space, never bytes its
//     predecessor's pending commit writes cover, txn.isInvisible); without
//     a predecessor it is the newest record itself. The archive ends at its eoaAfter, from
//     which the scan checks the chained appends that may follow it, the
//     first chained to the record's CRC (verifyFrom, verifySeed: doc §3).
//     A checkpoint (no writes) replays nothing but still sets verifyFrom.
//   - Stage not intact: step 1 of the newest transaction did not
//     complete; it was not acknowledged and is discarded. The replay is
//     the predecessor's commit writes alone (none without one), and a zero
//     extent over the end-of-archive marker where the archive ends without
//     the transaction, its eoaBefore (eoaSize bytes, cut at limit; none
//     when eoaBefore is not in [0, limit)): it undoes a header the
//     transaction may have committed in step 1. Nothing is verified
//     (verifyFrom -1).
//
// The replay, when there is one, is never nil (an empty record when there
// is nothing to write). decideReplay does not change its arguments; the
// replay may be newest itself, or share its slices.
func decideReplay(newest, other *record, stageOK bool, limit int64) journalState {
	js := journalState{verifyFrom: -1, knownEnd: -1}
	if newest == nil {
		return js
	}
	js.seq = newest.seq
	var prev *record
	if newest.prevPending && other != nil && other.seq == newest.seq-1 {
		prev = &record{commits: other.commits}
	}
	end := newest.eoaAfter
	switch {
	case !stageOK:
		js.replay, end = prev, newest.eoaBefore
	case prev == nil:
		js.replay = newest
	default:
		js.replay = &record{commits: append(slices.Clip(prev.commits), newest.commits...), zeros: newest.zeros}
	}
	if js.replay == nil {
		js.replay = &record{}
	}
	if end >= 0 && end <= limit {
		js.knownEnd = end
	}
	if !stageOK {
		// The end-of-archive marker where the archive ends without the
		// discarded transaction: it may hold the header it committed in
		// step 1 (doc §3).
		if end >= 0 && end < limit {
			js.replay.zeros = append(slices.Clip(js.replay.zeros), extent{end, min(eoaSize, limit-end)})
		}
		return js
	}
	// The transaction is applied; appends without a record of their own
	// may follow it, each chained to the one before, the first to this
	// record (doc §3). The scan checks them.
	js.verifyFrom, js.verifySeed = end, newest.crc
	return js
}

// A journalState is what readJournal found.
type journalState struct {
	// replay is what a recovery applies (the commit writes of the
	// records to replay, in order, and the zero extents of the last one);
	// nil when the journal holds no valid record.
	replay *record
	// dirty reports bytes in a slot that start with the magic but are no
	// valid record.
	dirty bool
	// seq is the highest record number found.
	seq uint64
	// verifyFrom and verifySeed: members from verifyFrom on must be
	// chained appends, the first chained to verifySeed (verifyFrom < 0:
	// none).
	verifyFrom int64
	verifySeed uint32
	// knownEnd is where the archive ends once the replay is applied (-1:
	// no record says): the archive before it is whole, so a zero block
	// there is damage, not the end (scan). Chained appends may follow it.
	knownEnd int64
}

// readSlot reads journal slot i: a record, nil when the slot holds none
// (never used, or cleared), or errNoRecord when it starts with the magic
// but holds no valid record.
func (s *Store) readSlot(i int) (*record, error) {
	at := s.slotOff(i)
	head := make([]byte, s.ss)
	if err := blockio.ReadAt(s.dev, head, at); err != nil {
		return nil, err
	}
	if !isJournalMagic(head) {
		return nil, nil
	}
	n, err := decodeHead(head)
	if err != nil {
		return nil, err
	}
	if n > s.slotSize() {
		return nil, errNoRecord
	}
	full := head
	if n > int64(len(head)) {
		full = make([]byte, n)
		if err := blockio.ReadAt(s.dev, full, at); err != nil {
			return nil, err
		}
	}
	return decodeRecord(full, s.limit, func(off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off+n > s.limit {
			return nil, errNoRecord
		}
		p := make([]byte, n)
		return p, blockio.ReadAt(s.dev, p, off)
	})
}

// replayJournal finishes the transactions the journal holds records of
// (doc §4) and reports whether it found any; open clears the journal once
// the scan has checked what the records say and the repairs are done. A journal with no valid record is
// left as it is, with journalDirty set when it holds bytes that start with
// the magic: a torn record is overwritten by the next transaction or by
// Close; the data of a foreign archive that reaches into the journal area
// must not change (open clears journalDirty then, once the scan has found
// the archive's end).
func (s *Store) replayJournal() (bool, error) {
	js, err := s.readJournal()
	if err != nil {
		return false, err
	}
	s.seq = js.seq
	s.verifyFrom, s.verifySeed = js.verifyFrom, js.verifySeed
	s.knownEnd = js.knownEnd
	rec := js.replay
	if rec == nil {
		s.journalDirty = js.dirty
		return false, nil
	}
	if len(rec.zeros) == 0 && len(rec.commits) == 0 {
		// A checkpoint (what Close leaves): nothing to write; it says
		// where the archive ends.
		return false, nil
	}
	for _, e := range rec.zeros {
		if err := blockio.Zero(s.dev, e.off, e.len); err != nil {
			return false, err
		}
	}
	b := blockio.NewBatch(s.dev)
	for _, w := range rec.commits {
		b.Write(w.off, w.data)
	}
	if err := b.Issue(); err != nil {
		return false, err
	}
	b.Release()
	s.journalDirty = true
	return true, s.dev.Flush()
}

// viewJournal, for a read-only open, reads the journal as replayJournal
// does and reads the device through what a replay would write (patched):
// the store sees what a writable open would make of the device, without
// writing.
func (s *Store) viewJournal() error {
	if s.jsize == 0 {
		return nil // a device too small for a journal (newStore)
	}
	js, err := s.readJournal()
	if err != nil || js.replay == nil {
		return err
	}
	s.verifyFrom, s.verifySeed = js.verifyFrom, js.verifySeed
	s.knownEnd = js.knownEnd
	s.dev = &patched{Block: s.dev, rec: js.replay}
	s.batch = nil // made for the device before
	return nil
}

// stageIntact reports whether the stage extents of rec hold the bytes that
// were written in step 1.
func (s *Store) stageIntact(rec *record) (bool, error) {
	crc := uint32(0)
	buf := make([]byte, 1<<20)
	for _, e := range rec.stage {
		if e.off < 0 || e.len < 0 || e.off+e.len > s.limit {
			return false, nil
		}
		for done := int64(0); done < e.len; {
			n := min(int64(len(buf)), e.len-done)
			if err := blockio.ReadAt(s.dev, buf[:n], e.off+done); err != nil {
				return false, err
			}
			crc = crc32.Update(crc, castagnoli, buf[:n])
			done += n
		}
	}
	return crc == rec.stageCRC, nil
}
