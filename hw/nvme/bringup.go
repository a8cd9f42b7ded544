package nvme

import (
	"fmt"
	"time"

	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// clock is the time the bring-up waits in: the real one, or a test's.
type clock interface {
	Now() time.Time
	Sleep(d time.Duration)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

// registerPoll is the pause between reads of CSTS while waiting for it to
// change.
const registerPoll = time.Millisecond

// state is a step of controller initialization (NVMe Base 2.0 §3.5.1) or
// shutdown (§3.6.1).
type state uint8

const (
	stateReadCap       state = iota // read CAP and VS, check the controller is usable
	stateCheckEnabled               // read CC and CSTS: is it enabled (SeaBIOS leaves it so)?
	stateAwaitReadyOld              // CC.EN=1 but CSTS.RDY=0: let it finish enabling first
	stateDisable                    // clear CC.EN (and CC.SHN): a controller reset
	stateAwaitNotReady              // wait for CSTS.RDY=0
	stateConfigure                  // idle: the caller provides the admin queue
	stateProgram                    // write AQA, ASQ, ACQ and CC (EN clear)
	stateEnable                     // set CC.EN
	stateAwaitReady                 // wait for CSTS.RDY=1
	stateLive                       // idle: the admin queue works
	stateShutdown                   // write CC.SHN=01b (normal shutdown)
	stateAwaitShutdown              // wait for CSTS.SHST=10b
	stateOff                        // idle: disabled after a shutdown
	stateFailed                     // idle: err says why
)

var stateNames = [...]string{
	"read CAP", "check CC.EN", "await CSTS.RDY=1 before disabling", "disable", "await CSTS.RDY=0",
	"configure", "program admin queue", "enable", "await CSTS.RDY=1", "live",
	"shutdown", "await CSTS.SHST=10b", "off", "failed",
}

func (s state) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

func (s state) idle() bool {
	return s == stateConfigure || s == stateLive || s == stateOff || s == stateFailed
}

// bringup is controller initialization and shutdown as a state machine
// over the controller's registers: each step does one state's register
// accesses and moves on, or stays while CSTS does not yet say what the
// state waits for. run does the waiting, with a clock.
type bringup struct {
	r     mmio.Registers
	state state
	cap   capabilities
	vs    uint32
	csts  uint32 // last value read
	err   error  // why the state is stateFailed

	capRead      bool  // CAP is known: the controller may be disabled
	staleCFS     bool  // CSTS.CFS was set when the reset completed
	afterDisable state // where stateAwaitNotReady leads: stateConfigure or stateOff

	// The admin queue, for stateProgram.
	asq, acq         uint64
	asqSize, acqSize int
	shutdownTimeout  time.Duration
}

func newBringup(r mmio.Registers, shutdownTimeout time.Duration) *bringup {
	return &bringup{r: r, state: stateReadCap, afterDisable: stateConfigure, shutdownTimeout: shutdownTimeout}
}

// step performs the current state's accesses. An error (a
// *ControllerError, or ErrBadController from stateReadCap) leaves the
// machine in stateFailed.
func (b *bringup) step() error {
	switch b.state {
	case stateReadCap:
		b.cap = capabilities(mmio.Read64(b.r, regCAP))
		b.vs = b.r.Read32(regVS)
		if b.cap == 1<<64-1 {
			b.csts = b.r.Read32(regCSTS)
			return b.fail(ErrGone)
		}
		if err := b.checkCap(); err != nil {
			b.state, b.err = stateFailed, err
			return err
		}
		b.capRead = true
		b.state = stateCheckEnabled
	case stateCheckEnabled:
		cc := b.r.Read32(regCC)
		csts, err := b.status()
		switch {
		case err != nil:
			return err
		case cc&ccEnable == 0:
			b.state = stateAwaitNotReady // a reset may still be in progress
		case csts&(cstsRDY|cstsCFS) != 0:
			b.state = stateDisable
		default:
			// §3.1.3.5 (CC.EN): clearing EN while RDY is still 0
			// has undefined results; let the enable finish.
			b.state = stateAwaitReadyOld
		}
	case stateAwaitReadyOld:
		if csts, err := b.status(); err != nil {
			return err
		} else if csts&(cstsRDY|cstsCFS) != 0 { // a fatal controller is reset at once
			b.state = stateDisable
		}
	case stateDisable:
		cc := b.r.Read32(regCC)
		b.r.Write32(regCC, cc&^(ccEnable|ccSHNMask))
		b.state = stateAwaitNotReady
	case stateAwaitNotReady:
		// CSTS.CFS is no error here: this reset is what recovers
		// from it. A controller may keep it until it is enabled again
		// (QEMU's does), so it is noted as stale.
		if csts, err := b.status(); err != nil {
			return err
		} else if csts&cstsRDY == 0 {
			b.staleCFS = csts&cstsCFS != 0
			b.state = b.afterDisable
		}
	case stateProgram:
		b.r.Write32(regAQA, aqa(b.asqSize, b.acqSize))
		mmio.Write64(b.r, regASQ, b.asq)
		mmio.Write64(b.r, regACQ, b.acq)
		b.r.Write32(regCC, ccConfig)
		b.state = stateEnable
	case stateEnable:
		b.r.Write32(regCC, ccConfig|ccEnable)
		b.state = stateAwaitReady
	case stateAwaitReady:
		switch csts, err := b.status(); {
		case err != nil:
			return err
		case csts&cstsRDY != 0:
			b.state = stateLive
		case csts&cstsCFS != 0 && !b.staleCFS:
			return b.fail(ErrFatal)
		}
	case stateShutdown:
		csts, err := b.status()
		if err != nil {
			return err
		}
		if csts&cstsRDY == 0 || csts&cstsCFS != 0 {
			// Not running, or fatal: nothing to shut down, only
			// a reset helps.
			b.state = stateDisable
			break
		}
		cc := b.r.Read32(regCC)
		b.r.Write32(regCC, cc&^ccSHNMask|ccSHNNormal)
		b.state = stateAwaitShutdown
	case stateAwaitShutdown:
		switch csts, err := b.status(); {
		case err != nil:
			return err
		case csts&cstsCFS != 0:
			return b.fail(ErrFatal)
		case csts&cstsSHSTMask == cstsSHSTComplete:
			b.state = stateDisable
		}
	}
	return nil
}

// status reads CSTS; all ones is a controller that is gone.
func (b *bringup) status() (uint32, error) {
	b.csts = b.r.Read32(regCSTS)
	if b.csts == cstsGone {
		return b.csts, b.fail(ErrGone)
	}
	return b.csts, nil
}

// checkCap checks that the driver can use the controller CAP describes.
func (b *bringup) checkCap() error {
	c := b.cap
	switch {
	case c.css()&cssNVM == 0:
		return fmt.Errorf("%w: CAP %#x: no NVM Command Set (CSS %#x)", ErrBadController, uint64(c), c.css())
	case c.mpsmin() > 0:
		return fmt.Errorf("%w: CAP %#x: memory pages of %d bytes or more, the driver uses 4096", ErrBadController, uint64(c), c.minPageSize())
	case c.mqes() < 1:
		return fmt.Errorf("%w: CAP %#x: queues of %d entries", ErrBadController, uint64(c), c.mqes()+1)
	case c.cqDoorbell(ioQueue)+4 > b.r.Len():
		return fmt.Errorf("%w: CAP %#x: the doorbells of queue %d lie beyond the %#x-byte register file", ErrBadController, uint64(c), ioQueue, b.r.Len())
	}
	return nil
}

// fail records err as a *ControllerError of the current state and the
// last CSTS read, and moves to stateFailed.
func (b *bringup) fail(err error) error {
	b.err = &ControllerError{State: b.state.String(), CSTS: b.csts, Err: err}
	b.state = stateFailed
	return b.err
}

// limit bounds the wait of the current state, and names the error when it
// is exceeded: a controller that did not become ready and still shows
// CSTS.CFS failed fatally.
func (b *bringup) limit() (time.Duration, error) {
	switch {
	case b.state == stateAwaitShutdown:
		return b.shutdownTimeout, ErrShutdownTimeout
	case b.state == stateAwaitReady && b.csts&cstsCFS != 0:
		return b.cap.readyTimeout(), ErrFatal
	}
	return b.cap.readyTimeout(), ErrReadyTimeout
}

// configure leaves stateConfigure with the admin queue: sqSize entries at
// asq and cqSize at acq, both page-aligned.
func (b *bringup) configure(asq, acq uint64, asqSize, acqSize int) {
	b.asq, b.acq, b.asqSize, b.acqSize = asq, acq, asqSize, acqSize
	b.state = stateProgram
}

// shutdown starts a normal shutdown followed by a reset (§3.6.1).
func (b *bringup) shutdown() {
	b.state, b.err, b.afterDisable = stateShutdown, nil, stateOff
}

// disable starts a reset that leaves the controller disabled.
func (b *bringup) disable() {
	b.state, b.err, b.afterDisable = stateDisable, nil, stateOff
}

// run steps the machine until it reaches an idle state, waiting in the
// states that wait: at most CAP.TO for CSTS.RDY, at most the shutdown
// timeout for CSTS.SHST, polling every registerPoll of clk. The loop is
// bounded by the number of polls as well as by clk, so a clock that
// stands still cannot hang it.
func (b *bringup) run(clk clock) error {
	since, polls := clk.Now(), 0
	for !b.state.idle() {
		prev := b.state
		if err := b.step(); err != nil {
			return err
		}
		if b.state != prev {
			since, polls = clk.Now(), 0
			continue
		}
		limit, why := b.limit()
		polls++
		if clk.Now().Sub(since) >= limit || polls > int(limit/registerPoll)+1 {
			return b.fail(why)
		}
		clk.Sleep(registerPoll)
	}
	return b.err
}
