package vfio

import "errors"

var (
	// ErrNoIOMMUGroup reports a PCI function that is in no IOMMU group:
	// the kernel has no IOMMU for it, so VFIO cannot drive it
	// (CONFIG_VFIO_NOIOMMU is off in the appliance's kernel). In a QEMU
	// VM, give QEMU -M q35 -device intel-iommu and boot the kernel with
	// intel_iommu=on.
	ErrNoIOMMUGroup = errors.New("vfio: the device is in no IOMMU group (no IOMMU: boot the kernel with intel_iommu=on; QEMU needs -M q35 -device intel-iommu)")

	// ErrGroupNotViable reports an IOMMU group that VFIO_GROUP_GET_STATUS
	// says is not viable: some device in it is bound to a driver other
	// than vfio-pci. Bind each of them (or unbind them) first.
	ErrGroupNotViable = errors.New("vfio: IOMMU group not viable (every device in it must be bound to vfio-pci or to no driver)")

	// ErrNoType1 reports a container that supports neither
	// VFIO_TYPE1v2_IOMMU nor VFIO_TYPE1_IOMMU (is vfio_iommu_type1
	// loaded?).
	ErrNoType1 = errors.New("vfio: no type1 IOMMU support (load vfio_iommu_type1)")

	// ErrAPIVersion reports a VFIO_GET_API_VERSION other than 0.
	ErrAPIVersion = errors.New("vfio: unknown VFIO API version")

	// ErrNoDriver reports that the vfio-pci driver is not registered
	// (/sys/bus/pci/drivers/vfio-pci is missing): load the module (the
	// appliance's PID 1 does, with irqbypass, vfio, vfio_iommu_type1,
	// vfio_virqfd and vfio-pci-core before it).
	ErrNoDriver = errors.New("vfio: the vfio-pci driver is not loaded")

	// ErrNotBound reports that Open found the function bound to another
	// driver than vfio-pci, or to none: call Bind first.
	ErrNotBound = errors.New("vfio: the device is not bound to vfio-pci (Bind it first)")

	// ErrBindTimeout reports that, after Bind asked the kernel to bind
	// vfio-pci, the function was not bound within Options.BindTimeout.
	ErrBindTimeout = errors.New("vfio: vfio-pci did not bind the device in time")

	// ErrNotPCI reports a VFIO device that is not a vfio-pci device, or
	// has fewer regions than vfio-pci's fixed nine-region layout.
	ErrNotPCI = errors.New("vfio: not a vfio-pci device")

	// ErrNoBAR reports a BAR number outside 0-5 or a BAR the function
	// does not implement (its region has size 0).
	ErrNoBAR = errors.New("vfio: no such BAR")

	// ErrNotMappable reports a BAR region without the mmap flag (an I/O
	// port BAR, or a memory BAR smaller than a page on an old kernel):
	// this package reaches BARs only through mmap.
	ErrNotMappable = errors.New("vfio: BAR region cannot be mmap'ed")

	// ErrNoReset reports a device whose info flags lack
	// VFIO_DEVICE_FLAGS_RESET: the kernel has no reset method for it.
	ErrNoReset = errors.New("vfio: the device does not support VFIO_DEVICE_RESET")

	// ErrIOVAExhausted reports that a container's IOVA space, which is
	// never reused, has no room left for a mapping.
	ErrIOVAExhausted = errors.New("vfio: IOVA space exhausted")

	// ErrInvalid reports an argument rejected before any system call.
	ErrInvalid = errors.New("vfio: invalid argument")

	// ErrClosed reports a call on a closed Device.
	ErrClosed = errors.New("vfio: device closed")
)

// Error is the error of an operation on a device: Op names it ("bind",
// "open", "config read", "map BAR 4", "map DMA", "reset", "close", ...),
// Addr is the function's address (0000:00:04.0) and Err the cause: one of
// this package's sentinels, an *os.SyscallError (ioctl, mmap, pread...) or
// *os.PathError, or a package pci error.
type Error struct {
	Op   string
	Addr string
	Err  error
}

func (e *Error) Error() string { return "vfio " + e.Addr + ": " + e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }
