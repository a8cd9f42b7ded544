package kvtar

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"sort"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// A txn is one transaction (doc §3): planned in memory against the current
// state, then written in two steps with a flush after each.
//
// Planning runs with s.wmu and s.mu held exclusively: it reads the index,
// takes space from the space map, and queues writes, members to release
// and index changes. run then classifies the writes, does step 1 without
// s.mu (readers go on), and takes s.mu again for step 2 and for applying
// the index changes, so that readers never see a change before it is
// durable.
type txn struct {
	s       *Store
	diskEOA int64 // the end of archive on the device when the txn began
	saved   space // the space map when the txn began, to undo planning

	writes   []write   // in order; later writes win where they overlap
	forced   []write   // commit writes whatever their place
	released []*member // members this txn removes from the archive
	lost     []extent  // damaged regions this txn turns into free space (Repair)
	layouts  []extent  // the holes laid out (hole), for the record (record.entries)
	short    roomNeed  // the largest placement that found no room (room.go)
	touched  []kv.Key  // keys whose bindings the txn changes (touch)
	apply    []func()  // index changes, applied once the txn is durable

	// invisible are the byte ranges no reader sees in the archive as it is
	// on the device now: the filler of hole chunks this txn consumes (the
	// tail past diskEOA+512 is checked separately). Writes there are
	// stage writes.
	invisible []extent

	// zeros are invisible extents to zero in step 1.
	zeros []extent

	// placed counts the members placed; lones are the members placed by
	// Sets of values held in memory, in order, for chainable.
	placed int
	lones  []loneAppend
	hdr    []byte // the header placeMember queued last

	// fills are writes of the filler of holes this txn makes of small
	// members: they go with the commit writes in step 2, so that each
	// such hole is one contiguous write, but need no journal: a hole's
	// filler may hold anything, and step 2 only starts once the record
	// that makes the hole is durable.
	fills []write

	// deadKept are the superseded members (dead.go) the transaction
	// keeps although it touches their keys: its members take their space
	// (useDead), or its new member of the key lies after them (a
	// compaction move). noDead keeps its placements out of such space (a
	// copy from it, reserve.go).
	deadKept []*member
	noDead   bool
	// retired are the values this transaction supersedes (dead.go). A
	// transaction that retires one writes a journal record, even when it
	// is otherwise a lone append: the space of a superseded member
	// becomes stage space for later transactions, and the newest record
	// must not vouch for bytes there (its stage check would then fail at
	// recovery and discard it, doc §4) — a record written now is newer
	// than the one that wrote them.
	retired []*member

	// gates are the patching channels of the members this transaction
	// patches in place; end closes them.
	gates []*member

	// wrote is set once step 1 starts: from then on the device may hold
	// part of the transaction.
	wrote bool

	// stageBuf, commitBuf, earlyBuf and lateBuf are the memory of run's
	// lists of writes, kept across transactions (recycle).
	stageBuf, commitBuf, earlyBuf, lateBuf []write

	// streamed is data already staged on the device by streaming writes
	// (SetFrom, copies). When the transaction has a journal record, run
	// flushes it before writing the record, so that the record need not
	// vouch for it (it can be large: a CRC over it would cost as much as
	// the flush saves).
	streamed []extent
}

// A loneAppend is a member whose data the transaction holds in memory:
// its header as queued, and the CRC-32C of that data.
type loneAppend struct {
	m       *member
	hdr     []byte
	dataCRC uint32
}

// begin starts a transaction. The caller holds s.wmu and s.mu.
func (s *Store) begin() *txn {
	saved := s.sp
	saved.chunks = slices.Clone(s.sp.chunks)
	t := s.spare
	if t == nil {
		t = &txn{}
	}
	s.spare = nil
	t.s, t.diskEOA, t.saved = s, s.sp.eoa, saved
	return t
}

