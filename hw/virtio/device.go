package virtio

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/queue"
	"github.com/tarstore/tarstore/hw/internal/sg"
)

var (
	_ hw.Block     = (*Device)(nil)
	_ hw.Zeroer    = (*Device)(nil)
	_ hw.Discarder = (*Device)(nil)
	_ hw.Allocator = (*Device)(nil)
	_ hw.Releaser  = (*Device)(nil)
)

// Defaults of Options.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultQueueSize   = 256
	DefaultSlots       = 32
	DefaultMaxTransfer = 256 << 10
	DefaultPoolSize    = 16 << 20
)

// Options tune a Device. The zero value is the defaults.
type Options struct {
	// ReadOnly opens the device read-only even when it is writable.
	ReadOnly bool
	// Timeout bounds each device request (DefaultTimeout when 0). A
	// request that takes longer fails with ErrTimeout and ends the
	// session (see Device).
	Timeout time.Duration
	// QueueSize is the size of the request queue (DefaultQueueSize when
	// 0), lowered to what the device allows; a power of two.
	QueueSize int
	// Slots bounds the device requests in flight (DefaultSlots when 0);
	// each owns MaxTransfer bytes of shared memory.
	Slots int
	// MaxTransfer bounds the data of one device request (DefaultMaxTransfer
	// when 0), lowered to the device's size_max × seg_max; hw.Block
	// requests larger than that are split.
	MaxTransfer int
	// PoolSize is the memory, shared with the device, that AllocBuffer
	// hands buffers out of (DefaultPoolSize when 0; no pool when
	// negative, when the transport is not a PoolTransport, or when it
	// has too few huge pages for it: dma.ErrNoHugepages).
	PoolSize int
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func (o *Options) queueSize() int {
	n := DefaultQueueSize
	if o.QueueSize > 0 {
		n = o.QueueSize
	}
	p := 1
	for p*2 <= n && p*2 <= 32768 {
		p *= 2
	}
	return p
}

func (o *Options) slots() int {
	if o.Slots > 0 {
		return o.Slots
	}
	return DefaultSlots
}

// geometry is what the driver derives from the features and config space;
// it must not change across reconnects.
type geometry struct {
	features    uint64
	sectorSize  int    // logical block size in bytes
	sectors     uint64 // capacity in logical blocks
	per512      uint64 // 512-byte sectors per logical block
	readOnly    bool
	maxXfer     int // data bytes per request, a multiple of sectorSize
	segMax      int // bytes per data descriptor
	dataSegs    int // data descriptors per request at most
	zeroesMax   uint64
	discardMax  uint64 // in logical blocks; 0: not supported
	flush       bool
	writeZeroes bool
}

func newGeometry(features uint64, cfg BlkConfig, opts *Options) (*geometry, error) {
	ss := int(cfg.LogicalBlockSize(features))
	if ss < 512 || ss > 64<<10 || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("%w: block size %d is not a power of two from 512 to 64 KiB", ErrBadDevice, ss)
	}
	g := &geometry{
		features:   features,
		sectorSize: ss,
		per512:     uint64(ss / 512),
		readOnly:   features&FeatureBlkRO != 0 || opts.ReadOnly,
		flush:      features&FeatureBlkFlush != 0,
	}
	g.sectors = cfg.Capacity / g.per512
	if g.sectors == 0 {
		return nil, fmt.Errorf("%w: capacity %d 512-byte sectors holds no %d-byte block", ErrBadDevice, cfg.Capacity, ss)
	}
	xfer := DefaultMaxTransfer
	if opts.MaxTransfer > 0 {
		xfer = opts.MaxTransfer
	}
	g.segMax = xfer
	if features&FeatureBlkSizeMax != 0 && cfg.SizeMax > 0 {
		// A descriptor holds whole blocks, so that splitting a
		// transfer never cuts one.
		g.segMax = max(int(cfg.SizeMax)/ss*ss, ss)
	}
	if features&FeatureBlkSegMax != 0 && cfg.SegMax > 0 {
		xfer = min(xfer, int(cfg.SegMax)*g.segMax)
	}
	g.maxXfer = max(xfer/ss*ss, ss)
	g.segMax = min(g.segMax, g.maxXfer)
	g.dataSegs = (g.maxXfer + g.segMax - 1) / g.segMax
	if features&FeatureBlkWriteZeroes != 0 && cfg.MaxWriteZeroesSectors >= uint32(g.per512) {
		g.writeZeroes = true
		g.zeroesMax = uint64(cfg.MaxWriteZeroesSectors) / g.per512
	}
	if features&FeatureBlkDiscard != 0 && cfg.MaxDiscardSectors >= uint32(g.per512) {
		g.discardMax = uint64(cfg.MaxDiscardSectors) / g.per512
	}
	return g, nil
}

func (g *geometry) same(o *geometry) bool {
	return g.sectorSize == o.sectorSize && g.sectors == o.sectors && g.readOnly == o.readOnly
}

