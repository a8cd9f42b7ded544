package nvme

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// fakeClock is a clock whose time moves only when someone sleeps on it, so
// that waits of seconds (CAP.TO) take no real time and the controller's
// delays are exact.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	runtime.Gosched() // let the controller's goroutine run
}

// fakeController is an in-process NVMe controller: a register file
// (mmio.Fake) whose hooks model CC/CSTS transitions on the fake clock, and
// a goroutine that, when a doorbell rings, reads submission queue entries
// from the driver's DMA memory, executes them against a byte slice and
// posts completion entries with the phase tag. It checks the driver's side
// of the protocol as it goes (t.Errorf): queues programmed while enabled,
// doorbells of a disabled controller, transfers beyond MDTS, DMA outside
// the memory given out or into memory already released, memory released
// before the controller was reset.
//
// As QEMU's controller does, it keeps CSTS.CFS through a reset and clears
// it when an enable succeeds.
//
// Its state is guarded by mu, and the tests read it under mu: the race
// detector does not see the ordering the shared rings give (atomics on
// mmap'd memory are outside what it tracks), as in hw/virtio's fake.
type fakeController struct {
	t     testing.TB
	regs  *mmio.Fake
	clock *fakeClock

	// Configuration: set before the driver opens the controller.
	cap           capabilities
	readyDelay    time.Duration // from CC.EN=1 to CSTS.RDY=1
	resetDelay    time.Duration // from CC.EN=0 to CSTS.RDY=0
	shutdownDelay time.Duration // from CC.SHN=01b to CSTS.SHST=10b
	neverReady    bool          // CSTS.RDY never follows CC.EN=1
	neverReset    bool          // ... nor CC.EN=0
	neverShutdown bool          // CSTS.SHST never reaches 10b
	fatalOnEnable bool          // CSTS.CFS as soon as CC.EN=1
	mdts          uint8
	sqes          uint8 // Identify SQES; 0x66 when 0
	vwc           bool
	oncs          uint16
	nn            uint32
	nsattr        uint8
	formats       []lbaFormat
	format        int  // index in formats of the namespace's
	chunk         int  // DMA memory in chunks of this size at scattered addresses; 0: one region
	reorder       bool // complete I/O out of order
	// status, when set, gives the status field (Status) an I/O command
	// completes with; 0 is success. stall, when true, leaves it
	// uncompleted forever. adminStatus does for admin commands what
	// status does.
	status      func(c *command) Status
	stall       func(c *command) bool
	adminStatus func(c *command) Status
	adminStall  bool             // admin commands never complete
	mangle      func(e *fakeCQE) // changes an I/O completion before it is posted

	mu        sync.Mutex
	gone      bool      // every register reads all ones
	enabled   bool      // CC.EN as last written
	ready     bool      // CSTS.RDY
	cfs       bool      // CSTS.CFS
	shst      uint32    // CSTS.SHST
	changedAt time.Time // when CC.EN last changed
	shnAt     time.Time // when CC.SHN=01b was written
	sqs       map[uint16]*fakeSQ
	cqs       map[uint16]*fakeCQ
	regions   []*fakeRegion
	disk      []byte
	log       []string // register writes (not doorbells) and admin commands
	ios       []seenIO // I/O commands fetched
	posted    []uint16 // CIDs of I/O completions, in the order posted
	wraps     int      // I/O completion queue passes completed
	held      []fakeCQE
	flushes   int
	kick      chan struct{}
	done      chan struct{}
	stopped   chan struct{}
}

type fakeSQ struct {
	id         uint16
	base       uint64
	size       int
	head, tail int
	cqid       uint16
}

type fakeCQ struct {
	base    uint64
	size    int
	tail    int
	head    int // from the doorbell
	phase   uint32
	backlog []fakeCQE
}

type fakeCQE struct {
	sqid, cid uint16
	dw0       uint32
	status    Status
}

type fakeRegion struct {
	b        []byte
	base     uint64   // chunk == 0
	chunk    int      // else: chunk i at addrs[i]
	addrs    []uint64 //
	released bool
}

