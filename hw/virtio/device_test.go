package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwtest"
	"github.com/tarstore/tarstore/hw/internal/dma"
)

// openFake opens a Device over fake devices made by mk; every reconnect
// gets a new one from mk.
func openFake(t testing.TB, opts Options, mk func() *fakeDevice) (*Device, func() *fakeDevice) {
	t.Helper()
	var mu sync.Mutex
	var cur *fakeDevice
	dev, err := Open(func() (Transport, error) {
		f := mk()
		mu.Lock()
		cur = f
		mu.Unlock()
		return f, nil
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev, func() *fakeDevice {
		mu.Lock()
		defer mu.Unlock()
		return cur
	}
}

func TestFakeConformance(t *testing.T) {
	for _, c := range []struct {
		name     string
		features uint64
		reorder  bool
		opts     Options
	}{
		{"all", fakeAll, false, Options{}},
		{"direct-no-event-idx", fakeAll &^ (FeatureIndirectDesc | FeatureEventIdx), false, Options{}},
		{"reordered", fakeAll, true, Options{}},
		{"polled-reordered", fakeAll, true, Options{}},
		{"reordered-direct", fakeAll &^ FeatureIndirectDesc, true, Options{QueueSize: 16}},
		{"no-limits", FeatureVersion1 | FeatureBlkBlkSize | FeatureBlkFlush, false, Options{MaxTransfer: 12 << 10, Slots: 3}},
	} {
		for _, bs := range []int{512, 4096} {
			t.Run(fmt.Sprintf("%s/%d", c.name, bs), func(t *testing.T) {
				var mu sync.Mutex
				disks := map[*Device]*fakeDevice{}
				open := func(t *testing.T, disk []byte) hw.Block {
					dev, cur := openFake(t, c.opts, func() *fakeDevice {
						f := newFake(t, bs, 4096, c.features)
						f.reorder = c.reorder
						f.polled = strings.HasPrefix(c.name, "polled")
						if disk != nil {
							f.disk = disk
						}
						return f
					})
					mu.Lock()
					disks[dev] = cur()
					mu.Unlock()
					return dev
				}
				hwtest.TestDevice(t, hwtest.Harness{
					Open: func(t *testing.T) hw.Block { return open(t, nil) },
					Reopen: func(t *testing.T, old hw.Block) hw.Block {
						mu.Lock()
						f := disks[old.(*Device)]
						mu.Unlock()
						return open(t, f.snapshot())
					},
				})
			})
		}
	}
}

func TestInfoAndFeatures(t *testing.T) {
	dev, _ := openFake(t, Options{}, func() *fakeDevice { return newFake(t, 4096, 100, fakeAll|FeatureBlkRO|1<<40) })
	// size_max 64 KiB × seg_max 8 allows 512 KiB: DefaultMaxTransfer
	// bounds it; FLUSH is offered, so writes are not write-through.
	want := hw.Info{SectorSize: 4096, Sectors: 100, ReadOnly: true, Driver: "virtio", Model: "fake", Serial: "fake-serial",
		MaxTransfer: DefaultMaxTransfer, QueueDepth: DefaultSlots}
	if got := dev.Info(); got != want {
		t.Errorf("Info %+v, want %+v", got, want)
	}
	if got := dev.Features(); got != fakeAll|FeatureBlkRO {
		t.Errorf("Features %#x, want the offered ones the driver knows, %#x", got, uint64(fakeAll|FeatureBlkRO))
	}
	if err := dev.Write(0, make([]byte, 4096)); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("write to a read-only device: %v", err)
	}
	noCache, _ := openFake(t, Options{}, func() *fakeDevice { return newFake(t, 512, 100, fakeAll&^FeatureBlkFlush) })
	if !noCache.Info().WriteThrough {
		t.Error("a device without VIRTIO_BLK_F_FLUSH is not reported write-through")
	}
	ro, _ := openFake(t, Options{ReadOnly: true}, func() *fakeDevice { return newFake(t, 512, 100, fakeAll) })
	if !ro.Info().ReadOnly {
		t.Error("Options.ReadOnly ignored")
	}
}

func TestUnusableDevices(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(f *fakeDevice)
	}{
		{"no VERSION_1", func(f *fakeDevice) { f.offered &^= FeatureVersion1 }},
		{"block size 1000", func(f *fakeDevice) { binary.LittleEndian.PutUint32(f.cfg[20:], 1000) }},
		{"block size 128 KiB", func(f *fakeDevice) { binary.LittleEndian.PutUint32(f.cfg[20:], 128<<10) }},
		{"capacity below a block", func(f *fakeDevice) { binary.LittleEndian.PutUint64(f.cfg, 7) }},
		{"no queue", func(f *fakeDevice) { f.qmax = 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, 4096, 100, fakeAll)
			c.mod(f)
			_, err := Open(func() (Transport, error) { return f, nil }, Options{})
			var he *hw.Error
			if !errors.As(err, &he) || !errors.Is(err, hw.ErrUnsupported) || !errors.Is(err, ErrBadDevice) || he.Op != "open" {
				t.Fatalf("Open: %v, want *hw.Error{open, ErrUnsupported, ErrBadDevice}", err)
			}
			if !f.isClosed() {
				t.Error("transport not closed after a failed open")
			}
		})
	}
	_, err := Open(func() (Transport, error) { return nil, errors.New("no such socket") }, Options{})
	if !errors.Is(err, hw.ErrIO) {
		t.Errorf("Open with a failing dial: %v", err)
	}
}

