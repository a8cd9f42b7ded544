package virtio

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
)

// TestVhostUserPool writes and reads through buffers from AllocBuffer
// against a real qemu-storage-daemon: they go to the device in place (the
// image holds them byte for byte), a request that mixes a pool buffer with
// ordinary memory bounces, the pool is registered again after the daemon
// restarts, and a buffer kept past Close stays usable.
func TestVhostUserPool(t *testing.T) {
	const bs = 512
	d := startQSD(t, bs)
	dev := openQSD(t, d, Options{Timeout: 10 * time.Second, PoolSize: 4 << 20})
	defer dev.Close()

	// A 1 MiB write from three pool buffers, split into four device
	// requests of 256 KiB: the last three lie in one buffer each and go in
	// place; the first spans two buffers and goes in place when their
	// pieces fit the descriptors of one request (size_max, seg_max).
	parts := [][]byte{hw.AllocBuffer(dev, bs), hw.AllocBuffer(dev, 256<<10-bs), hw.AllocBuffer(dev, 768<<10)}
	want := make([]byte, 0, 1<<20)
	for i, p := range parts {
		for j := range p {
			p[j] = byte(j*7 + i)
		}
		want = append(want, p...)
	}
	before := dev.direct.Load()
	if err := dev.Write(2048, parts...); err != nil {
		t.Fatal(err)
	}
	if err := dev.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := dev.direct.Load() - before; n < 3 {
		t.Fatalf("%d device requests in place for a 1 MiB write of pool buffers, want at least 3", n)
	}
	img, err := os.ReadFile(d.Image)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img[2048*bs:][:1<<20], want) {
		t.Fatal("the image does not hold what was written from pool buffers")
	}

	// Read back into one pool buffer, in place.
	back := hw.AllocBuffer(dev, 1<<20)
	before = dev.direct.Load()
	if err := dev.Read(2048, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, want) || dev.direct.Load() == before {
		t.Fatalf("read into a pool buffer: equal %v, %d requests in place", bytes.Equal(back, want), dev.direct.Load()-before)
	}

	// A pool buffer and ordinary memory in one device request: bounced,
	// and still right.
	mixed := [][]byte{hw.AllocBuffer(dev, 4096), make([]byte, 4096)}
	before = dev.direct.Load()
	if err := dev.Read(2048, mixed...); err != nil {
		t.Fatal(err)
	}
	if dev.direct.Load() != before || !bytes.Equal(append(mixed[0], mixed[1]...), want[:8192]) {
		t.Fatal("a request mixing pool and ordinary memory went in place, or read wrong")
	}

	// The daemon goes away and comes back: the next request reconnects
	// and the pool's buffers still go in place.
	d.Kill()
	if err := dev.Read(2048, back); !errors.Is(err, hw.ErrIO) {
		t.Fatalf("read with the daemon down: %v", err)
	}
	d.Restart(t)
	clear(back)
	before = dev.direct.Load()
	deadline := time.Now().Add(5 * time.Second)
	for err = dev.Read(2048, back); err != nil && time.Now().Before(deadline); err = dev.Read(2048, back) {
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("read after the restart: %v", err)
	}
	if !bytes.Equal(back, want) || dev.direct.Load() == before {
		t.Fatalf("after the reconnect: equal %v, %d requests in place", bytes.Equal(back, want), dev.direct.Load()-before)
	}

	// Released buffers are handed out again; a full pool gives ordinary
	// memory, which still works.
	for _, p := range parts {
		hw.ReleaseBuffer(dev, p)
	}
	if again := hw.AllocBuffer(dev, 1<<20); dev.pool.Outstanding() != 3 {
		t.Fatalf("%d buffers out after releasing 3 and allocating 1, want 3", dev.pool.Outstanding())
	} else {
		hw.ReleaseBuffer(dev, again)
	}
	big := hw.AllocBuffer(dev, 8<<20)
	if _, ok := dev.pool.Addr(big); ok {
		t.Fatal("a buffer larger than the pool came from the pool")
	}
	if err := dev.Read(0, big); err != nil {
		t.Fatal(err)
	}

	// Buffers kept past Close stay mapped until released.
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, want) {
		t.Fatal("a pool buffer changed at Close")
	}
	if b := hw.AllocBuffer(dev, 4096); len(b) != 4096 || dev.pool.Outstanding() != 2 {
		t.Fatal("AllocBuffer after Close came from the pool")
	}
	hw.ReleaseBuffer(dev, back)
	hw.ReleaseBuffer(dev, parts[0]) // released already: ignored
	hw.ReleaseBuffer(dev, make([]byte, 4096))
	if dev.pool.Released() {
		t.Fatal("the pool went away with a buffer still out")
	}
	hw.ReleaseBuffer(dev, mixed[0])
	if !dev.pool.Released() {
		t.Fatal("the pool of a closed Device stayed after its last buffer came back")
	}
}
