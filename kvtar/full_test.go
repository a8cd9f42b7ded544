package kvtar

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// TestFullStore fills an 8 MiB store with values of about 1 KB in four
// dictionaries, interleaved, until it is full; removes one dictionary (a
// thousand separate regions: the journal records a hole entry for each,
// not their 1.5 KiB of structure, so the remove fits the journal of a full
// store); fills the freed space again, at once and after a reopen; and
// removes everything. Before every write it checks that the Largest
// figure of Stat is honest: a value of up to Largest bytes fits, and one
// that does not fit is larger than Largest.
func TestFullStore(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			s, dev := newMemStore(t, ss, 8<<20)
			model := map[string][]byte{}
			n := 0
			// fill sets values under prefix until the store is full and
			// returns how many it set.
			fill := func(prefix func(int) string) int {
				set := 0
				for ; ; n++ {
					k := fmt.Sprintf("%s/k%05d", prefix(n), n)
					v := pattern(byte(n), 900+n%200)
					info, err := s.Stat()
					require.NoError(t, err)
					err = s.Set(kv.MustKey(k), v)
					if errors.Is(err, kv.ErrNoSpace) {
						require.Less(t, info.Largest, int64(len(v)), "Set of %d bytes: no_space, but Largest is %d", len(v), info.Largest)
						return set
					}
					require.NoError(t, err, "Set of %d bytes (Largest %d)", len(v), info.Largest)
					model[k] = v
					set++
				}
			}
			first := fill(func(i int) string { return fmt.Sprintf("/d%d", i%4) })
			t.Logf("full after %d values", first)
			info, err := s.Stat()
			require.NoError(t, err)
			if info.Largest > 0 {
				require.NoError(t, s.Set(kv.MustKey("/largest"), make([]byte, info.Largest)), "a value of Largest (%d) bytes", info.Largest)
				require.NoError(t, s.Remove(kv.MustKey("/largest")))
			}

			// A remove of a thousand separate regions on the full store.
			require.NoError(t, s.Remove(kv.MustKey("/d1")))
			removed := 0
			for k := range model {
				if len(k) > 3 && k[:3] == "/d1" {
					delete(model, k)
					removed++
				}
			}
			require.Equal(t, model, contents(t, s))
			again := fill(func(int) string { return "/again" })
			t.Logf("removed %d values, set %d again", removed, again)
			require.GreaterOrEqual(t, again, removed*95/100, "the freed space is usable at once")

			// The same after a reopen.
			require.NoError(t, s.Remove(kv.MustKey("/d2")))
			for k := range model {
				if len(k) > 3 && k[:3] == "/d2" {
					delete(model, k)
				}
			}
			require.NoError(t, s.Close())
			dev = mustDev(t, ss, dev.Bytes())
			s, err = New(clock.NewFake(time.Unix(2e9, 0)), dev)
			require.NoError(t, err)
			t.Cleanup(func() { checkDevice(t, dev) })
			require.Equal(t, model, contents(t, s))
			later := fill(func(int) string { return "/later" })
			require.GreaterOrEqual(t, later, removed*95/100, "the freed space is usable after a reopen")
			checkStore(t, s, dev.ReaderAt())

			require.NoError(t, s.Remove(kv.Root))
			require.Empty(t, contents(t, s))
			require.NoError(t, s.Close())
		})
	}
}
