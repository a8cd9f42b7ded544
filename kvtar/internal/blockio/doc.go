// Package blockio does byte-granular I/O on a sector-granular hw.Block. It
// is the one place in tarstore that aligns requests and does
// read-modify-write (RMW) (STYLE 8). The tar store addresses its device in
// bytes (kvtar/doc.go §1: tar blocks are 512 bytes, device sectors any
// multiple of 512); it reads with ReadAt and writes each step of a
// transaction (kvtar/doc.go §3: the stage writes, then the commit writes) as
// one Batch. The device contract is package hw's (SPEC §8).
//
// # Reads
//
// ReadAt reads any byte range. The whole sectors in the middle of the range
// are read straight into the caller's buffer; only a partly wanted first
// and last sector go through a bounce buffer (at most two sectors). The
// range goes to the device as few vectored Reads as MaxIO allows: one when
// the sectors it touches total at most MaxIO bytes.
//
// # Writes and read-modify-write
//
// A Batch records byte-range writes and issues them together:
//
//  1. Resolve. The writes are laid over one another in the order they were
//     made, later bytes winning, which leaves disjoint pieces of caller
//     buffers sorted by offset (Extents describes their union).
//  2. Group. The sectors the pieces touch form runs of consecutive sectors
//     (Sectors). Pieces that share a sector are in the same run.
//  3. Assemble. A sector that lies wholly inside one piece is written
//     straight from the caller's buffer: no copy, whatever the buffer's
//     memory alignment (hw takes any; a driver that needs more bounces on
//     its own). Every other sector of a run (one that the writes cover only
//     in part, or that several writes share) is assembled in a bounce
//     buffer: when some of its bytes are not written, the sector is first
//     read from the device (RMW; consecutive such sectors in one Read),
//     then the pieces are copied over it. Partly covered sectors can only
//     be the first and last sector of a piece, so a single write reads at
//     most its head and tail sector, and bounce memory grows with the
//     number of writes, never with their size.
//  4. Write. Each run goes to the device as vectored Writes of whole
//     sectors, each of at most MaxIO bytes and MaxSegments buffers. Bounce
//     buffers are assembled one request at a time, carved from memory
//     (from hw.AllocBuffer, up to 64 KiB) that the Batch keeps for the
//     requests and Issues that follow; a request needing more gets its
//     own.
//
// The RMW read and the write that follows it are not atomic with respect to
// other writers: nothing else may write the sectors a Batch covers in part
// while it issues (in kvtar the committer is the only writer).
//
// # Crash behaviour
//
// Issue writes every sector the batch touches exactly once, whole, with its
// final contents, and writes no other sector. Sectors are atomic under the
// hw contract, so after a power failure during or after Issue (before a
// Flush) or after Issue fails, each sector holds its old or its new
// contents: never a mix of two writes of the batch and never a torn piece
// of one. Which sectors are new is unspecified: Issue does not order its
// requests among themselves and does not Flush; the caller orders the steps
// of a transaction with Flush (kvtar/doc.go §3). A batch whose SectorCount
// is 1 is one single-sector Write, atomic as a whole: the commit that needs
// no journal record.
//
// # Errors
//
// Requests outside the device fail with the same *hw.Error a driver gives
// (Kind hw.ErrOutOfRange, the LBA and length of the sectors asked for),
// found before any I/O: a Batch with such a write issues nothing. A
// negative offset fails the same way with Err ErrNegativeOffset and LBA 0.
// Device failures are returned as the device reported them.
//
// # Concurrency
//
// ReadAt keeps no state and is as safe for concurrent use as the device. A
// Batch is not safe for concurrent use.
//
// The requests of an Issue (and of a large ReadAt) go out concurrently,
// up to MaxInFlight at once, the last on the caller's goroutine. A Batch
// reused for Issue after Issue notes whether the device completes the
// requests run on the caller's goroutine quicker than a hand-off to
// another goroutine costs (memory, a page cache); while it does, the
// requests run there one after the other, which costs no goroutine and
// no hand-off. Nothing orders an Issue's requests either way.
package blockio
