package blockio_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

const mib = 1 << 20

// TestIssueRequests counts the device requests of typical batches: few,
// large, bounded, zero-copy for whole sectors of caller buffers.
func TestIssueRequests(t *testing.T) {
	type check struct {
		reads, writes int
		zeroCopy      []int // indices of writes whose buffer the device must get as it is
	}
	cases := []struct {
		name   string
		writes func(ss int64) []ext
		want   func(ss int64) check
	}{
		{"8 MiB of 1 MiB buffers and a 100-byte tail",
			func(ss int64) []ext {
				var w []ext
				for i := range int64(8) {
					w = append(w, ext{i * mib, mib})
				}
				return append(w, ext{8 * mib, 100})
			},
			func(ss int64) check { return check{reads: 1, writes: 9, zeroCopy: []int{0, 1, 2, 3, 4, 5, 6, 7}} }},
		{"3 MiB at an unaligned offset",
			func(ss int64) []ext { return []ext{{100, 3 * mib}} },
			// 3 MiB + 1 sector of sectors: 4 requests; head and tail read.
			func(ss int64) check { return check{reads: 2, writes: 4} }},
		{"two writes in one sector",
			func(ss int64) []ext { return []ext{{ss + 10, 20}, {ss + 200, 20}} },
			func(ss int64) check { return check{reads: 1, writes: 1} }},
		{"two writes tiling one sector",
			func(ss int64) []ext { return []ext{{ss, 10}, {ss + 10, ss - 10}} },
			func(ss int64) check { return check{reads: 0, writes: 1} }},
		{"scattered whole sectors",
			func(ss int64) []ext {
				var w []ext
				for i := range int64(10) {
					w = append(w, ext{2 * i * ss, ss})
				}
				return w
			},
			func(ss int64) check {
				return check{reads: 0, writes: 10, zeroCopy: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}
			}},
		{"scattered 512-byte blocks",
			func(ss int64) []ext {
				var w []ext
				for i := range int64(10) {
					w = append(w, ext{2*i*ss + ss - 512, 512})
				}
				return w
			},
			func(ss int64) check {
				if ss == 512 {
					return check{reads: 0, writes: 10}
				}
				return check{reads: 10, writes: 10}
			}},
		{"adjacent whole sectors in reverse order",
			func(ss int64) []ext {
				var w []ext
				for i := range int64(10) {
					w = append(w, ext{(9 - i) * ss, ss})
				}
				return w
			},
			func(ss int64) check { return check{reads: 0, writes: 1, zeroCopy: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}} }},
		{"more buffers than MaxSegments",
			func(ss int64) []ext {
				var w []ext
				for i := range int64(blockio.MaxSegments + 10) {
					w = append(w, ext{i * ss, ss})
				}
				return w
			},
			func(ss int64) check {
				bytes := (blockio.MaxSegments + 10) * ss
				return check{reads: 0, writes: int(max((bytes+mib-1)/mib, 2))}
			}},
	}
	for _, ss := range []int64{512, 4096} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%d/%s", ss, c.name), func(t *testing.T) {
				mdev := newDevice(t, ss, uint64(9*mib/ss))
				dev := &spy{Block: mdev}
				model := mdev.Bytes()
				b := blockio.NewBatch(dev)
				var bufs [][]byte
				for i, e := range c.writes(ss) {
					p := random(uint64(i), e.n)
					bufs = append(bufs, p)
					b.Write(e.off, p)
					copy(model[e.off:], p)
				}
				require.NoError(t, b.Issue())
				reqs := dev.requests()
				requireBounded(t, ss, reqs)
				want := c.want(ss)
				reads, writes := count(reqs)
				require.Equal(t, want.reads, reads, "reads: %v", reqs)
				require.Equal(t, want.writes, writes, "writes: %v", reqs)
				for _, i := range want.zeroCopy {
					require.True(t, aliases(reqs, true, bufs[i]), "write %d was copied", i)
				}
				requireImage(t, model, mdev.Bytes())
			})
		}
	}
}

// TestIssueZeroCopyUnaligned checks that the whole sectors of a buffer
// written at an unaligned offset reach the device without a copy, from
// where they lie in the buffer.
func TestIssueZeroCopyUnaligned(t *testing.T) {
	const ss = 4096
	dev := &spy{Block: newDevice(t, ss, 64)}
	b := blockio.NewBatch(dev)
	p := random(1, 10*ss)
	b.Write(100, p)
	require.NoError(t, b.Issue())
	reqs := dev.requests()
	require.True(t, aliases(reqs, true, p[ss-100:]), "whole sectors copied: %v", reqs)
}

// TestIssueMemoryBounded checks that Issue allocates for the partial
// sectors, not for the size of the write.
func TestIssueMemoryBounded(t *testing.T) {
	const ss = 4096
	dev := newDevice(t, ss, 16*mib/ss) // every byte non-zero: writes allocate nothing in mem
	b := blockio.NewBatch(dev)
	var ps [][]byte
	for i := range int64(8) {
		p := random(uint64(i), mib)
		ps = append(ps, p)
		b.Write(100+i*mib, p)
	}
	allocated := allocatedBy(func() { require.NoError(t, b.Issue()) })
	require.Less(t, allocated, uint64(blockio.MaxIO/4), "Issue of 8 MiB allocated %d bytes", allocated)
	got := make([]byte, mib)
	require.NoError(t, blockio.ReadAt(dev, got, 100+7*mib))
	require.Equal(t, ps[7], got)
}

// allocatedBy returns the bytes of heap memory f allocates.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestIssueRMWReadsDevice checks that read-modify-write sees what earlier
// writes left on the device, not zeroes or a cached copy: batches that
// share sectors, issued one after another on a crash device.
func TestIssueRMWReadsDevice(t *testing.T) {
	for _, ss := range sectorSizes {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			base := newDevice(t, ss, 8)
			model := base.Bytes()
			dev := crash.New(base)
			b := blockio.NewBatch(dev)
			for i := range int64(20) {
				off, p := (i*97)%(3*ss), random(uint64(i), 1+i*13)
				b.Write(off, p)
				copy(model[off:], p)
				require.NoError(t, b.Issue())
			}
			requireImage(t, model, dev.Crash(crash.KeepAll, 0).Bytes())
		})
	}
}
