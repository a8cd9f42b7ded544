package queue

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// device is a fake device: Submit's post records a request on its ring,
// the test completes requests in the order it likes, and Reap returns
// the completed ones. With interrupts, completing notifies Wait.
type device struct {
	mu     sync.Mutex
	posted map[int]int // tag → the value posted with it
	ready  []int       // completed tags, in completion order
	bogus  []int       // completions for tags the device invents

	notify chan struct{} // interrupts: one notification pending at most
	gone   chan struct{} // closed by kill: Wait fails
	kill   func()
	reaps  atomic.Int64
}

func newDevice() *device {
	d := &device{posted: map[int]int{}, notify: make(chan struct{}, 1), gone: make(chan struct{})}
	d.kill = sync.OnceFunc(func() { close(d.gone) })
	return d
}

var errGone = errors.New("device gone")

func (d *device) post(tag, v int) func() error {
	return func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.posted[tag] = v
		return nil
	}
}

// complete completes the requests of tags, in that order.
func (d *device) complete(tags ...int) {
	d.mu.Lock()
	d.ready = append(d.ready, tags...)
	d.mu.Unlock()
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// reap is Config.Reap: a request's completion is the value posted with
// it, times ten.
func (d *device) reap(complete func(tag int, c int) error) (int, error) {
	d.reaps.Add(1)
	d.mu.Lock()
	ready, bogus := d.ready, d.bogus
	d.ready, d.bogus = nil, nil
	d.mu.Unlock()
	for _, t := range bogus {
		if err := complete(t, -1); err != nil {
			return 0, fmt.Errorf("broken ring: %w", err)
		}
	}
	for _, t := range ready {
		d.mu.Lock()
		v := d.posted[t]
		delete(d.posted, t)
		d.mu.Unlock()
		if err := complete(t, v*10); err != nil {
			return 0, err
		}
	}
	return len(ready), nil
}

func (d *device) wait() error {
	select {
	case <-d.notify:
		return nil
	case <-d.gone:
		return errGone
	}
}

// inFlight reports how many requests were posted and not completed.
func (d *device) inFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.posted) - len(d.ready)
}

// modes are the completion styles each test runs in.
var modes = []struct {
	name      string
	interrupt bool
	requester int
}{
	{"interrupts", true, 0},
	{"polled", false, 0},
	{"polled+requester", false, 64},
}

func newQueue(t *testing.T, d *device, tags int, interrupt bool, requester int, timeout time.Duration) *Queue[int] {
	t.Helper()
	cfg := Config[int]{Tags: tags, Timeout: timeout, Reap: d.reap, RequesterReaps: requester, Died: func(error) { d.kill() }}
	if interrupt {
		cfg.Wait = d.wait
	}
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	t.Cleanup(func() {
		d.kill()
		q.Close(errors.New("test over"))
	})
	return q
}

// waitFor polls cond until it holds; a test that never sees it times out.
func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(100 * time.Microsecond)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	d := newDevice()
	for _, cfg := range []Config[int]{
		{Tags: 0, Timeout: time.Second, Reap: d.reap},
		{Tags: 1, Timeout: 0, Reap: d.reap},
		{Tags: 1, Timeout: time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%d tags, timeout %v, reap %v) succeeded", cfg.Tags, cfg.Timeout, cfg.Reap != nil)
		}
	}
}

// Every tag is handed out once; Acquire waits for a Release when all are
// taken.
func TestTagPool(t *testing.T) {
	d := newDevice()
	q := newQueue(t, d, 4, true, 0, time.Minute)
	seen := map[int]bool{}
	for range 4 {
		tag, err := q.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		if seen[tag] || tag < 0 || tag >= q.Tags() {
			t.Fatalf("Acquire returned tag %d; had %v", tag, seen)
		}
		seen[tag] = true
	}
	got := make(chan int)
	go func() {
		tag, _ := q.Acquire()
		got <- tag
	}()
	select {
	case tag := <-got:
		t.Fatalf("Acquire returned tag %d with every tag taken", tag)
	case <-time.After(20 * time.Millisecond):
	}
	q.Release(2)
	if tag := <-got; tag != 2 {
		t.Fatalf("Acquire after Release(2) returned %d", tag)
	}
}

