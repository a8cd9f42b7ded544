package nvme

import (
	"errors"
	"fmt"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// Queue identifiers: the admin queue pair is 0, the driver's one I/O queue
// pair is 1.
const (
	adminQueue = 0
	ioQueue    = 1
)

// errQueueFull reports a submission with no free entry in the queue.
var errQueueFull = errors.New("submission queue full")

// queuePair is a submission queue and its completion queue, both
// physically contiguous rings in DMA memory, with their doorbells (NVMe
// Base 2.0 §3.3.1). The driver owns the SQ tail and the CQ head and
// announces them through the doorbells; the controller reports its SQ head
// in each completion (SQHD) and marks new completion entries with a phase
// tag that flips on every pass through the CQ. A queue of n entries is
// full when tail+1 = head (mod n): it holds n-1 commands.
//
// A queuePair is not safe for concurrent use: the session serializes it
// (and so keeps the doorbell writes in ring order).
type queuePair struct {
	id     uint16
	r      mmio.Registers
	sqDB   int // SQ y Tail Doorbell
	cqDB   int // CQ y Head Doorbell
	sq     []byte
	cq     dma.Words
	size   int    // entries in each ring
	sqTail int    // next SQ entry the driver fills
	sqHead int    // SQ head as last reported by the controller (SQHD)
	cqHead int    // next CQ entry to look at
	phase  uint32 // phase tag of new CQ entries: 1 on the first pass
}

// newQueuePair returns queue pair id over sq (size×64 bytes) and cq
// (size×16 bytes, which it zeroes so no stale entry has the first pass's
// phase tag).
func newQueuePair(id uint16, r mmio.Registers, cap capabilities, sq, cq dma.Region, size int) (*queuePair, error) {
	if size < 2 || sq.Len() < size*commandSize || cq.Len() < size*completionSize {
		return nil, fmt.Errorf("nvme: queue %d of %d entries in %d and %d bytes", id, size, sq.Len(), cq.Len())
	}
	cq = cq.Slice(0, size*completionSize)
	clear(cq.B)
	w, err := cq.Words()
	if err != nil {
		return nil, err
	}
	return &queuePair{
		id: id, r: r, sqDB: cap.sqDoorbell(int(id)), cqDB: cap.cqDoorbell(int(id)),
		sq: sq.B[:size*commandSize], cq: w, size: size, phase: 1,
	}, nil
}

// full reports whether the SQ has no free entry.
func (q *queuePair) full() bool { return (q.sqTail+1)%q.size == q.sqHead }

// submit places c at the SQ tail and rings the tail doorbell; the
// register write orders the entry before it (package mmio). It fails with
// errQueueFull when the controller has not consumed enough entries.
func (q *queuePair) submit(c *command) error {
	if q.full() {
		return errQueueFull
	}
	copy(q.sq[q.sqTail*commandSize:], c[:])
	q.sqTail = (q.sqTail + 1) % q.size
	q.r.Write32(q.sqDB, uint32(q.sqTail))
	return nil
}

// poll hands fn each new completion, oldest first, and then writes the CQ
// head doorbell once, to release the entries it consumed. An entry is new
// when its phase tag is the current pass's; DW3, which holds the tag, is
// loaded first, the rest after it. It returns how many it consumed, and
// ErrCorrupt for an entry of another SQ or whose SQHD lies outside the
// entries the driver submitted, or fn's error; it stops at an error.
func (q *queuePair) poll(fn func(c *completion) error) (int, error) {
	n := 0
	for {
		off := q.cqHead * completionSize
		dw3 := q.cq.Load32(off + 12)
		if dw3>>16&1 != q.phase {
			break
		}
		var c completion
		for i := 0; i < 12; i += 4 {
			le.PutUint32(c[i:], q.cq.Load32(off+i))
		}
		le.PutUint32(c[12:], dw3)
		if err := q.check(&c); err != nil {
			return n, err
		}
		q.sqHead = int(c.sqhd())
		if q.cqHead++; q.cqHead == q.size {
			q.cqHead, q.phase = 0, q.phase^1
		}
		n++
		if err := fn(&c); err != nil {
			return n, err
		}
	}
	if n > 0 {
		q.r.Write32(q.cqDB, uint32(q.cqHead))
	}
	return n, nil
}

// check validates a completion's SQ identifier and head.
func (q *queuePair) check(c *completion) error {
	dist := func(a, b int) int { return (b - a + q.size) % q.size }
	head := int(c.sqhd())
	switch {
	case c.sqid() != q.id:
		return fmt.Errorf("%w: completion for SQ %d on CQ %d (CID %d)", ErrCorrupt, c.sqid(), q.id, c.cid())
	case head >= q.size || dist(q.sqHead, head) > dist(q.sqHead, q.sqTail):
		return fmt.Errorf("%w: SQ %d head %d outside [%d, %d] (CID %d)", ErrCorrupt, q.id, head, q.sqHead, q.sqTail, c.cid())
	}
	return nil
}
