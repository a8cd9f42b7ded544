package virtio

import (
	"fmt"
	"time"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/queue"
	"github.com/tarstore/tarstore/hw/virtio/virtq"
)

// A session is one live connection to the device: the transport after
// bring-up, queue 0, and the request slots carved out of the transport's
// memory, one per tag of its queue.Queue. It dies once — the device went
// away, a request timed out, the used ring broke, or Close — and is then
// never used again: its slots may still be written by a device that did
// not finish, so they are abandoned, and a reconnect starts a new session
// with fresh memory. Its death closes the transport, which unmaps the
// memory, after the queue's Unmap.
type session struct {
	t       Transport
	geo     *geometry
	timeout time.Duration
	tags    *queue.Queue[struct{}]
	slots   []*slot     // by tag
	pool    *bufferPool // the Device's, shared with the device in this session; nil: none
	// closeErr is what closing t returned when the session died (set by
	// Config.Died, read after Close): an error means the device may not
	// have stopped (a reset that did not complete), so it may still reach
	// the pool.
	closeErr error

	// Guarded by the lock tags holds around Submit's post and Reap.
	q      *virtq.Queue
	reaped []virtq.Completion
}

// A slot is the shared memory of one request in flight: its header,
// status byte and discard segment (meta), and its data.
type slot struct {
	tag   int
	meta  dma.Region // header at 0, status at 16, segment at 32
	data  dma.Region
	chain []virtq.Buffer // the request's buffers, reused (the queue copies them)
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
func startSession(t Transport, opts *Options, pool *bufferPool) (s *session, err error) {
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
	pt, _ := t.(PoolTransport)
	if pool != nil && pt != nil {
		if err := pt.SharePool(pool.mem); err != nil {
			return nil, err
		}
	} else {
		pool = nil // requests bounce
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
	s = &session{t: t, geo: geo, q: q, timeout: opts.timeout(), pool: pool}
	qc := queue.Config[struct{}]{
		Tags: nslots, Timeout: s.timeout, Reap: s.reap,
		Wait: func() error {
			if err := t.Wait(0); err != nil {
				return fmt.Errorf("%w: %w", ErrGone, err)
			}
			return nil
		},
		Died: func(error) {
			s.tags.Unmap()
			s.closeErr = t.Close()
		},
	}
	if p != nil && p.Polled() {
		qc.RequesterReaps = requesterReaps
	}
	if s.tags, err = queue.New(qc); err != nil {
		return nil, err
	}
	metas, err := carve.Take(nslots*metaSize, metaSize)
	if err != nil {
		return nil, err
	}
	for i := range nslots {
		sl := &slot{tag: i, meta: metas.Slice(i*metaSize, metaSize), chain: make([]virtq.Buffer, 0, chain)}
		if sl.data, err = carve.Take(geo.maxXfer, 4096); err != nil {
			return nil, err
		}
		s.slots = append(s.slots, sl)
	}
	if err := t.SetupQueue(0, qsize, q.DescAddr(), q.AvailAddr(), q.UsedAddr()); err != nil {
		return nil, err
	}
	if err := t.Start(); err != nil {
		return nil, err
	}
	s.tags.Start()
	return s, nil
}

// requesterReaps is how often the requesting goroutine reaps the used
// ring after it submits, on a transport without interrupts.
const requesterReaps = 256

// reap drains the used ring, handing each completion to its request's
// waiter (queue.Config.Reap).
func (s *session) reap(complete func(tag int, _ struct{}) error) (int, error) {
	cs, err := s.q.Poll(s.reaped[:0])
	s.reaped = cs
	for _, c := range cs {
		if cerr := complete(c.Token.(*slot).tag, struct{}{}); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return len(cs), fmt.Errorf("%w: %w", ErrGone, err)
	}
	return len(cs), nil
}

// Alive, Err and Close make a session a queue.Session.

func (s *session) Alive() bool { return s.tags.Alive() }

// Err returns why the session died.
func (s *session) Err() error { return s.tags.Err() }

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
	// direct, instead, describes data in pool buffers (inPlace).
	direct []virtq.Buffer
	seg    *[3]uint64 // DISCARD / WRITE_ZEROES: sector, sectors, flags
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
	if _, err := s.tags.Wait(tag, func() error {
		return fmt.Errorf("%w (%v): %s at sector %d", ErrTimeout, s.timeout, opName(r.typ), r.sector)
	}); err != nil {
		return err // the session is dead: the slot is abandoned
	}
	err = s.finish(sl, r)
	s.tags.Release(tag)
	return err
}

// submit places r in sl and on the queue and notifies the device.
func (s *session) submit(sl *slot, r *request) error {
	kick := false
	err := s.tags.Submit(sl.tag, func() { s.prepare(sl, r) }, func() error {
		if _, err := s.q.Add(sl.chain, sl); err != nil {
			// The slots are sized so that the ring never runs
			// out of descriptors: this is a broken queue.
			return fmt.Errorf("%w: %w", ErrGone, err)
		}
		kick = s.q.Kick()
		return nil
	})
	if err != nil {
		return err
	}
	if kick {
		if err := s.t.Notify(0); err != nil {
			s.tags.Fail(fmt.Errorf("%w: %w", ErrGone, err))
		}
	}
	return nil
}

// prepare writes r's header and data into sl and describes them in
// sl.chain.
func (s *session) prepare(sl *slot, r *request) {
	putHeader(sl.meta.B, r.typ, r.sector)
	sl.meta.B[metaStatusOff] = 0xff // a device that completes without writing it is caught
	bufs := append(sl.chain[:0], virtq.Buffer{Addr: sl.meta.Addr(0), Len: headerSize})
	switch {
	case r.seg != nil:
		putSegment(sl.meta.B[metaSegOff:], r.seg[0], uint32(r.seg[1]), uint32(r.seg[2]))
		bufs = append(bufs, virtq.Buffer{Addr: sl.meta.Addr(metaSegOff), Len: segmentSize})
	case r.direct != nil:
		bufs = append(bufs, r.direct...)
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
	sl.chain = append(bufs, virtq.Buffer{Addr: sl.meta.Addr(metaStatusOff), Len: 1, Write: true})
}

// inPlace describes r's data — r.n bytes of the concatenation of bufs
// from off — in r.direct by the device addresses of the pool buffers it
// lies in, when every byte lies in one and the pieces fit the request's
// data descriptors (segMax bytes each, dataSegs of them); otherwise it
// reports false and the request bounces through its slot.
func (s *session) inPlace(r *request, bufs [][]byte, off int) bool {
	descs := make([]virtq.Buffer, 0, s.geo.dataSegs)
	write := r.typ == typeIn
	rest := r.n
	for _, b := range bufs {
		if rest == 0 {
			break
		}
		if off >= len(b) {
			off -= len(b)
			continue
		}
		part := b[off:min(len(b), off+rest)]
		off = 0
		for len(part) > 0 {
			n := min(len(part), s.geo.segMax)
			addr, ok := s.pool.Addr(part[:n])
			if !ok || len(descs) == s.geo.dataSegs {
				return false
			}
			descs = append(descs, virtq.Buffer{Addr: addr, Len: uint32(n), Write: write})
			part, rest = part[n:], rest-n
		}
	}
	r.direct = descs
	return true
}

// finish reads the status and the data of sl's completed request.
func (s *session) finish(sl *slot, r *request) error {
	return s.tags.Access(func() error {
		if st := sl.meta.B[metaStatusOff]; st != statusOK {
			return &StatusError{Op: opName(r.typ), Sector: r.sector, Status: st}
		}
		if r.drain != nil {
			r.drain(sl.data.B[:r.n])
		}
		return nil
	})
}

// Close kills the session with cause and waits until its transport is
// closed and its completion goroutine has returned.
func (s *session) Close(cause error) { s.tags.Close(cause) }
