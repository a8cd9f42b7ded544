package kvtar

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// A crashOp is one step of the crash workload; it runs on the store under
// test and on the model alike.
type crashOp struct {
	name string
	do   func(s kv.RW) error
}

func pattern(tag byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = tag + byte(i%251)
	}
	return b
}

// crashWorkload exercises every write operation: appends, overwrites (the
// old member becomes a hole), writes into holes, values of several sectors
// and of less than one, long names (PAX headers), partial writes, removal
// and renaming of values and dictionaries, a removal at the tail and an
// append right after it.
func crashWorkload() []crashOp {
	k := kv.MustKey
	long := "/" + string(bytes.Repeat([]byte("n"), 150)) + "/v"
	return []crashOp{
		{"set small", func(s kv.RW) error { return s.Set(k("/a"), pattern(1, 100)) }},
		{"set dir/x", func(s kv.RW) error { return s.Set(k("/d/x"), pattern(2, 700)) }},
		{"set dir/y large", func(s kv.RW) error { return s.Set(k("/d/y"), pattern(3, 20000)) }},
		{"set long name", func(s kv.RW) error { return s.Set(k(long), pattern(4, 5000)) }},
		{"overwrite small", func(s kv.RW) error { return s.Set(k("/a"), pattern(5, 3000)) }},
		{"set into hole", func(s kv.RW) error { return s.Set(k("/b"), pattern(6, 50)) }},
		{"set_partial in place", func(s kv.RW) error { return s.SetPartial(k("/d/y"), 100, pattern(7, 9000)) }},
		{"set_partial append", func(s kv.RW) error { return s.SetPartial(k("/b"), 50, pattern(8, 600)) }},
		{"allocate", func(s kv.RW) error { return s.Allocate(k("/z"), 10000, time.Unix(1e9, 0)) }},
		{"rename value", func(s kv.RW) error { return s.Rename(k("/a"), k("/e/a")) }},
		{"rename dict", func(s kv.RW) error { return s.Rename(k("/d"), k("/f/g")) }},
		{"set over dict", func(s kv.RW) error { return s.Set(k("/e"), pattern(9, 1234)) }},
		{"rename into dict", func(s kv.RW) error { return s.Rename(k("/e"), k("/f")) }},
		{"remove dict", func(s kv.RW) error { return s.Remove(k("/f/g")) }},
		{"set stream", func(s kv.RW) error {
			return s.SetFrom(k("/s"), bytes.NewReader(pattern(10, 70000)), 70000)
		}},
		{"remove tail", func(s kv.RW) error { return s.Remove(k("/s")) }},
		// An append (larger than any hole) right where the removal's
		// commit wrote the new end-of-archive marker: staged data must not
		// lie where a replay of that commit would write again.
		{"append after tail removal", func(s kv.RW) error { return s.Set(k("/t"), pattern(12, 40000)) }},
		{"remove value", func(s kv.RW) error { return s.Remove(k(long)) }},
		{"set after removals", func(s kv.RW) error { return s.Set(k("/last"), pattern(11, 4096)) }},
	}
}

// modelAfter returns the model store after the first n ops.
func modelAfter(t testing.TB, ops []crashOp, n int) kv.RW {
	m := kvtest.NewModel(clock.NewFake(time.Unix(1e9, 0)))
	for _, op := range ops[:n] {
		require.NoError(t, op.do(m), "model: %s", op.name)
	}
	return m
}

