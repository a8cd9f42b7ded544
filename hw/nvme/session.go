package nvme

import (
	"fmt"
	"sort"
	"time"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
	"github.com/tarstore/tarstore/hw/internal/queue"
)

// A session is one initialization of the controller: the memory it was
// given (admin queue, I/O queue pair, request slots, one per tag of its
// queue.Queue) and the goroutine that polls the I/O completion queue. It
// dies once — a command timed out, the controller reported a fatal status
// or posted a broken completion, or Close — and is never used again: its
// memory may still be written by the controller, so it is released only
// after a later controller reset completes (Device.limbo), and a reconnect
// starts a new session with new memory.
type session struct {
	r       mmio.Registers
	geo     *geometry
	timeout time.Duration
	io      *queuePair // guarded by the lock tags holds around Submit's post and Reap
	tags    *queue.Queue[completion]
	slots   []*slot         // by tag, which is the command identifier
	pool    *dma.BufferPool // the Device's; nil: none
}

// A slot is the memory of one command in flight: a data buffer and a PRP
// list page. Its index is the command identifier (CID).
type slot struct {
	cid  uint16
	data dma.Region
	prp  dma.Region
}

// Sizes of the admin queue and of the session's memory.
const (
	adminEntries = 4 // commands go one at a time, during bring-up
	adminPoll    = 10 * time.Microsecond
)

// requesterReaps is how often the requesting goroutine reaps the I/O
// completion queue after it submits, before it leaves its completion to
// the poller (queue.Config.RequesterReaps); it does only when its command
// is alone in flight (queue.Config.Reapers 1; see the package doc).
const requesterReaps = 256

// geometry is what the driver derives from the controller and namespace
// data; the part same compares must not change across reconnects.
type geometry struct {
	sectorSize  int
	sectors     uint64
	readOnly    bool
	nsid        uint32
	maxXfer     int // data bytes per Read or Write command
	flush       bool
	writeZeroes bool
	deallocate  bool
	ident       Identity
}

func (g *geometry) same(o *geometry) bool {
	return g.sectorSize == o.sectorSize && g.sectors == o.sectors && g.readOnly == o.readOnly
}

// layout sizes a session's memory: slots request slots, queue pairs of
// entries entries (one more than the slots, so the I/O SQ never fills),
// data bytes per slot. Every piece is a power of two of at least a page,
// carved largest first, so none straddles a chunk of DMA memory (2 MiB
// huge pages) and none is wasted.
type layout struct {
	slots, entries, data, size int
}

func newLayout(cap capabilities, opts *Options) layout {
	l := layout{slots: min(opts.slots(), cap.mqes())}
	l.entries = l.slots + 1
	l.data = floorPow2(min(max(opts.maxTransfer(), pageSize), maxSlotData))
	l.size = l.slots*(l.data+pageSize) + // data and PRP list of each slot
		ceilPow2(max(l.entries*commandSize, pageSize)) + ceilPow2(max(l.entries*completionSize, pageSize)) +
		3*pageSize + // admin SQ, admin CQ, identify buffer
		l.data // slack for a memory source whose chunks are not aligned
	return l
}

// piece is a part of a session's memory to carve: n bytes, into dst.
type piece struct {
	n   int
	dst *dma.Region
}

func floorPow2(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}

func ceilPow2(n int) int {
	p := 1
	for p < n {
		p *= 2
	}
	return p
}

