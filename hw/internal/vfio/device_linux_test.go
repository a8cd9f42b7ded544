package vfio

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/pci"
)

// Open's checks that need no /dev/vfio: the host running the tests has no
// IOMMU, so what follows the container is exercised in the VM.

func TestOpenWithoutIOMMU(t *testing.T) {
	s := newFakeSysfs(t, driverName, false, true)
	_, err := Open("00:04.0", Options{Root: s.root, DevDir: t.TempDir()})
	var e *Error
	if !errors.Is(err, ErrNoIOMMUGroup) || !errors.As(err, &e) || e.Op != "open" || e.Addr != testAddr {
		t.Fatalf("Open: %v, want an *Error matching ErrNoIOMMUGroup", err)
	}
}

func TestOpenRefusesUnboundDevice(t *testing.T) {
	for _, driver := range []string{"", "nvme"} {
		s := newFakeSysfs(t, driver, true, true)
		_, err := Open(testAddr, Options{Root: s.root, DevDir: t.TempDir()})
		if !errors.Is(err, ErrNotBound) || (driver != "" && !strings.Contains(err.Error(), driver)) {
			t.Errorf("driver %q: %v, want ErrNotBound naming the driver", driver, err)
		}
	}
}

func TestOpenContainerErrors(t *testing.T) {
	s := newFakeSysfs(t, driverName, true, true)

	dev := t.TempDir() // no vfio node: the modules are not loaded
	_, err := Open(testAddr, Options{Root: s.root, DevDir: dev})
	var pe *os.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != filepath.Join(dev, "vfio") {
		t.Errorf("no container node: %v", err)
	}

	// A node that is not VFIO's: its ioctls fail.
	must(t, os.WriteFile(filepath.Join(dev, "vfio"), nil, 0o600))
	_, err = Open(testAddr, Options{Root: s.root, DevDir: dev})
	var se *os.SyscallError
	if !errors.Is(err, unix.ENOTTY) || !errors.As(err, &se) || se.Syscall != "ioctl VFIO_GET_API_VERSION" {
		t.Errorf("container that is a plain file: %v, want ENOTTY from VFIO_GET_API_VERSION", err)
	}
	if _, err := Open("nonsense", Options{Root: s.root}); !errors.Is(err, pci.ErrAddress) {
		t.Errorf("bad address: %v", err)
	}
}

// Device methods over plain files: the device file is a file holding the
// configuration space and a BAR at the offsets its region info gives,
// which pread, pwrite and mmap reach as they reach a VFIO device file.
// Container and group are plain files too, so their ioctls fail.
const (
	testBAROffset    = 0x10000
	testBARSize      = 0x4000
	testConfigOffset = 0x20000
	testConfigSize   = 0x100
)

