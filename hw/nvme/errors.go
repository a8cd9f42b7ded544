package nvme

import (
	"errors"
	"fmt"

	"github.com/tarstore/tarstore/hw"
)

var (
	// ErrBadController reports a controller or namespace the driver
	// cannot use: no NVM Command Set, no 4 KiB memory pages, a register
	// file too small for the doorbells, 64-byte SQ or 16-byte CQ entries
	// not supported, an inactive namespace, an LBA format with metadata
	// or a block size that is not a power of two from 512 B to 64 KiB,
	// a transfer limit below one block, or a geometry that changed
	// across a reconnect. Open fails with hw.ErrUnsupported wrapping it.
	ErrBadController = errors.New("unusable NVMe controller")

	// ErrReadyTimeout reports that CSTS.RDY did not follow CC.EN within
	// CAP.TO.
	ErrReadyTimeout = errors.New("controller did not change CSTS.RDY within CAP.TO")

	// ErrShutdownTimeout reports that CSTS.SHST did not reach 10b
	// (shutdown complete) within Options.ShutdownTimeout.
	ErrShutdownTimeout = errors.New("controller did not complete its shutdown in time")

	// ErrFatal reports CSTS.CFS: the controller hit a fatal error it
	// could not report in a completion. Only a reset recovers it.
	ErrFatal = errors.New("controller fatal status (CSTS.CFS)")

	// ErrGone reports a controller whose registers read all ones: it was
	// removed, or its function is no longer reachable.
	ErrGone = errors.New("controller is gone (registers read all ones)")

	// ErrTimeout reports a command the controller did not complete
	// within Options.Timeout. The session ends: every command in flight
	// fails and the memory the session used is never reused.
	ErrTimeout = errors.New("controller did not complete the command in time")

	// ErrCorrupt reports a completion that breaks the queue protocol (an
	// unknown command identifier, a submission queue head outside the
	// queue): the session ends.
	ErrCorrupt = errors.New("controller posted an invalid completion")

	// ErrNotNVMe reports a PCI function that is not an NVMe controller
	// (class 010802h).
	ErrNotNVMe = errors.New("not an NVMe controller")

	// ErrDriverBound reports a function a kernel driver holds: unbind it
	// (or keep the nvme module off it with driver_override) first.
	ErrDriverBound = errors.New("a kernel driver is bound to the controller")
)

// ControllerError reports a controller state that stopped bring-up,
// shutdown or a running session: CSTS is the last value read from the
// Controller Status property and State the step that read it. Err is
// ErrReadyTimeout, ErrShutdownTimeout, ErrFatal or ErrGone.
type ControllerError struct {
	State string
	CSTS  uint32
	Err   error
}

func (e *ControllerError) Error() string {
	return fmt.Sprintf("%v (CSTS %#x at %s)", e.Err, e.CSTS, e.State)
}

func (e *ControllerError) Unwrap() error { return e.Err }

// StatusError is a command the controller completed with a status other
// than Successful Completion (Base 2.0 §3.3.3.2.1). It is the Err of an
// *hw.Error whose Kind is hw.ErrUnsupported for Invalid Command Opcode and,
// on the optional commands (flush, write-zeroes, discard), Invalid Field in
// Command; hw.ErrIO for every other status.
type StatusError struct {
	Op   string // "read", "write", "flush", "write-zeroes", "discard", "identify controller", ...
	LBA  uint64 // the command's first logical block (0 when it has none)
	SCT  uint8  // Status Code Type
	SC   uint8  // Status Code
	More bool   // the Error Information log page has more
	DNR  bool   // Do Not Retry: the same command would fail again
}

func newStatusError(op string, lba uint64, s Status) *StatusError {
	return &StatusError{Op: op, LBA: lba, SCT: s.SCT(), SC: s.SC(), More: s.More(), DNR: s.DNR()}
}

func (e *StatusError) Error() string {
	s := "nvme " + e.Op
	switch e.Op {
	case "read", "write", "write-zeroes", "discard":
		s += fmt.Sprintf(" at lba %d", e.LBA)
	}
	s += fmt.Sprintf(": %s (SCT %#x SC %#02x)", statusName(e.SCT, e.SC), e.SCT, e.SC)
	if e.DNR {
		s += ", do not retry"
	}
	return s
}

// Status codes the driver tells apart (Figures 93-98).
const (
	sctGeneric = 0
	sctCommand = 1
	sctMedia   = 2
	sctPath    = 3

	scInvalidOpcode = 0x01
	scInvalidField  = 0x02
	scLBAOutOfRange = 0x80
)

// statusNames are the names of common status codes, by SCT<<8 | SC.
var statusNames = map[uint16]string{
	0x001: "Invalid Command Opcode",
	0x002: "Invalid Field in Command",
	0x003: "Command ID Conflict",
	0x004: "Data Transfer Error",
	0x005: "Commands Aborted due to Power Loss Notification",
	0x006: "Internal Error",
	0x007: "Command Abort Requested",
	0x008: "Command Aborted due to SQ Deletion",
	0x00b: "Invalid Namespace or Format",
	0x00c: "Command Sequence Error",
	0x013: "PRP Offset Invalid",
	0x015: "Operation Denied",
	0x020: "Namespace is Write Protected",
	0x021: "Command Interrupted",
	0x080: "LBA Out of Range",
	0x081: "Capacity Exceeded",
	0x082: "Namespace Not Ready",
	0x083: "Reservation Conflict",
	0x084: "Format In Progress",
	0x100: "Completion Queue Invalid",
	0x101: "Invalid Queue Identifier",
	0x102: "Invalid Queue Size",
	0x180: "Conflicting Attributes",
	0x182: "Attempted Write to Read Only Range",
	0x183: "Command Size Limit Exceeded",
	0x280: "Write Fault",
	0x281: "Unrecovered Read Error",
	0x282: "End-to-end Guard Check Error",
	0x283: "End-to-end Application Tag Check Error",
	0x284: "End-to-end Reference Tag Check Error",
	0x286: "Access Denied",
	0x287: "Deallocated or Unwritten Logical Block",
}

func statusName(sct, sc uint8) string {
	if n, ok := statusNames[uint16(sct)<<8|uint16(sc)]; ok {
		return n
	}
	switch sct {
	case sctGeneric:
		return "generic status"
	case sctCommand:
		return "command specific status"
	case sctMedia:
		return "media or data integrity error"
	case sctPath:
		return "path related status"
	case 7:
		return "vendor specific status"
	}
	return "reserved status code type"
}

// kind is the hw error kind of a failed command of op.
func (e *StatusError) kind() error {
	if e.SCT != sctGeneric {
		return hw.ErrIO
	}
	switch e.SC {
	case scInvalidOpcode:
		return hw.ErrUnsupported
	case scInvalidField:
		if e.Op == "flush" || e.Op == "write-zeroes" || e.Op == "discard" {
			// An optional command, or a field of one (Write Zeroes
			// of more blocks than the controller allows), that the
			// controller does not support: hw.WriteZeroes then
			// falls back to writes.
			return hw.ErrUnsupported
		}
	}
	return hw.ErrIO
}
