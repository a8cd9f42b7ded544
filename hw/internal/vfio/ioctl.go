package vfio

import "encoding/binary"

// ioctl request numbers (include/uapi/linux/vfio.h). Every VFIO request is
// _IO(VFIO_TYPE, VFIO_BASE + n), with VFIO_TYPE ';' (0x3b) and VFIO_BASE
// 100: direction "none" and size 0 whatever the argument, since VFIO reads
// a struct's size from its argsz field rather than from the request
// number. In asm-generic/ioctl.h, _IOC(dir, type, nr, size) is
// dir<<30 | size<<16 | type<<8 | nr, so _IO(type, nr) is type<<8 | nr, and
// as 100 + n stays below 256 (nr is 8 bits) _IO(';', 100+n) is
// _IO(';', 100) + n.
const (
	iocNRShift   = 0
	iocTypeShift = 8

	vfioType = ';' // VFIO_TYPE
	vfioBase = 100 // VFIO_BASE

	ioctlBase = vfioType<<iocTypeShift | vfioBase<<iocNRShift // _IO(VFIO_TYPE, VFIO_BASE), 0x3b64

	// On the container (/dev/vfio/vfio):
	ioctlGetAPIVersion  = ioctlBase + 0 // VFIO_GET_API_VERSION: no argument; returns VFIO_API_VERSION
	ioctlCheckExtension = ioctlBase + 1 // VFIO_CHECK_EXTENSION: argument an IOMMU type (value); returns > 0 if supported
	ioctlSetIOMMU       = ioctlBase + 2 // VFIO_SET_IOMMU: argument an IOMMU type (value)

	// On a group (/dev/vfio/<group>):
	ioctlGroupGetStatus    = ioctlBase + 3 // VFIO_GROUP_GET_STATUS: struct vfio_group_status *
	ioctlGroupSetContainer = ioctlBase + 4 // VFIO_GROUP_SET_CONTAINER: __s32 * (the container's fd)
	ioctlGroupGetDeviceFD  = ioctlBase + 6 // VFIO_GROUP_GET_DEVICE_FD: char * (the device's name, "0000:00:04.0"); returns a device fd

	// On a device (the fd VFIO_GROUP_GET_DEVICE_FD returns):
	ioctlDeviceGetInfo       = ioctlBase + 7  // VFIO_DEVICE_GET_INFO: struct vfio_device_info *
	ioctlDeviceGetRegionInfo = ioctlBase + 8  // VFIO_DEVICE_GET_REGION_INFO: struct vfio_region_info *
	ioctlDeviceReset         = ioctlBase + 11 // VFIO_DEVICE_RESET: no argument

	// On the container, once an IOMMU type is set:
	ioctlIOMMUMapDMA   = ioctlBase + 13 // VFIO_IOMMU_MAP_DMA: struct vfio_iommu_type1_dma_map *
	ioctlIOMMUUnmapDMA = ioctlBase + 14 // VFIO_IOMMU_UNMAP_DMA: struct vfio_iommu_type1_dma_unmap *
)

// apiVersion is VFIO_API_VERSION, what VFIO_GET_API_VERSION must return.
const apiVersion = 0

// IOMMU types, for VFIO_CHECK_EXTENSION and VFIO_SET_IOMMU.
const (
	Type1IOMMU   = 1 // VFIO_TYPE1_IOMMU
	Type1v2IOMMU = 3 // VFIO_TYPE1v2_IOMMU: type1 with stricter unmap semantics, preferred
)

// vfio_group_status.flags: VFIO_GROUP_FLAGS_VIABLE (bit 1,
// VFIO_GROUP_FLAGS_CONTAINER_SET, is not looked at).
const groupFlagViable = 1 << 0

// vfio_device_info.flags (the ones this package looks at).
const (
	DeviceFlagReset = 1 << 0 // VFIO_DEVICE_FLAGS_RESET: VFIO_DEVICE_RESET works
	DeviceFlagPCI   = 1 << 1 // VFIO_DEVICE_FLAGS_PCI: a vfio-pci device
)

// vfio_region_info.flags.
const (
	RegionFlagRead  = 1 << 0 // VFIO_REGION_INFO_FLAG_READ: pread works
	RegionFlagWrite = 1 << 1 // VFIO_REGION_INFO_FLAG_WRITE: pwrite works
	RegionFlagMmap  = 1 << 2 // VFIO_REGION_INFO_FLAG_MMAP: mmap works
	RegionFlagCaps  = 1 << 3 // VFIO_REGION_INFO_FLAG_CAPS: the kernel has capabilities for it (not read)
)

