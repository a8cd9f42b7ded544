package pci

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultRoot is where Linux lists PCI functions.
const DefaultRoot = "/sys/bus/pci/devices"

// Function is a PCI function's sysfs directory. It holds no open files; each
// method opens what it needs.
type Function struct {
	root string
	addr Address
	dir  string
}

// Open returns the function at addr (see ParseAddress) under root
// (DefaultRoot when empty). It fails when the address does not parse or
// root has no such function.
func Open(root, addr string) (*Function, error) {
	if root == "" {
		root = DefaultRoot
	}
	a, err := ParseAddress(addr)
	if err != nil {
		return nil, &Error{Op: "open", Addr: addr, Err: err}
	}
	f := &Function{root: root, addr: a, dir: filepath.Join(root, a.String())}
	if _, err := os.Stat(f.dir); err != nil {
		return nil, f.err("open", err)
	}
	return f, nil
}

// Address returns the function's address.
func (f *Function) Address() Address { return f.addr }

// Dir returns the function's sysfs directory.
func (f *Function) Dir() string { return f.dir }

func (f *Function) err(op string, err error) error {
	return &Error{Op: op, Addr: f.addr.String(), Err: err}
}

// Vendor returns the vendor ID (0x1af4 for virtio).
func (f *Function) Vendor() (uint16, error) {
	v, err := f.readHex("vendor", 16)
	return uint16(v), err
}

// DeviceID returns the device ID.
func (f *Function) DeviceID() (uint16, error) {
	v, err := f.readHex("device", 16)
	return uint16(v), err
}

// Class returns the class code: base class, subclass and programming
// interface, 0x010802 for NVMe.
func (f *Function) Class() (uint32, error) {
	v, err := f.readHex("class", 24)
	return uint32(v), err
}

func (f *Function) readHex(name string, bits int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		return 0, f.err("read "+name, err)
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, bits)
	if err != nil || !strings.HasPrefix(s, "0x") {
		return 0, f.err("read "+name, fmt.Errorf("%w: %q", ErrFormat, s))
	}
	return v, nil
}

// ReadConfig reads len(b) bytes of configuration space at off (pread).
func (f *Function) ReadConfig(off int, b []byte) error {
	c, err := os.Open(filepath.Join(f.dir, "config"))
	if err != nil {
		return f.err("config read", err)
	}
	defer c.Close()
	if n, err := c.ReadAt(b, int64(off)); n < len(b) {
		if err == io.EOF {
			err = fmt.Errorf("%w: %d of %d bytes at %#x", io.ErrUnexpectedEOF, n, len(b), off)
		}
		return f.err("config read", err)
	}
	return nil
}

// WriteConfig writes b to configuration space at off (pwrite).
func (f *Function) WriteConfig(off int, b []byte) error {
	c, err := os.OpenFile(filepath.Join(f.dir, "config"), os.O_WRONLY, 0)
	if err != nil {
		return f.err("config write", err)
	}
	_, err = c.WriteAt(b, int64(off))
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return f.err("config write", err)
	}
	return nil
}

// Config returns the conventional configuration space: 256 bytes, or fewer
// when the kernel shows fewer (64 to a user without CAP_SYS_ADMIN).
func (f *Function) Config() ([]byte, error) {
	c, err := os.Open(filepath.Join(f.dir, "config"))
	if err != nil {
		return nil, f.err("config read", err)
	}
	defer c.Close()
	b := make([]byte, configSize)
	n, err := c.ReadAt(b, 0)
	if n < headerSize {
		if err == io.EOF {
			err = fmt.Errorf("%w: %d bytes", io.ErrUnexpectedEOF, n)
		}
		return nil, f.err("config read", err)
	}
	return b[:n], nil
}

// EnableMemoryAndMaster sets memory space and bus master enable in the
// command register (EnableMemoryAndMaster).
func (f *Function) EnableMemoryAndMaster() error { return EnableMemoryAndMaster(f) }

// Capabilities walks the function's capability list (ParseCapabilities).
func (f *Function) Capabilities() ([]Capability, error) {
	config, err := f.Config()
	if err != nil {
		return nil, err
	}
	caps, err := ParseCapabilities(config)
	if err != nil {
		return nil, f.err("capabilities", err)
	}
	return caps, nil
}

// VendorCapabilities returns the vendor-specific capabilities (ID 0x09),
// with their bytes, in list order.
func (f *Function) VendorCapabilities() ([]Capability, error) {
	caps, err := f.Capabilities()
	if err != nil {
		return nil, err
	}
	var vendor []Capability
	for _, c := range caps {
		if c.ID == CapVendor {
			vendor = append(vendor, c)
		}
	}
	return vendor, nil
}

// Resource is one line of the sysfs resource file: a BAR (lines 0-5), the
// expansion ROM or a bridge window, as addresses in the host's physical
// address space.
type Resource struct {
	Start, End, Flags uint64
}

// Resource flags (Linux include/linux/ioport.h).
const (
	ResourceIO  = 0x100 // I/O port space
	ResourceMem = 0x200 // memory space
)

// Size returns the resource's length in bytes, 0 when unused.
func (r Resource) Size() uint64 {
	if r.Start == 0 && r.End == 0 {
		return 0
	}
	return r.End - r.Start + 1
}

// Resources parses the function's resource file.
func (f *Function) Resources() ([]Resource, error) {
	b, err := os.ReadFile(filepath.Join(f.dir, "resource"))
	if err != nil {
		return nil, f.err("read resource", err)
	}
	rs, err := parseResources(b)
	if err != nil {
		return nil, f.err("read resource", err)
	}
	return rs, nil
}

func parseResources(b []byte) ([]Resource, error) {
	var rs []Resource
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		var v [3]uint64
		for i := range v {
			var err error
			if len(fields) != 3 {
				err = ErrFormat
			} else {
				v[i], err = strconv.ParseUint(fields[i], 0, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: line %d %q", ErrFormat, line, sc.Text())
			}
		}
		r := Resource{Start: v[0], End: v[1], Flags: v[2]}
		if r.End < r.Start {
			return nil, fmt.Errorf("%w: line %d ends before it starts", ErrFormat, line)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

// BARSize returns the size of memory BAR n (0-5), failing with
// ErrNotMemory when it is unused or an I/O BAR.
func (f *Function) BARSize(n int) (int, error) {
	op := fmt.Sprintf("BAR %d", n)
	rs, err := f.Resources()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 5 || n >= len(rs) {
		return 0, f.err(op, fmt.Errorf("%w: no BAR %d", ErrNotMemory, n))
	}
	r := rs[n]
	if r.Flags&ResourceMem == 0 || r.Size() == 0 || r.Size() > math.MaxInt {
		return 0, f.err(op, fmt.Errorf("%w: %#x-%#x flags %#x", ErrNotMemory, r.Start, r.End, r.Flags))
	}
	return int(r.Size()), nil
}
