package nvme

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
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
	DefaultTimeout         = 30 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
	DefaultSlots           = 32
	DefaultMaxTransfer     = 128 << 10
	DefaultPoolSize        = 16 << 20 // a size for Options.PoolSize
)

// Options tune a Device. The zero value is the defaults.
type Options struct {
	// ReadOnly opens the namespace read-only even when it is writable.
	ReadOnly bool
	// Namespace is the namespace ID to use (1 when 0).
	Namespace uint32
	// Timeout bounds each command (DefaultTimeout when 0). An I/O
	// command that takes longer fails with ErrTimeout and ends the
	// session; an admin command that does fails the bring-up.
	Timeout time.Duration
	// ShutdownTimeout bounds Close's wait for CSTS.SHST to report the
	// shutdown complete (DefaultShutdownTimeout when 0).
	ShutdownTimeout time.Duration
	// Slots bounds the I/O commands in flight (DefaultSlots when 0),
	// lowered to what CAP.MQES allows; each owns MaxTransfer bytes and a
	// page of DMA memory.
	Slots int
	// MaxTransfer bounds the data of one command (DefaultMaxTransfer
	// when 0): rounded down to a power of two from 4 KiB to 2 MiB, and
	// lowered to the controller's MDTS. Larger requests are split.
	MaxTransfer int
	// PoolSize is the DMA memory that AllocBuffer hands buffers out
	// of, taken from the Controller's Memory at Open; 0 (the default)
	// means no pool, and AllocBuffer returns ordinary memory. Requests
	// on page-aligned runs of its buffers go to the controller in place.
	// When the memory source has too few huge pages for it
	// (dma.ErrNoHugepages), the Device opens without a pool, so that a
	// caller may ask for one whenever it might fit (DefaultPoolSize).
	PoolSize int
	// Root is the sysfs directory of PCI functions for OpenPCI and
	// OpenVFIO (pci.DefaultRoot when empty).
	Root string

	clock clock // tests; realClock when nil
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func (o *Options) shutdownTimeout() time.Duration {
	if o.ShutdownTimeout > 0 {
		return o.ShutdownTimeout
	}
	return DefaultShutdownTimeout
}

func (o *Options) slots() int {
	if o.Slots > 0 {
		return o.Slots
	}
	return DefaultSlots
}

func (o *Options) maxTransfer() int {
	if o.MaxTransfer > 0 {
		return o.MaxTransfer
	}
	return DefaultMaxTransfer
}

func (o *Options) namespace() uint32 {
	if o.Namespace > 0 {
		return o.Namespace
	}
	return 1
}

// MemorySource allocates memory the controller reaches by DMA: size bytes
// or more, zeroed, with the device address of each byte, and a function
// that releases it (nil if nothing needs releasing). dma.Hugepages is one;
// a VFIO device's MapDMA is another.
type MemorySource func(size int) (r dma.Region, release func() error, err error)

// Controller is how a Device reaches an NVMe controller: the registers
// of its BAR 0 and memory it can reach by DMA. Open takes it over: Close,
// or a failed Open, calls Release.
type Controller struct {
	Name      string         // for humans and errors: "pci:0000:00:05.0"
	Registers mmio.Registers // BAR 0: the properties and the doorbells
	Memory    MemorySource
	Release   func() error // unmaps the registers, closes the function; may be nil
}

// Identity is what the controller and the namespace report, and the
// limits the driver works within.
type Identity struct {
	VendorID           uint16
	Serial             string // SN
	Model              string // MN
	Firmware           string // FR
	Version            uint32 // VS: major (31:16), minor (15:8), tertiary (7:0)
	Namespace          uint32
	LBAFormat          int  // the namespace's LBA format index
	VolatileWriteCache bool // VWC: Flush sends a Flush command
	WriteZeroes        bool // ONCS bit 3: WriteZeroes sends Write Zeroes
	Deallocate         bool // ONCS bit 2: Discard sends Dataset Management
	MaxTransfer        int  // data bytes per Read or Write command
	QueueEntries       int  // entries of the I/O queue pair
}

// Device is an NVMe namespace driven from this process. It implements
// hw.Block, hw.Zeroer and hw.Discarder; see the package documentation.
type Device struct {
	ctrl Controller
	opts Options
	clk  clock
	info hw.Info
	geo  *geometry

	// sess is the current session; its reconnects and the shutdown
	// run one at a time, which guards b and limbo.
	sess  *queue.Current[*session]
	b     *bringup       // the latest bring-up that read CAP
	limbo []func() error // releases of memory given to the controller

	// pool is the buffer pool, nil without one: DMA memory that
	// outlives sessions, since the controller keeps its addresses
	// across resets.
	pool   *dma.BufferPool
	direct atomic.Int64 // commands that used a pool buffer in place
}

// Open brings up the controller ctrl reaches and the namespace
// opts.Namespace on it, and returns it as a Device named ctrl.Name. It
// fails with an *hw.Error of Kind hw.ErrUnsupported wrapping
// ErrBadController for a controller or namespace the driver cannot use,
// and hw.ErrIO otherwise.
func Open(ctrl Controller, opts Options) (*Device, error) {
	d := &Device{ctrl: ctrl, opts: opts, clk: opts.clock}
	if d.clk == nil {
		d.clk = realClock{}
	}
	fail := func(err error) (*Device, error) {
		if ctrl.Release != nil {
			err = errors.Join(err, ctrl.Release())
		}
		kind := hw.ErrIO
		if errors.Is(err, ErrBadController) {
			kind = hw.ErrUnsupported
		}
		return nil, &hw.Error{Op: "open", Device: ctrl.Name, Kind: kind, Err: err}
	}
	if ctrl.Registers == nil || ctrl.Memory == nil {
		return fail(errors.New("nvme: Controller needs Registers and Memory"))
	}
	s, err := d.startSession()
	if err != nil {
		if len(d.limbo) > 0 { // the controller has our memory: reset it
			d.b.disable()
			if derr := d.b.run(d.clk); derr != nil {
				return fail(errors.Join(err, derr))
			}
			err = errors.Join(err, d.releaseLimbo())
		}
		return fail(err)
	}
	d.geo = s.geo
	d.sess = queue.NewCurrent(s, d.reconnect, d.sameGeometry, hw.ErrClosed)
	if opts.PoolSize > 0 {
		mem, release, err := ctrl.Memory(opts.PoolSize)
		switch {
		case errors.Is(err, dma.ErrNoHugepages):
			// Not enough huge pages reserved: no pool.
		case err != nil:
			d.Close()
			return nil, &hw.Error{Op: "open", Device: ctrl.Name, Kind: hw.ErrIO, Err: err}
		default:
			d.pool = dma.NewBufferPool(mem, release)
			s.pool = d.pool
		}
	}
	d.info = hw.Info{
		SectorSize: s.geo.sectorSize,
		Sectors:    s.geo.sectors,
		ReadOnly:   s.geo.readOnly,
		Driver:     "nvme",
		Model:      s.geo.ident.Model,
		Serial:     s.geo.ident.Serial,

		MaxTransfer:  s.geo.maxXfer,
		QueueDepth:   len(s.slots),
		WriteThrough: !s.geo.flush,
	}
	return d, nil
}

// Info implements hw.Block.
func (d *Device) Info() hw.Info { return d.info }

// Identity returns what the controller reported at Open.
func (d *Device) Identity() Identity { return d.geo.ident }

// releaseLimbo releases the memory of past sessions. The caller runs
// inside d.sess's reconnect or shutdown (or owns d) and has just seen a
// controller reset complete.
func (d *Device) releaseLimbo() error {
	var err error
	for _, release := range d.limbo {
		err = errors.Join(err, release())
	}
	d.limbo = nil
	return err
}

// session returns the live session, bringing the controller up again when
// the last session died.
func (d *Device) session() (*session, error) { return d.sess.Get() }

// reconnect resets the controller and brings up a new session once the
// dead one's poller stopped.
func (d *Device) reconnect(dead *session) (*session, error) {
	dead.tags.Stopped() // nothing of the old session touches the registers now
	s, err := d.startSession()
	if err != nil {
		return nil, err
	}
	s.pool = d.pool
	return s, nil
}

// sameGeometry refuses a session whose namespace changed under the
// Device.
func (d *Device) sameGeometry(s *session) error {
	if s.geo.same(d.geo) {
		return nil
	}
	return fmt.Errorf("%w: geometry changed (%d blocks of %d bytes, read-only %v)", ErrBadController, s.geo.sectors, s.geo.sectorSize, s.geo.readOnly)
}

// fail turns a command's failure into an *hw.Error.
func (d *Device) fail(op string, lba, sectors uint64, err error) error {
	kind := hw.ErrIO
	var se *StatusError
	switch {
	case errors.Is(err, hw.ErrClosed):
		kind, err = hw.ErrClosed, nil
	case errors.As(err, &se):
		kind = se.kind()
	}
	return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: kind, Err: err}
}

