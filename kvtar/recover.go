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
	}
	res, err := s.scan()
	if err != nil {
		return err
	}
	s.ix = res.ix
	s.sp = res.sp
	s.unexposed = res.foreign
	indexLinks(&s.ix.root)
	s.sp.limit = s.limit
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
func (s *Store) replayJournal() error {
	head := make([]byte, s.ss)
	if err := blockio.ReadAt(s.dev, head, s.limit); err != nil {
		return err
	}
	n, err := decodeHead(head)
	if errors.Is(err, errNoRecord) && string(head[:len(journalMagic)]) != journalMagic {
		return nil // never used, or cleared
	}
	if err == nil && n <= s.jsize {
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
		case !errors.Is(err, errNoRecord):
			return err
		}
	}
	return s.clearJournal()
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
