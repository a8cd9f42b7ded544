package nvme

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dma"
)

// TestPool: buffers from AllocBuffer go to the controller in place (the
// fake walks their PRPs, in DMA memory it handed out and that was not
// released), also after a reconnect; a run that does not start on a page
// bounces; the pool's memory is released once Close reset the controller
// and the last buffer came back.
func TestPool(t *testing.T) {
	f := newFake(t, 512, 4096)
	f.chunk = 2 << 20 // huge-page-like chunks at scattered addresses
	stalled := false
	f.stall = func(c *command) bool { // under f.mu
		if c.opcode() == opRead && c.cdw(10) == 3000 && !stalled {
			stalled = true
			return true
		}
		return false
	}
	dev, err := Open(f.controller(), Options{clock: f.clock, PoolSize: 1 << 20, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	w := hw.AllocBuffer(dev, 512<<10)
	copy(w, pattern(len(w), 5))
	before := dev.direct.Load()
	if err := dev.Write(64, w); err != nil {
		t.Fatal(err)
	}
	// 512 KiB in 128 KiB commands, all in place.
	if n := dev.direct.Load() - before; n != 4 {
		t.Fatalf("%d commands in place for a 512 KiB write from the pool, want 4", n)
	}
	if !bytes.Equal(f.diskAt(64*512, len(w)), w) {
		t.Fatal("the disk does not hold what was written in place")
	}
	r := hw.AllocBuffer(dev, 64<<10)
	before = dev.direct.Load()
	if err := dev.Read(64, r); err != nil || !bytes.Equal(r, w[:len(r)]) || dev.direct.Load() != before+1 {
		t.Fatalf("read into the pool: %v, equal %v, %d in place", err, bytes.Equal(r, w[:len(r)]), dev.direct.Load()-before)
	}
	// Not on a page: bounced, and right.
	before = dev.direct.Load()
	if err := dev.Read(64, r[512:1536]); err != nil || !bytes.Equal(r[512:1536], w[:1024]) || dev.direct.Load() != before {
		t.Fatalf("read into a run off a page: %v, %d in place", err, dev.direct.Load()-before)
	}

	// A timeout ends the session; the next one uses the pool in place.
	if err := dev.Read(3000, r[:512]); !errors.Is(err, ErrTimeout) {
		t.Fatalf("stalled read: %v", err)
	}
	clear(r)
	before = dev.direct.Load()
	if err := dev.Read(64, r); err != nil || !bytes.Equal(r, w[:len(r)]) || dev.direct.Load() != before+1 {
		t.Fatalf("read into the pool after the reconnect: %v, %d in place", err, dev.direct.Load()-before)
	}

	// Close with a buffer out keeps the pool's memory; its release
	// frees it.
	hw.ReleaseBuffer(dev, w)
	released, _ := f.releases()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := f.releases()
	if after != released+1 { // the last session's memory, not the pool
		t.Fatalf("Close released %d regions, want 1 (the pool has a buffer out)", after-released)
	}
	if b := hw.AllocBuffer(dev, 4096); dev.pool.Outstanding() != 1 || len(b) != 4096 {
		t.Fatal("AllocBuffer after Close came from the pool")
	}
	hw.ReleaseBuffer(dev, r)
	if last, _ := f.releases(); last != after+1 || !dev.pool.Released() {
		t.Fatalf("the last buffer's release freed %d regions, want the pool's", last-after)
	}
}

// TestPoolWithoutHugepages: when the memory source has too few huge pages
// for the pool, Open succeeds without one, AllocBuffer returns ordinary
// memory and requests bounce; any other failure fails Open.
func TestPoolWithoutHugepages(t *testing.T) {
	f := newFake(t, 512, 4096)
	ctrl := f.controller()
	const poolSize = 3 << 20
	failWith := dma.ErrNoHugepages
	ctrl.Memory = func(size int) (dma.Region, func() error, error) {
		if size == poolSize {
			return dma.Region{}, nil, fmt.Errorf("mmap: %w", failWith)
		}
		return f.memory(size)
	}
	dev, err := Open(ctrl, Options{clock: f.clock, PoolSize: poolSize})
	if err != nil {
		t.Fatal(err)
	}
	b := hw.AllocBuffer(dev, 4096)
	copy(b, pattern(len(b), 9))
	if err := dev.Write(8, b); err != nil {
		dev.Close()
		t.Fatal(err)
	}
	if dev.pool != nil || dev.direct.Load() != 0 || !bytes.Equal(f.diskAt(8*512, 4096), b) {
		dev.Close()
		t.Fatalf("pool %v, %d requests in place, or the write went wrong", dev.pool != nil, dev.direct.Load())
	}
	// The second Open below resets the same controller: the first
	// driver must be gone first (its poller still rings doorbells).
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}

	failWith = errors.New("no memory at all")
	if _, err := Open(ctrl, Options{clock: f.clock, PoolSize: poolSize}); !errors.Is(err, hw.ErrIO) {
		t.Fatalf("Open with the pool's memory failing otherwise: %v, want hw.ErrIO", err)
	}
}
