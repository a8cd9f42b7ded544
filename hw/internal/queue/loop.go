package queue

import (
	"runtime"
	"time"
)

// Start runs the session's completion goroutine, which reaps until the
// session dies: waiting in Config.Wait between reaps, or polling without
// it (see the package documentation). Call it once.
func (q *Queue[C]) Start() {
	q.mu.Lock()
	q.started = true
	q.mu.Unlock()
	if q.cfg.Wait != nil {
		go q.interrupts()
	} else {
		go q.poll()
	}
}

// interrupts reaps after every return of Config.Wait.
func (q *Queue[C]) interrupts() {
	defer close(q.loopDone)
	for {
		if _, _, stop := q.reapLocked(); stop {
			return
		}
		if err := q.cfg.Wait(); err != nil {
			q.Fail(err)
			return
		}
	}
}

// poll reaps in a loop: yielding after activity, then sleeping between
// reaps and checking the device's health, and waiting for a submission
// when nothing is in flight.
func (q *Queue[C]) poll() {
	defer close(q.loopDone)
	idle := 0
	for {
		n, busy, stop := q.reapLocked()
		switch {
		case stop:
			return
		case n > 0:
			idle = 0
			continue
		case !busy:
			// A request submitted since the reap has left a kick.
			select {
			case <-q.kick:
			case <-q.dead:
				return
			}
			idle = 0
			continue
		}
		select {
		case <-q.kick: // a new request: spin again
			idle = 0
		default:
		}
		if q.reapers.Load() > 0 { // a requester reaps: stay off the CPU
			time.Sleep(PollPause)
			continue
		}
		if idle++; idle <= SpinPolls {
			runtime.Gosched()
			continue
		}
		time.Sleep(PollPause)
		if q.cfg.Check != nil && idle%CheckPolls == 0 {
			if err := q.cfg.Check(); err != nil {
				q.Fail(err)
				return
			}
		}
	}
}

// reapLocked reaps once under the lock and reports how many completions
// it found, whether requests remain in flight, and whether the session
// died (Reap's error kills it).
func (q *Queue[C]) reapLocked() (n int, busy, stop bool) {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return 0, false, true
	}
	n, err := q.cfg.Reap(q.complete)
	busy = q.inflight > 0
	q.mu.Unlock()
	if err != nil {
		q.Fail(err)
		return n, busy, true
	}
	return n, busy, false
}
