package kvtar

import (
	"archive/tar"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// TestHugeValue stores a value beyond the 8 GiB of ustar's size field (a
// PAX size record), patches its end, and removes it from the middle of the
// archive: its hole is a chain of some 18 000 chunks whose structure does
// not fit the journal area, so the commit spills.
func TestHugeValue(t *testing.T) {
	const size = 9<<30 + 12345
	dev, err := mem.New(4096, (16<<30)/4096)
	require.NoError(t, err)
	require.NoError(t, Format(dev))
	clk := clock.NewFake(time.Unix(1.7e9, 0))
	s, err := New(clk, dev)
	require.NoError(t, err)
	huge := kv.MustKey("/huge")
	require.NoError(t, s.Allocate(huge, size, time.Time{}))
	require.NoError(t, s.SetPartial(huge, size-5, []byte("tail!")))
	after := pattern(9, 10000) // too large for the hole before the huge value's aligned data
	require.NoError(t, s.Set(kv.MustKey("/after"), after))

	got, err := s.GetPartial(huge, size-10, 100)
	require.NoError(t, err)
	assert.Equal(t, append(make([]byte, 5), "tail!"...), got)
	got, err = s.GetPartial(huge, 5<<30, 8)
	require.NoError(t, err)
	assert.Equal(t, make([]byte, 8), got)

	// archive/tar sees the PAX size.
	tr := tar.NewReader(dev.ReaderAt())
	sizes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Typeflag != tar.TypeXGlobalHeader {
			sizes[h.Name] = h.Size
		}
	}
	assert.Equal(t, map[string]int64{"huge": size, "after": 10000}, sizes)

	require.NoError(t, s.Close())
	s, err = New(clk, dev.Reopen())
	require.NoError(t, err)
	n, err := s.Size(huge)
	require.NoError(t, err)
	assert.EqualValues(t, size, n)

	free, err := s.Free()
	require.NoError(t, err)
	require.NoError(t, s.Remove(huge))
	free2, err := s.Free()
	require.NoError(t, err)
	assert.Greater(t, free2-free, int64(size), "the value's space is free again")
	probs, err := s.Check()
	require.NoError(t, err)
	for _, p := range probs {
		assert.False(t, p.Fatal, "%s", p)
	}
	// (archive/tar reading the 18 000 hole chunks is left to the tarfmt
	// tests: it reads each chunk's 512 KiB of filler.)
	assert.Equal(t, map[string][]byte{"/after": after}, contents(t, s))

	// The hole is reused by the next large value.
	require.NoError(t, s.Allocate(kv.MustKey("/again"), 1<<30, time.Time{}))
	free3, err := s.Free()
	require.NoError(t, err)
	assert.Less(t, free2-free3, int64(1<<30+64<<10))
	require.NoError(t, s.Close())
}
