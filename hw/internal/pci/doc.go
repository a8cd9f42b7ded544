// Package pci reaches a PCI function through Linux sysfs
// (Documentation/PCI/sysfs-pci.rst): its identity, its configuration space,
// its capability list, its BARs and which kernel driver holds it. Every
// path is under a root directory, DefaultRoot unless the caller names
// another, so tests build a fake tree in a temporary directory.
//
// # Files used, under <root>/<domain:bus:device.function>/
//
//	vendor, device, class   "0x1af4\n": hexadecimal identity
//	config                  configuration space, read and written with
//	                        pread/pwrite at the register's offset; beyond the
//	                        first 64 bytes only root may read it
//	resource                one line per resource, "start end flags" in
//	                        hexadecimal: lines 0-5 are BARs 0-5 (size end-start+1,
//	                        0 when unused; flag 0x200 IORESOURCE_MEM)
//	resource<N>             BAR N, mmap'able (mmio.Map)
//	driver                  symlink to the bound driver's directory, absent
//	                        when none; driver/unbind takes the address
//	driver_override         the only driver that may bind; <root>/../drivers_probe
//	                        takes an address and binds it (vfio-pci, say)
//
// # Configuration space (PCI Local Bus 3.0 §6.1, §6.7)
//
// The command register is the 16-bit word at 0x04: bit 1 enables memory
// space (BAR accesses), bit 2 bus mastering (DMA). Bit 4 of the status
// register at 0x06 says the function has a capability list; the byte at
// 0x34 points at the first capability, each starts with its ID and the
// pointer to the next (0 ends the list), and the two low bits of a pointer
// are reserved and masked off. Pointers lie in 0x40..0xff. A pointer
// outside that range, past the configuration space read, or back to a
// capability already seen is a *CapabilityError: a device (or a corrupt
// file) never makes the walk loop or index out of range. Vendor-specific
// capabilities (ID 0x09, §6.8 of PCI 3.0 and virtio 1.2 §4.1.4) carry their
// length in their third byte and are returned with their bytes.
//
// Errors from operations on a function are *Error, naming the operation and
// the address, wrapping the system error (errors.Is(err, fs.ErrNotExist)
// works) or one of this package's sentinels.
package pci
