package virtq

import (
	"errors"
	"fmt"
)

var (
	// ErrBadSize reports a queue size that is not a power of 2 in 1..32768.
	ErrBadSize = errors.New("virtq: bad queue size")
	// ErrBadArea reports a memory area that is too small or misaligned.
	ErrBadArea = errors.New("virtq: bad memory area")
	// ErrBadChain reports a buffer list the driver may not submit (§2.7.4,
	// §2.7.5.2): empty, device-readable after device-writable buffers,
	// longer than the queue, or more than 2^32 bytes in total.
	ErrBadChain = errors.New("virtq: bad buffer chain")
	// ErrFull reports that there are not enough free descriptors (or
	// indirect tables) for the request right now; completing requests frees
	// them.
	ErrFull = errors.New("virtq: queue full")
	// ErrCorrupt is matched by a *DeviceError: the device wrote a used ring
	// that violates the specification.
	ErrCorrupt = errors.New("virtq: corrupt used ring")
	// ErrNoIndirect reports UseIndirect without VIRTIO_F_INDIRECT_DESC.
	ErrNoIndirect = errors.New("virtq: indirect descriptors not negotiated")
)

// DeviceError describes a used-ring entry (or used.idx) that violates the
// specification. Once one is returned, the queue is broken: every later Add
// and Next returns the same error; the device must be reset.
type DeviceError struct {
	UsedIdx uint16 // used ring index of the offending entry (or used.idx)
	ID      uint32 // id the device wrote
	Len     uint32 // len the device wrote
	Reason  string
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("virtq: corrupt used ring at index %d (id %d, len %d): %s", e.UsedIdx, e.ID, e.Len, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *DeviceError) Is(target error) bool { return target == ErrCorrupt }
