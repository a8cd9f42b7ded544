// Package benchcmp compares, inside a Go benchmark, some code with the raw
// device doing the same work, in the same run. The machines are shared and
// noisy: the two sides run in small blocks back to back, the side going
// first alternating, and the figure that counts is the median over the
// blocks of the ratio of their rates. The two halves of a block run
// milliseconds apart, so drift in the machine's speed cancels, and the
// median ignores the blocks a noisy neighbour disturbed.
package benchcmp

import (
	"slices"
	"testing"
	"time"
)

// A Side does requests [lo, hi) of one side of a comparison and returns the
// time they took, leaving out its own housekeeping. Request numbers run on
// across rounds: round r's requests are r*ops to (r+1)*ops.
type Side func(lo, hi int) (time.Duration, error)

// Each makes a Side that times f over each request of the range.
func Each(f func(i int) error) Side {
	return func(lo, hi int) (time.Duration, error) {
		t0 := time.Now()
		for i := lo; i < hi; i++ {
			if err := f(i); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	}
}

// Compare runs ops requests per round (b.N rounds) on both sides, in blocks
// of block requests. It reports both overall rates, as "raw-UNIT" and
// "NAME-UNIT" (unit "IOPS", or "MB/s" with opBytes per request), and, as
// "ratio", the median over the blocks of other's rate divided by raw's.
func Compare(b *testing.B, unit, name string, opBytes int64, ops, block int, raw, other Side) {
	b.Helper()
	var tRaw, tOther time.Duration
	var ratios []float64
	run := func(f Side, lo, hi int) time.Duration {
		d, err := f(lo, hi)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	b.ResetTimer()
	for round := range b.N {
		for lo := 0; lo < ops; lo += block {
			hi := min(lo+block, ops)
			glo, ghi := round*ops+lo, round*ops+hi
			var r, o time.Duration
			if (round+lo/block)%2 == 0 {
				r = run(raw, glo, ghi)
				o = run(other, glo, ghi)
			} else {
				o = run(other, glo, ghi)
				r = run(raw, glo, ghi)
			}
			tRaw += r
			tOther += o
			ratios = append(ratios, r.Seconds()/o.Seconds())
		}
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 {
		n := float64(b.N) * float64(ops)
		if unit == "MB/s" {
			n *= float64(opBytes) / 1e6
		}
		return n / d.Seconds()
	}
	slices.Sort(ratios)
	b.ReportMetric(rate(tRaw), "raw-"+unit)
	b.ReportMetric(rate(tOther), name+"-"+unit)
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}
