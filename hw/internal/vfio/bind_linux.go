package vfio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tarstore/tarstore/hw/internal/pci"
)

// driverName is the kernel driver that hands a PCI function to VFIO.
const driverName = "vfio-pci"

// DefaultDevDir is where the VFIO character devices are: the container
// vfio and one node per IOMMU group, named by its number.
const DefaultDevDir = "/dev/vfio"

// DefaultBindTimeout bounds Bind's wait when Options.BindTimeout is 0.
const DefaultBindTimeout = 5 * time.Second

// bindPoll is how often Bind looks whether the kernel bound the function.
const bindPoll = 5 * time.Millisecond

// Options configure Bind and Open. The zero value is the running system.
type Options struct {
	// Root is the sysfs directory of PCI functions; pci.DefaultRoot
	// (/sys/bus/pci/devices) when empty. The drivers are looked for in
	// its sibling drivers/.
	Root string

	// DevDir is the directory of the VFIO device nodes; DefaultDevDir
	// when empty.
	DevDir string

	// BindTimeout bounds Bind's wait for vfio-pci to bind the function;
	// DefaultBindTimeout when 0.
	BindTimeout time.Duration
}

func (o Options) root() string {
	if o.Root == "" {
		return pci.DefaultRoot
	}
	return o.Root
}

// Bind hands the PCI function at addr to vfio-pci, through sysfs, in this
// order:
//
//  1. check that the function is in an IOMMU group (its iommu_group link):
//     without one vfio-pci cannot take it, and the error matches
//     ErrNoIOMMUGroup before anything is changed;
//  2. return at once if vfio-pci is bound already;
//  3. check that the vfio-pci driver is registered (<root>/../drivers/vfio-pci),
//     else ErrNoDriver: loading the module is the caller's job;
//  4. unbind the driver bound to the function, if any (driver/unbind);
//  5. write "vfio-pci" to driver_override, so that no other driver binds;
//  6. write the address to drivers_probe, which binds vfio-pci;
//  7. wait, at most opts.BindTimeout, until the driver link names
//     vfio-pci and iommu_group exists (ErrBindTimeout otherwise).
//
// The function's other driver, if any, loses the device: its block
// devices or interfaces disappear. Other devices of the same IOMMU group
// are left alone; Open reports ErrGroupNotViable while any of them is
// bound to a driver other than vfio-pci.
func Bind(addr string, opts Options) error {
	fn, err := pci.Open(opts.root(), addr)
	if err != nil {
		return &Error{Op: "bind", Addr: addr, Err: err}
	}
	fail := func(err error) error { return &Error{Op: "bind", Addr: fn.Address().String(), Err: err} }
	if _, err := iommuGroup(fn); err != nil {
		return fail(err)
	}
	driver, err := fn.Driver()
	switch {
	case err != nil:
		return fail(err)
	case driver == driverName:
		return nil
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(opts.root()), "drivers", driverName)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = ErrNoDriver
		}
		return fail(err)
	}
	if driver != "" {
		if err := fn.Unbind(); err != nil {
			return fail(err)
		}
	}
	if err := fn.SetDriverOverride(driverName); err != nil {
		return fail(err)
	}
	if err := fn.Probe(); err != nil {
		return fail(err)
	}
	timeout := opts.BindTimeout
	if timeout <= 0 {
		timeout = DefaultBindTimeout
	}
	for deadline := time.Now().Add(timeout); ; time.Sleep(bindPoll) {
		driver, err := fn.Driver()
		if err != nil {
			return fail(err)
		}
		if driver == driverName {
			if _, err := iommuGroup(fn); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("%w: bound driver %q after %v (did vfio-pci's probe fail? see the kernel log)", ErrBindTimeout, driver, timeout))
		}
	}
}

// iommuGroup returns the number of the function's IOMMU group, the name
// of the directory its iommu_group link points to
// (../../../kernel/iommu_groups/<n>).
func iommuGroup(fn *pci.Function) (int, error) {
	target, err := os.Readlink(filepath.Join(fn.Dir(), "iommu_group"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNoIOMMUGroup
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(filepath.Base(target))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: iommu_group links to %q, not a group number", pci.ErrFormat, target)
	}
	return n, nil
}

// groupMembers describes the devices of the function's IOMMU group and
// their drivers, "0000:00:04.0 (vfio-pci), 0000:00:04.1 (nvme)", for the
// error of a group that is not viable.
func groupMembers(fn *pci.Function) string {
	dir := filepath.Join(fn.Dir(), "iommu_group", "devices")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	var members []string
	for _, e := range entries {
		driver := "no driver"
		if target, err := os.Readlink(filepath.Join(dir, e.Name(), "driver")); err == nil {
			driver = filepath.Base(target)
		}
		members = append(members, e.Name()+" ("+driver+")")
	}
	return strings.Join(members, ", ")
}
