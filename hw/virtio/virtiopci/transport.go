package virtiopci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// MemorySource allocates the memory the device reaches by DMA: size bytes
// or more, zeroed, with the device addresses of its bytes, and a function
// that releases it (nil if nothing needs releasing). dma.Hugepages is one.
type MemorySource func(size int) (r dma.Region, release func() error, err error)

// DefaultResetTimeout bounds the wait for a reset when
// Options.ResetTimeout is 0.
const DefaultResetTimeout = time.Second

// Options configure New and Open.
type Options struct {
	// Name identifies the device in Name and errors. Open uses
	// "pci:<address>" when it is empty, New "virtio-pci".
	Name string

	// Root is the sysfs directory of PCI functions (Open only);
	// pci.DefaultRoot when empty.
	Root string

	// Type is the virtio device ID Open requires (§5: 2 for a block
	// device, device ID 0x1042); 0 accepts any modern virtio device.
	Type int

	// Memory provides the DMA memory (Transport.Memory). New requires
	// it; when it is nil, Open uses dma.Hugepages and OpenVFIO the VFIO
	// device's MapDMA.
	Memory MemorySource

	// ResetTimeout bounds the wait for a reset to complete;
	// DefaultResetTimeout when 0.
	ResetTimeout time.Duration
}

// Polling (Wait): after a Notify of a queue, the first spinWaits Waits
// yield the processor (runtime.Gosched), keeping the latency of a quick
// completion low; later ones sleep pollPause, so an idle queue costs little
// CPU, and read device_status for DEVICE_NEEDS_RESET.
const (
	spinWaits = 64
	pollPause = 20 * time.Microsecond
)

// configRetries bounds the re-reads of a configuration space whose
// generation changes during the read.
const configRetries = 64

// Transport is a modern virtio-pci device driven by polling. It has the
// method set of hw/virtio's Transport and follows its call order.
type Transport struct {
	name    string
	b       bringup // owns the common configuration registers
	device  mmio.Registers
	notify  mmio.Registers
	mult    uint32
	mem     MemorySource
	timeout time.Duration
	unmap   func() error // Open's BAR mappings; nil for New

	// mu excludes Close (Lock) from every register access: the
	// single-goroutine methods take Lock, Notify and Wait RLock.
	mu      sync.RWMutex
	closed  atomic.Bool
	release func() error // Memory's; nil until then
	gotMem  bool
	queues  []queue
}

type queue struct {
	ready     bool // set up (guarded by mu)
	notifyOff int  // in the notify structure
	waits     atomic.Uint32
}

// New returns a transport over a device whose registers are given: bars[n]
// is BAR n (nil when unmapped), caps where the virtio structures lie in
// them (ParseCaps). It checks every structure against its BAR, resets the
// device, sets ACKNOWLEDGE and DRIVER and reads its feature bits (§3.1.1
// steps 1-4). The caller keeps the registers: Close does not unmap them.
func New(bars []mmio.Registers, caps Caps, opts Options) (*Transport, error) {
	if opts.Name == "" {
		opts.Name = "virtio-pci"
	}
	return newTransport("new", bars, caps, opts, nil)
}

// newTransport is New for op ("new" or "open"), with unmap for Close.
func newTransport(op string, bars []mmio.Registers, caps Caps, opts Options, unmap func() error) (*Transport, error) {
	t := &Transport{name: opts.Name, mult: caps.NotifyMultiplier, mem: opts.Memory, timeout: opts.ResetTimeout, unmap: unmap}
	if t.timeout <= 0 {
		t.timeout = DefaultResetTimeout
	}
	if t.mem == nil {
		return nil, t.err(op, fmt.Errorf("%w: no memory source", ErrInvalid))
	}
	cr, err := structure(bars, caps.Common, "common configuration", commonLen, 4)
	if err != nil {
		return nil, t.err(op, err)
	}
	if t.notify, err = structure(bars, caps.Notify, "notification", 2, 2); err != nil {
		return nil, t.err(op, err)
	}
	if caps.Device.Length > 0 {
		if t.device, err = structure(bars, caps.Device, "device configuration", 0, 4); err != nil {
			return nil, t.err(op, err)
		}
	}
	t.b.c = common{cr}
	if err := t.b.run(stateNegotiate, t.timeout); err != nil {
		return nil, t.err(op, err)
	}
	t.queues = make([]queue, t.b.c.numQueues())
	return t, nil
}

// structure returns the registers of s, which must lie inside its BAR,
// be at least minLen bytes long and start at a multiple of align.
func structure(bars []mmio.Registers, s Structure, name string, minLen int, align uint32) (mmio.Registers, error) {
	if s.BAR < 0 || s.BAR >= len(bars) || bars[s.BAR] == nil {
		return nil, fmt.Errorf("%w: %s structure in BAR %d, which is not mapped", ErrCapability, name, s.BAR)
	}
	if int64(s.Length) < int64(minLen) || s.Offset%align != 0 {
		return nil, fmt.Errorf("%w: %s structure of %d bytes at %#x (want %d bytes or more, %d-byte aligned)", ErrCapability, name, s.Length, s.Offset, minLen, align)
	}
	r, err := mmio.Window(bars[s.BAR], int(s.Offset), int(s.Length))
	if err != nil {
		return nil, fmt.Errorf("%w: %s structure: %w", ErrCapability, name, err)
	}
	return r, nil
}

