package kvtar

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// streamChunk is the unit of streamed writes and copies.
const streamChunk = 1 << 20

// streamBuffers is how many chunks a stream holds: one being written, the
// others filled by the reader meanwhile, so that a reader whose speed
// varies (a network body) rarely leaves the device idle.
const streamBuffers = 4

// alignMin is the size from which a value's data is sector-aligned.
const alignMin = 64 << 10

// mtime is the store's time for a new member: whole seconds, as ustar
// keeps them without an extra PAX header block.
func (s *Store) now() time.Time { return s.clk.Now().Truncate(time.Second) }

// valueHeader encodes the header blocks of a regular-file member.
func valueHeader(k kv.Key, size int64, mtime time.Time) ([]byte, error) {
	return encodeMember(k, false, size, mtime, 0)
}

// encodeMember encodes the header blocks of a value (or, with dir, of a
// directory member) under the name k: exactly blocks blocks when blocks
// is positive (a header rewritten in place fills the space of the old
// one: tarfmt.EncodeHeaderBlocks). A member of one block (an empty value,
// a directory) gets three instead (an x header with a comment record
// before it): once removed, one block could not be a hole (doc §2).
func encodeMember(k kv.Key, dir bool, size int64, mtime time.Time, blocks int64) ([]byte, error) {
	h := tarfmt.Header{Name: k.Path(), Typeflag: tarfmt.TypeReg, Size: size, Mode: 0o644, ModTime: mtime}
	if dir {
		h = tarfmt.Header{Name: k.Path() + "/", Typeflag: tarfmt.TypeDir, Mode: 0o755, ModTime: mtime}
	}
	if blocks > 0 {
		return tarfmt.EncodeHeaderBlocks(h, blocks)
	}
	hdr, err := tarfmt.EncodeHeader(h)
	if err == nil && len(hdr) == blockSize && h.Size == 0 {
		return tarfmt.EncodeHeaderBlocks(h, 3)
	}
	return hdr, err
}

// place plans a new value member for k of size bytes: it encodes the header,
// finds room (doc §1: values of a sector or more start on a sector
// boundary), queues the header and the padding, and returns the member and
// its header bytes. The caller queues the data.
func (t *txn) place(op string, k kv.Key, size int64, mtime time.Time) (*member, error) {
	m, err := t.placeMember(op, k, func(blocks int64) ([]byte, error) {
		return encodeMember(k, false, size, mtime, blocks)
	}, size)
	if err != nil {
		return nil, err
	}
	m.mtime = mtime
	return m, nil
}

// placeMember finds room for a member with size bytes of data whose header
// enc encodes (in its natural size when blocks is 0, else in exactly
// blocks blocks: encodeMember), queues the header and the padding, and
// returns the member.
func (t *txn) placeMember(op string, k kv.Key, enc func(blocks int64) ([]byte, error), size int64) (*member, error) {
	s := t.s
	if size > s.limit {
		// Larger than the archive area: no room, and the arithmetic below
		// could overflow.
		return nil, kv.NoSpace(op, k)
	}
	hdr, err := enc(0)
	if err != nil {
		return nil, &kv.Error{Op: op, Key: k, Err: kv.ErrInvalidArgument, Detail: "cannot encode the tar header", Cause: err}
	}
	h := int64(len(hdr))
	padded := size + tarfmt.PadLen(size)
	n := h + padded
	// Large values start on a sector boundary, and on a 4 KiB boundary on
	// 512-byte-sector devices, whose physical blocks are usually 4 KiB:
	// their reads and writes are then whole-sector direct I/O. Small
	// values are packed; the alignment gap would cost more than it saves.
	// Into the space of k's superseded member first (dead.go): the
	// value that member precedes is replaced.
	p, ok := t.placeDead(k, n, h, s.memberAlign(size))
	if !ok {
		p, ok = s.sp.place(n, h, s.memberAlign(size), s.avoid())
	}
	if !ok {
		if n > t.short.n {
			t.short = roomNeed{n, h, s.memberAlign(size)}
		}
		return nil, kv.NoSpace(op, k)
	}
	if p.pad > 0 {
		// One block more of header fills the run (space.place).
		if hdr, err = enc((h + p.pad) / blockSize); err != nil {
			return nil, &kv.Error{Op: op, Key: k, Err: kv.ErrInvalidArgument, Detail: "cannot encode the tar header", Cause: err}
		}
	}
	return t.putMember(p, hdr, size), nil
}