func sameContents(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// TestCrashEveryWrite cuts the power at every device write of the workload,
// at 512- and 4096-byte sectors, and checks each crash image (unflushed
// writes kept, dropped, or torn at sector granularity with several seeds):
// the store opens, recovery leaves a consistent archive that archive/tar
// reads as the store's contents, every acknowledged operation is there and
// the interrupted one is all or nothing (SPEC §4 Invariant B).
func TestCrashEveryWrite(t *testing.T) {
	ops := crashWorkload()
	models := make([]map[string][]byte, len(ops)+1)
	for i := range models {
		models[i] = contents(t, modelAfter(t, ops, i))
	}
	total := 0
	var used [numProtocols]int
	// Each variant cuts every write; "spill" makes every journal record
	// spill (inlineLimit), so that the spilled protocol is cut at every
	// write too.
	for _, v := range []struct {
		ss    int
		spill bool
	}{{512, false}, {4096, false}, {512, true}} {
		ss := v.ss
		name := fmt.Sprint(ss)
		if v.spill {
			name += "-spill"
		}
		t.Run(name, func(t *testing.T) {
			const size = 2 << 20
			base, err := mem.New(ss, size/uint64(ss))
			require.NoError(t, err)
			require.NoError(t, Format(base))

			run := func(failAt int) (dev *crash.Device, acked int) {
				dev = crash.New(base.Clone())
				dev.FailAtWrite(failAt)
				s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
				require.NoError(t, err)
				if failAt == 0 {
					// The uncut run's image is checked at the end; a cut run's
					// device lost its power, and its crash images are checked
					// below (checkStore).
					checkWhenDone(t, s, dev)
				}
				holesFirst(s)
				if v.spill {
					s.inlineLimit = 1
				}
				defer func() {
					if failAt == 0 {
						for p, n := range s.protocols {
							used[p] += n
						}
					}
				}()
				for _, op := range ops {
					if err := op.do(s); err != nil {
						require.True(t, errors.Is(err, kv.ErrStorage), "%s: %v", op.name, err)
						return dev, acked
					}
					acked++
				}
				if err := s.Close(); failAt == 0 {
					require.NoError(t, err)
				}
				return dev, acked
			}
			clean, acked := run(0)
			require.Equal(t, len(ops), acked)
			writes := clean.Writes()
			points := 0
			for n := 1; n <= writes; n++ {
				dev, acked := run(n)
				require.Less(t, acked, len(ops)+1)
				modes := []struct {
					mode crash.Mode
					seed int64
				}{{crash.KeepAll, 0}, {crash.DropAll, 0}, {crash.Tear, 1}, {crash.Tear, 2}, {crash.Tear, 3}}
				for _, m := range modes {
					img := dev.Crash(m.mode, m.seed+int64(n)*7)
					// A read-only open sees the same outcome without
					// writing (through the journal record, if any).
					before := img.Bytes()
					ro, err := New(clock.NewFake(time.Unix(2e9, 0)), img.ReadOnlyView())
					require.NoError(t, err, "read-only open after crash at write %d (%s)", n, m.mode)
					got := contents(t, ro)
					if !sameContents(got, models[acked]) && !(acked < len(ops) && sameContents(got, models[acked+1])) {
						t.Fatalf("read-only open after crash at write %d (%s) during %q: contents %v match neither before nor after",
							n, m.mode, opName(ops, acked), keysOf(got))
					}
					require.NoError(t, ro.Close())
					require.True(t, bytes.Equal(before, img.Bytes()), "the read-only open wrote")
					s, err := New(clock.NewFake(time.Unix(2e9, 0)), img)
					require.NoError(t, err, "open after crash at write %d (%s, op %d %q)", n, m.mode, acked, opName(ops, acked))
					got = contents(t, s)
					ok := sameContents(got, models[acked]) || (acked < len(ops) && sameContents(got, models[acked+1]))
					if !ok {
						t.Fatalf("crash at write %d (%s seed %d) during %q: contents %v match neither before nor after",
							n, m.mode, m.seed, opName(ops, acked), keysOf(got))
					}
					checkStore(t, s, img.ReaderAt())
					require.NoError(t, s.Close())
					points++
				}
			}
			t.Logf("%d-byte sectors: %d writes, %d crash images checked", ss, writes, points)
			total += points
		})
	}
	t.Logf("crash images checked: %d", total)
	for p, n := range used {
		t.Logf("protocol %s: %d transactions in the uncut runs", protocol(p), n)
		if protocol(p) != protoStage {
			require.NotZero(t, n, "no transaction used protocol %s: the crash test does not cover it", protocol(p))
		}
	}
}

func opName(ops []crashOp, i int) string {
	if i < len(ops) {
		return ops[i].name
	}
	return "close"
}

func keysOf(m map[string][]byte) []string {
	var ks []string
	for k, v := range m {
		ks = append(ks, fmt.Sprintf("%s(%d)", k, len(v)))
	}
	return ks
}

// A crashImage is one way to make an image of a crashed device.
type crashImage struct {
	mode crash.Mode
	seed int64
}

// cutEachWrite runs ops on a fresh store of size bytes (512-byte sectors)
// once per device write, the power failing at that write, and checks the
// images(w) of each crash: the store opens with the contents before or
// after the interrupted op, and the archive is sound. It returns the
// number of images checked.
func cutEachWrite(t *testing.T, ops []crashOp, size uint64, images func(w int) []crashImage) int {
	t.Helper()
	models := make([]map[string][]byte, len(ops)+1)
	for i := range models {
		models[i] = contents(t, modelAfter(t, ops, i))
	}
	base, err := mem.New(512, size/512)
	require.NoError(t, err)
	require.NoError(t, Format(base))
	checked := 0
	for w := 1; ; w++ {
		// No end-of-test check: each run's device is set to lose its power
		// (the last run's at the checkpoint of Close), and every crash
		// image is checked below.
		dev := crash.New(base.Clone())
		dev.FailAtWrite(w)
		s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
		require.NoError(t, err)
		acked := 0
		for _, op := range ops {
			if err := op.do(s); err != nil {
				require.ErrorIs(t, err, kv.ErrStorage, op.name)
				break
			}
			acked++
		}
		if acked == len(ops) {
			return checked // past the last write
		}
		for _, m := range images(w) {
			img := dev.Crash(m.mode, m.seed)
			s, err := New(clock.NewFake(time.Unix(2e9, 0)), img)
			require.NoError(t, err, "open after crash at write %d (%s, seed %d)", w, m.mode, m.seed)
			got := contents(t, s)
			if !sameContents(got, models[acked]) && !sameContents(got, models[acked+1]) {
				t.Fatalf("crash at write %d (%s, seed %d) during %q: contents %v match neither before nor after",
					w, m.mode, m.seed, ops[acked].name, keysOf(got))
			}
			checkStore(t, s, img.ReaderAt())
			require.NoError(t, s.Close())
			checked++
		}
	}
}

// TestCrashTornFirstWrites tears the first writes of a store at many more
// seeds than TestCrashEveryWrite can afford: the first append after an
// open, an append after it, and an overwrite, each cut at every write of
// its own and torn 64 ways. An append commits its header together with its
// data only when the journal already says where the archive ends (doc §3):
// the first one after an open must not; the second is a lone append,
// vouched for by the chain in its header.
func TestCrashTornFirstWrites(t *testing.T) {
	ops := []crashOp{
		{"first append", func(s kv.RW) error { return s.Set(kv.MustKey("/a"), pattern(1, 100)) }},
		{"second append", func(s kv.RW) error { return s.Set(kv.MustKey("/b"), pattern(2, 1500)) }},
		{"overwrite", func(s kv.RW) error { return s.Set(kv.MustKey("/a"), pattern(3, 700)) }},
	}
	images := cutEachWrite(t, ops, 256<<10, func(int) []crashImage {
		imgs := make([]crashImage, 64)
		for seed := range imgs {
			imgs[seed] = crashImage{crash.Tear, int64(seed)}
		}
		return imgs
	})
	t.Logf("torn images checked: %d", images)
}

// TestCrashStreams cuts the power at every write of streamed values of
// several chunks, whose chunks are written concurrently: a new value from
// a reader, its replacement, and a large in-memory Set. Each crash image
// (kept, dropped, torn 3 ways) opens with the value whole or as it was.
func TestCrashStreams(t *testing.T) {
	const n = 2*streamChunk + 5000 // three chunks: more than streamDepth
	ops := []crashOp{
		{"stream new", func(s kv.RW) error { return s.SetFrom(kv.MustKey("/s"), bytes.NewReader(pattern(1, n)), n) }},
		{"stream over", func(s kv.RW) error { return s.SetFrom(kv.MustKey("/s"), bytes.NewReader(pattern(2, n+700)), n+700) }},
		{"set large", func(s kv.RW) error { return s.Set(kv.MustKey("/m"), pattern(3, streamChunk+100)) }},
	}
	images := cutEachWrite(t, ops, 8<<20, func(w int) []crashImage {
		return []crashImage{{crash.KeepAll, 0}, {crash.DropAll, 0},
			{crash.Tear, int64(w) + 1}, {crash.Tear, int64(w) + 2}, {crash.Tear, int64(w) + 3}}
	})
	t.Logf("crash images checked: %d", images)
}

// TestChainedAppendsStaleTail: appends that commit without a journal
// record are recognised at open by the chain in their headers, not by
// looking like members. Old chained members left in the free tail (here:
// /a2, removed, its bytes put back as a write lost in a crash would leave
// them) follow a new chained append (/b, as long as /a1 was, so that /a2
// starts where the end-of-archive marker after /b should be): their data
// is intact and their tag well-formed, but they are chained to another
// past, so the archive ends before them.
func TestChainedAppendsStaleTail(t *testing.T) {
	dev, err := mem.New(512, (1<<20)/512)
	require.NoError(t, err)
	require.NoError(t, Format(dev))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	k := kv.MustKey
	require.NoError(t, s.Set(k("/x"), pattern(1, 300))) // the first transaction has a record
	require.NoError(t, s.Set(k("/a1"), pattern(2, 1000)))
	e2 := s.sp.eoa
	require.NoError(t, s.Set(k("/a2"), pattern(3, 700)))
	e3 := s.sp.eoa
	stale := dev.Bytes()[e2:e3]
	_, chained := tarfmt.GetTag((*tarfmt.Block)(stale[:blockSize]))
	require.True(t, chained, "/a2 was appended without a record")
	require.NoError(t, s.Remove(k("/a2")))
	require.NoError(t, s.Remove(k("/a1")))
	require.NoError(t, s.Set(k("/b"), pattern(4, 1000)))
	require.Equal(t, e2, s.sp.eoa, "/b ends where /a2 began")

	img := dev.Bytes()
	copy(img[e2:], stale) // /b's end-of-archive marker lost, /a2 back
	crashed, err := mem.FromBytes(512, img)
	require.NoError(t, err)
	want := map[string][]byte{"/x": pattern(1, 300), "/b": pattern(4, 1000)}
	ro, err := New(clock.NewFake(time.Unix(2e9, 0)), crashed.ReadOnlyView())
	require.NoError(t, err)
	require.Equal(t, want, contents(t, ro))
	require.NoError(t, ro.Close())
	s2, err := New(clock.NewFake(time.Unix(2e9, 0)), crashed)
	require.NoError(t, err)
	checkWhenDone(t, s2, crashed)
	require.Equal(t, want, contents(t, s2))
	checkStore(t, s2, crashed.ReaderAt())
	require.NoError(t, s2.Close())
}

// TestCrashGroupAppends cuts the power at every write while 8 writers
// append concurrently, so that their Sets are group-committed as chained
// appends (doc §3), and checks each crash image (kept, dropped, torn 4
// ways): every acknowledged Set is there, every value found is whole, and
// the archive is sound. An open may keep some of a group's appends and not
// the others: none of them was acknowledged.
func TestCrashGroupAppends(t *testing.T) {
	const writers = 8
	base, err := mem.New(512, (1<<20)/512)
	require.NoError(t, err)
	require.NoError(t, Format(base))
	key := func(w int) kv.Key { return kv.MustKey(fmt.Sprintf("/g/w%d", w)) }
	val := func(w int) []byte { return pattern(byte(w), 300+97*w) }
	images := 0
	for n := 1; ; n++ {
		// No end-of-test check: each run's device loses its power (the
		// last one maybe in Close), and every crash image is checked below.
		dev := crash.New(base.Clone())
		g := &gatedDevice{Device: dev}
		g.cond.L = &g.mu
		s, err := New(clock.NewFake(time.Unix(1e9, 0)), g)
		require.NoError(t, err)
		require.NoError(t, s.Set(kv.MustKey("/base"), []byte("base")))
		dev.FailAtWrite(n)
		g.expect(writers)
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				g.enter()
				errs[w] = s.Set(key(w), val(w))
			})
		}
		close(start)
		wg.Wait()
		if firstErr(errs) == nil {
			s.Close() // the power may go in Close: no longer this test's concern
			break     // past the last write of the group commits
		}
		for _, m := range []struct {
			mode crash.Mode
			seed int64
		}{{crash.KeepAll, 0}, {crash.DropAll, 0}, {crash.Tear, 1}, {crash.Tear, 2}, {crash.Tear, 3}, {crash.Tear, 4}} {
			img := dev.Crash(m.mode, m.seed+int64(n)*7)
			s2, err := New(clock.NewFake(time.Unix(2e9, 0)), img)
			require.NoError(t, err, "open after crash at write %d (%s)", n, m.mode)
			got := contents(t, s2)
			require.Equal(t, []byte("base"), got["/base"])
			for w := range writers {
				v, ok := got[key(w).String()]
				if errs[w] == nil {
					require.True(t, ok, "crash at write %d (%s): acknowledged %s lost", n, m.mode, key(w))
				}
				if ok {
					require.Equal(t, val(w), v, "crash at write %d (%s): %s torn", n, m.mode, key(w))
				}
			}
			checkStore(t, s2, img.ReaderAt())
			require.NoError(t, s2.Close())
			images++
		}
	}
	t.Logf("crash images checked: %d", images)
}

