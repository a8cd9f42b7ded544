package faulty

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// pickFunc is pick's signature, so that the table can run on planted bugs.
type pickFunc func(faults []armed, op Op, lba, sectors uint64) (int, uint64)

// pickCases are requests against lists of faults, with the fault that must
// fire (its index, -1 for none) and the sector it fails at.
var pickCases = []struct {
	name   string
	faults []Fault
	op     Op
	lba, n uint64
	want   int
	at     uint64
}{
	{"no fault", nil, OpRead, 0, 16, -1, 0},
	{"other kind", []Fault{{Op: OpWrite, LBA: 5}}, OpRead, 0, 16, -1, 0},
	{"one of a set of kinds", []Fault{{Op: OpModify, LBA: 5}}, OpDiscard, 4, 3, 0, 5},
	{"request ends at the fault", []Fault{{Op: OpRead, LBA: 5, Sectors: 2}}, OpRead, 0, 5, -1, 0},
	{"request starts after the fault", []Fault{{Op: OpRead, LBA: 5, Sectors: 2}}, OpRead, 7, 3, -1, 0},
	{"request starts inside the fault", []Fault{{Op: OpRead, LBA: 5, Sectors: 2}}, OpRead, 6, 3, 0, 6},
	{"one sector by default", []Fault{{Op: OpRead, LBA: 5}}, OpRead, 6, 1, -1, 0},
	{"empty range", []Fault{{Op: OpWriteZeroes, LBA: 5}}, OpWriteZeroes, 5, 0, -1, 0},
	{"lowest failing sector wins", []Fault{{Op: OpRead, LBA: 8, Sectors: 4}, {Op: OpRead, LBA: 6}}, OpRead, 0, 16, 1, 6},
	{"failing sector, not fault start", []Fault{{Op: OpRead, LBA: 5}, {Op: OpRead, LBA: 0, Sectors: 16}}, OpRead, 5, 1, 0, 5},
	{"earliest on a tie", []Fault{{Op: OpRead, LBA: 4, Sectors: 4}, {Op: OpRead, LBA: 4}}, OpRead, 4, 1, 0, 4},
	{"range up to the last lba", []Fault{{Op: OpRead, LBA: 12, Sectors: math.MaxUint64}}, OpRead, 11, 5, 0, 12},
	{"flush ignores ranges", []Fault{{Op: OpRead}, {Op: OpFlush, LBA: 100}}, OpFlush, 0, 0, 1, 0},
	{"flush fault, read", []Fault{{Op: OpFlush}}, OpRead, 0, 16, -1, 0},
}

// pickMismatches runs pickCases on p and describes every wrong answer.
func pickMismatches(p pickFunc) []string {
	var bad []string
	for _, c := range pickCases {
		var faults []armed
		for _, f := range c.faults {
			faults = append(faults, arm(f))
		}
		i, at := p(faults, c.op, c.lba, c.n)
		if i != c.want || (i >= 0 && at != c.at) {
			bad = append(bad, fmt.Sprintf("%s: fault %d at %d, want %d at %d", c.name, i, at, c.want, c.at))
		}
	}
	return bad
}

func TestPick(t *testing.T) {
	for _, m := range pickMismatches(pick) {
		t.Error(m)
	}
}

// TestPickCatchesPlantedBugs plants plausible bugs in the rule, each built
// from pick by changing its input or output, and checks that the table of
// TestPick rejects every one of them.
func TestPickCatchesPlantedBugs(t *testing.T) {
	mutants := map[string]pickFunc{
		"the first match fires": func(fs []armed, op Op, lba, n uint64) (int, uint64) {
			for i := range fs {
				if j, at := pick(fs[i:i+1], op, lba, n); j == 0 {
					return i, at
				}
			}
			return -1, 0
		},
		"the latest fires on a tie": func(fs []armed, op Op, lba, n uint64) (int, uint64) {
			rev := slices.Clone(fs)
			slices.Reverse(rev)
			i, at := pick(rev, op, lba, n)
			if i < 0 {
				return i, at
			}
			return len(fs) - 1 - i, at
		},
		"the request's end is inclusive": func(fs []armed, op Op, lba, n uint64) (int, uint64) {
			return pick(fs, op, lba, n+1)
		},
		"the fault's end is inclusive": func(fs []armed, op Op, lba, n uint64) (int, uint64) {
			wide := slices.Clone(fs)
			for i := range wide {
				wide[i].Sectors++
			}
			return pick(wide, op, lba, n)
		},
		"the fault's end overflows": func(fs []armed, op Op, lba, n uint64) (int, uint64) {
			// An end that wraps around lies below the request: such a
			// fault never matches.
			fs = slices.Clone(fs)
			for i, f := range fs {
				if f.LBA+f.Sectors < f.LBA {
					fs[i].Op = 0
				}
			}
			return pick(fs, op, lba, n)
		},
		"the kind is ignored": func(fs []armed, op Op, lba, n uint64) (int, uint64) {
			fs = slices.Clone(fs)
			for i := range fs {
				fs[i].Op = OpRead | OpModify | OpFlush
			}
			return pick(fs, op, lba, n)
		},
		"a flush is matched by range": func(fs []armed, op Op, lba, n uint64) (int, uint64) {
			if op == OpFlush {
				// A set of kinds takes pick's ranged path; a flush
				// covers no sector.
				return pick(fs, OpFlush|OpRead, 0, 0)
			}
			return pick(fs, op, lba, n)
		},
	}
	for name, m := range mutants {
		if bad := pickMismatches(m); len(bad) == 0 {
			t.Errorf("planted bug %q passes the table", name)
		} else {
			t.Logf("planted bug %q caught: %s", name, bad[0])
		}
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{
		OpRead:        "read",
		OpWrite:       "write",
		OpWriteZeroes: "write-zeroes",
		OpDiscard:     "discard",
		OpFlush:       "flush",
		OpModify:      "write|write-zeroes|discard",
		0:             "Op(0x0)",
		OpRead | 0x80: "read|Op(0x80)",
	} {
		if got := op.String(); got != want {
			t.Errorf("Op(%#x).String() = %q, want %q", uint8(op), got, want)
		}
	}
}
