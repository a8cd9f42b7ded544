package nvme

import (
	"bytes"
	"encoding/binary"
)

// The wire layouts the driver exchanges with a controller, as byte arrays
// with offset accessors: little-endian, at the offsets of the
// specification's figures. None of them is ever cast from memory.

var le = binary.LittleEndian

// command is a submission queue entry (NVMe Base 2.0 §3.3.3.1, the common
// command format): 64 bytes.
//
//	0  CDW0: opcode (7:0), FUSE (9:8), PSDT (15:14), CID (31:16)
//	4  NSID              16 MPTR (64 bits)   24 PRP1 (64 bits)
//	32 PRP2 (64 bits)    40 CDW10 ... 60 CDW15
type command [64]byte

const commandSize = len(command{})

func (c *command) opcode() uint8     { return c[0] }
func (c *command) fuse() uint8       { return c[1] & 3 }
func (c *command) psdt() uint8       { return c[1] >> 6 }
func (c *command) cid() uint16       { return le.Uint16(c[2:]) }
func (c *command) nsid() uint32      { return le.Uint32(c[4:]) }
func (c *command) mptr() uint64      { return le.Uint64(c[16:]) }
func (c *command) prp1() uint64      { return le.Uint64(c[24:]) }
func (c *command) prp2() uint64      { return le.Uint64(c[32:]) }
func (c *command) cdw(n int) uint32  { return le.Uint32(c[4*n:]) } // n in 10..15
func (c *command) setCID(id uint16)  { le.PutUint16(c[2:], id) }
func (c *command) setNSID(id uint32) { le.PutUint32(c[4:], id) }
func (c *command) setPRP(prp1, prp2 uint64) {
	le.PutUint64(c[24:], prp1)
	le.PutUint64(c[32:], prp2)
}
func (c *command) setCDW(n int, v uint32) { le.PutUint32(c[4*n:], v) }

// newCommand returns a command with opcode op (FUSE 00b: not fused; PSDT
// 00b: PRPs) for namespace nsid, with CDW10 onwards from cdws.
func newCommand(op uint8, nsid uint32, cdws ...uint32) *command {
	c := new(command)
	c[0] = op
	c.setNSID(nsid)
	for i, v := range cdws {
		c.setCDW(10+i, v)
	}
	return c
}

// completion is a completion queue entry (§3.3.3.2): 16 bytes.
//
//	0  DW0: command specific      4  DW1: command specific
//	8  SQHD (15:0), SQID (31:16)  12 CID (15:0), phase tag (16), status (31:17)
type completion [16]byte

const completionSize = len(completion{})

func (c *completion) dw0() uint32    { return le.Uint32(c[0:]) }
func (c *completion) sqhd() uint16   { return le.Uint16(c[8:]) }
func (c *completion) sqid() uint16   { return le.Uint16(c[10:]) }
func (c *completion) cid() uint16    { return le.Uint16(c[12:]) }
func (c *completion) phase() uint32  { return uint32(c[14] & 1) }
func (c *completion) status() Status { return Status(le.Uint16(c[14:]) >> 1) }

// Status is the Status Field of a completion queue entry (§3.3.3.2.1),
// bits 31:17 of DW3 shifted down: SC in bits 7:0, SCT 10:8, CRD 12:11,
// More 13, DNR 14.
type Status uint16

func (s Status) SC() uint8  { return uint8(s) }         // Status Code
func (s Status) SCT() uint8 { return uint8(s>>8) & 7 }  // Status Code Type
func (s Status) CRD() uint8 { return uint8(s>>11) & 3 } // Command Retry Delay
func (s Status) More() bool { return s>>13&1 != 0 }     // more in the Error log page
func (s Status) DNR() bool  { return s>>14&1 != 0 }     // Do Not Retry
func (s Status) OK() bool   { return s&0x7ff == 0 }     // Successful Completion

// identifyController is the Identify Controller data structure (Base 2.0
// §5.17, CNS 01h): the fields the driver uses.
type identifyController [4096]byte

func (id *identifyController) vid() uint16       { return le.Uint16(id[0:]) }
func (id *identifyController) sn() string        { return ascii(id[4:24]) }
func (id *identifyController) mn() string        { return ascii(id[24:64]) }
func (id *identifyController) fr() string        { return ascii(id[64:72]) }
func (id *identifyController) mdts() uint8       { return id[77] } // 2^n minimum pages; 0: no limit
func (id *identifyController) ver() uint32       { return le.Uint32(id[80:]) }
func (id *identifyController) sqes() uint8       { return id[512] } // required (3:0), maximum (7:4)
func (id *identifyController) cqes() uint8       { return id[513] }
func (id *identifyController) nn() uint32        { return le.Uint32(id[516:]) }
func (id *identifyController) oncs() uint16      { return le.Uint16(id[520:]) }
func (id *identifyController) vwc() bool         { return id[525]&1 != 0 } // volatile write cache present
func (id *identifyController) writeZeroes() bool { return id.oncs()&(1<<3) != 0 }
func (id *identifyController) deallocate() bool  { return id.oncs()&(1<<2) != 0 } // DSM

// ascii returns an Identify string field: ASCII, padded with spaces (and
// by some controllers with NULs).
func ascii(b []byte) string { return string(bytes.TrimRight(b, " \x00")) }

// identifyNamespace is the NVM Command Set Identify Namespace data
// structure (NVM Command Set 1.0 §4.1.5.1, CNS 00h): the fields the driver
// uses. An inactive namespace reads as zeroes.
type identifyNamespace [4096]byte

func (ns *identifyNamespace) nsze() uint64  { return le.Uint64(ns[0:]) } // size in logical blocks
func (ns *identifyNamespace) ncap() uint64  { return le.Uint64(ns[8:]) }
func (ns *identifyNamespace) nlbaf() int    { return int(ns[25]) } // formats, 0's based
func (ns *identifyNamespace) flbas() uint8  { return ns[26] }
func (ns *identifyNamespace) nsattr() uint8 { return ns[99] } // bit 0: write protected

// formatIndex is the LBA format in use: FLBAS bits 3:0, and bits 6:5 as
// the high bits when there are more than 16 formats.
func (ns *identifyNamespace) formatIndex() int {
	f := ns.flbas()
	return int(f&0xf) | int(f>>5&3)<<4
}

// lbaf returns LBA Format i, 4 bytes at 128 + 4i (0 <= i < 64).
func (ns *identifyNamespace) lbaf(i int) lbaFormat { return lbaFormat(le.Uint32(ns[128+4*i:])) }

// lbaFormat is an LBA Format Data Structure: MS (15:0) metadata bytes per
// block, LBADS (23:16) 2^n data bytes per block, RP (25:24) relative
// performance.
type lbaFormat uint32

func (f lbaFormat) ms() int    { return int(f & 0xffff) }
func (f lbaFormat) lbads() int { return int(f >> 16 & 0xff) }
func (f lbaFormat) rp() int    { return int(f >> 24 & 3) }

// A Dataset Management range (NVM Command Set 1.0 §3.2.3) is 16 bytes:
// context attributes (0), length in logical blocks (4), starting LBA (8).
const dsmRangeSize = 16

// putRange writes a range of blocks at slba, with no context attributes,
// into the first 16 bytes of b.
func putRange(b []byte, slba uint64, blocks uint32) {
	le.PutUint32(b[0:], 0)
	le.PutUint32(b[4:], blocks)
	le.PutUint64(b[8:], slba)
}
