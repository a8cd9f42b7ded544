package nvme

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/internal/dma"
)

func TestCapabilities(t *testing.T) {
	c := qemuCap
	if c.mqes() != 2047 || !c.cqr() || c.to() != 15 || c.readyTimeout() != 7500*time.Millisecond ||
		c.dstrd() != 0 || c.css() != cssNVM || c.mpsmin() != 0 || c.mpsmax() != 4 || c.minPageSize() != 4096 {
		t.Errorf("QEMU's CAP %#x decodes to MQES %d CQR %v TO %d DSTRD %d CSS %#x MPSMIN %d MPSMAX %d",
			uint64(c), c.mqes(), c.cqr(), c.to(), c.dstrd(), c.css(), c.mpsmin(), c.mpsmax())
	}
	if got := capabilities(0).readyTimeout(); got != 500*time.Millisecond {
		t.Errorf("TO 0 waits %v, want one unit", got)
	}
	for _, c := range []struct {
		dstrd      int
		sq0, cq0   int
		sq1, cq1   int
		minPage    int
		capability capabilities
	}{
		{0, 0x1000, 0x1004, 0x1008, 0x100c, 4096, 0},
		{1, 0x1000, 0x1008, 0x1010, 0x1018, 4096, 1 << 32},
		{3, 0x1000, 0x1020, 0x1040, 0x1060, 16384, 3<<32 | 2<<48},
	} {
		p := c.capability
		if p.sqDoorbell(0) != c.sq0 || p.cqDoorbell(0) != c.cq0 || p.sqDoorbell(1) != c.sq1 || p.cqDoorbell(1) != c.cq1 || p.minPageSize() != c.minPage {
			t.Errorf("DSTRD %d: doorbells %#x %#x %#x %#x, min page %d", c.dstrd,
				p.sqDoorbell(0), p.cqDoorbell(0), p.sqDoorbell(1), p.cqDoorbell(1), p.minPageSize())
		}
	}
	if ccConfig != 0x460000 || aqa(4, 8) != 0x70003 {
		t.Errorf("CC %#x, AQA %#x", ccConfig, aqa(4, 8))
	}
}

// TestCommandLayouts checks the encoders against the byte offsets of the
// specification's figures.
func TestCommandLayouts(t *testing.T) {
	dw := func(c *command, off int) uint32 { return le.Uint32(c[off:]) }
	c := blocksCmd(opWrite, 1, 0x1_2345_6789, 8)
	c.setCID(0xbeef)
	c.setPRP(0x1000, 0x2000)
	if c[0] != opWrite || c[1] != 0 || le.Uint16(c[2:]) != 0xbeef || dw(c, 4) != 1 ||
		le.Uint64(c[16:]) != 0 || le.Uint64(c[24:]) != 0x1000 || le.Uint64(c[32:]) != 0x2000 ||
		dw(c, 40) != 0x23456789 || dw(c, 44) != 1 || dw(c, 48) != 7 || dw(c, 52) != 0 {
		t.Errorf("Write command: % x", c[:])
	}
	if c.opcode() != opWrite || c.fuse() != 0 || c.psdt() != 0 || c.cid() != 0xbeef || c.nsid() != 1 || c.mptr() != 0 || c.prp1() != 0x1000 || c.prp2() != 0x2000 {
		t.Errorf("accessors disagree with the bytes: % x", c[:])
	}
	for _, tc := range []struct {
		name             string
		c                *command
		op               uint8
		cdw10, cdw11     uint32
		prp1, prp2, nsid uint64
	}{
		{"identify controller", identifyCmd(cnsController, 0), opIdentify, 1, 0, 0, 0, 0},
		{"identify namespace", identifyCmd(cnsNamespace, 7), opIdentify, 0, 0, 0, 0, 7},
		{"number of queues", setQueuesCmd(1), opSetFeatures, fidNumQueues, 0, 0, 0, 0},
		{"four queues", setQueuesCmd(4), opSetFeatures, fidNumQueues, 0x30003, 0, 0, 0},
		{"create CQ", createCQCmd(1, 33, 0xabc000), opCreateCQ, 32<<16 | 1, 1, 0xabc000, 0, 0},
		{"create SQ", createSQCmd(1, 33, 1, 0xdef000), opCreateSQ, 32<<16 | 1, 1<<16 | 1, 0xdef000, 0, 0},
		{"dataset management", dsmCmd(1, 3), opDSM, 2, 4, 0, 0, 1},
		{"flush", flushCmd(1), opFlush, 0, 0, 0, 0, 1},
		{"write zeroes", blocksCmd(opWriteZeroes, 1, 5, maxBlocks), opWriteZeroes, 5, 0, 0, 0, 1},
	} {
		c := tc.c
		if c.opcode() != tc.op || c.cdw(10) != tc.cdw10 || c.cdw(11) != tc.cdw11 || c.prp1() != tc.prp1 || c.prp2() != tc.prp2 || uint64(c.nsid()) != tc.nsid {
			t.Errorf("%s: % x", tc.name, c[:])
		}
	}
	if c := blocksCmd(opWriteZeroes, 1, 5, maxBlocks); c.cdw(12) != 0xffff {
		t.Errorf("write zeroes of 65536 blocks: NLB %#x", c.cdw(12))
	}
	var r [dsmRangeSize]byte
	putRange(r[:], 0x1_0000_0002, 9)
	if le.Uint32(r[0:]) != 0 || le.Uint32(r[4:]) != 9 || le.Uint64(r[8:]) != 0x1_0000_0002 {
		t.Errorf("DSM range % x", r)
	}
}

