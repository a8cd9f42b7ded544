// Package vfio drives a PCI function from userspace through Linux VFIO
// with a type1 IOMMU (Documentation/driver-api/vfio.rst; the interface is
// include/uapi/linux/vfio.h): the device reaches only memory this process
// mapped for it, at I/O virtual addresses (IOVAs) it chose, and its BARs
// and configuration space are reached through the VFIO device file. With
// vfio-pci bound, sysfs resource<N> files cannot be mapped (the kernel
// owns the BARs), so package pci's BAR access does not apply; identity and
// driver binding still go through sysfs (package pci).
//
// # Requirements (measured on the project's machines: QEMU 7.2, Linux 6.1)
//
// An IOMMU: in a QEMU VM, -M q35 -device intel-iommu and the kernel
// booted with intel_iommu=on (this works under TCG). Without one, a
// function is in no IOMMU group and the errors match ErrNoIOMMUGroup;
// CONFIG_VFIO_NOIOMMU is off in the appliance's kernel. The modules
// irqbypass, vfio, vfio_iommu_type1, vfio_virqfd, vfio-pci-core and
// vfio-pci, loaded by the caller (the appliance's PID 1). With
// intel_iommu=on the /proc/self/pagemap path of dma.Hugepages no longer
// works (the IOMMU faults: "DMAR PTE read access not set") unless
// iommu=pt: with an IOMMU, use MapDMA.
//
// # The sequence (vfio.rst, "VFIO Usage Example")
//
//	Bind      iommu_group exists; unbind the current driver;
//	          driver_override = vfio-pci; drivers_probe; wait until bound
//	Open      /dev/vfio/vfio: VFIO_GET_API_VERSION (0),
//	          VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU, else VFIO_TYPE1_IOMMU)
//	          /dev/vfio/<group>: VFIO_GROUP_GET_STATUS (viable),
//	          VFIO_GROUP_SET_CONTAINER, then VFIO_SET_IOMMU on the container
//	          VFIO_GROUP_GET_DEVICE_FD("0000:00:04.0"): the device file;
//	          VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO (regions 0-7)
//	use       ReadConfig/WriteConfig (pread/pwrite at the config region's
//	          offset), EnableMemoryAndMaster, MapBAR (mmap of a BAR region),
//	          MapDMA (VFIO_IOMMU_MAP_DMA), Reset (VFIO_DEVICE_RESET)
//	Close     unmap BARs, close the device (vfio-pci stops its DMA and
//	          resets it), VFIO_IOMMU_UNMAP_DMA what is left, close the
//	          group and the container
//
// Opening the device file resets the function (measured in the project's
// VM), so a driver starts from reset state.
//
// # ioctls and structs
//
// Every VFIO request number is _IO(';', 100 + n): type ';' (0x3b) in bits
// 8-15, number 100 + n in bits 0-7, no size or direction bits, because
// each struct carries its own size in argsz. The ones used:
//
//	0x3b64 VFIO_GET_API_VERSION         0x3b6b VFIO_DEVICE_GET_INFO
//	0x3b65 VFIO_CHECK_EXTENSION         0x3b6c VFIO_DEVICE_GET_REGION_INFO
//	0x3b66 VFIO_SET_IOMMU               0x3b6f VFIO_DEVICE_RESET
//	0x3b67 VFIO_GROUP_GET_STATUS        0x3b71 VFIO_IOMMU_MAP_DMA
//	0x3b68 VFIO_GROUP_SET_CONTAINER     0x3b72 VFIO_IOMMU_UNMAP_DMA
//	0x3b6a VFIO_GROUP_GET_DEVICE_FD
//
// The structs are byte arrays with offset accessors (ioctl.go), in host
// byte order, checked against the uapi header's offsetof and sizeof:
//
//	vfio_group_status            0 argsz 4 flags                                   8 bytes
//	vfio_device_info             0 argsz 4 flags 8 num_regions 12 num_irqs
//	                             16 cap_offset                                    20 bytes
//	vfio_region_info             0 argsz 4 flags 8 index 12 cap_offset
//	                             16 size (u64) 24 offset (u64)                    32 bytes
//	vfio_iommu_type1_dma_map     0 argsz 4 flags 8 vaddr 16 iova 24 size (u64s)   32 bytes
//	vfio_iommu_type1_dma_unmap   0 argsz 4 flags 8 iova 16 size (u64s)            24 bytes
//
// Capability chains (VFIO_REGION_INFO_FLAG_CAPS, such as the sparse mmap
// areas of a BAR holding an MSI-X table) are not read: since Linux 4.16
// vfio-pci lets the whole of such a BAR be mapped
// (VFIO_REGION_INFO_CAP_MSIX_MAPPABLE), and MapBAR maps whole BARs.
//
// # IOVAs
//
// A Device has its own container, so its IOVA space is its own. MapDMA
// hands out IOVAs upward from IOVABase (4 GiB, clear of the MSI window at
// 0xfee00000) below IOVALimit (2^39, the address width of QEMU's
// intel-iommu), each aligned to its size rounded up to a power of two,
// never reusing one. VFIO_IOMMU_GET_INFO's valid IOVA ranges are not
// consulted; an IOVA the IOMMU cannot map fails VFIO_IOMMU_MAP_DMA.
//
// # unsafe
//
// ioctlPtr converts a pointer to the ioctl's argument bytes for the system
// call: the one use of unsafe here, like hw/internal/dio's ioctls. Virtual
// addresses come from dma.AddrOf, registers from package mmio.
//
// Errors are *Error values naming the operation and the function, wrapping
// this package's sentinels, *os.SyscallError (errors.Is(err, unix.EBUSY)
// works) or package pci's errors.
package vfio
