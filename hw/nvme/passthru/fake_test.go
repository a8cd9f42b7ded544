package passthru

import (
	"encoding/binary"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw/nvme"
)

// fakeKernel answers the ioctls of a Device as the nvme driver would for
// one namespace of a controller, from memory: it checks every command the
// way the kernel does (flags 0, the namespace's NSID on I/O) and the way a
// controller would (LBA range, data length), and records what it saw.
type fakeKernel struct {
	t testing.TB

	mu   sync.Mutex
	disk []byte
	bs   int
	nsid uint32

	// Identify answers, and what builds them.
	mdts   uint8
	oncs   uint16
	vwc    bool
	nsattr uint8
	lbads  uint8  // of the format in use (index 1)
	ms     uint16 // metadata bytes per block of that format
	nsze   uint64 // NSZE; 0: the disk's size in blocks

	fds    map[int]string // open descriptors: "ns", "lock" or "ctrl"
	nextFD int
	closed []int

	seen        []seenCmd
	flushes     int
	inflight    int
	maxInflight int
	delay       time.Duration // each I/O command takes this long

	// inject, when set, may fail an I/O command: a positive NVMe status,
	// or an errno. (0, nil) lets it run.
	inject func(c *cmd) (int, error)
	// adminInject, likewise for admin commands.
	adminInject func(c *cmd) (int, error)
	nsidErr     error // NVME_IOCTL_ID fails with it
}

// seenCmd is an I/O command as the fake received it.
type seenCmd struct {
	op      uint8
	slba    uint64
	blocks  int
	dataLen int
	data    []byte // the buffer handed to the kernel
}

const fakeVER = 0x10400 // NVMe 1.4.0, as QEMU

func newFakeKernel(t testing.TB, bs, blocks int) *fakeKernel {
	lbads := uint8(9)
	for 1<<lbads < bs {
		lbads++
	}
	return &fakeKernel{
		t: t, disk: make([]byte, bs*blocks), bs: bs, nsid: 1, mdts: 7,
		oncs: 1<<2 | 1<<3, vwc: true, lbads: lbads,
		fds: map[int]string{}, nextFD: 3,
	}
}

// open registers a descriptor of role.
func (k *fakeKernel) open(role string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	fd := k.nextFD
	k.nextFD++
	k.fds[fd] = role
	return fd
}

func (k *fakeKernel) close(fd int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.fds[fd]; !ok {
		return syscall.EBADF
	}
	delete(k.fds, fd)
	k.closed = append(k.closed, fd)
	return nil
}

func (k *fakeKernel) namespaceID(fd int) (uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.nsidErr != nil:
		return 0, k.nsidErr
	case k.fds[fd] != "ns":
		return 0, syscall.ENOTTY
	}
	return k.nsid, nil
}

func (k *fakeKernel) passthru(fd int, req uint, c *cmd, data []byte) (int, error) {
	k.mu.Lock()
	role := k.fds[fd]
	k.mu.Unlock()
	if c.addr() != 0 || c.flags() != 0 || c.cdw2() != 0 || c.cdw3() != 0 || c.metadata() != 0 || c.metadataLen() != 0 || c[2] != 0 || c[3] != 0 || c.result() != 0 {
		k.t.Errorf("fake kernel: unexpected fields in % x", c[:])
	}
	if int(c.dataLen()) != len(data) {
		k.t.Errorf("fake kernel: data_len %d with a buffer of %d bytes", c.dataLen(), len(data))
		return 0, syscall.EFAULT
	}
	switch {
	case role == "":
		return 0, syscall.EBADF
	case req == ioctlAdminCmd && role == "ctrl":
		return k.admin(c, data)
	case req == ioctlIOCmd && role == "ns":
		if c.flags() != 0 || c.nsid() != k.nsid {
			return 0, syscall.EINVAL // nvme_validate_passthru_nsid
		}
		return k.io(c, data)
	}
	k.t.Errorf("fake kernel: ioctl %#x on a %q descriptor", req, role)
	return 0, syscall.ENOTTY
}

// admin answers Identify.
func (k *fakeKernel) admin(c *cmd, data []byte) (int, error) {
	if k.adminInject != nil {
		if st, err := k.adminInject(c); st != 0 || err != nil {
			return st, err
		}
	}
	if c.opcode() != 0x06 || len(data) != nvme.IdentifySize {
		k.t.Errorf("fake kernel: admin command % x with %d bytes", c[:], len(data))
		return 0x0001, nil // Invalid Command Opcode
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case c.cdw(10) == 1 && c.nsid() == 0:
		copy(data, k.identifyController())
	case c.cdw(10) == 0 && c.nsid() == k.nsid:
		copy(data, k.identifyNamespace())
	case c.cdw(10) == 0:
		clear(data) // an inactive namespace
	default:
		return 0x4002, nil // Invalid Field in Command, DNR
	}
	c.setResult(0)
	return 0, nil
}

func (c *cmd) setResult(v uint32) { ne.PutUint32(c[68:], v) }

var wire = binary.LittleEndian

