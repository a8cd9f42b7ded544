package kvtar

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/tarstore/tarstore/kv"
)

// Group commit (doc §6). Each write operation is a request: the keys it
// touches and a plan function that queues its writes into a transaction.
// Requests queue; the first writer to find no leader leads: it takes every
// queued request, plans them one after the other into one transaction —
// deferring to the next round any request whose keys overlap those of a
// request already planned, since plans read the index as it was before the
// transaction — and runs it: one flush pair for the whole group. Then it
// hands the lead to the oldest waiting request, if any, and returns.
type request struct {
	op   string
	keys []kv.Key  // the keys whose subtrees the operation reads or changes; keys[0] names errors
	key  [1]kv.Key // the memory of keys when there is one
	plan func(t *txn) error
	err  error
	lead bool          // set when the request is to lead the next group
	room bool          // set once the store made room for it (room.go)
	own  *reservation  // the reservation the request commits (reserve.go), if any
	done bool          // set by finish
	wake chan struct{} // closed when the request is done or leads; made for a request that waits
}

// write runs one write operation through group commit. A write that found
// no room because a value streams into a reservation at the tail waits
// for the reservation to end and is planned again (reserve.go).
func (s *Store) write(op string, keys []kv.Key, plan func(t *txn) error) error {
	return s.submitUntilPlanned(&request{op: op, keys: keys, plan: plan})
}

// write1 is write for an operation on one key, which the request holds.
func (s *Store) write1(op string, k kv.Key, plan func(t *txn) error) error {
	r := &request{op: op, key: [1]kv.Key{k}, plan: plan}
	r.keys = r.key[:]
	return s.submitUntilPlanned(r)
}

// submitUntilPlanned submits r again, as new, each time it waited for a
// reservation, and returns its error.
func (s *Store) submitUntilPlanned(r *request) error {
	for {
		err := s.submit(r)
		var w *waitReservation
		if !errors.As(err, &w) {
			return err
		}
		<-w.done
		*r = request{op: r.op, keys: r.keys, key: r.key, plan: r.plan}
	}
}

// A waitReservation is the outcome of a request that found no room while a
// value streams into a reservation: it is planned again once done is
// closed.
type waitReservation struct{ done chan struct{} }

func (w *waitReservation) Error() string { return "kvtar: waiting for a reservation" }

// submit runs request r through group commit and returns its error.
func (s *Store) submit(r *request) error {
	s.qmu.Lock()
	lead := !s.leading
	if lead {
		s.leading = true
		r.lead = true
	} else {
		r.wake = make(chan struct{})
	}
	s.queue = append(s.queue, r)
	s.qmu.Unlock()
	if !lead {
		<-r.wake // r.lead and r.err were set before the close
		if !r.lead {
			return r.err
		}
	}
	s.qmu.Lock()
	batch := s.queue
	s.queue = nil
	s.qmu.Unlock()
	for len(batch) > 0 {
		batch = s.commitGroup(batch)
	}
	s.qmu.Lock()
	if len(s.queue) > 0 {
		next := s.queue[0]
		next.lead = true
		close(next.wake)
	} else {
		s.leading = false
	}
	s.qmu.Unlock()
	return r.err
}

