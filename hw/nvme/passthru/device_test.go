package passthru

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwtest"
	"github.com/tarstore/tarstore/hw/nvme"
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/512)
	}
	return b
}

// TestConformance runs the hw conformance suite over the fake kernel at
// 512- and 4096-byte blocks, with transfers split small and large, with and
// without Write Zeroes and Dataset Management, with and without a volatile
// write cache.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name   string
		bs     int
		blocks int
		mdts   uint8
		oncs   uint16
		vwc    bool
		opts   Options
	}{
		{"512", 512, 8192, 7, 1<<2 | 1<<3, true, Options{}},
		{"4096", 4096, 1024, 7, 1<<2 | 1<<3, false, Options{}},
		{"512-split-8K-depth-2", 512, 8192, 1, 1<<2 | 1<<3, true, Options{Depth: 2}},
		{"4096-no-optional-commands", 4096, 1024, 0, 0, true, Options{MaxTransfer: 1 << 20}},
		{"512-odd-transfer", 512, 8192, 0, 1 << 3, false, Options{MaxTransfer: 5000, Depth: 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			kernels := map[*Device]*fakeKernel{}
			open := func(t *testing.T, k *fakeKernel) hw.Block {
				d, err := k.openDevice(t, 0, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				kernels[d] = k
				mu.Unlock()
				return d
			}
			hwtest.TestDevice(t, hwtest.Harness{
				Open: func(t *testing.T) hw.Block {
					k := newFakeKernel(t, c.bs, c.blocks)
					k.mdts, k.oncs, k.vwc = c.mdts, c.oncs, c.vwc
					return open(t, k)
				},
				Reopen: func(t *testing.T, old hw.Block) hw.Block {
					mu.Lock()
					k := kernels[old.(*Device)]
					mu.Unlock()
					if len(k.fds) != 1 { // the controller's, which Open closes
						t.Errorf("descriptors left open after Close: %v", k.fds)
					}
					return open(t, k)
				},
			})
		})
	}
}

func TestReadOnly(t *testing.T) {
	fill := func(k *fakeKernel) { copy(k.disk, pattern(len(k.disk), 3)) }
	hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
		k := newFakeKernel(t, 4096, 64)
		k.nsattr = 1 // write protected
		fill(k)
		return k.mustOpen(t, Options{})
	})
	hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
		k := newFakeKernel(t, 512, 64)
		fill(k)
		return k.mustOpen(t, Options{ReadOnly: true})
	})
}

func TestInfoAndIdentity(t *testing.T) {
	k := newFakeKernel(t, 4096, 1000)
	k.nsid, k.mdts, k.vwc, k.oncs = 3, 4, false, 1<<2
	d := k.mustOpen(t, Options{MaxTransfer: 200 << 10})
	// MDTS 4: 64 KiB per command; no volatile write cache.
	want := hw.Info{SectorSize: 4096, Sectors: 1000, Driver: "nvme-passthru", Model: "QEMU NVMe Ctrl", Serial: "fake-serial",
		MaxTransfer: 64 << 10, QueueDepth: DefaultDepth, WriteThrough: true}
	if got := d.Info(); got != want {
		t.Errorf("Info %+v, want %+v", got, want)
	}
	id := nvme.Identity{
		VendorID: 0x1b36, Serial: "fake-serial", Model: "QEMU NVMe Ctrl", Firmware: "8.0.0", Version: fakeVER,
		Namespace: 3, LBAFormat: 1, VolatileWriteCache: false, WriteZeroes: false, Deallocate: true,
		MaxTransfer: 64 << 10, // MDTS 4: 16 pages of 4 KiB, below 200 KiB
	}
	if got := d.Identity(); got != id {
		t.Errorf("Identity %+v, want %+v", got, id)
	}
}

