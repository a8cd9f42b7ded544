package kvtar

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// TestCheckDataCRC: Check reads the data of members whose header carries
// its CRC (chained appends) and reports a value whose bytes changed on the
// device behind the store's back.
func TestCheckDataCRC(t *testing.T) {
	// No end-of-test check: the test changes a value's bytes on the device.
	dev, err := mem.New(512, (1<<20)/512)
	require.NoError(t, err)
	require.NoError(t, Format(dev))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	require.NoError(t, s.Set(kv.MustKey("/first"), []byte("the first append has a journal record")))
	require.NoError(t, s.Set(kv.MustKey("/chained"), pattern(7, 3000)))
	probs, err := s.Check()
	require.NoError(t, err)
	require.Empty(t, probs)

	m := s.ix.lookup(kv.MustKey("/chained")).val
	_, tagged, err := s.dataMatchesTag(m)
	require.NoError(t, err)
	require.True(t, tagged, "/chained was appended with a tag")
	b := blockio.NewBatch(dev)
	b.Write(m.dataOff+1000, []byte{0xff ^ pattern(7, 3000)[1000]})
	require.NoError(t, b.Issue())

	probs, err = s.Check()
	require.NoError(t, err)
	require.Len(t, probs, 1)
	require.True(t, probs[0].Fatal)
	require.Equal(t, "/chained", probs[0].Name)
	require.True(t, strings.Contains(probs[0].What, "CRC"), probs[0].What)
	require.NoError(t, s.Close())
}

// TestGetLarge: a Get of a value large enough to be read in two parts
// (readNew) returns its bytes.
func TestGetLarge(t *testing.T) {
	dev, err := mem.New(4096, (96<<20)/4096)
	require.NoError(t, err)
	require.NoError(t, Format(dev))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	v := pattern(9, headMax+4*headChunk+12345)
	require.NoError(t, s.Set(kv.MustKey("/big"), v))
	got, err := s.Get(kv.MustKey("/big"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(v, got), "Get of a large value")
	require.NoError(t, s.Close())
}