// startSession brings the controller up with fresh memory (NVMe Base 2.0
// §3.5.1): reset, admin queue, enable, Identify Controller and Namespace,
// Number of Queues, Create I/O Completion Queue and Create I/O Submission
// Queue; then it starts the poller. The reset releases the memory of
// earlier sessions. From the moment the controller is given the new
// memory (AQA/ASQ/ACQ), that memory is in d.limbo: it is released only
// after a later reset. The caller runs inside d.sess's reconnect (or owns
// d).
func (d *Device) startSession() (*session, error) {
	b := newBringup(d.ctrl.Registers, d.opts.shutdownTimeout())
	err := b.run(d.clk)
	if b.capRead {
		d.b = b
	}
	if err != nil {
		return nil, err
	}
	// The controller is reset: nothing of earlier sessions is in use.
	if err := d.releaseLimbo(); err != nil {
		return nil, err
	}
	lay := newLayout(b.cap, &d.opts)
	mem, release, err := d.ctrl.Memory(lay.size)
	if err != nil {
		return nil, err
	}
	// s is the session the closures below refer to, never reset to nil
	// by a return.
	s := &session{r: d.ctrl.Registers, timeout: d.opts.timeout()}
	handedOver := false
	defer func() {
		if !handedOver && release != nil {
			release()
		}
	}()
	if s.tags, err = queue.New(queue.Config[completion]{
		Tags: lay.slots, Timeout: s.timeout, Reap: s.reap,
		Check:          func() error { return checkStatus(s.r, "live") },
		RequesterReaps: requesterReaps, Reapers: 1,
	}); err != nil {
		return nil, err
	}
	if mem.Len() < lay.size {
		return nil, fmt.Errorf("nvme: memory source gave %d bytes for %d", mem.Len(), lay.size)
	}

	var asq, acq, idBuf, iosq, iocq dma.Region
	s.slots = make([]*slot, lay.slots)
	pieces := []piece{
		{ceilPow2(max(lay.entries*commandSize, pageSize)), &iosq},
		{ceilPow2(max(lay.entries*completionSize, pageSize)), &iocq},
		{pageSize, &asq}, {pageSize, &acq}, {pageSize, &idBuf},
	}
	for i := range s.slots {
		sl := &slot{cid: uint16(i)}
		s.slots[i] = sl
		pieces = append(pieces, piece{lay.data, &sl.data}, piece{pageSize, &sl.prp})
	}
	sort.SliceStable(pieces, func(i, j int) bool { return pieces[i].n > pieces[j].n })
	carve := dma.NewCarver(mem)
	for _, p := range pieces {
		if *p.dst, err = carve.Take(p.n, pageSize); err != nil {
			return nil, err
		}
	}
	admin, err := newQueuePair(adminQueue, s.r, b.cap, asq, acq, adminEntries)
	if err != nil {
		return nil, err
	}
	if s.io, err = newQueuePair(ioQueue, s.r, b.cap, iosq, iocq, lay.entries); err != nil {
		return nil, err
	}

	// From here the controller may touch the memory until a reset.
	handedOver = true
	d.limbo = append(d.limbo, func() error {
		s.tags.Unmap()
		if release != nil {
			return release()
		}
		return nil
	})
	b.configure(asq.Addr(0), acq.Addr(0), adminEntries, adminEntries)
	if err := b.run(d.clk); err != nil {
		return nil, err
	}

	ac := &adminClient{q: admin, r: s.r, buf: idBuf, clk: d.clk, timeout: s.timeout}
	var id identifyController
	if _, err := ac.do("identify controller", identifyCmd(cnsController, 0), id[:]); err != nil {
		return nil, err
	}
	nsid := d.opts.namespace()
	if err := checkController(&id, nsid); err != nil {
		return nil, err
	}
	var ns identifyNamespace
	if _, err := ac.do("identify namespace", identifyCmd(cnsNamespace, nsid), ns[:]); err != nil {
		return nil, err
	}
	if s.geo, err = newGeometry(b, &id, &ns, nsid, lay, &d.opts); err != nil {
		return nil, err
	}
	if _, err := ac.do("set number of queues", setQueuesCmd(1), nil); err != nil {
		return nil, err
	}
	if _, err := ac.do("create I/O completion queue", createCQCmd(ioQueue, lay.entries, iocq.Addr(0)), nil); err != nil {
		return nil, err
	}
	if _, err := ac.do("create I/O submission queue", createSQCmd(ioQueue, lay.entries, ioQueue, iosq.Addr(0)), nil); err != nil {
		return nil, err
	}
	s.tags.Start()
	return s, nil
}

