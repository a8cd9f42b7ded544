package pci

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/tarstore/tarstore/hw/internal/pci/pcitest"
)

const addr = "0000:00:04.0"

func fakeFunction(t *testing.T, f pcitest.Function) (root, dir string, fn *Function) {
	t.Helper()
	root = pcitest.NewRoot(t)
	f.Addr = addr
	dir = pcitest.Add(t, root, f)
	fn, err := Open(root, "00:04.0")
	if err != nil {
		t.Fatal(err)
	}
	return root, dir, fn
}

func TestIdentity(t *testing.T) {
	_, dir, fn := fakeFunction(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1042, Class: 0x018000})
	v, err1 := fn.Vendor()
	d, err2 := fn.DeviceID()
	c, err3 := fn.Class()
	if err := errors.Join(err1, err2, err3); err != nil || v != 0x1af4 || d != 0x1042 || c != 0x018000 {
		t.Fatalf("identity %#x %#x %#x, %v", v, d, c, err)
	}
	if fn.Address() != (Address{Device: 4}) || fn.Dir() != dir {
		t.Errorf("Address %v Dir %s", fn.Address(), fn.Dir())
	}
	for _, bad := range []string{"1af4\n", "0x\n", "0x1af4x\n", "0x11af4\n"} {
		if err := os.WriteFile(filepath.Join(dir, "vendor"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		var pe *Error
		if _, err := fn.Vendor(); !errors.Is(err, ErrFormat) || !errors.As(err, &pe) || pe.Addr != addr {
			t.Errorf("vendor %q: %v, want an *Error matching ErrFormat", bad, err)
		}
	}
}

func TestOpenMissingFunction(t *testing.T) {
	root := pcitest.NewRoot(t)
	_, err := Open(root, addr)
	var pe *Error
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" || pe.Addr != addr {
		t.Errorf("Open of a missing function: %v", err)
	}
	if _, err := Open(root, "nonsense"); !errors.Is(err, ErrAddress) {
		t.Errorf("Open of a bad address: %v", err)
	}
}

func TestConfigSpace(t *testing.T) {
	config := pcitest.Config([]byte{0x09, 0, 4, 7}, []byte{0x11, 0, 0, 0})
	binary.LittleEndian.PutUint16(config[0x04:], 0x0400) // INTx disable, nothing enabled
	_, dir, fn := fakeFunction(t, pcitest.Function{Config: config})

	if err := fn.EnableMemoryAndMaster(); err != nil {
		t.Fatal(err)
	}
	var cmd [2]byte
	if err := fn.ReadConfig(0x04, cmd[:]); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint16(cmd[:]); got != 0x0406 {
		t.Errorf("command register %#x, want 0x0406 (memory, master, other bits kept)", got)
	}
	if err := fn.WriteConfig(0x80, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	got, err := fn.Config()
	if err != nil || len(got) != 256 || got[0x81] != 2 || got[0x05] != 0x04 {
		t.Errorf("Config: %d bytes, % x, %v", len(got), got[0x80:0x84], err)
	}
	vendor, err := fn.VendorCapabilities()
	if err != nil || len(vendor) != 1 || string(vendor[0].Data) != "\x09\x44\x04\x07" {
		t.Errorf("VendorCapabilities = %+v, %v", vendor, err)
	}
	if all, err := fn.Capabilities(); err != nil || len(all) != 2 {
		t.Errorf("Capabilities = %+v, %v", all, err)
	}

	// A config file cut short (what a user without CAP_SYS_ADMIN reads).
	if err := os.WriteFile(filepath.Join(dir, "config"), config[:0x40], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fn.ReadConfig(0x3e, make([]byte, 4)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short ReadConfig: %v", err)
	}
	if _, err := fn.VendorCapabilities(); !errors.Is(err, ErrCapabilities) {
		t.Errorf("capabilities beyond 64 bytes read: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), config[:0x20], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Config(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Config of a 32-byte file: %v", err)
	}
}

func TestResources(t *testing.T) {
	_, dir, fn := fakeFunction(t, pcitest.Function{BARs: [6]int{1: 0x1000, 4: 0x4000}})
	rs, err := fn.Resources()
	if err != nil || len(rs) != 6 {
		t.Fatalf("Resources = %+v, %v", rs, err)
	}
	if rs[0].Size() != 0 || rs[1].Size() != 0x1000 || rs[4].Size() != 0x4000 || rs[4].Flags&ResourceMem == 0 {
		t.Errorf("resources %+v", rs)
	}
	if n, err := fn.BARSize(4); n != 0x4000 || err != nil {
		t.Errorf("BARSize(4) = %#x, %v", n, err)
	}
	for _, n := range []int{0, -1, 6, 7} {
		if _, err := fn.BARSize(n); !errors.Is(err, ErrNotMemory) {
			t.Errorf("BARSize(%d): %v, want ErrNotMemory", n, err)
		}
	}

	m, err := fn.MapBAR(4)
	if err != nil {
		t.Fatal(err)
	}
	m.Write32(0x3ffc, 0xcafef00d)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "resource4"))
	if err != nil || binary.LittleEndian.Uint32(b[0x3ffc:]) != 0xcafef00d {
		t.Errorf("write through the mapping of BAR 4 not in resource4: %v", err)
	}

	ioBAR := "0x000000000000c000 0x000000000000c03f 0x0000000000040101\n"
	if err := os.WriteFile(filepath.Join(dir, "resource"), []byte(ioBAR), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fn.MapBAR(0); !errors.Is(err, ErrNotMemory) {
		t.Errorf("mapping an I/O BAR: %v", err)
	}
	for _, bad := range []string{"0x0 0x1\n", "0x0 0x1 0x2 0x3\n", "0x0 zz 0x0\n", "0x2000 0x1000 0x200\n"} {
		if err := os.WriteFile(filepath.Join(dir, "resource"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := fn.Resources(); !errors.Is(err, ErrFormat) {
			t.Errorf("resource %q: %v, want ErrFormat", bad, err)
		}
	}
}

func TestDriverBinding(t *testing.T) {
	root, dir, fn := fakeFunction(t, pcitest.Function{Driver: "virtio-pci"})
	name, err := fn.Driver()
	if err != nil || name != "virtio-pci" {
		t.Fatalf("Driver = %q, %v", name, err)
	}
	if err := fn.Unbind(); err != nil {
		t.Fatal(err)
	}
	bus := filepath.Dir(root)
	expectFile(t, filepath.Join(bus, "drivers", "virtio-pci", "unbind"), addr)

	// The fake kernel unbinds.
	if err := os.Remove(filepath.Join(dir, "driver")); err != nil {
		t.Fatal(err)
	}
	if name, err := fn.Driver(); err != nil || name != "" {
		t.Errorf("Driver after unbind = %q, %v", name, err)
	}
	if err := fn.Unbind(); err != nil {
		t.Errorf("Unbind without a driver: %v", err)
	}
	if err := fn.SetDriverOverride("vfio-pci"); err != nil {
		t.Fatal(err)
	}
	expectFile(t, filepath.Join(dir, "driver_override"), "vfio-pci\n")
	if err := fn.Probe(); err != nil {
		t.Fatal(err)
	}
	expectFile(t, filepath.Join(bus, "drivers_probe"), addr)

	// Attributes are written, never created.
	if err := os.Remove(filepath.Join(dir, "driver_override")); err != nil {
		t.Fatal(err)
	}
	if err := fn.SetDriverOverride(""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("driver_override missing: %v", err)
	}
}

func expectFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Errorf("%s holds %q (%v), want %q", path, b, err, want)
	}
}
