// Package kvtar is the tar key-value store: kv.RW (SPEC §3) kept as a tar
// archive on any hw.Block, stamped by any clock.PClock (SPEC §4). It is the
// Go re-creation of tar-mirage's Make_KV_RW, extended with overwrite, remove
// and rename of anything, crash consistency, long names, huge values and
// sector sizes of any multiple of 512.
//
// This file is the design; the code follows it and cites its sections.
//
// # 1. Layout
//
// The device is an archive area followed by a journal area:
//
//	0                                  A                          device end
//	| members and holes | EOA | free    | journal (J sectors)      |
//
// The archive area holds a tar archive from byte 0: members, holes, and the
// end-of-archive marker (EOA: two zero blocks) at offset E. Everything after
// E is never parsed by a tar reader, so the free tail [E+1024, A) and the
// journal area are invisible (Invariant A holds for the device read as a
// stream). The journal area is the last J sectors of the device, J chosen
// at Format from the device size (§5).
//
// A member written by the store is an optional PAX x header with its records
// (only when a field does not fit ustar: long names, sizes from 8 GiB,
// sub-second mtimes), a ustar header, and the value padded to 512 bytes.
// Names are the key without its leading '/'. No directory members are
// written: dictionaries are implied by the values below them, and a
// dictionary that loses its last value disappears (SPEC §3). Directory
// members of foreign archives are kept and make their key a dictionary.
//
// Values of 64 KiB or more are placed so that their data starts on a
// sector boundary (and a 4 KiB one): reads and writes of large values are then whole-sector
// direct I/O into the caller's buffers (zero-copy), and only the last
// sector of a value is shared with what follows it.
//
// # 2. Holes
//
// Space of removed or replaced members becomes a hole (a replaced large
// value is first kept as a superseded member, below): a PAX g header
// whose data is a single comment record (tarfmt.HoleWrites), which every
// reader skips silently. A hole's structure is three small writes (the
// header block, the record prefix at the start of its data, the "\n" at
// its end); the filler in between keeps whatever bytes were there.
//
// Readers limit what may stand before a member, so the store keeps every
// free region between two members as exactly ONE hole chunk, of two
// blocks (a g header with data) to 1 + 1024 blocks (512 KiB of data). The
// limits respected, measured or read in the readers' sources:
//
//   - libarchive (bsdtar) 3.6.2 refuses a 32nd special header (g, x, L, K)
//     before a member ("Too many special headers",
//     header_recursion_depth in archive_read_support_format_tar.c);
//     3.7.5 warns and 3.8.0 fails on a second g header before an entry
//     ("Redundant 'g' header"); 3.8.9 refuses an empty g header (size 0);
//     it refuses an attribute over about 1 MB;
//   - Python 3.11's tarfile recurses once per special header and raises
//     RecursionError from about 330 in a row; a g or x header right before
//     the end-of-archive blocks makes it fail;
//   - Go's archive/tar refuses a special header's data over 1 MiB;
//   - GNU tar 1.34 accepts all of the above.
//
// So: a hole of one block cannot exist; two holes may not touch; a hole
// that reaches the end of archive is not kept (the end of archive moves
// back to its start); a region larger than one chunk is closed by
// compaction. The rules are kept by construction:
//
//   - placement never leaves one free block before or after a member
//     (space.fitIn, fitFrom);
//   - a header rewritten in place fills the old header's space exactly,
//     padded with a comment record (tarfmt.EncodeHeaderBlocks);
//   - a member of one block (an empty value, a directory) is written as
//     three, so that its removal never leaves one block;
//   - at the end of planning, adjacent holes that one chunk can hold are
//     laid out again as one (txn.normalize, journaled commit writes);
//   - larger regions are filled with members moved from the end of the
//     archive, in rounds that are ordinary transactions (compact.go): a
//     moved member is a placement in a hole, its data staged in the
//     hole's filler; the bytes moved are at most the region's size, and
//     each move gives the member's old space back to the free tail. A
//     region one member from the end cannot fill takes in a small
//     neighbour moved to the tail instead (widen). A region pinned by
//     open readers waits until they close (then a write with nothing to
//     plan runs compaction; Check and Close run it too).
//
// What compaction cannot close — the member at the end of the archive
// larger than the region, or not movable (a hard link's target, a sparse
// or unexposed foreign member), or no room left for a move — stays a
// chain of chunks, which GNU tar, Go, and short chains bsdtar 3.6 and
// Python read; Check reports it (fatal), and the next write tries again.
// Open lays out again or compacts the regions of images written before
// these rules.
//
// New members go to the end of archive while the free tail stays above a
// reserve of an eighth of the archive area (an append commits in one round
// of writes, §3; a member in a hole needs two); below it, holes are reused
// first (best fit). Placing a member re-lays only the hole chunks it
// overlaps: what is left of them becomes a hole of its own. A member fits a
// hole as long as itself, or two blocks longer or more; one block longer
// fits only a member whose header has an x header, which grows by a block
// (a one-block header cannot: an x header takes two). When a write finds
// no room but the store has as much free space as it needs, the store
// makes room — it moves members, from the end of the archive into holes,
// or next to holes so that free regions merge (room.go) — and plans the
// write again: the space of removed values takes values of the same sizes
// again. Stat's Largest is the largest value that fits now, exactly.
//
// A replaced value whose space one hole chunk cannot hold (over 512 KiB)
// is not freed at once: it stays in the archive, superseded — a member of
// the same name before the live one, which tar extraction replaces with
// the later member, as after `tar -r`. The next write of that key goes
// into its space when it fits there (about the same size), and the value
// it replaces, usually the last member, gives its space back to the tail:
// overwriting a large value writes its bytes once instead of being
// followed by compaction copying the new value into the old space
// (dead.go). A key has at most one superseded member; a remove, a rename
// or a write of the key that goes elsewhere releases it; a write that
// finds no room releases them all first. Their space counts as free.
// `tar -t` lists such a key twice; extraction yields the store's value.
// A superseded member's bytes are the old value's until its space is
// reused: to erase a value's bytes, remove it rather than overwrite it
// (and even then its bytes stay in a hole's filler until reused).
//
// # 3. Transactions
//
// Every mutation (or group of mutations, §6) is one transaction that takes
// the archive from one valid state to the next. It is computed in memory as
// a list of byte-range writes, each of which is classified against the
// CURRENT on-disk state:
//
//   - a stage write touches only bytes no reader can see now: the free tail
//     past E (including the second EOA block, see below), the filler of a
//     hole chunk (not its header block, not its first or last data block),
//     or the data of a member the same transaction shadows;
//   - a commit write touches anything else: a header, the EOA's first
//     block, the structure of a hole, the data of a visible member.
//
// The order at every transaction is:
//
//  1. Issue the stage writes and the journal record (§4). Flush. The
//     transaction is now durable.
//  2. Issue the commit writes, without a flush, and acknowledge: the next
//     transaction's flush (or Close) makes them durable, and until then
//     the record vouches for them.
//
// While a transaction's commit writes are not flushed ("pending"), the
// next transaction treats the bytes they cover as visible: it writes there
// only as commit writes, because a replay of the pending record would
// write them again. The commit writes a record's transaction made in step
// 1 (an appended header) count as pending too, for the same reason: the
// replay of the record writes them again, and normalize may have made
// such a block filler in the same transaction. (Found by TestCrashStreams:
// a compaction staged a value over a stale hole header of its
// predecessor's record, which recovery then replayed over it.)
//
// Flushed is not enough, either: a recovery replays the newest record's
// commit writes and, when that record says its predecessor's were pending,
// the predecessor's — whenever they were flushed. So until a newer record
// exists, those extents (Store.replayable) are treated the same way, and
// an append whose header lies there is not a lone append. (Found by
// TestKillRestart: a removal at the tail wrote the end-of-archive marker
// where the archive now ended, one more transaction with a record
// followed, and a lone append at that end was zeroed by the replay of the
// removal's record after kill -9: acknowledged values lost about once in
// 30 runs; TestAppendOverReplayedCommit.)
//
// An append writes the member's data and a new EOA past the current EOA's
// first block (which stays zero, so the archive still ends at E) as stage
// writes; its header block at E is a commit write, which goes in step 1
// with the data and the record when the journal's newest durable record
// says that the archive ends at E: if step 1 does not complete, recovery
// ends the archive at E again (§4, §5). A plain append is then one round
// of writes and one flush; the other commit writes of a transaction (the
// hole an overwrite leaves, say) still wait for step 2. Right after
// Format, or an open whose journal's newest record is not a checkpoint at
// the end of the archive, no record says where the archive ends, so the
// first append takes the two steps. Inside
// an append the block at E may be a lone zero block followed by data: GNU
// tar and Python stop there, Go does not; this window exists only inside a
// transaction or after a crash in it, and recovery closes it.
//
// A lone append — one member with a one-block ustar header, its data in
// memory, nothing else in the transaction (or a group commit of such
// appends, one after the other) — needs no record at all: it is one write
// (headers, data, EOA) and one flush. Its header vouches for it
// instead, in the 12 bytes after the ustar prefix that every reader
// ignores (tarfmt.Tag): the CRC-32C of its data, and a chain, the CRC of
// (the chain before it, that data CRC, its offset), which starts from the
// CRC of the newest record. Recovery, after applying that record, checks
// every member from the record's end of archive on: each must carry the
// next chain value and data of the right CRC; the archive ends before the
// first one that does not (an append that did not complete, or the free
// space after one, where old members — chained to another past — may
// lie). The journal gets its checkpoint only once that end is repaired. Of a group
// that did not complete, an open may keep the first appends and not the
// others: none of them was acknowledged, and the requests of a group are
// independent (group.go).
//
// A transaction whose record is too large for its slot spills (§4); it
// flushes its step 2 at once, and only then writes a checkpoint — a record
// with no writes that says where the archive ends — to the other slot, and
// flushes again: a checkpoint durable before every commit sector would let
// recovery replay nothing over a torn commit.
//
// These are the protocols a transaction can take, chosen in one place
// (txn.go, protocol): lone append (no record), early header (record, the
// appended header in step 1), two-step (record, every commit write in step
// 2: the first transaction after an open), spilled (with its checkpoint);
// and stage-only when nothing the archive shows changes. The crash tests
// cut every write of each (a knob makes every record spill) and check that
// each was used.
//
// # 4. The journal record
//
// The journal area holds two slots of half its size; the record of
// transaction number n lives in slot n%2. A record holds: magic, version,
// its number, whether its predecessor's commit writes were still pending
// when it was written, the end of archive before and after the
// transaction, the record's length and CRC-32C, the stage extents with the
// CRC-32C of their bytes as written in step 1, and the commit writes
// (offset, bytes) — where a run of them is exactly the layout of a hole
// the transaction laid out, a hole entry (offset, length) instead, which
// the replay lays out again: a remove records 16 bytes for each region it
// frees, so a full store can record a remove of thousands of members.
// Records larger than their slot spill their commit bytes to free space
// past the stage writes; the header names where.
//
// The stage extents a record vouches for are the parts of its stage writes
// that the archive shows afterwards: member data and the structure of new
// hole chunks, not the filler of holes nor anything from the end of
// archive on (free space, which the next transaction may overwrite).
//
// Recovery takes the valid record with the highest number. When its stage
// extents hold the bytes it describes, it replays its predecessor's commit
// writes (when the record says they were pending) and its own. Otherwise
// step 1 of that transaction did not complete: it was not acknowledged and
// is discarded, and only the predecessor is replayed (when pending). The
// replay ends by writing the end-of-archive marker where the archive then
// ends (the record's "after", or its "before" when discarded). Replaying
// is idempotent. A slot is overwritten only two transactions later, when
// the record in it is no longer needed; a spilled record is followed at
// once by a checkpoint, so a record whose spilled bytes were overwritten is
// never the newest. Recovery (when it replayed or repaired) and Close end
// with a checkpoint at the end of the archive (after a flush), and Format
// clears both slots: the newest record of a store's journal always says
// where its archive ends, or ends at least (chained appends may follow).
// A scan uses that to tell damage from the end (§5).
//
// # 5. Open and recovery
//
// Open reads the geometry, then, on a writable device:
//
//  1. Reads the journal and replays what §4 says (flush); the journal
//     gets a checkpoint (flush) once the steps below are done. A
//     checkpoint alone needs no replay, and an open that finds one at the
//     end of the archive and nothing to repair writes nothing.
//  2. Scans the archive with tarfmt.Decoder in large sequential reads,
//     skipping the data of large members, and builds the index (§7) and
//     the free-space map (holes, tail); past the newest record's end of
//     archive it accepts only chained appends (§3).
//  3. Repairs a lone zero block at E: zeroes the block after it (flush).
//  4. Resolves duplicate names in archive order, as tar extraction does: a
//     later value replaces an earlier value with the same key (a later
//     directory member an earlier one). What is replaced is shadowed; the
//     store turns shadowed members into holes in one transaction, except
//     those that hard links still use, which go with their last link, and
//     for each key bound to a value the last shadowed value before it
//     that qualifies as superseded (§2, scanResult.superseded), which stays. A
//     member whose kind conflicts with an earlier one — a file where a
//     directory is or below a file, a directory where a file is — is
//     damage: tar extraction fails or depends on the disk, so the open
//     fails with kv.ErrCorrupt and the offset.
//
// A device smaller than MinDeviceSize has no room for the journal: a whole
// archive on it (a tar file of a few KiB) opens read-only, saying why
// writes are refused; one that runs to the device's end without an
// end-of-archive marker is cut short (kv.ErrCorrupt, ErrTooSmall).
//
// A read-only open does steps 2 and 4 in memory only and writes nothing;
// when the journal holds a record a writable open would replay, it reads
// the device through that record (patched), so that it sees the last
// transaction whole. An archive with PAX global headers that carry records
// (not holes) is opened read-only: members written after them would
// inherit the records.
// Damage before the end the journal knows of — a zero block, or a block
// that does not decode (a zeroed sector, a garbled header) — is not taken
// for the end of the archive: the scan finds the archive again at the
// first valid header from which it decodes to a zero block at or after
// that end (resync), indexes what follows, and reports the region. The
// store then opens read-only (Damage, Info.WhyReadOnly: a write could
// land on what follows); Check reports each region as fatal; Repair
// (`tarstore check --repair`) turns the regions into free space and
// removes values whose data fails its CRC (doc §8). What lay in a region
// is lost; nothing after it is. Without a record (a foreign archive), a
// zero block ends the archive as for every tar reader, and other damage
// (bad checksums, truncated members, unsafe names) fails the open with
// kv.ErrCorrupt and the offset. Members appended after the newest record
// (chained appends, §3) are past the end it knows: a zeroed header there
// ends the archive (the appends after it are lost).
//
// # 6. Concurrency and group commit
//
// Reads take a shared lock on the index and read the device directly; a
// kv.Reader read in order reads ahead in large chunks, several in flight
// (readahead.go). An open kv.Reader pins its extent: the space is not reused until the reader
// is closed (the snapshot kv.Reader promises). Writers queue; a committer
// builds one transaction from every queued mutation (applying them to the
// index in order), runs it (one flush for the whole group), and
// returns to each writer when the group is durable. A large value streamed
// from a reader (SetFrom, over 64 KiB) reserves its space past the end of
// archive first, streams there with no lock held, and joins a group only
// to commit, its header right before its data and the space left before
// it a hole (reserve.go): a slow source holds up no other write, except the
// writes that need more of the tail than the reservation leaves before it
// (448 KiB), which wait for it, and other large streams, which take turns.
// With no room at the tail it streams inside the lock.
//
// # 7. Index
//
// The index is a tree of dictionaries keyed by segment, with one entry per
// live member: where its header and data lie, size, mtime, and the sparse
// map or link target of foreign members, and the value's SHA-256 when
// known. Its size is O(number of keys). The store computes a value's digest
// as it writes it (values up to 1 MiB; rename and moves carry it), and
// otherwise (larger values, members of foreign archives, every member
// after an open) the first Digest that needs it does, and it is kept;
// the store's own writes replace it (digest.go). A GET of a small value
// with its digest is then one device read.
//
// # 8. Integrity
//
// Every member the store writes carries the CRC-32C of its data in its
// ustar header (tarfmt.Tag, bytes every tar reader ignores), computed as
// the data is written (streams, copies, zeroes of an allocation; an
// in-place patch reads the value with the patch applied). The index keeps
// it; reads of a whole value (Get, a kv.Reader read in order to its end,
// Digest, the copies made by rename, set_partial and compaction) verify it
// and fail with kv.ErrCorrupt naming the key and the offset of the data,
// rather than return (or copy, under a fresh CRC) damaged bytes. Partial
// reads are not verified. Check verifies every value that has a CRC;
// members of foreign archives have none. A value being patched in place is
// not read meanwhile (readers wait for the transaction: member.patching),
// and one that readers hold is patched by a copy, so that readers keep
// their snapshot.
package kvtar
