package virtiopci

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/tarstore/tarstore/hw/internal/pci"
	"github.com/tarstore/tarstore/hw/internal/pci/pcitest"
)

const testAddr = "0000:00:04.0"

// fakeSysfs creates a fake sysfs tree holding f (at testAddr, with QEMU's
// capabilities and a 16 KiB BAR 4 unless set) and returns its root and the
// function's directory.
func fakeSysfs(t *testing.T, f pcitest.Function) (root, dir string) {
	root = pcitest.NewRoot(t)
	f.Addr = testAddr
	if f.Config == nil {
		f.Config = qemuConfig()
	}
	if f.BARs == ([6]int{}) {
		f.BARs[4] = 0x4000
	}
	return root, pcitest.Add(t, root, f)
}

func command(t *testing.T, dir string) uint16 {
	b, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint16(b[4:])
}

// TestOpen drives a "device" that is a plain file behind resource4: its
// registers read back what was written, which is enough for a bring-up.
func TestOpen(t *testing.T) {
	root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1042, Class: 0x018000})
	bar := make([]byte, 0x4000)
	binary.LittleEndian.PutUint32(bar[offDeviceFeature:], 1) // both windows: bits 0 and 32
	binary.LittleEndian.PutUint16(bar[offNumQueues:], 1)
	binary.LittleEndian.PutUint16(bar[offQueueSize:], 8)
	copy(bar[0x2000:], "config")
	if err := os.WriteFile(filepath.Join(dir, "resource4"), bar, 0o600); err != nil {
		t.Fatal(err)
	}

	mem := &fakeMemory{}
	tr, err := Open("00:04.0", Options{Root: root, Type: 2, Memory: mem.source})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Name() != "pci:0000:00:04.0" || tr.DeviceFeatures() != version1|1 {
		t.Errorf("Name %q, DeviceFeatures %#x", tr.Name(), tr.DeviceFeatures())
	}
	if got := command(t, dir); got&6 != 6 {
		t.Errorf("command register %#x: memory space and bus mastering not enabled", got)
	}
	if b, err := tr.ReadConfig(0, 6); err != nil || string(b) != "config" {
		t.Errorf("ReadConfig = %q, %v", b, err)
	}
	if _, err := tr.Memory(4096); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetFeatures(version1 | 1); err != nil {
		t.Fatal(err)
	}
	if n, err := tr.QueueMax(0); n != 8 || err != nil {
		t.Fatalf("QueueMax(0) = %d, %v", n, err)
	}
	if err := errors.Join(tr.SetupQueue(0, 4, 0x10000, 0x11000, 0x12000), tr.Start(), tr.Notify(0)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	bar, err = os.ReadFile(filepath.Join(dir, "resource4"))
	if err != nil {
		t.Fatal(err)
	}
	le16, le64 := binary.LittleEndian.Uint16, binary.LittleEndian.Uint64
	if bar[offDeviceStatus] != 0 || le16(bar[offQueueSize:]) != 4 || le16(bar[offQueueEnable:]) != 1 ||
		le16(bar[offQueueMSIXVector:]) != noVector || le64(bar[offQueueDesc:]) != 0x10000 ||
		le64(bar[offQueueDriver:]) != 0x11000 || le64(bar[offQueueDevice:]) != 0x12000 || bar[offDriverFeature] != 1 { // the high half, written last
		t.Errorf("BAR after the session: % x", bar[:0x38])
	}
	if mem.releases() != 1 {
		t.Errorf("%d releases", mem.releases())
	}
}

func TestOpenRefusesBoundDevice(t *testing.T) {
	root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1042, Driver: "virtio-pci"})
	_, err := Open(testAddr, Options{Root: root, Memory: (&fakeMemory{}).source})
	var db *DriverBoundError
	if !errors.Is(err, ErrDriverBound) || !errors.As(err, &db) || db.Driver != "virtio-pci" || db.Addr != testAddr {
		t.Fatalf("Open of a bound device: %v, want a *DriverBoundError naming virtio-pci", err)
	}
	if got := command(t, dir); got != 0 {
		t.Errorf("command register %#x: a bound device was touched", got)
	}
}

func TestOpenRefusesOtherDevices(t *testing.T) {
	for _, c := range []struct {
		name           string
		vendor, device uint16
		typ            int
	}{
		{"Intel", 0x8086, 0x1042, 0},
		{"transitional virtio-blk", 0x1af4, 0x1001, 0},
		{"beyond the modern range", 0x1af4, 0x1080, 0},
		{"a network device for a block driver", 0x1af4, 0x1041, 2},
	} {
		root, dir := fakeSysfs(t, pcitest.Function{Vendor: c.vendor, Device: c.device})
		if _, err := Open(testAddr, Options{Root: root, Type: c.typ, Memory: (&fakeMemory{}).source}); !errors.Is(err, ErrNotVirtio) {
			t.Errorf("%s: %v, want ErrNotVirtio", c.name, err)
		}
		if got := command(t, dir); got != 0 {
			t.Errorf("%s: command register %#x", c.name, got)
		}
	}
}

func TestOpenFailures(t *testing.T) {
	for _, c := range []struct {
		name string
		f    pcitest.Function
		addr string
		want error
	}{
		{"no virtio capabilities", pcitest.Function{Config: pcitest.Config([]byte{0x11, 0, 0, 0})}, testAddr, ErrCapability},
		{"a looping capability list", pcitest.Function{Config: func() []byte {
			b := qemuConfig()
			b[0x41] = 0x40
			return b
		}()}, testAddr, pci.ErrCapabilities},
		{"BAR 4 unused", pcitest.Function{BARs: [6]int{0: 0x1000}}, testAddr, pci.ErrNotMemory},
		{"common structure past BAR 4", pcitest.Function{BARs: [6]int{4: 0x800}}, testAddr, ErrCapability},
		{"no such function", pcitest.Function{}, "0000:00:05.0", fs.ErrNotExist},
		{"bad address", pcitest.Function{}, "00:04", pci.ErrAddress},
	} {
		c.f.Vendor, c.f.Device = 0x1af4, 0x1042
		root, _ := fakeSysfs(t, c.f)
		_, err := Open(c.addr, Options{Root: root, Memory: (&fakeMemory{}).source})
		var e *Error
		if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Op != "open" {
			t.Errorf("%s: %v, want an *Error matching %v", c.name, err, c.want)
		}
	}
}
