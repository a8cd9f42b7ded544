package blockio_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/faulty"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// TestReadAtShapes reads each shape of range at every sector size and
// checks the bytes, the single request, and that the whole sectors in the
// middle were read straight into the caller's buffer.
func TestReadAtShapes(t *testing.T) {
	const sectors = 24
	cases := []struct {
		name  string
		shape func(ss, size int64) ext
	}{
		{"empty", func(ss, size int64) ext { return ext{ss + 3, 0} }},
		{"empty at the end", func(ss, size int64) ext { return ext{size, 0} }},
		{"first byte", func(ss, size int64) ext { return ext{0, 1} }},
		{"inside one sector", func(ss, size int64) ext { return ext{ss + 10, 100} }},
		{"whole sector", func(ss, size int64) ext { return ext{2 * ss, ss} }},
		{"head only", func(ss, size int64) ext { return ext{ss + 100, 2*ss - 100} }},
		{"tail only", func(ss, size int64) ext { return ext{ss, 2*ss + 100} }},
		{"head and tail in adjacent sectors", func(ss, size int64) ext { return ext{ss - 1, 2} }},
		{"head, middle and tail", func(ss, size int64) ext { return ext{7, 5 * ss} }},
		{"whole sectors", func(ss, size int64) ext { return ext{3 * ss, 7 * ss} }},
		{"last byte", func(ss, size int64) ext { return ext{size - 1, 1} }},
		{"to the end", func(ss, size int64) ext { return ext{size - ss - 3, ss + 3} }},
		{"whole device", func(ss, size int64) ext { return ext{0, size} }},
		{"all but the first byte", func(ss, size int64) ext { return ext{1, size - 1} }},
		{"all but the last byte", func(ss, size int64) ext { return ext{0, size - 1} }},
	}
	for _, ss := range sectorSizes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%d/%s", ss, c.name), func(t *testing.T) {
				size := ss * sectors
				mdev := newDevice(t, ss, sectors)
				image := mdev.Bytes()
				dev := &spy{Block: mdev}
				e := c.shape(ss, size)
				// Guard bytes around p catch writes outside it.
				buf := random(99, e.n+16)
				p := buf[8 : 8+e.n]
				require.NoError(t, blockio.ReadAt(dev, p, e.off))
				require.Equal(t, image[e.off:e.off+e.n], p)
				require.Equal(t, random(99, e.n+16)[:8], buf[:8])
				require.Equal(t, random(99, e.n+16)[8+e.n:], buf[8+e.n:])

				reqs := dev.requests()
				reads, writes := count(reqs)
				require.Zero(t, writes)
				if e.n == 0 {
					require.Zero(t, reads)
					return
				}
				require.Equal(t, 1, reads, "%v", reqs)
				if mid := (e.off + ss - 1) / ss * ss; mid+ss <= e.off+e.n {
					require.True(t, aliases(reqs, false, p[mid-e.off:]), "middle sectors bounced: %v", reqs)
				}
			})
		}
	}
}

// TestReadAtLarge reads more than MaxIO at aligned and unaligned offsets:
// one request per MiB of sectors, each bounded, the middle zero-copy, and
// memory for two sectors at most.
func TestReadAtLarge(t *testing.T) {
	const ss = 4096
	mdev := newDevice(t, ss, 4*mib/ss)
	image := mdev.Bytes()
	for _, c := range []struct {
		off, n int64
		reads  int
	}{
		{0, 3 * mib, 3},
		{100, 3 * mib, 4},
		{ss, 3*mib - 5, 3},
	} {
		t.Run(fmt.Sprint(c.off, "+", c.n), func(t *testing.T) {
			dev := &spy{Block: mdev}
			p := make([]byte, c.n)
			allocated := allocatedBy(func() { require.NoError(t, blockio.ReadAt(dev, p, c.off)) })
			require.Less(t, allocated, uint64(64<<10))
			require.Equal(t, image[c.off:c.off+c.n], p)
			reqs := dev.requests()
			requireBounded(t, ss, reqs)
			reads, _ := count(reqs)
			require.Equal(t, c.reads, reads, "%v", reqs)
			mid := (c.off + ss - 1) / ss * ss
			require.True(t, aliases(reqs, false, p[mid-c.off:]), "middle sectors bounced: %v", reqs)
		})
	}
}

// pooled wraps dev as a device with buffers of its own (hw.Allocator,
// hw.Releaser), like a driver's DMA pool, that counts them
// (faulty.Device.Buffers).
func pooled(dev hw.Block) *faulty.Device { return faulty.New(dev) }

