package nvme

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwtest"
)

// openFake opens a Device over f on f's clock; the test closes it.
func openFake(t testing.TB, f *fakeController, opts Options) *Device {
	t.Helper()
	opts.clock = f.clock
	dev, err := Open(f.controller(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/512)
	}
	return b
}

// TestConformance runs the hw conformance suite over the fake controller
// at 512- and 4096-byte blocks, in several configurations.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(f *fakeController)
		opts  Options
	}{
		{"default", func(f *fakeController) {}, Options{}},
		{"out-of-order", func(f *fakeController) { f.reorder = true }, Options{}},
		// Four queue entries, 8 KiB commands (MDTS 1), huge-page-like
		// chunks of memory: many splits, many phase wraps.
		{"small", func(f *fakeController) { f.mdts = 1; f.chunk = 2 << 20; f.reorder = true }, Options{Slots: 3}},
		{"no cache, no zeroes, no discard, stride 16", func(f *fakeController) {
			f.vwc, f.oncs = false, 0
			f.cap |= 2 << 32
		}, Options{MaxTransfer: 64 << 10}},
		// AllocBuffer from a pool of DMA memory, in chunks.
		{"pool", func(f *fakeController) { f.chunk = 2 << 20 }, Options{PoolSize: 4 << 20}},
	} {
		for _, bs := range []int{512, 4096} {
			t.Run(fmt.Sprintf("%s/%d", c.name, bs), func(t *testing.T) {
				var mu sync.Mutex
				fakes := map[*Device]*fakeController{}
				open := func(t *testing.T, disk []byte) hw.Block {
					f := newFake(t, bs, 4096)
					c.setup(f)
					if disk != nil {
						f.setDisk(disk)
					}
					dev := openFake(t, f, c.opts)
					mu.Lock()
					fakes[dev] = f
					mu.Unlock()
					return dev
				}
				hwtest.TestDevice(t, hwtest.Harness{
					Open: func(t *testing.T) hw.Block { return open(t, nil) },
					Reopen: func(t *testing.T, old hw.Block) hw.Block {
						mu.Lock()
						f := fakes[old.(*Device)]
						mu.Unlock()
						return open(t, f.snapshot())
					},
				})
			})
		}
	}
}

func TestReadOnly(t *testing.T) {
	hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
		f := newFake(t, 4096, 64)
		f.nsattr = 1 // write protected
		return openFake(t, f, Options{})
	})
	hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
		return openFake(t, newFake(t, 512, 64), Options{ReadOnly: true})
	})
}

func TestInfoAndIdentity(t *testing.T) {
	f := newFake(t, 4096, 1000)
	f.mdts = 4
	dev := openFake(t, f, Options{Slots: 8, MaxTransfer: 200 << 10})
	// MDTS 4 with 4 KiB pages: 64 KiB per command, below MaxTransfer; the
	// fake has a volatile write cache.
	want := hw.Info{SectorSize: 4096, Sectors: 1000, Driver: "nvme", Model: "fake nvme", Serial: "fake-serial",
		MaxTransfer: 64 << 10, QueueDepth: 8}
	if got := dev.Info(); got != want {
		t.Errorf("Info %+v, want %+v", got, want)
	}
	id := Identity{
		VendorID: 0x1b36, Serial: "fake-serial", Model: "fake nvme", Firmware: "1.0", Version: fakeVS,
		Namespace: 1, LBAFormat: 2, VolatileWriteCache: true, WriteZeroes: true, Deallocate: true,
		MaxTransfer:  64 << 10, // MDTS 4: 16 pages; 200 KiB slots round down to 128
		QueueEntries: 9,
	}
	if got := dev.Identity(); got != id {
		t.Errorf("Identity %+v, want %+v", got, id)
	}
	// The bring-up: Identify Controller, Identify Namespace 1, one
	// queue pair of each kind, then the I/O CQ and SQ of 9 entries.
	var admin []string
	for _, w := range f.writes() {
		if strings.HasPrefix(w, "admin") {
			admin = append(admin, w)
		}
	}
	wantAdmin := []string{
		"admin 0x06 cdw10=0x1 cdw11=0x0", "admin 0x06 cdw10=0x0 cdw11=0x0", "admin 0x09 cdw10=0x7 cdw11=0x0",
		"admin 0x05 cdw10=0x80001 cdw11=0x1", "admin 0x01 cdw10=0x80001 cdw11=0x10001",
	}
	if !slices.Equal(admin, wantAdmin) {
		t.Errorf("admin commands %q, want %q", admin, wantAdmin)
	}
}

