package kvtar

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// Tests of the replay decision (decideReplay, newestRecord: doc §4) over
// every case, and of readJournal, which feeds it from the device.

// jrLimit is the end of the archive area in the decision tests.
const jrLimit = 1 << 20

// A jrPlan is a journalState in a form tests compare: the commit writes
// as "offset:bytes", in replay order.
type jrPlan struct {
	Replay     bool // a replay (possibly empty); false: js.replay == nil
	Commits    []string
	Zeros      []extent
	Seq        uint64
	VerifyFrom int64
	VerifySeed uint32
	KnownEnd   int64
	Dirty      bool
}

func jrPlanOf(js journalState) jrPlan {
	p := jrPlan{Seq: js.seq, VerifyFrom: js.verifyFrom, VerifySeed: js.verifySeed, KnownEnd: js.knownEnd, Dirty: js.dirty}
	if js.replay != nil {
		p.Replay = true
		for _, w := range js.replay.commits {
			p.Commits = append(p.Commits, fmt.Sprintf("%d:%s", w.off, w.data))
		}
		p.Zeros = append(p.Zeros, js.replay.zeros...)
	}
	return p
}

// jrW is a commit write of a string.
func jrW(off int64, s string) write { return write{off, []byte(s)} }

// The records of the decision tests. b is transaction 5, its predecessor
// a (4) in the other slot; b's commit write b2 overwrites a's a1.
func jrA() *record {
	return &record{
		stage: []extent{{4096, 512}}, stageCRC: 0xa, seq: 4,
		commits:   []write{jrW(512, "a1"), jrW(1024, "a2")},
		zeros:     []extent{{8192, 512}},
		eoaBefore: 1024, eoaAfter: 2048, crc: 0xaaaa,
	}
}

func jrB(prevPending bool) *record {
	return &record{
		stage: []extent{{2560, 512}}, stageCRC: 0xb, seq: 5, prevPending: prevPending,
		commits:   []write{jrW(2048, "b1"), jrW(512, "b2")},
		zeros:     []extent{{16384, 1024}},
		eoaBefore: 2048, eoaAfter: 3072, crc: 0xbbbb,
	}
}

// jrSeq is a record numbered seq with one commit write named name.
func jrSeq(seq uint64, name string) *record {
	return &record{seq: seq, commits: []write{jrW(int64(seq)*512, name)}, eoaBefore: 512, eoaAfter: 1024, crc: uint32(seq)}
}

// jrCheckpoint is the checkpoint checkpoint (txn.go) writes after a
// spilled record 5.
func jrCheckpoint(prevPending bool) *record {
	return &record{seq: 6, prevPending: prevPending, eoaBefore: 3072, eoaAfter: 3072, crc: 0xcccc}
}

func jrSpilled() *record {
	r := jrB(false)
	r.spill = 1 << 19
	return r
}

// jrClone deep-copies r.
func jrClone(r *record) *record {
	if r == nil {
		return nil
	}
	c := *r
	c.stage = slices.Clone(r.stage)
	c.zeros = slices.Clone(r.zeros)
	c.commits = slices.Clone(r.commits)
	for i := range c.commits {
		c.commits[i].data = bytes.Clone(r.commits[i].data)
	}
	return &c
}