// recycle keeps t, which has ended and which nothing refers to any more,
// for the next begin: its lists keep their memory (emptied, so that they
// hold on to nothing), sparing a small transaction most of its
// allocations. The store's state never aliases them: what outlives a
// transaction is copied out of it (run, applyDurable). The caller holds
// s.wmu.
func (s *Store) recycle(t *txn) {
	*t = txn{
		writes: emptied(t.writes), forced: emptied(t.forced), released: emptied(t.released),
		layouts: emptied(t.layouts), touched: emptied(t.touched), apply: emptied(t.apply), lones: emptied(t.lones),
		stageBuf: emptied(t.stageBuf), commitBuf: emptied(t.commitBuf), earlyBuf: emptied(t.earlyBuf), lateBuf: emptied(t.lateBuf),
	}
	s.spare = t
}

// emptied returns l with no elements and its memory zeroed, to reuse.
func emptied[T any](l []T) []T {
	clear(l)
	return l[:0]
}

// put queues bytes to write at off; run decides whether each part is a
// stage or a commit write.
func (t *txn) put(off int64, data []byte) {
	if len(data) > 0 {
		t.writes = append(t.writes, write{off, data})
	}
}

// commit queues a write that goes in step 2 wherever it lies.
func (t *txn) commit(off int64, data []byte) {
	if len(data) > 0 {
		t.forced = append(t.forced, write{off, data})
	}
}

// release queues m (a member of the archive, live or shadowed) for removal:
// run turns its extent into a hole, or the new end of archive.
func (t *txn) release(m *member) { t.released = append(t.released, m) }

// consume marks hole chunks taken by a placement: their filler becomes
// stage space for this txn. Only chunks that are on the device count: a
// chunk this transaction laid out itself is there only once the
// transaction is applied. (Where such a chunk is the rest of a chunk on the
// device, its filler lies in that chunk's filler, which the placement
// that left the rest consumed.)
func (t *txn) consume(chunks []extent) {
	for _, c := range chunks {
		if f := filler(c); f.len > 0 && t.onDevice(c) {
			t.invisible = append(t.invisible, f)
		}
	}
	sortExtents(t.invisible)
}

// onDevice reports whether c is a hole chunk of the archive on the device
// (of the space map when the transaction began).
func (t *txn) onDevice(c extent) bool {
	cs := t.saved.chunks
	i := sort.Search(len(cs), func(i int) bool { return cs[i].off >= c.off })
	return i < len(cs) && cs[i] == c
}

// supersede cuts e out of the writes queued so far: bytes written to e
// after them (a stream's stage writes, issued at once) win.
func (t *txn) supersede(e extent) {
	cut := func(ws []write) []write {
		var out []write
		for i, w := range ws {
			we := extent{w.off, int64(len(w.data))}
			if !we.overlaps(e) {
				if out != nil {
					out = append(out, w)
				}
				continue
			}
			if out == nil {
				out = append(make([]write, 0, len(ws)+1), ws[:i]...)
			}
			if e.off > we.off {
				out = append(out, write{w.off, w.data[:e.off-we.off]})
			}
			if e.end() < we.end() {
				out = append(out, write{e.end(), w.data[e.end()-we.off:]})
			}
		}
		if out == nil {
			return ws
		}
		return out
	}
	t.writes = cut(t.writes)
	t.forced = cut(t.forced)
}

// hole queues the writes that lay out e as hole chunks (holeWrites) and
// records them in the space map; the journal record may hold e instead of
// the writes (record.entries).
func (t *txn) hole(e extent) {
	if e.len == 0 {
		return
	}
	for _, w := range holeWrites(e) {
		t.put(w.off, w.data)
	}
	t.layouts = append(t.layouts, e)
	t.s.sp.addHole(e)
}

// isInvisible reports whether [off, off+n) lies in space no reader of the
// current on-disk archive can see.
// Bytes the previous transaction's commit writes covered are not, while
// those writes are not flushed (s.pending): a replay of its record may
// write them again (doc §4).
func (t *txn) isInvisible(off, n int64) bool {
	if t.s.replayOverlaps(extent{off, n}) {
		return false
	}
	if off >= t.diskEOA+blockSize {
		return true
	}
	i := t.invisibleAt(off)
	return i < len(t.invisible) && t.invisible[i].off <= off && off+n <= t.invisible[i].end()
}

