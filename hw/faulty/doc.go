// Package faulty makes any hw.Block fail on demand: a wrapper that injects
// I/O errors and cuts the power, for error-path and crash tests of the stores
// over a real device (hw/file on an O_DIRECT image, a userspace virtio
// driver) as well as over memory (SPEC §4 Invariant B, STYLE 9). It also
// holds the fault-matching rule (Op, Fault, Faults) that hw/crash uses, so
// that both fail requests the same way.
//
// # Contract
//
// New(dev) returns a *Device that implements hw.Block, hw.Zeroer,
// hw.Discarder and hw.Allocator over dev, following the wrapper convention
// of package hw:
//
//   - Info is dev's, read once by New; Unwrap returns dev; Close closes dev
//     (it does not flush) and is idempotent when dev's Close is.
//   - A request is first checked like any driver checks it: after Close it
//     fails with hw.ErrClosed, then an invalid one fails as hw.CheckRequest
//     or hw.CheckRange says, then WriteZeroes, resp. Discard, fails with
//     Kind hw.ErrUnsupported when dev lacks hw.Zeroer, resp. hw.Discarder
//     (so hw.WriteZeroes falls back to writes through the wrapper). A
//     request refused by these checks counts for nothing below and is not
//     passed to dev. AllocBuffer is hw.AllocBuffer(dev), and ReleaseBuffer
//     is hw.ReleaseBuffer(dev); Buffers counts the buffers out, so that a
//     test can check that its code gives back every one it took, as a
//     driver's pool of DMA memory needs.
//   - A checked request then fails here, without being passed to dev, when
//     the power is lost or fails at it, or else when an injected fault
//     fires (in this order); otherwise it is passed to dev and its result is
//     dev's.
//
// # Injected errors
//
// InjectError arms a Fault: requests of the given kinds (Op) overlapping the
// given sectors fail with Kind hw.ErrIO and the LBA of the first faulty
// sector they touch, a given number of times or forever (Faults.Fire has the
// exact rule). A request failed by a fault is not passed to dev: a failed
// write changes nothing, a failed flush flushes nothing, a failed read
// leaves the buffers as they were.
//
// # Power loss
//
// FailAtWrite(n) cuts the power at the n-th modifying request (Write,
// WriteZeroes or Discard that passed the checks while the power was on,
// whether a fault then fails it or not) counted from the call; PowerOff cuts
// it at once. The request at the crash point and every later checked
// request fail with an *hw.Error of Kind hw.ErrIO and Err ErrPowerLost, and
// none of them is passed to dev.
//
// Nothing is torn or dropped here: dev keeps whatever it acknowledged (and
// whatever its own volatile cache does with unflushed writes), because a
// real device keeps running. What the wrapper gives a crash test over a real
// device is the request stream cut at a chosen point: the store sees the
// device die mid-workload, and the test then reopens the medium and checks
// what recovery finds. Modelling what a power failure does to unflushed
// sectors (drops, reordering, torn multi-sector writes) is hw/crash's job,
// over hw/mem.
//
// # Concurrency
//
// A Device is safe for concurrent use and does not serialize the requests
// it passes down: it takes its lock only to decide a request's fate (the
// checks, the power, the crash point, the faults, the counters) and releases
// it before calling dev, so concurrent requests stay concurrent on dev.
// Hence:
//
//   - Counting follows the order in which requests take the lock, not the
//     order in which they reach or complete on dev: the n-th modifying
//     request of FailAtWrite, and which request uses up a fault's count, are
//     decided in lock order.
//   - That order has exactly one power-loss boundary: every request that
//     took the lock before the crash point (or before PowerOff) and was not
//     failed by a fault is passed to dev and returns dev's result, even if
//     dev completes it after the boundary; the crash-point request and every
//     checked request after it fail with ErrPowerLost.
//   - Requests admitted before the boundary may still be running on dev when
//     the power fails. Every request that fails with ErrPowerLost, and
//     PowerOff, return only after all of them have returned, so once a
//     caller sees the power lost, dev is idle and is sent nothing more: a
//     test may inspect, copy or reopen the medium.
//
// # Counters
//
// Stats counts the requests passed to dev, by kind. As long as no fault has
// failed a modifying request, Writes+Zeroes+Discards is the number of crash
// points FailAtWrite could have chosen so far, so a test can count the
// writes W of a workload and run it again for each n = 1..W.
package faulty
