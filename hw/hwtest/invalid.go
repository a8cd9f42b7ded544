package hwtest

import (
	"math"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// testMisaligned sends reads and writes whose buffers are not whole sectors
// (or that have no buffers at all): each must fail with ErrMisaligned, and
// the failed writes must not change the device, not even through their
// well-formed buffers.
func testMisaligned(t *testing.T, dev hw.Block, info hw.Info) {
	ss := info.SectorSize
	const lba = 2
	cases := []struct {
		name  string
		sizes []int // buffer lengths in bytes; nil is a request without buffers
	}{
		{"no buffers", nil},
		{"empty buffer", []int{0}},
		{"one byte", []int{1}},
		{"sector minus one", []int{ss - 1}},
		{"sector plus one", []int{ss + 1}},
		{"good then bad", []int{ss, ss + 1}},
		{"good then empty", []int{ss, 0}},
		{"bad halves of two sectors", []int{ss - 1, ss + 1}},
	}
	before := pattern(ss, 500, 0, 8)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustWrite(t, dev, 0, before)
			var wbufs, rbufs [][]byte
			for _, n := range c.sizes {
				w := make([]byte, n)
				for i := range w {
					w[i] = 0x5a
				}
				wbufs = append(wbufs, w)
				rbufs = append(rbufs, make([]byte, n))
			}
			wantErrAt(t, "Write", dev.Write(lba, wbufs...), hw.ErrMisaligned, "write", lba)
			wantErrAt(t, "Read", dev.Read(lba, rbufs...), hw.ErrMisaligned, "read", lba)
			expect(t, dev, "sectors after the failed write", 0, before)
		})
	}
}

// testOutOfRange sends requests that reach past the end of the device,
// including ones whose end or byte offset overflows 64 bits: each must fail
// with ErrOutOfRange and the failed writes must change nothing.
func testOutOfRange(t *testing.T, dev hw.Block, info hw.Info) {
	ss, last := info.SectorSize, info.Sectors
	cases := []struct {
		name  string
		lba   uint64
		sizes []int // buffer sizes in sectors
	}{
		{"at the end", last, []int{1}},
		{"one past the end", last + 1, []int{1}},
		{"across the end", last - 1, []int{2}},
		{"across the end vectored", last - 1, []int{1, 1}},
		{"largest lba", math.MaxUint64, []int{1}},
		{"end wraps past 2^64", math.MaxUint64 - 1, []int{3}},
		{"byte offset wraps to 0", 1 << 55, []int{1}},
	}
	if (last+1)*uint64(ss) <= 8<<20 {
		cases = append(cases, struct {
			name  string
			lba   uint64
			sizes []int
		}{"larger than the device", 0, []int{int(last + 1)}})
	}
	head, tail := pattern(ss, 600, 0, 2), pattern(ss, 601, last-2, 2)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustWrite(t, dev, 0, head)
			mustWrite(t, dev, last-2, tail)
			wbufs := split(pattern(ss, 610+uint64(i), 0, uint64(sum(c.sizes))), ss, c.sizes)
			rbufs := buffers(ss, c.sizes)
			wantErrAt(t, "Write", dev.Write(c.lba, wbufs...), hw.ErrOutOfRange, "write", c.lba)
			wantErrAt(t, "Read", dev.Read(c.lba, rbufs...), hw.ErrOutOfRange, "read", c.lba)
			expect(t, dev, "first sectors after the failed write", 0, head)
			expect(t, dev, "last sectors after the failed write", last-2, tail)
		})
	}
}