// replayOverlaps reports whether e meets bytes a recovery could write
// again: unflushed commit writes (Store.pending), or commit writes the
// journal would replay (Store.replayable).
func (s *Store) replayOverlaps(e extent) bool {
	for _, ps := range [][]extent{s.pending, s.replayable} {
		if slices.ContainsFunc(ps, e.overlaps) {
			return true
		}
	}
	return false
}

// invisibleAt returns the index of the first invisible extent that ends
// after off. t.invisible is sorted and its extents do not overlap.
func (t *txn) invisibleAt(off int64) int {
	return sort.Search(len(t.invisible), func(i int) bool { return t.invisible[i].end() > off })
}

// classify cuts [off, off+n) into runs that are invisible (stage space) or
// not, in order. The class can only change at the edges of the invisible
// space and of the pending extents, so each run goes from one edge to the
// next.
func (t *txn) classify(off, n int64, fn func(e extent, invisible bool)) {
	for n > 0 {
		next := off + n
		edge := func(b int64) {
			if b > off && b < next {
				next = b
			}
		}
		edge(t.diskEOA + blockSize)
		for _, ps := range [][]extent{t.s.pending, t.s.replayable} {
			for _, p := range ps {
				edge(p.off)
				edge(p.end())
			}
		}
		if i := t.invisibleAt(off); i < len(t.invisible) {
			edge(t.invisible[i].off)
			edge(t.invisible[i].end())
		}
		l := next - off
		fn(extent{off, l}, t.isInvisible(off, l))
		off, n = next, n-l
	}
}

// split cuts w into stage and commit parts.
func (t *txn) split(w write, stage, commit *[]write) {
	t.classify(w.off, int64(len(w.data)), func(e extent, inv bool) {
		part := write{e.off, w.data[e.off-w.off:][:e.len]}
		if inv {
			*stage = append(*stage, part)
		} else {
			*commit = append(*commit, part)
		}
	})
}

// zero queues zeroes over [off, off+n) without holding them in memory: the
// invisible parts are zeroed in step 1 (and again on replay, doc §4), the
// rest is queued as small writes.
func (t *txn) zero(off, n int64) {
	t.classify(off, n, func(e extent, inv bool) {
		if inv {
			// Zeroed in step 1 before the batch: the writes queued so
			// far must not land there (supersede).
			t.supersede(e)
			t.zeros = append(t.zeros, e)
		} else {
			t.put(e.off, make([]byte, e.len))
		}
	})
}

// finish processes the released members and the end of archive: it is the
// last step of planning.
func (t *txn) finish() {
	sp := &t.s.sp
	// The released members join the free space unlaid; the runs they
	// are in are laid out once each below (not member by member: a
	// dictionary of thousands of values in a row is one region).
	freed := slices.Clone(t.lost)
	for _, m := range t.released {
		freed = append(freed, m.extent())
	}
	sortExtents(freed)
	sp.chunks = append(sp.chunks, freed...)
	sortExtents(sp.chunks)
	sp.reclaimTail()
	t.normalize(freed)
	if sp.eoa != t.diskEOA {
		// The marker, and zeroes to the end of its sector: free space, and
		// no read-modify-write.
		end := min((sp.eoa+eoaSize+t.s.ss-1)/t.s.ss*t.s.ss, t.s.limit)
		t.put(sp.eoa, make([]byte, end-sp.eoa))
	}
}

// A protocol is how a transaction reaches the device (doc §3); run picks
// one in protocol, the one place that decides.
type protocol int

const (
	// protoStage: stage writes only (streamed data, say), nothing the
	// archive shows changes: step 1 without a record.
	protoStage protocol = iota
	// protoLone: lone appends vouched for by their chained headers, no
	// record: one write, one flush.
	protoLone
	// protoEarly: a record, with the header of an append at the end of
	// archive in step 1 (the journal says where the archive ends); the
	// other commit writes in step 2, flushed by the next transaction.
	protoEarly
	// protoTwoStep: a record, every commit write in step 2 (the first
	// transaction after an open, when no record says where the archive
	// ends).
	protoTwoStep
	// protoSpilled: a record too large for its slot, its commit bytes in
	// free space; step 2 is flushed at once and retired by a checkpoint.
	protoSpilled
	numProtocols
)

