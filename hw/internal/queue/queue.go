// Package queue is the request machinery hw/virtio and hw/nvme share: a
// session's tag pool with one waiter per tag, completion by interrupts or
// by polling, per-request timeouts, and the death of a session.
//
// A Queue serves one session of a driver: the device as brought up once,
// with its rings and its request memory. A tag names one request in flight
// — a virtio slot whose descriptor chain carries it as token, an NVMe
// command identifier — and indexes the driver's own per-tag memory. The
// driver keeps its protocol (descriptors, SQE/CQE); the Queue keeps who
// waits for what:
//
//	tag, err := q.Acquire()         // a free tag, or why the session died
//	err = q.Submit(tag, fill, post) // fill the tag's memory; post places it on the device's ring
//	c, err := q.Wait(tag, timedOut) // its completion, or why the session died
//	q.Release(tag)                  // only after a completion: see below
//
// Completions are found by the driver's Reap function, which the Queue
// calls with its lock held (so one reaper runs at a time, and Reap may
// touch the ring without a lock of its own) and which hands each
// completion to the waiter of its tag; completions may come in any order.
// Reap runs on the session's completion goroutine (Start), and — with
// Config.RequesterReaps — on the requesting goroutine right after it
// submitted (within Config.Reapers), so that a quick completion needs no
// hand-off to a goroutine that may run on another CPU. The completion
// goroutine waits between reaps in Config.Wait when the device interrupts
// (an eventfd, or a transport's own pause); without Wait it polls: it
// yields the processor between reaps for SpinPolls reaps after the last
// activity, then sleeps PollPause between reaps and calls Config.Check
// every CheckPolls of them, and with nothing in flight it sleeps until the
// next submission; while a requester reaps, it sleeps too, so that two
// goroutines do not both keep a CPU busy for the same completions.
//
// A session dies once, with the first cause: Fail (the driver's, or the
// Queue's own when Reap, Wait or Check fails), a request that took longer
// than Config.Timeout, or Close. Every request in flight then fails with
// that cause; tags whose requests failed are never released, since the
// device may still write their memory; Config.Died runs once, after that;
// and every later Acquire or Submit fails with the cause. A driver
// reconnects by starting a new session with a new Queue.
//
// The driver's per-tag memory is touched only inside Access (and Submit's
// prepare), which fail once Unmap was called: a driver that unmaps a dead
// session's memory (vhost-user closing its memfd, NVMe releasing DMA memory
// after a controller reset) calls Unmap first, so that no request touches
// the memory after it is gone.
//
// Current holds a Device's session across its deaths: the next request
// after one starts a new session (a reconnect, a controller reset), one at
// a time, refuses one whose geometry changed, and stops at Close.
package queue

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotInFlight is the error a completion for a tag that has no request
// in flight fails with: a device that completed a request twice, or one
// it was never given.
var ErrNotInFlight = errors.New("completion of a tag not in flight")

// Config describes a session's device to its Queue.
type Config[C any] struct {
	// Tags is the number of requests that may be in flight (> 0).
	Tags int

	// Timeout bounds Wait (> 0): a request that takes longer kills the
	// session with the error Wait's timedOut returns.
	Timeout time.Duration

	// Reap finds the device's new completions and hands each to
	// complete, with the tag and completion C of its request; complete
	// fails with an error wrapping ErrNotInFlight when the tag has no
	// request in flight. It returns how many completions it found, and
	// an error — its own or complete's, wrapped as the driver reports a
	// broken ring — that kills the session. The Queue calls it with its
	// lock held and never after the session died.
	Reap func(complete func(tag int, c C) error) (int, error)

	// Wait blocks until the device may have completed requests: a
	// notification, or a pause for a device that raises none. It
	// returns an error, which kills the session, once the device is
	// gone or the driver closed it: Died must make a blocked Wait
	// return, since Close waits for the completion goroutine. Without
	// Wait the Queue polls.
	Wait func() error

	// Check, when polling, reads the device's health every CheckPolls
	// sleeps; its error kills the session. It may be nil.
	Check func() error

	// RequesterReaps is how many times Wait reaps on the requesting
	// goroutine, yielding the processor between reaps, before it leaves
	// the completion to the completion goroutine; 0 never.
	RequesterReaps int

	// Reapers, when positive, limits requester reaping to a requester
	// whose request is one of at most Reapers in flight, and to Reapers
	// requesters at once; the others leave their completions to the
	// completion goroutine. Spinning goroutines compete for the CPUs
	// with the device they wait for (a virtual machine's vCPUs with its
	// I/O thread): with many requests in flight the completion goroutine
	// alone keeps up.
	Reapers int

	// Died, if not nil, runs once when the session dies, after every
	// request in flight got the cause, on the goroutine that killed it.
	// Close returns after it.
	Died func(cause error)
}

