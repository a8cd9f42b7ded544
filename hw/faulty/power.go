package faulty

import "errors"

// ErrPowerLost is the cause (hw.Error.Err) of every request that fails
// because the power was cut, here or in hw/crash. Its Kind is hw.ErrIO.
var ErrPowerLost = errors.New("power lost")

// FailAtWrite arms a power failure at the n-th modifying request (Write,
// WriteZeroes or Discard that passes the checks, whether a fault then fails
// it or not) counted from now, 1-based: n = 1 is the next one. That request
// fails with ErrPowerLost without being passed to the wrapped device, and so
// does every later checked request. n <= 0 disarms a failure armed earlier.
// Under concurrency "next" is in the order requests take the Device's lock,
// and a request failing with ErrPowerLost returns only once the requests
// passed down before the cut have returned (see the package documentation).
func (d *Device) FailAtWrite(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n <= 0 {
		d.failAt = 0
		return
	}
	d.failAt = d.modifies + n
}

// PowerOff cuts the power now: every later checked request fails with
// ErrPowerLost. It returns once the requests passed to the wrapped device
// before the cut have returned.
func (d *Device) PowerOff() {
	d.mu.Lock()
	d.lost, d.failAt = true, 0
	d.mu.Unlock()
	d.inflight.Wait()
}

// PowerLost reports whether the power has been cut.
func (d *Device) PowerLost() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lost
}
