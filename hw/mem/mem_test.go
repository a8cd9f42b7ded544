package mem_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwtest"
	"github.com/tarstore/tarstore/hw/mem"
)

// TestConformance runs the driver suite at several sector sizes, including
// one that is not a power of two (its sectors straddle the 64 KiB chunks).
func TestConformance(t *testing.T) {
	for _, ss := range []int{512, 1024, 1536, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			hwtest.TestDevice(t, hwtest.Harness{
				Open: func(t *testing.T) hw.Block { return newDevice(t, ss, 640) },
				Reopen: func(t *testing.T, dev hw.Block) hw.Block {
					return dev.(*mem.Device).Reopen()
				},
			})
		})
	}
}

func TestConformanceReadOnly(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
				d := newDevice(t, ss, 16)
				if err := d.Write(0, filled(ss*16, 0x33)); err != nil {
					t.Fatal(err)
				}
				return d.ReadOnlyView()
			})
		})
	}
}

func newDevice(t *testing.T, ss int, sectors uint64) *mem.Device {
	t.Helper()
	d, err := mem.New(ss, sectors)
	if err != nil {
		t.Fatalf("New(%d, %d): %v", ss, sectors, err)
	}
	return d
}

func filled(n int, b byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	return p
}

func TestNewGeometry(t *testing.T) {
	cases := []struct {
		name       string
		sectorSize int
		sectors    uint64
		kind       error // nil: success
	}{
		{"512", 512, 1, nil},
		{"4096", 4096, 8, nil},
		{"1536", 1536, 3, nil},
		{"zero sector size", 0, 8, hw.ErrMisaligned},
		{"negative sector size", -512, 8, hw.ErrMisaligned},
		{"not a multiple of 512", 1000, 8, hw.ErrMisaligned},
		{"256", 256, 8, hw.ErrMisaligned},
		{"no sectors", 512, 0, hw.ErrOutOfRange},
		{"size overflows int64", 512, 1 << 55, hw.ErrOutOfRange},
		{"largest size", 512, (1<<63 - 1) / 512, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := mem.New(c.sectorSize, c.sectors)
			if c.kind == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				info := d.Info()
				if info.SectorSize != c.sectorSize || info.Sectors != c.sectors || info.Driver != "mem" || info.ReadOnly {
					t.Errorf("Info() = %+v", info)
				}
				if d.Size() != int64(c.sectors)*int64(c.sectorSize) || d.Allocated() != 0 {
					t.Errorf("Size() = %d, Allocated() = %d", d.Size(), d.Allocated())
				}
				return
			}
			var he *hw.Error
			if !errors.As(err, &he) || !errors.Is(err, c.kind) || he.Op != "open" {
				t.Fatalf("New = %v, %v; want an *hw.Error of Op open and Kind %v", d, err, c.kind)
			}
		})
	}
}

func TestFromBytes(t *testing.T) {
	img := make([]byte, 3*512)
	for i := range img {
		img[i] = byte(i * 7)
	}
	d, err := mem.FromBytes(512, img)
	if err != nil {
		t.Fatal(err)
	}
	if d.Info().Sectors != 3 {
		t.Errorf("Sectors = %d, want 3", d.Info().Sectors)
	}
	img[0] ^= 0xff // FromBytes copies
	buf := make([]byte, 512)
	if err := d.Read(0, buf); err != nil {
		t.Fatal(err)
	}
	if buf[0] != 0 || buf[1] != 7 {
		t.Errorf("first bytes %d %d, want 0 7", buf[0], buf[1])
	}
	for _, c := range []struct {
		name string
		ss   int
		n    int
	}{
		{"empty image", 512, 0},
		{"partial sector", 512, 700},
		{"bad sector size", 500, 1000},
	} {
		_, err := mem.FromBytes(c.ss, make([]byte, c.n))
		var he *hw.Error
		if !errors.As(err, &he) || !errors.Is(err, hw.ErrMisaligned) || he.Op != "open" {
			t.Errorf("%s: FromBytes error %v, want open: ErrMisaligned", c.name, err)
		}
	}
}
