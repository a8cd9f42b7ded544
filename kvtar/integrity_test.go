package kvtar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// TestEveryWriteSealsItsData: every way the store writes a value leaves
// the CRC of its data in the member's header, and a new open finds it.
func TestEveryWriteSealsItsData(t *testing.T) {
	s, dev := newMemStore(t, 512, 16<<20)
	k := kv.MustKey
	require.NoError(t, s.Set(k("/set"), pattern(1, 3000)))
	require.NoError(t, s.Set(k("/empty"), nil))
	require.NoError(t, s.Set(k("/large"), pattern(2, 3<<20)))
	require.NoError(t, s.SetFrom(k("/stream"), io.LimitReader(zeroReader{}, 200000), 200000))
	require.NoError(t, s.Allocate(k("/alloc"), 70000, time.Time{}))
	require.NoError(t, s.SetPartial(k("/new-partial"), 0, pattern(3, 100)))
	require.NoError(t, s.SetPartial(k("/set"), 10, pattern(4, 20)))              // in place
	require.NoError(t, s.SetPartial(k("/set"), 3000, pattern(5, 2000)))          // grows: a copy
	require.NoError(t, s.Set(k("/"+strings.Repeat("long", 40)), pattern(7, 10))) // a PAX header
	require.NoError(t, s.Rename(k("/stream"), k("/renamed")))
	require.NoError(t, s.Close())
	s2, err := New(clock.NewFake(time.Unix(2e9, 0)), dev.Reopen())
	require.NoError(t, err)
	each(&s2.ix.root, kv.Root, func(n *node, key kv.Key) {
		if n.isValue() {
			require.True(t, n.val.hasCRC, "%s has no data CRC in its header", key)
		}
	})
	require.NoError(t, s2.Close())
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestDamagedDataIsCorrupt: a value whose bytes changed on the device is
// not returned: whole reads fail with kv.ErrCorrupt naming the key and the
// offset; Check reports it; compaction does not move it (which would give
// the damage a new, matching CRC).
func TestDamagedDataIsCorrupt(t *testing.T) {
	s, dev := newMemStore(t, 512, 16<<20)
	k := kv.MustKey
	require.NoError(t, s.Set(k("/a"), pattern(1, 5000)))
	require.NoError(t, s.Set(k("/victim"), pattern(2, 100000)))
	require.NoError(t, s.Set(k("/z"), pattern(3, 5000)))
	m := s.ix.lookup(k("/victim")).val
	require.NoError(t, s.Close())
	img := dev.Bytes()
	img[m.dataOff+77777] ^= 0x40 // the medium flips a bit
	// No end-of-test check of dev2: it is damaged on purpose (dev, whole, is checked).
	dev2, err := mem.FromBytes(512, img)
	require.NoError(t, err)
	s, err = New(clock.NewFake(time.Unix(2e9, 0)), dev2)
	require.NoError(t, err)

	wantCorruptAs := func(err error, key string) {
		t.Helper()
		require.ErrorIs(t, err, kv.ErrCorrupt)
		var ke *kv.Error
		require.True(t, errors.As(err, &ke))
		require.Equal(t, key, ke.Key.String())
		require.Contains(t, err.Error(), fmt.Sprint(m.dataOff))
	}
	wantCorrupt := func(err error) { t.Helper(); wantCorruptAs(err, "/victim") }
	_, err = s.Get(k("/victim"))
	wantCorrupt(err)
	_, err = s.Digest(k("/"))
	wantCorrupt(err)
	r, err := s.Open(k("/victim"))
	require.NoError(t, err)
	_, err = io.ReadAll(kv.NewStreamReader(r))
	wantCorrupt(err)
	require.NoError(t, r.Close())
	p, err := s.GetPartial(k("/victim"), 0, 10)
	require.NoError(t, err, "a partial read is not verified")
	require.Equal(t, pattern(2, 10), p)
	v, err := s.Get(k("/a"))
	require.NoError(t, err)
	require.Equal(t, pattern(1, 5000), v)

	probs, err := s.Check()
	require.NoError(t, err)
	require.True(t, hasProblem(probs, m.start, true), "Check: %v", probs)

	// A rename to a name whose header does not fit in place copies the
	// value: the copy refuses to give the damage a new CRC.
	long := "/" + strings.Repeat("n", 150)
	wantCorruptAs(s.Rename(k("/victim"), k(long)), long)
	require.NoError(t, s.Close())
}

// TestLargeGetVerifies damages a large value (read in staged chunks, then
// in pieces whose CRC is computed beside the next read: readNew) at its
// start, in its middle and in its last piece: Get fails with
// kv.ErrCorrupt each time, and returns the value when it is intact.
func TestLargeGetVerifies(t *testing.T) {
	const size = 40<<20 + 123
	v := pattern(7, size)
	for _, at := range []int64{10, 4<<20 + 5, 20 << 20, size - 1} {
		s, dev := newMemStore(t, 4096, 64<<20)
		k := kv.MustKey("/large")
		require.NoError(t, s.Set(k, v))
		got, err := s.Get(k)
		require.NoError(t, err)
		require.True(t, bytes.Equal(v, got))
		m := s.ix.lookup(k).val
		require.NoError(t, s.Close())
		img := dev.Bytes()
		img[m.dataOff+at] ^= 0x40
		bad := mustDev(t, 4096, img) // damaged on purpose: no end-of-test check (dev, whole, is checked)
		s, err = New(clock.NewFake(time.Unix(2e9, 0)), bad)
		require.NoError(t, err)
		_, err = s.Get(k)
		require.ErrorIs(t, err, kv.ErrCorrupt, "damage at %d", at)
		require.NoError(t, s.Close())
	}
}
