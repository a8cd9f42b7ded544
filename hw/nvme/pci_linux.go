package nvme

import (
	"errors"
	"fmt"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
	"github.com/tarstore/tarstore/hw/internal/pci"
	"github.com/tarstore/tarstore/hw/internal/vfio"
)

// classNVMe is the PCI class code of an NVMe I/O controller: mass storage
// (01h), non-volatile memory (08h), NVM Express (02h).
const classNVMe = 0x010802

// OpenPCI opens the NVMe controller at PCI address addr ("0000:00:05.0")
// from userspace: its BAR 0 mapped through sysfs, DMA memory from 2 MiB
// huge pages by physical address (reserve them: /proc/sys/vm/nr_hugepages;
// no IOMMU, or iommu=pt), completions polled. The function must have class
// 010802h (ErrNotNVMe) and no kernel driver bound (ErrDriverBound, of Kind
// hw.ErrBusy: unbind the nvme driver, or keep it off with
// driver_override). OpenPCI enables memory space and bus mastering and
// continues as Open; the Device is named "pci:<address>".
func OpenPCI(addr string, opts Options) (*Device, error) {
	fn, name, err := function("pci", addr, opts.Root)
	if err != nil {
		return nil, err
	}
	fail := func(kind, err error) (*Device, error) {
		return nil, &hw.Error{Op: "open", Device: name, Kind: kind, Err: err}
	}
	switch driver, err := fn.Driver(); {
	case err != nil:
		return fail(hw.ErrIO, err)
	case driver != "":
		return fail(hw.ErrBusy, fmt.Errorf("%w: %s holds %s", ErrDriverBound, driver, fn.Address()))
	}
	if err := fn.EnableMemoryAndMaster(); err != nil {
		return fail(hw.ErrIO, err)
	}
	bar, err := fn.MapBAR(0)
	if err != nil {
		return fail(hw.ErrIO, err)
	}
	return Open(Controller{Name: name, Registers: bar, Memory: dma.Hugepages, Release: bar.Close}, opts)
}

// OpenVFIO opens the NVMe controller at addr through VFIO with an IOMMU
// (inside a VM: -M q35 -device intel-iommu, kernel intel_iommu=on; the
// vfio-pci and vfio_iommu_type1 modules loaded): after checking through
// sysfs that the function is an NVMe controller, before changing anything,
// it binds it to vfio-pci (a kernel nvme driver bound to it is unbound and
// its disks disappear), opens it (which resets it), enables memory space
// and bus mastering, maps BAR 0 through the VFIO device and gives the
// controller memory mapped at IOVAs. Close releases the controller and
// closes the VFIO device; the function stays bound to vfio-pci. The Device
// is named "vfio:<address>".
func OpenVFIO(addr string, opts Options) (*Device, error) {
	fn, name, err := function("vfio", addr, opts.Root)
	if err != nil {
		return nil, err
	}
	vopts := vfio.Options{Root: opts.Root}
	bdf := fn.Address().String()
	if err := vfio.Bind(bdf, vopts); err != nil {
		return nil, &hw.Error{Op: "open", Device: name, Kind: hw.ErrIO, Err: err}
	}
	dev, err := vfio.Open(bdf, vopts)
	if err != nil {
		return nil, &hw.Error{Op: "open", Device: name, Kind: hw.ErrIO, Err: err}
	}
	return openVFIO(dev, name, opts)
}

// vfioDevice is what OpenVFIO uses of a *vfio.Device; tests substitute a
// fake.
type vfioDevice interface {
	EnableMemoryAndMaster() error
	MapBAR(n int) (*mmio.Mapped, error)
	MapDMA(size int) (dma.Region, func() error, error)
	Close() error
}

var _ vfioDevice = (*vfio.Device)(nil)

// openVFIO is OpenVFIO once the device is open: it owns dev.
func openVFIO(dev vfioDevice, name string, opts Options) (*Device, error) {
	err := dev.EnableMemoryAndMaster()
	var bar *mmio.Mapped
	if err == nil {
		bar, err = dev.MapBAR(0)
	}
	if err != nil {
		return nil, &hw.Error{Op: "open", Device: name, Kind: hw.ErrIO, Err: errors.Join(err, dev.Close())}
	}
	// Closing the VFIO device unmaps every DMA mapping left, once the
	// function can no longer reach them.
	release := func() error { return errors.Join(bar.Close(), dev.Close()) }
	return Open(Controller{Name: name, Registers: bar, Memory: dev.MapDMA, Release: release}, opts)
}

// function opens the PCI function at addr under root for OpenPCI (prefix
// "pci") or OpenVFIO ("vfio"), names the device "<prefix>:<address>", and
// checks its class code.
func function(prefix, addr, root string) (*pci.Function, string, error) {
	name := prefix + ":" + addr
	fn, err := pci.Open(root, addr)
	if err != nil {
		return nil, name, &hw.Error{Op: "open", Device: name, Kind: hw.ErrIO, Err: err}
	}
	name = prefix + ":" + fn.Address().String()
	class, err := fn.Class()
	switch {
	case err != nil:
		return nil, name, &hw.Error{Op: "open", Device: name, Kind: hw.ErrIO, Err: err}
	case class != classNVMe:
		return nil, name, &hw.Error{Op: "open", Device: name, Kind: hw.ErrUnsupported,
			Err: fmt.Errorf("%w: class %06x, want %06x", ErrNotNVMe, class, classNVMe)}
	}
	return fn, name, nil
}
