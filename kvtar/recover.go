package kvtar

import (
	"errors"
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
	res, err := s.scan(s.verifyFrom, s.verifySeed)
	s.verifyFrom = -1
	if err != nil {
		return err
	}
	s.ix = res.ix
	s.sp = res.sp
	if s.sp.eoa+eoaSize > s.limit {
		// The archive reaches into the journal area: what lies there is
		// archive data, which Close must not clear.
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
	if s.readOnly {
		return nil
	}
	// Repairs that keep what tar extraction yields: end the archive before
	// an append that did not complete, zero the block after a lone zero
	// block, turn shadowed duplicates into holes, reclaim a hole at the
	// tail. The journal is cleared only after them: until then it still
	// says which appends the scan must check.
	needTail := len(s.sp.chunks) > 0 && s.sp.chunks[len(s.sp.chunks)-1].end() == s.sp.eoa
	// Free regions that readers refuse (chains of g headers, empty g
	// headers: images written before doc §2's rules) are laid out again or
	// compacted.
	needLayout := len(s.sp.bad()) > 0
	if !res.cut && !res.loneZero && len(res.shadowed) == 0 && !needTail && !needLayout || s.sp.eoa+eoaSize > s.limit {
		// Nothing to repair; or the archive reaches into the journal
		// area: the store is full and must not write there.
		if replayed {
			if err := s.clearJournal(); err != nil {
				return kv.Storage("open", kv.Root, err)
			}
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
	for _, m := range res.shadowed {
		if m.linked == 0 {
			t.release(m)
		} else {
			s.kept[m] = true
		}
	}
	if err := t.run("open", kv.Root); err != nil {
		return err
	}
	s.compact()
	if s.failed != nil {
		return kv.Storage("open", kv.Root, s.failed)
	}
	// Leave the journal as open found it, empty: the repairs are done.
	if err := s.clearJournal(); err != nil {
		return kv.Storage("open", kv.Root, err)
	}
	return nil
}

// readJournal reads the two journal slots (doc §4) and works out what a
// recovery applies.
//
// The record to replay is the valid one with the highest number, when its
// stage extents hold the bytes its step 1 wrote; its predecessor in the
// other slot is replayed first when the record says that the
// predecessor's commit writes were not yet flushed. When the stage
// extents do not match, step 1 of that transaction did not complete (it
// was not acknowledged and is discarded), but its predecessor's commit
// writes may still be lost: the predecessor is replayed alone when the
// record says so. The predecessor needs no stage check: a later record
// exists only once its step 1 was flushed. A discarded transaction's
// replay ends with the end-of-archive marker written where the archive
// ends without it, which undoes the header it may have committed in step
// 1. After an applied one, the scan checks the appends that followed it
// without a record (verifyFrom).
func (s *Store) readJournal() (journalState, error) {
	js := journalState{verifyFrom: -1}
	var recs [2]*record
	for i := range recs {
		var err error
		recs[i], err = s.readSlot(i)
		switch {
		case errors.Is(err, errNoRecord):
			js.dirty = true
		case err != nil:
			return js, err
		}
	}
	last, other := recs[0], recs[1]
	if last == nil || (other != nil && other.seq > last.seq) {
		last, other = other, last
	}
	if last == nil {
		return js, nil
	}
	js.seq = last.seq
	var prev *record
	if last.prevPending && other != nil && other.seq == last.seq-1 {
		prev = &record{commits: other.commits}
	}
	ok, err := s.stageIntact(last)
	end := last.eoaAfter
	switch {
	case err != nil:
		return js, err
	case !ok:
		js.replay, end = prev, last.eoaBefore
	case prev == nil:
		js.replay = last
	default:
		js.replay = &record{commits: append(slices.Clip(prev.commits), last.commits...), zeros: last.zeros}
	}
	if js.replay == nil {
		js.replay = &record{}
	}
	if !ok {
		// The end-of-archive marker where the archive ends without the
		// discarded transaction: it may hold the header it committed in
		// step 1 (doc §3).
		if end >= 0 && end < s.limit {
			js.replay.zeros = append(slices.Clip(js.replay.zeros), extent{end, min(eoaSize, s.limit-end)})
		}
		return js, nil
	}
	// The transaction is applied; appends without a record of their own
	// may follow it, each chained to the one before, the first to this
	// record (doc §3). The scan checks them.
	js.verifyFrom, js.verifySeed = end, last.crc
	return js, nil
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
	if string(head[:len(journalMagic)]) != journalMagic {
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
	return decodeRecord(full, func(off, n int64) ([]byte, error) {
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
	rec := js.replay
	if rec == nil {
		s.journalDirty = js.dirty
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
	s.journalDirty = true
	return true, s.dev.Flush()
}

// viewJournal, for a read-only open, reads the journal as replayJournal
// does and reads the device through what a replay would write (patched):
// the store sees what a writable open would make of the device, without
// writing.
func (s *Store) viewJournal() error {
	js, err := s.readJournal()
	if err != nil || js.replay == nil {
		return err
	}
	s.verifyFrom, s.verifySeed = js.verifyFrom, js.verifySeed
	s.dev = &patched{Block: s.dev, rec: js.replay}
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
