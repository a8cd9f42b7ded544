package vfio

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// The goldens below are the structs' bytes on a little-endian host (amd64,
// arm64: every target of the appliance); the structs are in host order.

// ioNone is asm-generic/ioctl.h's _IO(type, nr): _IOC(_IOC_NONE, type, nr, 0)
// = 0<<30 | 0<<16 | type<<8 | nr.
func ioNone(typ, nr uint) uint { return 0<<30 | 0<<16 | typ<<8 | nr }

func TestIoctlNumbers(t *testing.T) {
	// The formula, checked against a request x/sys knows: BLKFLSBUF is
	// _IO(0x12, 97).
	if got := ioNone(0x12, 97); got != unix.BLKFLSBUF {
		t.Fatalf("_IO(0x12, 97) = %#x, BLKFLSBUF is %#x", got, unix.BLKFLSBUF)
	}
	for _, c := range []struct {
		name string
		got  uint
		n    uint // VFIO_BASE + n in the header
		want uint // the well-known value
	}{
		{"VFIO_GET_API_VERSION", ioctlGetAPIVersion, 0, 0x3b64},
		{"VFIO_CHECK_EXTENSION", ioctlCheckExtension, 1, 0x3b65},
		{"VFIO_SET_IOMMU", ioctlSetIOMMU, 2, 0x3b66},
		{"VFIO_GROUP_GET_STATUS", ioctlGroupGetStatus, 3, 0x3b67},
		{"VFIO_GROUP_SET_CONTAINER", ioctlGroupSetContainer, 4, 0x3b68},
		{"VFIO_GROUP_GET_DEVICE_FD", ioctlGroupGetDeviceFD, 6, 0x3b6a},
		{"VFIO_DEVICE_GET_INFO", ioctlDeviceGetInfo, 7, 0x3b6b},
		{"VFIO_DEVICE_GET_REGION_INFO", ioctlDeviceGetRegionInfo, 8, 0x3b6c},
		{"VFIO_DEVICE_RESET", ioctlDeviceReset, 11, 0x3b6f},
		{"VFIO_IOMMU_MAP_DMA", ioctlIOMMUMapDMA, 13, 0x3b71},
		{"VFIO_IOMMU_UNMAP_DMA", ioctlIOMMUUnmapDMA, 14, 0x3b72},
	} {
		if c.got != c.want || ioNone(';', 100+c.n) != c.want {
			t.Errorf("%s = %#x, _IO(';', 100+%d) = %#x, want %#x", c.name, c.got, c.n, ioNone(';', 100+c.n), c.want)
		}
	}
}

func TestGroupStatus(t *testing.T) {
	s := newGroupStatus()
	if want := []byte{8, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(s[:], want) {
		t.Errorf("request % x, want % x (argsz 8)", s[:], want)
	}
	copy(s[:], []byte{8, 0, 0, 0, 3, 0, 0, 0}) // the kernel's reply: viable, container set
	if s.flags() != 3 || s.flags()&groupFlagViable == 0 {
		t.Errorf("flags %#x", s.flags())
	}
}

func TestDeviceInfo(t *testing.T) {
	d := newDeviceInfo()
	if want := append([]byte{20, 0, 0, 0}, make([]byte, 16)...); !bytes.Equal(d[:], want) {
		t.Errorf("request % x, want % x (argsz 20)", d[:], want)
	}
	copy(d[:], []byte{
		20, 0, 0, 0, // argsz
		3, 0, 0, 0, // flags: RESET | PCI
		9, 0, 0, 0, // num_regions
		5, 0, 0, 0, // num_irqs
		0, 0, 0, 0, // cap_offset
	})
	if got, want := d.info(), (Info{Flags: DeviceFlagReset | DeviceFlagPCI, Regions: 9, IRQs: 5}); got != want {
		t.Errorf("info %+v, want %+v", got, want)
	}
}

func TestRegionInfo(t *testing.T) {
	r := newRegionInfo(7)
	want := []byte{
		32, 0, 0, 0, // argsz
		0, 0, 0, 0, // flags
		7, 0, 0, 0, // index
		0, 0, 0, 0, // cap_offset
		0, 0, 0, 0, 0, 0, 0, 0, // size
		0, 0, 0, 0, 0, 0, 0, 0, // offset
	}
	if !bytes.Equal(r[:], want) {
		t.Errorf("request % x, want % x", r[:], want)
	}
	copy(r[:], []byte{ // BAR 4 of a virtio device: 16 KiB at 4<<40, read, write, mmap, caps
		32, 0, 0, 0,
		0x0f, 0, 0, 0,
		4, 0, 0, 0,
		0, 0, 0, 0,
		0x00, 0x40, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0x04, 0, 0,
	})
	wantInfo := RegionInfo{Index: 4, Flags: RegionFlagRead | RegionFlagWrite | RegionFlagMmap | RegionFlagCaps, Size: 0x4000, Offset: 4 << 40}
	if got := r.info(); got != wantInfo {
		t.Errorf("info %+v, want %+v", got, wantInfo)
	}
}

func TestDMAMap(t *testing.T) {
	m := newDMAMap(0x7f12_3456_7000, 0x1_0000_0000, 0x20_0000)
	want := []byte{
		32, 0, 0, 0, // argsz
		3, 0, 0, 0, // flags: READ | WRITE
		0x00, 0x70, 0x56, 0x34, 0x12, 0x7f, 0, 0, // vaddr
		0, 0, 0, 0, 1, 0, 0, 0, // iova
		0, 0, 0x20, 0, 0, 0, 0, 0, // size
	}
	if !bytes.Equal(m[:], want) {
		t.Errorf("dma_map\n% x, want\n% x", m[:], want)
	}
}

func TestDMAUnmap(t *testing.T) {
	u := newDMAUnmap(0x1_0020_0000, 0x1000)
	want := []byte{
		24, 0, 0, 0, // argsz
		0, 0, 0, 0, // flags
		0, 0, 0x20, 0, 1, 0, 0, 0, // iova
		0, 0x10, 0, 0, 0, 0, 0, 0, // size
	}
	if !bytes.Equal(u[:], want) {
		t.Errorf("dma_unmap\n% x, want\n% x", u[:], want)
	}
	if u.size() != 0x1000 {
		t.Errorf("size %#x", u.size())
	}
	u[17] = 0 // the kernel unmapped nothing
	if u.size() != 0 {
		t.Errorf("size after the reply %#x", u.size())
	}
}