var protocolNames = [numProtocols]string{"stage-only", "lone-append", "early-header", "two-step", "spilled"}

func (p protocol) String() string { return protocolNames[p] }

// protocol picks the protocol of a transaction: chained when its writes
// are lone appends (chainable), rec its journal record or nil.
func (s *Store) protocol(chained bool, rec *record) protocol {
	switch {
	case chained:
		return protoLone
	case rec == nil:
		return protoStage
	case rec.spill != 0:
		return protoSpilled
	case s.journalBase:
		return protoEarly
	}
	return protoTwoStep
}

// inlineMax is the largest record kept inline in its slot; larger ones
// spill. Tests lower it (Store.inlineLimit) to drive the spilled protocol
// with small transactions.
func (s *Store) inlineMax() int64 {
	if s.inlineLimit > 0 {
		return min(s.inlineLimit, s.slotSize())
	}
	return s.slotSize()
}

// normalize lays out again, as one chunk, each run of adjacent hole chunks
// that readers would refuse (doc §2: two g headers in a row) and that one
// chunk can hold: adjacent removals, a removal next to a hole, what a
// placement left next to the rest of a run. The new structure is written
// over the old chunks' structure and filler (commit writes: the old chunks
// are visible until the transaction is applied). Runs one chunk cannot
// hold are left to compaction (compact.go), which the store runs after the
// transaction.
//
// freed (sorted) are extents in the map that are not laid out yet (the
// members the transaction releases): each run that holds one is laid out,
// as one chunk when it can be, else as a chain of chunks for compaction.
// A small run is written whole (its filler zeroed, fills): one request
// instead of three.
func (t *txn) normalize(freed []extent) {
	sp := &t.s.sp
	for _, r := range sp.runs() {
		i := sort.Search(len(freed), func(i int) bool { return freed[i].end() > r.off })
		unlaid := i < len(freed) && freed[i].overlaps(r)
		if !unlaid && (sp.valid(r) || !oneChunk(r)) {
			continue // laid out already; or a chain left to compaction
		}
		sp.drop(r)
		t.hole(r)
		if f := filler(r); r.len <= holeFill && f.len > 0 {
			t.fills = append(t.fills, write{f.off, make([]byte, f.len)})
		}
	}
}

// run writes the transaction (doc §3) and applies its index changes. It is
// called with s.wmu and s.mu held; it returns with s.mu held. op and k name
// the operation for errors.
func (t *txn) run(op string, k kv.Key) error {
	s := t.s
	if err := t.materializeLinks(); err != nil {
		t.undo()
		return err
	}
	t.finish()
	stage, commit := t.stageBuf[:0], t.commitBuf[:0]
	for _, w := range t.writes {
		t.split(w, &stage, &commit)
	}
	commit = append(commit, t.forced...)
	t.stageBuf, t.commitBuf = stage, commit
	if len(stage) == 0 && len(commit) == 0 && len(t.streamed) == 0 && len(t.zeros) == 0 && len(t.apply) == 0 && len(t.released) == 0 {
		return nil
	}

	// A lone append that a chained header vouches for needs no record
	// (doc §3).
	chained, chain := t.chainable(commit)

	// The journal record (doc §4), when the transaction changes what the
	// archive shows.
	var rec *record
	if !chained && (len(commit) > 0 || len(t.zeros) > 0) {
		stage = mergeWrites(stage)
		rec = &record{
			seq: s.seq + 1, prevPending: len(s.pending) > 0,
			commits: commit, zeros: t.zeros, layouts: t.layouts,
			eoaBefore: t.diskEOA, eoaAfter: s.sp.eoa,
		}
		rec.stage, rec.stageCRC = t.vouched(stage)
		if rec.headSize() > s.inlineMax() {
			off, ok := t.spillAt(stage, rec.commitLen())
			if !ok || rec.headSize()-rec.commitLen() > s.slotSize() {
				// No room for the commit bytes, or the record's tables
				// alone overrun the slot (they would reach into the
				// other slot, or past the device).
				t.undo()
				return kv.NoSpace(op, k)
			}
			rec.spill = off
		}
	}
	// The header of a member appended at the end of archive is written in
	// step 1 (doc §3): if step 1 does not complete, recovery ends the
	// archive before it again (this record discarded, or the one before it
	// newest). The other commit writes wait for step 2.
	proto := s.protocol(chained, rec)
	s.protocols[proto]++
	late := commit
	var early []write
	if proto == protoLone || proto == protoEarly {
		early, late = splitEarly(commit, t.diskEOA, t.earlyBuf[:0], t.lateBuf[:0])
		t.earlyBuf, t.lateBuf = early, late
	}

	// Step 1: the stage writes and the record.
	zs := s.zombieList()
	t.wrote = true
	if err := s.unlocked(func() error { return t.stepOne(rec, stage, early, zs) }); err != nil {
		// The device may hold any part of step 1, the record included:
		// only a new open knows which state it is in.
		s.failed = err
		t.undo()
		return kv.Storage(op, k, err)
	}
	if rec != nil {
		s.vouched = rec.stage
	}
	return t.applyDurable(op, k, rec, chained, chain, early, late)
}