// Polling without Config.Wait: see the package documentation.
const (
	SpinPolls  = 64
	PollPause  = 20 * time.Microsecond
	CheckPolls = 64
)

// result is a completed request as its waiter receives it.
type result[C any] struct {
	c   C
	err error
}

type tag[C any] struct {
	done     chan result[C] // one value per request that ends
	inflight bool           // guarded by Queue.mu
}

// Queue is one session's tag pool and completion machinery; see the
// package documentation.
type Queue[C any] struct {
	cfg Config[C]

	mu       sync.Mutex // tags[].inflight, inflight, err, and Reap
	tags     []tag[C]
	inflight int
	err      error         // why the session died
	dead     chan struct{} // closed when err is set
	died     chan struct{} // closed once Config.Died returned
	free     chan int
	kick     chan struct{} // a submission: wakes an idle poller

	mem      sync.RWMutex // held for reading by Access, for writing by Unmap
	unmapped bool

	started  bool
	loopDone chan struct{}

	reapers atomic.Int32 // requesting goroutines reaping now
}

// New returns the Queue of a new session with every tag free. Start runs
// its completion goroutine.
func New[C any](cfg Config[C]) (*Queue[C], error) {
	if cfg.Tags < 1 || cfg.Timeout <= 0 || cfg.Reap == nil {
		return nil, fmt.Errorf("queue: config needs Tags, Timeout and Reap (%d tags, timeout %v)", cfg.Tags, cfg.Timeout)
	}
	q := &Queue[C]{
		cfg:      cfg,
		tags:     make([]tag[C], cfg.Tags),
		dead:     make(chan struct{}),
		died:     make(chan struct{}),
		free:     make(chan int, cfg.Tags),
		kick:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
	}
	for i := range q.tags {
		q.tags[i].done = make(chan result[C], 1)
		q.free <- i
	}
	return q, nil
}

// Tags returns the number of tags.
func (q *Queue[C]) Tags() int { return len(q.tags) }

// Acquire returns a free tag, waiting for one, or why the session died.
func (q *Queue[C]) Acquire() (int, error) {
	select {
	case t := <-q.free:
		return t, nil
	case <-q.dead:
		return 0, q.Err()
	}
}

// Release returns tag to the pool. Call it only after Wait returned the
// tag's completion with a nil error (or when the tag was never
// submitted): a request that failed with the session may still be on the
// device.
func (q *Queue[C]) Release(tag int) { q.free <- tag }

