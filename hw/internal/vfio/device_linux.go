package vfio

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/mmio"
	"github.com/tarstore/tarstore/hw/internal/pci"
)

// Device is a PCI function opened through VFIO: its own container (one
// IOMMU address space) with the function's group in it, and the device
// file. Its methods are safe for concurrent use; none may be called after
// Close, which they report as ErrClosed.
type Device struct {
	addr    string // 0000:00:04.0
	groupID int
	iommu   int // Type1v2IOMMU or Type1IOMMU
	info    Info
	regions [regionConfig + 1]RegionInfo
	page    int

	// mu excludes Close (and the methods that change the mappings) from
	// the methods that use the descriptors.
	mu                   sync.RWMutex
	closed               bool
	container, group, fd int // -1 when not open
	alloc                *iovaAllocator
	dmas                 map[uint64][]byte // live DMA mappings, by IOVA
	bars                 []*mmio.Mapped
}

// Open opens the PCI function at addr, bound to vfio-pci (Bind), through
// VFIO's type1 IOMMU interface (Documentation/driver-api/vfio.rst), in
// this order:
//
//  1. the function's IOMMU group: the number its sysfs iommu_group link
//     names (none: ErrNoIOMMUGroup); its driver must be vfio-pci
//     (ErrNotBound);
//  2. the container, <DevDir>/vfio: VFIO_GET_API_VERSION must be 0
//     (ErrAPIVersion), VFIO_CHECK_EXTENSION must accept
//     VFIO_TYPE1v2_IOMMU, else VFIO_TYPE1_IOMMU (ErrNoType1);
//  3. the group, <DevDir>/<group>: VFIO_GROUP_GET_STATUS must say viable
//     (ErrGroupNotViable, naming the group's devices and drivers);
//     VFIO_GROUP_SET_CONTAINER puts it in the container, then
//     VFIO_SET_IOMMU picks the IOMMU type chosen in 2;
//  4. the device: VFIO_GROUP_GET_DEVICE_FD with its address;
//     VFIO_DEVICE_GET_INFO (it must be a vfio-pci device with the fixed
//     regions, ErrNotPCI); VFIO_DEVICE_GET_REGION_INFO of regions 0-7
//     (BARs 0-5, the ROM, configuration space).
//
// Opening the device file makes vfio-pci enable and reset the function
// (a function-level reset when it has one): whatever state a previous
// user left is gone. Each Open has its own container, so its DMA
// mappings are its own. Errors are *Error values with Op "open".
func Open(addr string, opts Options) (*Device, error) {
	fn, err := pci.Open(opts.root(), addr)
	if err != nil {
		return nil, &Error{Op: "open", Addr: addr, Err: err}
	}
	d := &Device{addr: fn.Address().String(), container: -1, group: -1, fd: -1, page: os.Getpagesize()}
	if err := d.open(fn, opts); err != nil {
		if cerr := d.closeFiles(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, d.err("open", err)
	}
	d.alloc = newIOVAAllocator(d.page)
	d.dmas = make(map[uint64][]byte)
	return d, nil
}

func (d *Device) open(fn *pci.Function, opts Options) error {
	var err error
	if d.groupID, err = iommuGroup(fn); err != nil {
		return err
	}
	switch driver, err := fn.Driver(); {
	case err != nil:
		return err
	case driver == "":
		return fmt.Errorf("%w: no driver is bound", ErrNotBound)
	case driver != driverName:
		return fmt.Errorf("%w: %s is bound", ErrNotBound, driver)
	}
	dir := opts.DevDir
	if dir == "" {
		dir = DefaultDevDir
	}

	if d.container, err = openNode(filepath.Join(dir, "vfio")); err != nil {
		return err
	}
	switch v, err := ioctl(d.container, ioctlGetAPIVersion, "VFIO_GET_API_VERSION", 0); {
	case err != nil:
		return err
	case v != apiVersion:
		return fmt.Errorf("%w %d (want %d)", ErrAPIVersion, v, apiVersion)
	}
	if d.iommu, err = iommuType(d.container); err != nil {
		return err
	}

	if d.group, err = openNode(filepath.Join(dir, strconv.Itoa(d.groupID))); err != nil {
		return err
	}
	status := newGroupStatus()
	if _, err := ioctlPtr(d.group, ioctlGroupGetStatus, "VFIO_GROUP_GET_STATUS", status[:]); err != nil {
		return err
	}
	if status.flags()&groupFlagViable == 0 {
		return fmt.Errorf("%w: group %d holds %s", ErrGroupNotViable, d.groupID, groupMembers(fn))
	}
	var container [4]byte // __s32
	ne.PutUint32(container[:], uint32(int32(d.container)))
	if _, err := ioctlPtr(d.group, ioctlGroupSetContainer, "VFIO_GROUP_SET_CONTAINER", container[:]); err != nil {
		return err
	}
	if _, err := ioctl(d.container, ioctlSetIOMMU, "VFIO_SET_IOMMU", uintptr(d.iommu)); err != nil {
		return err
	}

	// The kernel opens the device file O_CLOEXEC.
	if d.fd, err = ioctlPtr(d.group, ioctlGroupGetDeviceFD, "VFIO_GROUP_GET_DEVICE_FD", append([]byte(d.addr), 0)); err != nil {
		return err
	}
	info := newDeviceInfo()
	if _, err := ioctlPtr(d.fd, ioctlDeviceGetInfo, "VFIO_DEVICE_GET_INFO", info[:]); err != nil {
		return err
	}
	d.info = info.info()
	if d.info.Flags&DeviceFlagPCI == 0 || d.info.Regions <= regionConfig {
		return fmt.Errorf("%w: flags %#x, %d regions", ErrNotPCI, d.info.Flags, d.info.Regions)
	}
	for i := range d.regions {
		r := newRegionInfo(i)
		if _, err := ioctlPtr(d.fd, ioctlDeviceGetRegionInfo, "VFIO_DEVICE_GET_REGION_INFO", r[:]); err != nil {
			return err
		}
		d.regions[i] = r.info()
	}
	if d.regions[regionConfig].Size == 0 {
		return fmt.Errorf("%w: no configuration space region", ErrNotPCI)
	}
	return nil
}

// openNode opens a VFIO character device read-write, close-on-exec.
func openNode(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// iommuType returns the IOMMU type the container supports, TYPE1v2
// preferred.
func iommuType(container int) (int, error) {
	for _, typ := range []int{Type1v2IOMMU, Type1IOMMU} {
		ok, err := ioctl(container, ioctlCheckExtension, "VFIO_CHECK_EXTENSION", uintptr(typ))
		if err != nil {
			return 0, err
		}
		if ok > 0 {
			return typ, nil
		}
	}
	return 0, ErrNoType1
}

func (d *Device) err(op string, err error) error { return &Error{Op: op, Addr: d.addr, Err: err} }

// Address returns the function's address, as sysfs names it.
func (d *Device) Address() string { return d.addr }

// Group returns the number of the function's IOMMU group.
func (d *Device) Group() int { return d.groupID }

// IOMMU returns the container's IOMMU type, Type1v2IOMMU or Type1IOMMU.
func (d *Device) IOMMU() int { return d.iommu }

// Info returns what VFIO_DEVICE_GET_INFO said of the device.
func (d *Device) Info() Info { return d.info }

// Region returns what VFIO_DEVICE_GET_REGION_INFO said of region i, 0-7:
// BARs 0-5, the expansion ROM (6), configuration space (7).
func (d *Device) Region(i int) (RegionInfo, error) {
	if i < 0 || i >= len(d.regions) {
		return RegionInfo{}, d.err("region info", fmt.Errorf("%w: region %d (0-%d)", ErrInvalid, i, len(d.regions)-1))
	}
	return d.regions[i], nil
}

// configRange checks that n bytes at off lie in configuration space.
func (d *Device) configRange(off, n int) error {
	size := d.regions[regionConfig].Size
	if d.closed {
		return ErrClosed
	}
	if off < 0 || n < 0 || uint64(off) > size || uint64(n) > size-uint64(off) {
		return fmt.Errorf("%w: %d bytes at %#x of a %#x-byte configuration space", ErrInvalid, n, off, size)
	}
	return nil
}

// ReadConfig reads len(b) bytes of configuration space at off: pread of
// the device file at the configuration region's offset plus off. vfio-pci
// virtualizes parts of it (the BARs, some command bits, the capability
// list it hides) and passes the rest through, vendor-specific capabilities
// included.
func (d *Device) ReadConfig(off int, b []byte) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.configRange(off, len(b)); err != nil {
		return d.err("config read", err)
	}
	base := int64(d.regions[regionConfig].Offset) + int64(off)
	for done := 0; done < len(b); {
		n, err := unix.Pread(d.fd, b[done:], base+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return d.err("config read", os.NewSyscallError("pread", err))
		case n == 0:
			return d.err("config read", fmt.Errorf("%w: %d of %d bytes at %#x", io.ErrUnexpectedEOF, done, len(b), off))
		}
		done += n
	}
	return nil
}

// WriteConfig writes b to configuration space at off: pwrite of the
// device file at the configuration region's offset plus off.
func (d *Device) WriteConfig(off int, b []byte) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.configRange(off, len(b)); err != nil {
		return d.err("config write", err)
	}
	base := int64(d.regions[regionConfig].Offset) + int64(off)
	for done := 0; done < len(b); {
		n, err := unix.Pwrite(d.fd, b[done:], base+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return d.err("config write", os.NewSyscallError("pwrite", err))
		case n == 0:
			return d.err("config write", fmt.Errorf("%w: %d of %d bytes at %#x", io.ErrShortWrite, done, len(b), off))
		}
		done += n
	}
	return nil
}

