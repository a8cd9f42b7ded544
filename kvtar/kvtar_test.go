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

// memHarness runs stores on in-memory devices of the given sector size;
// with holes, the stores reuse holes before they append (holesFirst).
func memHarness(ss int, size uint64, holes bool) kvtest.Harness {
	open := func(t *testing.T, clk clock.PClock, dev *mem.Device) *Store {
		s, err := New(clk, dev)
		require.NoError(t, err)
		if holes {
			holesFirst(s)
		}
		return s
	}
	devs := map[kv.RW]*mem.Device{}
	return kvtest.Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW {
			dev, err := mem.New(ss, size/uint64(ss))
			require.NoError(t, err)
			require.NoError(t, Format(dev))
			s := open(t, clk, dev)
			// After the suite's own cleanup, which checks and closes the
			// subtest's last store: the final image, reopens included.
			checkWhenDone(t, s, dev)
			devs[s] = dev
			return s
		},
		Reopen: func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW {
			dev := devs[s]
			require.NoError(t, s.Close())
			s2 := open(t, clk, dev.Reopen())
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
	kvtest.TestRW(t, memHarness(512, 256<<20, true))
}

func TestConformanceMem4096(t *testing.T) {
	kvtest.TestRW(t, memHarness(4096, 256<<20, false))
}