// commitGroup plans and runs one transaction for the requests of batch that
// do not conflict, finishes them, and returns the others.
//
// A panic while the group is planned or run (a bug, or a device driver
// that panics) fails every request of the batch with kv.ErrStorage
// instead of unwinding through the leader: the leader still hands the lead
// on, and no writer waits forever. When the panic came before step 1, no
// write of the transaction reached the device (streamed data lies in free
// space only) and the store stays usable: the space map is restored and
// the index was not changed. From step 1 on, the device may hold part of
// the transaction and the index part of its changes: the store fails
// (later writes get kv.ErrStorage until it is opened again, which
// recovers); reads go on.
func (s *Store) commitGroup(batch []*request) (deferred []*request) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *txn
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		err := fmt.Errorf("%w: %v\n%s", errPanic, p, debug.Stack())
		s.batch = nil // it may hold writes, or requests in flight
		if t != nil && t.wrote {
			s.failed = err
		} else if t != nil {
			t.undo()
		}
		for _, r := range batch {
			if !r.done {
				r.finish(kv.Storage(r.op, r.keys[0], err))
			}
		}
		deferred = nil
	}()
	first := batch[0]
	if err := s.writable(first.op, first.keys[0]); err != nil {
		for _, r := range batch {
			r.finish(reword(err, r))
		}
		return nil
	}
	t = s.begin()
	defer t.end() // after run, or after a plan that failed (its gates too)
	var planned, retry []*request
	var needs []roomNeed
	var keys []kv.Key
	for _, r := range batch {
		if conflicts(r.keys, keys) {
			deferred = append(deferred, r)
			continue
		}
		if k, ok := s.streamKey(); ok && r.own != s.sp.resv && conflicts(r.keys, []kv.Key{k}) {
			// A value streams into the space of k's superseded member:
			// the request would release that space; it waits for the
			// stream to commit (dead.go).
			r.finish(&waitReservation{s.sp.resv.done})
			continue
		}
		mark := t.mark()
		t.short = roomNeed{}
		if err := r.plan(t); err != nil {
			t.rollback(mark)
			if errors.Is(err, kv.ErrNoSpace) && t.short.n > 0 && s.sp.resv != nil && r.own != s.sp.resv {
				// The tail ends at a reservation: the request waits for
				// it to end (write).
				r.finish(&waitReservation{s.sp.resv.done})
				continue
			}
			if errors.Is(err, kv.ErrNoSpace) && !r.room && t.short.n > 0 && s.free() >= t.short.n {
				// Free space enough, but not where the member can go:
				// the store makes room after this group, and the
				// request is planned again (room.go). Its keys stay
				// taken, so that later requests on them keep their
				// order.
				r.room = true
				retry, needs = append(retry, r), append(needs, t.short)
				keys = append(keys, r.keys...)
				continue
			}
			r.finish(err)
			continue
		}
		planned = append(planned, r)
		keys = append(keys, r.keys...)
	}
	if len(planned) > 0 {
		err := t.run(first.op, first.keys[0])
		t.end()
		if err == nil {
			// Regions one hole chunk cannot hold are closed before the
			// writes return (compact.go). The group's transaction is
			// durable whatever compaction meets: a failed round fails
			// the store, and later writes report it.
			s.compact()
		}
		for _, r := range planned {
			r.finish(reword(err, r))
		}
	}
	if len(retry) > 0 {
		t.end()
		for _, need := range needs {
			s.makeRoom(need)
		}
		s.compact()
		deferred = append(retry, deferred...)
	}
	t.end()
	s.recycle(t) // the deferred end finds nothing left to do
	return deferred
}

// errPanic is the cause of the errors of requests whose transaction
// panicked.
var errPanic = errors.New("kvtar: internal error (panic) in a write transaction")

func (r *request) finish(err error) {
	r.done = true
	r.err = err
	if !r.lead {
		close(r.wake)
	}
}

// writable checks that the store takes writes. The caller holds s.mu.
func (s *Store) writable(op string, k kv.Key) error {
	switch {
	case s.closed:
		return kv.Closed(op, k)
	case s.readOnly:
		if s.whyReadOnly != "" {
			return &kv.Error{Op: op, Key: k, Err: kv.ErrReadOnly, Detail: s.whyReadOnly}
		}
		return kv.ReadOnly(op, k)
	case s.failed != nil:
		return kv.Storage(op, k, fmt.Errorf("an earlier write failed, reopen the store: %w", s.failed))
	case s.sp.eoa+eoaSize > s.limit:
		return kv.NoSpace(op, k)
	}
	return nil
}

// conflicts reports whether a key of ks lies in the subtree of a key of
// others, or the other way round.
func conflicts(ks, others []kv.Key) bool {
	for _, a := range ks {
		for _, b := range others {
			if a.HasPrefix(b) || b.HasPrefix(a) {
				return true
			}
		}
	}
	return false
}

// reword reports a group's error under each request's own operation and
// key.
func reword(err error, r *request) error {
	if err == nil {
		return nil
	}
	var e *kv.Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	c.Op, c.Key = r.op, r.keys[0]
	return &c
}

// A txnMark is the state of a transaction before one request's plan, to
// roll the request back when its plan fails.
type txnMark struct {
	sp                               space
	invisible                        []extent
	writes, forced                   []write // cloned: a stream may cut them (supersede)
	released, apply, streamed, zeros int
	placed                           int
	lones                            int
	touched                          int
	deadKept, retired                int
}

func (t *txn) mark() txnMark {
	sp := t.s.sp
	sp.chunks = slices.Clone(sp.chunks)
	return txnMark{sp: sp, invisible: slices.Clone(t.invisible),
		writes: slices.Clone(t.writes), forced: slices.Clone(t.forced), released: len(t.released), apply: len(t.apply),
		streamed: len(t.streamed), zeros: len(t.zeros), placed: t.placed, lones: len(t.lones), touched: len(t.touched), deadKept: len(t.deadKept), retired: len(t.retired)}
}

func (t *txn) rollback(m txnMark) {
	t.s.sp = m.sp
	t.writes = m.writes
	t.forced = m.forced
	t.released = t.released[:m.released]
	t.apply = t.apply[:m.apply]
	t.invisible = m.invisible
	t.streamed = t.streamed[:m.streamed]
	t.zeros = t.zeros[:m.zeros]
	t.placed, t.lones = m.placed, t.lones[:m.lones]
	t.touched = t.touched[:m.touched]
	t.deadKept = t.deadKept[:m.deadKept]
	t.retired = t.retired[:m.retired]
}