// TestOpenLeftEnabled: a controller SeaBIOS left enabled is disabled, and
// ready 0, before its admin queue is programmed (the fake fails the test
// otherwise).
func TestOpenLeftEnabled(t *testing.T) {
	f := newFake(t, 512, 256)
	f.seabios()
	dev := openFake(t, f, Options{})
	if w := f.writes(); len(w) < 2 || w[0] != "CC=0x460000" || w[1] != "AQA=0x30003" {
		t.Errorf("writes %q: want the disable first", w)
	}
	if err := dev.Write(0, pattern(512, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFailures(t *testing.T) {
	for _, c := range []struct {
		name     string
		setup    func(f *fakeController)
		opts     Options
		kind     error
		want     error
		released bool // the session's memory went back
	}{
		{"never ready", func(f *fakeController) { f.neverReady = true }, Options{}, hw.ErrIO, ErrReadyTimeout, true},
		{"fatal on enable", func(f *fakeController) { f.fatalOnEnable = true }, Options{}, hw.ErrIO, ErrFatal, true},
		{"never resets", func(f *fakeController) { f.seabios(); f.neverReset = true }, Options{}, hw.ErrIO, ErrReadyTimeout, false},
		{"no NVM Command Set", func(f *fakeController) { f.cap &^= 0xff << 37 }, Options{}, hw.ErrUnsupported, ErrBadController, false},
		{"namespace beyond NN", func(f *fakeController) {}, Options{Namespace: 2}, hw.ErrUnsupported, ErrBadController, true},
		{"inactive namespace", func(f *fakeController) { f.nn = 4 }, Options{Namespace: 3}, hw.ErrUnsupported, ErrBadController, true},
		{"metadata", func(f *fakeController) { f.formats[2] |= 8 }, Options{}, hw.ErrUnsupported, ErrBadController, true},
		{"64 KiB blocks, 32 KiB transfers", func(f *fakeController) { f.formats[2] = 16 << 16 }, Options{MaxTransfer: 32 << 10}, hw.ErrUnsupported, ErrBadController, true},
		{"blocks of 128 KiB", func(f *fakeController) { f.formats[2] = 17 << 16 }, Options{}, hw.ErrUnsupported, ErrBadController, true},
		{"128-byte SQ entries", func(f *fakeController) { f.sqes = 0x77 }, Options{}, hw.ErrUnsupported, ErrBadController, true},
		{"identify fails", func(f *fakeController) {
			f.adminStatus = func(c *command) Status {
				if c.opcode() == opIdentify {
					return Status(0x06 | 1<<14)
				}
				return 0
			}
		}, Options{}, hw.ErrIO, nil, true},
		{"create SQ refused", func(f *fakeController) {
			f.adminStatus = func(c *command) Status {
				if c.opcode() == opCreateSQ {
					return stInvalidQSize
				}
				return 0
			}
		}, Options{}, hw.ErrIO, nil, true},
		{"admin command never completes", func(f *fakeController) { f.adminStall = true }, Options{Timeout: 50 * time.Millisecond}, hw.ErrIO, ErrTimeout, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, 4096, 64)
			c.setup(f)
			releases := 0
			ctrl := f.controller()
			ctrl.Release = func() error { releases++; return nil }
			c.opts.clock = f.clock
			dev, err := Open(ctrl, c.opts)
			if err == nil {
				dev.Close()
			}
			var he *hw.Error
			if !errors.As(err, &he) || he.Op != "open" || he.Device != "fake" || !errors.Is(err, c.kind) || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want an *hw.Error{open, %v} wrapping %v", err, c.kind, c.want)
			}
			t.Log(err)
			if releases != 1 {
				t.Errorf("Controller.Release called %d times", releases)
			}
			if r, n := f.releases(); c.released && (r != 1 || n != 1) || !c.released && r != 0 {
				t.Errorf("%d of %d memory regions released", r, n)
			}
		})
	}
	t.Run("status error", func(t *testing.T) {
		f := newFake(t, 4096, 64)
		f.adminStatus = func(c *command) Status { return Status(0x06 | 1<<14) }
		_, err := Open(f.controller(), Options{clock: f.clock})
		var se *StatusError
		if !errors.As(err, &se) || se.Op != "identify controller" || se.SC != 0x06 || !se.DNR {
			t.Errorf("Open: %v, want a StatusError of Identify", err)
		}
	})
}