// TestTransferLimit: a command moves at most Options.MaxTransfer (default
// 128 KiB), the kernel's limit, MDTS (in 4 KiB pages) and 65536 blocks,
// rounded down to whole blocks.
func TestTransferLimit(t *testing.T) {
	for _, c := range []struct {
		name      string
		bs        int
		mdts      uint8
		kernelMax int
		opt       int
		want      int
	}{
		{"default", 512, 0, 0, 0, 128 << 10},
		{"MDTS 2", 512, 2, 0, 0, 16 << 10},
		{"MDTS 7 (QEMU)", 4096, 7, 0, 1 << 20, 512 << 10},
		{"kernel limit", 512, 7, 8 << 10, 0, 8 << 10},
		{"option", 512, 7, 0, 5000, 4608},
		{"option below the kernel", 512, 0, 256 << 10, 64 << 10, 64 << 10},
		{"65536 blocks", 512, 0, 0, 64 << 20, 32 << 20},
	} {
		k := newFakeKernel(t, c.bs, 64)
		k.mdts = c.mdts
		d, err := k.openDevice(t, c.kernelMax, Options{MaxTransfer: c.opt})
		if err != nil {
			t.Fatal(err)
		}
		if d.maxXfer != c.want || d.Identity().MaxTransfer != c.want {
			t.Errorf("%s: %d bytes per command, want %d", c.name, d.maxXfer, c.want)
		}
	}
	k := newFakeKernel(t, 4096, 64)
	_, err := k.openDevice(t, 0, Options{MaxTransfer: 2048})
	if !errors.Is(err, hw.ErrUnsupported) || !errors.Is(err, nvme.ErrBadController) {
		t.Errorf("transfers smaller than a block: %v", err)
	}
}

// TestSplitting: a request larger than the transfer limit becomes
// consecutive commands with SLBA and NLB in order; data that lies in one
// dword-aligned buffer goes to the kernel in place, other data through a
// bounce buffer.
func TestSplitting(t *testing.T) {
	k := newFakeKernel(t, 512, 256)
	k.mdts = 2 // 16 KiB
	d := k.mustOpen(t, Options{})
	type want struct {
		op           uint8
		slba         uint64
		blocks, size int
	}
	check := func(name string, ws []want) []seenCmd {
		t.Helper()
		seen := k.commands()
		slices.SortFunc(seen, func(a, b seenCmd) int { return int(a.slba) - int(b.slba) })
		var got []want
		for _, s := range seen {
			got = append(got, want{s.op, s.slba, s.blocks, s.dataLen})
		}
		if !slices.Equal(got, ws) {
			t.Errorf("%s: commands %v, want %v", name, got, ws)
		}
		k.reset()
		return seen
	}

	buf := d.AllocBuffer(40 << 10)
	copy(buf, pattern(len(buf), 1))
	if err := d.Write(3, buf); err != nil {
		t.Fatal(err)
	}
	seen := check("aligned write", []want{{0x01, 3, 32, 16 << 10}, {0x01, 35, 32, 16 << 10}, {0x01, 67, 16, 8 << 10}})
	for i, s := range seen {
		if &s.data[0] != &buf[i*(16<<10)] {
			t.Errorf("aligned write: command %d was bounced", i)
		}
	}
	if !bytes.Equal(k.disk[3*512:][:len(buf)], buf) {
		t.Error("aligned write: wrong data on the disk")
	}

	// A misaligned buffer: bounced, and the data still right.
	mis := make([]byte, 16<<10+1)[1:]
	if err := d.Read(3, mis); err != nil {
		t.Fatal(err)
	}
	seen = check("misaligned read", []want{{0x02, 3, 32, 16 << 10}})
	if &seen[0].data[0] == &mis[0] {
		t.Error("misaligned read went to the kernel in place")
	}
	if !bytes.Equal(mis, buf[:16<<10]) {
		t.Error("misaligned read: wrong data")
	}

	// Vectored: pieces inside one buffer go in place, pieces across
	// buffers are bounced.
	a, b := d.AllocBuffer(20<<10), d.AllocBuffer(12<<10)
	if err := d.Read(3, a, b); err != nil {
		t.Fatal(err)
	}
	seen = check("vectored read", []want{{0x02, 3, 32, 16 << 10}, {0x02, 35, 32, 16 << 10}})
	if &seen[0].data[0] != &a[0] || &seen[1].data[0] == &a[16<<10] || &seen[1].data[0] == &b[0] {
		t.Error("vectored read: first piece must be in place, second bounced")
	}
	if !bytes.Equal(append(a, b...), buf[:32<<10]) {
		t.Error("vectored read: wrong data")
	}
}