func (t *Transport) err(op string, err error) error {
	return &Error{Op: op, Name: t.name, Err: err}
}

// usable returns nil if the transport is open and its bring-up is in
// state want.
func (t *Transport) usable(want state) error {
	switch {
	case t.closed.Load():
		return ErrClosed
	case t.b.state == stateFailed:
		return t.b.err
	case t.b.state != want:
		return fmt.Errorf("%w: called at %s, not %s", ErrInvalid, t.b.state, want)
	}
	return nil
}

// Name returns the name given in Options ("pci:0000:00:04.0" from Open).
func (t *Transport) Name() string { return t.name }

// DeviceFeatures returns the feature bits the device offered at New.
func (t *Transport) DeviceFeatures() uint64 { return t.b.device }

// ReadConfig reads n bytes of the device-specific configuration structure
// at off (§4.1.4.6), in the widest aligned accesses that fit (a 64-bit field
// as two 32-bit halves, §4.1.3.1), again until config_generation reads the
// same before and after (§2.5.1).
func (t *Transport) ReadConfig(off, n int) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, t.err("read config", ErrClosed)
	}
	size := 0
	if t.device != nil {
		size = t.device.Len()
	}
	if off < 0 || n < 0 || off > size || n > size-off {
		return nil, t.err("read config", fmt.Errorf("%w: %d bytes at %d of a %d-byte configuration", ErrInvalid, n, off, size))
	}
	b := make([]byte, n)
	for range configRetries {
		gen := t.b.c.generation()
		for i := 0; i < n; {
			switch at := off + i; {
			case at%4 == 0 && n-i >= 4:
				binary.LittleEndian.PutUint32(b[i:], t.device.Read32(at))
				i += 4
			case at%2 == 0 && n-i >= 2:
				binary.LittleEndian.PutUint16(b[i:], t.device.Read16(at))
				i += 2
			default:
				b[i] = t.device.Read8(at)
				i++
			}
		}
		if t.b.c.generation() == gen {
			return b, nil
		}
	}
	return nil, t.err("read config", ErrConfigChanging)
}

// SetFeatures writes the driver's features, sets FEATURES_OK and checks
// that the device kept it (§3.1.1 steps 5 and 6). features must be a
// subset of DeviceFeatures with VIRTIO_F_VERSION_1 (bit 32). After a
// refusal (ErrFeaturesRefused) the device is FAILED until Close.
func (t *Transport) SetFeatures(features uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(stateNegotiate); err != nil {
		return t.err("set features", err)
	}
	if features&^t.b.device != 0 || features&(1<<32) == 0 {
		return t.err("set features", fmt.Errorf("%w: features %#x: not a subset of %#x with VIRTIO_F_VERSION_1", ErrInvalid, features, t.b.device))
	}
	t.b.negotiate(features)
	if err := t.b.run(stateQueues, t.timeout); err != nil {
		return t.err("set features", err)
	}
	return nil
}

// Memory returns size bytes or more of DMA memory from Options.Memory. It
// may be called once; Close releases the memory, after the device reset.
func (t *Transport) Memory(size int) (dma.Region, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed.Load():
		return dma.Region{}, t.err("memory", ErrClosed)
	case t.gotMem:
		return dma.Region{}, t.err("memory", fmt.Errorf("%w: Memory called twice", ErrInvalid))
	case size <= 0:
		return dma.Region{}, t.err("memory", fmt.Errorf("%w: %d bytes", ErrInvalid, size))
	}
	r, release, err := t.mem(size)
	if err != nil {
		return dma.Region{}, t.err("memory", err)
	}
	if r.Len() < size {
		if release != nil {
			release()
		}
		return dma.Region{}, t.err("memory", fmt.Errorf("%w: memory source gave %d bytes for %d", ErrInvalid, r.Len(), size))
	}
	t.gotMem, t.release = true, release
	return r, nil
}

// QueueMax returns the maximum size of queue i: queue_size of a queue not
// yet set up (§4.1.5.1.3), 0 when the device has no queue i.
func (t *Transport) QueueMax(i int) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed.Load():
		return 0, t.err("queue max", ErrClosed)
	case i < 0:
		return 0, t.err("queue max", fmt.Errorf("%w: queue %d", ErrInvalid, i))
	case i >= len(t.queues):
		return 0, nil
	case t.queues[i].ready:
		return 0, t.err("queue max", fmt.Errorf("%w: queue %d is set up", ErrInvalid, i))
	}
	t.b.c.selectQueue(i)
	return t.b.c.queueSize(), nil
}