// seenIO is an I/O command as the controller fetched it, with the PRP
// list entries it followed.
type seenIO struct {
	op         uint8
	cid        uint16
	slba       uint64
	blocks     int
	prp1, prp2 uint64
	list       []uint64
}

const (
	fakeRegSize = 0x2000
	fakeVS      = 0x00010400 // 1.4.0
)

// qemuCap is QEMU 7.2's CAP: MQES 2047, CQR, TO 15 (7.5 s), DSTRD 0, CSS
// NVM, MPSMIN 0, MPSMAX 4.
const qemuCap = capabilities(2047 | 1<<16 | 15<<24 | 1<<37 | 4<<52)

// newFake returns a controller of blocks blocks of blockSize bytes, with
// QEMU's capabilities, MDTS 7, a volatile write cache, Write Zeroes and
// Dataset Management, disabled as after a power-on. Its goroutine and its
// memory go at the end of the test, after the Device is closed.
func newFake(t testing.TB, blockSize, blocks int) *fakeController {
	lbads := 0
	for 1<<lbads < blockSize {
		lbads++
	}
	f := &fakeController{
		t: t, regs: mmio.NewFake(fakeRegSize), clock: newFakeClock(),
		cap: qemuCap, mdts: 7, vwc: true, oncs: 1<<2 | 1<<3, nn: 1,
		formats: []lbaFormat{9 << 16, 12 << 16, lbaFormat(lbads) << 16}, format: 2,
		readyDelay: 3 * time.Millisecond, resetDelay: 2 * time.Millisecond, shutdownDelay: 4 * time.Millisecond,
		disk: make([]byte, blockSize*blocks),
		kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{}),
	}
	f.regs.OnRead = f.onRead
	f.regs.OnWrite = f.onWrite
	go f.run()
	t.Cleanup(f.stop)
	return f
}

// seabios leaves the controller as SeaBIOS does: enabled and ready, with
// an admin queue of its own.
func (f *fakeController) seabios() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enabled, f.ready = true, true
	f.regs.Poke(regCC, 4, ccConfig|ccEnable)
	f.regs.Poke(regAQA, 4, aqa(2, 2))
	f.regs.Poke(regASQ, 4, 0x7e000)
	f.regs.Poke(regACQ, 4, 0x7f000)
}

// setState sets CC.EN and CSTS.RDY as a controller caught in a transition
// (enabling: EN=1, RDY=0; disabling: EN=0, RDY=1).
func (f *fakeController) setState(en, rdy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enabled, f.ready, f.changedAt = en, rdy, f.clock.Now()
	cc := uint32(ccConfig)
	if en {
		cc |= ccEnable
	}
	f.regs.Poke(regCC, 4, cc)
}

func (f *fakeController) unplug() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gone = true
}

func (f *fakeController) setFatal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfs = true
}

func (f *fakeController) stop() {
	close(f.done)
	<-f.stopped
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.regions {
		unix.Munmap(r.b)
	}
	f.regions = nil
}

