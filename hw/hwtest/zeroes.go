package hwtest

import (
	"math"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// zeroRange is a range operation under test: a device's WriteZeroes or
// Discard, or the hw.WriteZeroes helper.
type zeroRange func(lba, sectors uint64) error

// rangeCases are the valid ranges the zeroing tests use; every one leaves a
// neighbour on at least one side.
func rangeCases(last uint64) []struct {
	name   string
	lba, n uint64
} {
	return []struct {
		name   string
		lba, n uint64
	}{
		{"first sector", 0, 1},
		{"37 sectors", 5, 37},
		{"last sector", last - 1, 1},
		{"last 40 sectors", last - 40, 40},
		{"empty range", 9, 0},
	}
}

// checkZeroes runs op over rangeCases and, when zeroes is true, checks that
// the range reads back as zeroes; in every case the neighbours must keep
// their data and the range must be readable and writable again afterwards.
func checkZeroes(t *testing.T, dev hw.Block, info hw.Info, op zeroRange, zeroes bool, tag uint64) {
	ss, last := info.SectorSize, info.Sectors
	for i, c := range rangeCases(last) {
		t.Run(c.name, func(t *testing.T) {
			lo, hi := c.lba, c.lba+c.n
			if lo > 0 {
				lo--
			}
			if hi < last {
				hi++
			}
			want := pattern(ss, tag+uint64(i), lo, hi-lo)
			mustWrite(t, dev, lo, want)
			if err := op(c.lba, c.n); err != nil {
				t.Fatalf("(%d, %d): %v", c.lba, c.n, err)
			}
			mid := int(c.lba-lo) * ss
			got := mustRead(t, dev, lo, len(want))
			if zeroes {
				clear(want[mid : mid+int(c.n)*ss])
			} else {
				// Contents of the range are unspecified: take what is there.
				copy(want[mid:mid+int(c.n)*ss], got[mid:])
			}
			if d := diffSectors(got, want, ss, lo); d != "" {
				t.Errorf("after (%d, %d): %s", c.lba, c.n, d)
			}
			if c.n > 0 {
				again := pattern(ss, tag+100+uint64(i), c.lba, c.n)
				mustWrite(t, dev, c.lba, again)
				expect(t, dev, "range written again", c.lba, again)
			}
		})
	}
}

// checkRangeErrors sends ranges past the end of the device: each must fail
// with ErrOutOfRange under opName and change nothing.
func checkRangeErrors(t *testing.T, dev hw.Block, info hw.Info, op zeroRange, opName string) {
	ss, last := info.SectorSize, info.Sectors
	tail := pattern(ss, 700, last-2, 2)
	mustWrite(t, dev, last-2, tail)
	cases := []struct {
		name   string
		lba, n uint64
	}{
		{"at the end", last, 1},
		{"across the end", last - 1, 2},
		{"huge length", 1, math.MaxUint64},
		{"largest lba", math.MaxUint64, 1},
		{"end wraps past 2^64", math.MaxUint64 - 1, 3},
	}
	for _, c := range cases {
		wantErrAt(t, c.name, op(c.lba, c.n), hw.ErrOutOfRange, opName, c.lba)
	}
	expect(t, dev, "last sectors after failed "+opName, last-2, tail)
}

// testWriteZeroes checks the device's Zeroer when it has one, and the
// hw.WriteZeroes helper both on the device and through its plain-write
// fallback.
func testWriteZeroes(t *testing.T, dev hw.Block, info hw.Info) {
	if z, ok := dev.(hw.Zeroer); ok {
		t.Run("Zeroer", func(t *testing.T) {
			if supported(t, dev, info, z.WriteZeroes, "write-zeroes") {
				checkZeroes(t, dev, info, z.WriteZeroes, true, 800)
			}
			checkRangeErrors(t, dev, info, z.WriteZeroes, "write-zeroes")
		})
	} else {
		t.Logf("%s does not implement hw.Zeroer: testing the fallback only", info.Driver)
	}
	t.Run("helper", func(t *testing.T) {
		op := func(lba, n uint64) error { return hw.WriteZeroes(dev, lba, n) }
		checkZeroes(t, dev, info, op, true, 820)
		checkRangeErrors(t, dev, info, op, "write-zeroes")
	})
	t.Run("fallback", func(t *testing.T) {
		p := plain{dev}
		op := func(lba, n uint64) error { return hw.WriteZeroes(p, lba, n) }
		checkZeroes(t, dev, info, op, true, 840)
		checkRangeErrors(t, dev, info, op, "write-zeroes")
		// More than the helper's 1 MiB chunk when the device allows it.
		ss := info.SectorSize
		n := min(info.Sectors-2, uint64((1<<20)/ss+5))
		mustWrite(t, dev, 0, pattern(ss, 860, 0, n+2))
		if err := op(1, n); err != nil {
			t.Fatalf("hw.WriteZeroes(1, %d) through writes: %v", n, err)
		}
		want := pattern(ss, 860, 0, n+2)
		clear(want[ss : (int(n)+1)*ss])
		expect(t, dev, "large fallback", 0, want)
	})
}

// testDiscard checks the device's Discarder when it has one. Discarded
// contents are unspecified, so only the neighbours and the range checks are
// verified, and that the range can be written again.
func testDiscard(t *testing.T, dev hw.Block, info hw.Info) {
	d, ok := dev.(hw.Discarder)
	if !ok {
		t.Logf("%s does not implement hw.Discarder: nothing to test", info.Driver)
		return
	}
	if supported(t, dev, info, d.Discard, "discard") {
		checkZeroes(t, dev, info, d.Discard, false, 900)
	}
	checkRangeErrors(t, dev, info, d.Discard, "discard")
}

// supported reports whether op works on the device. A driver may implement
// hw.Zeroer or hw.Discarder for a device that lacks the operation (a
// virtio-blk device without the feature, a wrapper of a device without
// it): then a valid request fails with hw.ErrUnsupported, under opName and
// at its LBA, and changes nothing.
func supported(t *testing.T, dev hw.Block, info hw.Info, op zeroRange, opName string) bool {
	t.Helper()
	want := pattern(info.SectorSize, 880, 0, 3)
	mustWrite(t, dev, 0, want)
	err := op(1, 1)
	if err == nil {
		return true
	}
	wantErrAt(t, opName+" of a device without it", err, hw.ErrUnsupported, opName, 1)
	expect(t, dev, "sectors after an unsupported "+opName, 0, want)
	t.Logf("%s: %s is not supported by the device", info.Driver, opName)
	return false
}
