package blockio

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
)

// noZeroer hides the device's write-zeroes command, to test the fallback.
type noZeroer struct{ hw.Block }

func TestZero(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		for _, fallback := range []bool{false, true} {
			for _, r := range []struct{ off, n int64 }{
				{0, 1}, {1, 10}, {100, 512}, {511, 2}, {0, 4096}, {4095, 4098}, {700, 3 * 4096}, {8192, 8192}, {3, 0},
			} {
				name := fmt.Sprintf("ss%d/fallback=%v/%d+%d", ss, fallback, r.off, r.n)
				m, err := mem.New(ss, 16<<10/uint64(ss))
				if err != nil {
					t.Fatal(err)
				}
				var dev hw.Block = m
				if fallback {
					dev = noZeroer{m}
				}
				model := bytes.Repeat([]byte{0xa5}, 16<<10)
				if err := dev.Write(0, model); err != nil {
					t.Fatal(err)
				}
				if err := Zero(dev, r.off, r.n); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				clear(model[r.off : r.off+r.n])
				if got := m.Bytes(); !bytes.Equal(got, model) {
					t.Fatalf("%s: image differs from the model", name)
				}
			}
		}
	}
}

func TestZeroOutOfRange(t *testing.T) {
	m, err := mem.New(512, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ off, n int64 }{{-1, 10}, {4000, 200}, {0, 5000}} {
		if err := Zero(m, r.off, r.n); err == nil {
			t.Errorf("Zero(%d, %d) on a 4096-byte device: no error", r.off, r.n)
		}
	}
}