// TestAppendOverReplayedCommit: recovery replays the newest record's
// commit writes and, when that record says its predecessor's were still
// pending, the predecessor's too — even though they were flushed long ago.
// An append must not lie where such a replay writes. Here a removal at the
// tail moves the end of archive back (its commit writes the end-of-archive
// marker there), a second transaction with a record follows (its
// predecessor's writes pending), and then a value is appended at the end
// of archive, right over that marker. A replay of the removal's record
// would zero the append's header, and the archive would end before it:
// the append must not be a lone append without a record of its own. Found
// by TestKillRestart (values lost after kill -9 about once in 30 runs).
func TestAppendOverReplayedCommit(t *testing.T) {
	base, err := mem.New(512, (1<<20)/512)
	require.NoError(t, err)
	require.NoError(t, Format(base))
	dev := crash.New(base)
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	k := kv.MustKey
	for i, n := range []int{1000, 2000, 3000} {
		require.NoError(t, s.Set(k(fmt.Sprintf("/v%d", i)), pattern(byte(i), n)))
	}
	require.NoError(t, s.Remove(k("/v2"))) // at the tail: the end of archive moves back
	require.NoError(t, s.Remove(k("/v0"))) // a record whose predecessor's writes were pending
	require.NoError(t, s.Set(k("/x"), pattern(9, 1500)))

	img := dev.Crash(crash.KeepAll, 0) // a killed process: every write issued is there
	s2, err := New(clock.NewFake(time.Unix(2e9, 0)), img)
	require.NoError(t, err)
	defer s2.Close()
	got, err := s2.Get(k("/x"))
	require.NoError(t, err, "the value appended before the crash")
	require.Equal(t, pattern(9, 1500), got)
	_, err = s2.Get(k("/v1"))
	require.NoError(t, err)
}
