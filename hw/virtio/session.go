package virtio

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/virtio/virtq"
)

// A session is one live connection to the device: the transport after
// bring-up, queue 0, and the request slots carved out of the transport's
// memory. It dies once — the device went away, a request timed out, the
// used ring broke, or Close — and is then never used again: its slots may
// still be written by a device that did not finish, so they are abandoned,
// and a reconnect starts a new session with fresh memory.
type session struct {
	t       Transport
	geo     *geometry
	timeout time.Duration

	polled bool // the transport has no interrupts (Polled)

	mu    sync.Mutex // the queue, slot.inflight, err
	q     *virtq.Queue
	err   error         // why the session died
	dead  chan struct{} // closed when err is set
	free  chan *slot    // slots not in use
	slots []*slot

	// mem is held for reading while a request touches the shared memory
	// and for writing by teardown, which then sets unmapped and closes
	// the transport (unmapping the memory).
	mem      sync.RWMutex
	unmapped bool
	torn     chan struct{} // closed once the transport is closed

	loopDone chan struct{}
}

// A slot is the shared memory of one request in flight: its header,
// status byte and discard segment (meta), and its data.
type slot struct {
	meta     dma.Region // header at 0, status at 16, segment at 32
	data     dma.Region
	done     chan error     // one value per completed request: nil, or why the session died
	inflight bool           // guarded by session.mu
	chain    []virtq.Buffer // the request's buffers, reused (the queue copies them)
}

const (
	metaSize      = 64
	metaStatusOff = 16
	metaSegOff    = 32
)

// startSession brings the device up over t (virtio 1.2 §3.1.1): it reads
// the features and config, acknowledges the features it uses, carves the
// rings and slots out of the transport's memory, sets up queue 0 and
// starts the device. On error it closes t.
func startSession(t Transport, opts *Options) (s *session, err error) {
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	offered := t.DeviceFeatures()
	if offered&FeatureVersion1 == 0 {
		return nil, fmt.Errorf("%w: features %#x lack VIRTIO_F_VERSION_1", ErrBadDevice, offered)
	}
	raw, err := t.ReadConfig(0, BlkConfigSize)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseBlkConfig(raw)
	if err != nil {
		return nil, err
	}
	features := offered & wantFeatures
	geo, err := newGeometry(features, cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := t.SetFeatures(features); err != nil {
		return nil, err
	}
	qmax, err := t.QueueMax(0)
	if err != nil {
		return nil, err
	}
	if qmax < 1 {
		return nil, fmt.Errorf("%w: no request queue", ErrBadDevice)
	}
	qsize := opts.queueSize()
	for qsize > qmax {
		qsize >>= 1
	}
	// Each request is a header, its data descriptors and a status byte;
	// with indirect descriptors it takes one entry of the ring.
	chain := 2 + geo.dataSegs
	indirect := features&FeatureIndirectDesc != 0 && chain <= qsize
	nslots := min(opts.slots(), qsize)
	if !indirect {
		nslots = min(nslots, qsize/chain)
	}
	if nslots < 1 {
		return nil, fmt.Errorf("%w: queue of %d cannot hold a request of %d descriptors", ErrBadDevice, qsize, chain)
	}
	layout, err := virtq.Sizes(qsize)
	if err != nil {
		return nil, err
	}
	// Rings, indirect tables and request metadata first, then the data
	// buffers, each page-aligned (back-ends and devices move aligned
	// memory fastest); the slack covers alignment and the chunk
	// boundaries of DMA memory.
	data := (geo.maxXfer + 4095) &^ 4095
	size := layout.Size + nslots*(metaSize+data)
	if indirect {
		size += nslots * virtq.DescSize * chain
	}
	mem, err := t.Memory(size + size/8 + 4*4096)
	if err != nil {
		return nil, err
	}
	carve := dma.NewCarver(mem)
	rings, err := carve.Take(layout.Size, 4096)
	if err != nil {
		return nil, err
	}
	words, err := rings.Words()
	if err != nil {
		return nil, err
	}
	desc, avail, used, err := layout.Areas(words, rings.Addr(0))
	if err != nil {
		return nil, err
	}
	q, err := virtq.New(qsize, desc, avail, used, virtq.Features{
		EventIdx: features&FeatureEventIdx != 0,
		Indirect: indirect,
	})
	if err != nil {
		return nil, err
	}
	if indirect {
		tables, err := carve.Take(nslots*virtq.DescSize*chain, 16)
		if err != nil {
			return nil, err
		}
		tw, err := tables.Words()
		if err != nil {
			return nil, err
		}
		if err := q.UseIndirect(virtq.Area{Mem: tw, Addr: tables.Addr(0)}, chain); err != nil {
			return nil, err
		}
	}
	p, _ := t.(interface{ Polled() bool })
	s = &session{
		t: t, geo: geo, timeout: opts.timeout(), q: q, polled: p != nil && p.Polled(),
		dead:     make(chan struct{}),
		torn:     make(chan struct{}),
		free:     make(chan *slot, nslots),
		loopDone: make(chan struct{}),
	}
	metas, err := carve.Take(nslots*metaSize, metaSize)
	if err != nil {
		return nil, err
	}
	for i := range nslots {
		sl := &slot{done: make(chan error, 1), meta: metas.Slice(i*metaSize, metaSize),
			chain: make([]virtq.Buffer, 0, chain)}
		if sl.data, err = carve.Take(geo.maxXfer, 4096); err != nil {
			return nil, err
		}
		s.slots = append(s.slots, sl)
		s.free <- sl
	}
	if err := t.SetupQueue(0, qsize, q.DescAddr(), q.AvailAddr(), q.UsedAddr()); err != nil {
		return nil, err
	}
	if err := t.Start(); err != nil {
		return nil, err
	}
	go s.loop()
	return s, nil
}

// loop delivers completions: it drains the used ring, then waits for the
// device's next notification, until the session dies.
func (s *session) loop() {
	defer close(s.loopDone)
	var cs []virtq.Completion
	for {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return
		}
		var err error
		cs, err = s.q.Poll(cs[:0])
		for _, c := range cs {
			s.deliver(c.Token.(*slot), nil)
		}
		s.mu.Unlock()
		if err != nil {
			s.fail(fmt.Errorf("%w: %w", ErrGone, err))
			return
		}
		if err := s.t.Wait(0); err != nil {
			s.fail(fmt.Errorf("%w: %w", ErrGone, err))
			return
		}
	}
}