// TestErrors: a positive ioctl result is an NVMe status, reported as a
// *nvme.StatusError with the kind hw/nvme maps it to; a negative one an
// errno, reported as hw.ErrIO wrapping an *os.SyscallError; both at the
// LBA of the failed command, the lowest one when several fail.
func TestErrors(t *testing.T) {
	k := newFakeKernel(t, 512, 1024)
	k.mdts = 1 // 8 KiB: 16 blocks per command
	d := k.mustOpen(t, Options{Depth: 4})
	buf := make([]byte, 160*512) // ten commands

	failAt := func(lbas map[uint64]int, errno error) {
		k.inject = func(c *cmd) (int, error) {
			if st, ok := lbas[uint64(c.cdw(10))]; ok && c.opcode() <= 0x02 {
				return st, errno
			}
			return 0, nil
		}
	}
	t.Run("media error", func(t *testing.T) {
		failAt(map[uint64]int{16 + 48: 0x4281, 16 + 112: 0x0281}, nil) // commands 3 and 7
		err := d.Read(16, buf)
		var he *hw.Error
		var se *nvme.StatusError
		if !errors.As(err, &he) || !errors.Is(err, hw.ErrIO) || he.Op != "read" || he.LBA != 64 || he.Sectors != 16 ||
			!errors.As(err, &se) || se.SCT != 2 || se.SC != 0x81 || !se.DNR || se.LBA != 64 || se.Op != "read" {
			t.Errorf("Read: %v", err)
		}
	})
	t.Run("invalid opcode", func(t *testing.T) {
		failAt(map[uint64]int{0: 0x0001}, nil)
		err := d.Write(0, buf[:512])
		var se *nvme.StatusError
		if !errors.Is(err, hw.ErrUnsupported) || !errors.As(err, &se) || se.SC != 1 {
			t.Errorf("Write: %v", err)
		}
	})
	t.Run("errno", func(t *testing.T) {
		failAt(map[uint64]int{32: 0}, syscall.EIO)
		err := d.Write(16, buf)
		var he *hw.Error
		var sce *os.SyscallError
		if !errors.As(err, &he) || he.Kind != hw.ErrIO || he.LBA != 32 || he.Op != "write" ||
			!errors.As(err, &sce) || sce.Syscall != "ioctl NVME_IOCTL_IO_CMD" || !errors.Is(err, syscall.EIO) {
			t.Errorf("Write: %v", err)
		}
	})
	t.Run("EINTR is not retried", func(t *testing.T) {
		k.reset()
		failAt(map[uint64]int{0: 0}, syscall.EINTR)
		if err := d.Read(0, buf[:512]); !errors.Is(err, syscall.EINTR) || !errors.Is(err, hw.ErrIO) {
			t.Errorf("Read: %v", err)
		}
		if n := len(k.commands()); n != 1 {
			t.Errorf("%d commands, want 1", n)
		}
	})
	t.Run("no status", func(t *testing.T) {
		failAt(map[uint64]int{0: 0x10000}, nil)
		err := d.Read(0, buf[:512])
		var se *nvme.StatusError
		if !errors.Is(err, hw.ErrIO) || errors.As(err, &se) {
			t.Errorf("Read: %v", err)
		}
	})
	t.Run("no command after a failure", func(t *testing.T) {
		dev := k.mustOpen(t, Options{Depth: 1})
		k.reset()
		failAt(map[uint64]int{48: 0x0004}, nil) // Data Transfer Error, command 3
		if err := dev.Read(0, buf); !errors.Is(err, hw.ErrIO) {
			t.Errorf("Read: %v", err)
		}
		if n := len(k.commands()); n != 4 {
			t.Errorf("%d commands sent, want 4: none after the failure", n)
		}
	})
	t.Run("write zeroes: invalid field", func(t *testing.T) {
		k.inject = func(c *cmd) (int, error) {
			if c.opcode() == 0x08 {
				return 0x0002, nil
			}
			return 0, nil
		}
		err := d.WriteZeroes(5, 3)
		var he *hw.Error
		if !errors.As(err, &he) || he.Kind != hw.ErrUnsupported || he.Op != "write-zeroes" || he.LBA != 5 {
			t.Errorf("WriteZeroes: %v", err)
		}
		// hw.WriteZeroes falls back to writes.
		if err := hw.WriteZeroes(d, 5, 3); err != nil {
			t.Errorf("hw.WriteZeroes: %v", err)
		}
	})
	k.inject = nil
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		setup  func(k *fakeKernel)
		kind   error
		causes []error
	}{
		{"NVME_IOCTL_ID fails", func(k *fakeKernel) { k.nsidErr = syscall.ENOTTY }, hw.ErrUnsupported, []error{ErrNotNamespace, syscall.ENOTTY}},
		{"Identify refused", func(k *fakeKernel) {
			k.adminInject = func(*cmd) (int, error) { return 0, syscall.EACCES }
		}, hw.ErrIO, []error{syscall.EACCES}},
		{"metadata", func(k *fakeKernel) { k.ms = 8 }, hw.ErrUnsupported, []error{nvme.ErrBadController}},
	} {
		k := newFakeKernel(t, 512, 64)
		c.setup(k)
		_, err := k.openDevice(t, 0, Options{})
		var he *hw.Error
		if !errors.As(err, &he) || he.Op != "open" || he.Device != "fake" || !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want kind %v", c.name, err, c.kind)
		}
		for _, cause := range c.causes {
			if !errors.Is(err, cause) {
				t.Errorf("%s: %v does not wrap %v", c.name, err, cause)
			}
		}
	}
	// Identify Namespace answered with a status.
	k := newFakeKernel(t, 512, 64)
	k.adminInject = func(c *cmd) (int, error) {
		if c.cdw(10) == 0 {
			return 0x400b, nil // Invalid Namespace or Format, DNR
		}
		return 0, nil
	}
	_, err := k.openDevice(t, 0, Options{})
	var se *nvme.StatusError
	if !errors.Is(err, hw.ErrIO) || !errors.As(err, &se) || se.Op != "identify namespace" || se.SC != 0x0b {
		t.Errorf("Identify Namespace failing: %v", err)
	}
	// A namespace the controller reports inactive (NSZE 0).
	k = newFakeKernel(t, 512, 64)
	k.nsid = 2
	k.disk = nil
	if _, err := k.openDevice(t, 0, Options{}); !errors.Is(err, nvme.ErrBadController) || !errors.Is(err, hw.ErrUnsupported) {
		t.Errorf("inactive namespace: %v", err)
	}
}

