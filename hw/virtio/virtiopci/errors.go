package virtiopci

import (
	"errors"
	"fmt"
)

var (
	// ErrNotVirtio reports a PCI function that is not a modern virtio
	// device (vendor 0x1af4, device 0x1040-0x107f), or not of the type
	// asked for.
	ErrNotVirtio = errors.New("not a modern virtio PCI device")

	// ErrDriverBound is matched by a *DriverBoundError.
	ErrDriverBound = errors.New("a kernel driver is bound to the device")

	// ErrCapability reports a virtio structure that is missing, or whose
	// location the device gives is unusable: outside its BAR, misaligned,
	// too short, or too short for a queue's notify offset.
	ErrCapability = errors.New("bad virtio capability")

	// ErrResetTimeout reports a device whose status did not read 0 within
	// Options.ResetTimeout of a reset (§4.1.4.3.2).
	ErrResetTimeout = errors.New("device did not complete the reset")

	// ErrFeaturesRefused reports that FEATURES_OK did not read back set
	// after the driver wrote its features (§3.1.1 step 6): the device
	// does not support that subset.
	ErrFeaturesRefused = errors.New("device refused the features")

	// ErrNeedsReset reports that the device set DEVICE_NEEDS_RESET (§2.1):
	// it is unusable until reset (Close resets it). A removed device,
	// which reads all ones, reports it too.
	ErrNeedsReset = errors.New("device needs a reset (DEVICE_NEEDS_RESET)")

	// ErrConfigChanging reports a configuration space whose generation
	// kept changing while it was read (§2.5.1).
	ErrConfigChanging = errors.New("configuration space kept changing while read")

	// ErrInvalid reports an argument, or a call out of the order the
	// Transport's methods must come in, rejected before the device is
	// touched.
	ErrInvalid = errors.New("invalid argument")

	// ErrClosed reports a call after Close.
	ErrClosed = errors.New("transport closed")
)

// Error is the error of every operation: Op names it ("open", "set
// features", "setup queue 0", ...), Name is the transport's name and Err
// the cause, which matches one of this package's sentinels, or is a
// *StatusError, a *DriverBoundError or a package pci error.
type Error struct {
	Op   string
	Name string
	Err  error
}

func (e *Error) Error() string { return "virtio-pci " + e.Name + ": " + e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// StatusError reports a device status that stopped the bring-up, or that
// a running device reported: Status is the last value read from
// device_status, State the step of §3.1.1 that read it. Err is
// ErrResetTimeout, ErrFeaturesRefused or ErrNeedsReset.
type StatusError struct {
	State  string
	Status uint8
	Err    error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v (device_status %#02x at %s)", e.Err, e.Status, e.State)
}

func (e *StatusError) Unwrap() error { return e.Err }

// DriverBoundError reports that Open found a kernel driver bound to the
// function: a userspace driver and a kernel one must not share a device.
// Unbind it, or keep the driver off with driver_override (package pci).
type DriverBoundError struct {
	Addr   string // 0000:00:04.0
	Driver string // virtio-pci
}

func (e *DriverBoundError) Error() string {
	return fmt.Sprintf("kernel driver %s is bound to %s (unbind it first)", e.Driver, e.Addr)
}

// Is reports whether target is ErrDriverBound.
func (e *DriverBoundError) Is(target error) bool { return target == ErrDriverBound }