// transfer runs a Read or Write of bufs at lba, split into commands of at
// most maxXfer bytes that run concurrently.
func (d *Device) transfer(op string, opcode uint8, lba uint64, bufs [][]byte) error {
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
		r := &request{op: op, lba: at, cmd: blocksCmd(opcode, d.geo.nsid, at, p.Len/ss), n: p.Len}
		switch {
		case s.pool != nil && s.inPlace(r, bufs, p.Off):
			d.direct.Add(1)
		case opcode == opWrite:
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

// Read implements hw.Block with Read commands (NVM Command Set 1.0
// §3.2.4).
func (d *Device) Read(lba uint64, bufs ...[]byte) error {
	return d.transfer("read", opRead, lba, bufs)
}

// Write implements hw.Block with Write commands (NVM Command Set 1.0
// §3.2.6).
func (d *Device) Write(lba uint64, bufs ...[]byte) error {
	return d.transfer("write", opWrite, lba, bufs)
}

// Flush implements hw.Block with a Flush command (Base 2.0 §7.1), which
// commits every write completed before it. A controller without a
// volatile write cache (Identify Controller VWC bit 0 clear) has nothing
// to commit: its completed writes are already durable, and Flush only
// checks that the device is open.
func (d *Device) Flush() error {
	s, err := d.session()
	if err != nil {
		return d.fail("flush", 0, 0, err)
	}
	if !d.geo.flush {
		return nil
	}
	if err := s.do(&request{op: "flush", cmd: flushCmd(d.geo.nsid)}); err != nil {
		return d.fail("flush", 0, 0, err)
	}
	return nil
}

// WriteZeroes implements hw.Zeroer with Write Zeroes commands (NVM
// Command Set 1.0 §3.2.8, DEAC clear) of at most 65536 blocks each. Without
// the command (ONCS bit 3), or when the controller answers Invalid Field
// (a size it does not take), it fails with hw.ErrUnsupported and
// hw.WriteZeroes falls back to writes.
func (d *Device) WriteZeroes(lba, sectors uint64) error {
	const op = "write-zeroes"
	s, err := d.rangeCheck(op, d.geo.writeZeroes, lba, sectors)
	if s == nil {
		return err
	}
	for sectors > 0 {
		k := min(sectors, maxBlocks)
		r := &request{op: op, lba: lba, cmd: blocksCmd(opWriteZeroes, d.geo.nsid, lba, int(k))}
		if err := s.do(r); err != nil {
			return d.fail(op, lba, k, err)
		}
		lba += k
		sectors -= k
	}
	return nil
}

// dsmRangeBytes bounds a Dataset Management range: QEMU skips ranges
// larger than its DMRSL (about 2 GiB) without an error.
const dsmRangeBytes = 1 << 30

// Discard implements hw.Discarder with Dataset Management commands (NVM
// Command Set 1.0 §3.2.3, attribute deallocate) of up to 256 ranges of at
// most 1 GiB each. Without the command (ONCS bit 2) it fails with
// hw.ErrUnsupported.
func (d *Device) Discard(lba, sectors uint64) error {
	const op = "discard"
	s, err := d.rangeCheck(op, d.geo.deallocate, lba, sectors)
	if s == nil {
		return err
	}
	perCmd := d.geo.maxXfer / dsmRangeSize
	for sectors > 0 {
		start := lba
		ranges, covered := dsmRanges(lba, sectors, d.geo.sectorSize, perCmd)
		lba, sectors = lba+covered, sectors-covered
		r := &request{op: op, lba: start, cmd: dsmCmd(d.geo.nsid, len(ranges)), n: len(ranges) * dsmRangeSize,
			fill: func(b []byte) {
				for i, rg := range ranges {
					putRange(b[i*dsmRangeSize:], rg[0], uint32(rg[1]))
				}
			}}
		if err := s.do(r); err != nil {
			return d.fail(op, start, covered, err)
		}
	}
	return nil
}

// rangeCheck validates a write-zeroes or discard and returns the session
// to run it on; a nil session comes with the error to return, nil for an
// empty range.
func (d *Device) rangeCheck(op string, supported bool, lba, sectors uint64) (*session, error) {
	if err := hw.CheckRange(d.info, op, lba, sectors); err != nil {
		return nil, err
	}
	s, err := d.session()
	switch {
	case err != nil:
		return nil, d.fail(op, lba, sectors, err)
	case !supported:
		return nil, &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: hw.ErrUnsupported}
	case sectors == 0:
		return nil, nil
	}
	return s, nil
}

// Close implements hw.Block: it fails the commands in flight with
// hw.ErrClosed, shuts the controller down (CC.SHN=01b, waiting at most
// Options.ShutdownTimeout for CSTS.SHST=10b: the controller commits its
// cache), resets it (CC.EN=0, CSTS.RDY=0 within CAP.TO), releases the DMA
// memory and then the Controller. When the reset does not complete the
// memory is kept, as the controller might still write it, and Close
// reports why. Close does not send a Flush (the shutdown has the
// controller commit its cache all the same).
func (d *Device) Close() error {
	err := d.sess.Close(func(*session) error {
		err := d.powerOff()
		if d.pool != nil {
			// Only a reset controller no longer reaches the pool.
			err = errors.Join(err, d.pool.Retire(err == nil))
		}
		if d.ctrl.Release != nil {
			err = errors.Join(err, d.ctrl.Release())
		}
		return err
	})
	if err != nil {
		return &hw.Error{Op: "close", Device: d.info.Model, Kind: hw.ErrIO, Err: err}
	}
	return nil
}

// powerOff shuts the controller down and resets it (Base 2.0 §3.6.1),
// resetting it even when the shutdown fails, and releases the memory once
// the reset completed.
func (d *Device) powerOff() error {
	b := d.b
	b.shutdown()
	err := b.run(d.clk)
	if b.state != stateOff {
		b.disable()
		if derr := b.run(d.clk); derr != nil {
			return errors.Join(err, derr)
		}
	}
	return errors.Join(err, d.releaseLimbo())
}

// AllocBuffer implements hw.Allocator: a zeroed buffer of n bytes from the
// pool (Options.PoolSize), which Read and Write hand to the controller in
// place, or ordinary memory when the Device has no pool, the pool has no
// room, or the Device is closed.
func (d *Device) AllocBuffer(n int) []byte { return d.pool.Alloc(n) }

// ReleaseBuffer implements hw.Releaser: it returns a buffer of the pool
// to it, and ignores any other. After Close, the last buffer's return
// releases the pool's memory (when the controller was reset).
func (d *Device) ReleaseBuffer(b []byte) { d.pool.Release(b) }
