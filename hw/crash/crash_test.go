package crash_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/hw/hwtest"
	"github.com/tarstore/tarstore/hw/mem"
)

// TestConformance runs the driver suite on a crash device with no fault
// armed. Reopen goes through a DropAll crash of the closed device, so the
// persistence check proves that Flush made the data durable.
func TestConformance(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			hwtest.TestDevice(t, hwtest.Harness{
				Open: func(t *testing.T) hw.Block { return crash.New(newMem(t, ss, 512)) },
				Reopen: func(t *testing.T, dev hw.Block) hw.Block {
					return crash.New(dev.(*crash.Device).Crash(crash.DropAll, 0))
				},
			})
		})
	}
	t.Run("ReadOnly", func(t *testing.T) {
		hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
			return crash.New(newMem(t, 512, 16).ReadOnlyView())
		})
	})
}

func newMem(t *testing.T, ss int, sectors uint64) *mem.Device {
	t.Helper()
	d, err := mem.New(ss, sectors)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sector returns one sector of ss bytes of b.
func sector(ss int, b byte) []byte { return bytes.Repeat([]byte{b}, ss) }

func TestInfo(t *testing.T) {
	base := newMem(t, 4096, 10)
	d := crash.New(base)
	want := base.Info()
	want.Driver = "crash"
	if got := d.Info(); got != want {
		t.Errorf("Info() = %+v, want %+v", got, want)
	}
}

// TestFlushMovesToBase checks that base is the durable medium: it changes
// on Flush, not on Write.
func TestFlushMovesToBase(t *testing.T) {
	const ss = 512
	base := newMem(t, ss, 4)
	d := crash.New(base)
	if err := d.Write(1, sector(ss, 7)); err != nil {
		t.Fatal(err)
	}
	if base.Bytes()[ss] != 0 {
		t.Errorf("Write reached the durable medium before Flush")
	}
	if d.Pending() != 1 {
		t.Errorf("Pending() = %d, want 1", d.Pending())
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if base.Bytes()[ss] != 7 || d.Pending() != 0 {
		t.Errorf("after Flush: durable byte %d, pending %d; want 7, 0", base.Bytes()[ss], d.Pending())
	}
}

// TestCrashAnyTime takes crash images of a running device: they do not
// change it, and it keeps working.
func TestCrashAnyTime(t *testing.T) {
	const ss = 512
	d := crash.New(newMem(t, ss, 4))
	if err := d.Write(0, sector(ss, 1)); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(1, sector(ss, 2), sector(ss, 3)); err != nil {
		t.Fatal(err)
	}
	all := append(append(append(sector(ss, 1), sector(ss, 2)...), sector(ss, 3)...), sector(ss, 0)...)
	flushed := append(sector(ss, 1), make([]byte, 3*ss)...)
	for range 2 {
		if got := d.Crash(crash.KeepAll, 0).Bytes(); !bytes.Equal(got, all) {
			t.Errorf("KeepAll image differs from the device's contents")
		}
		if got := d.Crash(crash.DropAll, 0).Bytes(); !bytes.Equal(got, flushed) {
			t.Errorf("DropAll image differs from the flushed contents")
		}
	}
	if d.PowerLost() || d.Pending() != 1 {
		t.Errorf("Crash changed the device: power lost %v, pending %d", d.PowerLost(), d.Pending())
	}
	img := d.Crash(crash.KeepAll, 0)
	if err := img.Write(3, sector(ss, 9)); err != nil {
		t.Fatalf("crash image is not writable: %v", err)
	}
	buf := make([]byte, 4*ss)
	if err := d.Read(0, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, all) {
		t.Errorf("writing to a crash image changed the device")
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[crash.Mode]string{crash.KeepAll: "KeepAll", crash.DropAll: "DropAll", crash.Tear: "Tear", 7: "Mode(7)"} {
		if m.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(m), m.String(), want)
		}
	}
}

func TestStats(t *testing.T) {
	const ss = 512
	d := crash.New(newMem(t, ss, 8))
	steps := []func() error{
		func() error { return d.Write(0, sector(ss, 1), sector(ss, 2)) },
		func() error { return d.Read(0, make([]byte, 3*ss)) },
		func() error { return d.WriteZeroes(1, 2) },
		func() error { return d.Discard(4, 1) },
		d.Flush,
		func() error { return d.Write(3, sector(ss, 3)) },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// Invalid requests do not reach the medium and are not counted.
	if err := d.Write(8, sector(ss, 1)); err == nil {
		t.Fatal("out-of-range write succeeded")
	}
	if err := d.Write(0, make([]byte, 100)); err == nil {
		t.Fatal("misaligned write succeeded")
	}
	want := crash.Stats{Reads: 1, Writes: 4, Flushes: 1, BytesRead: 3 * ss, BytesWritten: 3 * ss}
	if got := d.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if d.Writes() != 4 || d.Flushes() != 1 || d.BytesWritten() != 3*ss {
		t.Errorf("Writes, Flushes, BytesWritten = %d, %d, %d", d.Writes(), d.Flushes(), d.BytesWritten())
	}
}
