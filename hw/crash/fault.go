package crash

import "github.com/tarstore/tarstore/hw/faulty"

// Op is a set of request kinds a Fault applies to: hw/faulty's.
type Op = faulty.Op

// The request kinds, as in hw/faulty.
const (
	OpRead        = faulty.OpRead        // Read
	OpWrite       = faulty.OpWrite       // Write
	OpWriteZeroes = faulty.OpWriteZeroes // WriteZeroes
	OpDiscard     = faulty.OpDiscard     // Discard
	OpFlush       = faulty.OpFlush       // Flush

	// OpModify is every request that changes the medium.
	OpModify = faulty.OpModify
)

// Fault describes injected I/O errors: hw/faulty's.
type Fault = faulty.Fault

// InjectError arms f. A request of a kind in f.Op that touches a faulty
// sector (any flush, for OpFlush) fails with an *hw.Error of Kind hw.ErrIO,
// Err f.Err and, as LBA, the first faulty sector of the request (Sectors 1);
// a flush fails with LBA 0 and Sectors 0. When several faults match, the one
// with the lowest failing sector fires, the earliest injected on a tie, and
// only its count goes down (the rule is faulty.Faults.Fire). A failed write
// changes nothing; a failed flush leaves the pending writes pending. Faults
// do not apply to requests that are invalid or arrive after a power loss.
func (d *Device) InjectError(f Fault) { d.faults.Inject(f) }

// ClearFaults disarms every injected fault.
func (d *Device) ClearFaults() { d.faults.Clear() }
