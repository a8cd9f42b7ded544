package passthru

import (
	"encoding/binary"
	"time"

	"github.com/tarstore/tarstore/hw/nvme"
)

// cmd is struct nvme_passthru_cmd of <linux/nvme_ioctl.h> (struct
// nvme_admin_cmd is the same struct), the argument of NVME_IOCTL_ADMIN_CMD
// and NVME_IOCTL_IO_CMD, as a byte array with offset accessors. Its fields
// are in the host's byte order: the kernel builds the little-endian
// submission queue entry from them.
//
//	 0 opcode (u8)     1 flags (u8, must be 0)   2 rsvd1 (u16)
//	 4 nsid            8 cdw2                   12 cdw3
//	16 metadata (u64: address of the metadata buffer)
//	24 addr (u64: address of the data buffer)
//	32 metadata_len   36 data_len
//	40 cdw10  44 cdw11  48 cdw12  52 cdw13  56 cdw14  60 cdw15
//	64 timeout_ms (0: the kernel's default)
//	68 result (written by the kernel: completion queue entry DW0)
type cmd [cmdSize]byte

const cmdSize = 72

var ne = binary.NativeEndian

func (c *cmd) opcode() uint8       { return c[0] }
func (c *cmd) flags() uint8        { return c[1] }
func (c *cmd) nsid() uint32        { return ne.Uint32(c[4:]) }
func (c *cmd) cdw2() uint32        { return ne.Uint32(c[8:]) }
func (c *cmd) cdw3() uint32        { return ne.Uint32(c[12:]) }
func (c *cmd) metadata() uint64    { return ne.Uint64(c[16:]) }
func (c *cmd) addr() uint64        { return ne.Uint64(c[24:]) }
func (c *cmd) metadataLen() uint32 { return ne.Uint32(c[32:]) }
func (c *cmd) dataLen() uint32     { return ne.Uint32(c[36:]) }
func (c *cmd) cdw(n int) uint32    { return ne.Uint32(c[40+4*(n-10):]) } // n in 10..15
func (c *cmd) timeoutMS() uint32   { return ne.Uint32(c[64:]) }
func (c *cmd) result() uint32      { return ne.Uint32(c[68:]) }

// newCmd encodes command nc moving dataLen bytes (the buffer's address is
// filled in at the ioctl), with a timeout rounded up to whole milliseconds
// (0: the kernel's default).
func newCmd(nc nvme.Command, dataLen int, timeout time.Duration) *cmd {
	c := new(cmd)
	c[0] = nc.Opcode
	ne.PutUint32(c[4:], nc.NSID)
	ne.PutUint32(c[36:], uint32(dataLen))
	for i, v := range nc.CDW {
		ne.PutUint32(c[40+4*i:], v)
	}
	ne.PutUint32(c[64:], timeoutMS(timeout))
	return c
}

// timeoutMS is d in whole milliseconds, rounded up, saturating at the
// field's maximum; 0 for d <= 0.
func timeoutMS(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return uint32(min(ms, 1<<32-1))
}

// The ioctl request numbers of <linux/nvme_ioctl.h>:
//
//	NVME_IOCTL_ID         _IO('N', 0x40)
//	NVME_IOCTL_ADMIN_CMD  _IOWR('N', 0x41, struct nvme_admin_cmd)
//	NVME_IOCTL_IO_CMD     _IOWR('N', 0x43, struct nvme_passthru_cmd)
//
// A request number holds the number in bits 7:0, the type ('N') in 15:8,
// the argument's size from bit 16 and the direction above it (iocNone,
// iocReadWrite: per architecture, see ioc_*.go). On x86 they are 0x4e40,
// 0xc0484e41 and 0xc0484e43.
const (
	ioctlID       uint = iocNone | 'N'<<8 | 0x40
	ioctlAdminCmd uint = iocReadWrite | cmdSize<<16 | 'N'<<8 | 0x41
	ioctlIOCmd    uint = iocReadWrite | cmdSize<<16 | 'N'<<8 | 0x43
)

// ioctlName names a request for errors.
func ioctlName(req uint) string {
	switch req {
	case ioctlID:
		return "ioctl NVME_IOCTL_ID"
	case ioctlAdminCmd:
		return "ioctl NVME_IOCTL_ADMIN_CMD"
	case ioctlIOCmd:
		return "ioctl NVME_IOCTL_IO_CMD"
	}
	return "ioctl"
}
