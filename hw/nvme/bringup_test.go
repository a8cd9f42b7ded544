package nvme

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// trace steps b to its next idle state, sleeping on the fake clock while
// a state waits, and returns the states it went through.
func trace(t *testing.T, b *bringup, clk *fakeClock) ([]string, error) {
	t.Helper()
	path := []string{b.state.String()}
	for i := 0; !b.state.idle(); i++ {
		if i > 10000 {
			t.Fatalf("stuck in %s", b.state)
		}
		prev := b.state
		if err := b.step(); err != nil {
			return path, err
		}
		if b.state != prev {
			path = append(path, b.state.String())
		} else {
			clk.Sleep(registerPoll)
		}
	}
	return path, nil
}

const (
	adminSQAddr = 0x1_0000_0000
	adminCQAddr = 0x1_0000_1000
)

// The register writes of configuring the admin queue and enabling.
var enableWrites = []string{
	"AQA=0x30003", "ASQ=0x0", "ASQ.hi=0x1", "ACQ=0x1000", "ACQ.hi=0x1", "CC=0x460000", "CC=0x460001",
}

// TestBringupStates steps the bring-up from every state a controller may
// be found in, then enables it and shuts it down, checking the states
// passed and every register written, in order.
func TestBringupStates(t *testing.T) {
	for _, c := range []struct {
		name   string
		setup  func(f *fakeController)
		path   []string
		writes []string // before the admin queue is programmed
	}{
		{"power-on", func(f *fakeController) {},
			[]string{"read CAP", "check CC.EN", "await CSTS.RDY=0", "configure"}, nil},
		{"left enabled by SeaBIOS", (*fakeController).seabios,
			[]string{"read CAP", "check CC.EN", "disable", "await CSTS.RDY=0", "configure"}, []string{"CC=0x460000"}},
		{"still enabling", func(f *fakeController) { f.setState(true, false) },
			[]string{"read CAP", "check CC.EN", "await CSTS.RDY=1 before disabling", "disable", "await CSTS.RDY=0", "configure"}, []string{"CC=0x460000"}},
		{"still disabling", func(f *fakeController) { f.setState(false, true) },
			[]string{"read CAP", "check CC.EN", "await CSTS.RDY=0", "configure"}, nil},
		{"fatal", func(f *fakeController) { f.seabios(); f.setFatal() },
			[]string{"read CAP", "check CC.EN", "disable", "await CSTS.RDY=0", "configure"}, []string{"CC=0x460000"}},
		{"fatal while enabling", func(f *fakeController) { f.setState(true, false); f.neverReady = true; f.setFatal() },
			[]string{"read CAP", "check CC.EN", "disable", "await CSTS.RDY=0", "configure"}, []string{"CC=0x460000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, 512, 64)
			c.setup(f)
			f.neverReady = false
			b := newBringup(f.regs, time.Second)
			path, err := trace(t, b, f.clock)
			if err != nil || !slices.Equal(path, c.path) {
				t.Fatalf("states %q (%v), want %q", path, err, c.path)
			}
			if got := f.writes(); !slices.Equal(got, c.writes) {
				t.Errorf("writes %q, want %q", got, c.writes)
			}
			if f.cstsNow()&cstsRDY != 0 || b.vs != fakeVS || b.cap != qemuCap {
				t.Errorf("CSTS %#x after the reset; VS %#x, CAP %#x", f.cstsNow(), b.vs, uint64(b.cap))
			}

			b.configure(adminSQAddr, adminCQAddr, 4, 4)
			path, err = trace(t, b, f.clock)
			if want := []string{"program admin queue", "enable", "await CSTS.RDY=1", "live"}; err != nil || !slices.Equal(path, want) {
				t.Fatalf("states %q (%v), want %q", path, err, want)
			}
			if got, want := f.writes(), append(slices.Clone(c.writes), enableWrites...); !slices.Equal(got, want) {
				t.Errorf("writes %q, want %q", got, want)
			}
			if f.cstsNow() != cstsRDY {
				t.Errorf("CSTS %#x once live", f.cstsNow())
			}

			b.shutdown()
			path, err = trace(t, b, f.clock)
			if want := []string{"shutdown", "await CSTS.SHST=10b", "disable", "await CSTS.RDY=0", "off"}; err != nil || !slices.Equal(path, want) {
				t.Fatalf("shutdown states %q (%v), want %q", path, err, want)
			}
			if got := f.writes()[len(c.writes)+len(enableWrites):]; !slices.Equal(got, []string{"CC=0x464001", "CC=0x460000"}) {
				t.Errorf("shutdown writes %q", got)
			}
		})
	}
}

