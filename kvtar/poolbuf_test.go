package kvtar

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/faulty"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// TestDeviceBuffersGoBack runs a store's every path that takes buffers
// from its device — small and large sets, streamed sets, whole and
// streamed reads, partial reads, patches, copies — many times over, then
// closes it: every buffer the store took from the device is back
// (faulty.Device.Buffers counts them). A driver's DMA pool is small
// (16 MiB for NVMe); buffers that never go back leave it empty, and from
// then on every transfer bounces.
func TestDeviceBuffersGoBack(t *testing.T) {
	m, err := mem.New(512, (64<<20)/512)
	require.NoError(t, err)
	require.NoError(t, Format(m))
	dev := faulty.New(m)
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	big := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
	for i := range 20 {
		k := kv.MustKey("/d/big")
		require.NoError(t, s.SetFrom(k, bytes.NewReader(big), int64(len(big))))
		require.NoError(t, s.Set(kv.MustKey("/d/small"), []byte("small value")))
		require.NoError(t, s.SetFrom(kv.MustKey("/d/mid"), bytes.NewReader(big[:100<<10]), 100<<10))
		got, err := s.Get(k)
		require.NoError(t, err)
		require.Equal(t, big, got)
		r, err := s.Open(k)
		require.NoError(t, err)
		got, err = io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		require.NoError(t, err)
		require.Equal(t, big, got)
		p := make([]byte, 100)
		_, err = r.ReadAt(p, 777)
		require.NoError(t, err)
		require.NoError(t, r.Close())
		require.NoError(t, s.SetPartial(kv.MustKey("/d/small"), 3, []byte("patch")))
		require.NoError(t, s.Rename(kv.MustKey("/d/mid"), kv.MustKey("/e/mid")))
		if i%2 == 0 {
			require.NoError(t, s.Remove(kv.MustKey("/e")))
		}
	}
	b := dev.Buffers()
	t.Logf("open store: %d buffers (%d bytes) out", b.Out, b.OutBytes)
	require.NoError(t, s.Close())
	b = dev.Buffers()
	require.Zero(t, b.Out, "%d buffers (%d bytes) not given back to the device", b.Out, b.OutBytes)
	require.Zero(t, b.Stray, "a buffer given back twice, or not the device's")
}
