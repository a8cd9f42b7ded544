package virtiopci

import (
	"errors"
	"fmt"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
	"github.com/tarstore/tarstore/hw/internal/pci"
)

// PCI identity of virtio devices (§4.1.2).
const (
	vendorVirtio    = 0x1af4
	deviceModern    = 0x1040 // + virtio device ID
	deviceModernEnd = 0x107f
)

// Open returns a transport over the virtio PCI function at addr
// ("0000:00:04.0" or "00:04.0") under opts.Root. It checks that the
// function is a modern virtio device (vendor 0x1af4, device 0x1040 +
// opts.Type) that no kernel driver holds (a *DriverBoundError names the
// driver), parses its virtio capabilities, enables memory space and bus
// mastering, maps the BARs holding the structures, and continues as New.
// Memory comes from dma.Hugepages unless opts.Memory is set. Close unmaps
// the BARs.
func Open(addr string, opts Options) (*Transport, error) {
	fn, t, err := function("pci", addr, &opts)
	if err != nil {
		return nil, err
	}
	switch driver, err := fn.Driver(); {
	case err != nil:
		return nil, t.err("open", err)
	case driver != "":
		return nil, t.err("open", &DriverBoundError{Addr: fn.Address().String(), Driver: driver})
	}
	vendor, err := fn.VendorCapabilities()
	if err != nil {
		return nil, t.err("open", err)
	}
	caps, err := ParseCaps(vendor)
	if err != nil {
		return nil, t.err("open", err)
	}
	if err := fn.EnableMemoryAndMaster(); err != nil {
		return nil, t.err("open", err)
	}
	bars, unmap, err := mapBARs(fn.MapBAR, caps)
	if err != nil {
		return nil, t.err("open", err)
	}
	if opts.Memory == nil {
		opts.Memory = dma.Hugepages
	}
	tr, err := newTransport("open", bars, caps, opts, unmap)
	if err != nil {
		if uerr := unmap(); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return nil, err
	}
	return tr, nil
}

// function opens the PCI function at addr for Open (prefix "pci") or
// OpenVFIO ("vfio"): it names the transport "<prefix>:<address>" unless
// opts.Name is set, and checks the function's identity (identify). The
// Transport returned only names errors.
func function(prefix, addr string, opts *Options) (*pci.Function, *Transport, error) {
	fn, err := pci.Open(opts.Root, addr)
	if opts.Name == "" {
		opts.Name = prefix + ":" + addr
		if err == nil {
			opts.Name = prefix + ":" + fn.Address().String()
		}
	}
	t := &Transport{name: opts.Name} // for errors
	if err == nil {
		err = identify(fn, opts.Type)
	}
	if err != nil {
		return nil, nil, t.err("open", err)
	}
	return fn, t, nil
}

// identify checks the vendor and device IDs.
func identify(fn *pci.Function, typ int) error {
	vendor, err := fn.Vendor()
	if err != nil {
		return err
	}
	device, err := fn.DeviceID()
	if err != nil {
		return err
	}
	switch {
	case vendor != vendorVirtio:
		return fmt.Errorf("%w: vendor %#04x", ErrNotVirtio, vendor)
	case device < deviceModern || device > deviceModernEnd:
		return fmt.Errorf("%w: device %#04x is not 0x1040-0x107f (a transitional device? QEMU: disable-legacy=on)", ErrNotVirtio, device)
	case typ != 0 && int(device) != deviceModern+typ:
		return fmt.Errorf("%w: device %#04x is virtio type %d, not %d", ErrNotVirtio, device, device-deviceModern, typ)
	}
	return nil
}

// mapBARs maps, with mapBAR (sysfs or VFIO), each BAR that holds a
// structure the transport uses (not the ISR status: it polls).
func mapBARs(mapBAR func(n int) (*mmio.Mapped, error), caps Caps) ([]mmio.Registers, func() error, error) {
	bars := make([]mmio.Registers, 6)
	var mapped []*mmio.Mapped
	unmap := func() error {
		var err error
		for _, m := range mapped {
			err = errors.Join(err, m.Close())
		}
		return err
	}
	for _, s := range []Structure{caps.Common, caps.Notify, caps.Device} {
		if s.Length == 0 || bars[s.BAR] != nil {
			continue
		}
		m, err := mapBAR(s.BAR)
		if err != nil {
			unmap()
			return nil, nil, err
		}
		bars[s.BAR] = m
		mapped = append(mapped, m)
	}
	return bars, unmap, nil
}