func (f *fakeController) logf(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

// update moves CSTS along the fake clock. The caller holds mu.
func (f *fakeController) update() {
	now := f.clock.Now()
	switch {
	case f.enabled && !f.ready && !f.neverReady && !f.fatalOnEnable && !now.Before(f.changedAt.Add(f.readyDelay)):
		f.ready, f.cfs = true, false // as QEMU's, a successful start clears CFS
	case !f.enabled && f.ready && !f.neverReset && !now.Before(f.changedAt.Add(f.resetDelay)):
		f.ready, f.shst = false, 0 // the reset completed
	}
	if f.shst == 1 && !f.neverShutdown && !now.Before(f.shnAt.Add(f.shutdownDelay)) {
		f.shst = 2
	}
}

func (f *fakeController) csts() uint32 {
	f.update()
	v := f.shst << 2
	if f.ready {
		v |= cstsRDY
	}
	if f.cfs {
		v |= cstsCFS
	}
	return v
}

func (f *fakeController) onRead(off, width int, v uint32) uint32 {
	f.mu.Lock()
	gone := f.gone
	f.mu.Unlock()
	if gone {
		return 1<<(8*width) - 1
	}
	switch off {
	case regCAP:
		return uint32(f.cap)
	case regCAP + 4:
		return uint32(f.cap >> 32)
	case regVS:
		return fakeVS
	case regCSTS:
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.csts()
	}
	return v
}

func (f *fakeController) onWrite(off, width int, v uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update()
	switch {
	case off == regCC:
		f.logf("CC=%#x", v)
		f.regs.Poke(off, width, v)
		f.writeCC(v)
	case off >= regAQA && off < regACQ+8:
		f.logf("%s=%#x", map[int]string{regAQA: "AQA", regASQ: "ASQ", regASQ + 4: "ASQ.hi", regACQ: "ACQ", regACQ + 4: "ACQ.hi"}[off], v)
		if f.enabled {
			f.t.Errorf("fake controller: register %#x written while CC.EN=1", off)
		}
		f.regs.Poke(off, width, v)
	case off >= regDoorbells:
		f.regs.Poke(off, width, v)
		f.doorbell(off, v)
	default:
		f.t.Errorf("fake controller: write of %#x to read-only register %#x", v, off)
	}
}

// writeCC models CC.EN and CC.SHN. The caller holds mu.
func (f *fakeController) writeCC(v uint32) {
	now := f.clock.Now()
	switch en := v&ccEnable != 0; {
	case en && !f.enabled:
		if f.ready {
			f.t.Errorf("fake controller: CC.EN set before CSTS.RDY went 0")
		}
		if v&^ccEnable != ccConfig {
			f.t.Errorf("fake controller: enabled with CC %#x, want %#x", v, ccConfig|ccEnable)
		}
		a := f.regs.Peek(regAQA, 4)
		asq := uint64(f.regs.Peek(regASQ, 4)) | uint64(f.regs.Peek(regASQ+4, 4))<<32
		acq := uint64(f.regs.Peek(regACQ, 4)) | uint64(f.regs.Peek(regACQ+4, 4))<<32
		if asq%pageSize != 0 || acq%pageSize != 0 {
			f.t.Errorf("fake controller: admin queues at %#x and %#x", asq, acq)
		}
		f.sqs = map[uint16]*fakeSQ{0: {id: 0, base: asq, size: int(a&0xfff) + 1}}
		f.cqs = map[uint16]*fakeCQ{0: {base: acq, size: int(a>>16&0xfff) + 1, phase: 1}}
		f.enabled, f.changedAt = true, now
		if f.fatalOnEnable {
			f.cfs = true
		}
	case !en && f.enabled:
		// A controller reset: the queues are gone at once, CSTS.RDY
		// follows after resetDelay.
		f.enabled, f.changedAt = false, now
		f.sqs, f.cqs, f.held = nil, nil, nil
	}
	if f.enabled && v&ccSHNMask == ccSHNNormal && f.shst == 0 {
		f.shst, f.shnAt = 1, now
	}
}

// doorbell records a tail or head the driver wrote. The caller holds mu.
func (f *fakeController) doorbell(off int, v uint32) {
	stride := 4 << f.cap.dstrd()
	if (off-regDoorbells)%stride != 0 {
		f.t.Errorf("fake controller: doorbell write at %#x, stride %d", off, stride)
		return
	}
	if !f.enabled || !f.ready {
		f.t.Errorf("fake controller: doorbell %#x written while not ready", off)
		return
	}
	i := (off - regDoorbells) / stride
	qid := uint16(i / 2)
	if i%2 == 0 {
		sq := f.sqs[qid]
		if sq == nil || int(v) >= sq.size {
			f.t.Errorf("fake controller: SQ %d tail %d", qid, v)
			return
		}
		sq.tail = int(v)
		select {
		case f.kick <- struct{}{}:
		default:
		}
		return
	}
	cq := f.cqs[qid]
	if cq == nil || int(v) >= cq.size {
		f.t.Errorf("fake controller: CQ %d head %d", qid, v)
		return
	}
	cq.head = int(v)
	backlog := cq.backlog
	cq.backlog = nil
	for _, e := range backlog {
		f.post(e)
	}
}

// run processes the queues whenever a doorbell rings, and posts held
// completions after a millisecond of quiet.
func (f *fakeController) run() {
	defer close(f.stopped)
	for {
		var quiet <-chan time.Time
		f.mu.Lock()
		if len(f.held) > 0 {
			quiet = time.After(time.Millisecond)
		}
		f.mu.Unlock()
		select {
		case <-f.kick:
			f.process()
		case <-quiet:
			f.mu.Lock()
			for _, e := range f.held {
				f.post(e)
			}
			f.held = nil
			f.mu.Unlock()
		case <-f.done:
			return
		}
	}
}

// process fetches and executes every submitted command.
func (f *fakeController) process() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update()
	if !f.enabled || !f.ready || f.cfs {
		return
	}
	ids := make([]uint16, 0, len(f.sqs))
	for id := range f.sqs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		sq := f.sqs[id]
		var batch []fakeCQE
		for sq.head != sq.tail {
			b := f.mem(sq.base+uint64(sq.head*commandSize), commandSize)
			sq.head = (sq.head + 1) % sq.size
			if b == nil {
				continue
			}
			var c command
			copy(c[:], b)
			e := fakeCQE{sqid: id, cid: c.cid()}
			var ok bool
			if id == adminQueue {
				e.dw0, e.status, ok = f.admin(&c)
			} else {
				e.status, ok = f.io(&c)
				if ok && f.mangle != nil {
					f.mangle(&e)
				}
			}
			if ok {
				batch = append(batch, e)
			}
		}
		switch {
		case id == adminQueue || !f.reorder || len(batch) == 0:
		case len(batch) == 1 && len(f.held) > 0:
			// A lone command overtakes the held one.
			batch, f.held = append(batch, f.held...), nil
		default:
			// The held completion goes after this batch's, and this
			// batch's last is held back.
			batch, f.held = append(batch[:len(batch)-1:len(batch)-1], f.held...), batch[len(batch)-1:]
		}
		for _, e := range batch {
			f.post(e)
		}
	}
}