// checkController checks the Identify Controller data: queue entry sizes
// the driver's, and a namespace nsid.
func checkController(id *identifyController, nsid uint32) error {
	if id.sqes()&0xf > ccIOSQESNeeded || id.sqes()>>4 < ccIOSQESNeeded || id.cqes()&0xf > ccIOCQESNeeded || id.cqes()>>4 < ccIOCQESNeeded {
		return fmt.Errorf("%w: SQES %#x, CQES %#x do not allow 64-byte SQ and 16-byte CQ entries", ErrBadController, id.sqes(), id.cqes())
	}
	if nsid == 0 || nsid > id.nn() {
		return fmt.Errorf("%w: namespace %d beyond the controller's %d", ErrBadController, nsid, id.nn())
	}
	return nil
}

// newGeometry checks the Identify Namespace data and derives the geometry.
func newGeometry(b *bringup, id *identifyController, ns *identifyNamespace, nsid uint32, lay layout, opts *Options) (*geometry, error) {
	bad := func(format string, args ...any) (*geometry, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadController}, args...)...)
	}
	if ns.nsze() == 0 {
		return bad("namespace %d is not active", nsid)
	}
	fi := ns.formatIndex()
	if fi > ns.nlbaf() || fi >= 64 {
		return bad("namespace %d uses LBA format %d of %d", nsid, fi, ns.nlbaf()+1)
	}
	f := ns.lbaf(fi)
	if f.ms() != 0 {
		return bad("namespace %d has %d bytes of metadata per block", nsid, f.ms())
	}
	if f.lbads() < 9 || f.lbads() > 16 {
		return bad("namespace %d has blocks of 2^%d bytes", nsid, f.lbads())
	}
	g := &geometry{
		sectorSize:  1 << f.lbads(),
		sectors:     ns.nsze(),
		readOnly:    opts.ReadOnly || ns.nsattr()&1 != 0,
		nsid:        nsid,
		flush:       id.vwc(),
		writeZeroes: id.writeZeroes(),
		deallocate:  id.deallocate(),
	}
	xfer := lay.data
	if m := id.mdts(); m > 0 && m < 20 {
		xfer = min(xfer, b.cap.minPageSize()<<m)
	}
	g.maxXfer = xfer / g.sectorSize * g.sectorSize
	if g.maxXfer == 0 {
		return bad("transfers of at most %d bytes (the slot size, or MDTS %d) hold no %d-byte block", xfer, id.mdts(), g.sectorSize)
	}
	g.ident = Identity{
		VendorID: id.vid(), Serial: id.sn(), Model: id.mn(), Firmware: id.fr(),
		Version: b.vs, Namespace: nsid, LBAFormat: fi,
		VolatileWriteCache: g.flush, WriteZeroes: g.writeZeroes, Deallocate: g.deallocate,
		MaxTransfer: g.maxXfer, QueueEntries: lay.entries,
	}
	return g, nil
}

// adminClient runs admin commands one at a time during bring-up, polling
// the admin completion queue itself.
type adminClient struct {
	q       *queuePair
	r       mmio.Registers
	buf     dma.Region // one page for the data of Identify
	clk     clock
	timeout time.Duration
	cid     uint16
}

// do runs c and returns its completion; data, if not nil, receives the
// page the controller wrote into buf.
func (a *adminClient) do(op string, c *command, data []byte) (completion, error) {
	a.cid++
	c.setCID(a.cid)
	if data != nil {
		clear(a.buf.B)
		c.setPRP(a.buf.Addr(0), 0)
	}
	if err := a.q.submit(c); err != nil {
		return completion{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, op, err)
	}
	start := a.clk.Now()
	for polls := 1; ; polls++ {
		var got *completion
		if _, err := a.q.poll(func(c *completion) error {
			if c.cid() != a.cid {
				return fmt.Errorf("%w: %s: completion of CID %d, expected %d", ErrCorrupt, op, c.cid(), a.cid)
			}
			cc := *c
			got = &cc
			return nil
		}); err != nil {
			return completion{}, err
		}
		if got != nil {
			if st := got.status(); !st.OK() {
				return *got, newStatusError(op, 0, st)
			}
			copy(data, a.buf.B)
			return *got, nil
		}
		if polls%queue.CheckPolls == 0 {
			if err := checkStatus(a.r, op); err != nil {
				return completion{}, err
			}
		}
		if a.clk.Now().Sub(start) >= a.timeout {
			return completion{}, fmt.Errorf("%w (%v): %s", ErrTimeout, a.timeout, op)
		}
		a.clk.Sleep(adminPoll)
	}
}