// TestBringupTimeouts: a controller whose CSTS never follows CC within
// CAP.TO (or the shutdown timeout) fails with a *ControllerError after
// exactly that long on the clock.
func TestBringupTimeouts(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(f *fakeController)
		to    capabilities // CAP.TO
		state string
		want  error
		wait  time.Duration
	}{
		{"never ready", func(f *fakeController) { f.neverReady = true }, 15, "await CSTS.RDY=1", ErrReadyTimeout, 7500 * time.Millisecond},
		{"never ready, TO 2", func(f *fakeController) { f.neverReady = true }, 2, "await CSTS.RDY=1", ErrReadyTimeout, time.Second},
		{"never ready, TO 0", func(f *fakeController) { f.neverReady = true }, 0, "await CSTS.RDY=1", ErrReadyTimeout, 500 * time.Millisecond},
		{"never resets", func(f *fakeController) { f.seabios(); f.neverReset = true }, 15, "await CSTS.RDY=0", ErrReadyTimeout, 7500 * time.Millisecond},
		{"never finishes enabling", func(f *fakeController) { f.setState(true, false); f.neverReady = true }, 4, "await CSTS.RDY=1 before disabling", ErrReadyTimeout, 2 * time.Second},
		{"never shuts down", func(f *fakeController) { f.neverShutdown = true }, 15, "await CSTS.SHST=10b", ErrShutdownTimeout, 3 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, 512, 64)
			f.cap = f.cap&^(0xff<<24) | c.to<<24
			c.setup(f)
			b := newBringup(f.regs, 3*time.Second)
			start := f.clock.Now()
			err := b.run(f.clock)
			if b.state == stateConfigure {
				b.configure(adminSQAddr, adminCQAddr, 4, 4)
				err = b.run(f.clock)
			}
			if b.state == stateLive {
				start = f.clock.Now()
				b.shutdown()
				err = b.run(f.clock)
			}
			var ce *ControllerError
			if !errors.Is(err, c.want) || !errors.As(err, &ce) || ce.State != c.state || b.state != stateFailed {
				t.Fatalf("run: %v in %s, want %v at %q", err, b.state, c.want, c.state)
			}
			if d := f.clock.Now().Sub(start); d < c.wait || d > c.wait+2*registerPoll {
				t.Errorf("gave up after %v, want %v", d, c.wait)
			}
			t.Log(err)
		})
	}
}