// Requests complete in the reverse of their submission order; each
// waiter gets its own request's completion.
func TestOutOfOrderCompletions(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			d := newDevice()
			q := newQueue(t, d, 8, m.interrupt, m.requester, time.Minute)
			const n = 8
			tags := make([]int, n)
			errs := make(chan error, n)
			var submitted sync.WaitGroup
			submitted.Add(n)
			for i := range n {
				tag, err := q.Acquire()
				if err != nil {
					t.Fatal(err)
				}
				tags[i] = tag
				go func() {
					err := q.Submit(tag, nil, d.post(tag, i+1))
					submitted.Done()
					if err != nil {
						errs <- err
						return
					}
					c, err := q.Wait(tag, func() error { return errors.New("timed out") })
					switch {
					case err != nil:
						errs <- err
					case c != (i+1)*10:
						errs <- fmt.Errorf("request %d (tag %d) received completion %d", i+1, tag, c)
					default:
						q.Release(tag)
						errs <- nil
					}
				}()
			}
			submitted.Wait()
			for i := n - 1; i >= 0; i-- {
				d.complete(tags[i])
			}
			for range n {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			if !q.Alive() {
				t.Fatalf("session died: %v", q.Err())
			}
		})
	}
}

// With RequesterReaps, the requesting goroutine reaps its own completion:
// the device is reaped even when the completion goroutine could not.
func TestRequesterReaps(t *testing.T) {
	d := newDevice()
	q, err := New(Config[int]{Tags: 1, Timeout: time.Minute, Reap: d.reap, RequesterReaps: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// No Start: only the requester reaps.
	defer q.Close(errors.New("test over"))
	tag, _ := q.Acquire()
	if err := q.Submit(tag, nil, d.post(tag, 7)); err != nil {
		t.Fatal(err)
	}
	d.complete(tag)
	c, err := q.Wait(tag, func() error { return errors.New("timed out") })
	if err != nil || c != 70 {
		t.Fatalf("Wait = %d, %v; want 70, nil", c, err)
	}
	if d.reaps.Load() == 0 {
		t.Fatal("the device was never reaped")
	}
}

// A request that takes longer than the timeout kills the session with
// the timeout's error: it and every other request in flight fail with it,
// Died runs once, and later requests fail at once.
func TestTimeoutKillsSession(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			d := newDevice()
			var died atomic.Int32
			cfg := Config[int]{Tags: 4, Timeout: 50 * time.Millisecond, Reap: d.reap, RequesterReaps: m.requester,
				Died: func(error) { died.Add(1); d.kill() }}
			if m.interrupt {
				cfg.Wait = d.wait
			}
			q, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			q.Start()
			defer d.kill()
			errTimeout := errors.New("request timed out")
			errs := make(chan error, 3)
			for i := range 3 {
				tag, _ := q.Acquire()
				if err := q.Submit(tag, nil, d.post(tag, i)); err != nil {
					t.Fatal(err)
				}
				go func() {
					_, err := q.Wait(tag, func() error { return errTimeout })
					errs <- err
				}()
			}
			for range 3 {
				if err := <-errs; !errors.Is(err, errTimeout) {
					t.Errorf("Wait: %v, want the timeout's error", err)
				}
			}
			if q.Alive() || !errors.Is(q.Err(), errTimeout) {
				t.Fatalf("after the timeout: alive %v, Err %v", q.Alive(), q.Err())
			}
			q.Close(errors.New("closed"))
			if n := died.Load(); n != 1 {
				t.Errorf("Died ran %d times", n)
			}
			// One tag is still free: Acquire may hand it out, but
			// Submit fails then.
			tag, err := q.Acquire()
			if err == nil {
				err = q.Submit(tag, nil, d.post(tag, 9))
			}
			if !errors.Is(err, errTimeout) {
				t.Errorf("a request after the death: %v, want the timeout's error", err)
			}
		})
	}
}

