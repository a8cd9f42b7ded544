package passthru

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
)

// Open opens the NVMe namespace whose node is path — a block node
// (/dev/nvme0n1) or a generic character node (/dev/ng0n1), or a symbolic
// link to one — through the kernel's nvme driver, which stays bound to the
// controller. It locks the namespace (see the package documentation),
// reads its namespace ID with NVME_IOCTL_ID, and sends Identify Controller
// and Identify Namespace through the controller node (Options.Controller,
// else found through sysfs or the name: /dev/nvme0). Passthrough needs
// CAP_SYS_ADMIN: without it the ioctls fail with EACCES.
//
// Every error is an *hw.Error with Op "open" and Device path: Kind
// hw.ErrBusy when another opener holds the namespace (a lock, or EBUSY of
// an exclusive open of the block node) or the controller is not live (the
// kernel refuses to open its node with EWOULDBLOCK), hw.ErrUnsupported for a path that
// is no namespace node (ErrNotNamespace) or a namespace the driver cannot
// use (nvme.ErrBadController), hw.ErrReadOnly for a writable open that the
// system refuses with EROFS, hw.ErrIO otherwise, with the cause in Err.
func Open(path string, opts Options) (*Device, error) {
	fail := func(kind, err error) (*Device, error) {
		return nil, &hw.Error{Op: "open", Device: path, Kind: kind, Err: err}
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fail(kindOf(err), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return fail(kindOf(err), &fs.PathError{Op: "stat", Path: real, Err: err})
	}
	block := st.Mode&unix.S_IFMT == unix.S_IFBLK
	if !block && st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fail(hw.ErrUnsupported, fmt.Errorf("%w: %s is not a device node", ErrNotNamespace, real))
	}
	n, named := parseNode(filepath.Base(real))
	if !named && opts.Controller == "" {
		return fail(hw.ErrUnsupported, fmt.Errorf("%w: %s is named neither nvmeXnY nor ngXnY (set Options.Controller to use it)", ErrNotNamespace, real))
	}

	// The namespace node, for I/O: read-write (and, for the block node,
	// O_EXCL: an exclusive claim) unless read-only.
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if !opts.ReadOnly {
		flags = unix.O_RDWR | unix.O_CLOEXEC
		if block {
			flags |= unix.O_EXCL
		}
	}
	fd, err := openNode(real, flags)
	if err != nil {
		return fail(kindOf(err), err)
	}
	fds := []int{fd}
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	if named {
		other, err := lockNamespace(filepath.Dir(real), n, fd, block, opts.ReadOnly)
		if other >= 0 {
			fds = append(fds, other)
		}
		if err != nil {
			closeAll()
			return fail(kindOf(err), err)
		}
	} else if err := lock(fd, opts.ReadOnly); err != nil {
		closeAll()
		return fail(kindOf(err), err)
	}

	ctrlPath := opts.Controller
	if ctrlPath == "" {
		ctrlPath = filepath.Join(filepath.Dir(real), controllerName(opts.sysfs(), n))
	}
	ctrl, err := openController(ctrlPath)
	if err != nil {
		closeAll()
		return fail(kindOf(err), err)
	}
	limit := 0
	if named {
		limit = kernelLimit(opts.sysfs(), n)
	}
	d, err := newDevice(sysKernel{}, path, fds, ctrl, limit, opts)
	unix.Close(ctrl)
	if err != nil {
		closeAll()
		return nil, err
	}
	return d, nil
}

// lockNamespace takes the locks of namespace n, whose node in dir is open
// as fd (the block node when block is true, else the generic node): it
// opens the other node of the namespace — read-only, and for the block
// node of a writable open with O_EXCL, the block layer's exclusive claim —
// and locks both, the block node first, so that openers through either
// node exclude each other and never hold one lock each. It returns the
// other node's descriptor, -1 when the node does not exist (a generic node
// without a block node); the caller closes it, also on failure.
func lockNamespace(dir string, n node, fd int, block, readOnly bool) (int, error) {
	path, flags := filepath.Join(dir, n.char()), unix.O_RDONLY|unix.O_CLOEXEC
	if !block {
		path = filepath.Join(dir, n.block())
		if !readOnly {
			flags |= unix.O_EXCL
		}
	}
	other, err := openNode(path, flags)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return -1, lock(fd, readOnly)
	case err != nil:
		return -1, err
	}
	order := []int{fd, other}
	if !block {
		order = []int{other, fd}
	}
	for _, fd := range order {
		if err := lock(fd, readOnly); err != nil {
			return other, err
		}
	}
	return other, nil
}

// openNode opens the node at path with flags, retrying on EINTR.
func openNode(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		switch {
		case err == nil:
			return fd, nil
		case err != unix.EINTR:
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

// openController opens the controller node at path, which must be a
// character device, read-only: Identify needs no more.
func openController(path string) (int, error) {
	fd, err := openNode(path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: controller %s is not a character device", ErrNotNamespace, path)
	}
	return fd, nil
}

// lockGrace is how long lock keeps trying a held lock before it gives up:
// a lock belongs to an open file description, which a child process shares
// between fork and exec, so a device this process just closed can stay
// locked for that moment (as in hw/file).
var lockGrace = time.Second

// lock takes the advisory lock of fd's node: exclusive, or shared for a
// read-only open. A lock still held after lockGrace fails with
// EWOULDBLOCK, which Open reports as hw.ErrBusy.
func lock(fd int, shared bool) error {
	how := unix.LOCK_EX | unix.LOCK_NB
	if shared {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	deadline := time.Now().Add(lockGrace)
	for {
		err := unix.Flock(fd, how)
		switch {
		case err == nil:
			return nil
		case err == unix.EINTR:
			continue
		case err != unix.EWOULDBLOCK || time.Now().After(deadline):
			return os.NewSyscallError("flock", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kindOf classifies an error of open, stat or flock.
func kindOf(err error) error {
	switch {
	case errors.Is(err, unix.EWOULDBLOCK), errors.Is(err, unix.EBUSY):
		return hw.ErrBusy
	case errors.Is(err, unix.EROFS):
		return hw.ErrReadOnly
	case errors.Is(err, ErrNotNamespace):
		return hw.ErrUnsupported
	}
	return hw.ErrIO
}
