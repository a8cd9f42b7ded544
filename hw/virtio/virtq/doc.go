// Package virtq implements the driver side of a split virtqueue as specified
// in "Virtual I/O Device (VIRTIO) Version 1.2", §2.7 Split Virtqueues.
//
// The package knows nothing about transports (vhost-user, virtio-pci) or
// device types (virtio-blk). A transport tells the device the three ring
// addresses reported by [Queue.DescAddr], [Queue.AvailAddr] and
// [Queue.UsedAddr] and delivers notifications in both directions; a device
// driver builds requests out of [Buffer]s.
//
// # Layout (§2.7, §2.7.5, §2.7.6, §2.7.8)
//
// A queue of size N (a power of two, 1..32768) has three areas:
//
//	descriptor table  16·N bytes, 16-byte aligned (§2.7.5)
//	  le64 addr; le32 len; le16 flags; le16 next
//	available ring    6+2N bytes, 2-byte aligned (§2.7.6)
//	  le16 flags; le16 idx; le16 ring[N]; le16 used_event
//	used ring         6+8N bytes, 4-byte aligned (§2.7.8)
//	  le16 flags; le16 idx; {le32 id; le32 len} ring[N]; le16 avail_event
//
// All fields are accessed as little-endian 32-bit words through the [Mem]
// interface; nothing is cast to a Go struct. This package requires the
// available ring to be 4-byte aligned (stricter than the specification) and
// both rings to be followed by up to 2 bytes of padding so that the trailing
// 16-bit event field (used_event at 4+2N, avail_event at 4+8N) lies inside a
// whole 4-byte word: [AvailSize] and [UsedSize] include that padding and
// [Sizes] carves one allocation accordingly. The device never accesses the
// padding.
//
// # Memory ordering
//
// The rings are shared with a device running concurrently on other threads or
// in another process. sync/atomic has no 16-bit operations, so every index and
// event field is accessed with a 32-bit atomic operation on the aligned word
// containing it ([Mem.Load32], [Mem.Store32], which must be sequentially
// consistent like sync/atomic):
//
//   - avail.flags and avail.idx share the word at offset 0 and are both
//     written only by the driver, so publishing the index is a single atomic
//     store of flags | idx<<16 (§2.7.13.3). The driver keeps shadows of both
//     and never reads them back from shared memory.
//   - used.flags and used.idx share the word at offset 0 and are both written
//     only by the device, so one atomic load yields both (§2.7.14).
//   - used_event (avail ring, offset 4+2N, driver-written): for N ≥ 2 the
//     offset is a multiple of 4 and the word holds used_event plus 2 bytes of
//     padding; for N = 1 the word at offset 4 holds ring[0] and used_event,
//     both driver-owned. Either way the driver owns the whole word and
//     updates it with a read (of its own data) and one atomic store.
//   - avail_event (used ring, offset 4+8N, device-written) is always at a
//     multiple of 4; the driver atomically loads the word and uses the low
//     half. The high half is padding that nobody writes.
//
// Descriptors and available-ring entries are written with plain stores
// ([Mem.Write32]) before the atomic store that publishes avail.idx; a
// sequentially consistent store is a release, so the device, which reads
// avail.idx before reading those entries (§2.7.13.3: "the driver MUST perform
// a suitable memory barrier before the idx update"), sees them complete.
// Symmetrically the driver atomically loads used.idx (an acquire) before
// reading used entries with plain loads ([Mem.Read32]); the device published
// them before its idx store. Available-ring entries are 16 bits, two per word,
// and both halves are driver-owned. The driver writes slot i&(N-1) for avail
// index i with a plain read-modify-write of the word: the other half is
// rewritten with the value it already holds, and the slot itself is no longer
// needed by the device, because if the device had not yet read entry i-N then
// entries i-N..i-1 would all be in flight, holding all N descriptors, and Add
// would have failed with ErrFull.
//
// Notification suppression (§2.7.7, §2.7.10) needs store→load ordering: in
// [Queue.Kick] the store of avail.idx must be ordered before the load of
// used.flags or avail_event, and in [Queue.EnableInterrupts] and [Queue.Next]
// the store of avail.flags or used_event must be ordered before the re-load of
// used.idx. Sequentially consistent atomics give exactly this (the device must
// use a full barrier between its corresponding store and load, as the
// specification requires). With that, a notification can be lost only if
// both sides observe each other's old value, which sequential consistency
// forbids: if the driver's re-check of used.idx misses a new entry, the
// device's store of used.idx comes later in the total order, so the device's
// subsequent load of used_event/flags sees the driver's update and it
// notifies.
//
// The driver keeps its own copy (in Go memory) of everything it needs to
// reclaim descriptors — the free list's next links, chain lengths, tokens —
// so a device scribbling on the shared descriptor table cannot corrupt the
// driver's state. Used entries are validated (§2.7.8): an id that is out of
// range or not the head of an in-flight chain, a len larger than the chain's
// device-writable size, or a used.idx more than N ahead yields a
// [*DeviceError] (matching [ErrCorrupt]) and the queue becomes broken.
//
// # Indirect descriptors (§2.7.5.3)
//
// When VIRTIO_F_INDIRECT_DESC is negotiated ([Features.Indirect]) and the
// caller supplies memory for indirect tables ([Queue.UseIndirect]), a chain of
// more than one buffer occupies a single descriptor of the ring pointing to
// a table. If no table is free or the chain is longer than a table, the
// chain falls back to direct descriptors.
//
// A [Queue] is not safe for concurrent use: one goroutine at a time drives it.
package virtq
