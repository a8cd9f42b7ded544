package faulty

import (
	"sync"
	"sync/atomic"

	"github.com/tarstore/tarstore/hw"
)

// Device wraps an hw.Block and fails its requests on demand.
type Device struct {
	dev    hw.Block
	info   hw.Info
	closed atomic.Bool
	faults Faults

	mu       sync.Mutex
	lost     bool // the power is cut
	modifies int  // modifying requests counted so far: the crash points
	failAt   int  // the value of modifies at which the power fails; 0: not armed
	stats    Stats
	bufs     BufferStats    // Allocated and Stray; Buffers counts the rest from out
	out      map[*byte]int  // the buffers of AllocBuffer not given back, by first byte: their lengths
	inflight sync.WaitGroup // requests passed to dev that have not returned
}

var (
	_ hw.Block     = (*Device)(nil)
	_ hw.Zeroer    = (*Device)(nil)
	_ hw.Discarder = (*Device)(nil)
	_ hw.Allocator = (*Device)(nil)
	_ hw.Releaser  = (*Device)(nil)
)

// New wraps dev. Nothing is armed: until InjectError, FailAtWrite or
// PowerOff, every checked request is passed to dev.
func New(dev hw.Block) *Device {
	return &Device{dev: dev, info: dev.Info()}
}

// Info returns the wrapped device's Info, as New read it.
func (d *Device) Info() hw.Info { return d.info }

// Unwrap returns the wrapped device.
func (d *Device) Unwrap() hw.Block { return d.dev }

// Close closes the wrapped device and returns its error; later requests
// fail with hw.ErrClosed. It does not flush. It may be called after a power
// loss, to release the device.
func (d *Device) Close() error {
	d.closed.Store(true)
	return d.dev.Close()
}

// Stats counts the requests passed to the wrapped device, by kind. Requests
// refused by the checks, failed by an injected fault or by the power loss
// are not counted.
type Stats struct {
	Reads    int // Read
	Writes   int // Write
	Flushes  int // Flush
	Zeroes   int // WriteZeroes
	Discards int // Discard
}

// count counts a request of kind op.
func (s *Stats) count(op Op) {
	switch op {
	case OpRead:
		s.Reads++
	case OpWrite:
		s.Writes++
	case OpFlush:
		s.Flushes++
	case OpWriteZeroes:
		s.Zeroes++
	case OpDiscard:
		s.Discards++
	}
}

// Stats returns the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// InjectError arms f. A checked request of a kind in f.Op that touches a
// faulty sector (any flush, for OpFlush) fails with an *hw.Error of Kind
// hw.ErrIO, Err f.Err (nil means syscall.EIO) and, as LBA, the first faulty
// sector of the request (Sectors 1); a flush fails with LBA 0 and Sectors 0.
// When several faults match, the one with the lowest failing sector fires,
// the earliest injected on a tie, and only its count goes down. A failed
// request is not passed to the wrapped device. Faults do not apply to
// requests refused by the checks or arriving after a power loss.
func (d *Device) InjectError(f Fault) { d.faults.Inject(f) }

// ClearFaults disarms every injected fault.
func (d *Device) ClearFaults() { d.faults.Clear() }

// fail builds the *hw.Error of a request refused by the wrapper itself.
func (d *Device) fail(op string, lba, sectors uint64, kind, cause error) error {
	return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: kind, Err: cause}
}
