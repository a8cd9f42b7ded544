package kvtar

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// TestGroupStreamAfterHoleLayout: in one group, a small value placed at the
// start of a hole leaves the rest of the hole chunk to be laid out again
// (queued writes), and a streamed value placed at the start of that rest
// is written to the device at once. The queued hole structure (the
// record prefix of the rest's chunk, where the streamed value's data
// begins) must not land on the streamed data afterwards. (Seen under
// concurrent HTTP writers: the first 512 bytes of values of 64 KiB or
// more read back as "<n> comment=" and zeroes.) The small value ends
// where the large one's 4 KiB-aligned data can start right after its
// header.
func TestGroupStreamAfterHoleLayout(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		dev, err := mem.New(ss, (16<<20)/uint64(ss))
		require.NoError(t, err)
		require.NoError(t, Format(dev))
		s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
		require.NoError(t, err)
		checkWhenDone(t, s, dev)
		holesFirst(s)
		require.NoError(t, s.Set(kv.MustKey("/pre"), pattern('p', 1000)))
		require.NoError(t, s.Set(kv.MustKey("/big"), pattern('g', 900<<10)))
		require.NoError(t, s.Set(kv.MustKey("/post"), pattern('q', 1000)))
		require.NoError(t, s.Set(kv.MustKey("/z"), pattern('z', 1000)))
		require.NoError(t, s.Remove(kv.MustKey("/big")))

		small, large := pattern('a', 4000), pattern('b', 100<<10)
		var reqs []*request
		for _, p := range []struct {
			k    string
			plan func(*txn) error
		}{
			{"/a", s.planSet("set", kv.MustKey("/a"), nil, int64(len(small)), small)},
			{"/b", s.planSet("set", kv.MustKey("/b"), bytes.NewReader(large), int64(len(large)), nil)},
		} {
			reqs = append(reqs, &request{op: "set", keys: []kv.Key{kv.MustKey(p.k)}, plan: p.plan, wake: make(chan struct{})})
		}
		require.Empty(t, s.commitGroup(reqs))
		for _, r := range reqs {
			require.NoError(t, r.err)
		}
		got, err := s.Get(kv.MustKey("/b"))
		require.NoError(t, err)
		require.True(t, bytes.Equal(large, got), "ss %d: /b read back wrong", ss)
		checkStore(t, s, deviceReader(s.dev))
		require.NoError(t, s.Close())
	}
}