// TestPhaseWrap runs many commands, sequential and concurrent, through a
// queue of 4 entries, so that the completion queue's phase flips again
// and again.
func TestPhaseWrap(t *testing.T) {
	f := newFake(t, 512, 1024)
	dev := openFake(t, f, Options{Slots: 3})
	if got := dev.Identity().QueueEntries; got != 4 {
		t.Fatalf("queue of %d entries", got)
	}
	for i := range 200 {
		want := pattern(512*(1+i%3), byte(i))
		if err := dev.Write(uint64(i), want); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if err := dev.Read(uint64(i), got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("command %d: %v, data differs", i, err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				lba := uint64(300 + g*50 + i)
				want := pattern(512, byte(g*50+i))
				got := make([]byte, 512)
				if err := dev.Write(lba, want); err != nil {
					t.Error(err)
					return
				}
				if err := dev.Read(lba, got); err != nil || !bytes.Equal(got, want) {
					t.Errorf("lba %d: %v, data differs", lba, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if wraps, _, _ := f.counts(); wraps < 300 {
		t.Errorf("only %d passes through the completion queue", wraps)
	}
}

// TestOutOfOrder: the controller completes commands in another order than
// it fetched them; each goroutine still gets its own data.
func TestOutOfOrder(t *testing.T) {
	f := newFake(t, 512, 2048)
	f.reorder = true
	disk := pattern(512*2048, 3)
	f.setDisk(slices.Clone(disk))
	dev := openFake(t, f, Options{Slots: 8})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 40 {
				lba := (g*131 + i*17) % 2040
				n := 1 + i%8
				got := make([]byte, 512*n)
				if err := dev.Read(uint64(lba), got); err != nil || !bytes.Equal(got, disk[lba*512:][:len(got)]) {
					t.Errorf("read of %d blocks at %d: %v, data differs", n, lba, err)
					return
				}
			}
		})
	}
	wg.Wait()
	var fetched []uint16
	for _, io := range f.seen() {
		fetched = append(fetched, io.cid)
	}
	_, _, posted := f.counts()
	if len(posted) != len(fetched) || slices.Equal(posted, fetched) {
		t.Errorf("%d completions posted for %d commands, in the same order: nothing was out of order", len(posted), len(fetched))
	}
}

// TestMDTS: transfers are split at MDTS (in units of CAP.MPSMIN pages) and
// at the slot size; the fake fails the test on a larger transfer.
func TestMDTS(t *testing.T) {
	for _, c := range []struct {
		name     string
		mdts     uint8
		opts     Options
		maxBytes int
	}{
		{"MDTS 1", 1, Options{}, 8 << 10},
		{"MDTS 0 (no limit), slots of 16 KiB", 0, Options{MaxTransfer: 16 << 10}, 16 << 10},
		{"MDTS 7, default slots", 7, Options{}, DefaultMaxTransfer},
		{"MDTS 3, slots of 1 MiB", 3, Options{MaxTransfer: 1 << 20}, 32 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, 512, 4096)
			f.mdts = c.mdts
			dev := openFake(t, f, c.opts)
			if got := dev.Identity().MaxTransfer; got != c.maxBytes {
				t.Errorf("MaxTransfer %d, want %d", got, c.maxBytes)
			}
			want := pattern(1000*512, 9)
			if err := dev.Write(3, want[:300*512], want[300*512:]); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, io := range f.seen() {
				if io.op != opWrite {
					continue
				}
				n++
				if io.blocks*512 > c.maxBytes {
					t.Errorf("write of %d blocks", io.blocks)
				}
			}
			if wantN := (len(want) + c.maxBytes - 1) / c.maxBytes; n != wantN {
				t.Errorf("%d writes, want %d", n, wantN)
			}
			got := make([]byte, len(want))
			if err := dev.Read(3, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read back: %v", err)
			}
		})
	}
}