// Fail ends every request in flight with the cause, before Died runs;
// Close waits for Died and the completion goroutine.
func TestSessionDeath(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			d := newDevice()
			q := newQueue(t, d, 8, m.interrupt, m.requester, time.Minute)
			cause := errors.New("the device went away")
			errs := make(chan error, 8)
			for i := range 8 {
				tag, _ := q.Acquire()
				if err := q.Submit(tag, nil, d.post(tag, i)); err != nil {
					t.Fatal(err)
				}
				go func() {
					_, err := q.Wait(tag, func() error { return errors.New("timed out") })
					errs <- err
				}()
			}
			q.Fail(cause)
			q.Fail(errors.New("a later cause"))
			for range 8 {
				if err := <-errs; err != cause {
					t.Errorf("Wait: %v, want %v", err, cause)
				}
			}
			if err := q.Submit(0, nil, d.post(0, 1)); err != cause {
				t.Errorf("Submit after the death: %v", err)
			}
			if _, err := q.Acquire(); err != cause {
				t.Errorf("Acquire after the death with every tag abandoned: %v", err)
			}
		})
	}
}

// Wait returning an error (a device gone) kills the session.
func TestWaitErrorKillsSession(t *testing.T) {
	d := newDevice()
	q := newQueue(t, d, 2, true, 0, time.Minute)
	tag, _ := q.Acquire()
	if err := q.Submit(tag, nil, d.post(tag, 1)); err != nil {
		t.Fatal(err)
	}
	d.kill()
	if _, err := q.Wait(tag, func() error { return errors.New("timed out") }); !errors.Is(err, errGone) {
		t.Fatalf("Wait: %v, want %v", err, errGone)
	}
}

// A completion for a tag not in flight is a broken ring: the session
// dies with Reap's error.
func TestCompletionNotInFlight(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			d := newDevice()
			q := newQueue(t, d, 4, m.interrupt, m.requester, time.Minute)
			tag, _ := q.Acquire()
			if err := q.Submit(tag, nil, d.post(tag, 1)); err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			d.bogus = []int{(tag + 1) % 4}
			d.mu.Unlock()
			d.complete()
			_, err := q.Wait(tag, func() error { return errors.New("timed out") })
			if !errors.Is(err, ErrNotInFlight) {
				t.Fatalf("Wait: %v, want ErrNotInFlight", err)
			}
		})
	}
}

// A completion the device delivers twice is not handed to the tag's next
// request.
func TestDoubleCompletion(t *testing.T) {
	d := newDevice()
	q := newQueue(t, d, 1, true, 0, time.Minute)
	tag, _ := q.Acquire()
	if err := q.Submit(tag, nil, d.post(tag, 1)); err != nil {
		t.Fatal(err)
	}
	d.complete(tag)
	if c, err := q.Wait(tag, func() error { return errors.New("timed out") }); err != nil || c != 10 {
		t.Fatalf("Wait = %d, %v", c, err)
	}
	q.Release(tag)
	d.complete(tag) // again, with nothing in flight
	waitFor(func() bool { return !q.Alive() })
	if !errors.Is(q.Err(), ErrNotInFlight) {
		t.Fatalf("session died of %v, want ErrNotInFlight", q.Err())
	}
}

// An error of post kills the session with it, and the request is not in
// flight.
func TestPostError(t *testing.T) {
	d := newDevice()
	q := newQueue(t, d, 2, true, 0, time.Minute)
	broken := errors.New("ring full")
	tag, _ := q.Acquire()
	if err := q.Submit(tag, nil, func() error { return broken }); err != broken {
		t.Fatalf("Submit: %v, want %v", err, broken)
	}
	if q.Err() != broken {
		t.Fatalf("session died of %v", q.Err())
	}
}

// After Unmap, Access and Submit fail without touching the memory;
// Unmap waits for accesses in progress.
func TestUnmap(t *testing.T) {
	d := newDevice()
	q := newQueue(t, d, 2, true, 0, time.Minute)
	entered, leave := make(chan struct{}), make(chan struct{})
	go q.Access(func() error {
		close(entered)
		<-leave
		return nil
	})
	<-entered
	cause := errors.New("dead")
	q.Fail(cause)
	unmapped := make(chan struct{})
	go func() {
		q.Unmap()
		close(unmapped)
	}()
	select {
	case <-unmapped:
		t.Fatal("Unmap returned during an access")
	case <-time.After(20 * time.Millisecond):
	}
	close(leave)
	<-unmapped
	touched := false
	if err := q.Access(func() error { touched = true; return nil }); err != cause || touched {
		t.Fatalf("Access after Unmap: %v, ran %v", err, touched)
	}
	if err := q.Submit(0, func() { touched = true }, d.post(0, 1)); err != cause || touched {
		t.Fatalf("Submit after Unmap: %v, prepared %v", err, touched)
	}
}

