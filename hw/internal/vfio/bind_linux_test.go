package vfio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw/internal/pci"
	"github.com/tarstore/tarstore/hw/internal/pci/pcitest"
)

const testAddr = "0000:00:04.0"

// fakeSysfs is a fake /sys/bus/pci holding one function at testAddr.
type fakeSysfs struct {
	root string // <bus>/devices
	bus  string
	dir  string // the function's directory
}

// newFakeSysfs creates the tree: the function bound to driver ("" for
// none), in IOMMU group 7 when group is set, with a registered vfio-pci
// driver when vfioPCI is set.
func newFakeSysfs(t *testing.T, driver string, group, vfioPCI bool) *fakeSysfs {
	t.Helper()
	root := pcitest.NewRoot(t)
	s := &fakeSysfs{root: root, bus: filepath.Dir(root)}
	s.dir = pcitest.Add(t, root, pcitest.Function{Addr: testAddr, Vendor: 0x1b36, Device: 0x0010, Driver: driver})
	if group {
		s.addGroup(t, "7")
	}
	if vfioPCI {
		drv := filepath.Join(s.bus, "drivers", driverName)
		must(t, os.MkdirAll(drv, 0o755))
		must(t, os.WriteFile(filepath.Join(drv, "unbind"), nil, 0o644))
	}
	return s
}

// addGroup links the function's iommu_group to group name, whose devices/
// lists it, as the kernel's iommu_groups do.
func (s *fakeSysfs) addGroup(t *testing.T, name string) {
	t.Helper()
	groupDir := filepath.Join(s.bus, "kernel", "iommu_groups", name)
	must(t, os.MkdirAll(filepath.Join(groupDir, "devices"), 0o755))
	must(t, os.Symlink(s.dir, filepath.Join(groupDir, "devices", testAddr)))
	must(t, os.Symlink(filepath.Join("..", "..", "kernel", "iommu_groups", name), filepath.Join(s.dir, "iommu_group")))
}

func (s *fakeSysfs) read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (s *fakeSysfs) driver(t *testing.T) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(s.dir, "driver"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(target)
}

// fakeKernel plays the kernel's part of binding in a fake tree: it
// unbinds on a write to driver/unbind, and on a write to drivers_probe
// binds the driver driver_override names, if no driver is bound. It
// records what it did.
type fakeKernel struct {
	s      *fakeSysfs
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	events []string
}

func startKernel(t *testing.T, s *fakeSysfs) *fakeKernel {
	k := &fakeKernel{s: s, stop: make(chan struct{}), done: make(chan struct{})}
	go k.run()
	t.Cleanup(func() { close(k.stop); <-k.done })
	return k
}

func (k *fakeKernel) record(e string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.events = append(k.events, e)
}

func (k *fakeKernel) log() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return strings.Join(k.events, "; ")
}

func (k *fakeKernel) run() {
	defer close(k.done)
	probe := filepath.Join(k.s.bus, "drivers_probe")
	for {
		select {
		case <-k.stop:
			return
		case <-time.After(time.Millisecond):
		}
		// drivers_probe is read before unbind is handled: a Bind that
		// wrote it wrote unbind before (the kernel handles each write at
		// once; this one polls).
		probed, _ := os.ReadFile(probe)
		if target, err := os.Readlink(filepath.Join(k.s.dir, "driver")); err == nil {
			unbind := filepath.Join(k.s.bus, "drivers", filepath.Base(target), "unbind")
			if b, _ := os.ReadFile(unbind); string(b) == testAddr {
				os.Remove(filepath.Join(k.s.dir, "driver"))
				os.WriteFile(unbind, nil, 0o644)
				k.record("unbind " + filepath.Base(target))
			}
		}
		if string(probed) != testAddr {
			continue
		}
		os.WriteFile(probe, nil, 0o644)
		override, _ := os.ReadFile(filepath.Join(k.s.dir, "driver_override"))
		name := strings.TrimSpace(string(override))
		switch _, err := os.Readlink(filepath.Join(k.s.dir, "driver")); {
		case err == nil:
			k.record("probe of a bound device")
		case name == "(null)":
			k.record("probe without driver_override")
		default:
			os.Symlink(filepath.Join("..", "..", "drivers", name), filepath.Join(k.s.dir, "driver"))
			k.record("bind " + name)
		}
	}
}

func TestBindUnbindsTheDriverAndBindsVFIOPCI(t *testing.T) {
	for _, c := range []struct {
		driver string
		want   string
	}{
		{"nvme", "unbind nvme; bind vfio-pci"},
		{"", "bind vfio-pci"},
	} {
		s := newFakeSysfs(t, c.driver, true, true)
		k := startKernel(t, s)
		if err := Bind("00:04.0", Options{Root: s.root, BindTimeout: 5 * time.Second}); err != nil {
			t.Fatalf("driver %q: %v", c.driver, err)
		}
		if got := k.log(); got != c.want {
			t.Errorf("driver %q: the kernel did %q, want %q", c.driver, got, c.want)
		}
		if got := s.driver(t); got != driverName {
			t.Errorf("driver %q: bound to %q after Bind", c.driver, got)
		}
		if got := s.read(t, filepath.Join(s.dir, "driver_override")); got != "vfio-pci\n" {
			t.Errorf("driver %q: driver_override holds %q", c.driver, got)
		}
	}
}