// stepOne issues step 1 (doc §3): the stage writes, the header of an
// append when it may go early, the journal record and the zeroes; then
// it flushes. Streamed data is flushed before the record is written, so
// that the record need not vouch for it (a CRC over it could cost as much
// as the flush saves). The caller has released s.mu; zs are the zombies.
func (t *txn) stepOne(rec *record, stage, early []write, zs []*member) error {
	s := t.s
	var err error
	if rec != nil && len(t.streamed) > 0 {
		err = s.dev.Flush()
	}
	b := s.txnBatch()
	for _, w := range stage {
		b.Write(w.off, w.data)
	}
	for _, w := range early {
		b.Write(w.off, w.data)
	}
	if rec != nil {
		head, sp := rec.encodeIn(s.recBuf)
		s.recBuf = head[:0] // written by the end of this step
		b.Write(s.slotOff(int(rec.seq%2)), padSector(head, s.ss))
		if sp != nil {
			b.Write(rec.spill, padSector(sp, s.ss))
		}
	}
	if err == nil {
		err = s.capture(zs, stage)
	}
	if err == nil {
		err = s.capture(zs, early)
	}
	for _, e := range t.zeros {
		if err == nil {
			err = blockio.Zero(s.dev, e.off, e.len)
		}
	}
	if err == nil {
		err = b.Issue()
	}
	if err == nil {
		err = s.dev.Flush()
	}
	return err
}

// txnBatch returns the store's write batch, empty. The caller holds s.wmu.
func (s *Store) txnBatch() *blockio.Batch {
	if s.batch == nil {
		s.batch = blockio.NewBatch(s.dev)
	}
	s.batch.Reset()
	return s.batch
}

// unlocked runs fn with s.mu released, and takes it again however fn
// ends (a panic included).
func (s *Store) unlocked(fn func() error) error {
	s.mu.Unlock()
	defer s.mu.Lock()
	return fn()
}

// applyDurable is the rest of run once step 1 is durable: the store's
// journal state, step 2, and the index changes.
func (t *txn) applyDurable(op string, k kv.Key, rec *record, chained bool, chain uint32, early, late []write) error {
	s := t.s
	// The transaction is durable: its record, or its only writes, are
	// on the device. The flush also made the previous transaction's
	// commit writes durable.
	s.pending = s.pending[:0]
	if rec != nil {
		// The commit writes of step 1 are durable, but a replay of the
		// record writes them again: the next transaction must not stage
		// writes there either (normalize may have made such a block
		// filler, free space, in this very transaction).
		for _, w := range early {
			s.pending = append(s.pending, extent{w.off, int64(len(w.data))})
		}
	}
	if rec != nil {
		s.seq = rec.seq
		s.journalDirty = true
		s.journalBase = rec.spill == 0
		s.chain = rec.crc
		// Into the memory of the record two transactions back, which
		// nothing refers to any more (Store.commitExtents).
		commits := s.commitExtents[rec.seq%2][:0]
		for _, w := range rec.commits {
			commits = append(commits, extent{w.off, int64(len(w.data))})
		}
		s.commitExtents[rec.seq%2] = commits
		s.replayable = commits
		if rec.prevPending {
			s.replayBoth = append(append(s.replayBoth[:0], commits...), s.lastCommits...)
			s.replayable = s.replayBoth
		}
		s.lastCommits = commits
	}
	if chained {
		s.chain = chain
		s.journalDirty = true // the archive ends past the newest record's end
	}
	if len(late) > 0 || len(t.released) > 0 || rec != nil && rec.spill != 0 {
		if err := t.commitStep(rec, late); err != nil {
			s.failed = err
			return kv.Storage(op, k, err)
		}
	}
	for _, f := range t.apply {
		f()
	}
	return nil
}

