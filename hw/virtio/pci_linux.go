package virtio

import (
	"fmt"

	"github.com/tarstore/tarstore/hw/virtio/virtiopci"
)

var (
	_ PoolTransport = (*virtiopci.Transport)(nil)
	_ Transport     = unpooled{}
)

// OpenPCI opens the modern virtio-pci block device at PCI address addr
// ("0000:00:06.0") from userspace: its BAR mapped through sysfs, DMA memory
// from 2 MiB huge pages (which must be reserved: /proc/sys/vm/nr_hugepages),
// completions polled. No kernel driver may be bound to the function. After
// the device needs a reset, the next request resets it and brings it up
// again. The buffer pool (Options.PoolSize) is huge pages too: their
// physical addresses stay valid across resets, so AllocBuffer's buffers go
// to the device in place in every session.
func OpenPCI(addr string, opts Options) (*Device, error) {
	return Open(func() (Transport, error) {
		t, err := virtiopci.Open(addr, virtiopci.Options{Type: 2})
		if err != nil {
			return nil, err // not a nil *Transport in a non-nil interface
		}
		return t, nil
	}, opts)
}

// OpenVFIO opens the modern virtio-pci block device at addr through VFIO
// with an IOMMU (inside a VM: -M q35 -device intel-iommu, kernel
// intel_iommu=on): the function is bound to vfio-pci, its BAR mapped
// through the VFIO device, DMA memory mapped at IOVAs the driver chooses.
// The vfio-pci and vfio_iommu_type1 modules must be loaded, and the device
// must offer VIRTIO_F_ACCESS_PLATFORM (ErrBadDevice otherwise): without it
// a device bypasses the IOMMU. Requests bounce through the slots: a
// buffer pool's IOMMU mapping would live in the VFIO container that each
// reconnect opens anew and closes, so the Device has no pool and
// AllocBuffer returns ordinary memory.
func OpenVFIO(addr string, opts Options) (*Device, error) {
	return Open(func() (Transport, error) {
		t, err := virtiopci.OpenVFIO(addr, virtiopci.Options{Type: 2})
		if err != nil {
			return nil, err
		}
		if t.DeviceFeatures()&FeatureAccessPlatform == 0 {
			// The device would take our IOVAs for physical addresses.
			t.Close()
			return nil, fmt.Errorf("%w: %s does not offer VIRTIO_F_ACCESS_PLATFORM, so it bypasses the IOMMU (QEMU: iommu_platform=on)", ErrBadDevice, t.Name())
		}
		return unpooled{t}, nil
	}, opts)
}

// unpooled is a virtio-pci transport with only the Transport methods (and
// Polled), not PoolTransport's, for a memory source whose device addresses
// die with the transport.
type unpooled struct{ Transport }

func (u unpooled) Polled() bool { return u.Transport.(*virtiopci.Transport).Polled() }
