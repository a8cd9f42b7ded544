package faulty_test

import (
	"bytes"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/faulty"
)

// TestFailAtWrite walks one device through the life of a crash point:
// counting from the call, disarming, reads and flushes that do not count, a
// fault-failed write that does, the failing request kept from the device,
// and every later request failing.
func TestFailAtWrite(t *testing.T) {
	const ss = 512
	m, initial := numbered(t, 8)
	d := faulty.New(m)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("write 0", d.Write(0, sector(ss, 0xa0)))
	d.FailAtWrite(1)
	d.FailAtWrite(0)
	must("write 1 after disarming", d.Write(1, sector(ss, 0xa1)))

	d.FailAtWrite(3)
	d.InjectError(faulty.Fault{Op: faulty.OpWrite, LBA: 2, Times: 1})
	wantErr(t, "write 2, failed by a fault", d.Write(2, sector(ss, 0xa2)), "write", 2, hw.ErrIO, syscall.EIO)
	must("read", d.Read(0, make([]byte, 8*ss)))
	must("flush", d.Flush())
	must("write-zeroes 3", d.WriteZeroes(3, 1))
	wantErr(t, "discard 4, the crash point", d.Discard(4, 2), "discard", 4, hw.ErrIO, faulty.ErrPowerLost)

	want := append([]byte(nil), initial...)
	copy(want, sector(ss, 0xa0))
	copy(want[ss:], sector(ss, 0xa1))
	clear(want[3*ss : 4*ss])
	if !bytes.Equal(m.Bytes(), want) {
		t.Errorf("the device does not hold exactly the writes before the crash point")
	}
	stats := faulty.Stats{Reads: 1, Writes: 2, Flushes: 1, Zeroes: 1}
	checkDead(t, d, stats)
	if !bytes.Equal(m.Bytes(), want) {
		t.Errorf("requests after the power loss reached the device")
	}
}

// checkDead checks that after the power loss every checked request fails
// with ErrPowerLost and reaches nothing, that invalid requests are still
// refused as such, and that Close still closes the device.
func checkDead(t *testing.T, d *faulty.Device, stats faulty.Stats) {
	t.Helper()
	ss := d.Info().SectorSize
	buf := make([]byte, ss)
	for _, c := range []struct {
		op  string
		lba uint64
		err error
	}{
		{"read", 1, d.Read(1, buf)},
		{"write", 2, d.Write(2, buf)},
		{"flush", 0, d.Flush()},
		{"write-zeroes", 3, d.WriteZeroes(3, 1)},
		{"discard", 4, d.Discard(4, 1)},
	} {
		wantErr(t, c.op+" after the power loss", c.err, c.op, c.lba, hw.ErrIO, faulty.ErrPowerLost)
	}
	wantErr(t, "out-of-range read after the power loss", d.Read(d.Info().Sectors, buf), "read", d.Info().Sectors, hw.ErrOutOfRange, nil)
	d.FailAtWrite(1)
	if !d.PowerLost() {
		t.Errorf("PowerLost() = false")
	}
	if got := d.Stats(); got != stats {
		t.Errorf("Stats() = %+v, want %+v", got, stats)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close after the power loss: %v", err)
	}
	wantErr(t, "read after Close", d.Read(0, buf), "read", 0, hw.ErrClosed, nil)
	wantErr(t, "read of the device", d.Unwrap().Read(0, buf), "read", 0, hw.ErrClosed, nil)
}

// TestConcurrentPowerLoss cuts the power while several goroutines read,
// write and flush: exactly the writes before the crash point succeed and are
// on the device, the crash-point write and everything after it fail with
// ErrPowerLost and reach nothing.
func TestConcurrentPowerLoss(t *testing.T) {
	const (
		ss      = 512
		workers = 8
		each    = 25
		failAt  = 97
	)
	m := newMem(t, ss, workers*each)
	d := faulty.New(m)
	d.FailAtWrite(failAt)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acked   []uint64
		reads   int
		stopped int
	)
	for w := range uint64(workers) {
		wg.Go(func() {
			buf := make([]byte, ss)
			for i := range uint64(each) {
				lba := w*each + i
				errs := []error{d.Read(lba, buf), d.Write(lba, sector(ss, byte(lba+1)))}
				if i%4 == 3 {
					errs = append(errs, d.Flush())
				}
				mu.Lock()
				if errs[0] == nil {
					reads++
				}
				if errs[1] == nil {
					acked = append(acked, lba)
				}
				mu.Unlock()
				if err := errors.Join(errs...); err != nil {
					if !errors.Is(err, faulty.ErrPowerLost) {
						t.Errorf("worker %d: %v", w, err)
					}
					mu.Lock()
					stopped++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if len(acked) != failAt-1 || stopped == 0 {
		t.Fatalf("%d writes acknowledged, %d workers saw the power loss; want %d, at least 1", len(acked), stopped, failAt-1)
	}
	want := make([]byte, workers*each*ss)
	for _, lba := range acked {
		copy(want[lba*ss:], sector(ss, byte(lba+1)))
	}
	if !bytes.Equal(m.Bytes(), want) {
		t.Errorf("the device does not hold exactly the acknowledged writes")
	}
	st := d.Stats()
	if st.Writes != failAt-1 || st.Reads != reads {
		t.Errorf("Stats() = %+v, want %d writes and %d reads", st, failAt-1, reads)
	}
	checkDead(t, d, st)
}

// gate is a device whose writes to sector 0 wait, once inside the device,
// until release is closed.
type gate struct {
	hw.Block
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Write(lba uint64, bufs ...[]byte) error {
	if lba == 0 {
		close(g.entered)
		<-g.release
	}
	return g.Block.Write(lba, bufs...)
}

// TestInFlight holds a write inside the wrapped device: other requests go
// on meanwhile (the wrapper does not hold its lock across the device's I/O),
// and the power loss, by FailAtWrite or PowerOff, is not reported before
// the write in flight has returned.
func TestInFlight(t *testing.T) {
	const ss = 512
	for _, c := range []struct {
		name string
		cut  func(d *faulty.Device) error
	}{
		{"FailAtWrite", func(d *faulty.Device) error { d.FailAtWrite(1); return d.Write(2, sector(ss, 2)) }},
		{"PowerOff", func(d *faulty.Device) error { d.PowerOff(); return d.Read(2, make([]byte, ss)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMem(t, ss, 4)
			g := &gate{Block: m, entered: make(chan struct{}), release: make(chan struct{})}
			d := faulty.New(g)
			held := make(chan error)
			go func() { held <- d.Write(0, sector(ss, 1)) }()
			<-g.entered

			others := make(chan error)
			go func() { others <- errors.Join(d.Write(1, sector(ss, 1)), d.Read(1, make([]byte, ss)), d.Flush()) }()
			select {
			case err := <-others:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("requests wait for a write in flight on the device")
			}

			cut := make(chan error)
			go func() { cut <- c.cut(d) }()
			select {
			case err := <-cut:
				t.Fatalf("power loss reported (%v) while a write was in flight", err)
			case <-time.After(50 * time.Millisecond):
			}
			close(g.release)
			if err := <-held; err != nil {
				t.Errorf("the write in flight: %v", err)
			}
			if err := <-cut; !errors.Is(err, faulty.ErrPowerLost) {
				t.Errorf("after the cut: %v, want ErrPowerLost", err)
			}
			want := append(append(sector(ss, 1), sector(ss, 1)...), make([]byte, 2*ss)...)
			if !bytes.Equal(m.Bytes(), want) {
				t.Errorf("the device does not hold exactly the writes admitted before the cut")
			}
		})
	}
}
