package kvtar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The journal record (doc §4). The journal area, the last sectors of the
// device, holds two slots of half its size each; the record of transaction
// number seq lives at the start of slot seq%2. All integers are
// little-endian.
//
//	off  size  field
//	0    8     magic "TSJRNL03" ("TSJRNL02", the format before hole entries, is read too)
//	8    4     CRC-32C of bytes [12, length) of the record
//	12   4     number of zero extents (nz)
//	16   8     length of the record in the journal area (bytes)
//	24   8     spill offset: where the commit bytes are when they did not fit (0: inline)
//	32   8     total length of the commit bytes
//	40   4     CRC-32C of the commit bytes
//	44   4     CRC-32C of the stage bytes, in stage-extent order
//	48   4     number of stage extents (ns)
//	52   4     number of commit entries (nc)
//	56   8     seq: the transaction's number, one more than the previous record's
//	64   4     flags: flagPrevPending
//	68   4     reserved, zero
//	72   8     the end of archive before the transaction
//	80   8     the end of archive after it
//	88   16×ns stage extents: offset, length
//	...  16×nc commit entries: offset, length (top bit set: a hole entry)
//	...  16×nz zero extents: offset, length
//	...        commit bytes, concatenated in order (when inline)
//
// The stage extents are the parts of the stage writes that the archive
// shows once the transaction is applied (member data, the first block of
// the end-of-archive marker): what must have reached the device for the
// record to be replayed. The rest of the stage writes is free space after
// the transaction, which later transactions may overwrite.
//
// A commit entry is a write — its bytes follow in the commit bytes, in
// entry order — or a hole entry: the length field with its top bit set
// (entryHole) is the length of a hole [offset, offset+length) that the
// transaction laid out, and the entry stands for the writes of that layout
// (holeWrites), which take no commit bytes. The layout is part of the
// format: what holeWrites writes for an extent may not change without a
// new magic. A remove of thousands of members thus records 16 bytes for
// each region it frees, not the 1.5 KiB of hole structure its commit
// writes are: a full store can always record a remove (doc §4).
//
// Replaying a record zeroes the zero extents (space a transaction zeroed
// in step 1 for an allocated value: zeroing again is idempotent, and cheaper
// to check than a CRC over gigabytes of zeroes) and then applies the commit
// writes in order.
const (
	journalMagic   = "TSJRNL03"
	journalMagic02 = "TSJRNL02"
	journalHdrSize = 88
	entryHole      = uint64(1) << 63
)

// isJournalMagic reports whether b starts with the magic of a record
// format this version reads.
func isJournalMagic(b []byte) bool {
	return len(b) >= 8 && (string(b[:8]) == journalMagic || string(b[:8]) == journalMagic02)
}

// flagPrevPending says that the commit writes of the previous record
// (seq-1) were not yet flushed when this record was written: a replay of
// this record, or a discard of it, needs the previous one replayed first.
const flagPrevPending = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errNoRecord means the journal holds no record (cleared, or never used).
var errNoRecord = errors.New("no journal record")

// A record is a decoded journal record.
type record struct {
	stage    []extent // where the stage writes went
	stageCRC uint32   // CRC-32C of their bytes after step 1
	commits  []write  // the commit writes, to apply in order
	zeros    []extent // space to zero before the commit writes
	spill    int64    // offset of the commit bytes when not inline; 0 when inline

	seq         uint64 // the transaction's number
	prevPending bool   // flagPrevPending
	// eoaBefore and eoaAfter are the end of archive before and after the
	// transaction: where the archive ends once the record is discarded or
	// replayed. A checkpoint (a record with no writes) has them equal.
	eoaBefore, eoaAfter int64

	// crc is the record's CRC-32C (bytes 8..12): set by encode and
	// decodeRecord; it seeds the chain of the appends that follow the
	// record without one of their own (doc §3).
	crc uint32

	// layouts are the hole extents the transaction laid out (txn.hole):
	// where a run of commit writes equals the layout of one, the record
	// holds a hole entry instead of the writes (entries). A decoded
	// record's hole entries are expanded into commits, and listed here.
	layouts []extent
	packed  []entry // entries, once computed
}

// An entry is one commit entry of an encoded record: a write, or the
// layout of the hole [w.off, w.off+hole) when hole > 0 (w.data nil).
type entry struct {
	w    write
	hole int64
}

