// Package hw is the block-device contract between tarstore's drivers and its
// stores (SPEC §8).
//
// A driver (hw/file, hw/virtio, hw/nvme, the in-memory hw/mem and the
// fault-injecting hw/crash) implements Block; a store (kvtar) consumes it and
// never names a concrete driver. The contract, modelled on mirage-block's
// Mirage_block.S, is:
//
//   - Addressing is by logical sector (LBA). Info().SectorSize is a multiple
//     of 512 and fixed for the life of the device; Info().Sectors is the
//     device size in sectors.
//   - Read and Write transfer whole sectors. Each takes one or more buffers
//     (a vectored request): the buffers are laid out back to back on the
//     device starting at lba, and each buffer's length must be a non-zero
//     multiple of the sector size. Buffers may have any memory alignment;
//     drivers that need aligned or DMA-able memory bounce internally, and
//     may implement Allocator so that callers can obtain buffers that avoid
//     the bounce.
//   - A request either succeeds entirely (nil error) or fails with an
//     *Error. There are no short transfers. After a failed Read the contents
//     of the buffers are unspecified. After a failed Write each sector of the
//     request holds either its old or its new contents, independently.
//   - A Write that returned nil is visible to every later Read, but it is
//     durable only after a later Flush returns nil: Flush makes every write
//     that completed before Flush was called survive power loss. Writes
//     concurrent with a Flush may or may not be covered by it. Until then a
//     power failure may drop or keep each written sector independently; a
//     single sector is never torn (it holds its old or new contents).
//   - A Block is safe for concurrent use: several requests may be in flight at
//     once from different goroutines. Requests that overlap and run
//     concurrently complete in an unspecified order.
//   - Invalid requests never panic: they fail with an *Error whose Kind is
//     ErrMisaligned, ErrOutOfRange, ErrReadOnly or ErrClosed and leave the
//     device untouched. Device-reported failures have Kind ErrIO and carry the
//     driver's cause (an errno, an NVMe or virtio status).
//
// Optional capabilities (Zeroer, Discarder, Allocator, Releaser) are
// discovered with a type assertion; the helpers WriteZeroes, AllocBuffer and
// ReleaseBuffer fall back to plain writes, ordinary memory and nothing when
// a driver lacks them.
//
// A wrapper is a Block that passes requests on to another Block (hw/faulty,
// which injects failures; a tracing or metering layer). It implements
// Unwrap() Block, which returns the wrapped device (see Unwrap), and it
// offers every optional capability by forwarding: its WriteZeroes and
// Discard fail with an *Error of Kind ErrUnsupported when the wrapped device
// lacks them, so WriteZeroes falls back to writes through the wrapper; its
// AllocBuffer returns AllocBuffer(wrapped), and its ReleaseBuffer calls
// ReleaseBuffer(wrapped). A type assertion on a wrapper therefore finds
// every capability; ErrUnsupported tells what the device underneath lacks.
package hw

import (
	"errors"
	"fmt"
)

// Info describes a device's geometry and identity. It does not change while
// the device is open.
type Info struct {
	SectorSize int    // logical sector size in bytes: a multiple of 512
	Sectors    uint64 // capacity in sectors
	ReadOnly   bool   // writes fail with ErrReadOnly
	Driver     string // short driver name: "file", "mem", "virtio", "nvme", ...
	Model      string // model or path, for humans
	Serial     string // serial number or other identity, may be empty

	// What a store may size and order its requests by; zero when the
	// driver does not know. They describe the driver, not the contract:
	// a Read or Write of any size is valid, and Flush is always needed
	// for durability unless WriteThrough is true.
	MaxTransfer  int  // bytes one device request carries; the driver splits larger ones
	QueueDepth   int  // device requests the driver keeps in flight at once
	WriteThrough bool // the device has no volatile write cache: a completed write is durable
}

// Size is the capacity in bytes.
func (i Info) Size() int64 { return int64(i.Sectors) * int64(i.SectorSize) }

// Block is a block device. See the package documentation for the contract.
type Block interface {
	// Info returns the device's geometry.
	Info() Info
	// Read fills bufs, in order, from consecutive sectors starting at lba.
	Read(lba uint64, bufs ...[]byte) error
	// Write stores bufs, in order, to consecutive sectors starting at lba.
	Write(lba uint64, bufs ...[]byte) error
	// Flush makes every write completed before the call durable.
	Flush() error
	// Close releases the device. It does not flush. Requests after Close
	// fail with ErrClosed; Close itself is idempotent.
	Close() error
}

// Zeroer is implemented by devices that can zero a range without the caller
// transferring zeroes (BLKZEROOUT, NVMe Write Zeroes, virtio-blk
// WRITE_ZEROES). Zeroed sectors read back as zeroes; durability is as for
// Write.
type Zeroer interface {
	WriteZeroes(lba, sectors uint64) error
}

// Discarder is implemented by devices that can deallocate a range (TRIM,
// BLKDISCARD, NVMe Dataset Management). After a discard the contents of the
// range are unspecified until they are written again: callers must not rely
// on reading zeroes.
type Discarder interface {
	Discard(lba, sectors uint64) error
}

// Allocator is implemented by drivers that transfer without a bounce copy
// when buffers come from them (aligned for O_DIRECT, or in DMA-able memory).
// AllocBuffer returns a zeroed buffer of n bytes; n must be a multiple of the
// sector size.
type Allocator interface {
	AllocBuffer(n int) []byte
}