func TestCompletionLayout(t *testing.T) {
	var c completion
	le.PutUint32(c[0:], 0x00030003)
	le.PutUint32(c[8:], 0x0001_0005)                                    // SQID 1, SQHD 5
	le.PutUint32(c[12:], 1<<31|1<<30|2<<28|2<<25|0x81<<17|1<<16|0x1234) // DNR, M, CRD 2, SCT 2, SC 81h, P, CID
	s := c.status()
	if c.dw0() != 0x30003 || c.sqhd() != 5 || c.sqid() != 1 || c.cid() != 0x1234 || c.phase() != 1 ||
		s.SC() != 0x81 || s.SCT() != sctMedia || s.CRD() != 2 || !s.More() || !s.DNR() || s.OK() {
		t.Errorf("completion % x: status %#x", c[:], uint16(s))
	}
	if !Status(1<<14|1<<13).OK() || Status(sctCommand<<8).OK() {
		t.Error("OK must look at SC and SCT only")
	}
}

func TestIdentifyLayouts(t *testing.T) {
	f := newFake(t, 512, 64)
	f.mdts, f.oncs, f.vwc, f.nsattr = 5, 1<<3, false, 1
	var id identifyController
	copy(id[:], f.identifyController())
	if id.vid() != 0x1b36 || id.sn() != "fake-serial" || id.mn() != "fake nvme" || id.fr() != "1.0" || id.mdts() != 5 ||
		id.ver() != fakeVS || id.sqes() != 0x66 || id.cqes() != 0x44 || id.nn() != 1 || !id.writeZeroes() || id.deallocate() || id.vwc() {
		t.Errorf("Identify Controller: vid %#x sn %q mn %q fr %q mdts %d", id.vid(), id.sn(), id.mn(), id.fr(), id.mdts())
	}
	copy(id[4:24], "SN \x00\x00                ")
	if id.sn() != "SN" {
		t.Errorf("serial padded with NULs and spaces: %q", id.sn())
	}
	var ns identifyNamespace
	copy(ns[:], f.identifyNamespace())
	if ns.nsze() != 64 || ns.ncap() != 64 || ns.nlbaf() != 2 || ns.formatIndex() != 2 || ns.nsattr() != 1 ||
		ns.lbaf(0).lbads() != 9 || ns.lbaf(1).lbads() != 12 || ns.lbaf(2).ms() != 0 {
		t.Errorf("Identify Namespace: nsze %d nlbaf %d flbas %#x", ns.nsze(), ns.nlbaf(), ns.flbas())
	}
	ns[26] = 1<<5 | 1<<4 | 3 // format 19, metadata at the end of each block
	le.PutUint32(ns[128+4*19:], 2<<24|12<<16|8)
	if f := ns.lbaf(ns.formatIndex()); ns.formatIndex() != 19 || f.ms() != 8 || f.lbads() != 12 || f.rp() != 2 {
		t.Errorf("FLBAS %#x: format %d, %+v", ns.flbas(), ns.formatIndex(), f)
	}
}

