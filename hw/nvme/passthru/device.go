package passthru

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dio"
	"github.com/tarstore/tarstore/hw/nvme"
)

// Compile-time checks of the capabilities a Device offers.
var (
	_ hw.Block     = (*Device)(nil)
	_ hw.Zeroer    = (*Device)(nil)
	_ hw.Discarder = (*Device)(nil)
	_ hw.Allocator = (*Device)(nil)
)

// Defaults of Options.
const (
	DefaultMaxTransfer = 128 << 10
	DefaultDepth       = 32
	DefaultSysfs       = "/sys"
)

// bufferAlign is the address alignment of bounce buffers and of
// AllocBuffer's: a page, so that the kernel maps them without copying.
const bufferAlign = 4096

// dataAlign is the address alignment a caller's buffer needs to go to the
// kernel as it is: NVMe data pointers are dword aligned (Base 2.0 §4.1.1),
// and the Linux driver (since 5.19) maps memory so aligned without a copy.
const dataAlign = 4

// ErrNotNamespace reports a path that is not an NVMe namespace node
// (/dev/nvmeXnY or /dev/ngXnY): another file, a partition, or a node on
// which NVME_IOCTL_ID fails. Open fails with hw.ErrUnsupported wrapping it.
var ErrNotNamespace = errors.New("not an NVMe namespace node")

// Options tune Open. The zero value is the defaults.
type Options struct {
	// ReadOnly opens the namespace read-only (O_RDONLY, a shared lock);
	// writes fail with hw.ErrReadOnly. A write-protected namespace
	// (NSATTR bit 0) is read-only regardless.
	ReadOnly bool
	// Controller is the controller node that takes the admin commands
	// (Identify), such as /dev/nvme0. When empty it is found through
	// sysfs, else from the namespace node's name.
	Controller string
	// MaxTransfer bounds the data of one Read or Write command
	// (DefaultMaxTransfer when 0 or less). It is lowered to the kernel's
	// limit (queue/max_hw_sectors_kb in sysfs) and to MDTS, and rounded
	// down to whole blocks; larger requests are split.
	MaxTransfer int
	// Depth bounds the ioctls in flight at once on the device, from every
	// request together (DefaultDepth when 0 or less). Each one that waits
	// for the device holds an OS thread.
	Depth int
	// Timeout is each command's timeout_ms, rounded up to milliseconds.
	// 0 leaves the kernel's default: nvme_core's io_timeout (30 s) for
	// I/O, admin_timeout (60 s) for Identify.
	Timeout time.Duration
	// Sysfs is where sysfs is mounted (DefaultSysfs when empty).
	Sysfs string
}

func (o *Options) maxTransfer() int {
	if o.MaxTransfer > 0 {
		return o.MaxTransfer
	}
	return DefaultMaxTransfer
}

func (o *Options) depth() int {
	if o.Depth > 0 {
		return o.Depth
	}
	return DefaultDepth
}

func (o *Options) sysfs() string {
	if o.Sysfs != "" {
		return o.Sysfs
	}
	return DefaultSysfs
}

// Device is an NVMe namespace reached through the kernel's nvme driver. It
// implements hw.Block, hw.Zeroer, hw.Discarder and hw.Allocator and is safe
// for concurrent use; see the package documentation.
type Device struct {
	k       kernel
	info    hw.Info
	ident   nvme.Identity
	nsid    uint32
	maxXfer int // data bytes per Read or Write command: whole blocks
	timeout time.Duration
	flush   bool // VWC: Flush sends a Flush command
	zeroes  bool // ONCS bit 3: Write Zeroes
	dealloc bool // ONCS bit 2: Dataset Management (deallocate)

	slots  chan struct{} // one token per ioctl in flight
	bounce sync.Pool     // *[]byte of maxXfer bytes, page-aligned

	// mu is held for reading by every request for as long as it uses the
	// descriptors, and for writing by Close, so that a descriptor is never
	// used after it is closed (or its number reused).
	mu  sync.RWMutex
	fds []int // the namespace node first, then nodes held for their lock; nil once closed
}

// Info returns the geometry read at Open. It stays valid after Close.
func (d *Device) Info() hw.Info { return d.info }

// Identity returns what Identify reported at Open. MaxTransfer is the
// data of one Read or Write command as the Device sends them (the bound of
// Options.MaxTransfer, the kernel's limit and MDTS); Version is the
// Identify Controller VER field; QueueEntries is 0: the queues are the
// kernel's.
func (d *Device) Identity() nvme.Identity { return d.ident }

// AllocBuffer returns a zeroed page-aligned buffer of n bytes, which Read
// and Write hand to the kernel without a bounce copy when a command's data
// lies in it. A negative n yields nil.
func (d *Device) AllocBuffer(n int) []byte { return dio.Alloc(n, bufferAlign) }

