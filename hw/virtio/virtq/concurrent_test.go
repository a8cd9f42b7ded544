package virtq

import (
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"testing"
	"time"
)

// TestConcurrentDevice runs the fake device in its own goroutine against the
// driver, with both sides sleeping until notified, so that a lost kick or a
// lost interrupt (a notification-suppression bug) shows up as a timeout. The
// device completes requests out of order and verifies every request's
// header; the driver verifies the data the device wrote.
func TestConcurrentDevice(t *testing.T) {
	total := 20000
	if testing.Short() {
		total = 2000
	}
	for _, f := range []Features{{}, {EventIdx: true}, {Indirect: true}, {EventIdx: true, Indirect: true}} {
		for _, napi := range []bool{false, true} {
			t.Run(fmt.Sprintf("eventidx=%v,indirect=%v,napi=%v", f.EventIdx, f.Indirect, napi), func(t *testing.T) {
				runConcurrent(t, 16, total, f, napi)
			})
		}
	}
}

// concurrentTimeout bounds every sleep of either side; a lost notification
// fails the test after this long.
var concurrentTimeout = 10 * time.Second

type slotBufs struct {
	hdr, data, status Buffer
}

// runConcurrent drives the queue against a device goroutine. With napi the
// driver disables interrupts while busy and calls EnableInterrupts before
// sleeping; without, interrupts stay enabled and the driver sleeps as soon
// as Poll comes back empty (relying on Next re-arming used_event).
func runConcurrent(t *testing.T, n, total int, f Features, napi bool) {
	e := newEnv(t, n, f)
	if f.Indirect {
		// Fewer tables than descriptors, so some chains fall back to
		// direct descriptors.
		if err := e.q.UseIndirect(e.g.alloc(t, n/2*3*DescSize, 16), 3); err != nil {
			t.Fatal(err)
		}
	}
	slots := make([]slotBufs, n)
	var freeSlots []int
	for i := range slots {
		slots[i] = slotBufs{e.buf(t, 16, false), e.buf(t, 64, true), e.buf(t, 4, true)}
		freeSlots = append(freeSlots, i)
	}
	type token struct{ slot, id int }

	kick := make(chan struct{}, 1)
	irq := make(chan struct{}, 1)
	stop := make(chan struct{})
	devErr := make(chan error, 1)
	timeout := concurrentTimeout
	deviceSleeps := 0

	go func() { // the device
		devErr <- func() error {
			d := e.d
			rng := rand.New(rand.NewSource(2))
			var held []devReq
			for {
				d.suppress()
				for {
					r, ok, err := d.pop()
					if err != nil {
						return err
					}
					if !ok {
						break
					}
					if len(r.Segs) != 3 || r.Segs[0].Write || !r.Segs[1].Write || !r.Segs[2].Write {
						return fmt.Errorf("bad request %+v", r)
					}
					held = append(held, r)
				}
				// Complete a random subset, in random order.
				rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
				k := len(held)
				if k > 1 && rng.Intn(2) == 0 {
					k = 1 + rng.Intn(k)
				}
				notify := false
				for _, r := range held[:k] {
					id := d.g.m.Read32(d.g.mustOff(r.Segs[0].Addr))
					d.fill(devReq{Segs: r.Segs[1:2]}, id)
					d.fill(devReq{Segs: r.Segs[2:3]}, ^id)
					d.postRaw(uint32(r.Head), 68)
					// Decide per completion, as a device may.
					if d.shouldInterrupt() {
						notify = true
					}
				}
				held = held[k:]
				if notify {
					select {
					case irq <- struct{}{}:
					default:
					}
				}
				if len(held) > 0 {
					runtime.Gosched()
					continue
				}
				if d.arm() {
					continue
				}
				deviceSleeps++
				select {
				case <-kick:
				case <-stop:
					return nil
				case <-time.After(timeout):
					return errors.New("device: lost kick")
				}
			}
		}()
	}()

	next, done, driverSleeps := 0, 0, 0
	var cs []Completion
	for done < total {
		progress := false
		for next < total && len(freeSlots) > 0 {
			s := freeSlots[len(freeSlots)-1]
			b := slots[s]
			e.g.m.Write32(e.g.mustOff(b.hdr.Addr), uint32(next))
			if _, err := e.q.Add([]Buffer{b.hdr, b.data, b.status}, token{s, next}); errors.Is(err, ErrFull) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			freeSlots = freeSlots[:len(freeSlots)-1]
			next++
			progress = true
		}
		if e.q.Kick() {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		var err error
		cs, err = e.q.Poll(cs[:0])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			tok := c.Token.(token)
			b := slots[tok.slot]
			if c.Len != 68 {
				t.Fatalf("len %d", c.Len)
			}
			if got := e.g.m.Read32(e.g.mustOff(b.data.Addr) + 60); got != uint32(tok.id) {
				t.Fatalf("request %d: data %d", tok.id, got)
			}
			if got := e.g.m.Read32(e.g.mustOff(b.status.Addr)); got != ^uint32(tok.id) {
				t.Fatalf("request %d: status %#x", tok.id, got)
			}
			freeSlots = append(freeSlots, tok.slot)
			done++
		}
		if len(cs) > 0 || progress {
			continue
		}
		// Nothing to do: sleep until interrupted.
		if napi && e.q.EnableInterrupts() {
			continue
		}
		driverSleeps++
		select {
		case <-irq:
			if napi {
				e.q.DisableInterrupts()
			}
		case err := <-devErr:
			t.Fatalf("device stopped: %v", err)
		case <-time.After(timeout):
			t.Fatalf("driver: lost interrupt (done %d of %d, in flight %d)", done, total, e.q.InFlight())
		}
	}
	close(stop)
	if err := <-devErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests; driver slept %d times, device %d times", total, driverSleeps, deviceSleeps)
	if driverSleeps == 0 || deviceSleeps == 0 {
		t.Errorf("notification paths not exercised")
	}
	if e.q.NumFree() != n || e.q.InFlight() != 0 {
		t.Fatalf("NumFree %d InFlight %d", e.q.NumFree(), e.q.InFlight())
	}
}