// TestPRPLists checks the PRP entries the controller sees: none beyond
// PRP1 for one page, PRP2 for two, a list in the slot's list page for more.
func TestPRPLists(t *testing.T) {
	for _, chunk := range []int{0, 2 << 20} {
		t.Run(fmt.Sprintf("chunk %d", chunk), func(t *testing.T) {
			f := newFake(t, 512, 4096)
			f.chunk = chunk
			dev := openFake(t, f, Options{MaxTransfer: 64 << 10})
			for _, blocks := range []int{1, 8, 9, 16, 17, 24, 40, 128} {
				data := pattern(blocks*512, byte(blocks))
				if err := dev.Write(100, data); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(data))
				if err := dev.Read(100, got); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%d blocks: %v", blocks, err)
				}
			}
			for _, io := range f.seen() {
				pages := (io.blocks*512 + pageSize - 1) / pageSize
				switch {
				case io.prp1%pageSize != 0:
					t.Errorf("%d blocks: PRP1 %#x is not page-aligned", io.blocks, io.prp1)
				case pages == 1 && (io.prp2 != 0 || io.list != nil):
					t.Errorf("one page: PRP2 %#x, list %#x", io.prp2, io.list)
				case pages == 2 && (io.prp2 != io.prp1+pageSize || io.list != nil):
					t.Errorf("two pages: PRP1 %#x PRP2 %#x, list %#x", io.prp1, io.prp2, io.list)
				case pages > 2:
					if io.prp2%pageSize != 0 || io.prp2 >= io.prp1 && io.prp2 < io.prp1+uint64(pages*pageSize) {
						t.Errorf("%d pages: PRP2 %#x is not a list page apart from the data at %#x", pages, io.prp2, io.prp1)
					}
					if len(io.list) != pages-1 {
						t.Errorf("%d pages: %d list entries", pages, len(io.list))
					}
					for i, e := range io.list {
						if e != io.prp1+uint64((i+1)*pageSize) {
							t.Errorf("%d pages: entry %d is %#x, want %#x", pages, i, e, io.prp1+uint64((i+1)*pageSize))
						}
					}
				}
			}
		})
	}
}