// commitStep is step 2: the commit writes. They are flushed by the next
// transaction's step 1 (or by Close); until then the record vouches for
// them. A spilled record is not kept that long — the next transaction may
// stage writes over its spilled bytes — so its transaction flushes at once
// and writes a checkpoint (a record with no writes, which says where the
// archive ends) to the other slot, replacing the stale record there.
func (t *txn) commitStep(rec *record, commit []write) error {
	s := t.s
	for _, m := range t.released {
		s.zombify(m)
	}
	b := s.txnBatch()
	for _, w := range t.fills {
		b.Write(w.off, w.data)
	}
	for _, w := range commit {
		b.Write(w.off, w.data)
	}
	zs := s.zombieList()
	err := s.capture(zs, t.fills)
	if err == nil {
		err = s.capture(zs, commit)
	}
	if err == nil {
		err = b.Issue()
	}
	if err != nil {
		// The device may hold any mix of old and new commit sectors; the
		// journal sorts it out at the next open.
		return err
	}
	if rec != nil && rec.spill != 0 {
		return s.checkpoint(rec)
	}
	for _, w := range commit {
		s.pending = append(s.pending, extent{w.off, int64(len(w.data))})
	}
	return nil
}

// checkpoint retires the spilled record rec, whose commit writes were
// just issued: writeCheckpoint flushes them, then writes a checkpoint to
// the other slot. Once it is durable, the next transaction may write over
// rec's spilled bytes.
func (s *Store) checkpoint(rec *record) error {
	return s.writeCheckpoint(rec.eoaAfter)
}

// chainable decides whether the transaction consists of lone appends
// that commit without a journal record (doc §3): members with one-block
// headers and their data in memory (t.lones), and nothing else, placed one
// after the other from the end of archive, the first header being the only
// commit write; nothing removed, streamed or zeroed; and a durable record
// before them that says where the archive ends. It then tags each header
// with the CRC of its data and the chain that links it to the member
// before it (the first to the record or append before the transaction),
// and returns the last chain. The members of a group commit may come from
// different requests: an open that finds only some of them keeps a prefix
// of the group, requests none of which was acknowledged.
func (t *txn) chainable(commit []write) (bool, uint32) {
	s := t.s
	// The header, written with no record, must not lie where a recovery
	// would write again (Store.replayable).
	overReplay := len(commit) > 0 && slices.ContainsFunc(s.replayable, extent{commit[0].off, int64(len(commit[0].data))}.overlaps)
	ok := s.journalBase && !overReplay && len(t.lones) > 0 && len(t.lones) == t.placed &&
		len(t.released) == 0 && len(t.retired) == 0 && len(t.streamed) == 0 && len(t.zeros) == 0 &&
		len(commit) == 1 && commit[0].off == t.diskEOA && len(commit[0].data) == blockSize
	at := t.diskEOA
	for _, l := range t.lones {
		ok = ok && l.m.start == at && l.m.hdr == l.m.start && len(l.hdr) == blockSize
		at = l.m.end
	}
	if !ok {
		return false, 0
	}
	chain := s.chain
	for _, l := range t.lones {
		chain = chainNext(&s.chainScratch, chain, l.dataCRC, l.m.start)
		if !tarfmt.SetTag((*tarfmt.Block)(l.hdr), tarfmt.Tag{DataCRC: l.dataCRC, Chain: chain}) {
			return false, 0 // not ustar: every header is, but then this needs no tag
		}
	}
	return true, chain
}

