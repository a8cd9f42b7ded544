package nvme

// Admin command opcodes (NVMe Base 2.0 §5).
const (
	opCreateSQ    = 0x01 // Create I/O Submission Queue (§5.5)
	opCreateCQ    = 0x05 // Create I/O Completion Queue (§5.4)
	opIdentify    = 0x06 // Identify (§5.17)
	opSetFeatures = 0x09 // Set Features (§5.27)
)

// NVM Command Set I/O command opcodes (Base 2.0 §7.1; NVM Command Set 1.0
// §3.2).
const (
	opFlush       = 0x00 // Flush (Base §7.1)
	opWrite       = 0x01 // Write (NVM §3.2.6)
	opRead        = 0x02 // Read (NVM §3.2.4)
	opWriteZeroes = 0x08 // Write Zeroes (NVM §3.2.8)
	opDSM         = 0x09 // Dataset Management (NVM §3.2.3)
)

// Identify CNS values (§5.17).
const (
	cnsNamespace  = 0x00 // Identify Namespace for the NSID
	cnsController = 0x01 // Identify Controller
)

// fidNumQueues is the Number of Queues feature (§5.27.1, FID 07h).
const fidNumQueues = 0x07

// maxBlocks is the most logical blocks one Read, Write or Write Zeroes
// moves: NLB is a 0's based 16-bit field.
const maxBlocks = 1 << 16

// identifyCmd asks for the data structure cns names (CDW10 bits 7:0) of
// namespace nsid.
func identifyCmd(cns uint8, nsid uint32) *command {
	return newCommand(opIdentify, nsid, uint32(cns))
}

// setQueuesCmd requests n I/O submission and n I/O completion queues:
// CDW11 holds NCQR (31:16) and NSQR (15:0), both 0's based. DW0 of the
// completion holds the numbers allocated, in the same layout.
func setQueuesCmd(n int) *command {
	return newCommand(opSetFeatures, 0, fidNumQueues, uint32(n-1)<<16|uint32(n-1))
}

// createCQCmd creates I/O completion queue qid of entries entries: CDW10
// holds QSIZE (31:16, 0's based) and QID (15:0); CDW11 PC (bit 0:
// physically contiguous) set, IEN (bit 1: interrupts) clear, IV (31:16) 0.
// PRP1 is the queue's address.
func createCQCmd(qid uint16, entries int, addr uint64) *command {
	c := newCommand(opCreateCQ, 0, uint32(entries-1)<<16|uint32(qid), 1)
	c.setPRP(addr, 0)
	return c
}

// createSQCmd creates I/O submission queue qid of entries entries bound to
// completion queue cqid: CDW10 as for createCQCmd; CDW11 CQID (31:16),
// QPRIO (2:1) 00b, PC (bit 0) set.
func createSQCmd(qid uint16, entries int, cqid uint16, addr uint64) *command {
	c := newCommand(opCreateSQ, 0, uint32(entries-1)<<16|uint32(qid), uint32(cqid)<<16|1)
	c.setPRP(addr, 0)
	return c
}

// blocksCmd is a Read, Write or Write Zeroes of blocks (1..maxBlocks)
// logical blocks at slba: CDW10 and CDW11 hold SLBA, CDW12 NLB (15:0, 0's
// based); no FUA, no protection information, and for Write Zeroes DEAC
// (bit 25) clear, so the blocks read back as zeroes.
func blocksCmd(op uint8, nsid uint32, slba uint64, blocks int) *command {
	return newCommand(op, nsid, uint32(slba), uint32(slba>>32), uint32(blocks-1))
}

// dsmCmd deallocates the ranges (1..256) whose list PRP1 points at: CDW10
// NR (7:0, 0's based), CDW11 AD (bit 2: attribute deallocate).
func dsmCmd(nsid uint32, ranges int) *command {
	return newCommand(opDSM, nsid, uint32(ranges-1), 1<<2)
}

// flushCmd commits namespace nsid's volatile write cache to the medium.
func flushCmd(nsid uint32) *command { return newCommand(opFlush, nsid) }