// TestSplitting checks that big transfers become requests within size_max
// × seg_max (the fake device fails the test otherwise) and MaxTransfer, and
// that write-zeroes follows max_write_zeroes_sectors.
func TestSplitting(t *testing.T) {
	var f *fakeDevice
	mk := func() *fakeDevice {
		f = newFake(t, 512, 8192, fakeAll)
		binary.LittleEndian.PutUint32(f.cfg[8:], 4096) // size_max
		binary.LittleEndian.PutUint32(f.cfg[12:], 3)   // seg_max
		return f
	}
	dev, _ := openFake(t, Options{}, mk)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	before := f.count()
	if err := dev.Write(10, data[:300<<10], data[300<<10:]); err != nil {
		t.Fatal(err)
	}
	if n := f.count() - before; n != (1<<20)/(12<<10)+1 {
		t.Errorf("1 MiB took %d requests, want %d of 12 KiB", n, (1<<20)/(12<<10)+1)
	}
	if !bytes.Equal(f.diskAt(10*512, 1<<20), data) {
		t.Fatal("device holds other bytes")
	}
	back := make([]byte, 1<<20)
	if err := dev.Read(10, back[:5000/512*512], back[5000/512*512:]); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back: %v", err)
	}
	before = f.count()
	if err := dev.WriteZeroes(20, 200); err != nil {
		t.Fatal(err)
	}
	if n := f.count() - before; n != 4 { // 64 sectors per request
		t.Errorf("200 sectors of zeroes took %d requests, want 4", n)
	}
	if z := f.diskAt(20*512, 201*512); !bytes.Equal(z[:200*512], make([]byte, 200*512)) || z[200*512] == 0 {
		t.Error("write-zeroes zeroed the wrong range")
	}
}