// Submit runs a request on tag: prepare, with the session's memory
// mapped (see Access), fills the tag's memory; then post, with the
// Queue's lock held as well, places the request on the device's ring,
// and the tag is in flight. Submit fails with the session's cause when
// the session died; an error of post kills the session with it, which
// Submit returns.
func (q *Queue[C]) Submit(tag int, prepare func(), post func() error) error {
	var perr error
	err := q.Access(func() error {
		if prepare != nil {
			prepare()
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.err != nil {
			return q.err
		}
		t := &q.tags[tag]
		t.inflight = true
		q.inflight++
		if perr = post(); perr != nil {
			t.inflight = false
			q.inflight--
		}
		return nil
	})
	if err != nil {
		return err
	}
	if perr != nil {
		q.Fail(perr)
		return q.Err()
	}
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return nil
}

// complete hands c to tag's waiter. The caller holds mu.
func (q *Queue[C]) complete(tag int, c C) error {
	if tag < 0 || tag >= len(q.tags) || !q.tags[tag].inflight {
		return fmt.Errorf("%w: tag %d", ErrNotInFlight, tag)
	}
	t := &q.tags[tag]
	t.inflight = false
	q.inflight--
	t.done <- result[C]{c: c}
	return nil
}

// reap runs Config.Reap unless the session died. The caller holds mu.
func (q *Queue[C]) reap() (int, error) {
	if q.err != nil {
		return 0, nil
	}
	return q.cfg.Reap(q.complete)
}

// Wait returns the completion of tag's submitted request, or why the
// session died. A request that takes longer than Config.Timeout kills
// the session with timedOut's error, which Wait then returns.
func (q *Queue[C]) Wait(tag int, timedOut func() error) (C, error) {
	t := &q.tags[tag]
	if q.requesterReaps(t) {
		r := <-t.done
		return r.c, r.err
	}
	timer := time.NewTimer(q.cfg.Timeout)
	defer timer.Stop()
	var r result[C]
	select {
	case r = <-t.done:
	case <-timer.C:
		q.Fail(timedOut())
		r = <-t.done
	}
	return r.c, r.err
}

// requesterReaps reaps for up to Config.RequesterReaps rounds, within
// Config.Reapers, and reports whether t's completion arrived meanwhile.
func (q *Queue[C]) requesterReaps(t *tag[C]) bool {
	if q.cfg.RequesterReaps == 0 {
		return false
	}
	if q.cfg.Reapers > 0 {
		q.mu.Lock()
		crowded := q.inflight > q.cfg.Reapers
		q.mu.Unlock()
		if crowded {
			return false
		}
	}
	if n := q.reapers.Add(1); q.cfg.Reapers > 0 && n > int32(q.cfg.Reapers) {
		q.reapers.Add(-1)
		return false
	}
	defer q.reapers.Add(-1)
	for range q.cfg.RequesterReaps {
		if q.mu.TryLock() {
			_, err := q.reap()
			q.mu.Unlock()
			if err != nil {
				q.Fail(err)
			}
		}
		if len(t.done) > 0 {
			return true
		}
		runtime.Gosched()
	}
	return false
}

// Fail kills the session with cause unless it is dead already: every
// request in flight fails with cause, and Config.Died runs.
func (q *Queue[C]) Fail(cause error) {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return
	}
	q.err = cause
	close(q.dead)
	for i := range q.tags {
		if t := &q.tags[i]; t.inflight {
			t.inflight = false
			t.done <- result[C]{err: cause}
		}
	}
	q.inflight = 0
	q.mu.Unlock()
	if q.cfg.Died != nil {
		q.cfg.Died(cause)
	}
	close(q.died)
}

// Err returns why the session died, or nil while it lives.
func (q *Queue[C]) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Alive reports whether the session lives.
func (q *Queue[C]) Alive() bool {
	select {
	case <-q.dead:
		return false
	default:
		return true
	}
}

// Close kills the session with cause (unless it died already) and waits
// until Config.Died returned and the completion goroutine, if started,
// stopped: then nothing of the Queue calls the driver any more.
func (q *Queue[C]) Close(cause error) {
	q.Fail(cause)
	<-q.died
	q.Stopped()
}

// Stopped waits until the completion goroutine, if started, returned;
// it returns only after the session died.
func (q *Queue[C]) Stopped() {
	q.mu.Lock()
	started := q.started
	q.mu.Unlock()
	if started {
		<-q.loopDone
	} else {
		<-q.dead
	}
}

// Access runs fn, which touches the session's memory, and returns its
// error; it fails with the session's cause, without running fn, once
// Unmap was called. fn must not kill the session.
func (q *Queue[C]) Access(fn func() error) error {
	q.mem.RLock()
	defer q.mem.RUnlock()
	if q.unmapped {
		return q.Err()
	}
	return fn()
}

// Unmap waits for the accesses in progress and makes every later Access
// fail. Call it on a dead session, before its memory goes away.
func (q *Queue[C]) Unmap() {
	q.mem.Lock()
	q.unmapped = true
	q.mem.Unlock()
}
