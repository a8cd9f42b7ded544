// Package clock provides wall-clock time to the stores: Mirage's PCLOCK in
// Go.
//
// A store takes a PClock in its constructor (kvtar.New(clk, dev)) and stamps
// modification times with it. Providers:
//
//   - System: the host's clock (time.Now).
//   - RTC: the hardware real-time clock (/dev/rtc0) read once at open and
//     advanced with the monotonic clock, for the appliance booted as PID 1
//     where nothing has set the system clock.
//   - Fake: a settable clock for tests.
package clock

import (
	"sync"
	"time"
)

// PClock is a POSIX wall clock.
type PClock interface {
	// Now returns the current wall-clock time.
	Now() time.Time
}

// System is the host's wall clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Fake is a settable clock for tests. Its zero value reads the Unix epoch.
// It is safe for concurrent use.
type Fake struct {
	mu sync.Mutex
	t  time.Time
}

// NewFake returns a Fake clock reading t.
func NewFake(t time.Time) *Fake { return &Fake{t: t} }

// Now returns the clock's current reading.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return f.t
}

// Set makes the clock read t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

// Advance moves the clock forward by d and returns the new reading.
func (f *Fake) Advance(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.t.IsZero() {
		f.t = time.Unix(0, 0).UTC()
	}
	f.t = f.t.Add(d)
	return f.t
}