// post writes a completion entry: DW0-2, then DW3 with the phase tag. The
// caller holds mu.
func (f *fakeController) post(e fakeCQE) {
	sq := f.sqs[e.sqid]
	if sq == nil {
		return // deleted by a reset
	}
	cq := f.cqs[sq.cqid]
	if (cq.tail+1)%cq.size == cq.head {
		cq.backlog = append(cq.backlog, e)
		return
	}
	b := f.mem(cq.base+uint64(cq.tail*completionSize), completionSize)
	if b == nil {
		return
	}
	w, err := dma.NewRegion(b, 0).Words()
	if err != nil {
		f.t.Fatal(err)
	}
	w.Write32(0, e.dw0)
	w.Write32(4, 0)
	w.Write32(8, uint32(sq.head)|uint32(e.sqid)<<16)
	w.Store32(12, uint32(e.cid)|(cq.phase|uint32(e.status)<<1)<<16)
	if cq.tail++; cq.tail == cq.size {
		cq.tail, cq.phase = 0, cq.phase^1
		if e.sqid != adminQueue {
			f.wraps++
		}
	}
	if e.sqid != adminQueue {
		f.posted = append(f.posted, e.cid)
	}
}

// Status fields the fake completes with.
const (
	stInvalidOpcode = Status(scInvalidOpcode)
	stInvalidField  = Status(scInvalidField)
	stDataTransfer  = Status(0x04)
	stInvalidNS     = Status(0x0b)
	stOutOfRange    = Status(scLBAOutOfRange)
	stCQInvalid     = Status(sctCommand << 8) // SC 00h
	stInvalidQID    = Status(sctCommand<<8 | 0x01)
	stInvalidQSize  = Status(sctCommand<<8 | 0x02)
)