// EnableMemoryAndMaster sets memory space and bus master enable in the
// command register (pci.EnableMemoryAndMaster), through the VFIO config
// region, so that the BARs answer and the function may do DMA (through
// the IOMMU).
func (d *Device) EnableMemoryAndMaster() error { return pci.EnableMemoryAndMaster(d) }

// MapBAR maps memory BAR n (0-5), all of it: the BAR's region of the
// device file, which must have the mmap flag (ErrNotMappable otherwise;
// an unimplemented BAR, or the upper half of a 64-bit one, is ErrNoBAR).
// Memory space must be enabled (EnableMemoryAndMaster) before the
// registers are accessed. Close unmaps every BAR this Device mapped;
// closing the result earlier is allowed.
func (d *Device) MapBAR(n int) (*mmio.Mapped, error) {
	op := fmt.Sprintf("map BAR %d", n)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, d.err(op, ErrClosed)
	}
	if n < 0 || n > 5 {
		return nil, d.err(op, fmt.Errorf("%w: BARs are 0-5", ErrNoBAR))
	}
	r := d.regions[regionBAR0+n]
	switch {
	case r.Size == 0:
		return nil, d.err(op, fmt.Errorf("%w: the device has no BAR %d (region size 0)", ErrNoBAR, n))
	case r.Flags&RegionFlagMmap == 0 || r.Size > math.MaxInt:
		return nil, d.err(op, fmt.Errorf("%w: region flags %#x, %#x bytes", ErrNotMappable, r.Flags, r.Size))
	}
	m, err := mmio.MapFD(d.fd, int64(r.Offset), int(r.Size))
	if err != nil {
		return nil, d.err(op, err)
	}
	d.bars = append(d.bars, m)
	return m, nil
}

