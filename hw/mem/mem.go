// Package mem is an in-memory hw.Block: a RAM disk for tests and small uses.
//
// A Device implements the hw contract (SPEC §8, package hw) over sparse
// memory: the medium is kept as 64 KiB chunks allocated on the first write
// that puts a non-zero byte in them, and every unwritten byte reads as zero,
// so a test can make a 64 GiB device and pay only for what it writes.
// WriteZeroes and Discard free whole chunks and zero the partial ones at the
// edges; after Discard the range reads as zeroes (the contract lets callers
// rely on nothing, this driver promises zeroes).
//
// There is no power to lose: every Write is durable as soon as it returns and
// Flush only reports ErrClosed after Close. The crash-simulating device that
// models volatile caches and torn writes is hw/crash, built on this one.
//
// Besides the Block methods a Device offers helpers for tests that look at the
// medium from outside: Bytes, ReaderAt, Size and Allocated read the image,
// Clone copies it, Reopen and ReadOnlyView open further handles on the same
// medium. These helpers keep working after Close, so a test can close the
// device it handed to a store and still inspect what the store left behind.
//
// A Device is safe for concurrent use: reads share a lock, writes take it
// exclusively, so each request is atomic with respect to the others.
package mem

import (
	"math"
	"sync/atomic"

	"github.com/tarstore/tarstore/hw"
)

// Device is an in-memory block device. Several Devices (handles) may share one
// medium: see Reopen and ReadOnlyView. Each handle has its own read-only flag
// and its own closed state.
type Device struct {
	s      *store
	info   hw.Info
	closed atomic.Bool
}

var (
	_ hw.Block     = (*Device)(nil)
	_ hw.Zeroer    = (*Device)(nil)
	_ hw.Discarder = (*Device)(nil)
)

// model is the Info().Model of every mem device, also used in its errors.
const model = "mem"

// New returns a writable, zero-filled device of sectors sectors of
// sectorSize bytes. It fails with a *hw.Error of Op "open" and Kind
// hw.ErrMisaligned unless sectorSize is a positive multiple of 512, and of
// Kind hw.ErrOutOfRange when sectors is 0 or the capacity in bytes does not
// fit an int64.
func New(sectorSize int, sectors uint64) (*Device, error) {
	if sectorSize <= 0 || sectorSize%512 != 0 {
		return nil, &hw.Error{Op: "open", Device: model, Sectors: sectors, Kind: hw.ErrMisaligned}
	}
	if sectors == 0 || sectors > math.MaxInt64/uint64(sectorSize) {
		return nil, &hw.Error{Op: "open", Device: model, Sectors: sectors, Kind: hw.ErrOutOfRange}
	}
	info := hw.Info{SectorSize: sectorSize, Sectors: sectors, Driver: "mem", Model: model}
	return &Device{s: newStore(info.Size()), info: info}, nil
}

// FromBytes returns a writable device holding a copy of the image b. It
// fails with a *hw.Error of Op "open" and Kind hw.ErrMisaligned unless
// sectorSize is a positive multiple of 512 and len(b) a non-zero multiple of
// sectorSize.
func FromBytes(sectorSize int, b []byte) (*Device, error) {
	if sectorSize <= 0 || sectorSize%512 != 0 || len(b) == 0 || len(b)%sectorSize != 0 {
		return nil, &hw.Error{Op: "open", Device: model, Kind: hw.ErrMisaligned}
	}
	d, err := New(sectorSize, uint64(len(b)/sectorSize))
	if err != nil {
		return nil, err
	}
	d.s.writeAt(b, 0)
	return d, nil
}

// Info returns the device's geometry. Driver is "mem", Model "mem".
func (d *Device) Info() hw.Info { return d.info }

// Close closes this handle; later requests through it fail with
// hw.ErrClosed. The medium stays readable through the image helpers and
// through other handles. Close is idempotent and always returns nil.
func (d *Device) Close() error {
	d.closed.Store(true)
	return nil
}

// fail builds the *hw.Error for a request that is rejected before it
// touches the medium.
func (d *Device) fail(op string, lba, sectors uint64, kind error) error {
	return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: kind}
}
