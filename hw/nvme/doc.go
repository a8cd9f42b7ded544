// Package nvme is tarstore's userspace NVMe driver: one namespace of a
// memory-based (PCIe) controller, driven from this process by polling, as
// an hw.Block (with hw.Zeroer and hw.Discarder) with the semantics written
// in package hw. It implements the parts of "NVM Express Base
// Specification, Revision 2.0" (Base below) and "NVM Express NVM Command
// Set Specification, Revision 1.0" (NVM below) that a single-queue block
// driver needs.
//
// The driver reaches a controller through a Controller: its BAR 0
// registers (an mmio.Registers) and a source of DMA memory. OpenPCI maps
// BAR 0 through sysfs and gives physical addresses of 2 MiB huge pages
// (no IOMMU); OpenVFIO goes through VFIO and an IOMMU (IOVAs); tests give
// an in-process fake controller. The same code runs over all three.
//
// # Files
//
//	regs.go       controller properties: CAP, VS, CC, CSTS, AQA, ASQ, ACQ, doorbells
//	layout.go     wire layouts: submission and completion queue entries, status
//	              field, Identify Controller and Namespace, DSM ranges
//	commands.go   the admin and NVM commands the driver sends
//	bringup.go    controller initialization and shutdown, a state machine over
//	              the registers (sans-I/O: stepped against a fake register file)
//	queue.go      a queue pair: SQ tail and CQ head doorbells, phase tags, SQHD
//	prp.go        Physical Region Page entries and lists
//	session.go    one initialization: memory, admin commands, slots over a
//	              hw/internal/queue.Queue (tags, waiters, timeouts, the poller)
//	device.go     Device: hw.Block over sessions; Options, Controller, Identity
//	pci_linux.go  OpenPCI (sysfs, huge pages) and OpenVFIO (VFIO, IOVAs)
//	shared.go     the command layer exported for a transport without queues of
//	              its own (hw/nvme/passthru, the kernel's passthrough ioctls):
//	              commands, DecodeIdentify, DeallocateRanges, status kinds
//
// # Registers (Base §3.1.3)
//
// CAP (§3.1.3.1) gives MQES (15:0, 0's based), CQR (16), TO (31:24, in
// 500 ms units), DSTRD (35:32), CSS (44:37; bit 0 the NVM Command Set),
// MPSMIN (51:48) and MPSMAX (55:52). The driver programs CC (§3.1.3.5)
// with CSS 000b (NVM), MPS 0 (4 KiB pages), AMS 000b (round robin), IOSQES
// 6 and IOCQES 4 (64-byte SQ and 16-byte CQ entries), and watches CSTS
// (§3.1.3.6) RDY (0), CFS (1) and SHST (3:2). AQA (§3.1.3.8) holds the
// admin queue sizes, ASQ and ACQ (§3.1.3.9, §3.1.3.10) their addresses.
// 64-bit properties are two 32-bit accesses, low half first (mmio.Read64,
// mmio.Write64; measured to work on QEMU). The doorbell of SQ y's tail is
// at 1000h + (2y)·(4 << DSTRD), that of CQ y's head at 1000h +
// (2y+1)·(4 << DSTRD) (SQyTDBL and CQyHDBL, which Base 2.0 leaves to the
// NVMe over PCIe Transport Specification). A controller without the NVM
// Command Set, without 4 KiB pages (MPSMIN > 0), with queues of one entry
// or whose doorbells lie beyond its registers is refused (ErrBadController).
//
// # Initialization (Base §3.5.1) and shutdown (§3.6.1)
//
// bringup.go steps through these states, one register access or wait at a
// time; each wait polls CSTS every millisecond for at most CAP.TO (or the
// shutdown timeout), on a clock tests replace:
//
//	read CAP        CAP and VS; check them
//	check CC.EN     SeaBIOS leaves the controller enabled with its own admin
//	                queue: EN=1 and RDY=1 (or CFS) goes to disable; EN=1 and
//	                RDY=0 first waits for RDY=1, as clearing EN while RDY=0 is
//	                undefined (CC.EN, §3.1.3.5); EN=0 waits for RDY=0
//	disable         CC.EN=0 (and SHN=00b): a Controller Level Reset (§3.7.2)
//	await RDY=0     the controller is reset; CSTS.CFS is no error here (the
//	                reset is the cure), and one still set is noted as stale
//	configure       idle: the session carves the admin queue from DMA memory
//	program         AQA, ASQ, ACQ, then CC without EN
//	enable          CC.EN=1
//	await RDY=1     CSTS.CFS fails at once (*ControllerError wrapping
//	                ErrFatal), unless it was stale: then only if the
//	                controller does not become ready within CAP.TO
//	live            idle: admin commands run
//	shutdown        CC.SHN=01b (normal) if the controller runs and is not
//	                fatal; await SHST=10b, then disable and await RDY=0
//
// A wait that exceeds its bound is a *ControllerError wrapping
// ErrReadyTimeout or ErrShutdownTimeout; CSTS reading all ones (a removed
// device) is ErrGone. Then come the admin commands, one at a time on an
// admin queue of 4 entries: Identify (§5.17) with CNS 01h, the Identify
// Controller data structure (VID, SN, MN, FR, MDTS at 77, SQES and CQES
// at 512-513, NN at 516, ONCS at 520, VWC at 525), and CNS 00h for
// namespace Options.Namespace (1 by default; NVM §4.1.5.1: NSZE, NLBAF at
// 25, FLBAS at 26, NSATTR at 99, the LBA formats from 128, each MS 15:0,
// LBADS 23:16, RP 25:24); Set Features (§5.27) Number of Queues (FID 07h)
// asking for one I/O queue pair; Create I/O Completion Queue (§5.4;
// physically contiguous, interrupts disabled: the driver polls) and Create
// I/O Submission Queue (§5.5). An inactive namespace (NSZE 0), a format
// with metadata, or a block size that is not a power of two from 512 B to
// 64 KiB is refused. hw.Info: SectorSize 2^LBADS, Sectors NSZE, ReadOnly
// from Options.ReadOnly or NSATTR bit 0 (write protected), Driver "nvme",
// Model MN, Serial SN (trailing spaces removed).
//
// Close fails the commands in flight with hw.ErrClosed, shuts the
// controller down (which has it commit its volatile cache) and disables
// it, even when the shutdown failed. The I/O queues are not deleted first
// (§3.6.1 recommends it): the shutdown notification and the reset that
// follows end them all the same.
//
// # Queues (Base §3.3.1, §3.3.3)
//
// One I/O queue pair (ID 1) of Options.Slots+1 entries (default 32+1, at
// most CAP.MQES+1), so the SQ never fills: a command slot is taken before
// an SQ entry. A slot is a command identifier (CID) — a tag of the
// session's hw/internal/queue.Queue, whose one waiter receives that CID's
// completion — with a data buffer and a PRP list page in DMA memory; at
// most Slots commands are in flight, from any number of goroutines. Submission writes the 64-byte
// entry at the SQ tail and the tail doorbell, under the session's lock so
// that doorbell writes follow ring order. One goroutine per session polls
// the CQ: an entry is new when its phase tag (DW3 bit 16) is the current
// pass's, and the expected tag flips each time the head wraps; it matches
// completions to slots by CID, in whatever order they come, records the
// SQ head each reports (SQHD) for flow control, and writes the CQ head
// doorbell after each batch. A completion of another SQ, with an SQHD
// outside the submitted entries, or for a CID not in flight is ErrCorrupt.
// After submitting a command that is alone in flight, the requesting
// goroutine itself polls the CQ, up to 256 times, yielding the processor
// between polls, so that a quick completion needs no hand-off from a
// poller on another CPU; meanwhile the poller sleeps, so that one
// goroutine, not two, keeps a (virtual) CPU busy. With more in flight the
// poller alone reaps: it spins (yielding) for 64 polls after the last
// activity, then sleeps 20 µs between polls and reads CSTS every 64 of
// them; with nothing in flight it sleeps until a submission (package
// hw/internal/queue). In a TCG VM with two vCPUs, requesters that all
// polled halved QD32 throughput against the poller alone.
//
// # I/O (NVM §3.2; Base §7.1, §4.1.1)
//
// Read (02h, NVM §3.2.4) and Write (01h, §3.2.6) carry SLBA in CDW10-11 and
// NLB (0's based) in CDW12. Their data moves through the slot's buffer
// (callers' Go memory is not DMA memory: the heap moves and is not mapped
// for the device) — or, when it is one run of a buffer from the pool that
// starts on a page, in place (below) — described by PRPs with 4 KiB pages:
// PRP1 the first page, PRP2 the second or, beyond two pages, the slot's
// PRP list page. A
// request larger than the transfer limit — the slot size (Options.
// MaxTransfer rounded down to a power of two, 4 KiB to 2 MiB, so that one
// list page always suffices) lowered to MDTS (2^MDTS pages of 2^(12+MPSMIN)
// bytes) — is split into commands that run concurrently. Flush (00h, Base
// §7.1) is sent only when Identify Controller reports a volatile write
// cache (VWC bit 0); without one, completed writes are already durable and
// Flush only checks that the device is open. Write Zeroes (08h, NVM
// §3.2.8, DEAC clear) when ONCS bit 3, in commands of at most 65536
// blocks; Dataset Management (09h, NVM §3.2.3) with the Deallocate
// attribute when ONCS bit 2, for Discard, up to 256 ranges of at most 1
// GiB each per command (QEMU skips larger ranges). Without them,
// WriteZeroes and Discard fail with hw.ErrUnsupported and hw.WriteZeroes
// falls back to writes.
//
// A status other than Successful Completion (Base §3.3.3.2.1: SC, SCT,
// CRD, More, DNR) fails the request with an *hw.Error whose Err is a
// *StatusError and whose LBA is the first block of the failed command:
// Kind hw.ErrUnsupported for Invalid Command Opcode, and for Invalid Field
// in Command on Flush, Write Zeroes and Dataset Management (a command or
// size the controller does not take); hw.ErrIO for everything else,
// including LBA Out of Range and media errors. The device stays usable.
//
// # Sessions, timeouts and memory
//
// A session is one initialization: its memory and its poller. It ends when
// a command takes longer than Options.Timeout (ErrTimeout, default 30 s),
// when the poller sees CSTS.CFS (ErrFatal) or all ones (ErrGone), or when a
// completion breaks the protocol (ErrCorrupt). Every command in flight then
// fails with hw.ErrIO wrapping the cause, and the session's memory is
// never used again: the controller may still write it. The next request
// brings the controller up again — reset, fresh memory, same geometry or
// ErrBadController — and may succeed. Memory given to the controller is
// released only after a reset that followed its last use completed
// (CSTS.RDY read 0 after CC.EN was cleared): at the next bring-up, or at
// Close; when no reset completes the memory is kept (VFIO's Close unmaps
// it once the function is closed). Writes that failed this way may or may
// not have reached the medium, sector by sector, as hw allows.
//
// # Buffer pool (hw.Allocator, hw.Releaser)
//
// With Options.PoolSize set, Open takes that much DMA memory from the
// Controller's source for AllocBuffer, which hands it out in whole pages
// (ReleaseBuffer takes a buffer back; an exhausted pool, or none, gives
// ordinary memory). The pool belongs to the Device, not to a session:
// huge-page physical addresses and VFIO IOVAs do not change when the
// controller is reset, so its buffers go to the controller in place in
// every session. It is released only after Close reset the controller and
// once no buffer of it is out, so a buffer kept past Close stays readable —
// except through OpenVFIO, whose Close unmaps all of the function's DMA
// memory: there, buffers must not be used after Close. The default is no
// pool; a source with too few huge pages for the one asked for
// (dma.ErrNoHugepages) opens the Device without one, so that a caller —
// the appliance asks for DefaultPoolSize — need not know how many the
// machine reserved.
//
// Not used: interrupts (no MSI-X vector is assigned; we poll), more than
// one I/O queue pair, SGLs, metadata and protection information, fused
// commands, Abort.
package nvme