func fileDevice(t *testing.T, flags uint32) (*Device, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "device")
	b := make([]byte, testConfigOffset+testConfigSize)
	binary.LittleEndian.PutUint16(b[testConfigOffset:], 0x1af4)
	binary.LittleEndian.PutUint16(b[testConfigOffset+4:], 0x0400) // INTx disable
	must(t, os.WriteFile(path, b, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "container"), nil, 0o600))
	open := func(name string) int {
		fd, err := unix.Open(filepath.Join(dir, name), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	d := &Device{
		addr: testAddr, groupID: 7, iommu: Type1v2IOMMU, page: os.Getpagesize(),
		info:      Info{Flags: flags, Regions: 9, IRQs: 5},
		container: open("container"), group: open("container"), fd: open("device"),
		alloc: newIOVAAllocator(os.Getpagesize()), dmas: make(map[uint64][]byte),
	}
	rw := uint32(RegionFlagRead | RegionFlagWrite)
	d.regions[0] = RegionInfo{Index: 0, Flags: rw | RegionFlagMmap, Size: testBARSize, Offset: testBAROffset}
	d.regions[2] = RegionInfo{Index: 2, Flags: rw, Size: 0x1000, Offset: 2 << 40}
	d.regions[regionConfig] = RegionInfo{Index: regionConfig, Flags: rw, Size: testConfigSize, Offset: testConfigOffset}
	t.Cleanup(func() { d.Close() })
	return d, path
}

func TestConfigAccess(t *testing.T) {
	d, path := fileDevice(t, DeviceFlagPCI)
	var id [2]byte
	if err := d.ReadConfig(0, id[:]); err != nil || binary.LittleEndian.Uint16(id[:]) != 0x1af4 {
		t.Fatalf("vendor ID % x, %v", id, err)
	}
	if err := d.WriteConfig(0xfc, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := d.EnableMemoryAndMaster(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	config := b[testConfigOffset:]
	if got := binary.LittleEndian.Uint16(config[4:]); got != 0x0406 {
		t.Errorf("command register %#x, want 0x0406 (memory, master, other bits kept)", got)
	}
	if string(config[0xfc:0x100]) != "\x01\x02\x03\x04" {
		t.Errorf("write at 0xfc landed elsewhere: % x", config[0xfc:])
	}

	// Already enabled: no write (the file is now read-only to the device).
	ro, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(d.fd)
	d.fd = ro
	if err := d.EnableMemoryAndMaster(); err != nil {
		t.Errorf("EnableMemoryAndMaster wrote an enabled command register: %v", err)
	}
	var se *os.SyscallError
	if err := d.WriteConfig(4, []byte{0, 0}); !errors.Is(err, unix.EBADF) || !errors.As(err, &se) || se.Syscall != "pwrite" {
		t.Errorf("pwrite to a read-only file: %v", err)
	}

	for _, c := range []struct{ off, n int }{{-1, 1}, {0xff, 2}, {0x100, 1}, {0, 0x101}} {
		if err := d.ReadConfig(c.off, make([]byte, c.n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReadConfig(%#x, %d bytes): %v, want ErrInvalid", c.off, c.n, err)
		}
		if err := d.WriteConfig(c.off, make([]byte, c.n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("WriteConfig(%#x, %d bytes): %v, want ErrInvalid", c.off, c.n, err)
		}
	}
	if err := d.ReadConfig(0x100, nil); err != nil {
		t.Errorf("empty read at the end: %v", err)
	}
}

func TestMapBAR(t *testing.T) {
	d, path := fileDevice(t, DeviceFlagPCI)
	m, err := d.MapBAR(0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != testBARSize {
		t.Errorf("BAR 0 maps %#x bytes", m.Len())
	}
	m.Write32(0x3ffc, 0xcafef00d)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(b[testBAROffset+0x3ffc:]); got != 0xcafef00d {
		t.Errorf("BAR write not at the region's offset: %#x", got)
	}
	for n, want := range map[int]error{2: ErrNotMappable, 4: ErrNoBAR, 6: ErrNoBAR, -1: ErrNoBAR} {
		var e *Error
		if _, err := d.MapBAR(n); !errors.Is(err, want) || !errors.As(err, &e) || e.Op != "map BAR "+strconv.Itoa(n) {
			t.Errorf("MapBAR(%d): %v, want %v", n, err, want)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 0 {
		t.Errorf("Close left BAR 0 mapped")
	}
}

func TestReset(t *testing.T) {
	d, _ := fileDevice(t, DeviceFlagPCI)
	if err := d.Reset(); !errors.Is(err, ErrNoReset) {
		t.Errorf("Reset without VFIO_DEVICE_FLAGS_RESET: %v", err)
	}
	d, _ = fileDevice(t, DeviceFlagPCI|DeviceFlagReset)
	var se *os.SyscallError
	if err := d.Reset(); !errors.Is(err, unix.ENOTTY) || !errors.As(err, &se) || se.Syscall != "ioctl VFIO_DEVICE_RESET" {
		t.Errorf("Reset of a plain file: %v, want ENOTTY from VFIO_DEVICE_RESET", err)
	}
}

func TestMapDMAFailure(t *testing.T) {
	d, _ := fileDevice(t, DeviceFlagPCI)
	_, _, err := d.MapDMA(8192)
	var e *Error
	if !errors.Is(err, unix.ENOTTY) || !errors.As(err, &e) || e.Op != "map DMA" || !strings.Contains(err.Error(), "VFIO_IOMMU_MAP_DMA") {
		t.Fatalf("MapDMA with a plain file as container: %v", err)
	}
	if len(d.dmas) != 0 || d.alloc.next != IOVABase+8192 {
		t.Errorf("after a failed map: %d mappings, next IOVA %#x (a failed IOVA is not reused either)", len(d.dmas), d.alloc.next)
	}
	if _, _, err := d.MapDMA(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("MapDMA(0): %v", err)
	}
}

// TestCloseUnmapsDMA gives Close a mapping to undo (as MapDMA would have
// left it): Close reports the failed VFIO_IOMMU_UNMAP_DMA, unmaps the
// memory anyway and forgets the mapping.
func TestCloseUnmapsDMA(t *testing.T) {
	d, _ := fileDevice(t, DeviceFlagPCI)
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	d.dmas[IOVABase] = b
	err = d.Close()
	if !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), "VFIO_IOMMU_UNMAP_DMA") {
		t.Errorf("Close: %v, want the unmap's ENOTTY", err)
	}
	if len(d.dmas) != 0 || d.fd != -1 || d.group != -1 || d.container != -1 {
		t.Errorf("after Close: %d mappings, fds %d %d %d", len(d.dmas), d.fd, d.group, d.container)
	}
	if err := unix.Msync(b, unix.MS_ASYNC); !errors.Is(err, unix.ENOMEM) { // ENOMEM: not mapped
		t.Errorf("the DMA memory is still mapped after Close: msync %v", err)
	}
}

func TestClosedDevice(t *testing.T) {
	d, _ := fileDevice(t, DeviceFlagPCI|DeviceFlagReset)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, errBAR := d.MapBAR(0)
	_, _, errDMA := d.MapDMA(4096)
	for name, err := range map[string]error{
		"ReadConfig":            d.ReadConfig(0, make([]byte, 2)),
		"WriteConfig":           d.WriteConfig(0, make([]byte, 2)),
		"EnableMemoryAndMaster": d.EnableMemoryAndMaster(),
		"MapBAR":                errBAR,
		"MapDMA":                errDMA,
		"Reset":                 d.Reset(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestAccessors(t *testing.T) {
	d, _ := fileDevice(t, DeviceFlagPCI)
	if d.Address() != testAddr || d.Group() != 7 || d.IOMMU() != Type1v2IOMMU || d.Info().Regions != 9 {
		t.Errorf("Address %s Group %d IOMMU %d Info %+v", d.Address(), d.Group(), d.IOMMU(), d.Info())
	}
	if r, err := d.Region(regionConfig); err != nil || r.Offset != testConfigOffset {
		t.Errorf("Region(7) = %+v, %v", r, err)
	}
	for _, i := range []int{-1, 8} {
		if _, err := d.Region(i); !errors.Is(err, ErrInvalid) {
			t.Errorf("Region(%d): %v", i, err)
		}
	}
}
