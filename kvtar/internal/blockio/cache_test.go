package blockio_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// TestCachedAppends: byte-range writes that each continue where the last
// one ended and fill their last sector (appends, as the store makes them)
// read nothing from the device through Cached, at 512
// and 4096-byte sectors; the device holds what a plain device would; a
// write-zeroes and writes that bypass the cached sectors keep it right.
func TestCachedAppends(t *testing.T) {
	for _, ss := range []int64{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			const size = 1 << 20
			base := newDevice(t, ss, size/uint64(ss))
			sp := &spy{Block: base}
			dev := blockio.Cached(sp)
			want := make([]byte, size)
			require.NoError(t, base.Read(0, want))

			write := func(off int64, p []byte) {
				t.Helper()
				b := blockio.NewBatch(dev)
				b.Write(off, p)
				require.NoError(t, b.Issue())
				copy(want[off:], p)
			}
			check := func(what string) {
				t.Helper()
				got := make([]byte, size)
				require.NoError(t, base.Read(0, got))
				require.True(t, bytes.Equal(want, got), what)
				// Reads through the cache agree with the device.
				got2 := make([]byte, size)
				require.NoError(t, blockio.ReadAt(dev, got2, 0))
				require.True(t, bytes.Equal(want, got2), what+" (read through the cache)")
			}

			// The first write starts and ends mid-sector: reads.
			off := int64(700)
			write(off, random(1, 1000))
			off += 1000
			reads, _ := count(sp.requests())
			require.NotZero(t, reads)
			for i := range 40 {
				// As the store appends: the data, then zeroes to the end
				// of its last sector (the end-of-archive marker).
				n := int64(100 + i*97)
				p := random(uint64(i+2), n)
				p = append(p, make([]byte, (ss-(off+n)%ss)%ss)...)
				write(off, p)
				off += n
			}
			reads, _ = count(sp.requests())
			require.Zero(t, reads, "appends read what the last write left in the cache")
			check("appends")

			// Write-zeroes over a cached sector, then a partial write of it.
			last := uint64(off) / uint64(ss)
			require.NoError(t, hw.WriteZeroes(dev, last, 1))
			clear(want[int64(last)*ss : int64(last+1)*ss])
			write(int64(last)*ss+10, []byte("after zeroes"))
			check("after write-zeroes")

			// A whole-sector write over the first cached sector, straight
			// from the caller's buffer, then a partial write of it.
			first := int64(700) / ss * ss
			write(first, random(99, ss))
			write(first+3, []byte("patched"))
			check("after a whole-sector write")

			// A cached sector in the middle of a longer write, then a
			// partial write of it.
			x := int64(8) * ss
			write(x, random(100, ss))
			write(x-ss, random(101, 3*ss))
			write(x+5, []byte("middle"))
			check("after a longer write over a cached sector")
		})
	}
}
