package virtiopci

import (
	"encoding/binary"
	"fmt"

	"github.com/tarstore/tarstore/hw/internal/pci"
)

// Structure types, virtio_pci_cap.cfg_type (§4.1.4).
const (
	TypeCommon = 1 // common configuration
	TypeNotify = 2 // notifications
	TypeISR    = 3 // ISR status
	TypeDevice = 4 // device-specific configuration
	TypePCI    = 5 // PCI configuration access (unused: the BARs are mapped)
)

// struct virtio_pci_cap (§4.1.4): offsets in the capability's bytes.
const (
	capOffType       = 3  // u8 cfg_type
	capOffBAR        = 4  // u8 bar
	capOffOffset     = 8  // le32 offset within the BAR
	capOffLength     = 12 // le32 length
	capOffMultiplier = 16 // le32 notify_off_multiplier, notify only (§4.1.4.4)
	capLen           = 16
	notifyCapLen     = 20
)

// Structure is where a virtio structure lies: Length bytes at Offset in
// BAR BAR. A zero Length means the device has none.
type Structure struct {
	BAR    int
	Offset uint32
	Length uint32
}

// Caps locates the virtio structures of a device.
type Caps struct {
	Common Structure
	Notify Structure
	ISR    Structure
	Device Structure

	// NotifyMultiplier scales a queue's queue_notify_off into a byte
	// offset in the notify structure (§4.1.4.4); 0 means every queue
	// notifies at its start.
	NotifyMultiplier uint32
}

// ParseCaps finds the virtio structures among a function's vendor-specific
// capabilities (pci.Function.VendorCapabilities), in list order, taking the
// first of each type that this driver can use (§4.1.4: "The driver SHOULD
// use the first instance of each virtio structure type they can support").
// It ignores capabilities of other IDs, reserved or unused types, reserved
// BAR numbers (above 5) and capabilities too short for their type. The
// common and notify structures are required: without them the error wraps
// ErrCapability.
func ParseCaps(caps []pci.Capability) (Caps, error) {
	var (
		c    Caps
		seen [TypeDevice + 1]bool
	)
	for _, pc := range caps {
		b := pc.Data
		if pc.ID != pci.CapVendor || len(b) < capLen {
			continue
		}
		typ, bar := int(b[capOffType]), int(b[capOffBAR])
		if typ < TypeCommon || typ > TypeDevice || bar > 5 || seen[typ] {
			continue
		}
		if typ == TypeNotify && len(b) < notifyCapLen {
			continue
		}
		s := Structure{BAR: bar, Offset: binary.LittleEndian.Uint32(b[capOffOffset:]), Length: binary.LittleEndian.Uint32(b[capOffLength:])}
		seen[typ] = true
		switch typ {
		case TypeCommon:
			c.Common = s
		case TypeNotify:
			c.Notify = s
			c.NotifyMultiplier = binary.LittleEndian.Uint32(b[capOffMultiplier:])
		case TypeISR:
			c.ISR = s
		case TypeDevice:
			c.Device = s
		}
	}
	for _, need := range []struct {
		typ  int
		name string
	}{{TypeCommon, "common configuration"}, {TypeNotify, "notification"}} {
		if !seen[need.typ] {
			return Caps{}, fmt.Errorf("%w: no %s structure (cfg_type %d)", ErrCapability, need.name, need.typ)
		}
	}
	return c, nil
}
