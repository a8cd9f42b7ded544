package kvtar

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// TestZeroedHeader zeroes the sector of a member's header — the first, one
// in the middle, the last — at 512- and 4096-byte sectors (one sector
// covers eight blocks there). The store knows where its archive ends (the
// journal's checkpoint), so the zero block is damage, not the end: the
// members after it stay readable, Check fails naming the offset, a
// writable open refuses to write (it would write over what follows), and
// Repair turns the damage into a hole, after which the store takes writes
// again and every tar reader reads it. Nothing the damage did not touch
// is lost.
func TestZeroedHeader(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		for _, which := range []string{"first", "middle", "last"} {
			t.Run(fmt.Sprintf("%d/%s", ss, which), func(t *testing.T) {
				s, dev := newMemStore(t, ss, 4<<20) // dev stays whole: the damage is made on a copy
				var keys []string
				for i := range 12 {
					k := fmt.Sprintf("/k%02d", i)
					keys = append(keys, k)
					require.NoError(t, s.Set(kv.MustKey(k), pattern(byte(i), 3000+100*i)))
				}
				victim := map[string]int{"first": 0, "middle": 6, "last": 11}[which]
				m := s.ix.lookup(kv.MustKey(keys[victim])).val
				require.NoError(t, s.Close())

				// The sector of the victim's header is zeroed.
				img := dev.Bytes()
				sec := m.hdr / int64(ss) * int64(ss)
				clear(img[sec : sec+int64(ss)])
				// The members the zeroed sector overlaps: the victim (its
				// header is gone) and, at 4096-byte sectors, maybe the end
				// of the one before it (its data is damaged: reads of it
				// fail with kv.ErrCorrupt, and Repair drops it).
				hit, lost := map[string]bool{}, map[string]bool{keys[victim]: true}
				for _, k := range keys {
					o := s.ix.lookup(kv.MustKey(k)).val
					switch {
					case o.hdr >= sec && o.hdr < sec+int64(ss):
						lost[k] = true
					case o.start < sec+int64(ss) && o.end > sec:
						hit[k] = true
					}
				}
				bad := mustDev(t, ss, img)

				// No end-of-test check of this image: it is damaged on purpose.
				s, err := New(clock.NewFake(time.Unix(2e9, 0)), bad)
				require.NoError(t, err, "open of the damaged image")
				kept := map[string][]byte{}
				for i, k := range keys {
					v, err := s.Get(kv.MustKey(k))
					switch {
					case lost[k]:
						require.ErrorIs(t, err, kv.ErrNotFound, k)
					case hit[k]:
						require.ErrorIs(t, err, kv.ErrCorrupt, k)
					default:
						require.NoError(t, err, "%s, after the damage, is found again", k)
						require.Equal(t, pattern(byte(i), 3000+100*i), v, k)
						kept[k] = v
					}
				}
				probs, err := s.Check()
				require.NoError(t, err)
				require.True(t, hasProblem(probs, m.start, true) || hasProblem(probs, sec, true), "Check names the damage: %v", probs)
				require.ErrorIs(t, s.Set(kv.MustKey("/new"), []byte("x")), kv.ErrReadOnly, "no write over what follows the damage")
				require.NoError(t, s.Close())

				// Repair: the damage becomes free space; the rest stays.
				bad = mustDev(t, ss, bad.Bytes())
				probs, err = Repair(clock.NewFake(time.Unix(3e9, 0)), bad)
				require.NoError(t, err)
				require.NotEmpty(t, probs)
				bad = mustDev(t, ss, bad.Bytes())
				s, err = New(clock.NewFake(time.Unix(3e9, 0)), bad)
				require.NoError(t, err)
				checkWhenDone(t, s, bad) // the repaired image
				require.Equal(t, kept, contents(t, s), "repair keeps every intact member")
				require.NoError(t, s.Set(kv.MustKey("/new"), []byte("x")))
				checkStore(t, s, bad.ReaderAt())
				require.NoError(t, s.Close())
				requireReaderLimits(t, bad.ReaderAt(), bad.Size())
			})
		}
	}
}

func mustDev(t testing.TB, ss int, img []byte) *mem.Device {
	t.Helper()
	d, err := mem.FromBytes(ss, append([]byte(nil), img...))
	require.NoError(t, err)
	return d
}

// TestFormatForgetsTheJournal formats a device that held a store: the
// journal's checkpoint of the old archive, which says it ends further on,
// must not make the new, empty archive look damaged.
func TestFormatForgetsTheJournal(t *testing.T) {
	// With one remove more, the checkpoint lands in the other slot.
	for _, c := range []struct{ ss, removes int }{{512, 0}, {512, 1}, {4096, 0}, {4096, 1}} {
		ss := c.ss
		s, dev := newMemStore(t, ss, 2<<20)
		for i := range 8 {
			require.NoError(t, s.Set(kv.MustKey(fmt.Sprintf("/k%d", i)), pattern(byte(i), 5000)))
		}
		for i := range c.removes {
			require.NoError(t, s.Remove(kv.MustKey(fmt.Sprintf("/k%d", i))))
		}
		require.NoError(t, s.Close())
		dev = mustDev(t, ss, dev.Bytes())
		require.NoError(t, Format(dev))
		s, err := New(clock.NewFake(time.Unix(2e9, 0)), dev)
		require.NoError(t, err)
		checkWhenDone(t, s, dev)
		require.Empty(t, s.Damage())
		require.Empty(t, contents(t, s))
		require.NoError(t, s.Set(kv.MustKey("/new"), []byte("x")))
		require.NoError(t, s.Close())
	}
}