// Device is a virtio-blk device driven from this process. It implements
// hw.Block, hw.Zeroer and hw.Discarder; see the package documentation.
type Device struct {
	dial func() (Transport, error)
	opts Options
	info hw.Info
	geo  *geometry
	sess *queue.Current[*session]

	pool   *bufferPool  // nil without one
	direct atomic.Int64 // device requests that used a pool buffer in place
}

// Open brings up the device that dial reaches and returns it. dial is
// called again to reconnect after the device went away (see the package
// documentation); a transport that cannot reconnect returns an error then.
func Open(dial func() (Transport, error), opts Options) (*Device, error) {
	t, err := dial()
	if err != nil {
		return nil, &hw.Error{Op: "open", Kind: hw.ErrIO, Err: err}
	}
	name := t.Name()
	d := &Device{dial: dial, opts: opts}
	if pt, ok := t.(PoolTransport); ok && opts.PoolSize >= 0 {
		size := opts.PoolSize
		if size == 0 {
			size = DefaultPoolSize
		}
		mem, err := pt.NewPool(size)
		switch {
		case errors.Is(err, dma.ErrNoHugepages):
			// Not enough huge pages reserved: no pool.
		case err != nil:
			t.Close()
			return nil, &hw.Error{Op: "open", Device: name, Kind: hw.ErrIO, Err: err}
		default:
			d.pool = &bufferPool{mem: mem, BufferPool: dma.NewBufferPool(mem.Region(), mem.Close)}
		}
	}
	s, err := startSession(t, &opts, d.pool)
	if err != nil {
		if d.pool != nil {
			d.pool.mem.Close()
		}
		kind := hw.ErrIO
		if errors.Is(err, ErrBadDevice) {
			kind = hw.ErrUnsupported
		}
		return nil, &hw.Error{Op: "open", Device: name, Kind: kind, Err: err}
	}
	d.geo = s.geo
	d.sess = queue.NewCurrent(s, d.reconnect, d.sameGeometry, hw.ErrClosed)
	d.info = hw.Info{
		SectorSize: s.geo.sectorSize,
		Sectors:    s.geo.sectors,
		ReadOnly:   s.geo.readOnly,
		Driver:     "virtio",
		Model:      name,
		Serial:     d.serial(s),

		MaxTransfer:  s.geo.maxXfer,
		QueueDepth:   s.tags.Tags(),
		WriteThrough: !s.geo.flush,
	}
	return d, nil
}

// serial asks the device for its serial number (VIRTIO_BLK_T_GET_ID); a
// device without one answers UNSUPP and the serial is empty.
func (d *Device) serial(s *session) string {
	var id []byte
	err := s.do(&request{typ: typeGetID, n: idSize, drain: func(b []byte) {
		id = append(id, b...)
	}})
	if err != nil {
		return ""
	}
	if i := bytes.IndexByte(id, 0); i >= 0 {
		id = id[:i]
	}
	return string(id)
}

// Info implements hw.Block.
func (d *Device) Info() hw.Info { return d.info }

// Features returns the feature bits the driver and the device agreed on.
func (d *Device) Features() uint64 { return d.geo.features }

// session returns the live session, reconnecting when the last one died.
func (d *Device) session() (*session, error) { return d.sess.Get() }

// reconnect dials the device again and brings up a new session.
func (d *Device) reconnect(*session) (*session, error) {
	t, err := d.dial()
	if err != nil {
		return nil, err
	}
	return startSession(t, &d.opts, d.pool)
}

// sameGeometry refuses a session whose device changed under the Device.
func (d *Device) sameGeometry(s *session) error {
	if s.geo.same(d.geo) {
		return nil
	}
	return fmt.Errorf("%w: geometry changed (%d blocks of %d bytes, read-only %v)", ErrBadDevice, s.geo.sectors, s.geo.sectorSize, s.geo.readOnly)
}

// fail turns a request's failure into an *hw.Error.
func (d *Device) fail(op string, lba, sectors uint64, err error) error {
	kind := hw.ErrIO
	var se *StatusError
	switch {
	case errors.Is(err, hw.ErrClosed):
		kind, err = hw.ErrClosed, nil
	case errors.As(err, &se) && se.Status == statusUnsupp:
		kind = hw.ErrUnsupported
	}
	return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: kind, Err: err}
}

// transfer runs a Read (typ IN) or Write (OUT) of bufs at lba, split into
// requests of at most maxXfer bytes that run concurrently.
func (d *Device) transfer(op string, typ uint32, lba uint64, bufs [][]byte) error {
	n, err := hw.CheckRequest(d.info, op, lba, bufs)
	if err != nil {
		return err
	}
	s, err := d.session()
	if err != nil {
		return d.fail(op, lba, n, err)
	}
	ss := d.geo.sectorSize
	return sg.Run(int(n)*ss, d.geo.maxXfer, func(p sg.Piece) error {
		at := lba + uint64(p.Off/ss)
		r := &request{typ: typ, sector: at * d.geo.per512, n: p.Len}
		switch {
		case s.pool != nil && s.inPlace(r, bufs, p.Off):
			d.direct.Add(1)
		case typ == typeOut:
			r.fill = func(b []byte) { sg.Gather(b, bufs, p.Off) }
		default:
			r.drain = func(b []byte) { sg.Scatter(bufs, p.Off, b) }
		}
		if err := s.do(r); err != nil {
			return d.fail(op, at, uint64(p.Len/ss), err)
		}
		return nil
	})
}