// admin executes an admin command. The caller holds mu.
func (f *fakeController) admin(c *command) (dw0 uint32, st Status, complete bool) {
	f.logf("admin %#02x cdw10=%#x cdw11=%#x", c.opcode(), c.cdw(10), c.cdw(11))
	if f.adminStall {
		return 0, 0, false
	}
	if f.adminStatus != nil {
		if st := f.adminStatus(c); st != 0 {
			return 0, st, true
		}
	}
	qid, size := uint16(c.cdw(10)), int(c.cdw(10)>>16)+1
	switch c.opcode() {
	case opIdentify:
		var data []byte
		switch cns := c.cdw(10) & 0xff; {
		case cns == cnsController:
			data = f.identifyController()
		case cns == cnsNamespace && (c.nsid() == 0 || c.nsid() > f.nn):
			return 0, stInvalidNS, true
		case cns == cnsNamespace && c.nsid() == 1:
			data = f.identifyNamespace()
		case cns == cnsNamespace:
			data = make([]byte, 4096) // inactive
		default:
			return 0, stInvalidField, true
		}
		if !f.transfer(c, len(data), func(seg []byte, off int) { copy(seg, data[off:]) }, nil) {
			return 0, stDataTransfer, true
		}
	case opSetFeatures:
		if c.cdw(10)&0xff != fidNumQueues {
			return 0, stInvalidField, true
		}
		return c.cdw(11), 0, true
	case opCreateCQ:
		switch {
		case qid == 0 || f.cqs[qid] != nil:
			return 0, stInvalidQID, true
		case size < 2 || size > f.cap.mqes()+1:
			return 0, stInvalidQSize, true
		case c.cdw(11)&1 == 0 || c.cdw(11)&2 != 0 || c.prp1()%pageSize != 0:
			f.t.Errorf("fake controller: Create I/O CQ with CDW11 %#x at %#x: want contiguous, no interrupts, page-aligned", c.cdw(11), c.prp1())
			return 0, stInvalidField, true
		}
		f.cqs[qid] = &fakeCQ{base: c.prp1(), size: size, phase: 1}
	case opCreateSQ:
		switch cqid := uint16(c.cdw(11) >> 16); {
		case qid == 0 || f.sqs[qid] != nil:
			return 0, stInvalidQID, true
		case f.cqs[cqid] == nil || cqid == 0:
			return 0, stCQInvalid, true
		case size < 2 || size > f.cap.mqes()+1:
			return 0, stInvalidQSize, true
		case c.cdw(11)&1 == 0 || c.prp1()%pageSize != 0:
			f.t.Errorf("fake controller: Create I/O SQ with CDW11 %#x at %#x", c.cdw(11), c.prp1())
			return 0, stInvalidField, true
		default:
			f.sqs[qid] = &fakeSQ{id: qid, base: c.prp1(), size: size, cqid: cqid}
		}
	default:
		return 0, stInvalidOpcode, true
	}
	return 0, 0, true
}

func (f *fakeController) blockSize() int { return 1 << f.formats[f.format].lbads() }

