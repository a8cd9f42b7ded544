package passthru

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/nvme"
)

// The real Open on this host, which has no NVMe device: every path it can
// take before the first passthrough ioctl, and that ioctl failing.
func TestOpenHost(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "nvme0n1")
	if err := os.WriteFile(regular, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "nvme1n1")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		path   string
		opts   Options
		kind   error
		causes []error
	}{
		{"missing", filepath.Join(dir, "nvme9n1"), Options{}, hw.ErrIO, []error{fs.ErrNotExist}},
		{"regular file", regular, Options{}, hw.ErrUnsupported, []error{ErrNotNamespace}},
		// The link's target names the node: /dev/null is no nvmeXnY.
		{"character device of another name", link, Options{ReadOnly: true}, hw.ErrUnsupported, []error{ErrNotNamespace}},
		{"controller not a character device", "/dev/null", Options{ReadOnly: true, Controller: regular}, hw.ErrUnsupported, []error{ErrNotNamespace}},
		{"missing controller", "/dev/null", Options{ReadOnly: true, Controller: filepath.Join(dir, "nvme9")}, hw.ErrIO, []error{fs.ErrNotExist}},
		// NVME_IOCTL_ID on /dev/null: ENOTTY.
		{"not a namespace", "/dev/null", Options{ReadOnly: true, Controller: "/dev/null"}, hw.ErrUnsupported, []error{ErrNotNamespace, unix.ENOTTY}},
	} {
		d, err := Open(c.path, c.opts)
		if d != nil {
			d.Close()
		}
		var he *hw.Error
		if !errors.As(err, &he) || he.Op != "open" || he.Device != c.path || !errors.Is(err, c.kind) {
			t.Errorf("%s: Open(%s): %v, want kind %v", c.name, c.path, err, c.kind)
			continue
		}
		for _, cause := range c.causes {
			if !errors.Is(err, cause) {
				t.Errorf("%s: %v does not wrap %v", c.name, err, cause)
			}
		}
	}
}

// TestSysKernel: the system calls reach the kernel; /dev/null answers
// ENOTTY to the NVMe ioctls.
func TestSysKernel(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var k sysKernel
	if _, err := k.namespaceID(fd); err != unix.ENOTTY {
		t.Errorf("NVME_IOCTL_ID on /dev/null: %v, want ENOTTY", err)
	}
	c := newCmd(nvme.ReadCommand(1, 0, 1), 512, 0)
	if _, err := k.passthru(fd, ioctlIOCmd, c, make([]byte, 512)); err != unix.ENOTTY {
		t.Errorf("NVME_IOCTL_IO_CMD on /dev/null: %v, want ENOTTY", err)
	}
	if c.addr() == 0 {
		t.Error("the data's address was not set")
	}
	if err := k.close(fd); err != nil {
		t.Error(err)
	}
	if err := k.close(fd); err != unix.EBADF {
		t.Errorf("second close: %v, want EBADF", err)
	}
}

// TestLockNamespace: openers through the block node and through the
// generic node exclude each other (regular files stand in for the nodes:
// flock and O_EXCL without O_CREAT behave alike on them, except that
// O_EXCL claims nothing).
func TestLockNamespace(t *testing.T) {
	defer func(g time.Duration) { lockGrace = g }(lockGrace)
	lockGrace = 50 * time.Millisecond
	dir := t.TempDir()
	n := node{0, 1}
	for _, name := range []string{n.block(), n.char()} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var opened []int
	t.Cleanup(func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	})
	openAs := func(name string) int {
		fd, err := openNode(filepath.Join(dir, name), unix.O_RDONLY|unix.O_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, fd)
		return fd
	}
	take := func(name string, readOnly bool) (int, int, error) {
		fd := openAs(name)
		other, err := lockNamespace(dir, n, fd, name == n.block(), readOnly)
		if other >= 0 {
			opened = append(opened, other)
		}
		return fd, other, err
	}
	release := func(fds ...int) {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}

	fd, other, err := take(n.block(), false)
	if err != nil || other < 0 {
		t.Fatalf("first writer: %d, %v", other, err)
	}
	if _, _, err := take(n.char(), false); kindOf(err) != hw.ErrBusy {
		t.Errorf("writer through the generic node: %v, want busy", err)
	}
	if _, _, err := take(n.block(), true); kindOf(err) != hw.ErrBusy {
		t.Errorf("reader through the block node: %v, want busy", err)
	}
	release(fd, other)
	fd, other, err = take(n.char(), false)
	if err != nil {
		t.Fatalf("writer after the first closed: %v", err)
	}
	if _, _, err := take(n.block(), false); kindOf(err) != hw.ErrBusy {
		t.Errorf("writer through the block node: %v, want busy", err)
	}
	release(fd, other)

	// Readers share.
	fd1, o1, err1 := take(n.char(), true)
	fd2, o2, err2 := take(n.block(), true)
	if err1 != nil || err2 != nil {
		t.Errorf("two readers: %v, %v", err1, err2)
	}
	if _, _, err := take(n.block(), false); kindOf(err) != hw.ErrBusy {
		t.Errorf("writer while readers hold it: %v, want busy", err)
	}
	release(fd1, o1, fd2, o2)

	// A generic node without a block node locks alone.
	m := node{0, 2}
	if err := os.WriteFile(filepath.Join(dir, m.char()), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fd = openAs(m.char())
	if other, err := lockNamespace(dir, m, fd, false, false); other != -1 || err != nil {
		t.Errorf("generic node alone: %d, %v", other, err)
	}
	if other, err := lockNamespace(dir, m, openAs(m.char()), false, false); other != -1 || kindOf(err) != hw.ErrBusy {
		t.Errorf("second opener of the generic node alone: %d, %v", other, err)
	}
}

func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{os.NewSyscallError("flock", unix.EWOULDBLOCK), hw.ErrBusy},
		{&fs.PathError{Op: "open", Path: "/dev/nvme0n1", Err: unix.EBUSY}, hw.ErrBusy},
		{unix.EROFS, hw.ErrReadOnly},
		{ErrNotNamespace, hw.ErrUnsupported},
		{unix.EACCES, hw.ErrIO},
		{unix.ENOENT, hw.ErrIO},
	} {
		if got := kindOf(c.err); got != c.want {
			t.Errorf("kindOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
