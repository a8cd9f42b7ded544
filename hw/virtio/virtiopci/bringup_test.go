package virtiopci

import (
	"errors"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// TestBringupSteps steps the state machine through §3.1.1 one state at a
// time, checking the device after each.
func TestBringupSteps(t *testing.T) {
	const offered = version1 | 1<<9 | 1<<6 | 1
	d := newFakeDevice(t, offered, 128)
	d.set(func(d *fakeDevice) {
		d.status = statusAcknowledge | statusDriver | statusFeaturesOK | statusDriverOK // left by a previous driver
		d.resetReads = 2
	})
	cr, err := mmio.Window(d.regs, atCommon, 0x3c)
	if err != nil {
		t.Fatal(err)
	}
	b := &bringup{c: common{cr}}
	step := func() {
		if err := b.step(); err != nil {
			t.Fatalf("step at %s: %v", b.state, err)
		}
	}
	for i, s := range []struct {
		do     func()
		state  state
		status uint8 // the device's
	}{
		{step, stateResetWait, 0x0f}, // 0 written; the reset takes two reads
		{step, stateResetWait, 0x0f},
		{step, stateAcknowledge, 0},
		{step, stateDriver, statusAcknowledge},
		{step, stateReadFeatures, statusAcknowledge | statusDriver},
		{step, stateNegotiate, statusAcknowledge | statusDriver},
		{step, stateNegotiate, statusAcknowledge | statusDriver}, // idle
		{func() { b.negotiate(version1 | 1) }, stateWriteFeatures, statusAcknowledge | statusDriver},
		{step, stateFeaturesOK, statusAcknowledge | statusDriver},
		{step, stateCheckFeatures, statusAcknowledge | statusDriver | statusFeaturesOK},
		{step, stateQueues, statusAcknowledge | statusDriver | statusFeaturesOK},
		{step, stateQueues, statusAcknowledge | statusDriver | statusFeaturesOK}, // idle
		{b.start, stateDriverOK, statusAcknowledge | statusDriver | statusFeaturesOK},
		{step, stateLive, statusAcknowledge | statusDriver | statusFeaturesOK | statusDriverOK},
		{step, stateLive, statusAcknowledge | statusDriver | statusFeaturesOK | statusDriverOK}, // idle
	} {
		s.do()
		if got := d.get().status; b.state != s.state || got != s.status {
			t.Fatalf("after step %d: %s with device status %#x, want %s with %#x", i, b.state, got, s.state, s.status)
		}
	}
	if b.device != offered {
		t.Errorf("device features %#x, want %#x", b.device, offered)
	}
	if got := d.get().driverFeatures; got != version1|1 {
		t.Errorf("device got driver features %#x", got)
	}
}

func TestResetTakesSomeReads(t *testing.T) {
	d := newFakeDevice(t, version1, 64)
	d.set(func(d *fakeDevice) { d.status, d.resetReads = 0x0f, 5 })
	tr := newTestTransport(t, d, &fakeMemory{}, 4)
	if got := d.get(); got.status != statusAcknowledge|statusDriver || got.statusReads < 5 {
		t.Errorf("device status %#x after %d reads", got.status, got.statusReads)
	}
	if tr.DeviceFeatures() != version1 {
		t.Errorf("DeviceFeatures = %#x", tr.DeviceFeatures())
	}
}

func TestResetNeverCompletes(t *testing.T) {
	d := newFakeDevice(t, version1, 64)
	d.set(func(d *fakeDevice) { d.status, d.resetReads = 0x0f, -1 })
	start := time.Now()
	_, err := New(d.bars(), fakeCaps(4), Options{Memory: (&fakeMemory{}).source, ResetTimeout: 5 * time.Millisecond})
	var se *StatusError
	if !errors.Is(err, ErrResetTimeout) || !errors.As(err, &se) || se.Status != 0x0f || se.State != "reset wait" {
		t.Fatalf("New: %v, want a *StatusError matching ErrResetTimeout", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("the 5ms timeout took %v", time.Since(start))
	}
	if got := d.get().status; got != 0x0f {
		t.Errorf("device status %#x written during the reset", got)
	}
}

func TestFeaturesRefused(t *testing.T) {
	d := newFakeDevice(t, version1|1, 64)
	d.set(func(d *fakeDevice) { d.refuse = true })
	mem := &fakeMemory{}
	tr := newTestTransport(t, d, mem, 4)
	err := tr.SetFeatures(version1 | 1)
	var se *StatusError
	if !errors.Is(err, ErrFeaturesRefused) || !errors.As(err, &se) || se.Status != statusAcknowledge|statusDriver || se.State != "check FEATURES_OK" {
		t.Fatalf("SetFeatures: %v, want a *StatusError matching ErrFeaturesRefused", err)
	}
	if got := d.get().status; got != statusAcknowledge|statusDriver|statusFailed {
		t.Errorf("device status %#x, want ACKNOWLEDGE|DRIVER|FAILED", got)
	}
	if _, err := tr.Memory(4096); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetupQueue(0, 64, 0x100000, 0x101000, 0x102000); !errors.Is(err, ErrFeaturesRefused) {
		t.Errorf("SetupQueue after the refusal: %v", err)
	}
	if err := tr.Start(); !errors.Is(err, ErrFeaturesRefused) {
		t.Errorf("Start after the refusal: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if got := d.get().status; got != 0 || mem.releases() != 1 {
		t.Errorf("after Close: status %#x, %d releases", got, mem.releases())
	}
}

func TestNeedsReset(t *testing.T) {
	for _, c := range []struct {
		at    uint8
		state string
	}{{statusFeaturesOK, "check FEATURES_OK"}, {statusDriverOK, "DRIVER_OK"}} {
		d := newFakeDevice(t, version1, 64)
		d.set(func(d *fakeDevice) { d.needsResetAt = c.at })
		tr := newTestTransport(t, d, &fakeMemory{}, 4)
		err := tr.SetFeatures(version1)
		if err == nil {
			err = tr.Start()
		}
		var se *StatusError
		if !errors.Is(err, ErrNeedsReset) || errors.Is(err, ErrFeaturesRefused) || !errors.As(err, &se) || se.State != c.state || se.Status&statusNeedsReset == 0 {
			t.Errorf("DEVICE_NEEDS_RESET at %#x: %v, want a *StatusError at %s matching ErrNeedsReset", c.at, err, c.state)
		}
		if got := d.get().status; got&statusFailed == 0 {
			t.Errorf("device status %#x without FAILED", got)
		}
	}
}