// entries returns the record's commit entries: its commit writes, each run
// of which that is exactly the layout of one of r.layouts (the same
// offsets and bytes, in order: holeWrites) replaced by a hole entry. The
// replay of the entries is the replay of the writes, byte for byte.
func (r *record) entries() []entry {
	if r.packed != nil || len(r.commits) == 0 {
		return r.packed
	}
	if len(r.layouts) == 0 {
		// No hole laid out: every commit write is an entry.
		r.packed = make([]entry, len(r.commits))
		for i, w := range r.commits {
			r.packed[i] = entry{w: w}
		}
		return r.packed
	}
	starts := map[int64][]int{}
	for i, w := range r.commits {
		starts[w.off] = append(starts[w.off], i)
	}
	hole := make([]int64, len(r.commits)) // > 0: a layout starts here
	used := make([]bool, len(r.commits))
	for _, e := range r.layouts {
		hw := holeWrites(e)
		if len(hw) == 0 {
			continue
		}
	next:
		for _, i := range starts[hw[0].off] {
			if i+len(hw) > len(r.commits) {
				continue
			}
			for j, w := range hw {
				c := r.commits[i+j]
				if used[i+j] || c.off != w.off || !bytes.Equal(c.data, w.data) {
					continue next
				}
			}
			hole[i] = e.len
			for j := range hw {
				used[i+j] = true
			}
			break
		}
	}
	r.packed = make([]entry, 0, len(r.commits))
	for i, w := range r.commits {
		switch {
		case hole[i] > 0:
			r.packed = append(r.packed, entry{w: write{off: w.off}, hole: hole[i]})
		case !used[i]:
			r.packed = append(r.packed, entry{w: w})
		}
	}
	return r.packed
}

// A write is one byte-range write of a transaction.
type write struct {
	off  int64
	data []byte
}

// commitLen is the total length of the commit bytes: those of the
// entries that are writes.
func (r *record) commitLen() int64 {
	var n int64
	for _, e := range r.entries() {
		n += int64(len(e.w.data))
	}
	return n
}

// recordAlign is the sector size up to which an encoded record has the
// capacity to be padded to its sector in place.
const recordAlign = 4096

// encode returns the record's bytes for the journal area, and the commit
// bytes to write at r.spill when r.spill != 0 (nil otherwise). The caller
// sets r.spill when the inline record would not fit (see recordSize).
func (r *record) encode() (head, spill []byte) { return r.encodeIn(nil) }

// encodeIn is encode into the memory of buf when it is large enough (its
// contents do not matter), else into new memory.
func (r *record) encodeIn(buf []byte) (head, spill []byte) {
	inline := r.spill == 0
	ents := r.entries()
	commitLen := r.commitLen()
	n := journalHdrSize + 16*(len(r.stage)+len(ents)+len(r.zeros))
	if inline {
		n += int(commitLen)
	}
	// Room to pad the record to its sector (padSector) without a copy,
	// for sectors of up to recordAlign bytes.
	b := buf[:0]
	if c := (n + recordAlign - 1) / recordAlign * recordAlign; cap(b) >= c {
		b = b[:n]
		clear(b)
	} else {
		b = make([]byte, n, c)
	}
	copy(b, journalMagic)
	le := binary.LittleEndian
	le.PutUint32(b[12:], uint32(len(r.zeros)))
	le.PutUint64(b[16:], uint64(n))
	le.PutUint64(b[24:], uint64(r.spill))
	le.PutUint64(b[32:], uint64(commitLen))
	le.PutUint32(b[44:], r.stageCRC)
	le.PutUint32(b[48:], uint32(len(r.stage)))
	le.PutUint32(b[52:], uint32(len(ents)))
	le.PutUint64(b[56:], r.seq)
	if r.prevPending {
		le.PutUint32(b[64:], flagPrevPending)
	}
	le.PutUint64(b[72:], uint64(r.eoaBefore))
	le.PutUint64(b[80:], uint64(r.eoaAfter))
	p := journalHdrSize
	for _, e := range r.stage {
		le.PutUint64(b[p:], uint64(e.off))
		le.PutUint64(b[p+8:], uint64(e.len))
		p += 16
	}
	for _, e := range ents {
		le.PutUint64(b[p:], uint64(e.w.off))
		if e.hole > 0 {
			le.PutUint64(b[p+8:], uint64(e.hole)|entryHole)
		} else {
			le.PutUint64(b[p+8:], uint64(len(e.w.data)))
		}
		p += 16
	}
	for _, e := range r.zeros {
		le.PutUint64(b[p:], uint64(e.off))
		le.PutUint64(b[p+8:], uint64(e.len))
		p += 16
	}
	// The commit bytes: after the tables when inline, else in a buffer
	// of their own.
	payload := b[p:p]
	if !inline {
		payload = make([]byte, 0, commitLen)
	}
	for _, e := range ents {
		payload = append(payload, e.w.data...)
	}
	le.PutUint32(b[40:], crc32.Checksum(payload, castagnoli))
	if !inline {
		spill = payload
	}
	r.crc = crc32.Checksum(b[12:], castagnoli)
	le.PutUint32(b[8:], r.crc)
	return b, spill
}

