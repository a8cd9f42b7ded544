// Package passthru is tarstore's NVMe driver over the Linux kernel's
// passthrough ioctls: one namespace of a controller that the kernel's nvme
// driver keeps, as an hw.Block (with hw.Zeroer, hw.Discarder and
// hw.Allocator) with the semantics written in package hw. It sends the
// commands of package nvme's command layer — the same Read, Write, Flush,
// Write Zeroes, Dataset Management and Identify, the same Identify checks
// and the same status codes as typed errors — but the kernel owns the
// queues, the command identifiers, the PRPs and the interrupts. Linux only.
//
// # Files
//
//	cmd.go          struct nvme_passthru_cmd as a byte array; the ioctl numbers
//	ioc_*.go        the direction bits of ioctl numbers, per architecture
//	kernel.go       the seam: the system calls a Device makes, faked in tests
//	kernel_linux.go the system calls (the pointer ioctl is in hw/internal/dio)
//	node.go         namespace node names, the controller node and the kernel's
//	                transfer limit from sysfs
//	open_linux.go   Open: the nodes, the locks, the controller
//	device.go       Device, Options, Identify at open, Close
//	io.go           Read, Write (split and bounced), Flush, WriteZeroes, Discard
//
// # The kernel interface (include/uapi/linux/nvme_ioctl.h)
//
// NVME_IOCTL_ADMIN_CMD is _IOWR('N', 0x41, struct nvme_admin_cmd) and
// NVME_IOCTL_IO_CMD _IOWR('N', 0x43, struct nvme_passthru_cmd), the same
// 72-byte struct: opcode (u8, 0), flags (u8, 1; must be 0), rsvd1 (u16,
// 2), nsid (4), cdw2 (8), cdw3 (12), metadata (u64, 16), addr (u64, 24),
// metadata_len (32), data_len (36), cdw10 to cdw15 (40 to 60), timeout_ms
// (64), result (68), in the host's byte order. On x86 they are 0xC0484E41
// and 0xC0484E43; NVME_IOCTL_ID, _IO('N', 0x40), is 0x4E40. The layout and
// the numbers were checked against this machine's
// /usr/include/linux/nvme_ioctl.h (offsetof and the macros, compiled with
// gcc), and the two passthrough ioctls were measured on the project's VM
// (Debian 12's kernel 6.1 under QEMU 7.2): Identify through
// NVME_IOCTL_ADMIN_CMD on /dev/nvme0, Read through NVME_IOCTL_IO_CMD on
// both /dev/nvme0n1 and /dev/ng0n1.
//
// The kernel (drivers/nvme/host/ioctl.c) builds a submission queue entry
// from the struct, maps data_len bytes at addr for the data — the caller's
// own memory: it pins the pages, or copies through a bounce buffer of its
// own when they are not aligned to the queue's DMA alignment (a dword
// since 5.19, "nvme: set dma alignment to dword") — and waits for the completion without being interruptible.
// The ioctl returns 0, a negative errno (the kernel failed the command: it
// could not map the data, refused the command, or cancelled it on a
// timeout or a controller reset: EINTR), or a positive value: the Status
// Field of the completion (NVMe Base 2.0 §3.3.3.2.1; SC 7:0, SCT 10:8, CRD
// 12:11, More 13, DNR 14). It writes DW0 of the completion into result. An
// I/O command's nsid must be the namespace's (else EINVAL), which
// NVME_IOCTL_ID on the namespace node gives. Passthrough needs
// CAP_SYS_ADMIN (else EACCES); the kernel driver stays bound and keeps
// serving the block device meanwhile.
//
// # Open
//
// Open takes a namespace node: /dev/nvmeXnY (the block device) or
// /dev/ngXnY (the generic character device, which exists also for
// namespaces the block layer cannot use), or a symbolic link to one
// (/dev/disk/by-id). Partitions are refused (ErrNotNamespace): their LBAs
// are not the namespace's. Admin commands go to the controller node
// /dev/nvmeN: Options.Controller, else the controller sysfs links the
// namespace to (class/block/nvmeXnY/device or
// class/nvme-generic/ngXnY/device: a controller, or for the shared
// namespace of native multipath its subsystem, whose first live controller
// is taken), else nvmeX from the name. Identify Controller (Base 2.0
// §5.17, CNS 01h) and Identify Namespace (NVM Command Set 1.0 §4.1.5.1,
// CNS 00h) are decoded and checked by nvme.DecodeIdentify as the userspace
// driver checks them (an inactive namespace, a format with metadata or a
// block size outside 512 B to 64 KiB is refused). hw.Info: SectorSize
// 2^LBADS, Sectors NSZE, ReadOnly from Options.ReadOnly or NSATTR bit 0
// (write protected), Driver "nvme-passthru", Model MN, Serial SN. The
// controller node is closed once Identify is done.
//
// # Exclusion
//
// Open takes flock(2) locks, exclusive for a writable open, shared for a
// read-only one, on both nodes of the namespace — the block node first,
// then the generic node, whichever of them Open was given — so that two
// writers never hold one namespace, through the same node or through the
// two, and a writer and hw/file (which locks the block node) exclude each
// other. A writable open also opens the block node with O_EXCL, the block
// layer's exclusive claim, which fails with EBUSY while the namespace is
// mounted or claimed. A lock held elsewhere for more than a second, or
// EBUSY, is hw.ErrBusy. The locks are advisory, held by the descriptors
// the Device keeps until Close; they do not stop the kernel's own users of
// the block device, nor tools that take no lock.
//
// # I/O (NVM Command Set 1.0 §3.2; Base 2.0 §7.1)
//
// Read (02h, §3.2.4) and Write (01h, §3.2.6) carry SLBA in CDW10-11 and
// NLB, 0's based, in CDW12, through NVME_IOCTL_IO_CMD on the namespace
// node. A request is cut into commands of at most a transfer limit:
// Options.MaxTransfer (128 KiB by default) lowered to the kernel's limit
// (queue/max_hw_sectors_kb, when sysfs has it: larger data would fail with
// EINVAL), to MDTS (counted in 4 KiB pages, CAP.MPSMIN being unknown here:
// the kernel's own page) and to 65536 blocks, in whole blocks. The
// commands run concurrently, at most Options.Depth ioctls on the device at
// once (each blocks an OS thread); after a failure no further command of
// the request starts, and the error is that of the failed command at the
// lowest block. A command whose data lies in one of the caller's buffers
// at a dword-aligned address goes to the kernel in place; other data (a
// vectored request's piece across buffers, a misaligned buffer) goes
// through a pooled page-aligned bounce buffer. AllocBuffer gives buffers
// that never bounce. Flush (00h) is sent only when Identify Controller
// reports a volatile write cache (VWC bit 0) and the device is writable;
// without a cache, completed writes are already durable, and a read-only
// device wrote nothing: Flush then only checks that the device is open. Write Zeroes (08h, §3.2.8, DEAC clear) is sent when ONCS bit 3 is
// set, in commands of at most 65536 blocks; Dataset Management (09h,
// §3.2.3, attribute Deallocate) when ONCS bit 2 is, with the range lists
// of nvme.DeallocateRanges (up to 256 ranges of at most 1 GiB each per
// command). Without them WriteZeroes and Discard fail with
// hw.ErrUnsupported and hw.WriteZeroes falls back to writes.
//
// A request that fails has an *hw.Error with the LBA and length of the
// failed command: a positive ioctl result is a *nvme.StatusError, of Kind
// hw.ErrUnsupported for Invalid Command Opcode and for Invalid Field on
// Flush, Write Zeroes and Dataset Management, hw.ErrIO otherwise (as in
// package nvme); a negative one is Kind hw.ErrIO wrapping an
// *os.SyscallError with the errno. EINTR is not retried: it reports a
// command the kernel cancelled, which may or may not have run. The device
// stays usable either way: the kernel recovers the controller.
//
// Requests take the descriptors under a read lock; Close takes the write
// lock, so it waits for the requests in flight, and a descriptor is never
// used once closed. Close is idempotent; later requests fail with
// hw.ErrClosed. Close does not flush.
//
// # Memory
//
// The data pointer of the struct is a plain integer to Go, so the pointer
// ioctl lives in hw/internal/dio (IoctlNVMe): it stores the address and
// pins the buffer (runtime.Pinner), which also keeps it off goroutine
// stacks, for the duration of the call. This package imports no unsafe.
//
// Not used: metadata buffers, NVME_IOCTL_IO64_CMD and its vectored form,
// io_uring passthrough, admin commands other than Identify.
package passthru
