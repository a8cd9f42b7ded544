package virtio

import "github.com/tarstore/tarstore/hw/virtio/virtiopci"

var _ Transport = (*virtiopci.Transport)(nil)

// OpenPCI opens the modern virtio-pci block device at PCI address addr
// ("0000:00:06.0") from userspace: its BAR mapped through sysfs, DMA memory
// from 2 MiB huge pages (which must be reserved: /proc/sys/vm/nr_hugepages),
// completions polled. No kernel driver may be bound to the function. After
// the device needs a reset, the next request resets it and brings it up
// again.
func OpenPCI(addr string, opts Options) (*Device, error) {
	return Open(func() (Transport, error) {
		t, err := virtiopci.Open(addr, virtiopci.Options{Type: 2})
		if err != nil {
			return nil, err // not a nil *Transport in a non-nil interface
		}
		return t, nil
	}, opts)
}
