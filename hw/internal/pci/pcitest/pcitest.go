// Package pcitest builds fake sysfs PCI trees and configuration spaces for
// tests of code that uses package pci.
package pcitest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// NewRoot creates an empty fake /sys/bus/pci in a temporary directory and
// returns its devices directory, to be passed as the root to pci.Open. The
// tree has drivers/ and a drivers_probe file beside devices/.
func NewRoot(t testing.TB) string {
	t.Helper()
	bus := t.TempDir()
	root := filepath.Join(bus, "devices")
	must(t, os.MkdirAll(root, 0o755))
	must(t, os.MkdirAll(filepath.Join(bus, "drivers"), 0o755))
	must(t, os.WriteFile(filepath.Join(bus, "drivers_probe"), nil, 0o644))
	return root
}

// Function describes a fake PCI function.
type Function struct {
	Addr   string // "0000:00:04.0"
	Vendor uint16
	Device uint16
	Class  uint32
	Config []byte // the config file; Config(nil) when nil
	BARs   [6]int // size of each memory BAR; 0 for none
	Driver string // name of the bound driver; "" for none
}

// Add creates f's directory under root (from NewRoot) and returns it:
// vendor, device, class, config, resource, a resource<N> file of the BAR's
// size per memory BAR, driver_override, and when f.Driver is set a driver
// symlink to ../../drivers/<Driver>, which holds an unbind file.
func Add(t testing.TB, root string, f Function) string {
	t.Helper()
	dir := filepath.Join(root, f.Addr)
	must(t, os.MkdirAll(dir, 0o755))
	write := func(name, s string) { must(t, os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644)) }
	write("vendor", fmt.Sprintf("0x%04x\n", f.Vendor))
	write("device", fmt.Sprintf("0x%04x\n", f.Device))
	write("class", fmt.Sprintf("0x%06x\n", f.Class))
	write("driver_override", "(null)\n")
	config := f.Config
	if config == nil {
		config = Config()
	}
	write("config", string(config))
	resource := ""
	base := uint64(0xfe000000)
	for n, size := range f.BARs {
		if size == 0 {
			resource += fmt.Sprintf("0x%016x 0x%016x 0x%016x\n", 0, 0, 0)
			continue
		}
		resource += fmt.Sprintf("0x%016x 0x%016x 0x%016x\n", base, base+uint64(size)-1, 0x140204)
		base += uint64(size)
		must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("resource%d", n)), make([]byte, size), 0o600))
	}
	write("resource", resource)
	if f.Driver != "" {
		drv := filepath.Join(filepath.Dir(root), "drivers", f.Driver)
		must(t, os.MkdirAll(drv, 0o755))
		must(t, os.WriteFile(filepath.Join(drv, "unbind"), nil, 0o644))
		must(t, os.Symlink(filepath.Join("..", "..", "drivers", f.Driver), filepath.Join(dir, "driver")))
	}
	return dir
}

// Config returns 256 bytes of configuration space whose capability list
// holds caps in order, starting at 0x40, each at the next multiple of 4.
// Each cap's first byte is its ID; Config fills in the second (the next
// pointer, 0 for the last). The vendor and device IDs are left 0.
func Config(caps ...[]byte) []byte {
	b := make([]byte, 256)
	if len(caps) == 0 {
		return b
	}
	binary.LittleEndian.PutUint16(b[0x06:], 1<<4)
	b[0x34] = 0x40
	off, prev := 0x40, -1
	for _, c := range caps {
		if off+len(c) > len(b) {
			panic("pcitest: capabilities overflow configuration space")
		}
		copy(b[off:], c)
		if prev >= 0 {
			b[prev+1] = byte(off)
		}
		prev = off
		off = (off + len(c) + 3) &^ 3
	}
	b[prev+1] = 0
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