// TestCommandStatus: error statuses become *hw.Error values of the right
// kind at the failing command's LBA, carrying a *StatusError; the device
// stays usable.
func TestCommandStatus(t *testing.T) {
	f := newFake(t, 512, 1024)
	f.status = func(c *command) Status {
		slba := uint64(c.cdw(10))
		switch {
		case c.opcode() == opWrite && slba == 64:
			return Status(sctMedia<<8 | 0x80 | 1<<13) // Write Fault, More
		case c.opcode() == opRead && slba == 200:
			return Status(sctMedia<<8 | 0x81 | 1<<14) // Unrecovered Read Error, DNR
		case c.opcode() == opRead && slba == 300:
			return Status(scLBAOutOfRange | 1<<14)
		case c.opcode() == opRead && slba == 400:
			return stInvalidField
		case c.opcode() == opFlush:
			return stInvalidOpcode
		case c.opcode() == opWriteZeroes && slba == 500:
			return stInvalidField
		}
		return 0
	}
	dev := openFake(t, f, Options{MaxTransfer: 16 << 10})
	check := func(name string, err error, kind error, op string, lba, sectors uint64, sct, sc uint8) {
		t.Helper()
		var he *hw.Error
		var se *StatusError
		if !errors.As(err, &he) || !errors.Is(err, kind) || he.Op != op || he.LBA != lba || he.Sectors != sectors ||
			!errors.As(err, &se) || se.SCT != sct || se.SC != sc || se.Op != op || se.LBA != lba {
			t.Errorf("%s: %v (%+v), want %v at %d+%d with SCT %d SC %#x", name, err, he, kind, lba, sectors, sct, sc)
		}
	}
	// 64 KiB at block 32 is four commands; the one at 64 fails.
	err := dev.Write(32, make([]byte, 64<<10))
	check("write fault", err, hw.ErrIO, "write", 64, 32, sctMedia, 0x80)
	var se *StatusError
	if errors.As(err, &se) && (!se.More || se.DNR) {
		t.Errorf("More %v DNR %v", se.More, se.DNR)
	}
	t.Log(err)
	err = dev.Read(200, make([]byte, 512))
	check("unrecovered read", err, hw.ErrIO, "read", 200, 1, sctMedia, 0x81)
	if errors.As(err, &se) && !se.DNR {
		t.Error("DNR lost")
	}
	check("LBA out of range", dev.Read(300, make([]byte, 1024)), hw.ErrIO, "read", 300, 2, sctGeneric, scLBAOutOfRange)
	check("invalid field in a read", dev.Read(400, make([]byte, 512)), hw.ErrIO, "read", 400, 1, sctGeneric, scInvalidField)
	check("flush refused", dev.Flush(), hw.ErrUnsupported, "flush", 0, 0, sctGeneric, scInvalidOpcode)
	check("write zeroes refused", dev.WriteZeroes(500, 3), hw.ErrUnsupported, "write-zeroes", 500, 3, sctGeneric, scInvalidField)
	if err := hw.WriteZeroes(dev, 500, 3); err != nil {
		t.Errorf("hw.WriteZeroes falls back to writes: %v", err)
	}
	if z := f.diskAt(500*512, 3*512); !bytes.Equal(z, make([]byte, 3*512)) {
		t.Error("the fallback did not zero")
	}
	want := pattern(4096, 5)
	got := make([]byte, 4096)
	if err := dev.Write(0, want); err != nil || dev.Read(0, got) != nil || !bytes.Equal(got, want) {
		t.Fatalf("device unusable after errors: %v", err)
	}
}

