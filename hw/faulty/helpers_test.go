package faulty_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
)

// newMem returns a writable mem device.
func newMem(t *testing.T, ss int, sectors uint64) *mem.Device {
	t.Helper()
	d, err := mem.New(ss, sectors)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// numbered returns a mem device of 512-byte sectors whose sector i holds
// byte i+1, and its contents.
func numbered(t *testing.T, sectors uint64) (*mem.Device, []byte) {
	t.Helper()
	img := make([]byte, sectors*512)
	for i := range img {
		img[i] = byte(i/512 + 1)
	}
	d, err := mem.FromBytes(512, img)
	if err != nil {
		t.Fatal(err)
	}
	return d, img
}

// sector returns one sector of ss bytes of b.
func sector(ss int, b byte) []byte { return bytes.Repeat([]byte{b}, ss) }

// wantErr checks that err is an *hw.Error with the given Op, LBA and Kind,
// and that errors.Is finds cause in it when cause is not nil.
func wantErr(t *testing.T, what string, err error, op string, lba uint64, kind, cause error) {
	t.Helper()
	var he *hw.Error
	switch {
	case !errors.As(err, &he):
		t.Errorf("%s: %v, want an *hw.Error", what, err)
	case he.Op != op || he.LBA != lba || !errors.Is(err, kind):
		t.Errorf("%s: %v (op %q lba %d), want op %q lba %d kind %v", what, err, he.Op, he.LBA, op, lba, kind)
	case cause != nil && !errors.Is(err, cause):
		t.Errorf("%s: %v, want cause %v", what, err, cause)
	}
}

// plain hides a device's optional interfaces.
type plain struct{ hw.Block }