// chainNext is the chain of a member at off with data CRC crc, written
// after the record or chained member whose chain (or record CRC) is prev.
// b is scratch memory for the function's input (Store.chainScratch).
func chainNext(b *[16]byte, prev, crc uint32, off int64) uint32 {
	binary.LittleEndian.PutUint32(b[0:], prev)
	binary.LittleEndian.PutUint32(b[4:], crc)
	binary.LittleEndian.PutUint64(b[8:], uint64(off))
	return crc32.Checksum(b[:], castagnoli)
}

// splitEarly parts the commit writes into those that lie in the block at
// eoa (the header of a member appended there), which may go in step 1,
// and the others. When another write touches that block too, all wait:
// their order must not change.
//
// The lists are appended to early and late as given (empty, with memory to
// reuse); when all wait, late is commit itself.
func splitEarly(commit []write, eoa int64, early, late []write) ([]write, []write) {
	blk := extent{eoa, blockSize}
	if !slices.ContainsFunc(commit, func(w write) bool { return extent{w.off, int64(len(w.data))}.overlaps(blk) }) {
		return early[:0], commit
	}
	for _, w := range commit {
		e := extent{w.off, int64(len(w.data))}
		switch {
		case e.off >= blk.off && e.end() <= blk.end():
			early = append(early, w)
		case e.overlaps(blk):
			return early[:0], commit
		default:
			late = append(late, w)
		}
	}
	return early, late
}

// vouched returns the parts of the (merged, sorted) stage writes that the
// archive shows once the transaction is applied, and the CRC-32C of their
// bytes in order: the stage extents of the record (doc §4). The filler of
// hole chunks and what lies from the end of archive on are left out: that
// is free space afterwards, which later transactions may overwrite. (Hole
// structure the transaction lays out in free space is in; the
// end-of-archive marker is rewritten by every replay.)
func (t *txn) vouched(stage []write) ([]extent, uint32) {
	sp := &t.s.sp
	limit := sp.eoa
	var out []extent
	crc := uint32(0)
	for _, w := range stage {
		lo, hi := w.off, min(w.off+int64(len(w.data)), limit)
		for lo < hi {
			// The first chunk whose filler ends after lo.
			i := sort.Search(len(sp.chunks), func(i int) bool { return filler(sp.chunks[i]).end() > lo })
			for i < len(sp.chunks) && filler(sp.chunks[i]).len == 0 {
				i++
			}
			next := hi
			if i < len(sp.chunks) {
				f := filler(sp.chunks[i])
				if f.len > 0 && f.off <= lo {
					lo = f.end()
					continue
				}
				if f.len > 0 && f.off < hi {
					next = f.off
				}
			}
			out = append(out, extent{lo, next - lo})
			crc = crc32.Update(crc, castagnoli, w.data[lo-w.off:next-w.off])
			lo = next
		}
	}
	return out, crc
}

// holeFill is the size up to which the hole a removed member leaves is
// written whole, its filler zeroed (fills): one request instead of two.
const holeFill = 64 << 10

// filler is the part of a hole chunk that is neither its header block nor
// the first or last block of its data (which hold the comment record's
// prefix and final newline): bytes no tar reader looks at. It is empty for
// chunks of fewer than three blocks.
func filler(c extent) extent {
	if c.len < 3*blockSize {
		return extent{c.off + c.len, 0}
	}
	return extent{c.off + 2*blockSize, c.len - 3*blockSize}
}

// gate makes readers of m wait until the transaction ends (member.patching).
// The caller holds s.mu.
func (t *txn) gate(m *member) {
	m.patching = make(chan struct{})
	t.gates = append(t.gates, m)
}

// end lets the readers the transaction held up go on: it is applied, or
// abandoned. The caller holds s.mu.
func (t *txn) end() {
	for _, m := range t.gates {
		close(m.patching)
		m.patching = nil
	}
	t.gates = nil
}

