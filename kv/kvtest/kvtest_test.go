package kvtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// modelHarness runs the suite on the model keeping mtimes at res.
func modelHarness(res time.Duration, largeSize int64) Harness {
	return Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW { return newModel(clk, res) },
		Reopen: func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW {
			m := s.(*model)
			require.NoError(t, m.Close())
			return m.reopen(clk)
		},
		MtimeResolution: res,
		LargeSize:       largeSize,
		Check:           func(t *testing.T, s kv.RW) { s.(*model).check(t) },
	}
}

// TestModel runs the suite on the reference store: at the nanosecond, as
// NewModel makes it, and at the second, as a tar store without PAX times
// keeps mtimes.
func TestModel(t *testing.T) {
	t.Run("nanosecond", func(t *testing.T) { TestRW(t, modelHarness(time.Nanosecond, 0)) })
	t.Run("second", func(t *testing.T) { TestRW(t, modelHarness(time.Second, 1<<20)) })
}

// TestNewModel checks that the exported constructor is the model the suite
// passes on.
func TestNewModel(t *testing.T) {
	clk := clock.NewFake(baseTime)
	s := NewModel(clk)
	require.NoError(t, s.Set(kv.MustKey("/a/b"), []byte("v")))
	kind, err := s.Exists(kv.MustKey("/a"))
	require.NoError(t, err)
	require.Equal(t, kv.Dictionary, kind)
	m, err := s.LastModified(kv.MustKey("/a/b"))
	require.NoError(t, err)
	require.True(t, m.Equal(baseTime), "LastModified = %v, want %v", m, baseTime)
	require.NoError(t, s.Close())
}