// vfio-pci's fixed region indexes (VFIO_PCI_*_REGION_INDEX): BARs 0-5
// are regions 0-5, 6 is the expansion ROM, 7 the configuration space and
// 8 VGA (VFIO_PCI_NUM_REGIONS is 9; asking for region 8 of a device
// without VGA fails with EINVAL, so Open asks for 0-7 only).
const (
	regionBAR0   = 0 // VFIO_PCI_BAR0_REGION_INDEX
	regionConfig = 7 // VFIO_PCI_CONFIG_REGION_INDEX
)

// vfio_iommu_type1_dma_map.flags.
const (
	dmaFlagRead  = 1 << 0 // VFIO_DMA_MAP_FLAG_READ: the device may read
	dmaFlagWrite = 1 << 1 // VFIO_DMA_MAP_FLAG_WRITE: the device may write
)

// The ioctl structs, as byte arrays with offset accessors. They are in the
// host's byte order (an ioctl argument is a C struct in the kernel's
// memory layout; offsets from the uapi header, checked against
// offsetof/sizeof with the header of Linux 6.1). Each starts with argsz,
// the size the caller gives and the kernel checks, and flags.

var ne = binary.NativeEndian

// groupStatus is struct vfio_group_status:
//
//	0 u32 argsz   4 u32 flags
type groupStatus [8]byte

func newGroupStatus() *groupStatus {
	var s groupStatus
	ne.PutUint32(s[0:], uint32(len(s)))
	return &s
}

func (s *groupStatus) flags() uint32 { return ne.Uint32(s[4:]) }

// deviceInfo is struct vfio_device_info:
//
//	0 u32 argsz   4 u32 flags   8 u32 num_regions   12 u32 num_irqs
//	16 u32 cap_offset
type deviceInfo [20]byte

func newDeviceInfo() *deviceInfo {
	var d deviceInfo
	ne.PutUint32(d[0:], uint32(len(d)))
	return &d
}

func (d *deviceInfo) info() Info {
	return Info{Flags: ne.Uint32(d[4:]), Regions: int(ne.Uint32(d[8:])), IRQs: int(ne.Uint32(d[12:]))}
}

// Info is what VFIO_DEVICE_GET_INFO tells of a device.
type Info struct {
	Flags   uint32 // DeviceFlagReset, DeviceFlagPCI, ...
	Regions int    // num_regions: region indexes are 0..Regions-1
	IRQs    int    // num_irqs
}

// regionInfo is struct vfio_region_info:
//
//	0 u32 argsz   4 u32 flags   8 u32 index   12 u32 cap_offset
//	16 u64 size   24 u64 offset (of the region in the device file)
type regionInfo [32]byte

func newRegionInfo(index int) *regionInfo {
	var r regionInfo
	ne.PutUint32(r[0:], uint32(len(r)))
	ne.PutUint32(r[8:], uint32(index))
	return &r
}

func (r *regionInfo) info() RegionInfo {
	return RegionInfo{Index: int(ne.Uint32(r[8:])), Flags: ne.Uint32(r[4:]), Size: ne.Uint64(r[16:]), Offset: ne.Uint64(r[24:])}
}

// RegionInfo is what VFIO_DEVICE_GET_REGION_INFO tells of a region: Size
// bytes at Offset of the device file, reached as Flags allow. An
// unimplemented BAR has Size 0.
type RegionInfo struct {
	Index  int
	Flags  uint32 // RegionFlagRead, RegionFlagWrite, RegionFlagMmap, RegionFlagCaps
	Size   uint64
	Offset uint64
}

// dmaMap is struct vfio_iommu_type1_dma_map:
//
//	0 u32 argsz   4 u32 flags   8 u64 vaddr   16 u64 iova   24 u64 size
type dmaMap [32]byte

func newDMAMap(vaddr, iova, size uint64) *dmaMap {
	var m dmaMap
	ne.PutUint32(m[0:], uint32(len(m)))
	ne.PutUint32(m[4:], dmaFlagRead|dmaFlagWrite)
	ne.PutUint64(m[8:], vaddr)
	ne.PutUint64(m[16:], iova)
	ne.PutUint64(m[24:], size)
	return &m
}

// dmaUnmap is struct vfio_iommu_type1_dma_unmap (without the data[] that
// only VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP uses):
//
//	0 u32 argsz   4 u32 flags   8 u64 iova   16 u64 size
//
// The kernel writes the number of bytes it unmapped back into size.
type dmaUnmap [24]byte

func newDMAUnmap(iova, size uint64) *dmaUnmap {
	var u dmaUnmap
	ne.PutUint32(u[0:], uint32(len(u)))
	ne.PutUint64(u[8:], iova)
	ne.PutUint64(u[16:], size)
	return &u
}

func (u *dmaUnmap) size() uint64 { return ne.Uint64(u[16:]) }
