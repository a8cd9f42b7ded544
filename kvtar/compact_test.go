package kvtar

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// TestCompactRemoveLarge removes values that no hole chunk can hold from
// the middle of the archive: one of 900 KiB, and a dictionary of 300 small
// ones. Compaction moves members from the end into the region until what
// is left is one chunk; the archive ends where the last member moved was,
// and the free space the removal reported is usable at once.
func TestCompactRemoveLarge(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			s, _ := newMemStore(t, ss, 32<<20)
			k := kv.MustKey
			require.NoError(t, s.Set(k("/first"), pattern(1, 1000)))
			require.NoError(t, s.Set(k("/big"), pattern(2, 900<<10)))
			for i := range 300 {
				require.NoError(t, s.Set(k(fmt.Sprintf("/many/%03d", i)), pattern(byte(i), 1000)))
			}
			for i := range 40 {
				require.NoError(t, s.Set(k(fmt.Sprintf("/tail/%02d", i)), pattern(byte(i), 20000+i)))
			}
			for _, victim := range []string{"/big", "/many"} {
				free, err := s.Free()
				require.NoError(t, err)
				eoa := s.sp.eoa
				require.NoError(t, s.Remove(k(victim)))
				require.Empty(t, s.sp.bad(), "after removing %s: regions readers refuse", victim)
				require.Less(t, s.sp.eoa, eoa, "compaction gives space back to the tail")
				after, err := s.Free()
				require.NoError(t, err)
				require.Greater(t, after, free)
				probs, err := s.Check()
				require.NoError(t, err)
				for _, p := range probs {
					require.False(t, p.Fatal, "%s", p)
				}
			}
			for i := range 40 {
				v, err := s.Get(k(fmt.Sprintf("/tail/%02d", i)))
				require.NoError(t, err)
				require.Equal(t, pattern(byte(i), 20000+i), v)
			}
			require.NoError(t, s.Close())
		})
	}
}

// TestCompactPinned: a region that a reader pins is compacted once the
// reader is closed (and at the latest by Check or Close).
func TestCompactPinned(t *testing.T) {
	s, _ := newMemStore(t, 512, 16<<20)
	k := kv.MustKey
	require.NoError(t, s.Set(k("/big"), pattern(2, 700<<10)))
	require.NoError(t, s.Set(k("/after"), pattern(3, 5000)))
	r, err := s.Open(k("/big"))
	require.NoError(t, err)
	require.NoError(t, s.Remove(k("/big")))
	s.mu.RLock()
	require.NotEmpty(t, s.sp.bad(), "the pinned region waits")
	s.mu.RUnlock()
	p := make([]byte, 700<<10)
	_, err = r.ReadAt(p, 0)
	require.NoError(t, err)
	require.Equal(t, pattern(2, 700<<10), p, "the reader's snapshot")
	require.NoError(t, r.Close())
	probs, err := s.Check()
	require.NoError(t, err)
	for _, p := range probs {
		require.False(t, p.Fatal, "%s", p)
	}
	s.mu.RLock()
	require.Empty(t, s.sp.bad())
	s.mu.RUnlock()
	require.NoError(t, s.Close())
}

// TestCrashCompaction cuts the power at every write of removals that
// compaction follows (a large value, then a dictionary of small ones, from
// the middle), kept, dropped and torn: each image opens with the removal
// applied or not, and a clean Check (open finishes a compaction that the
// crash cut short).
func TestCrashCompaction(t *testing.T) {
	k := kv.MustKey
	ops := []crashOp{
		{"set first", func(s kv.RW) error { return s.Set(k("/first"), pattern(1, 1000)) }},
		{"set big", func(s kv.RW) error { return s.Set(k("/big"), pattern(2, 600<<10)) }},
	}
	for i := range 12 {
		key := k(fmt.Sprintf("/many/%02d", i))
		ops = append(ops, crashOp{"set " + key.String(), func(s kv.RW) error { return s.Set(key, pattern(byte(i), 50000)) }})
	}
	for i := range 6 {
		key := k(fmt.Sprintf("/tail/%d", i))
		ops = append(ops, crashOp{"set " + key.String(), func(s kv.RW) error { return s.Set(key, pattern(byte(i), 90000+i)) }})
	}
	ops = append(ops,
		crashOp{"remove big", func(s kv.RW) error { return s.Remove(k("/big")) }},
		crashOp{"remove many", func(s kv.RW) error { return s.Remove(k("/many")) }},
	)
	n := cutEachWrite(t, ops, 4<<20, func(w int) []crashImage {
		return []crashImage{{crash.KeepAll, 0}, {crash.DropAll, 0}, {crash.Tear, int64(w)}}
	})
	t.Logf("crash images checked: %d", n)
}

// TestOpenRepairsChains: images written before the one-chunk rule hold
// chains of g headers and empty g headers between members; a writable
// open lays them out again or compacts them, keeping every value.
func TestOpenRepairsChains(t *testing.T) {
	member := func(name string, data []byte) []byte {
		hdr, err := tarfmt.EncodeHeader(tarfmt.Header{Name: name, Typeflag: tarfmt.TypeReg, Size: int64(len(data)), Mode: 0o644, ModTime: time.Unix(1e9, 0)})
		require.NoError(t, err)
		return append(append(hdr, data...), tarfmt.Padding(int64(len(data)))...)
	}
	hole := func(blocks int64) []byte {
		b := make([]byte, blocks*blockSize)
		ws, err := tarfmt.HoleWrites(0, blocks)
		require.NoError(t, err)
		for _, w := range ws {
			copy(b[w.Offset:], w.Data)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		gap  int64 // blocks of the old free region
	}{{"chain of three", 2*1025 + 10}, {"two small", 1025 + 3}, {"empty g", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			var img []byte
			img = append(img, member("a", pattern(1, 1000))...)
			img = append(img, hole(tc.gap)...)
			img = append(img, member("b", pattern(2, 3000))...)
			for i := range 8 {
				img = append(img, member(fmt.Sprintf("tail/%d", i), pattern(byte(i), 200000))...)
			}
			img = append(img, make([]byte, 8<<20)...)
			dev, err := mem.FromBytes(512, img)
			require.NoError(t, err)
			// The old image has the region Check reports: it is checked at
			// the end as the writable open below left it.
			ro, err := New(clock.NewFake(time.Unix(2e9, 0)), dev.ReadOnlyView())
			require.NoError(t, err)
			want := contents(t, ro)
			probs, err := ro.Check()
			require.NoError(t, err)
			require.True(t, slices.ContainsFunc(probs, func(p Problem) bool { return p.Fatal && p.Offset == 1536 }),
				"Check on the old image reports the region: %v", probs)
			require.NoError(t, ro.Close())

			s, err := New(clock.NewFake(time.Unix(2e9, 0)), dev)
			require.NoError(t, err)
			checkWhenDone(t, s, dev)
			require.Empty(t, s.sp.bad())
			require.Equal(t, want, contents(t, s))
			checkStore(t, s, dev.ReaderAt())
			require.NoError(t, s.Close())
		})
	}
}
