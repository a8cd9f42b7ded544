package pci

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tarstore/tarstore/hw/internal/pci/pcitest"
)

func TestParseCapabilities(t *testing.T) {
	vendor := []byte{0x09, 0, 16, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0x38, 0, 0, 0}
	config := pcitest.Config(
		[]byte{0x11, 0, 0x03, 0x00}, // MSI-X
		vendor,
		[]byte{0x09, 0, 3},
		[]byte{0x10, 0, 0, 0}, // PCI Express
	)
	caps, err := ParseCapabilities(config)
	if err != nil {
		t.Fatal(err)
	}
	linked := append([]byte(nil), vendor...)
	linked[1] = 0x54 // Config filled in the next pointer
	want := []Capability{{ID: 0x11, Offset: 0x40}, {ID: 0x09, Offset: 0x44, Data: linked}, {ID: 0x09, Offset: 0x54, Data: []byte{9, 0x58, 3}}, {ID: 0x10, Offset: 0x58}}
	if len(caps) != len(want) {
		t.Fatalf("got %d capabilities %+v, want %+v", len(caps), caps, want)
	}
	for i := range want {
		if caps[i].ID != want[i].ID || caps[i].Offset != want[i].Offset || !bytes.Equal(caps[i].Data, want[i].Data) || (caps[i].Data == nil) != (want[i].Data == nil) {
			t.Errorf("capability %d = %+v, want %+v", i, caps[i], want[i])
		}
	}
	config[0x46]++ // Data is a copy
	if caps[1].Data[2] != 16 {
		t.Errorf("Data aliases the configuration space")
	}

	config[0x34] = 0x43 // reserved low bits are masked off
	if caps, err := ParseCapabilities(config); err != nil || len(caps) != 4 {
		t.Errorf("pointer with reserved bits: %d capabilities, %v", len(caps), err)
	}

	noList := pcitest.Config([]byte{0x11, 0, 0, 0})
	noList[0x06] = 0
	if caps, err := ParseCapabilities(noList); err != nil || caps != nil {
		t.Errorf("status without capability list: %v, %v", caps, err)
	}
}

func TestParseCapabilitiesRejectsBadLists(t *testing.T) {
	for _, c := range []struct {
		name   string
		config func() []byte
		offset int
	}{
		{"loop to itself", func() []byte { b := pcitest.Config([]byte{0x11, 0, 0, 0}); b[0x41] = 0x40; return b }, 0x40},
		{"loop of two", func() []byte {
			b := pcitest.Config([]byte{0x11, 0, 0, 0}, []byte{0x05, 0, 0, 0})
			b[0x45] = 0x40
			return b
		}, 0x40},
		{"pointer into the header", func() []byte { b := pcitest.Config([]byte{0x11, 0, 0, 0}); b[0x41] = 0x3c; return b }, 0x3c},
		{"first pointer into the header", func() []byte { b := pcitest.Config([]byte{0x11, 0, 0, 0}); b[0x34] = 0x10; return b }, 0x10},
		{"pointer past the space read", func() []byte { return pcitest.Config([]byte{0x11, 0, 0, 0})[:0x41] }, 0x40},
		{"vendor length below 3", func() []byte { return pcitest.Config([]byte{0x09, 0, 2, 0}) }, 0x40},
		{"vendor length past the end", func() []byte { return pcitest.Config([]byte{0x09, 0, 0xff, 0}) }, 0x40},
		{"vendor header past the end", func() []byte { b := pcitest.Config([]byte{0x09, 0, 3, 0}); return b[:0x42] }, 0x40},
		{"header cut short", func() []byte { return make([]byte, 0x3f) }, 0},
	} {
		_, err := ParseCapabilities(c.config())
		var ce *CapabilityError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCapabilities) || ce.Offset != c.offset {
			t.Errorf("%s: %v, want a *CapabilityError at %#x", c.name, err, c.offset)
		}
	}
}