// io executes an NVM command. The caller holds mu.
func (f *fakeController) io(c *command) (Status, bool) {
	slba, blocks := uint64(c.cdw(10))|uint64(c.cdw(11))<<32, int(c.cdw(12)&0xffff)+1
	seen := seenIO{op: c.opcode(), cid: c.cid(), slba: slba, blocks: blocks, prp1: c.prp1(), prp2: c.prp2()}
	defer func() { f.ios = append(f.ios, seen) }()
	if c.nsid() != 1 {
		return stInvalidNS, true
	}
	if f.stall != nil && f.stall(c) {
		return 0, false
	}
	if f.status != nil {
		if st := f.status(c); st != 0 {
			return st, true
		}
	}
	bs := f.blockSize()
	nblocks := uint64(len(f.disk) / bs)
	inRange := func(slba uint64, n uint64) bool { return slba < nblocks && n <= nblocks-slba }
	switch c.opcode() {
	case opRead, opWrite:
		n := blocks * bs
		if f.mdts > 0 && n > f.cap.minPageSize()<<f.mdts {
			f.t.Errorf("fake controller: %d-byte transfer beyond MDTS %d", n, f.mdts)
			return stInvalidField, true
		}
		if !inRange(slba, uint64(blocks)) {
			return stOutOfRange, true
		}
		at := int(slba) * bs
		var ok bool
		if c.opcode() == opRead {
			ok = f.transfer(c, n, func(seg []byte, off int) { copy(seg, f.disk[at+off:]) }, &seen.list)
		} else {
			ok = f.transfer(c, n, func(seg []byte, off int) { copy(f.disk[at+off:], seg) }, &seen.list)
		}
		if !ok {
			return stDataTransfer, true
		}
	case opFlush:
		f.flushes++
	case opWriteZeroes:
		if f.oncs&(1<<3) == 0 {
			return stInvalidOpcode, true
		}
		if !inRange(slba, uint64(blocks)) {
			return stOutOfRange, true
		}
		clear(f.disk[int(slba)*bs : (int(slba)+blocks)*bs])
	case opDSM:
		if f.oncs&(1<<2) == 0 {
			return stInvalidOpcode, true
		}
		nr := int(c.cdw(10)&0xff) + 1
		ranges := make([]byte, nr*dsmRangeSize)
		if !f.transfer(c, len(ranges), func(seg []byte, off int) { copy(ranges[off:], seg) }, &seen.list) {
			return stDataTransfer, true
		}
		for i := range nr {
			r := ranges[i*dsmRangeSize:]
			n, at := uint64(le.Uint32(r[4:])), le.Uint64(r[8:])
			if !inRange(at, n) {
				return stOutOfRange, true
			}
			if c.cdw(11)&(1<<2) != 0 {
				// Deallocated blocks read back as anything.
				for j := int(at) * bs; j < int(at+n)*bs; j++ {
					f.disk[j] = 0xdd
				}
			}
		}
	default:
		return stInvalidOpcode, true
	}
	return 0, true
}

// transfer walks the PRPs of c for n bytes (§4.1.1) and calls do on each
// piece of memory with its offset in the transfer; list, if not nil,
// receives the PRP list entries followed. The caller holds mu.
func (f *fakeController) transfer(c *command, n int, do func(seg []byte, off int), list *[]uint64) bool {
	prp1 := c.prp1()
	if prp1%4 != 0 {
		f.t.Errorf("fake controller: PRP1 %#x not dword aligned", prp1)
		return false
	}
	var pages []uint64
	first := min(n, pageSize-int(prp1%pageSize))
	pages = append(pages, prp1)
	rest := n - first
	switch {
	case rest == 0:
	case rest <= pageSize:
		pages = append(pages, c.prp2())
	default:
		at := c.prp2()
		for rest > 0 {
			if at%8 != 0 {
				f.t.Errorf("fake controller: PRP list entry at %#x", at)
				return false
			}
			b := f.mem(at, 8)
			if b == nil {
				return false
			}
			e := le.Uint64(b)
			if at%pageSize == pageSize-8 && rest > pageSize { // the last entry chains
				at = e
				continue
			}
			if list != nil {
				*list = append(*list, e)
			}
			pages = append(pages, e)
			rest -= min(rest, pageSize)
			at += 8
		}
	}
	off := 0
	for i, p := range pages {
		if i > 0 && p%pageSize != 0 {
			f.t.Errorf("fake controller: PRP entry %d is %#x, not a page", i, p)
			return false
		}
		k := min(n-off, pageSize-int(p%pageSize))
		seg := f.mem(p, k)
		if seg == nil {
			return false
		}
		do(seg, off)
		off += k
	}
	return true
}

