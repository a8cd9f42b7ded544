package blockio_test

import (
	"math"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// TestOutOfRange checks that a range outside the device fails ReadAt, and
// Issue of a batch holding it, with the typed error and no I/O.
func TestOutOfRange(t *testing.T) {
	const ss, sectors = 4096, 8
	const size = ss * sectors
	cases := []struct {
		name     string
		off, n   int64
		negative bool   // Err is ErrNegativeOffset
		lba      uint64 // the *hw.Error's sectors when not negative
		count    uint64
	}{
		{name: "past the end", off: size - 10, n: 11, lba: sectors - 1, count: 2},
		{name: "at the end", off: size, n: 1, lba: sectors, count: 1},
		{name: "whole device and one byte", off: 0, n: size + 1, lba: 0, count: sectors + 1},
		{name: "empty past the end", off: size + 1, n: 0, lba: sectors, count: 0},
		{name: "far past the end", off: math.MaxInt64 - 5, n: 10, lba: (math.MaxInt64 - 5) / ss, count: 2},
		{name: "negative", off: -1, n: 10, negative: true},
		{name: "empty at a negative offset", off: -512, n: 0, negative: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(t *testing.T, err error, op string) {
				t.Helper()
				var he *hw.Error
				require.ErrorAs(t, err, &he)
				require.ErrorIs(t, err, hw.ErrOutOfRange)
				require.Equal(t, op, he.Op)
				if c.negative {
					require.ErrorIs(t, err, blockio.ErrNegativeOffset)
					return
				}
				require.Equal(t, c.lba, he.LBA)
				require.Equal(t, c.count, he.Sectors)
			}
			base := newDevice(t, ss, sectors)
			image := base.Bytes()
			dev := crash.New(base)

			b := blockio.NewBatch(dev)
			b.Write(ss, make([]byte, 2*ss))
			b.Write(c.off, make([]byte, c.n))
			b.Write(0, make([]byte, 10))
			check(t, b.Err(), "write")
			check(t, b.Issue(), "write")
			require.Equal(t, crash.Stats{}, dev.Stats(), "I/O before the error")
			requireImage(t, image, dev.Crash(crash.KeepAll, 0).Bytes())

			// The batch was emptied and works again.
			require.NoError(t, b.Err())
			b.Write(0, make([]byte, 10))
			require.NoError(t, b.Issue())

			dev = crash.New(newDevice(t, ss, sectors))
			check(t, blockio.ReadAt(dev, make([]byte, c.n), c.off), "read")
			require.Equal(t, crash.Stats{}, dev.Stats(), "I/O before the error")
		})
	}
}

// TestReadOnly checks that a batch for a read-only device fails whole, with
// no I/O, and that ReadAt works.
func TestReadOnly(t *testing.T) {
	const ss = 512
	dev := &spy{Block: newDevice(t, ss, 8).ReadOnlyView()}
	b := blockio.NewBatch(dev)
	b.Write(ss+10, make([]byte, 10))
	b.Write(3*ss, make([]byte, ss))
	err := b.Issue()
	var he *hw.Error
	require.ErrorAs(t, err, &he)
	require.ErrorIs(t, err, hw.ErrReadOnly)
	require.Equal(t, &hw.Error{Op: "write", Device: "mem", LBA: 1, Sectors: 1, Kind: hw.ErrReadOnly}, he)
	require.Empty(t, dev.requests())
	require.NoError(t, b.Issue(), "empty batch on a read-only device")
	require.NoError(t, blockio.ReadAt(dev, make([]byte, 100), 10))
}

// TestDeviceErrors checks that device failures come back as the device's
// *hw.Error, that a sector whose RMW read failed is not written, that
// every sector is old or new after a failed Issue, and that the batch is
// empty and reusable afterwards.
func TestDeviceErrors(t *testing.T) {
	const ss = 4096
	cases := []struct {
		name  string
		fault crash.Fault
		lba   uint64 // of the failure
	}{
		{"RMW read of the head", crash.Fault{Op: crash.OpRead, LBA: 0}, 0},
		{"RMW read of the tail", crash.Fault{Op: crash.OpRead, LBA: 600}, 600},
		{"first write", crash.Fault{Op: crash.OpWrite, LBA: 0}, 0},
		{"a middle write", crash.Fault{Op: crash.OpWrite, LBA: 300}, 300},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := newDevice(t, ss, 1024)
			old := base.Bytes()
			model := append([]byte(nil), old...)
			dev := crash.New(base)
			dev.InjectError(c.fault)
			b := blockio.NewBatch(dev)
			// 600 sectors and a bit: three requests, head and tail partial.
			p := random(7, 600*ss)
			b.Write(100, p)
			copy(model[100:], p)
			err := b.Issue()
			var he *hw.Error
			require.ErrorAs(t, err, &he)
			require.ErrorIs(t, err, hw.ErrIO)
			require.ErrorIs(t, err, syscall.EIO)
			require.Equal(t, c.lba, he.LBA)
			require.Zero(t, b.SectorCount(), "batch emptied by a failed Issue")

			img := dev.Crash(crash.KeepAll, 0).Bytes()
			requireOldOrNew(t, ss, old, model, img)
			if c.fault.Op == crash.OpRead {
				at := c.fault.LBA * ss
				require.Equal(t, old[at:at+ss], img[at:at+ss], "sector whose read failed was written")
			}

			dev.ClearFaults()
			b.Write(5, []byte("again"))
			require.NoError(t, b.Issue())
		})
	}
}
