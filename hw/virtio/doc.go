// Package virtio is tarstore's userspace virtio-blk driver: the block device
// of "Virtual I/O Device (VIRTIO) Version 1.2" (§5.2), driven from this
// process over a split virtqueue (package virtq, §2.7) and a Transport:
// vhost-user on a host (OpenVhostUser; package vhostuser: a unix socket to
// a back-end such as qemu-storage-daemon), modern virtio-pci inside the VM
// (§4.1; package virtiopci) with DMA memory from huge pages (OpenPCI) or
// through VFIO and an IOMMU (OpenVFIO). A Device implements hw.Block,
// hw.Zeroer and hw.Discarder with the semantics written in package hw.
//
// # Bring-up (§3.1.1)
//
// Open reads the offered features and the config space (§5.2.4), acks the
// features the driver uses among those offered — VIRTIO_F_VERSION_1
// (required), BLK_SIZE, SIZE_MAX, SEG_MAX, RO, FLUSH, DISCARD,
// WRITE_ZEROES, INDIRECT_DESC, EVENT_IDX, ACCESS_PLATFORM — takes its memory from the
// transport, sets up queue 0 and starts the device. It refuses, with an
// *hw.Error of Kind hw.ErrUnsupported wrapping ErrBadDevice, a device
// without VERSION_1, a block size that is not a power of two from 512 to
// 64 KiB, a capacity below one block, or no queue. hw.Info: SectorSize is
// blk_size (512 without BLK_SIZE), Sectors is capacity (always in 512-byte
// units) divided by it, ReadOnly follows VIRTIO_BLK_F_RO or Options.ReadOnly,
// Serial is the device's answer to VIRTIO_BLK_T_GET_ID (empty when it has
// none). MQ is not used: one queue already outruns the back-ends measured
// here (see the benchmarks).
//
// # Requests (§5.2.6)
//
// A request is a device-readable header (type, reserved, sector in 512-byte
// units), its data, and a device-writable status byte. Each lives in a slot
// of the transport's shared memory: Options.Slots slots (default 32) of
// Options.MaxTransfer bytes (default 256 KiB, lowered to size_max ×
// seg_max), so at most that many requests are in flight and the ring never
// runs out of descriptors (with INDIRECT_DESC a request takes one ring
// entry; without, header + data descriptors + status). A Read or Write
// larger than a slot is split into slot-sized requests that run
// concurrently; callers' buffers are copied into and out of the slots
// (callers' memory is not the device's memory: the Go heap moves and is
// not registered with the back-end) unless they come from the buffer pool
// (below). Data descriptors respect size_max, and their number seg_max. WriteZeroes (without the unmap flag) and Discard
// send one segment per request, within max_write_zeroes_sectors and
// max_discard_sectors; without the feature they fail with
// hw.ErrUnsupported, and hw.WriteZeroes falls back to writes.
//
// Flush sends VIRTIO_BLK_T_FLUSH, which covers every write completed
// before it. A device that does not offer VIRTIO_BLK_F_FLUSH has no
// volatile cache to flush, so Flush then only checks that the device is
// open.
//
// A status other than VIRTIO_BLK_S_OK fails the request with an *hw.Error
// (Kind hw.ErrIO, or hw.ErrUnsupported for VIRTIO_BLK_S_UNSUPP) whose Err is
// a *StatusError carrying the request's sector and status, and whose LBA is
// the first block of the failed device request. The device stays usable.
//
// # Buffer pool (hw.Allocator, hw.Releaser)
//
// Over a PoolTransport (vhost-user; virtio-pci from OpenPCI) the Device keeps Options.PoolSize
// bytes (default 16 MiB) of memory the device can reach, which
// AllocBuffer hands out in whole pages and ReleaseBuffer takes back; once
// it is exhausted, AllocBuffer returns ordinary memory. A device request
// whose data lies entirely in pool buffers, within the request's data
// descriptors, goes to the device in place: its descriptors carry the
// buffers' own addresses and nothing is copied; any other request bounces
// through its slot. The pool belongs to the Device, not to a session: for
// vhost-user it is a second memfd, registered in every session's
// SET_MEM_TABLE at the same addresses, so its buffers stay valid and go in
// place again after a reconnect; for OpenPCI it is huge pages, whose
// physical addresses every session gives the device (with too few huge
// pages reserved for it, the Device opens without a pool). Over a transport
// without it (OpenVFIO's: the IOMMU mapping would die with each session's
// VFIO container) AllocBuffer returns ordinary memory and every request
// bounces.
// Close unmaps the pool once no buffer of it is out (when the last one
// comes back after Close, else); a buffer kept past Close stays readable.
// As with the slots, a request that fails with its session may still be
// carried out by a back-end that finishes late: a pool buffer of a failed
// Write should not be reused for other data before the next request
// succeeds.
//
// # Completions and failures
//
// Slots, their waiters, timeouts and the death of a session are package
// hw/internal/queue's, which hw/nvme shares; this package keeps the
// descriptors. One goroutine per session drains the used ring and then
// waits in
// Transport.Wait (an eventfd for vhost-user; polling for PCI without
// interrupts), handing each completion to the request's goroutine; with
// EVENT_IDX the device is asked to notify for the next entry only. With a
// transport without interrupts (virtio-pci here) the requesting goroutine
// also reaps the used ring for a while after it submits, so that its
// completion needs no hand-off from a goroutine that may run on another
// CPU (measured in the VM: QD32 up from 2.7× to 3.1–3.4× the kernel's
// throughput with one vCPU, 1.4–1.8× to 2.6–2.8× with two). A
// session — the transport after bring-up, its queue and its slots — ends
// when the transport reports the device gone (ErrGone), when the used ring
// breaks the specification (ErrGone wrapping virtq.ErrCorrupt), or when a
// request takes longer than Options.Timeout (ErrTimeout, default 30 s).
// Then every request in flight fails with hw.ErrIO wrapping the cause, the
// transport is closed, and the session's memory is never reused: a device
// that finishes late writes to memory nobody reads. The next request dials
// again (vhost-user: the same socket) and brings up a fresh session; the
// device must present the same geometry. Writes that failed this way may or
// may not have reached the medium, sector by sector, as hw allows.
//
// Close stops the session (for vhost-user, closing the socket makes the
// back-end stop the rings and wait for a new front-end); requests in flight
// fail with hw.ErrClosed. Close does not flush.
package virtio
