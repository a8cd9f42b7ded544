package kvtar

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// newCountingStore opens a store on a new formatted in-memory device of
// size bytes behind a crash.Device that never fails, which counts the
// bytes written. The end of the test checks the image (checkWhenDone).
func newCountingStore(t *testing.T, ss int, size uint64) (*Store, *crash.Device) {
	t.Helper()
	base, err := mem.New(ss, size/uint64(ss))
	require.NoError(t, err)
	require.NoError(t, Format(base))
	dev := crash.New(base)
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	return s, dev
}

// checkImage checks the store's image as it is now: Check, archive/tar,
// and GNU tar, bsdtar and Python, GNU tar's extraction included.
func checkImage(t *testing.T, s *Store, dev *crash.Device) {
	t.Helper()
	img := dev.Crash(crash.KeepAll, 0)
	want, members := checkStoreInvariants(t, s, img)
	checkReaders(t, imageFile(t, img, archiveEnd(s)), members, want, baseline{})
}

// deadState returns the number of superseded members and the end of
// archive.
func deadState(s *Store) (int, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.dead), s.sp.eoa
}

func requireDead(t *testing.T, s *Store, n int) {
	t.Helper()
	got, _ := deadState(s)
	require.Equal(t, n, got, "superseded members")
}

// overwriteModes are the two ways a large value is written: held in memory
// (Set: streamed inside the write lock) and from a reader (SetFrom:
// streamed into a reservation outside it).
var overwriteModes = map[string]func(s *Store, k kv.Key, v []byte) error{
	"set":     func(s *Store, k kv.Key, v []byte) error { return s.Set(k, v) },
	"setfrom": func(s *Store, k kv.Key, v []byte) error { return s.SetFrom(k, bytes.NewReader(v), int64(len(v))) },
}

// TestOverwriteWritesOnce overwrites a large value again and again: each
// overwrite writes the value's bytes about once (the replaced member stays
// superseded, and the next overwrite goes into its space: no compaction
// copies the value), the archive does not grow, and free space counts the
// superseded member. After each overwrite the value reads back, and every
// tar reader extracts exactly the store's contents. At 512- and 4096-byte
// sectors, for Set and SetFrom.
func TestOverwriteWritesOnce(t *testing.T) {
	const size = 3<<20 + 123
	for _, ss := range []int{512, 4096} {
		for name, write := range overwriteModes {
			t.Run(fmt.Sprint(ss, name), func(t *testing.T) {
				s, dev := newCountingStore(t, ss, 32<<20)
				k := kv.MustKey("/d/big")
				require.NoError(t, s.Set(kv.MustKey("/small"), pattern(9, 1000)))
				require.NoError(t, write(s, k, pattern(0, size)))
				free0, err := s.Free()
				require.NoError(t, err)
				for i := 1; i <= 6; i++ {
					v := pattern(byte(i), size-i*1000)
					before := dev.BytesWritten()
					require.NoError(t, write(s, k, v))
					written := dev.BytesWritten() - before
					require.Less(t, written, int64(size)*11/10, "overwrite %d wrote %d bytes for a value of %d", i, written, len(v))
					got, err := s.Get(k)
					require.NoError(t, err)
					require.True(t, bytes.Equal(v, got), "overwrite %d reads back", i)
					dead, eoa := deadState(s)
					require.Equal(t, i%2, dead, "superseded, then its space reused: the two places alternate")
					require.Less(t, eoa, int64(2*size+2<<20), "the archive does not grow")
					free, err := s.Free()
					require.NoError(t, err)
					require.InDelta(t, free0, free, float64(8<<10+i*1000), "free space counts the superseded member")
				}
				checkImage(t, s, dev)
			})
		}
	}
}

