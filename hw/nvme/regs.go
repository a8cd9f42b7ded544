package nvme

import "time"

// Controller properties of a memory-based (PCIe) controller: the registers
// at the start of BAR 0 (NVMe Base 2.0 §3.1.3). The driver reads and writes
// them through mmio.Registers, 32 bits at a time; a 64-bit property is two
// 32-bit accesses, low half first (mmio.Read64, mmio.Write64). Unlike the
// queue entries (layout.go) they are not copied into a byte array: each
// access is a device operation, so a property is an offset, and a value
// read is decoded by accessors of its bit fields.
const (
	regCAP  = 0x00 // Controller Capabilities, 64 bits (§3.1.3.1)
	regVS   = 0x08 // Version (§3.1.3.2)
	regCC   = 0x14 // Controller Configuration (§3.1.3.5)
	regCSTS = 0x1c // Controller Status (§3.1.3.6)
	regAQA  = 0x24 // Admin Queue Attributes (§3.1.3.8)
	regASQ  = 0x28 // Admin Submission Queue Base Address, 64 bits (§3.1.3.9)
	regACQ  = 0x30 // Admin Completion Queue Base Address, 64 bits (§3.1.3.10)

	regDoorbells = 0x1000 // SQ 0 Tail Doorbell; the others follow at the stride
)

// capabilities is the CAP property. Its fields are bit ranges of the
// 64-bit value, read by the accessors below.
type capabilities uint64

// mqes is Maximum Queue Entries Supported (bits 15:0), 0's based: an I/O
// queue may have mqes()+1 entries.
func (c capabilities) mqes() int { return int(c & 0xffff) }

// cqr is Contiguous Queues Required (bit 16).
func (c capabilities) cqr() bool { return c>>16&1 != 0 }

// to is Timeout (bits 31:24), in 500 ms units: the longest CSTS.RDY takes
// to follow CC.EN.
func (c capabilities) to() int { return int(c >> 24 & 0xff) }

// readyTimeout is CAP.TO as a duration; a controller reporting 0 gets one
// unit.
func (c capabilities) readyTimeout() time.Duration {
	return time.Duration(max(c.to(), 1)) * 500 * time.Millisecond
}

// dstrd is Doorbell Stride (bits 35:32): doorbells are 4 << dstrd bytes
// apart.
func (c capabilities) dstrd() int { return int(c >> 32 & 0xf) }

// css is Command Sets Supported (bits 44:37); bit 0 is the NVM Command Set.
func (c capabilities) css() uint8 { return uint8(c >> 37) }

// mpsmin and mpsmax are the Memory Page Size Minimum and Maximum (bits
// 51:48 and 55:52): pages of 2^(12+n) bytes.
func (c capabilities) mpsmin() int { return int(c >> 48 & 0xf) }
func (c capabilities) mpsmax() int { return int(c >> 52 & 0xf) }

// minPageSize is 2^(12+MPSMIN), the unit of Identify Controller's MDTS.
func (c capabilities) minPageSize() int { return 4096 << c.mpsmin() }

// cssNVM is CAP.CSS bit 0: the controller supports the NVM Command Set.
const cssNVM = 1

// sqDoorbell and cqDoorbell return the offsets of the Submission Queue y
// Tail Doorbell, 1000h + (2y)·(4 << DSTRD), and of the Completion Queue y
// Head Doorbell, 1000h + (2y+1)·(4 << DSTRD).
func (c capabilities) sqDoorbell(y int) int { return regDoorbells + 2*y*(4<<c.dstrd()) }
func (c capabilities) cqDoorbell(y int) int { return regDoorbells + (2*y+1)*(4<<c.dstrd()) }

// CC fields (§3.1.3.5).
const (
	ccEnable       = 1 << 0  // EN
	ccCSSShift     = 4       // CSS, bits 6:4: I/O Command Set Selected (000b: NVM)
	ccMPSShift     = 7       // MPS, bits 10:7: memory pages of 2^(12+MPS) bytes
	ccAMSShift     = 11      // AMS, bits 13:11: arbitration (000b: round robin)
	ccSHNMask      = 3 << 14 // SHN, bits 15:14: shutdown notification
	ccSHNNormal    = 1 << 14 // 01b: normal shutdown
	ccIOSQESShift  = 16      // IOSQES, bits 19:16: SQ entries of 2^n bytes
	ccIOCQESShift  = 20      // IOCQES, bits 23:20: CQ entries of 2^n bytes
	ccIOSQESNeeded = 6       // 64-byte submission queue entries
	ccIOCQESNeeded = 4       // 16-byte completion queue entries
)

// ccConfig is the CC value the driver programs, EN clear: the NVM Command
// Set, 4 KiB memory pages, round robin arbitration, no shutdown
// notification, 64-byte SQ and 16-byte CQ entries.
const ccConfig = 0<<ccCSSShift | 0<<ccMPSShift | 0<<ccAMSShift |
	ccIOSQESNeeded<<ccIOSQESShift | ccIOCQESNeeded<<ccIOCQESShift

// CSTS fields (§3.1.3.6).
const (
	cstsRDY          = 1 << 0 // Ready
	cstsCFS          = 1 << 1 // Controller Fatal Status
	cstsSHSTMask     = 3 << 2 // SHST, bits 3:2: shutdown status
	cstsSHSTComplete = 2 << 2 // 10b: shutdown processing complete
	cstsGone         = 0xffffffff
)

// aqa encodes AQA (§3.1.3.8): ACQS in bits 27:16 and ASQS in bits 11:0,
// both 0's based.
func aqa(sqEntries, cqEntries int) uint32 {
	return uint32(cqEntries-1)<<16 | uint32(sqEntries-1)
}

// pageSize is the memory page size the driver programs (CC.MPS = 0): the
// unit of PRP entries (§4.1.1).
const pageSize = 4096
