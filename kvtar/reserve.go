package kvtar

import (
	"io"
	"time"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// Streaming outside the write lock (doc §6). A large value read from a
// slow source (a network body) must not hold the store-wide write lock
// while it arrives: every other write would wait for it. So SetFrom
// reserves the value's space past the end of archive, streams the data
// there with no lock held (no reader sees that space, and no other
// transaction writes there), and only then joins a group to commit: the
// member's header goes at the end of archive as it is then.
//
// The reservation leaves a slack of reserveSlack bytes between the end of
// archive and the value's data: other writes go on meanwhile, into holes
// and into that slack (the tail ends at the reservation: space.tailEnd).
// At commit the member's header goes right before its data, and what the
// other writes left of the slack, from the end of archive to the header,
// becomes one hole chunk (or, were it one block, the header grows by that
// block): whatever they took, the archive stays as readers require (doc
// §2). Where the slack is used up, writes that need the tail wait for the
// reservation to end (group.go). Should the end of archive move back so
// far meanwhile that the space would be larger than one hole chunk
// (removals at the tail), the value is copied to a fresh placement at
// commit instead.
//
// One value streams this way at a time (s.smu); a stream that finds no
// room at the tail streams inside the lock as before (txn.stream).

// reserveSlack is the space a reservation leaves for other writes before
// the value's data.
const reserveSlack = 448 << 10

// maxGap is the largest space a committed reservation may leave before
// its header: one hole chunk (doc §2).
const maxGap = tarfmt.MaxHoleChunkData + blockSize

// A reservation is the space a value streams into outside the lock.
type reservation struct {
	start   int64         // where the tail ends meanwhile (space.resv); in dead's space, where the header goes
	dataOff int64         // the value's data, sector-aligned
	end     int64         // the end of the value's padded data
	done    chan struct{} // closed when the reservation ends
	// dead is the superseded member of key whose space the value streams
	// into (dead.go), instead of past the end of archive; nil when none.
	dead *member
	key  kv.Key
}

// setStreamed is SetFrom of a value larger than readFirst: streamed into a
// reservation outside the lock when the tail has room, else in the lock.
func (s *Store) setStreamed(op string, k kv.Key, r io.Reader, size int64) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	res, err := s.reserve(op, k, size)
	if err != nil {
		return err
	}
	if res == nil {
		return s.set(op, k, r, size, nil)
	}
	defer s.unreserve(res)
	crc, dg, err := s.copyIn(op, k, res.dataOff, r, size, func(ws ...write) []write { return ws })
	if err != nil {
		return err
	}
	return s.submit(&request{op: op, keys: []kv.Key{k}, plan: s.planReserved(op, k, res, size, crc, dg), own: res, wake: make(chan struct{})})
}

// reserve reserves the space of a value of size bytes for k past the end
// of archive, or returns nil when the tail has no room for it (or for the
// slack before it). It fails when the store takes no writes or k cannot
// be bound to a value, before any byte of the value is read.
func (s *Store) reserve(op string, k kv.Key, size int64) (*reservation, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(op, k); err != nil {
		return nil, err
	}
	if _, err := s.checkTarget(op, k); err != nil {
		return nil, err
	}
	if size > s.limit {
		return nil, nil
	}
	if res := s.reserveDead(k, size); res != nil {
		s.sp.resv = res
		return res, nil
	}
	start := s.sp.eoa
	for _, a := range s.avoid() {
		start = max(start, a.end()) // readers' extents past the end of archive
	}
	align := s.memberAlign(size)
	dataOff := alignUp(start+reserveSlack+eoaSize+3*blockSize, 0, align)
	end := dataOff + size + tarfmt.PadLen(size)
	if end+eoaSize > s.limit {
		return nil, nil
	}
	res := &reservation{start: dataOff - 3*blockSize, dataOff: dataOff, end: end, done: make(chan struct{})}
	s.sp.resv = res
	return res, nil
}

