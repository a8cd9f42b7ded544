package virtiopci

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/tarstore/tarstore/hw/internal/pci"
	"github.com/tarstore/tarstore/hw/internal/pci/pcitest"
)

// virtioCap returns a struct virtio_pci_cap (§4.1.4) of cfg_type typ, with
// extra bytes appended (notify_off_multiplier).
func virtioCap(typ, bar int, offset, length uint32, extra ...byte) []byte {
	b := make([]byte, capLen, capLen+len(extra))
	b[0], b[2], b[capOffType], b[capOffBAR] = pci.CapVendor, byte(capLen+len(extra)), byte(typ), byte(bar)
	binary.LittleEndian.PutUint32(b[capOffOffset:], offset)
	binary.LittleEndian.PutUint32(b[capOffLength:], length)
	return append(b, extra...)
}

func notifyCap(bar int, offset, length, mult uint32) []byte {
	return virtioCap(TypeNotify, bar, offset, length, binary.LittleEndian.AppendUint32(nil, mult)...)
}

// qemuConfig is the capability list of QEMU's virtio-blk-pci with
// disable-legacy=on: MSI-X, then the virtio structures in BAR 4.
func qemuConfig() []byte {
	return pcitest.Config(
		[]byte{0x11, 0, 0x03, 0x00, 0x01, 0, 0, 0, 0x01, 0x08, 0, 0}, // MSI-X
		virtioCap(TypeCommon, 4, 0x0000, 0x1000),
		virtioCap(TypeISR, 4, 0x1000, 0x1000),
		virtioCap(TypeDevice, 4, 0x2000, 0x1000),
		notifyCap(4, 0x3000, 0x1000, 4),
		virtioCap(TypePCI, 0, 0, 0, 0, 0, 0, 0),
	)
}

func parse(t *testing.T, config []byte) (Caps, error) {
	t.Helper()
	pcs, err := pci.ParseCapabilities(config)
	if err != nil {
		t.Fatal(err)
	}
	return ParseCaps(pcs)
}

func TestParseCaps(t *testing.T) {
	caps, err := parse(t, qemuConfig())
	want := Caps{
		Common:           Structure{4, 0x0000, 0x1000},
		ISR:              Structure{4, 0x1000, 0x1000},
		Device:           Structure{4, 0x2000, 0x1000},
		Notify:           Structure{4, 0x3000, 0x1000},
		NotifyMultiplier: 4,
	}
	if err != nil || caps != want {
		t.Errorf("QEMU's capabilities: %+v, %v; want %+v", caps, err, want)
	}

	// The first usable structure of each type wins; unusable ones and
	// other types are skipped.
	caps, err = parse(t, pcitest.Config(
		virtioCap(8, 2, 0, 0x1000, 0, 0, 0, 0, 0, 0, 0, 0),  // shared memory: not ours
		virtioCap(TypeCommon, 6, 0x100, 0x38),               // reserved BAR
		virtioCap(TypeNotify, 2, 0x3000, 0x1000),            // no multiplier
		[]byte{pci.CapVendor, 0, 8, TypeCommon, 2, 0, 0, 0}, // too short
		virtioCap(TypeCommon, 2, 0x200, 0x38),
		notifyCap(2, 0x400, 0x100, 0),
		virtioCap(TypeCommon, 2, 0x800, 0x38),
		notifyCap(2, 0x900, 0x100, 2),
		[]byte{0x05, 0, 0, 0}, // MSI
	))
	want = Caps{Common: Structure{2, 0x200, 0x38}, Notify: Structure{2, 0x400, 0x100}}
	if err != nil || caps != want {
		t.Errorf("mixed capabilities: %+v, %v; want %+v", caps, err, want)
	}

	for name, config := range map[string][]byte{
		"no notify": pcitest.Config(virtioCap(TypeCommon, 4, 0, 0x38), virtioCap(TypeDevice, 4, 0x2000, 0x100)),
		"no common": pcitest.Config(notifyCap(4, 0x3000, 0x1000, 4)),
		"nothing":   pcitest.Config(),
	} {
		if _, err := parse(t, config); !errors.Is(err, ErrCapability) {
			t.Errorf("%s: %v, want ErrCapability", name, err)
		}
	}
}