// TestTimeoutReconnect: a command the controller never completes fails
// after Options.Timeout with ErrTimeout, and so do the others in flight;
// the next request brings the controller up again with new memory, and
// the old memory is released only after that reset.
func TestTimeoutReconnect(t *testing.T) {
	f := newFake(t, 512, 1024)
	stalled := false
	f.stall = func(c *command) bool { // under f.mu
		if c.opcode() == opRead && c.cdw(10) == 100 && !stalled {
			stalled = true
			return true
		}
		return false
	}
	dev := openFake(t, f, Options{Timeout: 100 * time.Millisecond})
	want := pattern(512, 7)
	if err := dev.Write(100, want); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 4)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range errs {
		wg.Go(func() {
			if i > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			errs[i] = dev.Read(uint64(100+i), make([]byte, 512))
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	var he *hw.Error
	if !errors.As(errs[0], &he) || !errors.Is(errs[0], hw.ErrIO) || !errors.Is(errs[0], ErrTimeout) || he.LBA != 100 || he.Op != "read" {
		t.Fatalf("stalled read: %v, want hw.ErrIO wrapping ErrTimeout at 100", errs[0])
	}
	t.Log(errs[0])
	for i, err := range errs[1:] {
		if err != nil && !errors.Is(err, ErrTimeout) {
			t.Errorf("read %d: %v, want success or the session's ErrTimeout", i+1, err)
		}
	}
	if r, n := f.releases(); r != 0 || n != 1 {
		t.Errorf("%d of %d regions released before any reset", r, n)
	}
	before := len(f.writes())
	got := make([]byte, 512)
	if err := dev.Read(100, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after the timeout: %v", err)
	}
	if w := f.writes()[before:]; len(w) < 2 || w[0] != "CC=0x460000" || w[1] != "AQA=0x30003" {
		t.Errorf("reconnect writes %q: want a reset and a new admin queue", w)
	}
	if r, n := f.releases(); r != 1 || n != 2 {
		t.Errorf("after the reconnect %d of %d regions released, want the first", r, n)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if r, n := f.releases(); r != 2 || n != 2 {
		t.Errorf("after Close %d of %d regions released", r, n)
	}
}

// TestFatalStatusEndsSession: CSTS.CFS while commands are in flight fails
// them with ErrFatal, well before their timeout; the next request resets
// the controller and goes on.
func TestFatalStatusEndsSession(t *testing.T) {
	f := newFake(t, 512, 1024)
	stall := true
	f.stall = func(c *command) bool { return stall && c.opcode() == opWrite }
	dev := openFake(t, f, Options{Timeout: time.Minute})
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = dev.Write(uint64(i), make([]byte, 512)) })
	}
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	stall = false
	f.mu.Unlock()
	f.setFatal()
	start := time.Now()
	wg.Wait()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("noticed after %v", d)
	}
	for i, err := range errs {
		var ce *ControllerError
		if !errors.Is(err, hw.ErrIO) || !errors.Is(err, ErrFatal) || !errors.As(err, &ce) || ce.State != "live" {
			t.Errorf("write %d: %v, want hw.ErrIO wrapping ErrFatal", i, err)
		}
	}
	if err := dev.Write(0, pattern(512, 1)); err != nil {
		t.Fatalf("write after the reset: %v", err)
	}
}

// TestCorruptCompletion: a completion for a command not in flight ends
// the session with ErrCorrupt; the next request reconnects.
func TestCorruptCompletion(t *testing.T) {
	f := newFake(t, 512, 1024)
	mangled := false
	f.mangle = func(e *fakeCQE) {
		if !mangled {
			mangled = true
			e.cid = 999
		}
	}
	dev := openFake(t, f, Options{Timeout: 200 * time.Millisecond})
	err := dev.Write(0, make([]byte, 512))
	if !errors.Is(err, hw.ErrIO) || !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTimeout) {
		t.Fatalf("write completed with CID 999: %v", err)
	}
	t.Log(err)
	if err := dev.Write(0, make([]byte, 512)); err != nil {
		t.Fatalf("write after reconnecting: %v", err)
	}
}

// TestClose: Close fails commands in flight with hw.ErrClosed, shuts the
// controller down (CC.SHN=01b until CSTS.SHST=10b), disables it, releases
// the memory and then the Controller.
func TestClose(t *testing.T) {
	f := newFake(t, 512, 1024)
	f.stall = func(c *command) bool { return c.opcode() == opRead }
	releases := 0
	ctrl := f.controller()
	ctrl.Release = func() error { releases++; return nil }
	dev, err := Open(ctrl, Options{clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = dev.Read(uint64(i), make([]byte, 512)) })
	}
	time.Sleep(20 * time.Millisecond)
	before := len(f.writes())
	start := f.clock.Now()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		var he *hw.Error
		if !errors.As(err, &he) || !errors.Is(err, hw.ErrClosed) || he.Op != "read" || he.LBA != uint64(i) {
			t.Errorf("read %d: %v, want hw.ErrClosed", i, err)
		}
	}
	if w := f.writes()[before:]; !slices.Equal(w, []string{"CC=0x464001", "CC=0x460000"}) {
		t.Errorf("Close wrote %q, want the shutdown notification, then the disable", w)
	}
	if d := f.clock.Now().Sub(start); d < f.shutdownDelay {
		t.Errorf("Close took %v, less than the shutdown", d)
	}
	if r, n := f.releases(); r != 1 || n != 1 || releases != 1 {
		t.Errorf("%d of %d regions released, Controller released %d times", r, n, releases)
	}
	if err := dev.Close(); err != nil || releases != 1 {
		t.Errorf("second Close: %v, %d releases", err, releases)
	}
}