// Read implements hw.Block.
func (d *Device) Read(lba uint64, bufs ...[]byte) error {
	return d.transfer("read", typeIn, lba, bufs)
}

// Write implements hw.Block.
func (d *Device) Write(lba uint64, bufs ...[]byte) error {
	return d.transfer("write", typeOut, lba, bufs)
}

// Flush implements hw.Block with VIRTIO_BLK_T_FLUSH, which covers every
// write completed before it (virtio 1.2 §5.2.6). A device that did not
// offer VIRTIO_BLK_F_FLUSH has no volatile cache to flush, and Flush only
// checks that the device is open.
func (d *Device) Flush() error {
	s, err := d.session()
	if err != nil {
		return d.fail("flush", 0, 0, err)
	}
	if !d.geo.flush {
		return nil
	}
	if err := s.do(&request{typ: typeFlush}); err != nil {
		return d.fail("flush", 0, 0, err)
	}
	return nil
}

// WriteZeroes implements hw.Zeroer with VIRTIO_BLK_T_WRITE_ZEROES (without
// the unmap flag), in requests of at most max_write_zeroes_sectors. Without
// VIRTIO_BLK_F_WRITE_ZEROES it fails with hw.ErrUnsupported, and
// hw.WriteZeroes falls back to writes.
func (d *Device) WriteZeroes(lba, sectors uint64) error {
	return d.rangeOp("write-zeroes", typeWriteZeroes, d.geo.writeZeroes, d.geo.zeroesMax, lba, sectors)
}

// Discard implements hw.Discarder with VIRTIO_BLK_T_DISCARD, in requests
// of at most max_discard_sectors. Without VIRTIO_BLK_F_DISCARD it fails
// with hw.ErrUnsupported.
func (d *Device) Discard(lba, sectors uint64) error {
	return d.rangeOp("discard", typeDiscard, d.geo.discardMax > 0, d.geo.discardMax, lba, sectors)
}

func (d *Device) rangeOp(op string, typ uint32, ok bool, per, lba, sectors uint64) error {
	if err := hw.CheckRange(d.info, op, lba, sectors); err != nil {
		return err
	}
	s, err := d.session()
	if err != nil {
		return d.fail(op, lba, sectors, err)
	}
	if !ok {
		return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: hw.ErrUnsupported}
	}
	for sectors > 0 {
		k := min(per, sectors)
		seg := [3]uint64{lba * d.geo.per512, k * d.geo.per512, 0}
		if err := s.do(&request{typ: typ, sector: seg[0], seg: &seg}); err != nil {
			return d.fail(op, lba, k, err)
		}
		lba += k
		sectors -= k
	}
	return nil
}

// Close implements hw.Block: it stops the device (the transport's reset or
// disconnect) and fails the requests still in flight with hw.ErrClosed. It
// does not flush. The pool's memory goes once every buffer is back, unless
// stopping the device failed: then the device may still write there, and
// the pool is kept.
func (d *Device) Close() error {
	return d.sess.Close(func(last *session) error {
		if d.pool != nil {
			// The last session's transport is closed. Unless closing it
			// failed (a reset that did not complete: the device may
			// still write), the device no longer reaches the pool, which
			// goes once every buffer is back; else it is kept for good.
			d.pool.Retire(last == nil || last.closeErr == nil)
		}
		return nil
	})
}

// bufferPool is a Device's buffer pool: memory the Device owns, which
// every session shares with the device (PoolTransport), and the
// allocator over it.
type bufferPool struct {
	mem dma.Memory
	*dma.BufferPool
}

// buffers returns the allocator, nil (which hands out ordinary memory)
// when p is.
func (p *bufferPool) buffers() *dma.BufferPool {
	if p == nil {
		return nil
	}
	return p.BufferPool
}

// AllocBuffer implements hw.Allocator: a zeroed buffer of n bytes from the
// pool, which Read and Write hand to the device in place, or ordinary
// memory when the Device has no pool, the pool has no room, or the Device
// is closed.
func (d *Device) AllocBuffer(n int) []byte { return d.pool.buffers().Alloc(n) }

// ReleaseBuffer implements hw.Releaser: it returns a buffer of the pool
// to it, and ignores any other. After Close, the last buffer's return
// unmaps the pool.
func (d *Device) ReleaseBuffer(b []byte) { d.pool.buffers().Release(b) }
