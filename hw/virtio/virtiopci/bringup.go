package virtiopci

import (
	"fmt"
	"time"
)

// state is a step of the device initialization sequence (§3.1.1).
type state uint8

const (
	stateReset         state = iota // write 0 to device_status
	stateResetWait                  // read device_status until it is 0 (§4.1.4.3.2)
	stateAcknowledge                // set ACKNOWLEDGE: a driver noticed the device
	stateDriver                     // set DRIVER: it knows how to drive it
	stateReadFeatures               // read the 64 device feature bits
	stateNegotiate                  // idle until the driver chooses features
	stateWriteFeatures              // write the driver's features
	stateFeaturesOK                 // set FEATURES_OK
	stateCheckFeatures              // FEATURES_OK must read back set
	stateQueues                     // idle while the driver sets up queues
	stateDriverOK                   // set DRIVER_OK
	stateLive                       // idle: the device runs
	stateFailed                     // idle: FAILED set; only a reset leaves it
)

var stateNames = [...]string{
	"reset", "reset wait", "ACKNOWLEDGE", "DRIVER", "read features", "negotiate",
	"write features", "FEATURES_OK", "check FEATURES_OK", "queue setup", "DRIVER_OK", "live", "failed",
}

func (s state) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// idle reports whether the state has no step: the caller moves on with
// negotiate, start or reset.
func (s state) idle() bool {
	return s == stateNegotiate || s == stateQueues || s == stateLive || s == stateFailed
}

// bringup is the initialization sequence as a state machine over the
// common configuration registers. Each step does one state's register
// accesses and moves to the next state; the time it takes is the caller's
// business (run).
type bringup struct {
	c      common
	state  state
	status uint8  // status bits the driver has set
	device uint64 // features the device offers (from stateReadFeatures)
	driver uint64 // features the driver acknowledges (from negotiate)
	err    error  // why the state is stateFailed
}

// step performs the current state's accesses. In stateResetWait it stays
// while the status is not 0. In an idle state it does nothing. An error is
// a *StatusError; the machine is then in stateFailed.
func (b *bringup) step() error {
	switch b.state {
	case stateReset:
		b.status = 0
		b.c.setStatus(0)
		b.state = stateResetWait
	case stateResetWait:
		if b.c.status() == 0 {
			b.state = stateAcknowledge
		}
	case stateAcknowledge:
		b.set(statusAcknowledge, stateDriver)
	case stateDriver:
		b.set(statusDriver, stateReadFeatures)
	case stateReadFeatures:
		b.device = b.c.deviceFeatures()
		b.state = stateNegotiate
	case stateWriteFeatures:
		b.c.setDriverFeatures(b.driver)
		b.state = stateFeaturesOK
	case stateFeaturesOK:
		b.set(statusFeaturesOK, stateCheckFeatures)
	case stateCheckFeatures:
		s := b.c.status()
		if err := b.check(s); err != nil {
			return err
		}
		if s&statusFeaturesOK == 0 {
			return b.fail(s, ErrFeaturesRefused)
		}
		b.state = stateQueues
	case stateDriverOK:
		b.set(statusDriverOK, stateDriverOK)
		if err := b.check(b.c.status()); err != nil {
			return err
		}
		b.state = stateLive
	}
	return nil
}

// set adds bit to the device status and moves to next.
func (b *bringup) set(bit uint8, next state) {
	b.status |= bit
	b.c.setStatus(b.status)
	b.state = next
}

// check fails the machine if status s, read in the current state, has
// DEVICE_NEEDS_RESET.
func (b *bringup) check(s uint8) error {
	if s&statusNeedsReset != 0 {
		return b.fail(s, ErrNeedsReset)
	}
	return nil
}

// fail records why the current state failed, sets FAILED in the status
// just read, s (§3.1.1: the driver "has given up on the device"), and moves
// to stateFailed. A device still resetting is not written to (§4.1.4.3.2).
func (b *bringup) fail(s uint8, err error) error {
	b.err = &StatusError{State: b.state.String(), Status: s, Err: err}
	if b.state != stateResetWait {
		b.status = s | statusFailed
		b.c.setStatus(b.status)
	}
	b.state = stateFailed
	return b.err
}

// reset starts over from stateReset.
func (b *bringup) reset() {
	b.state, b.err = stateReset, nil
}

// negotiate leaves stateNegotiate with the driver's features.
func (b *bringup) negotiate(features uint64) {
	b.driver = features
	b.state = stateWriteFeatures
}

// start leaves stateQueues for DRIVER_OK.
func (b *bringup) start() { b.state = stateDriverOK }

// resetPoll is the pause between reads of device_status during a reset.
const resetPoll = 10 * time.Microsecond

// run steps the machine until it reaches stop or an idle state. A reset
// still in progress after timeout fails with ErrResetTimeout.
func (b *bringup) run(stop state, timeout time.Duration) error {
	start := time.Now()
	for b.state != stop && !b.state.idle() {
		prev := b.state
		if err := b.step(); err != nil {
			return err
		}
		if b.state != prev {
			continue
		}
		// Only stateResetWait stays put.
		if time.Since(start) > timeout {
			return b.fail(b.c.status(), ErrResetTimeout)
		}
		time.Sleep(resetPoll)
	}
	return nil
}