// newDevice sets up a Device on the namespace node open as fds[0] (fds
// holds any other descriptor the Device owns), asking Identify through the
// controller node open as ctrl, which it does not close. kernelMax is the
// kernel's transfer limit in bytes, 0 when unknown. On failure the caller
// closes the descriptors.
func newDevice(k kernel, name string, fds []int, ctrl int, kernelMax int, opts Options) (*Device, error) {
	fail := func(kind, err error) (*Device, error) {
		return nil, &hw.Error{Op: "open", Device: name, Kind: kind, Err: err}
	}
	nsid, err := k.namespaceID(fds[0])
	switch {
	case err != nil:
		return fail(hw.ErrUnsupported, fmt.Errorf("%w: %w", ErrNotNamespace, os.NewSyscallError(ioctlName(ioctlID), err)))
	case nsid == 0:
		return fail(hw.ErrUnsupported, fmt.Errorf("%w: NVME_IOCTL_ID returned namespace 0", ErrNotNamespace))
	}
	admin := func(op string, nc nvme.Command) ([]byte, error) {
		data := make([]byte, nvme.IdentifySize)
		st, err := k.passthru(ctrl, ioctlAdminCmd, newCmd(nc, len(data), opts.Timeout), data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, os.NewSyscallError(ioctlName(ioctlAdminCmd), err))
		}
		if st != 0 {
			return nil, statusError(op, 0, st)
		}
		return data, nil
	}
	ctrlData, err := admin("identify controller", nvme.IdentifyControllerCommand())
	if err != nil {
		return fail(hw.ErrIO, err)
	}
	nsData, err := admin("identify namespace", nvme.IdentifyNamespaceCommand(nsid))
	if err != nil {
		return fail(hw.ErrIO, err)
	}
	limit := opts.maxTransfer()
	if kernelMax > 0 {
		limit = min(limit, kernelMax)
	}
	ns, err := nvme.DecodeIdentify(ctrlData, nsData, nsid, limit)
	if err != nil {
		return fail(hw.ErrUnsupported, err)
	}
	d := &Device{
		k: k,
		info: hw.Info{
			SectorSize: ns.BlockSize,
			Sectors:    ns.Blocks,
			ReadOnly:   opts.ReadOnly || ns.WriteProtected,
			Driver:     "nvme-passthru",
			Model:      ns.Model,
			Serial:     ns.Serial,

			MaxTransfer:  min(ns.MaxTransfer, nvme.MaxBlocks*ns.BlockSize),
			QueueDepth:   opts.depth(),
			WriteThrough: !ns.VolatileWriteCache,
		},
		ident:   ns.Identity,
		nsid:    nsid,
		maxXfer: min(ns.MaxTransfer, nvme.MaxBlocks*ns.BlockSize),
		timeout: opts.Timeout,
		flush:   ns.VolatileWriteCache,
		zeroes:  ns.WriteZeroes,
		dealloc: ns.Deallocate,
		slots:   make(chan struct{}, opts.depth()),
		fds:     fds,
	}
	d.ident.MaxTransfer = d.maxXfer
	d.bounce.New = func() any {
		b := dio.Alloc(d.maxXfer, bufferAlign)
		return &b
	}
	return d, nil
}

// Close closes the descriptors, and with them the locks. It does not
// flush, and waits for the requests in flight. Closing twice is not an
// error.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fds == nil {
		return nil
	}
	var errs []error
	for _, fd := range d.fds {
		if err := d.k.close(fd); err != nil {
			errs = append(errs, os.NewSyscallError("close", err))
		}
	}
	d.fds = nil
	if len(errs) > 0 {
		return &hw.Error{Op: "close", Device: d.info.Model, Kind: hw.ErrIO, Err: errors.Join(errs...)}
	}
	return nil
}

// statusError describes a command of op at lba that the kernel's ioctl
// answered with st > 0: an NVMe status (the Status Field of the completion
// queue entry, Base 2.0 §3.3.3.2.1).
func statusError(op string, lba uint64, st int) error {
	if st > 0x7fff {
		return fmt.Errorf("nvme %s: the kernel returned %#x, which is no NVMe status", op, st)
	}
	return nvme.NewStatusError(op, lba, nvme.Status(st))
}

// failure builds the *hw.Error of a request: kind, or the kind an NVMe
// status maps to.
func (d *Device) failure(op string, lba, sectors uint64, kind, err error) error {
	var se *nvme.StatusError
	if errors.As(err, &se) {
		kind = se.Kind()
	}
	return &hw.Error{Op: op, Device: d.info.Model, LBA: lba, Sectors: sectors, Kind: kind, Err: err}
}