// headSize returns the size of the record's head in the journal area when
// its commit bytes are inline.
func (r *record) headSize() int64 {
	return journalHdrSize + 16*int64(len(r.stage)+len(r.entries())+len(r.zeros)) + r.commitLen()
}

// decodeHead parses the fixed header at the start of the journal area and
// returns the record's length, or errNoRecord.
func decodeHead(b []byte) (int64, error) {
	if len(b) < journalHdrSize || !isJournalMagic(b) {
		return 0, errNoRecord
	}
	n := int64(binary.LittleEndian.Uint64(b[16:]))
	if n < journalHdrSize {
		return 0, fmt.Errorf("journal record length %d: %w", n, errNoRecord)
	}
	return n, nil
}

// decodeRecord parses a whole record (b holds its head: decodeHead's length
// of bytes) and, when the commit bytes were spilled, fetches them with
// readSpill(off, n). A record whose checksums do not match is errNoRecord:
// it was torn by a crash before step 1 completed, so nothing depends on it.
//
// So is a record whose checksums match but whose contents the encoder
// cannot have written: tables or commit bytes that do not fit the record
// exactly, a commit length that is negative or makes the lengths overflow
// or miss their total, a negative offset, length or end of archive, an
// extent or a spilled range whose end overflows, spilled bytes of another
// length than the record says. The checksums are no defence against a
// crafted device: these checks keep the decoder from panicking and what it
// returns usable as it is (an extent's end is computable). Every count is
// bounded by the record's own length (16 bytes an entry), and so is every
// allocation here, except the writes hole entries expand into: hole
// entries must be block-aligned and lie in [0, areaEnd), their lengths
// adding up to areaEnd at most, which bounds their writes to about
// areaEnd/340 bytes (three blocks for each hole chunk of up to 1025). A
// legitimate record of such holes means a transaction that held those
// writes in memory. readSpill is called with 0 <= off <= off+n <= MaxInt64
// and allocates the spilled bytes itself (readSlot: within the archive
// area).
func decodeRecord(b []byte, areaEnd int64, readSpill func(off, n int64) ([]byte, error)) (*record, error) {
	n, err := decodeHead(b)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < n {
		return nil, fmt.Errorf("journal record of %d bytes, have %d: %w", n, len(b), errNoRecord)
	}
	b = b[:n]
	le := binary.LittleEndian
	if crc32.Checksum(b[12:], castagnoli) != le.Uint32(b[8:]) {
		return nil, fmt.Errorf("journal record checksum: %w", errNoRecord)
	}
	r := &record{
		crc:         le.Uint32(b[8:]),
		spill:       int64(le.Uint64(b[24:])),
		stageCRC:    le.Uint32(b[44:]),
		seq:         le.Uint64(b[56:]),
		prevPending: le.Uint32(b[64:])&flagPrevPending != 0,
		eoaBefore:   int64(le.Uint64(b[72:])),
		eoaAfter:    int64(le.Uint64(b[80:])),
	}
	if r.eoaBefore < 0 || r.eoaAfter < 0 {
		return nil, fmt.Errorf("journal record end of archive: %w", errNoRecord)
	}
	total := int64(le.Uint64(b[32:]))
	ns, nc, nz := int64(le.Uint32(b[48:])), int64(le.Uint32(b[52:])), int64(le.Uint32(b[12:]))
	p := int64(journalHdrSize)
	// The counts are below 2^32: 16*(ns+nc+nz) does not overflow, and once
	// the tables fit the record, n bounds the slices made for them.
	if p+16*(ns+nc+nz) > n || total < 0 {
		return nil, fmt.Errorf("journal record tables: %w", errNoRecord)
	}
	if r.spill < 0 || r.spill > math.MaxInt64-total {
		return nil, fmt.Errorf("journal record spill: %w", errNoRecord)
	}
	// next reads the table entry at p: an offset and a length, both
	// non-negative, whose sum does not overflow.
	next := func() (extent, bool) {
		e := extent{int64(le.Uint64(b[p:])), int64(le.Uint64(b[p+8:]))}
		p += 16
		return e, e.off >= 0 && e.len >= 0 && e.off <= math.MaxInt64-e.len
	}
	if ns > 0 {
		r.stage = make([]extent, 0, ns)
	}
	for range ns {
		e, ok := next()
		if !ok {
			return nil, fmt.Errorf("journal record stage extent %+v: %w", e, errNoRecord)
		}
		r.stage = append(r.stage, e)
	}
	// The commit entries: a write's length, or a hole entry's extent.
	ents := make([]entry, nc)
	var sum, holes int64
	for i := range nc {
		raw := le.Uint64(b[p+8:])
		if raw&entryHole != 0 && string(b[:8]) == journalMagic {
			e := extent{int64(le.Uint64(b[p:])), int64(raw &^ entryHole)}
			p += 16
			if e.off < 0 || e.len <= 0 || e.off%blockSize != 0 || e.len%blockSize != 0 ||
				e.len > areaEnd-holes || e.off > areaEnd-e.len {
				return nil, fmt.Errorf("journal record hole entry %+v: %w", e, errNoRecord)
			}
			ents[i] = entry{w: write{off: e.off}, hole: e.len}
			holes += e.len
			continue
		}
		e, ok := next()
		if !ok || e.len > total-sum {
			return nil, fmt.Errorf("journal record commit write %+v: %w", e, errNoRecord)
		}
		ents[i] = entry{w: write{off: e.off}, hole: -e.len} // -length: a write, its bytes read below
		sum += e.len
	}
	if sum != total {
		return nil, fmt.Errorf("journal record commit length: %w", errNoRecord)
	}
	if nz > 0 {
		r.zeros = make([]extent, 0, nz)
	}
	for range nz {
		e, ok := next()
		if !ok {
			return nil, fmt.Errorf("journal record zero extent %+v: %w", e, errNoRecord)
		}
		r.zeros = append(r.zeros, e)
	}
	var payload []byte
	if r.spill == 0 {
		if total != n-p {
			return nil, fmt.Errorf("journal record payload: %w", errNoRecord)
		}
		payload = b[p:]
	} else {
		if p != n {
			return nil, fmt.Errorf("journal record length: %w", errNoRecord)
		}
		payload, err = readSpill(r.spill, total)
		if err != nil {
			return nil, err
		}
		if int64(len(payload)) != total {
			return nil, fmt.Errorf("journal commit bytes: %d, want %d: %w", len(payload), total, errNoRecord)
		}
	}
	if crc32.Checksum(payload, castagnoli) != le.Uint32(b[40:]) {
		return nil, fmt.Errorf("journal commit bytes checksum: %w", errNoRecord)
	}
	if nc > 0 {
		r.commits = make([]write, 0, nc)
	}
	for _, e := range ents {
		if e.hole > 0 {
			r.commits = append(r.commits, holeWrites(extent{e.w.off, e.hole})...)
			r.layouts = append(r.layouts, extent{e.w.off, e.hole})
			continue
		}
		l := -e.hole
		r.commits = append(r.commits, write{off: e.w.off, data: payload[:l:l]})
		payload = payload[l:]
	}
	return r, nil
}

// journalSize is the size of the journal area for a device of size bytes
// and sector size ss: 1/64 of the device, at least 8 KiB and two sectors, at
// most 4 MiB, in whole sectors. It depends on the geometry only, so that a
// foreign archive needs no metadata to locate it.
func journalSize(size, ss int64) int64 {
	j := size / 64
	j = max(j, 8<<10, 2*ss)
	j = min(j, 4<<20)
	j = (j + ss - 1) / ss * ss
	return j
}
