package kvtar

import (
	"errors"
	"hash/crc32"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// open runs recovery (doc §5) and builds the in-memory state.
func (s *Store) open() error {
	if !s.readOnly {
		if err := s.replayJournal(); err != nil {
			return kv.Storage("open", kv.Root, err)
		}
	} else if err := s.viewJournal(); err != nil {
		return kv.Storage("open", kv.Root, err)
	}
	res, err := s.scan()
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
	// Repairs that keep what tar extraction yields: zero the block after a
	// lone zero block, turn shadowed duplicates into holes, reclaim a hole
	// at the tail.
	needTail := len(s.sp.chunks) > 0 && s.sp.chunks[len(s.sp.chunks)-1].end() == s.sp.eoa
	if !res.loneZero && len(res.shadowed) == 0 && !needTail {
		return nil
	}
	if s.sp.eoa+eoaSize > s.limit {
		// The archive reaches into the journal area: the store is full
		// and must not write there. Leave it as it is.
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.begin()
	if res.loneZero {
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
	return nil
}

// replayJournal applies the journal record left by a transaction that did
// not finish (doc §4), or discards it when its stage writes did not reach
// the device, then clears the journal.
//
// Bytes that start with the magic but are no valid record are left as they
// are, with journalDirty set: they are a record torn before its step 1
// completed (nothing depends on it; the next transaction's step 1, or
// Close, overwrites it), or the data of a foreign archive that fills the
// device and reaches into the journal area, which open must not change
// (open clears journalDirty then, once the scan has found the archive's
// end).
func (s *Store) replayJournal() error {
	head := make([]byte, s.ss)
	if err := blockio.ReadAt(s.dev, head, s.limit); err != nil {
		return err
	}
	n, err := decodeHead(head)
	if errors.Is(err, errNoRecord) && string(head[:len(journalMagic)]) != journalMagic {
		return nil // never used, or cleared
	}
	if err != nil || n > s.jsize {
		s.journalDirty = true // the magic, but no record
		return nil
	}
	full := make([]byte, n)
	if err := blockio.ReadAt(s.dev, full, s.limit); err != nil {
		return err
	}
	rec, err := decodeRecord(full, func(off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off+n > s.limit {
			return nil, errNoRecord
		}
		p := make([]byte, n)
		return p, blockio.ReadAt(s.dev, p, off)
	})
	switch {
	case err == nil:
		ok, err := s.stageIntact(rec)
		if err != nil {
			return err
		}
		if ok {
			for _, e := range rec.zeros {
				if err := blockio.Zero(s.dev, e.off, e.len); err != nil {
					return err
				}
			}
			b := blockio.NewBatch(s.dev)
			for _, w := range rec.commits {
				b.Write(w.off, w.data)
			}
			if err := b.Issue(); err != nil {
				return err
			}
			if err := s.dev.Flush(); err != nil {
				return err
			}
		}
	case errors.Is(err, errNoRecord):
		s.journalDirty = true // the magic, but no valid record
		return nil
	default:
		return err
	}
	return s.clearJournal()
}

// viewJournal, for a read-only open, reads a journal record left by a
// transaction that did not finish and, when its stage writes are intact,
// reads the device through it (patched): the store sees what a writable
// open would make of the device, without writing.
func (s *Store) viewJournal() error {
	head := make([]byte, s.ss)
	if err := blockio.ReadAt(s.dev, head, s.limit); err != nil {
		return err
	}
	n, err := decodeHead(head)
	if err != nil || n > s.jsize {
		return nil
	}
	full := make([]byte, n)
	if err := blockio.ReadAt(s.dev, full, s.limit); err != nil {
		return err
	}
	rec, err := decodeRecord(full, func(off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off+n > s.limit {
			return nil, errNoRecord
		}
		p := make([]byte, n)
		return p, blockio.ReadAt(s.dev, p, off)
	})
	if err != nil {
		return nil // no record a replay would apply
	}
	if ok, err := s.stageIntact(rec); err != nil || !ok {
		return err
	}
	s.dev = &patched{Block: s.dev, rec: rec}
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