func TestBringupFatalAndGone(t *testing.T) {
	t.Run("CFS when enabled", func(t *testing.T) {
		f := newFake(t, 512, 64)
		f.fatalOnEnable = true
		b := newBringup(f.regs, time.Second)
		b.run(f.clock)
		b.configure(adminSQAddr, adminCQAddr, 4, 4)
		start := f.clock.Now()
		err := b.run(f.clock)
		var ce *ControllerError
		if !errors.Is(err, ErrFatal) || !errors.As(err, &ce) || ce.CSTS&cstsCFS == 0 || ce.State != "await CSTS.RDY=1" {
			t.Fatalf("run: %v", err)
		}
		if d := f.clock.Now().Sub(start); d > registerPoll {
			t.Errorf("noticed after %v: a new CSTS.CFS fails at once", d)
		}
		// A new bring-up recovers it, if it can start now.
		f.mu.Lock()
		f.fatalOnEnable = false
		f.mu.Unlock()
		b = newBringup(f.regs, time.Second)
		b.run(f.clock)
		b.configure(adminSQAddr, adminCQAddr, 4, 4)
		if err := b.run(f.clock); err != nil || f.cstsNow() != cstsRDY {
			t.Errorf("bring-up after a fatal status: %v, CSTS %#x", err, f.cstsNow())
		}
	})
	t.Run("CFS kept from before the reset", func(t *testing.T) {
		// CSTS.CFS seen while enabling may be the old one: the
		// controller gets CAP.TO to become ready.
		f := newFake(t, 512, 64)
		f.seabios()
		f.setFatal()
		f.readyDelay = 5 * time.Second
		b := newBringup(f.regs, time.Second)
		b.run(f.clock)
		b.configure(adminSQAddr, adminCQAddr, 4, 4)
		start := f.clock.Now()
		if err := b.run(f.clock); err != nil || f.clock.Now().Sub(start) < 5*time.Second {
			t.Fatalf("run: %v after %v", err, f.clock.Now().Sub(start))
		}
		// One that never becomes ready failed fatally.
		f = newFake(t, 512, 64)
		f.seabios()
		f.setFatal()
		f.fatalOnEnable = true
		b = newBringup(f.regs, time.Second)
		b.run(f.clock)
		b.configure(adminSQAddr, adminCQAddr, 4, 4)
		start = f.clock.Now()
		if err := b.run(f.clock); !errors.Is(err, ErrFatal) || f.clock.Now().Sub(start) < 7500*time.Millisecond {
			t.Fatalf("run: %v after %v", err, f.clock.Now().Sub(start))
		}
	})
	t.Run("CFS during shutdown", func(t *testing.T) {
		f := newFake(t, 512, 64)
		b := newBringup(f.regs, time.Second)
		b.run(f.clock)
		b.configure(adminSQAddr, adminCQAddr, 4, 4)
		if err := b.run(f.clock); err != nil {
			t.Fatal(err)
		}
		b.shutdown()
		if err := b.step(); err != nil || b.state != stateAwaitShutdown {
			t.Fatalf("%v in %s", err, b.state)
		}
		f.setFatal()
		if err := b.run(f.clock); !errors.Is(err, ErrFatal) {
			t.Fatalf("run: %v", err)
		}
	})
	t.Run("CFS before shutdown", func(t *testing.T) {
		f := newFake(t, 512, 64)
		b := newBringup(f.regs, time.Second)
		b.run(f.clock)
		b.configure(adminSQAddr, adminCQAddr, 4, 4)
		b.run(f.clock)
		f.setFatal()
		b.shutdown()
		path, err := trace(t, b, f.clock)
		if want := []string{"shutdown", "disable", "await CSTS.RDY=0", "off"}; err != nil || !slices.Equal(path, want) {
			t.Errorf("states %q (%v), want %q: a fatal controller is only reset", path, err, want)
		}
	})
	t.Run("gone", func(t *testing.T) {
		f := newFake(t, 512, 64)
		f.unplug()
		b := newBringup(f.regs, time.Second)
		if err := b.run(f.clock); !errors.Is(err, ErrGone) {
			t.Errorf("run: %v", err)
		}
		if b.capRead {
			t.Error("a controller reading all ones counts as known")
		}
	})
	t.Run("gone while enabling", func(t *testing.T) {
		f := newFake(t, 512, 64)
		b := newBringup(f.regs, time.Second)
		b.run(f.clock)
		b.configure(adminSQAddr, adminCQAddr, 4, 4)
		b.step()
		b.step()
		f.unplug()
		var ce *ControllerError
		if err := b.run(f.clock); !errors.Is(err, ErrGone) || !errors.As(err, &ce) || ce.CSTS != cstsGone {
			t.Errorf("run: %v", err)
		}
	})
}

func TestBringupRefusesController(t *testing.T) {
	for _, c := range []struct {
		name string
		cap  capabilities
	}{
		{"no NVM Command Set", qemuCap &^ (0xff << 37)},
		{"8 KiB pages at least", qemuCap | 1<<48},
		{"queues of one entry", qemuCap &^ 0xffff},
		{"doorbells beyond the registers", qemuCap | 10<<32},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, 512, 64)
			f.cap = c.cap
			b := newBringup(f.regs, time.Second)
			if err := b.run(f.clock); !errors.Is(err, ErrBadController) || b.state != stateFailed {
				t.Errorf("run: %v in %s", err, b.state)
			}
			if w := f.writes(); len(w) != 0 {
				t.Errorf("wrote %q to a controller it cannot use", w)
			}
		})
	}
}
