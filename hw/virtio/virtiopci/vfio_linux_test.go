package virtiopci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
	"github.com/tarstore/tarstore/hw/internal/pci"
	"github.com/tarstore/tarstore/hw/internal/pci/pcitest"
	"github.com/tarstore/tarstore/hw/internal/vfio"
)

// What OpenVFIO checks through sysfs, before it changes anything. (The
// host has no IOMMU; the VFIO part runs in the VM.)

// untouched checks that nothing was written to unbind the function's
// driver or bind another.
func untouched(t *testing.T, root, dir, driver string) {
	t.Helper()
	bus := filepath.Dir(root)
	for path, want := range map[string]string{
		filepath.Join(dir, "driver_override"):           "(null)\n",
		filepath.Join(bus, "drivers_probe"):             "",
		filepath.Join(bus, "drivers", driver, "unbind"): "",
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s holds %q (%v), want %q", path, b, err, want)
		}
	}
}

func TestOpenVFIORefusesOtherDevices(t *testing.T) {
	root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x8086, Device: 0x10d3, Driver: "e1000e"})
	_, err := OpenVFIO("00:04.0", Options{Root: root})
	var e *Error
	if !errors.Is(err, ErrNotVirtio) || !errors.As(err, &e) || e.Name != "vfio:"+testAddr || e.Op != "open" {
		t.Fatalf("OpenVFIO of a NIC: %v, want an *Error matching ErrNotVirtio named vfio:%s", err, testAddr)
	}
	untouched(t, root, dir, "e1000e")

	root, dir = fakeSysfs(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1041, Driver: "virtio-pci"})
	if _, err := OpenVFIO(testAddr, Options{Root: root, Type: 2}); !errors.Is(err, ErrNotVirtio) {
		t.Errorf("OpenVFIO of a network device for a block driver: %v", err)
	}
	untouched(t, root, dir, "virtio-pci")
}

// TestOpenVFIOWithoutIOMMU is this host, or a VM without intel-iommu: the
// function is in no IOMMU group, and its kernel driver keeps it.
func TestOpenVFIOWithoutIOMMU(t *testing.T) {
	root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1042, Driver: "virtio-pci"})
	_, err := OpenVFIO(testAddr, Options{Root: root, Type: 2})
	var e *Error
	var ve *vfio.Error
	if !errors.Is(err, vfio.ErrNoIOMMUGroup) || !errors.As(err, &e) || e.Name != "vfio:"+testAddr || !errors.As(err, &ve) || ve.Op != "bind" {
		t.Fatalf("OpenVFIO without an IOMMU: %v, want ErrNoIOMMUGroup from vfio.Bind", err)
	}
	untouched(t, root, dir, "virtio-pci")
}

func TestOpenVFIOBadAddress(t *testing.T) {
	root, _ := fakeSysfs(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1042})
	_, err := OpenVFIO("00:04", Options{Root: root, Name: "disk"})
	var e *Error
	if !errors.Is(err, pci.ErrAddress) || !errors.As(err, &e) || e.Name != "disk" {
		t.Errorf("bad address: %v", err)
	}
	if _, err := OpenVFIO("00:05.0", Options{Root: root}); !errors.As(err, &e) || e.Name != "vfio:00:05.0" {
		t.Errorf("missing function: %v", err)
	}
}

// fakeVFIO is an open VFIO device whose configuration space is bytes and
// whose BAR 4 is a file (its registers read back what was written), and
// which logs what the transport does with it.
type fakeVFIO struct {
	t      *testing.T
	config []byte
	bar    string // BAR 4's file; "" for no BAR 4
	failAt string // the method that fails

	mu     sync.Mutex
	log    []string
	mapped []*mmio.Mapped
	closes int
}

var errInjected = errors.New("injected failure")

func newFakeVFIO(t *testing.T) *fakeVFIO {
	bar := make([]byte, 0x4000)
	binary.LittleEndian.PutUint32(bar[offDeviceFeature:], 1) // both windows: bits 0 and 32
	binary.LittleEndian.PutUint16(bar[offNumQueues:], 1)
	binary.LittleEndian.PutUint16(bar[offQueueSize:], 8)
	path := filepath.Join(t.TempDir(), "bar4")
	if err := os.WriteFile(path, bar, 0o600); err != nil {
		t.Fatal(err)
	}
	return &fakeVFIO{t: t, config: qemuConfig(), bar: path}
}

func (f *fakeVFIO) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := fmt.Sprintf(format, args...)
	f.log = append(f.log, e)
	if f.failAt != "" && strings.HasPrefix(e, f.failAt) {
		return errInjected
	}
	return nil
}

func (f *fakeVFIO) ReadConfig(off int, b []byte) error {
	if err := f.record("read config %#x+%d", off, len(b)); err != nil {
		return err
	}
	copy(b, f.config[off:])
	return nil
}

