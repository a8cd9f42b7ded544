package kvtar

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// Store is the tar key-value store. It implements kv.RW; see the package
// documentation for the design.
type Store struct {
	dev      hw.Block
	clk      clock.PClock
	ss       int64 // sector size
	limit    int64 // end of the archive area: the journal area starts here
	jsize    int64 // size of the journal area
	readOnly bool
	// whyReadOnly says why a writable device is used read-only.
	whyReadOnly string
	// damage describes damage open found before the end of the archive
	// ("" none): see Damage.
	damage string

	// wmu serializes write transactions. A group leader holds it from
	// planning to acknowledgement (group.go).
	wmu sync.Mutex
	// batch is the write batch of the steps of transactions (txn.go),
	// reused from one to the next under wmu; nil until the first, and
	// again after a panic, which may have left it mid-issue, and when
	// s.dev changes.
	batch *blockio.Batch
	// spare is the transaction group commit ran last, kept with its lists'
	// memory for the next (begin, recycle); guarded by wmu.
	spare *txn
	// recBuf is the memory of the last journal record step 1 wrote, for
	// the next (txn.stepOne); guarded by wmu.
	recBuf []byte
	// chainScratch is chainNext's input, kept here so that it does not
	// escape to the heap at every lone append; guarded by wmu.
	chainScratch [16]byte
	// zeros are the sums of the last size Allocate gave (zerosSums),
	// guarded by wmu.
	zeros zerosSum

	// smu lets one value at a time stream into a reservation (reserve.go:
	// space.resv).
	smu sync.Mutex
	// qmu guards the queue of write requests and the leader flag.
	qmu     sync.Mutex
	queue   []*request
	leading bool

	// mu guards the index, the space map, the zombies and the state
	// below. Readers hold it shared to look up and pin; a writer holds it
	// exclusively while it plans and while it applies its commit (doc §6).
	mu      sync.RWMutex
	ix      *index
	sp      space
	zombies map[*member]struct{} // freed members that readers still hold
	// kept are shadowed members (replaced by later ones of the same name)
	// kept only because hard links use their data (links.go), with the
	// keys their names map to.
	kept map[*member]kv.Key
	// dead are the superseded members, by key (dead.go).
	dead map[kv.Key]*member
	// replayable are the extents a recovery would write again with the
	// journal as it is: the newest record's commit writes and, when that
	// record says its predecessor's were still pending, the
	// predecessor's (decideReplay) — flushed or not. Nothing may be
	// staged or appended there until a newer record exists
	// (txn.isInvisible, chainable). lastCommits are the newest record's
	// own commit extents.
	replayable, lastCommits []extent
	// commitExtents and replayBoth are the memory of lastCommits (the
	// commit extents of record n in commitExtents[n%2]: the other holds
	// those of the record before, which replayBoth copies when the
	// newest record says they were pending) and of replayable; reused,
	// as nothing else refers to them. Guarded by wmu.
	commitExtents [2][]extent
	replayBoth    []extent
	// vouched are the stage extents of the newest journal record: a
	// recovery checks their bytes against its CRC and discards the record
	// when they differ (doc §4), so nothing may overwrite them until a
	// newer record exists (deadUsable).
	vouched []extent
	// unexposed are the members of a foreign archive the store keeps but
	// does not expose (links.go).
	unexposed []*unexposed
	closed    bool
	// failed is set when a transaction failed after it started to write:
	// the device may hold a state the index does not describe, so writes
	// are refused until the store is opened again (which recovers).
	failed error
	// journalDirty reports that the journal's newest record may not say
	// where the archive ends (a record with commit writes, chained
	// appends after it, a torn slot): Close writes a checkpoint.
	journalDirty bool
	// seq is the number of the last journal record written (doc §4).
	seq uint64
	// journalBase reports that record seq is durable, will stay readable,
	// and says where the archive ends on the device: an append may then
	// commit in step 1 (doc §3).
	journalBase bool
	// chain is the CRC of record seq, or the chain of the last chained
	// append after it (doc §3).
	chain uint32
	// verifyFrom and verifySeed are what the journal told open: members
	// from verifyFrom on must be chained appends whose chain starts at
	// verifySeed (verifyFrom < 0: none).
	verifyFrom int64
	verifySeed uint32
	// knownEnd is where the journal says the archive ends (-1: it says
	// nothing): a zero block before it is damage, not the end (scan).
	knownEnd int64
	// repair is set by Repair: open turns damaged regions into holes
	// (repaired lists what it found) instead of opening read-only.
	repair   bool
	repaired []Problem

	// heads are the device buffers Get reads the start of a large value
	// into (read.go); chunks those of streamed values (write.go).
	heads, chunks bufPool
	// ahead counts the chunks the readers' read-ahead holds, at most
	// raBudget (readahead.go).
	ahead atomic.Int64
	// protocols counts the transactions run by each protocol (txn.go),
	// guarded by s.mu: tests check that they drove every one.
	protocols [numProtocols]int
	// inlineLimit, when positive, lowers the size from which a journal
	// record spills (tests only; see inlineMax).
	inlineLimit int64

	// pending are the byte ranges of the last transaction's commit
	// writes while they are not yet flushed (doc §3): the next
	// transaction does not stage writes there, and its record asks for the
	// last one to be replayed first.
	pending []extent
}