// identifyController builds Identify Controller data at the offsets of
// NVMe Base 2.0 §5.17, Figure 275.
func (k *fakeKernel) identifyController() []byte {
	id := make([]byte, 4096)
	pad := func(b []byte, s string) {
		for i := range b {
			b[i] = ' '
		}
		copy(b, s)
	}
	wire.PutUint16(id[0:], 0x1b36)          // VID
	pad(id[4:24], "fake-serial")            // SN
	pad(id[24:64], "QEMU NVMe Ctrl")        // MN
	pad(id[64:72], "8.0.0")                 // FR
	id[77] = k.mdts                         // MDTS
	wire.PutUint32(id[80:], fakeVER)        // VER
	id[512], id[513] = 0x66, 0x44           // SQES, CQES
	wire.PutUint32(id[516:], 256)           // NN
	wire.PutUint16(id[520:], k.oncs)        // ONCS
	id[525] = map[bool]byte{true: 1}[k.vwc] // VWC
	return id
}

// identifyNamespace builds Identify Namespace data at the offsets of NVM
// Command Set 1.0 §4.1.5.1, Figure 97: two formats, the second in use.
func (k *fakeKernel) identifyNamespace() []byte {
	ns := make([]byte, 4096)
	blocks := k.nsze
	if blocks == 0 {
		blocks = uint64(len(k.disk) / k.bs)
	}
	wire.PutUint64(ns[0:], blocks)  // NSZE
	wire.PutUint64(ns[8:], blocks)  // NCAP
	wire.PutUint64(ns[16:], blocks) // NUSE
	ns[25] = 1                      // NLBAF: two formats
	ns[26] = 1                      // FLBAS: format 1
	ns[99] = k.nsattr
	wire.PutUint32(ns[128:], 9<<16)                            // LBAF0: 512 B
	wire.PutUint32(ns[132:], uint32(k.lbads)<<16|uint32(k.ms)) // LBAF1
	return ns
}

// io runs an I/O command.
func (k *fakeKernel) io(c *cmd, data []byte) (int, error) {
	k.mu.Lock()
	k.inflight++
	k.maxInflight = max(k.maxInflight, k.inflight)
	slba := uint64(c.cdw(10)) | uint64(c.cdw(11))<<32
	blocks := int(c.cdw(12)&0xffff) + 1
	k.seen = append(k.seen, seenCmd{op: c.opcode(), slba: slba, blocks: blocks, dataLen: len(data), data: data})
	delay := k.delay
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.inflight--
		k.mu.Unlock()
	}()
	if delay > 0 {
		time.Sleep(delay)
	}
	if k.inject != nil {
		if st, err := k.inject(c); st != 0 || err != nil {
			return st, err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	total := uint64(len(k.disk) / k.bs)
	if k.nsze != 0 {
		total = k.nsze
	}
	inRange := func(slba uint64, n int) bool { return slba < total && uint64(n) <= total-slba }
	switch c.opcode() {
	case 0x00: // Flush
		k.flushes++
		return 0, nil
	case 0x01, 0x02: // Write, Read
		if len(data) != blocks*k.bs {
			k.t.Errorf("fake kernel: %d blocks with %d bytes", blocks, len(data))
			return 0x0004, nil // Data Transfer Error
		}
		if !inRange(slba, blocks) {
			return 0x0080, nil // LBA Out of Range
		}
		at := k.disk[int(slba)*k.bs:][:len(data)]
		if c.opcode() == 0x01 {
			copy(at, data)
		} else {
			copy(data, at)
		}
		return 0, nil
	case 0x08: // Write Zeroes
		if k.oncs&(1<<3) == 0 {
			return 0x0001, nil
		}
		if !inRange(slba, blocks) {
			return 0x0080, nil
		}
		clear(k.disk[int(slba)*k.bs:][:blocks*k.bs])
		return 0, nil
	case 0x09: // Dataset Management
		if k.oncs&(1<<2) == 0 {
			return 0x0001, nil
		}
		nr := int(c.cdw(10)&0xff) + 1
		if c.cdw(11) != 1<<2 || len(data) != nr*16 {
			k.t.Errorf("fake kernel: DSM cdw10 %#x cdw11 %#x with %d bytes", c.cdw(10), c.cdw(11), len(data))
			return 0x0002, nil
		}
		for i := range nr {
			r := data[16*i:]
			n, at := int(wire.Uint32(r[4:])), wire.Uint64(r[8:])
			if !inRange(at, n) {
				return 0x0080, nil
			}
			// Deallocated: anything but the old data. A namespace
			// larger than the disk (nsze) keeps only what fits.
			from, to := min(int(at)*k.bs, len(k.disk)), min((int(at)+n)*k.bs, len(k.disk))
			for j := from; j < to; j++ {
				k.disk[j] = 0xdd
			}
		}
		return 0, nil
	}
	return 0x0001, nil
}

// openDevice sets up a Device over k as Open would, with a namespace
// descriptor and a lock descriptor; the controller descriptor stays open in
// the fake. The test closes the device.
func (k *fakeKernel) openDevice(t testing.TB, kernelMax int, opts Options) (*Device, error) {
	t.Helper()
	fds := []int{k.open("ns"), k.open("lock")}
	d, err := newDevice(k, "fake", fds, k.open("ctrl"), kernelMax, opts)
	if err != nil {
		for _, fd := range fds {
			k.close(fd)
		}
		return nil, err
	}
	t.Cleanup(func() { d.Close() })
	return d, nil
}

func (k *fakeKernel) mustOpen(t testing.TB, opts Options) *Device {
	t.Helper()
	d, err := k.openDevice(t, 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (k *fakeKernel) commands() []seenCmd {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.seen)
}

func (k *fakeKernel) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seen, k.flushes, k.maxInflight = nil, 0, 0
}
