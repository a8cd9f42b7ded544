package queue

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeSession is a Session that dies when told.
type fakeSession struct {
	id int
	mu sync.Mutex
	// err is why it died, nil while alive.
	err error
}

func (s *fakeSession) Alive() bool { return s.Err() == nil }

func (s *fakeSession) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *fakeSession) Close(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = cause
	}
}

var (
	errDead     = errors.New("session died")
	errDial     = errors.New("dial failed")
	errGeometry = errors.New("geometry changed")
	errClosed   = errors.New("closed")
)

func sameAlways(*fakeSession) error { return nil }

func TestCurrentKeepsLiveSession(t *testing.T) {
	first := &fakeSession{id: 1}
	c := NewCurrent(first, func(*fakeSession) (*fakeSession, error) {
		t.Fatal("start called for a live session")
		return nil, nil
	}, sameAlways, errClosed)
	if s, err := c.Get(); s != first || err != nil {
		t.Fatalf("Get: %v, %v", s, err)
	}
}

// TestCurrentOneReconnect: many requests find the session dead at once;
// one starts a new session, given the dead one, and all use it.
func TestCurrentOneReconnect(t *testing.T) {
	first := &fakeSession{id: 1}
	var starts atomic.Int32
	c := NewCurrent(first, func(dead *fakeSession) (*fakeSession, error) {
		if dead != first {
			t.Errorf("start given session %d, want the dead one", dead.id)
		}
		return &fakeSession{id: 1 + int(starts.Add(1))}, nil
	}, sameAlways, errClosed)
	first.Close(errDead)
	var wg sync.WaitGroup
	got := make([]*fakeSession, 16)
	for i := range got {
		wg.Go(func() {
			s, err := c.Get()
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		})
	}
	wg.Wait()
	if starts.Load() != 1 {
		t.Fatalf("%d sessions started, want 1", starts.Load())
	}
	for _, s := range got {
		if s == nil || s.id != 2 {
			t.Fatalf("a request got %v, want session 2", s)
		}
	}
}

// TestCurrentReconnectFails: the error names why the session died and why
// the new one did not start, and the next Get tries again.
func TestCurrentReconnectFails(t *testing.T) {
	first := &fakeSession{id: 1}
	fail := true
	c := NewCurrent(first, func(*fakeSession) (*fakeSession, error) {
		if fail {
			return nil, errDial
		}
		return &fakeSession{id: 2}, nil
	}, sameAlways, errClosed)
	first.Close(errDead)
	if _, err := c.Get(); !errors.Is(err, errDead) || !errors.Is(err, errDial) {
		t.Fatalf("Get: %v, want both the cause and the dial error", err)
	}
	fail = false
	if s, err := c.Get(); err != nil || s.id != 2 {
		t.Fatalf("Get after the dial works again: %v, %v", s, err)
	}
}

// TestCurrentGeometryChanged: a new session of another geometry is closed
// with same's error, which Get returns; the dead session stays current.
func TestCurrentGeometryChanged(t *testing.T) {
	first := &fakeSession{id: 1}
	var started *fakeSession
	c := NewCurrent(first, func(*fakeSession) (*fakeSession, error) {
		started = &fakeSession{id: 2}
		return started, nil
	}, func(s *fakeSession) error {
		if s.id != 1 {
			return errGeometry
		}
		return nil
	}, errClosed)
	first.Close(errDead)
	if _, err := c.Get(); !errors.Is(err, errGeometry) || !errors.Is(err, errDead) {
		t.Fatalf("Get: %v, want the geometry error", err)
	}
	if !errors.Is(started.Err(), errGeometry) {
		t.Fatalf("the refused session: %v, want closed with the geometry error", started.Err())
	}
}

// TestCurrentClose: Close closes the session with the closed error, runs
// after once with it, and Get fails from then on.
func TestCurrentClose(t *testing.T) {
	first := &fakeSession{id: 1}
	c := NewCurrent(first, func(*fakeSession) (*fakeSession, error) { return &fakeSession{id: 2}, nil }, sameAlways, errClosed)
	runs := 0
	after := func(last *fakeSession) error {
		runs++
		if last != first || last.Alive() {
			t.Errorf("after given session %d, alive %v", last.id, last.Alive())
		}
		return errDial
	}
	if err := c.Close(after); !errors.Is(err, errDial) {
		t.Fatalf("Close: %v, want after's error", err)
	}
	if err := c.Close(after); err != nil || runs != 1 {
		t.Fatalf("second Close: %v, after ran %d times", err, runs)
	}
	if !errors.Is(first.Err(), errClosed) {
		t.Fatalf("session closed with %v", first.Err())
	}
	if _, err := c.Get(); !errors.Is(err, errClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

// TestCurrentCloseDuringReconnect: Close waits for a reconnect under way,
// whose session is closed and not handed out.
func TestCurrentCloseDuringReconnect(t *testing.T) {
	first := &fakeSession{id: 1}
	starting, release := make(chan struct{}), make(chan struct{})
	var started *fakeSession
	c := NewCurrent(first, func(*fakeSession) (*fakeSession, error) {
		close(starting)
		<-release
		started = &fakeSession{id: 2}
		return started, nil
	}, sameAlways, errClosed)
	first.Close(errDead)
	got := make(chan error)
	go func() {
		_, err := c.Get()
		got <- err
	}()
	<-starting
	closed := make(chan struct{})
	go func() {
		c.Close(nil)
		close(closed)
	}()
	for _, done := c.load(); !done; _, done = c.load() {
		runtime.Gosched() // until Close marked it closed
	}
	close(release)
	if err := <-got; !errors.Is(err, errClosed) {
		t.Fatalf("Get racing Close: %v, want the closed error", err)
	}
	<-closed
	if !errors.Is(started.Err(), errClosed) {
		t.Fatalf("the session started during Close: %v, want closed", started.Err())
	}
}