// deliver completes sl's request with err. The caller holds mu.
func (s *session) deliver(sl *slot, err error) {
	if sl.inflight {
		sl.inflight = false
		sl.done <- err
	}
}

// fail kills the session with err (the first cause wins), fails every
// request in flight with it and closes the transport once no request
// touches the shared memory.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.dead)
	for _, sl := range s.slots {
		s.deliver(sl, err)
	}
	s.mu.Unlock()

	s.mem.Lock()
	s.unmapped = true
	s.mem.Unlock()
	s.t.Close()
	close(s.torn)
}

// failure returns why the session died.
func (s *session) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *session) alive() bool {
	select {
	case <-s.dead:
		return false
	default:
		return true
	}
}

// request describes one device request of a session.
type request struct {
	typ    uint32
	sector uint64 // in 512-byte units
	// n bytes of data: device-readable for OUT, DISCARD and
	// WRITE_ZEROES (the segment), device-writable for IN and GET_ID.
	n int
	// fill writes the request's data into the slot (OUT); drain reads
	// the device's data out of it (IN, GET_ID). Either may be nil.
	fill, drain func(data []byte)
	seg         *[3]uint64 // DISCARD / WRITE_ZEROES: sector, sectors, flags
}

// do runs r and returns nil, a *StatusError, or why the session died.
func (s *session) do(r *request) error {
	var sl *slot
	select {
	case sl = <-s.free:
	case <-s.dead:
		return s.failure()
	}
	if err := s.submit(sl, r); err != nil {
		return err
	}
	if s.polled && s.spin(sl) {
		err := <-sl.done
		if err != nil {
			return err
		}
		err = s.finish(sl, r)
		s.free <- sl
		return err
	}
	timer := time.NewTimer(s.timeout)
	var err error
	select {
	case err = <-sl.done:
	case <-timer.C:
		s.fail(fmt.Errorf("%w (%v): %s at sector %d", ErrTimeout, s.timeout, opName(r.typ), r.sector))
		err = <-sl.done
	}
	timer.Stop()
	if err != nil {
		return err // the session is dead: the slot is abandoned
	}
	err = s.finish(sl, r)
	s.free <- sl
	return err
}

