package hw_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
)

func TestCheckRequest(t *testing.T) {
	info := hw.Info{SectorSize: 4096, Sectors: 10, Model: "m"}
	ro := info
	ro.ReadOnly = true
	b := func(n int) []byte { return make([]byte, n) }
	for _, tc := range []struct {
		name string
		info hw.Info
		op   string
		lba  uint64
		bufs [][]byte
		n    uint64
		kind error
	}{
		{"one sector", info, "read", 0, [][]byte{b(4096)}, 1, nil},
		{"vectored to the end", info, "write", 7, [][]byte{b(4096), b(8192)}, 3, nil},
		{"no buffers", info, "read", 0, nil, 0, hw.ErrMisaligned},
		{"empty buffer", info, "read", 0, [][]byte{b(0)}, 0, hw.ErrMisaligned},
		{"partial sector", info, "read", 0, [][]byte{b(512)}, 0, hw.ErrMisaligned},
		{"past the end", info, "read", 9, [][]byte{b(8192)}, 0, hw.ErrOutOfRange},
		{"at the end", info, "read", 10, [][]byte{b(4096)}, 0, hw.ErrOutOfRange},
		{"lba overflow", info, "read", ^uint64(0), [][]byte{b(4096)}, 0, hw.ErrOutOfRange},
		{"write read-only", ro, "write", 0, [][]byte{b(4096)}, 0, hw.ErrReadOnly},
		{"read read-only", ro, "read", 0, [][]byte{b(4096)}, 1, nil},
	} {
		n, err := hw.CheckRequest(tc.info, tc.op, tc.lba, tc.bufs)
		if tc.kind == nil {
			require.NoError(t, err, tc.name)
			assert.Equal(t, tc.n, n, tc.name)
			continue
		}
		assert.ErrorIs(t, err, tc.kind, tc.name)
		var e *hw.Error
		require.True(t, errors.As(err, &e), tc.name)
		assert.Equal(t, tc.op, e.Op, tc.name)
		assert.Equal(t, tc.lba, e.LBA, tc.name)
	}
	assert.ErrorIs(t, hw.CheckRange(info, "discard", 5, 6), hw.ErrOutOfRange)
	assert.ErrorIs(t, hw.CheckRange(ro, "discard", 0, 1), hw.ErrReadOnly)
	assert.NoError(t, hw.CheckRange(info, "discard", 10, 0))
}

func TestErrorMessageAndUnwrap(t *testing.T) {
	err := &hw.Error{Op: "write", Device: "/dev/x", LBA: 8, Sectors: 2, Kind: hw.ErrIO, Err: syscall.EIO}
	assert.Equal(t, "hw: write /dev/x lba 8+2: i/o error: input/output error", err.Error())
	assert.ErrorIs(t, err, hw.ErrIO)
	assert.ErrorIs(t, err, syscall.EIO)
	assert.NotErrorIs(t, err, hw.ErrClosed)
	assert.Equal(t, "hw: flush: device is closed", (&hw.Error{Op: "flush", Kind: hw.ErrClosed}).Error())
}

// plain hides a device's optional interfaces, to exercise the fallbacks.
type plain struct{ hw.Block }

func TestWriteZeroesFallback(t *testing.T) {
	for _, dev := range []hw.Block{mustMem(t), plain{mustMem(t)}} {
		ss := dev.Info().SectorSize
		ones := make([]byte, 8*ss)
		for i := range ones {
			ones[i] = 1
		}
		require.NoError(t, dev.Write(0, ones))
		require.NoError(t, hw.WriteZeroes(dev, 2, 3))
		got := make([]byte, 8*ss)
		require.NoError(t, dev.Read(0, got))
		for i, c := range got {
			want := byte(1)
			if i >= 2*ss && i < 5*ss {
				want = 0
			}
			if c != want {
				t.Fatalf("%T: byte %d is %d, want %d", dev, i, c, want)
			}
		}
		assert.ErrorIs(t, hw.WriteZeroes(dev, 7, 2), hw.ErrOutOfRange)
		assert.Len(t, hw.AllocBuffer(dev, 2*ss), 2*ss)
	}
}

func mustMem(t *testing.T) *mem.Device {
	d, err := mem.New(4096, 8)
	require.NoError(t, err)
	return d
}
