// Package crash is a block device that can lose power and fail on demand,
// for crash-consistency tests of the stores (SPEC §4 Invariant B, STYLE 9).
// It follows pebble's vfs.MemFS CrashClone and SQLite's crash tests: run a
// workload, cut the power at any write, and check what a re-opened store
// finds on the medium.
//
// # The model
//
// A Device wraps an hw/mem device, the durable medium: what survives a power
// failure no matter what. Every write (Write, WriteZeroes, Discard) that has
// not yet been covered by a successful Flush sits in an ordered pending
// log, the model of a volatile write cache; reads see the durable medium with
// the pending log applied in order, as the hw contract requires. Flush moves
// the whole log into the durable medium. Discard zeroes, like WriteZeroes.
//
// The power fails either at a chosen write (FailAtWrite: the n-th write
// counted from the call) or at once (PowerOff). The interrupted write is
// issued but never acknowledged: it fails, and it joins the pending log, so
// the medium may or may not show it after the crash. From then on every
// valid request fails with an *hw.Error of Kind hw.ErrIO whose Err is
// ErrPowerLost (invalid requests are still rejected first with the usual
// Kind, as a driver checks them before it talks to the hardware).
//
// Crash, callable at any time, returns a fresh hw/mem device holding one
// possible medium after a crash at that point: the durable contents plus,
// depending on the Mode, none, all or a random subset of the pending
// sectors. The Device itself is not changed by Crash, so a test can take
// several crash images (several modes, several seeds) of one run.
//
// # Torn writes
//
// A torn write is a multi-sector write that reaches the medium only in part.
// In Tear mode each sector of each pending write survives or not
// independently, chosen by a pseudo-random source seeded with the seed
// (math/rand/v2 PCG: the same seed gives the same image), and the surviving
// sectors are applied in write order. So a write may survive while an earlier
// one to other sectors is lost (the device reordered them), and when two
// pending writes hit one sector the sector ends up with the older value, the
// newer one or its durable value. A single sector is never torn: it holds
// one whole version, as the hw contract promises.
//
// # Injected errors
//
// InjectError arms a Fault: requests of the given kinds (Op) overlapping the
// given sectors fail with Kind hw.ErrIO and the LBA of the first faulty
// sector they touch, a given number of times or forever. A failed write
// changes nothing (not even the pending log); a failed flush leaves the
// pending log pending. Op, Fault and the rule that picks the fault that
// fires are hw/faulty's, which injects the same faults into any hw.Block.
//
// # Counters
//
// Stats counts the requests that reached the medium, so a test can count
// the writes W of a workload and then run it again for each crash point
// n = 1..W with FailAtWrite(n).
//
// A Device is safe for concurrent use; its requests are serialized, so the
// write order, and therefore the crash point, is the order in which
// concurrent requests took the device's lock.
package crash

import (
	"sync"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/faulty"
	"github.com/tarstore/tarstore/hw/mem"
)

// Device is a crash-simulating, fault-injecting block device.
type Device struct {
	info hw.Info

	mu        sync.Mutex
	durable   *mem.Device // survives any power failure
	current   *mem.Device // what reads see: durable plus the pending log
	pending   []write     // writes since the last successful Flush, in order
	closed    bool
	powerLost bool
	failAt    int // the value of stats.Writes at which the power fails; 0: not armed
	faults    faulty.Faults
	stats     Stats
}

var (
	_ hw.Block     = (*Device)(nil)
	_ hw.Zeroer    = (*Device)(nil)
	_ hw.Discarder = (*Device)(nil)
)

// write is one entry of the pending log.
type write struct {
	lba, sectors uint64
	data         []byte // nil for WriteZeroes and Discard: zeroes
}

// New returns a Device whose durable medium is base. The Device takes base
// over: Flush writes into it, so after a successful Flush base holds exactly
// the durable contents, and the caller must not write to or close it while
// the Device is in use. New copies base once, for what reads see. The
// geometry and read-only flag are base's; Info reports Driver "crash".
func New(base *mem.Device) *Device {
	info := base.Info()
	info.Driver = "crash"
	return &Device{info: info, durable: base, current: base.Clone()}
}

// Info returns the geometry of the medium, with Driver "crash".
func (d *Device) Info() hw.Info { return d.info }

// Close closes the device: later requests fail with hw.ErrClosed. It does
// not flush and does not close the durable medium; Crash and Stats keep
// working. Close is idempotent and always returns nil.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

// Pending returns how many writes wait in the pending log: issued since the
// last successful Flush.
func (d *Device) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}

// fail builds the *hw.Error of a request refused by the device itself.
func (d *Device) fail(op string, lba, sectors uint64, kind, cause error) error {
	return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: kind, Err: cause}
}
