// Package virtiopci is the modern virtio-pci transport, "Virtual I/O Device
// (VIRTIO) Version 1.2" §4.1 "Virtio Over PCI Bus", for a device this
// process drives from userspace, in one of two ways: Open maps the BAR
// holding the virtio structures through sysfs and gives the device DMA
// memory by physical address (contiguous huge pages; no IOMMU); OpenVFIO
// binds the function to vfio-pci, maps the BAR through the VFIO device and
// gives the device memory by IOVA, mapped in the IOMMU (package
// hw/internal/vfio). Either way completions are polled, not signalled by
// interrupts. Transport has the method set of hw/virtio's
// Transport; this package does not import hw/virtio (hw/virtio imports it).
// Linux only.
//
// # Finding the device (§4.1.2, §4.1.4)
//
// Open takes a PCI address. The function must have vendor ID 0x1af4 and a
// modern device ID, 0x1040 + the virtio device ID (0x1042 for a block
// device); transitional devices (0x1000-0x103f; QEMU without
// disable-legacy=on) are refused. No kernel driver may be bound to it: the
// error is a *DriverBoundError naming the driver (unbind it, or keep
// virtio-pci off with driver_override, package pci). The virtio structures
// are found through vendor-specific PCI capabilities (ParseCaps), struct
// virtio_pci_cap:
//
//	u8 cap_vndr (0x09), cap_next, cap_len, cfg_type, bar, id, padding[2];
//	le32 offset, length;             the structure is length bytes at offset in BAR bar
//	le32 notify_off_multiplier;      notify capability (cfg_type 2) only
//
// cfg_type 1 is the common configuration, 2 notifications, 3 the ISR
// status, 4 the device-specific configuration, 5 PCI configuration access.
// The first capability of each type that the driver can use wins (reserved
// BAR numbers and short capabilities are skipped, §4.1.4.1). Common and
// notify are required; ISR and PCI access are not used (we poll, and map
// the BARs). Every structure is checked against its BAR's size and the
// alignment §4.1.4 requires before any register is touched, so bad device
// data yields ErrCapability, never an out-of-range access. Open then
// enables memory space and bus mastering and maps the BARs.
//
// # Initialization (§3.1.1)
//
// A state machine (bringup.go) does one step of the sequence at a time
// against the common configuration registers; Transport's methods advance
// it:
//
//	New/Open     reset: write 0 to device_status, wait until it reads 0
//	             (§4.1.4.3.2; at most Options.ResetTimeout, else
//	             ErrResetTimeout); ACKNOWLEDGE; DRIVER; read the 64 feature
//	             bits through device_feature_select 0 and 1
//	SetFeatures  write driver_feature through driver_feature_select 0 and
//	             1; FEATURES_OK; read it back: ErrFeaturesRefused if it
//	             did not stick
//	SetupQueue   per queue (§4.1.5.1.3): queue_select, queue_size (at most
//	             the maximum it reads, a power of two), queue_msix_vector =
//	             0xffff (no vector: we poll), queue_desc, queue_driver,
//	             queue_device (64 bits as two 32-bit writes, low first),
//	             queue_enable = 1
//	Start        DRIVER_OK
//	Close        reset, as above
//
// DEVICE_NEEDS_RESET (0x40) read in device_status (after FEATURES_OK,
// after DRIVER_OK, and by an idle Wait) is ErrNeedsReset. On a failure the
// driver sets FAILED (0x80) and the transport stays failed until Close.
// These errors are *StatusError values recording the status read and the
// step.
//
// # Common configuration (§4.1.4.3)
//
// Registers at these offsets of the structure, accessed with their natural
// width (§4.1.3.1) through package mmio:
//
//	0x00 le32 device_feature_select   0x16 le16 queue_select
//	0x04 le32 device_feature          0x18 le16 queue_size
//	0x08 le32 driver_feature_select   0x1a le16 queue_msix_vector
//	0x0c le32 driver_feature          0x1c le16 queue_enable
//	0x10 le16 config_msix_vector      0x1e le16 queue_notify_off
//	0x12 le16 num_queues              0x20 le64 queue_desc
//	0x14 u8   device_status           0x28 le64 queue_driver
//	0x15 u8   config_generation       0x30 le64 queue_device
//
// # Notifications (§4.1.4.4, §4.1.5.2)
//
// Queue i is notified by writing i as 16 bits at queue_notify_off ×
// notify_off_multiplier in the notify structure (a multiplier of 0 puts
// every queue at its start); SetupQueue computes the address and checks it
// lies in the structure. Notify may run on several goroutines at once.
//
// # Device configuration (§4.1.4.6, §2.5.1)
//
// ReadConfig reads with the widest naturally aligned accesses (a 64-bit
// field as two 32-bit halves, which §4.1.3.1 allows) between two reads of
// config_generation, again until both agree.
//
// # Polling
//
// The device raises no interrupt we could wait for (no MSI-X vector is
// assigned, and without VFIO a process cannot receive one). Wait pauses so
// that the caller can poll the used ring: after a Notify of the queue it
// yields the processor for 64 calls (a quick completion is seen at once),
// then sleeps 20µs per call (an idle queue costs little CPU) and checks
// the device status.
//
// # Memory
//
// Memory comes from Options.Memory: dma.Hugepages for Open by default,
// giving physical addresses, which is right without an IOMMU (or with
// iommu=pt); the VFIO device's MapDMA for OpenVFIO, giving IOVAs. Behind
// an IOMMU a QEMU virtio device translates the addresses it is given only
// when it offers VIRTIO_F_ACCESS_PLATFORM (iommu_platform=on); hw/virtio
// refuses one that does not. Close releases it only once the device completed its reset;
// a device that never does might still write to it, so it is kept.
//
// NewPool and SharePool give a driver's buffer pool memory from the same
// source that outlives the transport (hw/virtio's PoolTransport): Close
// leaves it alone, and the next transport of the device, after a reset,
// reaches it at the same addresses. That holds for physical addresses;
// VFIO memory is mapped in a container that dies with the transport, so
// hw/virtio pools only over Open.
//
// Errors are *Error values naming the operation, wrapping this package's
// sentinels, *StatusError, *DriverBoundError, or package pci's errors.
package virtiopci
