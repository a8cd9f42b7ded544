package faulty

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/tarstore/tarstore/hw"
)

// Op is a set of request kinds a Fault applies to.
type Op uint8

const (
	OpRead        Op = 1 << iota // Read
	OpWrite                      // Write
	OpWriteZeroes                // WriteZeroes
	OpDiscard                    // Discard
	OpFlush                      // Flush

	// OpModify is every request that changes the medium.
	OpModify = OpWrite | OpWriteZeroes | OpDiscard
)

// opNames are the hw.Error Op names of the single kinds, by bit.
var opNames = [...]string{"read", "write", "write-zeroes", "discard", "flush"}

// String returns the hw.Error Op of a single kind ("read", "write",
// "write-zeroes", "discard", "flush"); for a set, its kinds' names joined
// with "|".
func (o Op) String() string {
	var names []string
	for i, name := range opNames {
		if o&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	if rest := o &^ (OpRead | OpModify | OpFlush); rest != 0 || o == 0 {
		names = append(names, fmt.Sprintf("Op(%#x)", uint8(rest)))
	}
	return strings.Join(names, "|")
}

// Fault describes injected I/O errors.
type Fault struct {
	Op      Op     // the kinds of request that fail
	LBA     uint64 // first faulty sector
	Sectors uint64 // number of faulty sectors; 0 means 1. Ignored for OpFlush.
	Times   int    // how many requests fail before the fault disarms; 0 or less: every one
	Err     error  // the cause in the *hw.Error; nil means syscall.EIO
}

// armed is an injected fault, defaults applied, with its remaining count.
type armed struct {
	Fault
	left int // requests still to fail; 0: forever
}

// arm applies f's defaults.
func arm(f Fault) armed {
	if f.Sectors == 0 {
		f.Sectors = 1
	}
	if f.Err == nil {
		f.Err = syscall.EIO
	}
	return armed{Fault: f, left: max(f.Times, 0)}
}

// Faults is a list of armed faults and the rule that decides which one a
// request fires. Device and hw/crash keep one each, so both fail requests
// the same way. The zero value is an empty list; a Faults is safe for
// concurrent use and must not be copied.
type Faults struct {
	mu    sync.Mutex
	armed []armed
}

// Inject arms f: a request of a kind in f.Op that touches one of its
// sectors (any flush, for OpFlush) fails, f.Times times or forever.
func (s *Faults) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = append(s.armed, arm(f))
}

// Clear disarms every fault.
func (s *Faults) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = nil
}

// Fire decides whether a valid request fails. op is the request's single
// kind and [lba, lba+sectors) its range (ignored for OpFlush). It returns
// nil when no armed fault matches. Otherwise the fault with the lowest
// failing sector fires, the earliest injected on a tie; only its count goes
// down, and it disarms when the count reaches zero. The error is an
// *hw.Error of Op op.String(), Device device, Kind hw.ErrIO and Err the
// fault's cause, whose LBA is the first faulty sector of the request
// (Sectors 1), or LBA 0 and Sectors 0 for a flush.
//
// The caller decides what a failed request did (hw/faulty and hw/crash: it
// changed nothing) and calls Fire only for requests that passed validation
// and reach the device.
func (s *Faults) Fire(op Op, device string, lba, sectors uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, at := pick(s.armed, op, lba, sectors)
	if i < 0 {
		return nil
	}
	f := &s.armed[i]
	cause := f.Err
	if f.left > 0 {
		f.left--
		if f.left == 0 {
			s.armed = slices.Delete(s.armed, i, i+1)
		}
	}
	n := uint64(1)
	if op == OpFlush {
		n = 0
	}
	return &hw.Error{Op: op.String(), Device: device, LBA: at, Sectors: n, Kind: hw.ErrIO, Err: cause}
}

// pick returns the index of the fault that fires for a request of kind op
// over [lba, lba+sectors), and the sector it fails at; -1 when none does.
func pick(faults []armed, op Op, lba, sectors uint64) (int, uint64) {
	hit, at := -1, uint64(0)
	for i, f := range faults {
		if f.Op&op == 0 {
			continue
		}
		var sector uint64
		if op != OpFlush {
			// The request's range is valid, so lba+sectors does not
			// overflow; the fault's end saturates.
			end := f.LBA + f.Sectors
			if end < f.LBA {
				end = math.MaxUint64
			}
			if lba+sectors <= f.LBA || end <= lba {
				continue
			}
			sector = max(lba, f.LBA)
		}
		if hit < 0 || sector < at {
			hit, at = i, sector
		}
	}
	return hit, at
}
