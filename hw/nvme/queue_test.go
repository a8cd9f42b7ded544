package nvme

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// ringTest is a queue pair of 4 entries whose controller side the test
// plays by hand: it reads the driver's SQ and doorbells and writes CQ
// entries.
type ringTest struct {
	t     *testing.T
	regs  *mmio.Fake
	q     *queuePair
	sq    []byte
	cq    dma.Words
	tail  int    // controller's CQ tail
	phase uint32 // controller's phase tag
}

func newRingTest(t *testing.T) *ringTest {
	b, err := unix.Mmap(-1, 0, 2*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	r := dma.NewRegion(b, 0x10000)
	sq, cq := r.Slice(0, pageSize), r.Slice(pageSize, pageSize)
	le.PutUint32(cq.B[12:], 1<<16) // a stale entry of the first pass's phase: zeroed by newQueuePair
	regs := mmio.NewFake(fakeRegSize)
	q, err := newQueuePair(ioQueue, regs, qemuCap, sq, cq, 4)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cq.Words()
	if err != nil {
		t.Fatal(err)
	}
	return &ringTest{t: t, regs: regs, q: q, sq: sq.B, cq: w, phase: 1}
}

// post writes a completion of cid with SQ head sqhd, as a controller does:
// DW3 with the phase tag last.
func (r *ringTest) post(cid uint16, sqhd int) {
	off := r.tail * completionSize
	r.cq.Write32(off+8, uint32(sqhd)|ioQueue<<16)
	r.cq.Store32(off+12, uint32(cid)|r.phase<<16)
	if r.tail++; r.tail == 4 {
		r.tail, r.phase = 0, r.phase^1
	}
}

func (r *ringTest) poll() []uint16 {
	r.t.Helper()
	var got []uint16
	if _, err := r.q.poll(func(c *completion) error {
		got = append(got, c.cid())
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
	return got
}

func (r *ringTest) submit(cid uint16) error {
	c := flushCmd(1)
	c.setCID(cid)
	return r.q.submit(c)
}

func (r *ringTest) doorbells() (sqTail, cqHead uint32) {
	return r.regs.Peek(qemuCap.sqDoorbell(ioQueue), 4), r.regs.Peek(qemuCap.cqDoorbell(ioQueue), 4)
}

// TestQueueFlowControl: a queue of 4 entries holds 3 commands; the SQ
// head the completions report frees entries.
func TestQueueFlowControl(t *testing.T) {
	r := newRingTest(t)
	if got := r.poll(); got != nil {
		t.Fatalf("an empty CQ (whatever memory held before) gave %v", got)
	}
	for cid := range uint16(3) {
		if err := r.submit(cid); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.submit(3); !errors.Is(err, errQueueFull) {
		t.Fatalf("fourth command in a queue of 4: %v", err)
	}
	if tail, _ := r.doorbells(); tail != 3 {
		t.Errorf("SQ tail doorbell %d", tail)
	}
	for i := range 3 {
		var c command
		copy(c[:], r.sq[i*commandSize:])
		if c.cid() != uint16(i) || c.opcode() != opFlush {
			t.Errorf("SQ entry %d: % x", i, c[:16])
		}
	}
	// The controller fetched one command and completed it: one entry free.
	r.post(0, 1)
	if got := r.poll(); !slices.Equal(got, []uint16{0}) {
		t.Fatalf("completions %v", got)
	}
	if _, head := r.doorbells(); head != 1 {
		t.Errorf("CQ head doorbell %d", head)
	}
	if err := r.submit(3); err != nil {
		t.Fatalf("after SQHD 1: %v", err)
	}
	if err := r.submit(4); !errors.Is(err, errQueueFull) {
		t.Fatalf("queue full again: %v", err)
	}
}

// TestQueuePhase: completions are taken by their phase tag, pass after
// pass; entries of the previous pass are not taken again, and completions
// may come in any order of CIDs.
func TestQueuePhase(t *testing.T) {
	r := newRingTest(t)
	next := uint16(0)
	for pass := range 5 {
		for range 3 {
			if err := r.submit(next); err != nil {
				t.Fatal(err)
			}
			next++
		}
		// Out of order: the last first.
		sqhd := int(r.q.sqTail)
		r.post(next-1, sqhd)
		r.post(next-3, sqhd)
		if got := r.poll(); !slices.Equal(got, []uint16{next - 1, next - 3}) {
			t.Fatalf("pass %d: completions %v", pass, got)
		}
		if got := r.poll(); got != nil {
			t.Fatalf("pass %d: stale entries taken again: %v", pass, got)
		}
		r.post(next-2, sqhd)
		if got := r.poll(); !slices.Equal(got, []uint16{next - 2}) {
			t.Fatalf("pass %d: completion %v", pass, got)
		}
	}
	if r.q.phase == 1 && r.q.cqHead == 0 {
		t.Error("the phase never flipped")
	}
	if _, head := r.doorbells(); int(head) != r.q.cqHead {
		t.Errorf("CQ head doorbell %d, head %d", head, r.q.cqHead)
	}
}

func TestQueueRejectsBadCompletions(t *testing.T) {
	for _, c := range []struct {
		name string
		post func(r *ringTest)
	}{
		{"SQ head beyond the tail", func(r *ringTest) { r.post(0, 3) }},
		{"SQ head outside the queue", func(r *ringTest) { r.post(0, 9) }},
		{"another SQ", func(r *ringTest) {
			r.cq.Write32(8, 1|7<<16)
			r.cq.Store32(12, 1<<16)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRingTest(t)
			if err := r.submit(0); err != nil {
				t.Fatal(err)
			}
			c.post(r)
			if _, err := r.q.poll(func(*completion) error { return nil }); !errors.Is(err, ErrCorrupt) {
				t.Errorf("poll: %v, want ErrCorrupt", err)
			}
		})
	}
}
