package passthru

import (
	"bytes"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw/nvme"
)

// TestIoctlNumbers: the request numbers are _IO('N', 0x40) and
// _IOWR('N', 0x41/0x43, 72 bytes), as <linux/nvme_ioctl.h> gives them
// (printed by a C program against this machine's header) and as measured on
// the VM's kernel (NVME_IOCTL_ADMIN_CMD 0xC0484E41, NVME_IOCTL_IO_CMD
// 0xC0484E43).
func TestIoctlNumbers(t *testing.T) {
	if cmdSize != 72 || len(cmd{}) != 72 {
		t.Errorf("struct nvme_passthru_cmd is %d bytes, want 72", cmdSize)
	}
	if iocNone == 0 { // <asm-generic/ioctl.h>: x86, arm64, ...
		for _, c := range []struct {
			name      string
			got, want uint
		}{
			{"NVME_IOCTL_ID", ioctlID, 0x4e40},
			{"NVME_IOCTL_ADMIN_CMD", ioctlAdminCmd, 0xc0484e41},
			{"NVME_IOCTL_IO_CMD", ioctlIOCmd, 0xc0484e43},
		} {
			if c.got != c.want {
				t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
			}
		}
	} else { // MIPS, PowerPC: _IOC_NONE is 1 there
		if ioctlID != 0x20004e40 || ioctlAdminCmd != 0xc0484e41 || ioctlIOCmd != 0xc0484e43 {
			t.Errorf("ioctls %#x %#x %#x", ioctlID, ioctlAdminCmd, ioctlIOCmd)
		}
	}
	if ioctlName(ioctlIOCmd) != "ioctl NVME_IOCTL_IO_CMD" || ioctlName(ioctlAdminCmd) != "ioctl NVME_IOCTL_ADMIN_CMD" || ioctlName(ioctlID) != "ioctl NVME_IOCTL_ID" {
		t.Error("ioctl names")
	}
}

// TestCmdLayout checks the encoding of struct nvme_passthru_cmd against the
// offsets gcc gives on this machine (offsetof over
// /usr/include/linux/nvme_ioctl.h): opcode 0, flags 1, rsvd1 2, nsid 4,
// cdw2 8, cdw3 12, metadata 16, addr 24, metadata_len 32, data_len 36,
// cdw10..cdw15 40..60, timeout_ms 64, result 68; 72 bytes.
func TestCmdLayout(t *testing.T) {
	c := newCmd(nvme.ReadCommand(1, 0x1_2345_6789, 8), 4096, 1500*time.Millisecond)
	golden := []byte{
		0x02, 0x00, 0x00, 0x00, // opcode Read, flags, rsvd1
		0x01, 0x00, 0x00, 0x00, // nsid 1
		0x00, 0x00, 0x00, 0x00, // cdw2
		0x00, 0x00, 0x00, 0x00, // cdw3
		0, 0, 0, 0, 0, 0, 0, 0, // metadata
		0, 0, 0, 0, 0, 0, 0, 0, // addr: set at the ioctl
		0x00, 0x00, 0x00, 0x00, // metadata_len
		0x00, 0x10, 0x00, 0x00, // data_len 4096
		0x89, 0x67, 0x45, 0x23, // cdw10: SLBA 31:0
		0x01, 0x00, 0x00, 0x00, // cdw11: SLBA 63:32
		0x07, 0x00, 0x00, 0x00, // cdw12: NLB 7 (0's based)
		0x00, 0x00, 0x00, 0x00, // cdw13
		0x00, 0x00, 0x00, 0x00, // cdw14
		0x00, 0x00, 0x00, 0x00, // cdw15
		0xdc, 0x05, 0x00, 0x00, // timeout_ms 1500
		0x00, 0x00, 0x00, 0x00, // result
	}
	if littleEndian() && !bytes.Equal(c[:], golden) {
		t.Errorf("Read command\n got % x\nwant % x", c[:], golden)
	}
	if c.opcode() != 0x02 || c.flags() != 0 || c.nsid() != 1 || c.cdw2() != 0 || c.cdw3() != 0 || c.metadata() != 0 ||
		c.addr() != 0 || c.metadataLen() != 0 || c.dataLen() != 4096 || c.cdw(10) != 0x23456789 || c.cdw(11) != 1 ||
		c.cdw(12) != 7 || c.cdw(13) != 0 || c.cdw(14) != 0 || c.cdw(15) != 0 || c.timeoutMS() != 1500 || c.result() != 0 {
		t.Errorf("accessors disagree: % x", c[:])
	}
	// Each field at its offset: write a marker through the byte array,
	// read it through the accessor.
	var m cmd
	ne.PutUint32(m[4:], 0xa1)
	ne.PutUint64(m[16:], 0xa2)
	ne.PutUint64(m[24:], 0xa3)
	ne.PutUint32(m[32:], 0xa4)
	ne.PutUint32(m[60:], 0xa5)
	ne.PutUint32(m[64:], 0xa6)
	ne.PutUint32(m[68:], 0xa7)
	if m.nsid() != 0xa1 || m.metadata() != 0xa2 || m.addr() != 0xa3 || m.metadataLen() != 0xa4 || m.cdw(15) != 0xa5 || m.timeoutMS() != 0xa6 || m.result() != 0xa7 {
		t.Errorf("field offsets: % x", m[:])
	}

	for _, tc := range []struct {
		name     string
		nc       nvme.Command
		op       uint8
		nsid     uint32
		cdw10_12 [3]uint32
	}{
		{"identify controller", nvme.IdentifyControllerCommand(), 0x06, 0, [3]uint32{1, 0, 0}},
		{"identify namespace", nvme.IdentifyNamespaceCommand(3), 0x06, 3, [3]uint32{0, 0, 0}},
		{"write", nvme.WriteCommand(2, 5, 1), 0x01, 2, [3]uint32{5, 0, 0}},
		{"write zeroes", nvme.WriteZeroesCommand(1, 1<<32, nvme.MaxBlocks), 0x08, 1, [3]uint32{0, 1, 0xffff}},
		{"flush", nvme.FlushCommand(1), 0x00, 1, [3]uint32{0, 0, 0}},
		{"deallocate", nvme.DeallocateCommand(1, 3), 0x09, 1, [3]uint32{2, 1 << 2, 0}},
	} {
		c := newCmd(tc.nc, 0, 0)
		if c.opcode() != tc.op || c.nsid() != tc.nsid || c.cdw(10) != tc.cdw10_12[0] || c.cdw(11) != tc.cdw10_12[1] ||
			c.cdw(12) != tc.cdw10_12[2] || c.dataLen() != 0 || c.timeoutMS() != 0 {
			t.Errorf("%s: % x", tc.name, c[:])
		}
	}
}

func littleEndian() bool { return ne.Uint16([]byte{1, 0}) == 1 }

func TestTimeoutMS(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want uint32
	}{
		{0, 0}, {-time.Second, 0}, {time.Nanosecond, 1}, {time.Millisecond, 1},
		{1500 * time.Millisecond, 1500}, {time.Millisecond + 1, 2}, {1 << 62, 1<<32 - 1},
	} {
		if got := timeoutMS(c.d); got != c.want {
			t.Errorf("timeoutMS(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}