// memberAlign is the alignment of the data of a value of size bytes.
func (s *Store) memberAlign(size int64) int64 {
	if size >= alignMin {
		return max(s.ss, 4096)
	}
	return blockSize
}

// putMember takes the space of placement p for a member with header hdr
// and size bytes of data, queues the header and the padding, and returns
// the member.
func (t *txn) putMember(p placement, hdr []byte, size int64) *member {
	s := t.s
	h := int64(len(hdr))
	padded := size + tarfmt.PadLen(size)
	n := h + padded
	t.placed++
	consumed, leftover := s.sp.take(p, n)
	t.consume(consumed)
	if p.dead != nil {
		t.useDead(p.dead)
	}
	for _, e := range leftover {
		t.hole(e)
	}
	m := &member{
		start:    p.off,
		hdr:      p.off + h - blockSize,
		dataOff:  p.off + h,
		end:      p.off + n,
		size:     size,
		dataSize: size,
	}
	t.put(p.off, hdr)
	t.hdr = hdr
	if pad := padded - size; pad > 0 {
		t.put(m.dataOff+size, make([]byte, pad))
	}
	return m
}

// checkTarget checks that k can be bound to a value: not the root, not
// below a value. It returns the node now at k (nil when none).
func (s *Store) checkTarget(op string, k kv.Key) (*node, error) {
	if k.IsRoot() {
		return nil, kv.ValueExpected(op, k)
	}
	n, pv := s.ix.walk(k)
	if pv != nil {
		return nil, kv.DictionaryExpected(op, pv.key())
	}
	return n, nil
}

// replace queues the removal of whatever n holds (a value or a whole
// dictionary) from the archive and from the index.
func (t *txn) replace(n *node) {
	if n == nil {
		return
	}
	for _, m := range subtreeMembers(n) {
		t.release(m)
	}
	t.touch(n.key())
	ix := t.s.ix
	t.apply = append(t.apply, func() { ix.detach(n) })
}

// subtreeMembers returns the members of n's subtree without changing it.
func subtreeMembers(n *node) []*member {
	var ms []*member
	each(n, kv.Root, func(c *node, _ kv.Key) {
		if c.dir != nil {
			ms = append(ms, c.dir)
		}
		if c.val != nil {
			ms = append(ms, c.val)
		}
	})
	return ms
}

// bind queues binding k to m in the index.
func (t *txn) bind(k kv.Key, m *member) {
	t.touch(k)
	ix := t.s.ix
	t.apply = append(t.apply, func() { ix.setValue(k, m) })
}

// Set binds k to v.
func (s *Store) Set(k kv.Key, v []byte) error {
	return s.set("set", k, nil, int64(len(v)), v)
}

// SetFrom binds k to the next size bytes of r, streamed with bounded
// memory.
func (s *Store) SetFrom(k kv.Key, r io.Reader, size int64) error {
	if size < 0 {
		return kv.InvalidArgument("set", k, "negative size")
	}
	if size <= readFirst {
		// A small value is read before the write joins the queue, so
		// that a slow reader (a network body) does not hold up the
		// transaction it is grouped with.
		v := make([]byte, size)
		if _, err := io.ReadFull(r, v); err != nil {
			return readError("set", k, size, err)
		}
		return s.set("set", k, nil, size, v)
	}
	return s.setStreamed("set", k, r, size)
}

