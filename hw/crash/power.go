package crash

import "github.com/tarstore/tarstore/hw/faulty"

// ErrPowerLost is the cause (hw.Error.Err) of every request that fails
// because the power was cut. Its Kind is hw.ErrIO. It is hw/faulty's
// sentinel, so errors.Is finds it whichever device lost the power.
var ErrPowerLost = faulty.ErrPowerLost

// FailAtWrite arms a power failure during the n-th write (Write, WriteZeroes
// or Discard that passes validation) counted from now, 1-based: n = 1 is the
// next write. That write fails with ErrPowerLost without being acknowledged
// and stays in the pending log; every later request fails too. n <= 0
// disarms a failure armed earlier. Writes() tells how many writes were
// issued so far, so a workload that issued W writes has crash points 1..W.
func (d *Device) FailAtWrite(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n <= 0 {
		d.failAt = 0
		return
	}
	d.failAt = d.stats.Writes + n
}

// PowerOff cuts the power now, between two requests: every later request
// fails with ErrPowerLost. The pending log is kept for Crash.
func (d *Device) PowerOff() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.powerLost = true
	d.failAt = 0
}

// PowerLost reports whether the power has been cut.
func (d *Device) PowerLost() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.powerLost
}