func TestStatusErrors(t *testing.T) {
	dev, cur := openFake(t, Options{MaxTransfer: 8 << 10}, func() *fakeDevice {
		f := newFake(t, 4096, 256, fakeAll)
		f.status = func(typ uint32, sector uint64) uint8 {
			switch {
			case typ == typeOut && sector == 8*8: // block 8
				return statusIOErr
			case typ == typeDiscard:
				return statusUnsupp
			}
			return statusOK
		}
		return f
	})
	// A 32 KiB write at block 4 is four requests; the one at block 8 fails.
	err := dev.Write(4, make([]byte, 32<<10))
	var he *hw.Error
	var se *StatusError
	if !errors.As(err, &he) || !errors.Is(err, hw.ErrIO) || he.Op != "write" || he.LBA != 8 || he.Sectors != 2 ||
		!errors.As(err, &se) || se.Status != statusIOErr || se.Sector != 64 || se.Op != "write" {
		t.Fatalf("write over a failing block: %v (%+v), want hw.ErrIO at LBA 8 with a StatusError", err, he)
	}
	t.Log(err)
	if err := dev.Discard(0, 8); !errors.Is(err, hw.ErrUnsupported) || !errors.As(err, &se) {
		t.Errorf("discard answered UNSUPP: %v, want hw.ErrUnsupported", err)
	}
	// The device stays usable.
	if err := dev.Write(0, make([]byte, 4096)); err != nil {
		t.Fatalf("write after device errors: %v", err)
	}
	if cur().count() < 6 {
		t.Error("requests did not reach the device")
	}
	noZeroes, _ := openFake(t, Options{}, func() *fakeDevice {
		return newFake(t, 512, 64, fakeAll&^(FeatureBlkWriteZeroes|FeatureBlkDiscard))
	})
	if err := noZeroes.WriteZeroes(0, 1); !errors.Is(err, hw.ErrUnsupported) {
		t.Errorf("WriteZeroes without the feature: %v", err)
	}
	if err := noZeroes.Discard(0, 1); !errors.Is(err, hw.ErrUnsupported) {
		t.Errorf("Discard without the feature: %v", err)
	}
	if err := hw.WriteZeroes(noZeroes, 0, 3); err != nil {
		t.Errorf("hw.WriteZeroes fallback: %v", err)
	}
}

// TestTimeout: a device that stops answering fails the request with
// ErrTimeout after Options.Timeout, fails the other requests in flight,
// and the next request reconnects.
func TestTimeout(t *testing.T) {
	var stalled sync.Once
	stallAll := true
	dev, cur := openFake(t, Options{Timeout: 100 * time.Millisecond}, func() *fakeDevice {
		f := newFake(t, 512, 1024, fakeAll)
		stall := stallAll
		stallAll = false
		f.stall = func(typ uint32, sector uint64) bool { return stall && typ == typeIn && sector == 100 }
		return f
	})
	first := cur()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	start := time.Now()
	for i := range errs {
		wg.Go(func() {
			if i == 0 {
				errs[i] = dev.Read(100, make([]byte, 512))
				return
			}
			time.Sleep(20 * time.Millisecond)
			// These are served, or fail with the session if they
			// come after the stall has been noticed.
			errs[i] = dev.Read(uint64(200+i), make([]byte, 512))
		})
	}
	wg.Wait()
	stalled.Do(func() {})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if !errors.Is(errs[0], hw.ErrIO) || !errors.Is(errs[0], ErrTimeout) {
		t.Fatalf("stalled read: %v, want hw.ErrIO and ErrTimeout", errs[0])
	}
	t.Log(errs[0])
	if !first.isClosed() {
		t.Error("the timed-out session's transport is still open")
	}
	if err := dev.Read(100, make([]byte, 512)); err != nil {
		t.Fatalf("read after reconnecting: %v", err)
	}
	if cur() == first {
		t.Error("no reconnect")
	}
}

// TestDeviceGone: when the transport reports the device gone, requests in
// flight fail with ErrGone and none hangs; Close then fails new requests
// with hw.ErrClosed.
func TestDeviceGone(t *testing.T) {
	block := make(chan struct{})
	dev, cur := openFake(t, Options{}, func() *fakeDevice {
		f := newFake(t, 512, 1024, fakeAll)
		f.stall = func(typ uint32, sector uint64) bool {
			select {
			case <-block:
				return false
			default:
				return typ == typeOut
			}
		}
		return f
	})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = dev.Write(uint64(i), make([]byte, 512)) })
	}
	time.Sleep(50 * time.Millisecond)
	close(cur().gone)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, hw.ErrIO) || !errors.Is(err, ErrGone) {
			t.Errorf("write %d: %v, want hw.ErrIO and ErrGone", i, err)
		}
	}
	close(block)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Read(0, make([]byte, 512)); !errors.Is(err, hw.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
}