// TestPRPs checks the PRP entries for transfers of one, two and more
// pages, over memory whose pages are scattered in device address space.
func TestPRPs(t *testing.T) {
	b := make([]byte, 8*pageSize)
	addrs := []uint64{0x9000, 0x3000, 0x20000, 0x5000, 0x7000, 0xa000, 0x1000, 0x40000}
	r, err := dma.NewChunkedRegion(b, pageSize, addrs)
	if err != nil {
		t.Fatal(err)
	}
	data, list := r.Slice(0, 7*pageSize), r.Slice(7*pageSize, pageSize)
	for _, c := range []struct {
		n          int
		prp1, prp2 uint64
		entries    []uint64
	}{
		{1, 0x9000, 0, nil},
		{pageSize, 0x9000, 0, nil},
		{pageSize + 512, 0x9000, 0x3000, nil},
		{2 * pageSize, 0x9000, 0x3000, nil},
		{2*pageSize + 1, 0x9000, 0x40000, []uint64{0x3000, 0x20000}},
		{7 * pageSize, 0x9000, 0x40000, []uint64{0x3000, 0x20000, 0x5000, 0x7000, 0xa000, 0x1000}},
	} {
		clear(list.B)
		p1, p2 := prps(data, list, c.n)
		if p1 != c.prp1 || p2 != c.prp2 {
			t.Errorf("%d bytes: PRP1 %#x PRP2 %#x, want %#x %#x", c.n, p1, p2, c.prp1, c.prp2)
		}
		for i, e := range c.entries {
			if got := le.Uint64(list.B[8*i:]); got != e {
				t.Errorf("%d bytes: list entry %d is %#x, want %#x", c.n, i, got, e)
			}
		}
		if got := le.Uint64(list.B[8*len(c.entries):]); got != 0 {
			t.Errorf("%d bytes: list entry %d is %#x, want none", c.n, len(c.entries), got)
		}
	}
}

func TestStatusErrors(t *testing.T) {
	for _, c := range []struct {
		op      string
		s       Status
		kind    error
		message string
	}{
		{"read", Status(sctMedia<<8 | 0x81 | 1<<14), hw.ErrIO, "Unrecovered Read Error (SCT 0x2 SC 0x81), do not retry"},
		{"write", Status(scLBAOutOfRange), hw.ErrIO, "LBA Out of Range"},
		{"flush", stInvalidOpcode, hw.ErrUnsupported, "Invalid Command Opcode"},
		{"read", stInvalidOpcode, hw.ErrUnsupported, "Invalid Command Opcode"},
		{"write-zeroes", stInvalidField, hw.ErrUnsupported, "Invalid Field in Command"},
		{"discard", stInvalidField, hw.ErrUnsupported, "Invalid Field in Command"},
		{"read", stInvalidField, hw.ErrIO, "Invalid Field in Command"},
		{"write", Status(sctCommand<<8 | scInvalidField), hw.ErrIO, "Invalid Queue Size"},
		{"write", Status(sctCommand<<8 | 0x50), hw.ErrIO, "command specific status"},
		{"write", Status(7<<8 | 0xc3), hw.ErrIO, "vendor specific status"},
	} {
		e := newStatusError(c.op, 42, c.s)
		at := " at lba 42"
		if c.op == "flush" {
			at = ""
		}
		if e.kind() != c.kind || !strings.Contains(e.Error(), c.message) || !strings.Contains(e.Error(), "nvme "+c.op+at+": ") {
			t.Errorf("%s %#x: kind %v, %q", c.op, uint16(c.s), e.kind(), e)
		}
	}
	if e := newStatusError("identify controller", 0, stInvalidField); e.Error() != "nvme identify controller: Invalid Field in Command (SCT 0x0 SC 0x02)" {
		t.Errorf("%q", e)
	}
	ce := &ControllerError{State: "enable", CSTS: 3, Err: ErrFatal}
	if !errors.Is(ce, ErrFatal) || !strings.Contains(ce.Error(), "CSTS 0x3 at enable") {
		t.Errorf("%v", ce)
	}
}