// undo restores the space map as it was before planning.
func (t *txn) undo() { t.s.sp = t.saved }

// spillAt finds room for n bytes of spilled commit data: past the end of
// archive and past every stage write, sector-aligned.
func (t *txn) spillAt(stage []write, n int64) (int64, bool) {
	off := max(t.s.sp.eoa+eoaSize, t.diskEOA+eoaSize)
	for _, e := range t.streamed {
		off = max(off, e.end())
	}
	for _, e := range t.zeros {
		off = max(off, e.end())
	}
	for _, w := range stage {
		off = max(off, w.off+int64(len(w.data)))
	}
	off = (off + t.s.ss - 1) / t.s.ss * t.s.ss
	if r := t.s.sp.resv; r != nil && off < r.end && off+n > r.start {
		// Not over a value streaming into its reservation (reserve.go).
		off = (r.end + t.s.ss - 1) / t.s.ss * t.s.ss
	}
	return off, off+n <= t.s.limit
}

// padSector returns b padded with zeroes to a whole number of sectors, so
// that writing it at a sector boundary needs no read-modify-write.
func padSector(b []byte, ss int64) []byte {
	if r := int64(len(b)) % ss; r != 0 {
		if n := len(b); int64(cap(b)-n) >= ss-r {
			b = b[:n+int(ss-r)]
			clear(b[n:])
		} else {
			b = append(b, make([]byte, ss-r)...)
		}
	}
	return b
}

// mergeWrites returns writes equivalent to ws (later ones winning where
// they overlap) that do not overlap, sorted by offset, so that their bytes
// are what the device holds after they are issued.
func mergeWrites(ws []write) []write {
	if len(ws) < 2 {
		return ws
	}
	type seq struct {
		write
		i int
	}
	sorted := make([]seq, len(ws))
	for i, w := range ws {
		sorted[i] = seq{w, i}
	}
	slices.SortStableFunc(sorted, func(a, b seq) int { return cmp64(a.off, b.off) })
	var out []write
	for i := 0; i < len(sorted); {
		// A cluster of writes that overlap one another.
		j, end := i+1, sorted[i].off+int64(len(sorted[i].data))
		for j < len(sorted) && sorted[j].off < end {
			end = max(end, sorted[j].off+int64(len(sorted[j].data)))
			j++
		}
		if j == i+1 {
			out = append(out, sorted[i].write)
			i = j
			continue
		}
		cl := slices.Clone(sorted[i:j])
		slices.SortFunc(cl, func(a, b seq) int { return a.i - b.i })
		start := sorted[i].off
		buf := make([]byte, end-start)
		for _, w := range cl {
			copy(buf[w.off-start:], w.data)
		}
		out = append(out, write{start, buf})
		i = j
	}
	return out
}

// holeWrites returns the writes that lay out e (block-aligned, not empty)
// as hole chunks (tarfmt.HoleWrites), in whole blocks: the filler next to a
// record prefix and to the final newline may be anything, and writing
// whole blocks spares a read-modify-write. A chunk of two blocks has its
// prefix and its newline in the same block. The journal format depends on
// these bytes (hole entries, journal.go).
func holeWrites(e extent) []write {
	hw, err := tarfmt.HoleWrites(e.off, e.len/blockSize)
	if err != nil {
		panic(fmt.Sprintf("kvtar: hole %v: %v", e, err)) // extents are block-aligned and positive by construction
	}
	var out []write
	var blk []byte
	blkOff := int64(-1)
	flush := func() {
		if blk != nil {
			out = append(out, write{blkOff, blk})
		}
		blk, blkOff = nil, -1
	}
	block := func(off int64) []byte {
		if off != blkOff {
			flush()
			blk, blkOff = make([]byte, blockSize), off
		}
		return blk
	}
	for _, w := range hw {
		switch w.Part {
		case tarfmt.HolePrefixPart:
			copy(block(w.Offset), w.Data)
		case tarfmt.HoleNewlinePart:
			block(w.Offset + 1 - blockSize)[blockSize-1] = '\n'
		default:
			flush()
			out = append(out, write{w.Offset, w.Data})
		}
	}
	flush()
	return out
}
