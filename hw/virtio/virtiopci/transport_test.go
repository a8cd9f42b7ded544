package virtiopci

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// That *Transport is a hw/virtio Transport is asserted in hw/virtio
// (pci_linux.go), which imports this package.

func TestLifecycle(t *testing.T) {
	d := newFakeDevice(t, version1|1<<9|1, 256, 128)
	mem := &fakeMemory{}
	tr := newTestTransport(t, d, mem, 4)
	if tr.Name() != "fake" || tr.DeviceFeatures() != version1|1<<9|1 {
		t.Errorf("Name %q, DeviceFeatures %#x", tr.Name(), tr.DeviceFeatures())
	}
	if err := tr.SetFeatures(version1 | 1); err != nil {
		t.Fatal(err)
	}
	r, err := tr.Memory(64 << 10)
	if err != nil || r.Len() < 64<<10 {
		t.Fatalf("Memory: %d bytes, %v", r.Len(), err)
	}
	for i, want := range []int{256, 128, 0, 0} {
		if got, err := tr.QueueMax(i); got != want || err != nil {
			t.Errorf("QueueMax(%d) = %d, %v; want %d", i, got, err, want)
		}
	}
	if err := tr.SetupQueue(0, 128, 0x100000, 0x101000, 0x102000); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetupQueue(1, 128, 0x1_0000_0010, 0x1_0000_1002, 0x1_0000_2004); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	s := d.get()
	if s.status != statusAcknowledge|statusDriver|statusFeaturesOK|statusDriverOK || s.driverFeatures != version1|1 {
		t.Errorf("device status %#x, driver features %#x", s.status, s.driverFeatures)
	}
	for i, want := range []fakeQueue{
		{max: 256, size: 128, vector: noVector, enabled: true, desc: 0x100000, driver: 0x101000, device: 0x102000},
		{max: 128, size: 128, vector: noVector, enabled: true, notifyOff: 1, desc: 0x1_0000_0010, driver: 0x1_0000_1002, device: 0x1_0000_2004},
	} {
		if s.queues[i] != want {
			t.Errorf("queue %d is %v, want %v", i, s.queues[i], want)
		}
	}
	if err := tr.Notify(1); err != nil {
		t.Fatal(err)
	}
	if err := tr.Notify(0); err != nil {
		t.Fatal(err)
	}
	if got := d.get().notifies; len(got) != 2 || got[0] != (notifyWrite{4, 1}) || got[1] != (notifyWrite{0, 0}) {
		t.Errorf("notify writes %v, want queue 1 at 4, queue 0 at 0", got)
	}
	for range 2 * spinWaits {
		if err := tr.Wait(0); err != nil {
			t.Fatal(err)
		}
	}

	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if got := d.get().status; got != 0 || mem.releases() != 1 {
		t.Errorf("after Close: device status %#x, %d releases", got, mem.releases())
	}
	if err := tr.Close(); err != nil || mem.releases() != 1 {
		t.Errorf("second Close: %v, %d releases", err, mem.releases())
	}
	for name, err := range map[string]error{
		"Wait": tr.Wait(0), "Notify": tr.Notify(0), "SetFeatures": tr.SetFeatures(version1),
		"Start": tr.Start(), "SetupQueue": tr.SetupQueue(1, 8, 0, 0, 0),
	} {
		var e *Error
		if !errors.Is(err, ErrClosed) || !errors.As(err, &e) || e.Name != "fake" {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if _, err := tr.ReadConfig(0, 4); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadConfig after Close: %v", err)
	}
	if _, err := tr.Memory(4096); !errors.Is(err, ErrClosed) {
		t.Errorf("Memory after Close: %v", err)
	}
	if _, err := tr.QueueMax(0); !errors.Is(err, ErrClosed) {
		t.Errorf("QueueMax after Close: %v", err)
	}
}

// TestNotifyAddress checks queue_notify_off × notify_off_multiplier
// (§4.1.4.4) for multipliers 0 and 4.
func TestNotifyAddress(t *testing.T) {
	for _, c := range []struct {
		mult uint32
		want []int // byte offset in the notify structure of queues 0, 1, 2
	}{
		{0, []int{0, 0, 0}},
		{4, []int{0, 4, 20}},
	} {
		d := newFakeDevice(t, version1, 8, 8, 8)
		d.set(func(d *fakeDevice) { d.queues[2].notifyOff = 5 })
		tr := newTestTransport(t, d, &fakeMemory{}, c.mult)
		if err := tr.SetFeatures(version1); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := tr.SetupQueue(i, 8, 0, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.Start(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := tr.Notify(i); err != nil {
				t.Fatal(err)
			}
		}
		got := d.get().notifies
		for i, off := range c.want {
			if got[i] != (notifyWrite{off, i}) {
				t.Errorf("multiplier %d: queue %d notified %+v, want at %d", c.mult, i, got[i], off)
			}
		}
	}
}

func TestNotifyOffsetOutsideStructure(t *testing.T) {
	for _, c := range []struct {
		mult      uint32
		notifyLen uint32
		off       int
	}{
		{4, 8, 2},          // 8 + 2 bytes in 8
		{4, 0x1000, 0x400}, // 0x1000 in 0x1000
		{1, 0x1000, 1},     // odd
		{0xffffffff, 0x1000, 0xffff},
	} {
		d := newFakeDevice(t, version1, 8)
		d.set(func(d *fakeDevice) { d.queues[0].notifyOff = c.off })
		caps := fakeCaps(c.mult)
		caps.Notify.Length = c.notifyLen
		tr, err := New(d.bars(), caps, Options{Memory: (&fakeMemory{}).source})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.SetFeatures(version1); err != nil {
			t.Fatal(err)
		}
		if err := tr.SetupQueue(0, 8, 0, 0, 0); !errors.Is(err, ErrCapability) {
			t.Errorf("notify_off %d × %d in %d bytes: %v, want ErrCapability", c.off, c.mult, c.notifyLen, err)
		}
		if q := d.get().queues[0]; q.enabled || q.size != 8 {
			t.Errorf("queue touched: %v", q)
		}
		tr.Close()
	}
}

func TestReadConfig(t *testing.T) {
	d := newFakeDevice(t, version1, 8)
	tr := newTestTransport(t, d, &fakeMemory{}, 4)
	want := make([]byte, deviceLen)
	for i := range want {
		want[i] = byte(0xa0 + i)
		d.regs.Poke(atDevice+i, 1, uint32(want[i]))
	}
	for _, c := range []struct{ off, n int }{{0, 8}, {1, 7}, {3, 6}, {2, 2}, {0, deviceLen}, {deviceLen, 0}, {deviceLen - 1, 1}} {
		got, err := tr.ReadConfig(c.off, c.n)
		if err != nil || !bytes.Equal(got, want[c.off:c.off+c.n]) {
			t.Errorf("ReadConfig(%d, %d) = % x, %v", c.off, c.n, got, err)
		}
	}
	for _, c := range []struct{ off, n int }{{-1, 1}, {0, -1}, {deviceLen - 3, 4}, {deviceLen + 1, 0}} {
		if _, err := tr.ReadConfig(c.off, c.n); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReadConfig(%d, %d): %v, want ErrInvalid", c.off, c.n, err)
		}
	}

	// The generation changes during the first three reads of device
	// configuration: those of two passes, so the third returns.
	d.set(func(d *fakeDevice) { d.bumps, d.genReads = 3, 0 })
	got, err := tr.ReadConfig(0, 8)
	if err != nil || !bytes.Equal(got, want[:8]) || d.get().genReads != 6 {
		t.Errorf("ReadConfig with a changing generation = % x, %v after %d generation reads, want 6", got, err, d.get().genReads)
	}
	d.set(func(d *fakeDevice) { d.bumps = 1 << 30 })
	if _, err := tr.ReadConfig(0, 8); !errors.Is(err, ErrConfigChanging) {
		t.Errorf("ReadConfig of an ever-changing configuration: %v", err)
	}

	// A device without a device configuration structure.
	caps := fakeCaps(4)
	caps.Device = Structure{}
	tr2, err := New(newFakeDevice(t, version1).bars(), caps, Options{Memory: (&fakeMemory{}).source})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	if _, err := tr2.ReadConfig(0, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReadConfig without a device structure: %v", err)
	}
}

func TestCallsOutOfOrder(t *testing.T) {
	d := newFakeDevice(t, version1|1, 64, 0)
	tr := newTestTransport(t, d, &fakeMemory{}, 4)
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	invalid("SetupQueue before SetFeatures", tr.SetupQueue(0, 64, 0, 0, 0))
	invalid("Start before SetFeatures", tr.Start())
	invalid("SetFeatures without VERSION_1", tr.SetFeatures(1))
	invalid("SetFeatures beyond the offer", tr.SetFeatures(version1|2))
	if err := tr.SetFeatures(version1 | 1); err != nil {
		t.Fatal(err)
	}
	invalid("SetFeatures twice", tr.SetFeatures(version1|1))
	if _, err := tr.Memory(4096); err != nil {
		t.Fatal(err)
	}
	_, err := tr.Memory(4096)
	invalid("Memory twice", err)
	_, err = tr.QueueMax(-1)
	invalid("QueueMax(-1)", err)
	for _, size := range []int{0, 3, 96, 128, -64} {
		invalid("SetupQueue of a bad size", tr.SetupQueue(0, size, 0, 0, 0))
	}
	invalid("SetupQueue of a misaligned descriptor table", tr.SetupQueue(0, 64, 8, 0, 0))
	invalid("SetupQueue of a misaligned available ring", tr.SetupQueue(0, 64, 0, 1, 0))
	invalid("SetupQueue of a misaligned used ring", tr.SetupQueue(0, 64, 0, 0, 2))
	invalid("SetupQueue of a queue of size 0", tr.SetupQueue(1, 1, 0, 0, 0))
	invalid("SetupQueue beyond num_queues", tr.SetupQueue(2, 1, 0, 0, 0))
	invalid("Notify before SetupQueue", tr.Notify(0))
	invalid("Wait before SetupQueue", tr.Wait(0))
	if err := tr.SetupQueue(0, 64, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	invalid("SetupQueue twice", tr.SetupQueue(0, 64, 0, 0, 0))
	_, err = tr.QueueMax(0)
	invalid("QueueMax of a queue set up", err)
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	invalid("Start twice", tr.Start())
	invalid("Notify(-1)", tr.Notify(-1))
	invalid("Notify(2)", tr.Notify(2))
}

func TestWaitSeesNeedsReset(t *testing.T) {
	d := newFakeDevice(t, version1, 8)
	tr := newTestTransport(t, d, &fakeMemory{}, 4)
	if err := errors.Join(tr.SetFeatures(version1), tr.SetupQueue(0, 8, 0, 0, 0), tr.Start()); err != nil {
		t.Fatal(err)
	}
	d.set(func(d *fakeDevice) { d.status |= statusNeedsReset })
	var err error
	for n := 0; err == nil && n <= spinWaits+1; n++ {
		err = tr.Wait(0)
	}
	if !errors.Is(err, ErrNeedsReset) {
		t.Fatalf("Wait: %v, want ErrNeedsReset", err)
	}
	if err := tr.Notify(0); err != nil { // the spin starts over
		t.Fatal(err)
	}
	if err := tr.Wait(0); err != nil {
		t.Errorf("first Wait after Notify: %v", err)
	}
}

func TestCloseWhileNotifyingAndWaiting(t *testing.T) {
	d := newFakeDevice(t, version1, 8, 8)
	mem := &fakeMemory{}
	tr := newTestTransport(t, d, mem, 4)
	if _, err := tr.Memory(4096); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tr.SetFeatures(version1), tr.SetupQueue(0, 8, 0, 0, 0), tr.SetupQueue(1, 8, 0, 0, 0), tr.Start()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Go(func() {
			for {
				err := tr.Notify(g % 2)
				if err == nil && g < 2 {
					err = tr.Wait(g)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for len(d.get().notifies) < 100 {
		runtime.Gosched()
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	}
	if mem.releases() != 1 || d.get().status != 0 {
		t.Errorf("Close: %d releases, device status %#x", mem.releases(), d.get().status)
	}
}

func TestCloseKeepsMemoryWhenResetFails(t *testing.T) {
	d := newFakeDevice(t, version1, 8)
	mem := &fakeMemory{}
	tr, err := New(d.bars(), fakeCaps(4), Options{Memory: mem.source, ResetTimeout: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Memory(4096); err != nil {
		t.Fatal(err)
	}
	d.set(func(d *fakeDevice) { d.resetReads = -1 })
	if err := tr.Close(); !errors.Is(err, ErrResetTimeout) {
		t.Errorf("Close: %v, want ErrResetTimeout", err)
	}
	if mem.releases() != 0 {
		t.Errorf("memory released though the device may still use it")
	}
}

func TestNewChecksStructures(t *testing.T) {
	d := newFakeDevice(t, version1, 8)
	mod := func(f func(c *Caps)) Caps { c := fakeCaps(4); f(&c); return c }
	for name, caps := range map[string]Caps{
		"common too short":      mod(func(c *Caps) { c.Common.Length = 0x37 }),
		"common misaligned":     mod(func(c *Caps) { c.Common.Offset = 2 }),
		"common past the BAR":   mod(func(c *Caps) { c.Common.Offset = barSize - 0x30 }),
		"common in another BAR": mod(func(c *Caps) { c.Common.BAR = 0 }),
		"common in BAR 9":       mod(func(c *Caps) { c.Common.BAR = 9 }),
		"notify too short":      mod(func(c *Caps) { c.Notify.Length = 1 }),
		"notify misaligned":     mod(func(c *Caps) { c.Notify.Offset = atNotify + 1 }),
		"notify past the BAR":   mod(func(c *Caps) { c.Notify.Length = 0xffffffff }),
		"device misaligned":     mod(func(c *Caps) { c.Device.Offset = atDevice + 2 }),
		"device past the BAR":   mod(func(c *Caps) { c.Device.Offset = barSize }),
	} {
		if _, err := New(d.bars(), caps, Options{Memory: (&fakeMemory{}).source}); !errors.Is(err, ErrCapability) {
			t.Errorf("%s: %v, want ErrCapability", name, err)
		}
	}
	if _, err := New(d.bars(), fakeCaps(4), Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no memory source: %v", err)
	}
	if got := d.get().statusReads; got != 0 {
		t.Errorf("device touched %d times by rejected New calls", got)
	}
}