// spin reaps the used ring from the requesting goroutine for a while,
// for a transport without interrupts, and reports whether sl's request
// completed meanwhile: the completion then needs no hand-off from the
// completion goroutine, which may run on another CPU.
func (s *session) spin(sl *slot) bool {
	for range spinReaps {
		if s.mu.TryLock() {
			if s.err == nil {
				for {
					c, ok, err := s.q.Next()
					if err != nil || !ok {
						break
					}
					s.deliver(c.Token.(*slot), nil)
				}
			}
			s.mu.Unlock()
		}
		if len(sl.done) > 0 {
			return true
		}
		runtime.Gosched()
	}
	return false
}

// spinReaps bounds spin.
const spinReaps = 256

// submit places r in sl and on the queue and notifies the device.
func (s *session) submit(sl *slot, r *request) error {
	s.mem.RLock()
	if s.unmapped {
		s.mem.RUnlock()
		return s.failure()
	}
	putHeader(sl.meta.B, r.typ, r.sector)
	sl.meta.B[metaStatusOff] = 0xff // a device that completes without writing it is caught
	bufs := append(sl.chain[:0], virtq.Buffer{Addr: sl.meta.Addr(0), Len: headerSize})
	switch {
	case r.seg != nil:
		putSegment(sl.meta.B[metaSegOff:], r.seg[0], uint32(r.seg[1]), uint32(r.seg[2]))
		bufs = append(bufs, virtq.Buffer{Addr: sl.meta.Addr(metaSegOff), Len: segmentSize})
	case r.n > 0:
		if r.fill != nil {
			r.fill(sl.data.B[:r.n])
		}
		write := r.typ == typeIn || r.typ == typeGetID
		for off := 0; off < r.n; off += s.geo.segMax {
			n := min(s.geo.segMax, r.n-off)
			bufs = append(bufs, virtq.Buffer{Addr: sl.data.Addr(off), Len: uint32(n), Write: write})
		}
	}
	bufs = append(bufs, virtq.Buffer{Addr: sl.meta.Addr(metaStatusOff), Len: 1, Write: true})
	sl.chain = bufs

	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		s.mem.RUnlock()
		return s.err
	}
	sl.inflight = true
	_, err := s.q.Add(bufs, sl)
	kick := err == nil && s.q.Kick()
	if err != nil {
		sl.inflight = false
	}
	s.mu.Unlock()
	s.mem.RUnlock()
	if err != nil {
		// The slots are sized so that the ring never runs out of
		// descriptors: this is a broken queue.
		s.fail(fmt.Errorf("%w: %w", ErrGone, err))
		return s.failure()
	}
	if kick {
		if err := s.t.Notify(0); err != nil {
			s.fail(fmt.Errorf("%w: %w", ErrGone, err))
		}
	}
	return nil
}

// finish reads the status and the data of sl's completed request.
func (s *session) finish(sl *slot, r *request) error {
	s.mem.RLock()
	defer s.mem.RUnlock()
	if s.unmapped {
		return s.failure()
	}
	if st := sl.meta.B[metaStatusOff]; st != statusOK {
		return &StatusError{Op: opName(r.typ), Sector: r.sector, Status: st}
	}
	if r.drain != nil {
		r.drain(sl.data.B[:r.n])
	}
	return nil
}

// close kills the session with cause and waits until its transport is
// closed and its completion loop has returned.
func (s *session) close(cause error) {
	s.fail(cause)
	<-s.torn
	<-s.loopDone
}
