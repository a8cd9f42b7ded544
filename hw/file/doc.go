// Package file is the hw.Block driver for disk images (regular files) and
// block device nodes, doing direct I/O with pread/pwrite on an O_DIRECT file
// descriptor (SPEC §8, "hw/file"). Linux only.
//
// # Contract
//
// Open returns a *Device that implements hw.Block, hw.Zeroer, hw.Discarder
// and hw.Allocator with the semantics documented in package hw:
//
//   - The logical sector size is the device's direct-I/O granularity (see
//     below), or Options.SectorSize when that is set: a multiple of 512 and
//     of the detected alignment, at most MaxSectorSize, so that a plain file
//     can act as a 4096-byte-sector disk. Info().Sectors is the size in
//     bytes divided by the sector size; a trailing partial sector is ignored
//     (never read or written). The geometry is read once, at Open.
//   - Read and Write accept any buffers. A buffer whose address is aligned
//     to the device's memory alignment is transferred in place (zero-copy);
//     other buffers are bounced through pooled page-aligned 1 MiB chunks
//     (bounded memory, looping for larger requests). A vectored request is
//     issued as one preadv/pwritev per batch of at most 1024 segments and
//     1 MiB of bounced data. AllocBuffer returns page-aligned buffers, which
//     never bounce.
//   - Short transfers are resumed; an errno or an unexpected end of file
//     fails the request with an *hw.Error of Kind hw.ErrIO whose LBA is the
//     first sector not transferred and whose Err is the cause
//     (*os.SyscallError wrapping the errno, or io.ErrUnexpectedEOF).
//   - Flush is fdatasync(2). On a block device the kernel turns it into a
//     cache flush of the device (REQ_PREFLUSH); on a file it also writes the
//     metadata needed to read the data back (allocation of holes). Flush on
//     a read-only device does nothing.
//   - WriteZeroes is BLKZEROOUT on block devices (the kernel falls back to
//     writing zero pages when the device has no write-zeroes command) and
//     fallocate(FALLOC_FL_ZERO_RANGE|FALLOC_FL_KEEP_SIZE) on files. Discard
//     is BLKDISCARD, resp. fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE)
//     (a punched range of a file reads back as zeroes). EOPNOTSUPP, ENOTTY
//     and ENOSYS become Kind hw.ErrUnsupported, so hw.WriteZeroes falls back
//     to writing zeroes.
//   - Requests are positional (pread/pwrite), so any number may be in flight
//     from different goroutines. Each holds a read lock on the descriptor;
//     Close takes the write lock, so it waits for requests in flight and a
//     closed (or reused) descriptor number is never used. Close is
//     idempotent; later requests fail with Kind hw.ErrClosed.
//   - Errors from Open and Create are *hw.Error with Op "open" or "create".
//     The cause stays reachable: errors.Is(err, fs.ErrNotExist) works for a
//     missing path, errors.Is(err, fs.ErrExist) when Create finds a file.
//
// # Exclusion
//
// Open takes flock(2) on the descriptor: LOCK_EX|LOCK_NB for a writable
// device, LOCK_SH|LOCK_NB for a read-only one. Two writers, or a writer and a
// reader, never hold one image or device node at once; the loser gets Kind
// hw.ErrBusy (Err wraps EWOULDBLOCK) after trying for a second (a lock
// its own process just released can be held that long by a child between
// fork and exec). flock locks belong to the open file
// description, so two Opens in one process exclude each other too, and the
// lock goes away with Close or process exit. They are advisory: tools that do
// not take them (dd, losetup) are not stopped. A writable block device is in
// addition opened with O_EXCL, which Linux (since 2.6) treats as an exclusive
// claim on the device: it fails with EBUSY (Kind hw.ErrBusy) while the device
// is mounted or claimed by another exclusive opener.
//
// # Linux facts relied on
//
//   - O_DIRECT requires file offsets and lengths that are multiples of the
//     logical block size and (since Linux 6.0; before, the logical block
//     size too) buffer addresses aligned to the device's DMA alignment;
//     otherwise the kernel returns EINVAL.
//   - statx(2) with STATX_DIOALIGN (since Linux 6.1, for block device nodes
//     and for files on file systems that implement it: ext4, xfs, f2fs, ...)
//     reports stx_dio_offset_align and stx_dio_mem_align; a zero offset
//     alignment means the file does not support direct I/O. Where statx does not report it (e.g. tmpfs), the
//     driver probes: it reads 512, then 4096 bytes with O_DIRECT at the first
//     data region (SEEK_DATA) and takes the first size the kernel accepts,
//     using it for the memory alignment too. Reads of holes are not checked
//     for alignment by the kernel, so on a file without any data the probe
//     can only answer 512.
//   - Block devices: BLKSSZGET gives the logical sector size, BLKGETSIZE64 the
//     size in bytes, BLKROGET the read-only flag (a device reporting it is
//     opened read-only; writes to it would fail with EPERM). Regular files
//     take their size from fstat.
//   - Info().Serial is read from sysfs for block devices
//     (/sys/dev/block/MAJ:MIN/serial or device/serial, of the whole disk for a
//     partition) and is empty for files and devices without one.
//
// Address arithmetic and the pointer-argument ioctls live in the internal
// package dio; this package imports no unsafe.
package file