// Releaser is implemented by Allocators whose buffers come from a bounded
// pool (a driver's DMA memory): ReleaseBuffer gives back a buffer
// AllocBuffer returned, passed as it was returned (the same first byte), which
// the caller must not use afterwards. A buffer that is never released
// stays valid; the pool only has less room for others, and AllocBuffer
// returns ordinary memory once the pool is exhausted. Buffers of other
// origins are ignored.
type Releaser interface {
	ReleaseBuffer(b []byte)
}

// Sentinel error kinds. Every error returned by a Block is an *Error whose
// Kind is one of these, so callers test with errors.Is(err, hw.ErrIO) etc.
// ErrBusy is returned by drivers' open functions when another process holds
// the device.
var (
	ErrMisaligned  = errors.New("buffer length is not a non-zero multiple of the sector size")
	ErrOutOfRange  = errors.New("request beyond the end of the device")
	ErrReadOnly    = errors.New("device is read-only")
	ErrClosed      = errors.New("device is closed")
	ErrBusy        = errors.New("device is in use by another process")
	ErrIO          = errors.New("i/o error")
	ErrUnsupported = errors.New("operation not supported by the device")
)

// Error describes a failed request.
type Error struct {
	Op      string // "read", "write", "flush", "write-zeroes", "discard", "open", ...
	Device  string // Info().Model or path, may be empty
	LBA     uint64 // first sector of the request (or of the failure, when known)
	Sectors uint64 // length of the request in sectors, 0 when not applicable
	Kind    error  // one of the sentinels above
	Err     error  // the driver's cause (errno, device status), may be nil
}

func (e *Error) Error() string {
	s := "hw: " + e.Op
	if e.Device != "" {
		s += " " + e.Device
	}
	if e.Sectors > 0 {
		s += fmt.Sprintf(" lba %d+%d", e.LBA, e.Sectors)
	}
	s += ": " + e.Kind.Error()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// CheckRequest validates a Read or Write against the geometry and returns the
// total number of sectors it covers, or an *Error (ErrMisaligned,
// ErrOutOfRange, and ErrReadOnly for writes to a read-only device). Drivers
// call it first so that every driver rejects bad requests the same way.
func CheckRequest(info Info, op string, lba uint64, bufs [][]byte) (uint64, error) {
	fail := func(kind error, n uint64) (uint64, error) {
		return 0, &Error{Op: op, Device: info.Model, LBA: lba, Sectors: n, Kind: kind}
	}
	if len(bufs) == 0 {
		return fail(ErrMisaligned, 0)
	}
	ss := uint64(info.SectorSize)
	var n uint64
	for _, b := range bufs {
		if len(b) == 0 || uint64(len(b))%ss != 0 {
			return fail(ErrMisaligned, 0)
		}
		n += uint64(len(b)) / ss
	}
	if lba > info.Sectors || n > info.Sectors-lba {
		return fail(ErrOutOfRange, n)
	}
	if op == "write" && info.ReadOnly {
		return fail(ErrReadOnly, n)
	}
	return n, nil
}

// CheckRange validates a range operation (write-zeroes, discard) of sectors
// sectors at lba; it fails like CheckRequest. A zero-length range is valid.
func CheckRange(info Info, op string, lba, sectors uint64) error {
	if lba > info.Sectors || sectors > info.Sectors-lba {
		return &Error{Op: op, Device: info.Model, LBA: lba, Sectors: sectors, Kind: ErrOutOfRange}
	}
	if info.ReadOnly {
		return &Error{Op: op, Device: info.Model, LBA: lba, Sectors: sectors, Kind: ErrReadOnly}
	}
	return nil
}

// zeroChunk bounds the memory WriteZeroes uses when it falls back to writes.
const zeroChunk = 1 << 20

// WriteZeroes zeroes sectors sectors at lba, with the device's Zeroer when it
// has one (falling back when that reports ErrUnsupported), else with writes
// of zero buffers of at most 1 MiB.
func WriteZeroes(dev Block, lba, sectors uint64) error {
	if z, ok := dev.(Zeroer); ok {
		err := z.WriteZeroes(lba, sectors)
		if !errors.Is(err, ErrUnsupported) {
			return err
		}
	}
	info := dev.Info()
	if err := CheckRange(info, "write-zeroes", lba, sectors); err != nil {
		return err
	}
	per := uint64(zeroChunk / info.SectorSize)
	if per == 0 {
		per = 1
	}
	buf := AllocBuffer(dev, int(min(per, sectors))*info.SectorSize)
	for sectors > 0 {
		n := min(per, sectors)
		if err := dev.Write(lba, buf[:int(n)*info.SectorSize]); err != nil {
			return err
		}
		lba += n
		sectors -= n
	}
	return nil
}

// Unwrap returns the device dev wraps: the result of its Unwrap() Block
// method, or nil when dev is not a wrapper.
func Unwrap(dev Block) Block {
	if w, ok := dev.(interface{ Unwrap() Block }); ok {
		return w.Unwrap()
	}
	return nil
}

// AllocBuffer returns a zeroed buffer of n bytes suited to dev: from its
// Allocator when it has one, else ordinary memory.
func AllocBuffer(dev Block, n int) []byte {
	if a, ok := dev.(Allocator); ok {
		return a.AllocBuffer(n)
	}
	return make([]byte, n)
}

// ReleaseBuffer gives b, a buffer AllocBuffer(dev, ...) returned, back to
// dev's Releaser when it has one; otherwise it does nothing (the garbage
// collector takes ordinary memory).
func ReleaseBuffer(dev Block, b []byte) {
	if r, ok := dev.(Releaser); ok {
		r.ReleaseBuffer(b)
	}
}