// TestDecideReplay runs the decision over every case, with the newest
// record in either slot (newestRecord).
func TestDecideReplay(t *testing.T) {
	none := jrPlan{VerifyFrom: -1, KnownEnd: -1}
	eoa := func(off, n int64) []extent { return []extent{{off, n}} }
	cases := []struct {
		name    string
		slots   [2]*record // slot 0, slot 1
		stageOK bool
		want    jrPlan
		ordered bool // the slot order matters: do not swap
	}{
		{name: "no record", want: none},
		{name: "no record, stage flag ignored", stageOK: true, want: none},

		// One record.
		{name: "one record, intact", slots: [2]*record{jrB(false), nil}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{"2048:b1", "512:b2"}, Zeros: eoa(16384, 1024), Seq: 5, VerifyFrom: 3072, VerifySeed: 0xbbbb, KnownEnd: 3072}},
		{name: "one record, stage torn: discarded", slots: [2]*record{jrB(false), nil},
			want: jrPlan{Replay: true, Zeros: eoa(2048, eoaSize), Seq: 5, VerifyFrom: -1, KnownEnd: 2048}},
		{name: "one record, prevPending, its predecessor gone, intact", slots: [2]*record{jrB(true), nil}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{"2048:b1", "512:b2"}, Zeros: eoa(16384, 1024), Seq: 5, VerifyFrom: 3072, VerifySeed: 0xbbbb, KnownEnd: 3072}},
		{name: "one record, prevPending, its predecessor gone, stage torn", slots: [2]*record{jrB(true), nil},
			want: jrPlan{Replay: true, Zeros: eoa(2048, eoaSize), Seq: 5, VerifyFrom: -1, KnownEnd: 2048}},

		// Two records, the newest not asking for its predecessor.
		{name: "predecessor not pending, intact", slots: [2]*record{jrA(), jrB(false)}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{"2048:b1", "512:b2"}, Zeros: eoa(16384, 1024), Seq: 5, VerifyFrom: 3072, VerifySeed: 0xbbbb, KnownEnd: 3072}},
		{name: "predecessor not pending, stage torn", slots: [2]*record{jrA(), jrB(false)},
			want: jrPlan{Replay: true, Zeros: eoa(2048, eoaSize), Seq: 5, VerifyFrom: -1, KnownEnd: 2048}},

		// The newest asks for its predecessor (seq-1).
		{name: "predecessor pending, intact: both, in order", slots: [2]*record{jrA(), jrB(true)}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{"512:a1", "1024:a2", "2048:b1", "512:b2"}, Zeros: eoa(16384, 1024), Seq: 5, VerifyFrom: 3072, VerifySeed: 0xbbbb, KnownEnd: 3072}},
		{name: "predecessor pending, stage torn: the predecessor alone", slots: [2]*record{jrA(), jrB(true)},
			want: jrPlan{Replay: true, Commits: []string{"512:a1", "1024:a2"}, Zeros: eoa(2048, eoaSize), Seq: 5, VerifyFrom: -1, KnownEnd: 2048}},

		// The other record is not the predecessor.
		{name: "stale other (seq-3), intact", slots: [2]*record{jrSeq(2, "s"), jrB(true)}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{"2048:b1", "512:b2"}, Zeros: eoa(16384, 1024), Seq: 5, VerifyFrom: 3072, VerifySeed: 0xbbbb, KnownEnd: 3072}},
		{name: "stale other (seq-3), stage torn", slots: [2]*record{jrSeq(2, "s"), jrB(true)},
			want: jrPlan{Replay: true, Zeros: eoa(2048, eoaSize), Seq: 5, VerifyFrom: -1, KnownEnd: 2048}},
		{name: "other seq-2, intact", slots: [2]*record{jrSeq(3, "s"), jrB(true)}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{"2048:b1", "512:b2"}, Zeros: eoa(16384, 1024), Seq: 5, VerifyFrom: 3072, VerifySeed: 0xbbbb, KnownEnd: 3072}},
		{name: "other seq-2, stage torn", slots: [2]*record{jrSeq(3, "s"), jrB(true)},
			want: jrPlan{Replay: true, Zeros: eoa(2048, eoaSize), Seq: 5, VerifyFrom: -1, KnownEnd: 2048}},
		{name: "same number in both slots: slot 0's", slots: [2]*record{jrB(true), jrSeq(5, "x")}, stageOK: true, ordered: true,
			want: jrPlan{Replay: true, Commits: []string{"2048:b1", "512:b2"}, Zeros: eoa(16384, 1024), Seq: 5, VerifyFrom: 3072, VerifySeed: 0xbbbb, KnownEnd: 3072}},
		{name: "same number in both slots, the other way", slots: [2]*record{jrSeq(5, "x"), jrB(true)}, stageOK: true, ordered: true,
			want: jrPlan{Replay: true, Commits: []string{"2560:x"}, Seq: 5, VerifyFrom: 1024, VerifySeed: 5, KnownEnd: 1024}},
		{name: "numbers do not wrap: 2^64-1 is newer than 0", slots: [2]*record{jrSeq(0, "zero"), jrSeq(math.MaxUint64, "max")}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{fmt.Sprintf("%d:max", int64(-512))}, Seq: math.MaxUint64, VerifyFrom: 1024, VerifySeed: math.MaxUint32, KnownEnd: 1024}},

		// A checkpoint newest (after a spilled record).
		{name: "checkpoint after a spilled record", slots: [2]*record{jrCheckpoint(false), jrSpilled()}, stageOK: true,
			want: jrPlan{Replay: true, Seq: 6, VerifyFrom: 3072, VerifySeed: 0xcccc, KnownEnd: 3072}},
		{name: "checkpoint alone", slots: [2]*record{jrCheckpoint(false), nil}, stageOK: true,
			want: jrPlan{Replay: true, Seq: 6, VerifyFrom: 3072, VerifySeed: 0xcccc, KnownEnd: 3072}},
		{name: "checkpoint, stage torn (it has none: not from a real store)", slots: [2]*record{jrCheckpoint(false), jrSpilled()},
			want: jrPlan{Replay: true, Zeros: eoa(3072, eoaSize), Seq: 6, VerifyFrom: -1, KnownEnd: 3072}},
		{name: "checkpoint with prevPending and its predecessor", slots: [2]*record{jrCheckpoint(true), jrSpilled()}, stageOK: true,
			want: jrPlan{Replay: true, Commits: []string{"2048:b1", "512:b2"}, Seq: 6, VerifyFrom: 3072, VerifySeed: 0xcccc, KnownEnd: 3072}},

		// The end-of-archive marker of a discarded transaction near the
		// end of the archive area.
		{name: "discarded, marker cut at the limit", slots: [2]*record{{seq: 1, eoaBefore: jrLimit - 512, eoaAfter: jrLimit}, nil},
			want: jrPlan{Replay: true, Zeros: eoa(jrLimit-512, 512), Seq: 1, VerifyFrom: -1, KnownEnd: jrLimit - 512}},
		{name: "discarded, archive ending at the limit", slots: [2]*record{{seq: 1, eoaBefore: jrLimit, eoaAfter: jrLimit}, nil},
			want: jrPlan{Replay: true, Seq: 1, VerifyFrom: -1, KnownEnd: jrLimit}},
		{name: "discarded, negative end (decodeRecord refuses it)", slots: [2]*record{{seq: 1, eoaBefore: -1024}, nil},
			want: jrPlan{Replay: true, Seq: 1, VerifyFrom: -1, KnownEnd: -1}},
		{name: "discarded with its predecessor, marker cut at the limit", slots: [2]*record{jrSeq(1, "p"), {seq: 2, prevPending: true, eoaBefore: jrLimit - 100}},
			want: jrPlan{Replay: true, Commits: []string{"512:p"}, Zeros: eoa(jrLimit-100, 100), Seq: 2, VerifyFrom: -1, KnownEnd: jrLimit - 100}},
	}
	for _, c := range cases {
		orders := [][2]int{{0, 1}, {1, 0}}
		if c.ordered {
			orders = orders[:1]
		}
		for _, o := range orders {
			t.Run(fmt.Sprintf("%s/slots %d %d", c.name, o[0], o[1]), func(t *testing.T) {
				slots := [2]*record{c.slots[o[0]], c.slots[o[1]]}
				for _, r := range slots {
					// Spare capacity, which an append into the
					// arguments' arrays would fill.
					if r != nil {
						r.commits = append(make([]write, 0, len(r.commits)+4), r.commits...)
						r.zeros = append(make([]extent, 0, len(r.zeros)+4), r.zeros...)
					}
				}
				before := [2]*record{jrClone(slots[0]), jrClone(slots[1])}
				newest, other := newestRecord(slots)
				if slots[0] != nil || slots[1] != nil {
					require.NotNil(t, newest)
					require.True(t, newest == slots[0] || newest == slots[1])
					require.True(t, other == slots[0] || other == slots[1])
					require.NotSame(t, newest, other)
				} else {
					require.Nil(t, newest)
					require.Nil(t, other)
				}
				js := decideReplay(newest, other, c.stageOK, jrLimit)
				require.Equal(t, c.want, jrPlanOf(js))
				require.Equal(t, before, slots, "decideReplay changed its arguments")
				for _, r := range slots {
					if r != nil {
						require.Empty(t, slices.DeleteFunc(r.commits[len(r.commits):cap(r.commits)], func(w write) bool { return w.data == nil }),
							"decideReplay appended to an argument's commit writes")
						require.Empty(t, slices.DeleteFunc(r.zeros[len(r.zeros):cap(r.zeros)], func(e extent) bool { return e == extent{} }),
							"decideReplay appended to an argument's zero extents")
					}
				}
			})
		}
	}
}