// TestCloseDuringRequests: Close fails the requests in flight with
// hw.ErrClosed and returns.
func TestCloseDuringRequests(t *testing.T) {
	dev, _ := openFake(t, Options{}, func() *fakeDevice {
		f := newFake(t, 512, 1024, fakeAll)
		f.stall = func(typ uint32, sector uint64) bool { return typ == typeIn }
		return f
	})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = dev.Read(uint64(i), make([]byte, 512)) })
	}
	time.Sleep(50 * time.Millisecond)
	dev.Close()
	wg.Wait()
	for i, err := range errs {
		var he *hw.Error
		if !errors.As(err, &he) || !errors.Is(err, hw.ErrClosed) || he.Op != "read" || he.LBA != uint64(i) {
			t.Errorf("read %d: %v, want hw.ErrClosed", i, err)
		}
	}
}

// pooledFake is the fake device behind a PoolTransport whose NewPool fails
// with err.
type pooledFake struct {
	*fakeDevice
	err error
}

func (p pooledFake) NewPool(int) (dma.Memory, error) { return nil, p.err }
func (p pooledFake) SharePool(dma.Memory) error      { return errors.New("no pool to share") }

// TestPoolWithoutHugepages: a transport with too few huge pages for the
// pool opens without one (AllocBuffer gives ordinary memory and requests
// bounce); any other failure of NewPool fails Open.
func TestPoolWithoutHugepages(t *testing.T) {
	f := newFake(t, 512, 100, fakeAll)
	dev, err := Open(func() (Transport, error) {
		return pooledFake{f, fmt.Errorf("pool: %w", dma.ErrNoHugepages)}, nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	b := hw.AllocBuffer(dev, 4096)
	b[0] = 7
	if err := dev.Write(1, b); err != nil || dev.pool != nil || dev.direct.Load() != 0 {
		t.Fatalf("write: %v; pool %v, %d requests in place", err, dev.pool != nil, dev.direct.Load())
	}

	g := newFake(t, 512, 100, fakeAll)
	_, err = Open(func() (Transport, error) { return pooledFake{g, errors.New("out of memory")}, nil }, Options{})
	if !errors.Is(err, hw.ErrIO) || !g.isClosed() {
		t.Fatalf("Open with NewPool failing otherwise: %v, transport closed %v", err, g.isClosed())
	}
}

// heapMemory is pool memory on the Go heap, for fakes that never touch it.
type heapMemory struct{ b []byte }

func (m heapMemory) Region() dma.Region { return dma.NewRegion(m.b, 1<<40) }
func (m heapMemory) Close() error       { return nil }

// stuckFake is a PoolTransport whose Close reports a reset that did not
// complete (closeErr), or a clean one (nil).
type stuckFake struct {
	*fakeDevice
	closeErr error
}

func (p stuckFake) NewPool(n int) (dma.Memory, error) { return heapMemory{make([]byte, n)}, nil }
func (p stuckFake) SharePool(dma.Memory) error        { return nil }
func (p stuckFake) Close() error                      { return errors.Join(p.fakeDevice.Close(), p.closeErr) }

// TestPoolKeptWhenResetFails: Close releases the pool only when closing
// the transport stopped the device; after a reset that did not complete
// the device may still write there, so the pool is kept for good.
func TestPoolKeptWhenResetFails(t *testing.T) {
	for _, tc := range []struct {
		name     string
		closeErr error
		released bool
	}{
		{"reset completes", nil, true},
		{"reset times out", errors.New("device status not 0 after reset"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, 512, 100, fakeAll)
			dev, err := Open(func() (Transport, error) { return stuckFake{f, tc.closeErr}, nil }, Options{PoolSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if dev.pool == nil {
				t.Fatal("no pool over a PoolTransport")
			}
			dev.Close()
			if got := dev.pool.Released(); got != tc.released {
				t.Fatalf("pool released %v after Close, want %v", got, tc.released)
			}
		})
	}
}