// TestSupersededReopen: a superseded member survives Close and open as it
// is — Check finds nothing to repair, no compaction moves anything — and
// the next overwrite after the open goes into its space. Removing the key
// then removes both members.
func TestSupersededReopen(t *testing.T) {
	const size = 2 << 20
	s, dev := newCountingStore(t, 512, 32<<20)
	k := kv.MustKey("/big")
	require.NoError(t, s.Set(k, pattern(1, size)))
	require.NoError(t, s.Set(kv.MustKey("/after"), pattern(2, 5000)))
	require.NoError(t, s.Set(k, pattern(3, size)))
	require.NoError(t, s.Close())

	img := dev.Crash(crash.KeepAll, 0)
	dev = crash.New(img)
	s, err := New(clock.NewFake(time.Unix(1e9+100, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	require.Equal(t, 0, dev.Writes(), "the open writes nothing")
	probs, err := s.Check()
	require.NoError(t, err)
	require.Empty(t, probs)
	requireDead(t, s, 1)

	before := dev.BytesWritten()
	require.NoError(t, s.SetFrom(k, bytes.NewReader(pattern(4, size)), size))
	require.Less(t, dev.BytesWritten()-before, int64(size)*11/10)
	checkImage(t, s, dev)

	require.NoError(t, s.Remove(k))
	requireDead(t, s, 0)
	checkImage(t, s, dev)
}

// TestStreamIntoSupersededWaits streams a value into the space of its
// key's superseded member, its source stalling halfway: writes of other
// keys go on, while a remove of the key's dictionary waits for the stream
// (it would release the space the stream writes into), and completes after
// it. The value, written before the remove, is gone at the end.
func TestStreamIntoSupersededWaits(t *testing.T) {
	const size = 2 << 20
	s, dev := newCountingStore(t, 512, 32<<20)
	k := kv.MustKey("/d/big")
	require.NoError(t, s.Set(k, pattern(1, size)))
	require.NoError(t, s.Set(k, pattern(2, size)))
	requireDead(t, s, 1)

	src := newGatedReader(pattern(3, size))
	streamed := make(chan error, 1)
	go func() { streamed <- s.SetFrom(k, src, size) }()
	<-src.halfway
	s.mu.RLock()
	intoDead := s.sp.resv != nil && s.sp.resv.dead != nil
	s.mu.RUnlock()
	require.True(t, intoDead, "the stream goes into the superseded member's space")

	removed := make(chan error, 1)
	go func() { removed <- s.Remove(kv.MustKey("/d")) }()
	other := make(chan struct{})
	go func() {
		defer close(other)
		require.NoError(t, s.Set(kv.MustKey("/other"), pattern(4, 300<<10)))
		require.NoError(t, s.Remove(kv.MustKey("/other")))
	}()
	within(t, other, "writes of other keys during the stream")
	select {
	case err := <-removed:
		t.Fatalf("the remove did not wait for the stream: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	close(src.open)
	require.NoError(t, <-streamed)
	require.NoError(t, <-removed)
	_, err := s.Get(k)
	require.ErrorIs(t, err, kv.ErrNotFound)
	requireDead(t, s, 0)
	checkImage(t, s, dev)
}

// TestFullStoreReleasesSuperseded: a write that needs the space a
// superseded member holds gets it (free space counts it, and making room
// releases it first).
func TestFullStoreReleasesSuperseded(t *testing.T) {
	s, dev := newCountingStore(t, 512, 16<<20)
	k := kv.MustKey("/big")
	require.NoError(t, s.Set(k, pattern(1, 5<<20)))
	require.NoError(t, s.Set(k, pattern(2, 5<<20)))
	requireDead(t, s, 1)
	free, err := s.Free()
	require.NoError(t, err)
	require.Greater(t, free, int64(9<<20))
	require.NoError(t, s.Set(kv.MustKey("/other"), pattern(3, 8<<20)))
	requireDead(t, s, 0)
	checkImage(t, s, dev)
}

// TestCrashSuperseded cuts the power at every write of overwrites that
// supersede a large value and go into a superseded member's space (of the
// same size, and smaller: the rest becomes a hole), from a reader and from
// memory, and of the remove that releases both: each crash image (kept,
// dropped, torn 3 ways) opens with the value whole, old or new.
func TestCrashSuperseded(t *testing.T) {
	const n = 2*streamChunk + 5000
	k := kv.MustKey("/s")
	stream := func(tag byte, size int) func(s kv.RW) error {
		return func(s kv.RW) error { return s.SetFrom(k, bytes.NewReader(pattern(tag, size)), int64(size)) }
	}
	ops := []crashOp{
		{"stream new", stream(1, n)},
		{"stream over: supersede", stream(2, n-3000)},
		{"stream into the superseded", stream(3, n-100)},
		{"set large: supersede", func(s kv.RW) error { return s.Set(k, pattern(4, n-7000)) }},
		{"stream smaller into the superseded", stream(5, n-20000)},
		{"set large: supersede again", func(s kv.RW) error { return s.Set(k, pattern(6, n+3000)) }},
		{"set large into the superseded", func(s kv.RW) error { return s.Set(k, pattern(7, n-40000)) }},
		{"set large: supersede once more", func(s kv.RW) error { return s.Set(k, pattern(8, n)) }},
		{"remove both", func(s kv.RW) error { return s.Remove(k) }},
	}
	images := cutEachWrite(t, ops, 12<<20, func(w int) []crashImage {
		return []crashImage{{crash.KeepAll, 0}, {crash.DropAll, 0},
			{crash.Tear, int64(w) + 1}, {crash.Tear, int64(w) + 2}, {crash.Tear, int64(w) + 3}}
	})
	t.Logf("crash images checked: %d", images)
}

// TestSupersedeWritesARecord: the space of a superseded member becomes
// stage space, and the newest journal record must vouch for none of its
// bytes — a recovery that found them changed would judge that record's
// acknowledged transaction torn and discard it with every append after it
// (doc §4; seen as values lost by kill -9 in TestKillRestart). So a
// transaction that supersedes a value writes a record even when it is
// otherwise a lone append (a small value replacing a large one, appended
// at the end), and deadUsable refuses the space while the newest record
// vouches for any of it.
func TestSupersedeWritesARecord(t *testing.T) {
	const size = 700 << 10
	s, _ := newCountingStore(t, 512, 32<<20)
	k := kv.MustKey("/k")
	require.NoError(t, s.Set(k, pattern(1, size)))
	for i := range 3 { // lone appends: the journal's newest record is settled
		require.NoError(t, s.Set(kv.MustKey(fmt.Sprintf("/s%d", i)), pattern(byte(i), 1000)))
	}
	lone := s.protocols[protoLone]
	require.Positive(t, lone, "the small values were lone appends")
	require.NoError(t, s.Set(k, pattern(2, 2000))) // would be a lone append, but supersedes /k's 700 KB
	requireDead(t, s, 1)
	require.Equal(t, lone, s.protocols[protoLone], "a transaction that supersedes a value writes a record")

	// The guard: the space is not used while the newest record vouches
	// for bytes in its data region, nor while commit writes a recovery
	// could replay lie there.
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dead[k]
	s.vouched, s.pending = nil, nil
	require.True(t, s.deadUsable(d))
	s.vouched = []extent{{d.dataOff + 4096, blockSize}}
	require.False(t, s.deadUsable(d), "the newest record vouches for a block in it")
	s.vouched, s.pending = nil, []extent{{d.dataOff, blockSize}}
	require.False(t, s.deadUsable(d), "an unflushed commit write lies in its data")
	s.pending, s.replayable = nil, []extent{{d.end - blockSize, blockSize}}
	require.False(t, s.deadUsable(d), "a recovery would replay a commit write in its data")
	s.replayable = []extent{{d.start, blockSize}}
	require.True(t, s.deadUsable(d), "its header is written as commit writes only")
	s.replayable = nil
}