// reserveDead reserves the space of k's superseded member for a value of
// size bytes, when the value fits there (dead.go); else it returns nil.
func (s *Store) reserveDead(k kv.Key, size int64) *reservation {
	d := s.dead[k]
	if !s.deadUsable(d) {
		return nil
	}
	hdr, err := valueHeader(k, size, s.now())
	if err != nil {
		return nil
	}
	h := int64(len(hdr))
	p, ok := s.fitDead(d, h+size+tarfmt.PadLen(size), h, s.memberAlign(size))
	if !ok {
		return nil
	}
	dataOff := p.off + h + p.pad
	if dataOff < d.dataOff {
		// The value streams with no transaction: it must not write over
		// d's header, which the archive shows until the commit.
		return nil
	}
	return &reservation{start: p.off, dataOff: dataOff, end: dataOff + size + tarfmt.PadLen(size), done: make(chan struct{}), dead: d, key: k}
}

// unreserve ends res: the tail reaches the end of the archive area again,
// and writes that waited for it go on.
func (s *Store) unreserve(res *reservation) {
	s.wmu.Lock()
	s.mu.Lock()
	s.sp.resv = nil
	s.mu.Unlock()
	s.wmu.Unlock()
	close(res.done)
}

// planReserved returns the plan that commits the value streamed into res:
// its header right before the data, sealed with crc (and digest dg, when
// not nil).
func (s *Store) planReserved(op string, k kv.Key, res *reservation, size int64, crc uint32, dg *digest) func(t *txn) error {
	return func(t *txn) error {
		n, err := s.checkTarget(op, k)
		if err != nil {
			return err
		}
		mtime := s.now()
		hdr, p, ok, err := s.reservedPlacement(op, k, res, size, mtime)
		if err != nil {
			return err
		}
		var m *member
		if ok {
			m = t.putMember(p, hdr, size)
			// The data is on the device already: flushed before the
			// journal record (stepOne), as a stream's.
			t.streamed = append(t.streamed, extent{res.dataOff, size})
			t.seal(m, hdr, crc, dg)
		} else {
			// The value moves to a placement of its own, copied from
			// where it streamed (no reader sees that space; nor does
			// the placement take it: noDead).
			t.noDead = res.dead != nil
			if m, err = t.place(op, k, size, mtime); err != nil {
				return err
			}
			src := &member{dataOff: res.dataOff, size: size, dataSize: size, crc: crc, hasCRC: true}
			src.digest.Store(dg)
			if err := t.copyPatched(op, k, src, m, 0, nil); err != nil {
				return err
			}
		}
		m.mtime = mtime
		t.replaceValue(n, k, m)
		t.bind(k, m)
		return nil
	}
}

// reservedPlacement returns the header of the value streamed into res and
// the placement that puts it right before the data; ok is false when there
// is none (the value is copied then).
//
// Past the end of archive, the space from the end of archive to the header
// becomes a hole, or a block more of header where it would be one block (a
// header that could not grow by one is shorter than the space by more:
// reserve leaves at least five blocks); should the end of archive have
// moved back so far meanwhile that the space is larger than one hole chunk,
// there is none. In a superseded member's space, the header goes where
// reserveDead placed it, unless the member was released meanwhile, or the
// header's size changed.
func (s *Store) reservedPlacement(op string, k kv.Key, res *reservation, size int64, mtime time.Time) (hdr []byte, p placement, ok bool, err error) {
	encode := func(blocks int64) error {
		if hdr, err = encodeMember(k, false, size, mtime, blocks); err != nil {
			err = &kv.Error{Op: op, Key: k, Err: kv.ErrInvalidArgument, Detail: "cannot encode the tar header", Cause: err}
		}
		return err
	}
	if encode(0) != nil {
		return nil, placement{}, false, err
	}
	before := s.sp.eoa // where the space before the header starts
	if res.dead != nil {
		if s.dead[k] != res.dead {
			return hdr, placement{}, false, nil
		}
		before = res.start
	}
	gap := res.dataOff - int64(len(hdr)) - before
	if gap == blockSize && padOK(int64(len(hdr)), blockSize) {
		if encode(int64(len(hdr))/blockSize+1) != nil {
			return nil, placement{}, false, err
		}
		gap = 0
	}
	off := res.dataOff - int64(len(hdr))
	if res.dead != nil {
		return hdr, placement{off: off, from: res.dead.extent(), dead: res.dead}, gap == 0, nil
	}
	return hdr, placement{off: off, tail: true}, gapOK(gap) && gap <= maxGap, nil
}
