package nvme

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
	"github.com/tarstore/tarstore/hw/internal/pci"
	"github.com/tarstore/tarstore/hw/internal/pci/pcitest"
	"github.com/tarstore/tarstore/hw/internal/vfio"
)

const testAddr = "0000:00:05.0"

// fakeSysfs creates a fake sysfs tree holding f at testAddr, with a 16 KiB
// BAR 0 unless set, and returns its root and the function's directory.
func fakeSysfs(t *testing.T, f pcitest.Function) (root, dir string) {
	root = pcitest.NewRoot(t)
	f.Addr = testAddr
	if f.BARs == ([6]int{}) {
		f.BARs[0] = 0x4000
	}
	return root, pcitest.Add(t, root, f)
}

func commandRegister(t *testing.T, dir string) uint16 {
	b, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint16(b[4:])
}

func wantOpenError(t *testing.T, name string, err error, kind, cause error, device string) {
	t.Helper()
	var he *hw.Error
	if !errors.As(err, &he) || he.Op != "open" || he.Device != device || !errors.Is(err, kind) || !errors.Is(err, cause) {
		t.Errorf("%s: %v, want an *hw.Error{open, %s, %v} wrapping %v", name, err, device, kind, cause)
	}
}

func TestOpenPCIRefuses(t *testing.T) {
	root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x1b36, Device: 0x0010, Class: classNVMe, Driver: "nvme"})
	_, err := OpenPCI(testAddr, Options{Root: root})
	wantOpenError(t, "bound to nvme", err, hw.ErrBusy, ErrDriverBound, "pci:"+testAddr)
	if got := commandRegister(t, dir); got != 0 {
		t.Errorf("command register %#x: a bound controller was touched", got)
	}
	for _, class := range []uint32{0x018000, 0x010601, 0x010801} { // virtio-blk, AHCI, NVMHCI
		root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1042, Class: class})
		_, err := OpenPCI("00:05.0", Options{Root: root})
		wantOpenError(t, fmt.Sprintf("class %06x", class), err, hw.ErrUnsupported, ErrNotNVMe, "pci:"+testAddr)
		if got := commandRegister(t, dir); got != 0 {
			t.Errorf("class %06x: command register %#x", class, got)
		}
	}
	root, _ = fakeSysfs(t, pcitest.Function{Class: classNVMe})
	_, err = OpenPCI("0000:00:06.0", Options{Root: root})
	wantOpenError(t, "no such function", err, hw.ErrIO, fs.ErrNotExist, "pci:0000:00:06.0")
	_, err = OpenPCI("00:06", Options{Root: root})
	wantOpenError(t, "bad address", err, hw.ErrIO, pci.ErrAddress, "pci:00:06")
}

// TestOpenPCIMapsBAR0: OpenPCI enables the function and reads CAP from its
// BAR 0, here a file of zeroes: a controller without the NVM Command Set.
func TestOpenPCIMapsBAR0(t *testing.T) {
	root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x1b36, Device: 0x0010, Class: classNVMe})
	_, err := OpenPCI(testAddr, Options{Root: root})
	wantOpenError(t, "CAP 0", err, hw.ErrUnsupported, ErrBadController, "pci:"+testAddr)
	if got := commandRegister(t, dir); got&6 != 6 {
		t.Errorf("command register %#x: memory space and bus mastering not enabled", got)
	}
}

func TestOpenVFIORefuses(t *testing.T) {
	root, dir := fakeSysfs(t, pcitest.Function{Vendor: 0x1af4, Device: 0x1042, Class: 0x018000, Driver: "virtio-pci"})
	_, err := OpenVFIO(testAddr, Options{Root: root})
	wantOpenError(t, "virtio-blk", err, hw.ErrUnsupported, ErrNotNVMe, "vfio:"+testAddr)
	if b, err := os.ReadFile(filepath.Join(dir, "driver_override")); err != nil || string(b) != "(null)\n" {
		t.Errorf("driver_override %q (%v): the function was touched", b, err)
	}
	// Without an IOMMU (this host) the function is in no IOMMU group.
	root, dir = fakeSysfs(t, pcitest.Function{Vendor: 0x1b36, Device: 0x0010, Class: classNVMe, Driver: "nvme"})
	_, err = OpenVFIO(testAddr, Options{Root: root})
	wantOpenError(t, "no IOMMU", err, hw.ErrIO, vfio.ErrNoIOMMUGroup, "vfio:"+testAddr)
	if b, err := os.ReadFile(filepath.Join(dir, "driver_override")); err != nil || string(b) != "(null)\n" {
		t.Errorf("driver_override %q (%v): the function was touched", b, err)
	}
}

// fakeVFIO is an open VFIO device whose BAR 0 is a file (its registers
// read back what was written) and whose DMA memory is anonymous memory; it
// logs what the driver does with it.
type fakeVFIO struct {
	t   *testing.T
	bar string
	log []string
}

func (f *fakeVFIO) EnableMemoryAndMaster() error {
	f.log = append(f.log, "enable")
	return nil
}

func (f *fakeVFIO) MapBAR(n int) (*mmio.Mapped, error) {
	f.log = append(f.log, fmt.Sprintf("map BAR %d", n))
	return mmio.Map(f.bar, 0x4000)
}

func (f *fakeVFIO) MapDMA(size int) (dma.Region, func() error, error) {
	f.log = append(f.log, "map DMA")
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return dma.Region{}, nil, err
	}
	return dma.NewRegion(b, 1<<32), func() error {
		f.log = append(f.log, "unmap DMA")
		return unix.Munmap(b)
	}, nil
}

func (f *fakeVFIO) Close() error {
	f.log = append(f.log, "close")
	return nil
}

// TestOpenVFIOWiring runs the bring-up through the VFIO path against a BAR
// that is a plain file: CAP says QEMU, but CSTS.RDY never follows CC.EN.
// The admin queue is programmed with IOVAs of the VFIO memory; after the
// timeout the controller is disabled, the memory unmapped, then the BAR
// and the device closed.
func TestOpenVFIOWiring(t *testing.T) {
	bar := make([]byte, 0x4000)
	binary.LittleEndian.PutUint64(bar[regCAP:], uint64(qemuCap))
	path := filepath.Join(t.TempDir(), "bar0")
	if err := os.WriteFile(path, bar, 0o600); err != nil {
		t.Fatal(err)
	}
	dev := &fakeVFIO{t: t, bar: path}
	_, err := openVFIO(dev, "vfio:"+testAddr, Options{clock: newFakeClock()})
	wantOpenError(t, "never ready", err, hw.ErrIO, ErrReadyTimeout, "vfio:"+testAddr)
	if want := []string{"enable", "map BAR 0", "map DMA", "unmap DMA", "close"}; !slices.Equal(dev.log, want) {
		t.Errorf("calls %q, want %q", dev.log, want)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	asq, acq := binary.LittleEndian.Uint64(b[regASQ:]), binary.LittleEndian.Uint64(b[regACQ:])
	if le.Uint32(b[regCC:]) != ccConfig || le.Uint32(b[regAQA:]) != aqa(adminEntries, adminEntries) ||
		asq>>32 != 1 || acq>>32 != 1 || asq%pageSize != 0 || acq%pageSize != 0 || asq == acq {
		t.Errorf("CC %#x AQA %#x ASQ %#x ACQ %#x", le.Uint32(b[regCC:]), le.Uint32(b[regAQA:]), asq, acq)
	}
}