// Reset resets the function with VFIO_DEVICE_RESET (a function-level or
// other reset the kernel chose), when the device info says it can
// (DeviceFlagReset; ErrNoReset otherwise). Registers, and the command
// register among them, return to their reset values: DMA mappings stay.
func (d *Device) Reset() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return d.err("reset", ErrClosed)
	case d.info.Flags&DeviceFlagReset == 0:
		return d.err("reset", fmt.Errorf("%w (device flags %#x)", ErrNoReset, d.info.Flags))
	}
	if _, err := ioctl(d.fd, ioctlDeviceReset, "VFIO_DEVICE_RESET", 0); err != nil {
		return d.err("reset", err)
	}
	return nil
}

// Close releases everything Open and the other methods acquired, in an
// order that keeps the device away from freed memory:
//
//  1. unmap the BARs (a mapping holds a reference to the device file, and
//     would keep the device open);
//  2. close the device file: vfio-pci clears bus mastering and resets
//     the function, which then no longer reaches DMA memory;
//  3. unmap the DMA mappings not yet released (VFIO_IOMMU_UNMAP_DMA, then
//     munmap);
//  4. close the group (which leaves the container) and the container.
//
// It is idempotent; the release functions of MapDMA do nothing after it.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	for _, m := range d.bars {
		errs = append(errs, m.Close())
	}
	d.bars = nil
	errs = append(errs, closeFD(&d.fd))
	for iova, b := range d.dmas {
		errs = append(errs, d.unmapDMA(iova, b))
	}
	clear(d.dmas)
	errs = append(errs, d.closeFiles())
	if err := errors.Join(errs...); err != nil {
		return d.err("close", err)
	}
	return nil
}

// closeFiles closes the device, the group and the container, those open.
func (d *Device) closeFiles() error {
	return errors.Join(closeFD(&d.fd), closeFD(&d.group), closeFD(&d.container))
}

// closeFD closes *fd unless it is -1, and sets it to -1.
func closeFD(fd *int) error {
	if *fd < 0 {
		return nil
	}
	err := unix.Close(*fd)
	*fd = -1
	return os.NewSyscallError("close", err)
}