// readFirst is the size up to which SetFrom reads the value into memory
// before it queues the write.
const readFirst = 64 << 10

// readError is the error of a write whose reader failed after n bytes of
// size.
func readError(op string, k kv.Key, size int64, err error) error {
	var ke *kv.Error
	if errors.As(err, &ke) {
		return ke // the store's own (a copy whose source is corrupt)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return kv.InvalidArgument(op, k, fmt.Sprintf("the data ended before %d bytes", size))
	}
	return kv.Storage(op, k, fmt.Errorf("reading the value: %w", err))
}

// set writes a new member for k from r (or from whole, when the bytes are
// in memory: r is then nil), replacing what k held.
func (s *Store) set(op string, k kv.Key, r io.Reader, size int64, whole []byte) error {
	return s.write1(op, k, s.planSet(op, k, r, size, whole))
}

// planSet returns the plan of set.
func (s *Store) planSet(op string, k kv.Key, r io.Reader, size int64, whole []byte) func(t *txn) error {
	return func(t *txn) error {
		n, err := s.checkTarget(op, k)
		if err != nil {
			return err
		}
		m, err := t.place(op, k, size, s.now())
		if err != nil {
			return err
		}
		hdr := t.hdr
		if whole != nil && size < stageDirect {
			t.put(m.dataOff, whole)
			crc := tarfmt.DataCRC(whole)
			t.seal(m, hdr, crc, sumDigest(whole))
			t.lones = append(t.lones, loneAppend{m: m, hdr: hdr, dataCRC: crc})
		} else {
			if whole != nil {
				r = bytes.NewReader(whole)
			}
			crc, d, err := t.stream(op, k, m.dataOff, r, size)
			if err != nil {
				return err
			}
			t.seal(m, hdr, crc, d)
		}
		t.replaceValue(n, k, m)
		t.bind(k, m)
		return nil
	}
}

// stream copies size bytes from r to the device at off, in the planning of
// t: parts in space no reader can see are written at once (stage writes);
// the rest is queued. Reading r and writing the device overlap: a
// goroutine fills buffers while earlier ones are written. stream returns
// once every write it started is done; it releases s.mu meanwhile, so
// that readers go on; the caller holds s.wmu.
//
// It returns the CRC-32C of the bytes it read (the member's data CRC) and
// their digest (copyIn).
func (t *txn) stream(op string, k kv.Key, off int64, r io.Reader, size int64) (uint32, *digest, error) {
	s := t.s
	s.mu.Unlock()
	defer s.mu.Lock()
	return s.copyIn(op, k, off, r, size, t.planStage)
}

