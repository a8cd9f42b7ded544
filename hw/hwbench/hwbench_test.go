package hwbench

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
)

// slow delays every read: a device with a known latency.
type slow struct {
	hw.Block
	d time.Duration
}

func (s *slow) Read(lba uint64, bufs ...[]byte) error {
	time.Sleep(s.d)
	return s.Block.Read(lba, bufs...)
}

func newMem(t *testing.T, ss int, n uint64) hw.Block {
	d, err := mem.New(ss, n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCompare(t *testing.T) {
	fast := newMem(t, 512, 8192)
	slowDev := &slow{Block: newMem(t, 4096, 1024), d: 2 * time.Millisecond}
	figs, err := Compare([]Device{{"slow", slowDev}, {"fast", fast}}, Config{Ops: 20, Rounds: 3, QD: 1})
	if err != nil {
		t.Fatal(err)
	}
	if figs[0].Name != "slow" || figs[0].Ratio != 1 {
		t.Errorf("the first device is the reference: %+v", figs[0])
	}
	if figs[0].Latency < 2*time.Millisecond || figs[0].Latency > 50*time.Millisecond {
		t.Errorf("slow device's latency %v, want about 2ms", figs[0].Latency)
	}
	if figs[1].Ratio < 2 {
		t.Errorf("fast device's ratio %.2f, want well above 1", figs[1].Ratio)
	}
	// At QD 8, eight 2 ms reads overlap.
	deep, err := Compare([]Device{{"slow", slowDev}}, Config{Ops: 80, Rounds: 1, QD: 8})
	if err != nil {
		t.Fatal(err)
	}
	if deep[0].IOPS < 2*figs[0].IOPS {
		t.Errorf("QD8 %.0f IOPS vs QD1 %.0f: requests did not overlap", deep[0].IOPS, figs[0].IOPS)
	}
	t.Log(figs[0], figs[1], deep[0])
}

func TestCompareErrors(t *testing.T) {
	if _, err := Compare(nil, Config{}); err == nil {
		t.Error("no devices accepted")
	}
	if _, err := Compare([]Device{{"d", newMem(t, 4096, 64)}}, Config{Size: 512}); err == nil {
		t.Error("512-byte reads of a 4096-byte device accepted")
	}
	d := newMem(t, 512, 64)
	d.Close()
	if _, err := Compare([]Device{{"closed", d}}, Config{Ops: 2, Rounds: 1}); !errors.Is(err, hw.ErrClosed) {
		t.Errorf("closed device: %v", err)
	}
}

// recorder records the blocks written to it and lends buffers, counting
// those not given back.
type recorder struct {
	hw.Block
	mu     sync.Mutex
	writes []uint64
	reads  int
	out    int
}

func (r *recorder) Write(lba uint64, bufs ...[]byte) error {
	r.mu.Lock()
	r.writes = append(r.writes, lba)
	r.mu.Unlock()
	return r.Block.Write(lba, bufs...)
}

func (r *recorder) Read(lba uint64, bufs ...[]byte) error {
	r.mu.Lock()
	r.reads++
	r.mu.Unlock()
	return r.Block.Read(lba, bufs...)
}

func (r *recorder) AllocBuffer(n int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out++
	return make([]byte, n)
}

func (r *recorder) ReleaseBuffer([]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out--
}

// TestSequentialWrite: Write writes instead of reading, Sequential takes
// the blocks in order, wrapping around the span, and every buffer
// allocated for a round goes back to the device.
func TestSequentialWrite(t *testing.T) {
	r := &recorder{Block: newMem(t, 512, 64)}
	if _, err := Compare([]Device{{"r", r}}, Config{Size: 4096, Ops: 10, Rounds: 2, QD: 1, Sequential: true, Write: true}); err != nil {
		t.Fatal(err)
	}
	want := []uint64{0, 8, 16, 24, 32, 40, 48, 56, 0, 8, 16, 24, 32, 40, 48, 56, 0, 8, 16, 24}
	if !slices.Equal(r.writes, want) || r.reads != 0 {
		t.Errorf("wrote blocks %v and read %d times, want writes of %v only", r.writes, r.reads, want)
	}
	if r.out != 0 {
		t.Errorf("%d buffers not given back", r.out)
	}
}