func (f *fakeVFIO) EnableMemoryAndMaster() error { return f.record("enable") }

func (f *fakeVFIO) MapBAR(n int) (*mmio.Mapped, error) {
	if err := f.record("map BAR %d", n); err != nil {
		return nil, err
	}
	if n != 4 || f.bar == "" {
		return nil, vfio.ErrNoBAR
	}
	m, err := mmio.Map(f.bar, 0x4000)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mapped = append(f.mapped, m)
	return m, nil
}

func (f *fakeVFIO) MapDMA(size int) (dma.Region, func() error, error) {
	if err := f.record("map DMA %d", size); err != nil {
		return dma.Region{}, nil, err
	}
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return dma.Region{}, nil, err
	}
	return dma.NewRegion(b, vfio.IOVABase), func() error {
		f.record("release DMA")
		return unix.Munmap(b)
	}, nil
}

// Close logs the device status and whether the BARs were still mapped:
// the transport must reset the device and unmap them first.
func (f *fakeVFIO) Close() error {
	f.mu.Lock()
	f.closes++
	mapped := 0
	for _, m := range f.mapped {
		mapped += m.Len()
	}
	f.mu.Unlock()
	status := -1
	if b, err := os.ReadFile(f.bar); err == nil {
		status = int(b[offDeviceStatus])
	}
	return f.record("close: status %d, %d bytes of BARs mapped", status, mapped)
}

func (f *fakeVFIO) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.log, "; ")
}

func TestOpenVFIOSession(t *testing.T) {
	f := newFakeVFIO(t)
	tr, err := openVFIO(f, Options{Name: "vfio:" + testAddr})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Name() != "vfio:"+testAddr || tr.DeviceFeatures() != version1|1 {
		t.Errorf("Name %q, DeviceFeatures %#x", tr.Name(), tr.DeviceFeatures())
	}
	r, err := tr.Memory(4096)
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr(0) != vfio.IOVABase {
		t.Errorf("memory at %#x: not the device's MapDMA", r.Addr(0))
	}
	if err := tr.SetFeatures(version1 | 1); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tr.SetupQueue(0, 8, r.Addr(0), r.Addr(0x800), r.Addr(0xc00)), tr.Start(), tr.Notify(0)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	want := "read config 0x0+256; enable; map BAR 4; map DMA 4096; release DMA; close: status 0, 0 bytes of BARs mapped"
	if got := f.String(); got != want {
		t.Errorf("device calls\n%s\nwant\n%s", got, want)
	}
	if err := tr.Close(); err != nil || f.closes != 1 {
		t.Errorf("second Close: %v, %d closes of the device", err, f.closes)
	}
}

func TestOpenVFIOKeepsGivenMemory(t *testing.T) {
	f := newFakeVFIO(t)
	mem := &fakeMemory{}
	tr, err := openVFIO(f, Options{Name: "x", Memory: mem.source})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := tr.Memory(4096); err != nil || r.Addr(0) != 0x100000 {
		t.Errorf("Memory: %v at %#x, want Options.Memory's", err, r.Addr(0))
	}
	if err := tr.Close(); err != nil || mem.releases() != 1 {
		t.Errorf("Close: %v, %d releases", err, mem.releases())
	}
}

// TestOpenVFIOFailures: whatever step fails, the device is closed once,
// after its BARs are unmapped.
func TestOpenVFIOFailures(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(f *fakeVFIO)
		want  error
	}{
		{"config read fails", func(f *fakeVFIO) { f.failAt = "read config" }, errInjected},
		{"looping capability list", func(f *fakeVFIO) { f.config[0x41] = 0x40 }, pci.ErrCapabilities},
		{"no virtio capabilities", func(f *fakeVFIO) { f.config = pcitest.Config([]byte{0x11, 0, 0, 0}) }, ErrCapability},
		{"enable fails", func(f *fakeVFIO) { f.failAt = "enable" }, errInjected},
		{"no BAR 4", func(f *fakeVFIO) { f.bar = "" }, vfio.ErrNoBAR},
		{"common structure too short", func(f *fakeVFIO) {
			f.config = pcitest.Config(virtioCap(TypeCommon, 4, 0, 0x10), notifyCap(4, 0x3000, 0x1000, 4))
		}, ErrCapability},
		{"close fails too", func(f *fakeVFIO) { f.failAt = "close"; f.bar = "" }, errInjected},
	} {
		f := newFakeVFIO(t)
		c.setup(f)
		_, err := openVFIO(f, Options{Name: "vfio:" + testAddr})
		var e *Error
		if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Op != "open" {
			t.Errorf("%s: %v, want an *Error matching %v", c.name, err, c.want)
		}
		if f.closes != 1 || !strings.Contains(f.String(), ", 0 bytes of BARs mapped") {
			t.Errorf("%s: %d closes; device calls: %s", c.name, f.closes, f)
		}
	}
}