// copyIn copies size bytes from r to the device at off: plan(w) returns the
// parts of each write w to issue now (and may queue the rest elsewhere).
// Reading r and writing the device overlap. It returns the CRC-32C of the
// bytes it read, and their digest when there are at most digestInline of
// them (else nil), once every write it started is done.
func (s *Store) copyIn(op string, k kv.Key, off int64, r io.Reader, size int64, plan func(ws ...write) []write) (uint32, *digest, error) {
	type chunk struct {
		p   []byte
		crc uint32 // of the bytes read so far, this chunk's included
		err error
	}
	fail := func(err error) error { return readError(op, k, size, err) }
	// Buffers of a chunk, or of the value when it is smaller (rounded up
	// to 4 KiB for aligned I/O).
	bufSize := min(streamChunk, (size+4095)/4096*4096)
	if size == 0 {
		return tarfmt.DataCRC(nil), sumDigest(nil), nil
	}
	if size <= bufSize {
		// One chunk: nothing to overlap.
		buf := hw.AllocBuffer(s.dev, int(bufSize))[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, fail(err)
		}
		if err := writeNow(s.dev, plan(write{off, buf})); err != nil {
			return 0, nil, kv.Storage(op, k, err) // buf stays out: a write that failed may still own it
		}
		var d *digest
		if size <= digestInline {
			d = sumDigest(buf)
		}
		crc := tarfmt.DataCRC(buf)
		// Written, and nothing refers to it: plan queues copies of what
		// it does not write now (planStage).
		hw.ReleaseBuffer(s.dev, buf)
		return crc, d, nil
	}
	full := make(chan chunk, streamBuffers)
	free := make(chan []byte, streamBuffers)
	stop := make(chan struct{})
	for range streamBuffers {
		free <- s.chunks.get(s.dev)
	}
	defer func() {
		// The buffers back from their writes go back to the pool; one
		// the reader still holds (after an error) stays with it.
		for {
			select {
			case b := <-free:
				s.chunks.put(s.dev, b)
			default:
				return
			}
		}
	}()
	defer close(stop)
	go func() {
		// The CRC is computed here, while the bytes are fresh in the
		// cache and the writer goes on with earlier chunks.
		crc := uint32(0)
		for done := int64(0); done < size; {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n := min(bufSize, size-done)
			_, err := io.ReadFull(r, buf[:n])
			if err == nil {
				crc = crc32.Update(crc, castagnoli, buf[:n])
			}
			select {
			case full <- chunk{buf[:n], crc, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
			done += n
		}
	}()
	// Each chunk is written as soon as the reader has it and one of
	// streamDepth write slots is free (its buffer goes back to the reader
	// when its write is done): the device always has the next write
	// queued while the reader is ahead.
	var (
		writes sync.WaitGroup
		slots  = make(chan struct{}, streamDepth)
		mu     sync.Mutex
		werr   error
	)
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return werr
	}
	var err error
	crc := uint32(0)
	for done := int64(0); done < size; {
		c := <-full
		if c.err != nil {
			err = fail(c.err)
			break
		}
		crc = c.crc
		now := plan(write{off + done, c.p})
		done += int64(len(c.p))
		slots <- struct{}{}
		if failed() != nil {
			break
		}
		writes.Go(func() {
			e := writeNow(s.dev, now)
			if e != nil {
				mu.Lock()
				werr = cmp.Or(werr, e)
				mu.Unlock()
			}
			<-slots
			if e == nil { // a write that failed may still own its buffer
				free <- c.p[:cap(c.p)]
			}
		})
	}
	writes.Wait()
	if e := failed(); err == nil && e != nil {
		err = kv.Storage(op, k, e)
	}
	return crc, nil, err
}

// streamDepth is how many chunks of a stream are written at once, at most.
// Measured here through HTTP (64 MiB PUTs over loopback, in-process A/B
// against a handler writing the raw device the same way): keeping this
// many writes going, a new one as soon as one ends, makes the store's PUT
// as fast as the raw handler's; writing ready chunks in batches of this
// many, each batch waiting for its slowest write, reached 0.80-0.86 of it.
const streamDepth = 2

// stageDirect is the size from which a value held in memory is streamed
// (through the device's own buffers, which it writes fastest) rather than
// queued with the transaction's stage writes: the journal record would
// vouch for queued bytes with a CRC over them, which costs more than the
// flush that makes streamed data durable first (doc §3).
const stageDirect = 1 << 20

// planStage returns the parts of ws that lie in invisible space, to be
// written now, and adds them to the streamed extents; the rest it queues
// (copies) as writes of the transaction.
//
// The parts written now go to the device before the writes queued so far,
// which step 1 issues later: those are cut where the parts written now
// lie, so that the later write wins as in any transaction (doc §3). (An
// earlier request of the same group may have queued the hole structure of
// the space this stream fills.)
func (t *txn) planStage(ws ...write) []write {
	var st, cm []write
	for _, w := range ws {
		t.split(w, &st, &cm)
	}
	for _, w := range st {
		t.supersede(extent{w.off, int64(len(w.data))})
	}
	for _, w := range cm {
		t.put(w.off, bytes.Clone(w.data))
	}
	for _, w := range st {
		e := extent{w.off, int64(len(w.data))}
		if n := len(t.streamed); n > 0 && t.streamed[n-1].end() == e.off {
			t.streamed[n-1].len += e.len
		} else {
			t.streamed = append(t.streamed, e)
		}
	}
	return st
}

// writeNow writes ws to dev, concurrently.
func writeNow(dev hw.Block, ws []write) error {
	if len(ws) == 0 {
		return nil
	}
	b := blockio.NewBatch(dev)
	for _, w := range ws {
		b.Write(w.off, w.data)
	}
	if err := b.Issue(); err != nil {
		return err
	}
	b.Release()
	return nil
}

// SetPartial writes v into the value bound to k at off (at its end when off
// is past it), creating k when it is missing.
func (s *Store) SetPartial(k kv.Key, off int64, v []byte) error {
	const op = "set_partial"
	if off < 0 {
		return kv.InvalidArgument(op, k, "negative offset")
	}
	return s.write1(op, k, func(t *txn) error { return t.setPartial(op, k, off, v) })
}

func (t *txn) setPartial(op string, k kv.Key, off int64, v []byte) error {
	s := t.s
	n, err := s.checkTarget(op, k)
	if err != nil {
		return err
	}
	if n == nil {
		m, err := t.place(op, k, int64(len(v)), s.now())
		if err != nil {
			return err
		}
		t.seal(m, t.hdr, tarfmt.DataCRC(v), sumDigest(v))
		t.put(m.dataOff, v)
		t.bind(k, m)
		return nil
	}
	if !n.isValue() {
		return kv.ValueExpected(op, k)
	}
	old := n.val
	at := min(off, old.size)
	size := max(old.size, at+int64(len(v)))
	mtime := s.now()
	if size == old.size && old.owner() == old && old.linked == 0 && old.sparse == nil && !old.pinned() {
		// In place: the bytes, and the header for the new mtime. (Not
		// while readers hold the value: they read a snapshot, which a
		// new member keeps for them.)
		// The header fills the space of the old one exactly: a gap
		// before the data would be a hole of its own (doc §2).
		if hdr, err := encodeMember(k, false, size, mtime, (old.dataOff-old.start)/blockSize); err == nil {
			// New readers wait until the transaction ends (they would
			// read bytes being rewritten); the new data's CRC is that
			// of the value read (and verified) with v applied, s.mu
			// released meanwhile.
			t.gate(old)
			var crc uint32
			var dg *digest
			err := s.unlocked(func() (err error) { crc, dg, err = s.patchedCRC(k, old, at, v); return err })
			if err != nil {
				return err
			}
			h := int64(len(hdr))
			tarfmt.SetTag((*tarfmt.Block)(hdr[h-blockSize:]), tarfmt.Tag{DataCRC: crc})
			t.commit(old.dataOff-h, hdr)
			t.commit(old.dataOff+at, v)
			t.apply = append(t.apply, func() {
				old.start = old.dataOff - h
				old.hdr = old.dataOff - blockSize
				old.mtime = mtime
				old.gen.Add(1)
				old.crc, old.hasCRC = crc, true
				old.digest.Store(dg)
			})
			return nil
		}
	}
	// Otherwise write a new member with the patched contents, copying the
	// old ones, and release the old member.
	m, err := t.place(op, k, size, mtime)
	if err != nil {
		return err
	}
	if err := t.copyPatched(op, k, old, m, at, v); err != nil {
		return err
	}
	t.replaceValue(n, k, m)
	t.bind(k, m)
	return nil
}

// copyPatched streams old's contents with v applied at at into the new
// member m.
//
// The old contents are verified against old's CRC as they are read (a copy
// must not launder damage: the new member gets a CRC of its own), and the
// new member is sealed with the CRC of what was written.
func (t *txn) copyPatched(op string, k kv.Key, old, m *member, at int64, v []byte) error {
	s := t.s
	d := acquire(old)
	defer s.releasePin(d)
	if m.size < stageDirect {
		// Small: read whole, queued with the transaction's writes (the
		// record vouches for them), as a small Set is; no stream, and no
		// flush before the record for one.
		p := make([]byte, m.size)
		r := min(old.size, m.size)
		err := s.unlocked(func() error { return s.readData(old, d, p[:r], 0) })
		if err != nil {
			return readError(op, k, m.size, err)
		}
		if r == old.size && old.hasCRC && tarfmt.DataCRC(p[:r]) != old.crc {
			return corruptData(op, k, old)
		}
		applyPatch(p, 0, v, at)
		t.put(m.dataOff, p)
		t.seal(m, t.hdr, tarfmt.DataCRC(p), sumDigest(p))
		return nil
	}
	pr, pw := io.Pipe()
	go func() {
		// Reads of copyChunk bytes: the device takes each as several
		// requests at once, where the stream's chunks would go one by
		// one.
		buf := make([]byte, min(copyChunk, m.size))
		crc := uint32(0)
		for off := int64(0); off < m.size; {
			n := min(int64(len(buf)), m.size-off)
			p := buf[:n]
			clear(p)
			if off < old.size {
				r := min(n, old.size-off)
				if err := s.readData(old, d, p[:r], off); err != nil {
					pw.CloseWithError(err)
					return
				}
				crc = crc32.Update(crc, castagnoli, p[:r])
				if off+r == old.size && old.hasCRC && crc != old.crc {
					pw.CloseWithError(corruptData(op, k, old))
					return
				}
			}
			applyPatch(p, off, v, at)
			if _, err := pw.Write(p); err != nil {
				return
			}
			off += n
		}
		pw.Close()
	}()
	hdr := t.hdr
	crc, dg, err := t.stream(op, k, m.dataOff, pr, m.size)
	pr.Close()
	if v == nil {
		// A copy (rename, compaction) carries the digest when known.
		dg = cmp.Or(old.digest.Load(), dg)
	}
	if err == nil {
		t.seal(m, hdr, crc, dg)
	}
	return err
}

// copyChunk is the size of the reads of a large copy (copyPatched).
const copyChunk = 8 << 20

// Allocate binds the absent k to size zero bytes, stamped mtime (now when
// zero).
func (s *Store) Allocate(k kv.Key, size int64, mtime time.Time) error {
	const op = "allocate"
	if size < 0 {
		return kv.InvalidArgument(op, k, "negative size")
	}
	return s.write1(op, k, func(t *txn) error {
		if k.IsRoot() {
			return kv.AlreadyPresent(op, k)
		}
		n, err := s.checkTarget(op, k)
		if err != nil {
			return err
		}
		if n != nil {
			return kv.AlreadyPresent(op, k)
		}
		mt := mtime
		if mt.IsZero() {
			mt = s.now()
		}
		m, err := t.place(op, k, size, mt.Truncate(time.Second))
		if err != nil {
			return err
		}
		crc, dg := s.zerosSums(size)
		t.seal(m, t.hdr, crc, dg)
		t.zero(m.dataOff, size)
		t.bind(k, m)
		return nil
	})
}

// Remove unbinds k and everything below it.
func (s *Store) Remove(k kv.Key) error {
	const op = "remove"
	return s.write1(op, k, func(t *txn) error {
		n := s.ix.lookup(k)
		if n == nil || (k.IsRoot() && len(n.children) == 0 && n.dir == nil) {
			return nil
		}
		t.replace(n)
		return nil
	})
}

// Rename moves the binding of src to dst (SPEC §3).
func (s *Store) Rename(src, dst kv.Key) error {
	return s.write("rename", []kv.Key{src, dst}, func(t *txn) error { return t.rename(src, dst) })
}

func (t *txn) rename(src, dst kv.Key) error {
	const op = "rename"
	s := t.s
	if src.IsRoot() {
		return kv.RenameSourcePrefix(src, dst)
	}
	sn := s.ix.lookup(src)
	if sn == nil {
		return kv.NotFound(op, src)
	}
	if dst.HasPrefix(src) {
		if dst == src && sn.isValue() {
			return nil
		}
		return kv.RenameSourcePrefix(src, dst)
	}
	dn, pv := s.ix.walk(dst)
	if pv != nil {
		return &kv.Error{Op: op, Key: pv.key(), Err: kv.ErrDictionaryExpected}
	}
	target := dst
	if dn != nil && !dn.isValue() {
		var err error
		if target, err = dst.Add(src.Base()); err != nil {
			return kv.WithOp(err, op)
		}
		if target == src {
			return nil
		}
		dn = s.ix.lookup(target)
	} else if dn != nil && !sn.isValue() {
		return kv.ValueExpected(op, src)
	}
	// Every member of the source gets a header with its new name: in
	// place when it fits before the data, else in a copy of the member.
	var relocate []func() error
	each(sn, target, func(c *node, ck kv.Key) {
		for _, m := range []*member{c.val, c.dir} {
			if m == nil {
				continue
			}
			m, c, ck := m, c, ck
			if _, err := memberHeader(ck, m); err != nil {
				relocate = append(relocate, func() error {
					return &kv.Error{Op: op, Key: ck, Err: kv.ErrInvalidArgument, Detail: "cannot encode the tar header", Cause: err}
				})
				continue
			}
			// In place, the new header filling the old one's space
			// exactly (a gap would be a hole of its own, doc §2).
			if fit, err := encodeMember(ck, m.dir, m.size, m.mtime, (m.dataOff-m.start)/blockSize); err == nil && m.owner() == m && m.linked == 0 && m.sparse == nil {
				h := int64(len(fit))
				if m.hasCRC {
					tarfmt.SetTag((*tarfmt.Block)(fit[h-blockSize:]), tarfmt.Tag{DataCRC: m.crc})
				}
				t.commit(m.dataOff-h, fit)
				t.apply = append(t.apply, func() {
					m.start = m.dataOff - h
					m.hdr = m.dataOff - blockSize
				})
				continue
			}
			relocate = append(relocate, func() error {
				nm, err := t.placeMember(op, ck, func(blocks int64) ([]byte, error) {
					return encodeMember(ck, m.dir, m.size, m.mtime, blocks)
				}, m.size)
				if err != nil {
					return err
				}
				nm.mtime, nm.dir = m.mtime, m.dir
				if !m.dir {
					if err := t.copyPatched(op, ck, m, nm, 0, nil); err != nil {
						return err
					}
				}
				t.release(m)
				t.apply = append(t.apply, func() {
					if m.dir {
						c.dir = nm
					} else {
						c.val = nm
					}
				})
				return nil
			})
		}
	})
	for _, f := range relocate {
		if err := f(); err != nil {
			return err
		}
	}
	// What the target held is replaced, except the source itself when the
	// target is one of its ancestors (/d/x/x to /d replaces /d/x). Members
	// the store does not expose, named like the source or the target, go
	// (touch).
	t.touch(src)
	t.touch(target)
	if dn != nil {
		moving := map[*member]bool{}
		for _, m := range subtreeMembers(sn) {
			moving[m] = true
		}
		for _, m := range subtreeMembers(dn) {
			if !moving[m] {
				t.release(m)
			}
		}
	}
	ix := s.ix
	t.apply = append(t.apply, func() {
		ix.detach(sn)
		if cur := ix.lookup(target); cur != nil {
			ix.detach(cur)
		}
		ix.attach(target, sn)
	})
	return nil
}

// memberHeader encodes the header of m (a value or directory member) under
// the name k.
func memberHeader(k kv.Key, m *member) ([]byte, error) {
	return encodeMember(k, m.dir, m.size, m.mtime, 0)
}
