package pci

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Driver returns the name of the kernel driver bound to the function
// ("virtio-pci", "nvme", "vfio-pci"), or "" when none is.
func (f *Function) Driver() (string, error) {
	target, err := os.Readlink(filepath.Join(f.dir, "driver"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", f.err("driver", err)
	}
	return filepath.Base(target), nil
}

// Unbind detaches the function from its kernel driver by writing its
// address to driver/unbind. It does nothing when no driver is bound.
func (f *Function) Unbind() error {
	name, err := f.Driver()
	if err != nil || name == "" {
		return err
	}
	return f.writeFile("unbind", filepath.Join(f.dir, "driver", "unbind"), f.addr.String())
}

// SetDriverOverride writes driver_override: from now on only the driver
// named may bind the function ("" clears the override). It does not bind;
// Probe does.
func (f *Function) SetDriverOverride(driver string) error {
	return f.writeFile("driver_override", filepath.Join(f.dir, "driver_override"), driver+"\n")
}

// Probe asks the kernel to bind a driver to the function (writing its
// address to drivers_probe, next to root): the one in driver_override when
// set.
func (f *Function) Probe() error {
	return f.writeFile("drivers_probe", filepath.Join(filepath.Dir(f.root), "drivers_probe"), f.addr.String())
}

// writeFile writes s to an existing sysfs attribute in one write(2), as
// sysfs stores expect; it never creates the file.
func (f *Function) writeFile(op, path, s string) error {
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return f.err(op, err)
	}
	_, err = w.Write([]byte(s))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return f.err(op, err)
	}
	return nil
}
