package kvtar

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// memHarness runs stores on in-memory devices of the given sector size.
func memHarness(ss int, size uint64) kvtest.Harness {
	devs := map[kv.RW]*mem.Device{}
	return kvtest.Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW {
			dev, err := mem.New(ss, size/uint64(ss))
			require.NoError(t, err)
			require.NoError(t, Format(dev))
			s, err := New(clk, dev)
			require.NoError(t, err)
			devs[s] = dev
			return s
		},
		Reopen: func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW {
			dev := devs[s]
			require.NoError(t, s.Close())
			s2, err := New(clk, dev.Reopen())
			require.NoError(t, err)
			devs[s2] = dev
			return s2
		},
		MtimeResolution: time.Second,
		LargeSize:       8 << 20,
		Check: func(t *testing.T, s kv.RW) {
			checkStore(t, s.(*Store), devs[s].ReaderAt())
		},
	}
}

func TestConformanceMem512(t *testing.T) {
	kvtest.TestRW(t, memHarness(512, 256<<20))
}

func TestConformanceMem4096(t *testing.T) {
	kvtest.TestRW(t, memHarness(4096, 256<<20))
}