var _ kv.RW = (*Store)(nil)

// Errors of New and Format, wrapped in a *kv.Error with Op "open" or
// "format" (kind kv.ErrInvalidArgument or kv.ErrStorage).
var (
	// ErrGeometry: the device's sector size is not a multiple of 512.
	ErrGeometry = errors.New("kvtar: sector size is not a multiple of 512")
	// ErrTooSmall: the device cannot hold an archive and the journal.
	ErrTooSmall = errors.New("kvtar: device too small")
)

// MinDeviceSize is the smallest device New opens writable (a smaller one
// holding a whole archive opens read-only): room for a few
// members, the end-of-archive marker and the journal area.
const MinDeviceSize = 64 << 10

// New opens the store on dev, stamping modification times with clk: the
// functor application of tar-mirage's Make_KV_RW(CLOCK)(BLOCK). dev holds a
// tar archive (any archive tar writes, SPEC §4 Invariant C) or zeroes (an
// empty archive). On a writable device New recovers from a crash first
// (doc §5). The store takes dev over: Close closes it.
func New(clk clock.PClock, dev hw.Block) (*Store, error) {
	s, err := newStore(clk, dev)
	if err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func newStore(clk clock.PClock, dev hw.Block) (*Store, error) {
	if clk == nil || dev == nil {
		return nil, &kv.Error{Op: "open", Err: kv.ErrInvalidArgument, Detail: "nil clock or device"}
	}
	info := dev.Info()
	ss := int64(info.SectorSize)
	if ss <= 0 || ss%blockSize != 0 {
		return nil, &kv.Error{Op: "open", Err: kv.ErrInvalidArgument, Detail: fmt.Sprintf("sector size %d", ss), Cause: ErrGeometry}
	}
	size := info.Size()
	if size < blockSize {
		return nil, &kv.Error{Op: "open", Err: kv.ErrInvalidArgument,
			Detail: fmt.Sprintf("%d bytes, need at least %d", size, MinDeviceSize), Cause: ErrTooSmall}
	}
	js := journalSize(size, ss)
	why := ""
	if size < MinDeviceSize {
		// Too small for the journal and room to write: an archive that
		// is merely small (a tar file) is read, not written (open
		// fails when it is cut short).
		js, why = 0, fmt.Sprintf("the device holds %d bytes, less than the smallest store that takes writes (%d bytes); "+
			"to write, copy the archive to a larger image (e.g. 'truncate -s 64K IMAGE' on a copy)", size, MinDeviceSize)
	}
	if !info.ReadOnly && why == "" {
		// The store is the device's only writer: the sectors its last
		// writes ended in are in memory for the next append's
		// read-modify-write.
		dev = blockio.Cached(dev)
	}
	return &Store{
		dev:         dev,
		clk:         clk,
		ss:          ss,
		limit:       size - js,
		verifyFrom:  -1,
		knownEnd:    -1,
		jsize:       js,
		readOnly:    info.ReadOnly || why != "",
		whyReadOnly: why,
		zombies:     map[*member]struct{}{},
		kept:        map[*member]kv.Key{},
		dead:        map[kv.Key]*member{},
		heads:       bufPool{size: headChunk, keep: 2},
		chunks:      bufPool{size: streamChunk, keep: 2 * streamBuffers},
	}, nil
}

// Format makes dev an empty store: it writes the end-of-archive marker at
// the start of the device and clears the journal area, then flushes. Any
// data on the device is lost; callers that care (the CLI) check first.
func Format(dev hw.Block) error {
	if dev != nil && dev.Info().Size() < MinDeviceSize {
		return &kv.Error{Op: "format", Err: kv.ErrInvalidArgument,
			Detail: fmt.Sprintf("%d bytes, need at least %d", dev.Info().Size(), MinDeviceSize), Cause: ErrTooSmall}
	}
	s, err := newStore(clock.System{}, dev)
	if err != nil {
		return kv.WithOp(err, "format")
	}
	if s.readOnly {
		return kv.ReadOnly("format", kv.Root)
	}
	b := blockio.NewBatch(dev)
	b.Write(0, make([]byte, eoaSize))
	// Both journal slots lose their records: a record of the archive
	// that was there would say it ends further on (scan would take the
	// new end-of-archive marker for damage).
	b.Write(s.slotOff(0), make([]byte, blockSize))
	b.Write(s.slotOff(1), make([]byte, blockSize))
	if err := b.Issue(); err != nil {
		return kv.Storage("format", kv.Root, err)
	}
	b.Release()
	if err := dev.Flush(); err != nil {
		return kv.Storage("format", kv.Root, err)
	}
	return nil
}

// Close writes a checkpoint that says where the archive ends (doc §4:
// the next open tells damage from the end by it), flushes and closes the
// device. Later calls
// fail with kv.ErrClosed; Close itself is idempotent.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.compact() // what readers held up (compact.go)
	s.closed = true
	dirty := s.journalDirty && s.failed == nil && !s.readOnly
	s.mu.Unlock()
	var err error
	if dirty {
		err = s.writeCheckpoint(s.sp.eoa)
	} else if !s.readOnly {
		err = s.dev.Flush()
	}
	// The device's buffers go back to it before it closes.
	if s.batch != nil {
		s.batch.Release()
	}
	s.heads.drain(s.dev)
	s.chunks.drain(s.dev)
	if cerr := s.dev.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return kv.Storage("close", kv.Root, err)
	}
	return nil
}