// mem returns the n bytes of driver memory at device address addr, which
// must lie in one chunk of a region that was given out and not released.
// The caller holds mu.
func (f *fakeController) mem(addr uint64, n int) []byte {
	for _, r := range f.regions {
		var b []byte
		if r.chunk == 0 {
			if addr >= r.base && addr+uint64(n) <= r.base+uint64(len(r.b)) {
				b = r.b[addr-r.base:][:n]
			}
		} else {
			for i, a := range r.addrs {
				if addr >= a && addr+uint64(n) <= a+uint64(r.chunk) {
					b = r.b[i*r.chunk+int(addr-a):][:n]
				}
			}
		}
		if b != nil {
			if r.released {
				f.t.Errorf("fake controller: DMA to %#x+%d, which the driver released", addr, n)
				return nil
			}
			return b
		}
	}
	f.t.Errorf("fake controller: DMA to %#x+%d, outside the driver's memory", addr, n)
	return nil
}

// memory is the driver's MemorySource: zeroed anonymous memory, one region
// at its own base, or chunks at scattered addresses as huge pages are.
func (f *fakeController) memory(size int) (dma.Region, func() error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	unit := max(f.chunk, pageSize)
	n := (size + unit - 1) / unit * unit
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return dma.Region{}, nil, err
	}
	r := &fakeRegion{b: b, chunk: f.chunk, base: uint64(len(f.regions)+1) << 32}
	reg := dma.NewRegion(b, r.base)
	if f.chunk > 0 {
		for i := range n / f.chunk { // backwards, with a hole between chunks
			r.addrs = append(r.addrs, r.base+uint64(2*(n/f.chunk-i)*f.chunk))
		}
		if reg, err = dma.NewChunkedRegion(b, f.chunk, r.addrs); err != nil {
			return dma.Region{}, nil, err
		}
	}
	f.regions = append(f.regions, r)
	release := func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.update()
		if f.enabled || f.ready {
			f.t.Errorf("fake controller: memory released while CC.EN=%v CSTS.RDY=%v", f.enabled, f.ready)
		}
		if r.released {
			f.t.Errorf("fake controller: memory released twice")
		}
		r.released = true
		return nil
	}
	return reg, release, nil
}

func (f *fakeController) identifyController() []byte {
	id := make([]byte, 4096)
	pad := func(b []byte, s string) {
		fill(b, ' ')
		copy(b, s)
	}
	le.PutUint16(id[0:], 0x1b36)
	pad(id[4:24], "fake-serial")
	pad(id[24:64], "fake nvme")
	pad(id[64:72], "1.0")
	id[77] = f.mdts
	le.PutUint32(id[80:], fakeVS)
	id[512], id[513] = cmp.Or(f.sqes, 0x66), 0x44
	le.PutUint32(id[516:], f.nn)
	le.PutUint16(id[520:], f.oncs)
	if f.vwc {
		id[525] = 1
	}
	return id
}

func fill(b []byte, c byte) {
	for i := range b {
		b[i] = c
	}
}

func (f *fakeController) identifyNamespace() []byte {
	ns := make([]byte, 4096)
	blocks := uint64(len(f.disk) / f.blockSize())
	le.PutUint64(ns[0:], blocks)
	le.PutUint64(ns[8:], blocks)
	le.PutUint64(ns[16:], blocks)
	ns[25] = uint8(len(f.formats) - 1)
	ns[26] = uint8(f.format&0xf) | uint8(f.format>>4)<<5
	ns[99] = f.nsattr
	for i, lf := range f.formats {
		le.PutUint32(ns[128+4*i:], uint32(lf))
	}
	return ns
}

// controller returns the Controller seam over the fake.
func (f *fakeController) controller() Controller {
	return Controller{Name: "fake", Registers: f.regs, Memory: f.memory}
}

// Accessors for tests, under mu.

func (f *fakeController) diskAt(off, n int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.disk[off:off+n]...)
}

func (f *fakeController) setDisk(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disk = b
}

func (f *fakeController) snapshot() []byte { return f.diskAt(0, len(f.disk)) }

func (f *fakeController) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *fakeController) seen() []seenIO {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ios)
}

func (f *fakeController) counts() (wraps, flushes int, posted []uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wraps, f.flushes, slices.Clone(f.posted)
}

func (f *fakeController) releases() (released, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.regions {
		if r.released {
			released++
		}
	}
	return released, len(f.regions)
}

func (f *fakeController) cstsNow() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.csts()
}