// checkStatus reads CSTS of a running controller: a fatal status, or a
// controller gone, is a *ControllerError.
func checkStatus(r mmio.Registers, state string) error {
	switch csts := r.Read32(regCSTS); {
	case csts == cstsGone:
		return &ControllerError{State: state, CSTS: csts, Err: ErrGone}
	case csts&cstsCFS != 0:
		return &ControllerError{State: state, CSTS: csts, Err: ErrFatal}
	}
	return nil
}

// reap hands each new completion of the I/O queue to the command its
// CID names (queue.Config.Reap).
func (s *session) reap(complete func(tag int, c completion) error) (int, error) {
	return s.io.poll(func(c *completion) error {
		if err := complete(int(c.cid()), *c); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil
	})
}

// Alive, Err and Close make a session a queue.Session.

func (s *session) Alive() bool { return s.tags.Alive() }

// Err returns why the session died.
func (s *session) Err() error { return s.tags.Err() }

// Close kills the session with cause and waits for the poller to stop,
// after which nothing of the session touches the registers.
func (s *session) Close(cause error) { s.tags.Close(cause) }

// request is one I/O command of a session.
type request struct {
	op    string   // for errors: "read", "write", ...
	lba   uint64   // first block, for errors
	cmd   *command // CID and PRPs are filled in by submit
	n     int      // bytes of the slot's data the command transfers
	fill  func(data []byte)
	drain func(data []byte)
	// direct, when set, holds the data instead of the slot: n bytes of
	// a pool buffer (inPlace).
	direct *dma.Region
}

// do runs r and returns nil, a *StatusError, or why the session died.
func (s *session) do(r *request) error {
	tag, err := s.tags.Acquire()
	if err != nil {
		return err
	}
	sl := s.slots[tag]
	if err := s.submit(sl, r); err != nil {
		return err // the session is dead: the slot is abandoned
	}
	cqe, err := s.tags.Wait(tag, func() error {
		return fmt.Errorf("%w (%v): %s at lba %d", ErrTimeout, s.timeout, r.op, r.lba)
	})
	if err != nil {
		return err // the session is dead: the slot is abandoned
	}
	err = s.finish(sl, r, &cqe)
	s.tags.Release(tag)
	return err
}

// submit fills sl's memory for r and places r's command on the I/O queue.
func (s *session) submit(sl *slot, r *request) error {
	return s.tags.Submit(int(sl.cid), func() {
		r.cmd.setCID(sl.cid)
		switch {
		case r.direct != nil:
			r.cmd.setPRP(prps(*r.direct, sl.prp, r.n))
		case r.n > 0:
			if r.fill != nil {
				r.fill(sl.data.B[:r.n])
			}
			r.cmd.setPRP(prps(sl.data, sl.prp, r.n))
		}
	}, func() error {
		if err := s.io.submit(r.cmd); err != nil {
			// There are fewer slots than queue entries, and every
			// completion reports how far the controller has read:
			// a full queue means a controller that misreports its
			// head.
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil
	})
}

// inPlace points r.direct at its data — r.n bytes of the concatenation of
// bufs from off — when they are one run of a pool buffer that starts on a
// page (PRP entries after the first must be whole pages); otherwise it
// reports false and the command bounces through its slot.
func (s *session) inPlace(r *request, bufs [][]byte, off int) bool {
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		if len(b)-off < r.n {
			return false
		}
		reg, ok := s.pool.Slice(b[off : off+r.n])
		if !ok || reg.Addr(0)%pageSize != 0 {
			return false
		}
		r.direct = &reg
		return true
	}
	return false
}

// finish reads the status cqe and the data of sl's completed command.
func (s *session) finish(sl *slot, r *request, cqe *completion) error {
	if st := cqe.status(); !st.OK() {
		return newStatusError(r.op, r.lba, st)
	}
	if r.drain == nil {
		return nil
	}
	return s.tags.Access(func() error {
		r.drain(sl.data.B[:r.n])
		return nil
	})
}