func TestBindLeavesVFIOPCIBound(t *testing.T) {
	s := newFakeSysfs(t, driverName, true, true)
	if err := Bind(testAddr, Options{Root: s.root}); err != nil {
		t.Fatal(err)
	}
	if got := s.read(t, filepath.Join(s.bus, "drivers_probe")); got != "" {
		t.Errorf("drivers_probe written: %q", got)
	}
	if got := s.read(t, filepath.Join(s.dir, "driver_override")); got != "(null)\n" {
		t.Errorf("driver_override written: %q", got)
	}
}

// untouched checks that Bind changed nothing: the driver still bound,
// nothing written to unbind, driver_override or drivers_probe.
func (s *fakeSysfs) untouched(t *testing.T, driver string) {
	t.Helper()
	if got := s.driver(t); got != driver {
		t.Errorf("bound to %q, want %q still", got, driver)
	}
	if got := s.read(t, filepath.Join(s.bus, "drivers", driver, "unbind")); got != "" {
		t.Errorf("unbind written: %q", got)
	}
	if got := s.read(t, filepath.Join(s.dir, "driver_override")); got != "(null)\n" {
		t.Errorf("driver_override written: %q", got)
	}
	if got := s.read(t, filepath.Join(s.bus, "drivers_probe")); got != "" {
		t.Errorf("drivers_probe written: %q", got)
	}
}

// TestBindWithoutIOMMU is the host without an IOMMU (or a VM without
// intel-iommu): the function has no iommu_group, and Bind says so before
// taking the device from its driver.
func TestBindWithoutIOMMU(t *testing.T) {
	s := newFakeSysfs(t, "nvme", false, true)
	err := Bind(testAddr, Options{Root: s.root})
	var e *Error
	if !errors.Is(err, ErrNoIOMMUGroup) || !errors.As(err, &e) || e.Op != "bind" || e.Addr != testAddr {
		t.Fatalf("Bind: %v, want an *Error matching ErrNoIOMMUGroup", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "intel_iommu=on") || !strings.Contains(msg, "intel-iommu") {
		t.Errorf("the error does not say how to get an IOMMU: %s", msg)
	}
	s.untouched(t, "nvme")
}

func TestBindWithoutVFIOPCIDriver(t *testing.T) {
	s := newFakeSysfs(t, "nvme", true, false)
	if err := Bind(testAddr, Options{Root: s.root}); !errors.Is(err, ErrNoDriver) {
		t.Fatalf("Bind: %v, want ErrNoDriver", err)
	}
	s.untouched(t, "nvme")
}

func TestBindTimesOut(t *testing.T) {
	s := newFakeSysfs(t, "", true, true) // no fake kernel: nothing binds
	const timeout = 30 * time.Millisecond
	start := time.Now()
	err := Bind(testAddr, Options{Root: s.root, BindTimeout: timeout})
	elapsed := time.Since(start)
	var e *Error
	if !errors.Is(err, ErrBindTimeout) || !errors.As(err, &e) || e.Op != "bind" {
		t.Fatalf("Bind: %v, want an *Error matching ErrBindTimeout", err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("Bind gave up after %v, timeout %v", elapsed, timeout)
	}
	if got := s.read(t, filepath.Join(s.bus, "drivers_probe")); got != testAddr {
		t.Errorf("drivers_probe holds %q", got)
	}
}

func TestBindBadAddresses(t *testing.T) {
	s := newFakeSysfs(t, "", true, true)
	if err := Bind("00:04", Options{Root: s.root}); !errors.Is(err, pci.ErrAddress) {
		t.Errorf("bad address: %v", err)
	}
	var e *Error
	if err := Bind("0000:00:05.0", Options{Root: s.root}); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &e) || e.Addr != "0000:00:05.0" {
		t.Errorf("missing function: %v", err)
	}
}

func TestIOMMUGroup(t *testing.T) {
	s := newFakeSysfs(t, "", false, false)
	fn, err := pci.Open(s.root, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iommuGroup(fn); !errors.Is(err, ErrNoIOMMUGroup) {
		t.Errorf("no link: %v", err)
	}
	s.addGroup(t, "12")
	if n, err := iommuGroup(fn); n != 12 || err != nil {
		t.Errorf("group %d, %v; want 12", n, err)
	}
	if got := groupMembers(fn); got != testAddr+" (no driver)" {
		t.Errorf("groupMembers = %q", got)
	}
	must(t, os.Remove(filepath.Join(s.dir, "iommu_group")))
	must(t, os.Symlink("../../kernel/iommu_groups/x", filepath.Join(s.dir, "iommu_group")))
	if _, err := iommuGroup(fn); !errors.Is(err, pci.ErrFormat) {
		t.Errorf("link to a non-number: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