// TestFlush: with a volatile write cache Flush sends a Flush command for
// the namespace; without one it sends nothing and succeeds.
func TestFlush(t *testing.T) {
	for _, vwc := range []bool{true, false} {
		k := newFakeKernel(t, 512, 64)
		k.vwc = vwc
		d := k.mustOpen(t, Options{})
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[vwc]; k.flushes != want {
			t.Errorf("VWC %v: %d Flush commands, want %d", vwc, k.flushes, want)
		}
	}
	k := newFakeKernel(t, 512, 64)
	d := k.mustOpen(t, Options{ReadOnly: true})
	if err := d.Flush(); err != nil || k.flushes != 0 {
		t.Errorf("read-only: %v, %d Flush commands", err, k.flushes)
	}
}

// TestWriteZeroesAndDiscard: Write Zeroes goes in commands of at most 65536
// blocks; Discard sends the ranges of nvme.DeallocateRanges, at most 1 GiB
// each.
func TestWriteZeroesAndDiscard(t *testing.T) {
	const blocks = 2*nvme.MaxBlocks + 10
	k := newFakeKernel(t, 512, blocks)
	copy(k.disk, pattern(len(k.disk), 1))
	d := k.mustOpen(t, Options{})
	if err := d.WriteZeroes(3, 2*nvme.MaxBlocks+1); err != nil {
		t.Fatal(err)
	}
	var cmds [][2]uint64
	for _, c := range k.commands() {
		cmds = append(cmds, [2]uint64{c.slba, uint64(c.blocks)})
	}
	if want := [][2]uint64{{3, nvme.MaxBlocks}, {3 + nvme.MaxBlocks, nvme.MaxBlocks}, {3 + 2*nvme.MaxBlocks, 1}}; !slices.Equal(cmds, want) {
		t.Errorf("write zeroes commands %v, want %v", cmds, want)
	}
	if !bytes.Equal(k.disk[3*512:(4+2*nvme.MaxBlocks)*512], make([]byte, (2*nvme.MaxBlocks+1)*512)) || k.disk[3*512-1] == 0 || k.disk[(4+2*nvme.MaxBlocks)*512] == 0 {
		t.Error("zeroed the wrong range")
	}
	k.reset()
	if err := d.Discard(7, 1000); err != nil {
		t.Fatal(err)
	}
	c := k.commands()
	if len(c) != 1 || c[0].op != 0x09 || c[0].dataLen != 16 || wire.Uint32(c[0].data[4:]) != 1000 || wire.Uint64(c[0].data[8:]) != 7 {
		t.Errorf("dataset management %+v", c)
	}
	if k.disk[6*512] == 0xdd || k.disk[7*512] != 0xdd || k.disk[1006*512+511] != 0xdd || k.disk[1007*512] == 0xdd {
		t.Error("deallocated the wrong range")
	}

	// Without the commands: hw.ErrUnsupported, nothing sent.
	k = newFakeKernel(t, 512, 64)
	k.oncs = 0
	d = k.mustOpen(t, Options{})
	for name, err := range map[string]error{"write-zeroes": d.WriteZeroes(1, 2), "discard": d.Discard(1, 2)} {
		var he *hw.Error
		if !errors.As(err, &he) || he.Kind != hw.ErrUnsupported || he.Op != name || he.LBA != 1 || he.Sectors != 2 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(k.commands()) != 0 {
		t.Error("commands sent for unsupported operations")
	}
}

// TestDiscardLarge: a discard beyond 1 GiB is cut into ranges of 1 GiB.
func TestDiscardLarge(t *testing.T) {
	k := newFakeKernel(t, 4096, 16)
	k.nsze = 1 << 20 // 4 GiB, of which the fake stores the first 16 blocks
	d := k.mustOpen(t, Options{})
	if err := d.Discard(1, 3<<18); err != nil { // 3 GiB
		t.Fatal(err)
	}
	var ranges [][2]uint64
	for _, c := range k.commands() {
		for i := 0; i < c.dataLen; i += 16 {
			ranges = append(ranges, [2]uint64{wire.Uint64(c.data[i+8:]), uint64(wire.Uint32(c.data[i+4:]))})
		}
	}
	if want := [][2]uint64{{1, 1 << 18}, {1 + 1<<18, 1 << 18}, {1 + 2<<18, 1 << 18}}; !slices.Equal(ranges, want) {
		t.Errorf("ranges %v, want %v", ranges, want)
	}
	if k.disk[4095] == 0xdd || k.disk[4096] != 0xdd {
		t.Error("deallocated the wrong blocks")
	}
}

// TestDepth: at most Options.Depth ioctls are in flight, from every
// request together, and a large request uses that many at once.
func TestDepth(t *testing.T) {
	k := newFakeKernel(t, 512, 4096)
	k.mdts = 1 // 8 KiB per command
	k.delay = 2 * time.Millisecond
	d := k.mustOpen(t, Options{Depth: 3})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			buf := make([]byte, 80<<10)
			if err := d.Read(uint64(i*160), buf); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if k.maxInflight > 3 || k.maxInflight < 2 {
		t.Errorf("%d ioctls in flight at most, want 2 or 3 (Depth 3)", k.maxInflight)
	}
}

// TestClose: Close closes every descriptor once and waits for requests in
// flight; later requests fail with hw.ErrClosed.
func TestClose(t *testing.T) {
	k := newFakeKernel(t, 512, 64)
	started, release := make(chan struct{}), make(chan struct{})
	k.inject = func(*cmd) (int, error) {
		close(started)
		<-release
		return 0, nil
	}
	d := k.mustOpen(t, Options{})
	done := make(chan error)
	go func() { done <- d.Read(0, make([]byte, 512)) }()
	<-started
	closed := make(chan error)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a read was in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the read in flight at Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	k.inject = nil
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if len(k.closed) != 2 || len(k.fds) != 1 {
		t.Errorf("closed %v, open %v: want the namespace and lock descriptors closed, the controller's left to Open", k.closed, k.fds)
	}
	if err := d.Read(0, make([]byte, 512)); !errors.Is(err, hw.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	// A failing close is reported.
	d = k.mustOpen(t, Options{})
	k.close(d.fds[1])
	var he *hw.Error
	if err := d.Close(); !errors.As(err, &he) || he.Op != "close" || !errors.Is(err, syscall.EBADF) {
		t.Errorf("Close with a bad descriptor: %v", err)
	}
}