// writeCheckpoint makes every write so far durable, then writes a
// checkpoint — a record with no writes that says the archive ends at eoa —
// as the next record, and flushes it (doc §4). The flush before matters:
// were the checkpoint durable before the commit writes it follows, a
// crash could leave it the newest record over torn commit writes, and
// recovery would replay nothing. The record it replaces in its slot is two
// transactions old, no longer needed.
func (s *Store) writeCheckpoint(eoa int64) error {
	if err := s.dev.Flush(); err != nil {
		return err
	}
	cp := &record{seq: s.seq + 1, eoaBefore: eoa, eoaAfter: eoa}
	head, _ := cp.encode()
	b := blockio.NewBatch(s.dev)
	b.Write(s.slotOff(int(cp.seq%2)), padSector(head, s.ss))
	if err := b.Issue(); err != nil {
		return err
	}
	b.Release()
	if err := s.dev.Flush(); err != nil {
		return err
	}
	s.seq, s.journalBase, s.chain = cp.seq, true, cp.crc
	s.pending, s.journalDirty, s.vouched = nil, false, nil
	s.replayable, s.lastCommits = nil, nil
	return nil
}

// largest is the size of the largest value (its key up to 100 bytes) that
// fits now (space.largest), -1 when none does. The caller holds s.mu.
func (s *Store) largest() int64 {
	// A value header's length depends on the size only through whether it
	// is empty (three blocks) and whether it fits the ustar size field
	// (11 octal digits; else a PAX size record): one encoding per class.
	k := kv.MustKey("/" + strings.Repeat("k", 99))
	lens := map[[2]bool]int64{}
	hdr := func(size int64) int64 {
		class := [2]bool{size == 0, size >= 1<<33}
		if n, ok := lens[class]; ok {
			return n
		}
		h, err := valueHeader(k, size, time.Unix(0, 0))
		n := int64(len(h))
		if err != nil {
			n = blockSize
		}
		lens[class] = n
		return n
	}
	return s.sp.largest(hdr, s.memberAlign, s.avoid())
}

// Damage describes the damage the open found before the end of the
// archive — regions that do not decode (a zeroed or garbled header) where
// the journal says the archive goes on — or is "" when there is none. The
// store then serves what it found after the damage, read-only; Check
// reports each region, Repair turns them into free space.
func (s *Store) Damage() string { return s.damage }

// slotSize is the size of a journal slot: half the journal area, in whole
// sectors (the area holds at least two).
func (s *Store) slotSize() int64 { return s.jsize / 2 / s.ss * s.ss }

// slotOff is the offset of journal slot i (0 or 1).
func (s *Store) slotOff(i int) int64 { return s.limit + int64(i)*s.slotSize() }

// Info describes the store for status pages: the device and the space.
type Info struct {
	Device hw.Info
	Size   int64 // bytes of the archive area
	Free   int64 // bytes unused: tail and holes
	// Largest is the size of the largest value (with a key of up to 100
	// bytes) that fits now: a Set of that many bytes finds room, and of
	// fewer bytes too, but in the rare case that every hole it could take
	// is one block longer than it needs and the tail is full (a hole
	// takes two blocks). 0 when none fits.
	Largest int64
	Values  int   // number of values
	End     int64 // offset of the end-of-archive marker
	// WhyReadOnly says why writes are refused on a writable device ("":
	// they are not, or the device is read-only).
	WhyReadOnly string
	Damage      string // Store.Damage
}

// Stat returns the store's Info.
func (s *Store) Stat() (Info, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Info{}, kv.Closed("stat", kv.Root)
	}
	return Info{
		Device:      s.dev.Info(),
		Size:        s.limit,
		Free:        s.free(),
		Largest:     max(0, s.largest()),
		Values:      s.ix.count,
		End:         s.sp.eoa,
		WhyReadOnly: s.whyReadOnly,
		Damage:      s.damage,
	}, nil
}