// TestDecideReplayOverlap applies a replay of a record and its pending
// predecessor to an image the way replayJournal does: where their commit
// writes overlap, the newer record's bytes are what the device ends with,
// and its zero extents are zeroed before the commit writes. (They are
// zeroed before the predecessor's too: a transaction zeroes only stage
// space, never bytes its predecessor's pending commit writes cover,
// txn.isInvisible.)
func TestDecideReplayOverlap(t *testing.T) {
	a := &record{seq: 9, commits: []write{jrW(10, "aaaa"), jrW(20, "AA")}}
	b := &record{seq: 10, prevPending: true, commits: []write{jrW(12, "bb"), jrW(30, "BB")}, zeros: []extent{{28, 6}}, eoaAfter: 40, crc: 1}
	js := decideReplay(b, a, true, 64)
	img := bytes.Repeat([]byte{'.'}, 40)
	for _, z := range js.replay.zeros {
		for i := z.off; i < z.end(); i++ {
			img[i] = '0'
		}
	}
	for _, w := range js.replay.commits {
		copy(img[w.off:], w.data)
	}
	require.Equal(t, "..........aabb......AA......00BB00......", string(img))
}

// TestReadJournal writes records to the journal slots and stage bytes to
// the archive area of a device, and checks that readJournal reads them,
// checks the stage and decides as decideReplay does; and that a slot that
// starts with the magic but holds no valid record makes the state dirty.
func TestReadJournal(t *testing.T) {
	stageBytes := bytes.Repeat([]byte("stage!"), 200)[:1024]
	mk := func(seq uint64, prevPending bool, name string) *record {
		// Transaction seq: stage extent [seq*8K, +1K) holding stageBytes.
		return &record{
			stage:    []extent{{int64(seq) * 8192, 1024}},
			stageCRC: crc32.Checksum(stageBytes, castagnoli),
			commits:  []write{jrW(int64(seq)*512, name)}, zeros: []extent{{int64(seq) * 16384, 512}},
			seq: seq, prevPending: prevPending, eoaBefore: int64(seq) * 1024, eoaAfter: int64(seq)*1024 + 512,
		}
	}
	type slot int
	const (
		empty  slot = iota // zeroes
		junk               // no magic
		torn               // the magic, a bad checksum
		rec4               // transaction 4 (slot 0)
		rec5               // transaction 5 (slot 1), its predecessor pending
		rec5np             // transaction 5 (slot 1), not pending
		rec7               // transaction 7 (slot 1)
	)
	cases := []struct {
		name       string
		s0, s1     slot
		stageTorn  bool
		newest     slot // empty: none
		other      slot
		wantCommit []string
	}{
		{"empty", empty, empty, false, empty, empty, nil},
		{"junk is not dirty", junk, junk, false, empty, empty, nil},
		{"torn slots are dirty", torn, torn, false, empty, empty, nil},
		{"one record", rec4, empty, false, rec4, empty, []string{"2048:four"}},
		{"one record, its stage torn", rec4, empty, true, rec4, empty, nil},
		{"one record, the other slot torn", rec4, torn, false, rec4, empty, []string{"2048:four"}},
		{"predecessor pending", rec4, rec5, false, rec5, rec4, []string{"2048:four", "2560:five"}},
		{"predecessor pending, stage torn", rec4, rec5, true, rec5, rec4, []string{"2048:four"}},
		{"predecessor not pending", rec4, rec5np, false, rec5np, rec4, []string{"2560:five"}},
		{"newest in slot 1 torn: the older one", torn, rec5, false, rec5, empty, []string{"2560:five"}},
		{"stale other", rec4, rec7, false, rec7, rec4, []string{"3584:seven"}},
	}
	for _, ss := range []int{512, 4096} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%d/%s", ss, c.name), func(t *testing.T) {
				s, _ := jrNewStore(t, ss, 1<<20)
				recs := map[slot]*record{rec4: mk(4, false, "four"), rec5: mk(5, true, "five"), rec5np: mk(5, false, "five"), rec7: mk(7, true, "seven")}
				heads := map[slot][]byte{}
				for k, r := range recs {
					heads[k], _ = r.encode() // sets r.crc
				}
				dirty := false
				for i, sl := range []slot{c.s0, c.s1} {
					switch sl {
					case empty:
					case junk:
						jrWrite(t, s, s.slotOff(i), bytes.Repeat([]byte{0xee}, int(s.ss)))
					case torn:
						b, _ := mk(uint64(8+i), false, "torn").encode()
						b[len(b)-1] ^= 1
						jrWrite(t, s, s.slotOff(i), padSector(b, s.ss))
						dirty = true
					default:
						jrWrite(t, s, s.slotOff(i), padSector(bytes.Clone(heads[sl]), s.ss))
					}
				}
				for _, r := range recs {
					jrWrite(t, s, r.stage[0].off, stageBytes)
				}
				if c.newest != empty && c.stageTorn {
					jrWrite(t, s, recs[c.newest].stage[0].off+100, []byte("torn"))
				}
				js, err := s.readJournal()
				require.NoError(t, err)
				want := decideReplay(recs[c.newest], recs[c.other], !c.stageTorn, s.limit)
				want.dirty = dirty
				require.Equal(t, jrPlanOf(want), jrPlanOf(js))
				require.Equal(t, c.wantCommit, jrPlanOf(js).Commits)
			})
		}
	}
}