// Polling: the poller stops reaping when nothing is in flight and starts
// again on a submission.
func TestPollerIdlesWithoutRequests(t *testing.T) {
	d := newDevice()
	q := newQueue(t, d, 2, false, 0, time.Minute)
	waitFor(func() bool { return d.reaps.Load() > 0 })
	time.Sleep(20 * time.Millisecond)
	if n := d.reaps.Load(); n != 1 {
		t.Fatalf("%d reaps with nothing ever in flight, want 1", n)
	}
	tag, _ := q.Acquire()
	if err := q.Submit(tag, nil, d.post(tag, 3)); err != nil {
		t.Fatal(err)
	}
	d.complete(tag)
	if c, err := q.Wait(tag, func() error { return errors.New("timed out") }); err != nil || c != 30 {
		t.Fatalf("Wait = %d, %v", c, err)
	}
}

// Polling: Check's error kills the session while a request waits.
func TestPollerCheck(t *testing.T) {
	d := newDevice()
	fatal := errors.New("controller fatal status")
	q, err := New(Config[int]{Tags: 1, Timeout: time.Minute, Reap: d.reap, Check: func() error { return fatal }})
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	defer q.Close(errors.New("test over"))
	tag, _ := q.Acquire()
	if err := q.Submit(tag, nil, d.post(tag, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Wait(tag, func() error { return errors.New("timed out") }); err != fatal {
		t.Fatalf("Wait: %v, want %v", err, fatal)
	}
	if d.inFlight() != 1 {
		t.Fatalf("the device holds %d requests", d.inFlight())
	}
}

// With Reapers 1, one requesting goroutine reaps at a time, and only
// while its request is alone in flight: a second waiter leaves its
// completion to the first.
func TestReapersBound(t *testing.T) {
	d := newDevice()
	q, err := New(Config[int]{Tags: 2, Timeout: time.Minute, Reap: d.reap, RequesterReaps: 1 << 30, Reapers: 1})
	if err != nil {
		t.Fatal(err)
	}
	// No Start: only requesters reap.
	defer q.Close(errors.New("test over"))
	a, _ := q.Acquire()
	if err := q.Submit(a, nil, d.post(a, 1)); err != nil {
		t.Fatal(err)
	}
	first := make(chan error)
	go func() {
		_, err := q.Wait(a, func() error { return errors.New("timed out") })
		first <- err
	}()
	waitFor(func() bool { return d.reaps.Load() > 0 }) // a reaps
	b, _ := q.Acquire()
	if err := q.Submit(b, nil, d.post(b, 2)); err != nil {
		t.Fatal(err)
	}
	second := make(chan int)
	go func() {
		c, _ := q.Wait(b, func() error { return errors.New("timed out") })
		second <- c
	}()
	time.Sleep(20 * time.Millisecond) // the second waiter is waiting
	if n := q.reapers.Load(); n != 1 {
		t.Fatalf("%d requesters reaping, want 1 (the first)", n)
	}
	// b's completion, reaped by a's goroutine while it spins.
	d.complete(b)
	if c := <-second; c != 20 {
		t.Fatalf("second waiter got %d", c)
	}
	d.complete(a)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// With Reapers 1, a requester whose request is not alone in flight does
// not reap: without a completion goroutine its request times out.
func TestReapersCrowded(t *testing.T) {
	d := newDevice()
	q, err := New(Config[int]{Tags: 2, Timeout: 50 * time.Millisecond, Reap: d.reap, RequesterReaps: 1 << 30, Reapers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close(errors.New("test over"))
	for range 2 {
		tag, _ := q.Acquire()
		if err := q.Submit(tag, nil, d.post(tag, 1)); err != nil {
			t.Fatal(err)
		}
		d.complete(tag)
	}
	errTimeout := errors.New("timed out")
	if _, err := q.Wait(0, func() error { return errTimeout }); err != errTimeout {
		t.Fatalf("Wait: %v, want the timeout (nobody reaps)", err)
	}
	if n := d.reaps.Load(); n != 0 {
		t.Fatalf("%d reaps", n)
	}
}
