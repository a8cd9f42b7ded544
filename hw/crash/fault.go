package crash

import (
	"math"
	"slices"
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

// Fault describes injected I/O errors.
type Fault struct {
	Op      Op     // the kinds of request that fail
	LBA     uint64 // first faulty sector
	Sectors uint64 // number of faulty sectors; 0 means 1. Ignored for OpFlush.
	Times   int    // how many requests fail before the fault disarms; 0 or less: every one
	Err     error  // the cause in the *hw.Error; nil means syscall.EIO
}

// armed is an injected fault with its remaining count.
type armed struct {
	Fault
	left int // requests still to fail; 0: forever
}

// InjectError arms f. A request of a kind in f.Op that touches a faulty
// sector (any flush, for OpFlush) fails with an *hw.Error of Kind hw.ErrIO,
// Err f.Err and, as LBA, the first faulty sector of the request (Sectors 1);
// a flush fails with LBA 0 and Sectors 0. When several faults match, the one
// with the lowest failing sector fires, the earliest injected on a tie, and
// only its count goes down. A failed write changes nothing; a failed flush
// leaves the pending writes pending. Faults do not apply to requests that
// are invalid or arrive after a power loss.
func (d *Device) InjectError(f Fault) {
	if f.Sectors == 0 {
		f.Sectors = 1
	}
	if f.Err == nil {
		f.Err = syscall.EIO
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faults = append(d.faults, &armed{Fault: f, left: max(f.Times, 0)})
}

// ClearFaults disarms every injected fault.
func (d *Device) ClearFaults() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faults = nil
}

// injected returns the error of the fault that fires for a request of kind
// op over [lba, lba+sectors), or nil. The caller holds mu.
func (d *Device) injected(op Op, name string, lba, sectors uint64) error {
	var (
		hit  *armed
		at   uint64
		slot int
	)
	for i, f := range d.faults {
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
		if hit == nil || sector < at {
			hit, at, slot = f, sector, i
		}
	}
	if hit == nil {
		return nil
	}
	if hit.left > 0 {
		hit.left--
		if hit.left == 0 {
			d.faults = slices.Delete(d.faults, slot, slot+1)
		}
	}
	n := uint64(1)
	if op == OpFlush {
		n = 0
	}
	return &hw.Error{Op: name, Device: d.info.Model, LBA: at, Sectors: n, Kind: hw.ErrIO, Err: hit.Err}
}