// failAll makes every read and write of d fail.
func failAll(d *faulty.Device) {
	d.InjectError(faulty.Fault{Op: faulty.OpRead | faulty.OpWrite, Sectors: d.Info().Sectors})
}

// TestReadAtBounceBuffers checks what becomes of the bounce buffers of
// reads of partial sectors on a device with buffers of its own: each
// comes from the device and goes back to it once the read succeeded (a
// pool that lost one at every small read would soon be empty), and none
// goes back after a failed read, which a request that timed out may still
// own. Through the store's cache too, which passes buffers on.
func TestReadAtBounceBuffers(t *testing.T) {
	for _, ss := range sectorSizes {
		for _, cachedDev := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/cached=%v", ss, cachedDev), func(t *testing.T) {
				mdev := newDevice(t, ss, 16)
				image := mdev.Bytes()
				p := pooled(mdev)
				var dev hw.Block = p
				if cachedDev {
					dev = blockio.Cached(p)
				}
				for _, e := range []ext{{ss + 10, 100}, {7, 5 * ss}, {ss - 1, 2}, {ss, 2*ss + 100}} {
					got := make([]byte, e.n)
					require.NoError(t, blockio.ReadAt(dev, got, e.off))
					require.Equal(t, image[e.off:e.off+e.n], got)
				}
				require.Positive(t, p.Buffers().Allocated, "the bounce buffers are the device's")
				require.Zero(t, p.Buffers().Out, "bounce buffers not given back after reads that succeeded")

				failAll(p)
				require.Error(t, blockio.ReadAt(dev, make([]byte, 100), ss+10))
				require.Equal(t, 1, p.Buffers().Out, "a failed read's bounce buffer given back")
				require.Zero(t, p.Buffers().Stray, "a buffer given back twice, or not the device's")
			})
		}
	}
}

// TestReadAtReusedBounce reads partial sectors of devices of every sector
// size in turn, many times, on a device without buffers of its own (the
// bounce buffers are then reused memory): each read returns its own bytes.
func TestReadAtReusedBounce(t *testing.T) {
	for round := range 50 {
		for _, ss := range sectorSizes {
			mdev := newDevice(t, ss, 8)
			image := mdev.Bytes()
			off := int64(round*13) % (ss * 6)
			n := min(int64(round*37+1), ss*8-off)
			got := make([]byte, n)
			require.NoError(t, blockio.ReadAt(mdev, got, off))
			require.Equal(t, image[off:off+n], got, "ss %d, %d bytes at %d", ss, n, off)
		}
	}
}

// TestBatchBounceBuffers checks what becomes of a batch's bounce memory
// on a device with buffers of its own: a reused batch keeps its arena, and
// gives back the arenas it outgrew and the buffers of requests larger
// than an arena once their writes are done; Release gives back the rest.
// After a failed Issue nothing goes back (a request that timed out may
// still own it), and the batch takes new memory.
func TestBatchBounceBuffers(t *testing.T) {
	for _, ss := range sectorSizes {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			mdev := newDevice(t, ss, 1024)
			p := pooled(mdev)
			b := blockio.NewBatch(p)
			// Unaligned writes, each bounced, ever larger: the arena
			// grows, and the last ones are larger than any arena.
			for i, n := range []int64{10, ss, 3 * ss, 40 << 10, 100 << 10, 300 << 10} {
				b.Write(7+int64(i)*ss, random(uint64(i), n))
				b.Write(int64(i)*ss+ss/2, random(uint64(i), 3))
				require.NoError(t, b.Issue())
				require.LessOrEqual(t, p.Buffers().Out, 1, "write %d: only the arena stays out", i)
			}
			require.Positive(t, p.Buffers().Allocated)
			b.Release()
			require.Zero(t, p.Buffers().Out, "Release gives back the arena")

			b.Write(7, random(1, 100<<10))
			require.NoError(t, b.Issue())
			failAll(p)
			b.Write(9, random(2, 100<<10))
			b.Write(ss+3, random(2, 10))
			require.Error(t, b.Issue())
			out := p.Buffers().Out
			require.Positive(t, out, "memory of a failed Issue given back")
			p.ClearFaults()
			b.Write(11, random(3, 10))
			require.NoError(t, b.Issue())
			b.Release()
			require.Equal(t, out, p.Buffers().Out, "memory of a failed Issue given back, or reused")
			require.Zero(t, p.Buffers().Stray, "a buffer given back twice, or not the device's")
		})
	}
}