func TestCloseFailures(t *testing.T) {
	t.Run("shutdown never completes", func(t *testing.T) {
		f := newFake(t, 512, 64)
		f.neverShutdown = true
		dev := openFake(t, f, Options{ShutdownTimeout: 2 * time.Second})
		err := dev.Close()
		var he *hw.Error
		if !errors.As(err, &he) || he.Op != "close" || !errors.Is(err, ErrShutdownTimeout) {
			t.Errorf("Close: %v, want ErrShutdownTimeout", err)
		}
		if r, _ := f.releases(); r != 1 || f.cstsNow()&cstsRDY != 0 {
			t.Errorf("the controller must still be reset (CSTS %#x) and the memory released (%d)", f.cstsNow(), r)
		}
	})
	t.Run("reset never completes", func(t *testing.T) {
		f := newFake(t, 512, 64)
		dev := openFake(t, f, Options{})
		f.mu.Lock()
		f.neverReset = true
		f.mu.Unlock()
		if err := dev.Close(); !errors.Is(err, ErrReadyTimeout) {
			t.Errorf("Close: %v, want ErrReadyTimeout", err)
		}
		if r, _ := f.releases(); r != 0 {
			t.Error("memory released though the controller was never reset")
		}
	})
}

// TestFlush: with a volatile write cache Flush sends a Flush command;
// without one it sends nothing and succeeds.
func TestFlush(t *testing.T) {
	for _, vwc := range []bool{true, false} {
		f := newFake(t, 512, 64)
		f.vwc = vwc
		dev := openFake(t, f, Options{})
		if err := dev.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, n, _ := f.counts(); n != map[bool]int{true: 1, false: 0}[vwc] {
			t.Errorf("VWC %v: %d Flush commands", vwc, n)
		}
	}
}

// TestWriteZeroesAndDiscard: Write Zeroes goes in commands of at most 65536
// blocks; Discard sends the ranges in a Dataset Management command.
func TestWriteZeroesAndDiscard(t *testing.T) {
	const blocks = 2*maxBlocks + 10
	f := newFake(t, 512, blocks)
	f.setDisk(pattern(512*blocks, 1))
	dev := openFake(t, f, Options{})
	if err := dev.WriteZeroes(3, 2*maxBlocks+1); err != nil {
		t.Fatal(err)
	}
	var cmds [][2]uint64
	for _, io := range f.seen() {
		cmds = append(cmds, [2]uint64{io.slba, uint64(io.blocks)})
	}
	if want := [][2]uint64{{3, maxBlocks}, {3 + maxBlocks, maxBlocks}, {3 + 2*maxBlocks, 1}}; !slices.Equal(cmds, want) {
		t.Errorf("write zeroes commands %v, want %v", cmds, want)
	}
	disk := f.snapshot()
	if !bytes.Equal(disk[3*512:(4+2*maxBlocks)*512], make([]byte, (2*maxBlocks+1)*512)) || disk[3*512-1] == 0 || disk[(4+2*maxBlocks)*512] == 0 {
		t.Error("zeroed the wrong range")
	}
	if err := dev.Discard(7, 1000); err != nil {
		t.Fatal(err)
	}
	io := f.seen()[3]
	if io.op != opDSM || io.prp2 != 0 || io.list != nil {
		t.Errorf("dataset management %+v", io)
	}
	if d := f.diskAt(6*512, 1002*512); d[0] != 0 || d[512] != 0xdd || d[1000*512] != 0xdd || d[1001*512] != 0 {
		t.Error("the fake deallocated the wrong range")
	}
}
