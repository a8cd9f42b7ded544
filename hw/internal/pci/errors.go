package pci

import (
	"errors"
	"fmt"
)

var (
	// ErrAddress reports a string that is not a PCI address.
	ErrAddress = errors.New("pci: bad address")

	// ErrCapabilities is matched by a *CapabilityError.
	ErrCapabilities = errors.New("pci: bad capability list")

	// ErrFormat reports a sysfs file whose contents do not parse.
	ErrFormat = errors.New("pci: malformed sysfs file")

	// ErrNotMemory reports a BAR that is unused or not memory space (an
	// I/O port BAR cannot be mapped).
	ErrNotMemory = errors.New("pci: not a memory BAR")
)

// Error is the error of an operation on a PCI function.
type Error struct {
	Op   string // "config read", "enable", "capabilities", "map BAR 4", ...
	Addr string // the function's address, as given or 0000:00:04.0
	Err  error
}

func (e *Error) Error() string { return "pci " + e.Addr + ": " + e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// CapabilityError reports a capability list that cannot be walked: Offset
// is where the walk stopped (the pointer, or the capability whose length is
// bad).
type CapabilityError struct {
	Offset int
	Reason string
}

func (e *CapabilityError) Error() string {
	return fmt.Sprintf("pci: bad capability list at %#x: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrCapabilities.
func (e *CapabilityError) Is(target error) bool { return target == ErrCapabilities }
