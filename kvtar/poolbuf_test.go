package kvtar

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// dmaDevice is a device with buffers of its own (hw.Allocator,
// hw.Releaser), as the userspace drivers have in their DMA pools: it
// counts the buffers out.
type dmaDevice struct {
	hw.Block
	mu  sync.Mutex
	out map[*byte]int
}

func (d *dmaDevice) AllocBuffer(n int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := make([]byte, n)
	d.out[&b[0]] = n
	return b
}

func (d *dmaDevice) ReleaseBuffer(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.out[&b[0]]; !ok {
		panic("kvtar test: a buffer released twice, or not the device's")
	}
	delete(d.out, &b[0])
}

func (d *dmaDevice) outstanding() (n, bytes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, size := range d.out {
		n, bytes = n+1, bytes+size
	}
	return n, bytes
}

// TestDeviceBuffersGoBack runs a store's every path that takes buffers
// from its device — small and large sets, streamed sets, whole and
// streamed reads, partial reads, patches, copies — many times over, then
// closes it: every buffer the store took from the device is back. A
// driver's DMA pool is small (16 MiB for NVMe); buffers that never go back
// leave it empty, and from then on every transfer bounces.
func TestDeviceBuffersGoBack(t *testing.T) {
	m, err := mem.New(512, (64<<20)/512)
	require.NoError(t, err)
	require.NoError(t, Format(m))
	dev := &dmaDevice{Block: m, out: map[*byte]int{}}
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
	n, size := dev.outstanding()
	t.Logf("open store: %d buffers (%d bytes) out", n, size)
	require.NoError(t, s.Close())
	n, size = dev.outstanding()
	require.Zero(t, n, "%d buffers (%d bytes) not given back to the device", n, size)
}
