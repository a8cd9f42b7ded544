package queue

import (
	"fmt"
	"sync"
)

// Session is what Current needs of a driver's session.
type Session interface {
	// Alive reports whether the session still serves requests.
	Alive() bool
	// Err returns why the session died (nil while it is alive).
	Err() error
	// Close kills the session with cause and waits until nothing of it
	// touches the device any more.
	Close(cause error)
}

// Current is a Device's current session and its replacement, shared by
// hw/virtio and hw/nvme: while the session lives every request uses it;
// once it died, the next request starts a new one (a reconnect, a
// controller reset), one at a time — requests that find a reconnect under
// way wait for it and use its session — and a new session whose geometry
// differs from the first one's is refused. Close ends it all. It is safe
// for concurrent use.
type Current[S Session] struct {
	start  func(dead S) (S, error) // a new session, after dead died
	same   func(s S) error         // nil when s has the first session's geometry
	closed error                   // what Get returns after Close

	mu     sync.Mutex // s, done
	s      S
	done   bool
	redial sync.Mutex // one reconnect at a time; Close waits for it
}

// NewCurrent returns a Current whose session is s. start brings up a new
// session once the last one, which it is given, died; same checks a new
// session's geometry against s's, and its error refuses the session
// (which Current closes with that error). Get returns closed after Close.
func NewCurrent[S Session](s S, start func(dead S) (S, error), same func(S) error, closed error) *Current[S] {
	return &Current[S]{s: s, start: start, same: same, closed: closed}
}

// Get returns the live session, starting a new one when the last one
// died. When that fails, the error wraps both why the last session died
// and why the new one could not start: "<cause>; reconnecting: <err>".
func (c *Current[S]) Get() (S, error) {
	var zero S
	s, done := c.load()
	if done {
		return zero, c.closed
	}
	if s.Alive() {
		return s, nil
	}
	c.redial.Lock()
	defer c.redial.Unlock()
	if s, done = c.load(); done {
		return zero, c.closed
	}
	if s.Alive() {
		return s, nil // another request reconnected
	}
	ns, err := c.start(s)
	if err == nil {
		if err = c.same(ns); err != nil {
			ns.Close(err)
		}
	}
	if err != nil {
		return zero, fmt.Errorf("%w; reconnecting: %w", s.Err(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done { // Close waits for redial, so it cannot have closed ns
		ns.Close(c.closed)
		return zero, c.closed
	}
	c.s = ns
	return ns, nil
}

func (c *Current[S]) load() (S, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s, c.done
}

// Close ends Get: it waits for a reconnect under way, closes the session
// with the closed error of NewCurrent, and then runs after — the driver's
// own shutdown — still excluding any reconnect. It returns after's error,
// or nil (and runs nothing) when Current was closed already.
func (c *Current[S]) Close(after func(last S) error) error {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return nil
	}
	c.done = true
	c.mu.Unlock()
	c.redial.Lock() // a reconnect in progress finishes and sees done
	defer c.redial.Unlock()
	s, _ := c.load()
	s.Close(c.closed)
	if after == nil {
		return nil
	}
	return after(s)
}