// SetupQueue programs queue i (§4.1.5.1.3): size, a power of two no larger
// than QueueMax(i); no MSI-X vector; the ring addresses, aligned as §2.7
// requires (16, 2 and 4 bytes); then queue_enable. It also computes the
// queue's notify address (§4.1.4.4). Queues are set up between SetFeatures
// and Start, each once.
func (t *Transport) SetupQueue(i, size int, desc, avail, used uint64) error {
	op := fmt.Sprintf("setup queue %d", i)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(stateQueues); err != nil {
		return t.err(op, err)
	}
	if i < 0 || i >= len(t.queues) || t.queues[i].ready {
		return t.err(op, fmt.Errorf("%w: no such queue, or set up already (%d queues)", ErrInvalid, len(t.queues)))
	}
	c := t.b.c
	c.selectQueue(i)
	limit := c.queueSize()
	if size < 1 || size > limit || size&(size-1) != 0 {
		return t.err(op, fmt.Errorf("%w: size %d (the queue's maximum is %d)", ErrInvalid, size, limit))
	}
	if desc%16 != 0 || avail%2 != 0 || used%4 != 0 {
		return t.err(op, fmt.Errorf("%w: misaligned rings %#x %#x %#x", ErrInvalid, desc, avail, used))
	}
	noff, err := t.notifyOffset(c.queueNotifyOff())
	if err != nil {
		return t.err(op, err)
	}
	c.setQueueSize(size)
	c.setQueue(desc, avail, used)
	c.enableQueue()
	t.queues[i].notifyOff, t.queues[i].ready = noff, true
	return nil
}

// notifyOffset returns where in the notify structure a queue whose
// queue_notify_off is off is notified: off × notify_off_multiplier
// (§4.1.4.4), which must leave room for the 16-bit write.
func (t *Transport) notifyOffset(off int) (int, error) {
	at := uint64(off) * uint64(t.mult)
	if at%2 != 0 || at+2 > uint64(t.notify.Len()) {
		return 0, fmt.Errorf("%w: queue_notify_off %d × notify_off_multiplier %d is outside the %d-byte notify structure or odd",
			ErrCapability, off, t.mult, t.notify.Len())
	}
	return int(at), nil
}

// Start sets DRIVER_OK (§3.1.1 step 8): the device may use the queues.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(stateQueues); err != nil {
		return t.err("start", err)
	}
	t.b.start()
	if err := t.b.run(stateLive, t.timeout); err != nil {
		return t.err("start", err)
	}
	return nil
}

// Notify tells the device that queue i has new available buffers: it
// writes the queue's index, 16 bits, at the queue's notify address
// (§4.1.5.2; VIRTIO_F_NOTIFICATION_DATA is not used). Safe for concurrent
// use.
func (t *Transport) Notify(i int) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	q, err := t.queue(i)
	if err != nil {
		return t.err("notify", err)
	}
	t.notify.Write16(q.notifyOff, uint16(i))
	q.waits.Store(0)
	return nil
}

func (t *Transport) queue(i int) (*queue, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if i < 0 || i >= len(t.queues) || !t.queues[i].ready {
		return nil, fmt.Errorf("%w: queue %d is not set up", ErrInvalid, i)
	}
	return &t.queues[i], nil
}

// Polled reports that this transport has no interrupts: Wait only pauses.
func (t *Transport) Polled() bool { return true }

// Wait pauses before the caller polls queue i's used ring again: the
// device raises no interrupt this transport could wait for. After a Notify
// of the queue, the first 64 Waits yield the processor (runtime.Gosched);
// later ones sleep 20µs and check the device status, returning an error
// matching ErrNeedsReset once the device set DEVICE_NEEDS_RESET. After
// Close, Wait returns an error matching ErrClosed.
func (t *Transport) Wait(i int) error {
	t.mu.RLock()
	q, err := t.queue(i)
	spin := false
	if err == nil {
		if spin = q.waits.Add(1) <= spinWaits; !spin {
			if s := t.b.c.status(); s&statusNeedsReset != 0 {
				err = &StatusError{State: stateLive.String(), Status: s, Err: ErrNeedsReset}
			}
		}
	}
	t.mu.RUnlock()
	if err != nil {
		return t.err("wait", err)
	}
	if spin {
		runtime.Gosched()
	} else {
		time.Sleep(pollPause)
	}
	if t.closed.Load() {
		return t.err("wait", ErrClosed)
	}
	return nil
}

// Close resets the device (writes 0 to device_status and waits until it
// reads 0), then releases the memory from Memory and unmaps the BARs Open
// mapped. If the reset does not complete, the memory is not released (the
// device might still write to it) and the error says why. Close is
// idempotent; it unblocks Wait.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Swap(true) {
		return nil
	}
	t.b.reset()
	err := t.b.run(stateAcknowledge, t.timeout)
	if err == nil && t.release != nil {
		err = t.release()
	}
	if t.unmap != nil {
		err = errors.Join(err, t.unmap())
	}
	if err != nil {
		return t.err("close", err)
	}
	return nil
}
