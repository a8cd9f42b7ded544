package virtiopci

import (
	"errors"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
	"github.com/tarstore/tarstore/hw/internal/pci"
	"github.com/tarstore/tarstore/hw/internal/vfio"
)

// vfioDevice is what OpenVFIO uses of a *vfio.Device; tests substitute a
// fake.
type vfioDevice interface {
	ReadConfig(off int, b []byte) error
	EnableMemoryAndMaster() error
	MapBAR(n int) (*mmio.Mapped, error)
	MapDMA(size int) (dma.Region, func() error, error)
	Close() error
}

var _ vfioDevice = (*vfio.Device)(nil)

// conventionalConfig is the size of the configuration space read for the
// capability list, which lies in 0x40-0xff.
const conventionalConfig = 0x100

// OpenVFIO returns a transport over the virtio PCI function at addr
// ("0000:00:04.0" or "00:04.0") driven through VFIO with an IOMMU (package
// hw/internal/vfio), where Open uses sysfs and physical addresses. It
//
//  1. checks through sysfs (opts.Root) that the function is a modern
//     virtio device of opts.Type, as Open does, before changing anything;
//  2. hands it to vfio-pci (vfio.Bind): a kernel driver bound to it, such
//     as virtio-pci, is unbound, and its disk or interface disappears;
//  3. opens it through VFIO (vfio.Open), which resets the function: the
//     errors match vfio.ErrNoIOMMUGroup on a machine without an IOMMU
//     (boot with intel_iommu=on; QEMU: -M q35 -device intel-iommu);
//  4. reads configuration space through VFIO and parses the virtio
//     capabilities from it (vfio-pci passes vendor-specific capabilities
//     through), enables memory space and bus mastering, and maps the BARs
//     holding the structures (mmap of the VFIO BAR regions);
//  5. continues as New.
//
// The transport is named "vfio:<address>" unless opts.Name is set. Memory
// is the device's vfio MapDMA unless opts.Memory is set: device addresses
// are IOVAs, mapped in the device's own IOMMU container. Close resets the
// device, releases the memory, unmaps the BARs and closes the VFIO device,
// which clears bus mastering: memory the transport kept because the reset
// did not complete is unmapped then, once the device can no longer reach
// it. The function stays bound to vfio-pci.
func OpenVFIO(addr string, opts Options) (*Transport, error) {
	fn, t, err := function("vfio", addr, &opts)
	if err != nil {
		return nil, err
	}
	vopts := vfio.Options{Root: opts.Root}
	bdf := fn.Address().String()
	if err := vfio.Bind(bdf, vopts); err != nil {
		return nil, t.err("open", err)
	}
	dev, err := vfio.Open(bdf, vopts)
	if err != nil {
		return nil, t.err("open", err)
	}
	return openVFIO(dev, opts)
}

// openVFIO is OpenVFIO once the device is open: it owns dev, and closes it
// when it fails.
func openVFIO(dev vfioDevice, opts Options) (*Transport, error) {
	t := &Transport{name: opts.Name} // for errors
	fail := func(err error) (*Transport, error) {
		if cerr := dev.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, t.err("open", err)
	}
	config := make([]byte, conventionalConfig)
	if err := dev.ReadConfig(0, config); err != nil {
		return fail(err)
	}
	all, err := pci.ParseCapabilities(config)
	if err != nil {
		return fail(err)
	}
	caps, err := ParseCaps(all) // takes the vendor-specific ones
	if err != nil {
		return fail(err)
	}
	if err := dev.EnableMemoryAndMaster(); err != nil {
		return fail(err)
	}
	bars, unmap, err := mapBARs(dev.MapBAR, caps)
	if err != nil {
		return fail(err)
	}
	if opts.Memory == nil {
		opts.Memory = dev.MapDMA
	}
	release := func() error { return errors.Join(unmap(), dev.Close()) }
	tr, err := newTransport("open", bars, caps, opts, release)
	if err != nil {
		if rerr := release(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return tr, nil
}
