package pci

import (
	"encoding/binary"
	"fmt"
)

// Configuration space offsets and bits (PCI Local Bus 3.0 §6.1, §6.7).
const (
	offCommand    = 0x04 // u16
	offStatus     = 0x06 // u16
	offCapPointer = 0x34 // u8

	commandMemory = 1 << 1 // memory space enable
	commandMaster = 1 << 2 // bus master enable
	statusCapList = 1 << 4 // capability list present

	headerSize    = 0x40  // the standard header; capabilities follow
	configSize    = 0x100 // the conventional configuration space
	capIDVendor   = 0x09
	vendorCapHead = 3 // ID, next, length
)

// CapVendor is the ID of a vendor-specific capability (virtio's structures
// are such capabilities).
const CapVendor = capIDVendor

// Capability is one entry of a function's capability list.
type Capability struct {
	ID     uint8
	Offset int // in configuration space
	// Data holds a vendor-specific capability's bytes (its length is in
	// its third byte), from its ID byte on; it is nil for other IDs.
	Data []byte
}

// ParseCapabilities walks the capability list of the configuration space
// in config (at least the 64-byte header; normally 256 bytes). It returns
// nil when the status register says there is no list, and a
// *CapabilityError when a pointer leaves the space read, points into the
// header, revisits a capability or a vendor capability's length is bad.
func ParseCapabilities(config []byte) ([]Capability, error) {
	if len(config) < headerSize {
		return nil, &CapabilityError{Offset: 0, Reason: fmt.Sprintf("only %d bytes of configuration space", len(config))}
	}
	if binary.LittleEndian.Uint16(config[offStatus:])&statusCapList == 0 {
		return nil, nil
	}
	var (
		caps []Capability
		seen [configSize]bool
	)
	for ptr := int(config[offCapPointer]) &^ 3; ptr != 0; {
		switch {
		case ptr < headerSize:
			return nil, &CapabilityError{Offset: ptr, Reason: "pointer into the header"}
		case ptr+2 > len(config):
			return nil, &CapabilityError{Offset: ptr, Reason: fmt.Sprintf("pointer past the %d bytes read", len(config))}
		case seen[ptr]:
			return nil, &CapabilityError{Offset: ptr, Reason: "loop in the list"}
		}
		seen[ptr] = true
		c := Capability{ID: config[ptr], Offset: ptr}
		if c.ID == capIDVendor {
			if ptr+vendorCapHead > len(config) {
				return nil, &CapabilityError{Offset: ptr, Reason: "vendor capability past the end"}
			}
			n := int(config[ptr+2])
			if n < vendorCapHead || ptr+n > len(config) {
				return nil, &CapabilityError{Offset: ptr, Reason: fmt.Sprintf("vendor capability of %d bytes", n)}
			}
			c.Data = append([]byte(nil), config[ptr:ptr+n]...)
		}
		caps = append(caps, c)
		ptr = int(config[ptr+1]) &^ 3
	}
	return caps, nil
}

// ConfigAccess reads and writes a function's configuration space: through
// sysfs (Function) or through VFIO (package vfio).
type ConfigAccess interface {
	ReadConfig(off int, b []byte) error
	WriteConfig(off int, b []byte) error
}

// EnableMemoryAndMaster sets memory space and bus master enable in the
// command register (0x04, bits 1 and 2), so that the BARs answer and the
// function may do DMA. It writes only when a bit is missing, and keeps the
// register's other bits.
func EnableMemoryAndMaster(c ConfigAccess) error {
	var b [2]byte
	if err := c.ReadConfig(offCommand, b[:]); err != nil {
		return err
	}
	cmd := binary.LittleEndian.Uint16(b[:])
	if cmd&(commandMemory|commandMaster) == commandMemory|commandMaster {
		return nil
	}
	binary.LittleEndian.PutUint16(b[:], cmd|commandMemory|commandMaster)
	return c.WriteConfig(offCommand, b[:])
}
