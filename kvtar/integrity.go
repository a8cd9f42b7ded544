package kvtar

import (
	"fmt"
	"hash/crc32"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// End-to-end integrity (doc §8). Every member the store writes carries the
// CRC-32C of its data in its ustar header (tarfmt.Tag, in bytes every tar
// reader ignores); the index keeps it (member.crc). Reads of a whole value
// (Get, a reader read to its end, Digest, the copies of rename, patch and
// compaction) verify it and fail with kv.ErrCorrupt, naming the key and
// the offset of the data, instead of returning wrong bytes; Check verifies
// every value that has one.

// seal records crc as m's data CRC and stores it in the tag of m's ustar
// header block, the last block of hdr (still queued: the transaction has
// not written it yet); d, when not nil, is the value's digest (digest.go).
func (t *txn) seal(m *member, hdr []byte, crc uint32, d *digest) {
	m.crc, m.hasCRC = crc, true
	m.digest.Store(d)
	tarfmt.SetTag((*tarfmt.Block)(hdr[len(hdr)-blockSize:]), tarfmt.Tag{DataCRC: crc})
}

// corruptData is the error of a read of m's data (bound to k) that does not
// match its CRC.
func corruptData(op string, k kv.Key, m *member) error {
	return &kv.Error{Op: op, Key: k, Err: kv.ErrCorrupt,
		Detail: fmt.Sprintf("the %d bytes of data at offset %d do not match the CRC-32C in the member's header", m.size, m.dataOff)}
}

// A sum is what a reader takes of a member's CRC when it pins it (under
// s.mu): the member's fields may change later (an in-place patch).
type sum struct {
	crc uint32
	ok  bool
	gen uint64
}

// sumOf returns m's CRC as a reader takes it. The caller holds s.mu.
func sumOf(m *member) sum { return sum{m.crc, m.hasCRC, m.gen.Load()} }

// mismatch reports whether crc, of m's whole data read by a reader that
// took sm, shows damage: m has a CRC, its data was not patched in place
// since, and crc differs.
func (sm sum) mismatch(m *member, crc uint32) bool {
	return sm.ok && sm.gen == m.gen.Load() && crc != sm.crc
}

// zeros is read-only: the zero bytes zerosCRC and zerosDigest take in.
// (An array of their own would escape to the heap: 64 KiB made and
// cleared by every Allocate.)
var zeros [64 << 10]byte

// zerosCRC returns the CRC-32C of n zero bytes.
func zerosCRC(n int64) uint32 {
	crc := uint32(0)
	for n > 0 {
		l := min(n, int64(len(zeros)))
		crc = crc32.Update(crc, castagnoli, zeros[:l])
		n -= l
	}
	return crc
}

// A zerosSum is the CRC-32C and digest of n zero bytes.
type zerosSum struct {
	n   int64
	crc uint32
	dg  *digest
	ok  bool
}

// zerosSums returns the CRC-32C and digest (nil when n is larger than
// digestInline) of n zero bytes: those of the last size asked for are
// kept, since allocations tend to repeat one size. The caller holds
// s.wmu and s.mu; the sums of a large size take time, and readers go on
// meanwhile (s.mu is released; s.wmu keeps writers out).
func (s *Store) zerosSums(n int64) (uint32, *digest) {
	if z := s.zeros; z.ok && z.n == n {
		return z.crc, z.dg
	}
	z := zerosSum{n: n, ok: true}
	sum := func() error { z.crc, z.dg = zerosCRC(n), zerosDigest(n); return nil }
	if n > int64(len(zeros)) {
		s.unlocked(sum)
	} else {
		sum()
	}
	s.zeros = z
	return z.crc, z.dg
}

// patchedCRC reads m's value (bound to k) with v written at at, verifying
// the value as it is, and returns the CRC of the patched value and its
// digest (nil when the value is larger than digestInline). The caller
// holds s.wmu, so m stays where it is.
func (s *Store) patchedCRC(k kv.Key, m *member, at int64, v []byte) (uint32, *digest, error) {
	d := acquire(m)
	defer s.releasePin(d)
	buf := make([]byte, min(m.size, streamChunk))
	var old, patched uint32
	h := inlineHash(m.size)
	for off := int64(0); off < m.size; {
		p := buf[:min(int64(len(buf)), m.size-off)]
		if err := s.readData(m, d, p, off); err != nil {
			return 0, nil, kv.Storage("set_partial", k, err)
		}
		old = crc32.Update(old, castagnoli, p)
		applyPatch(p, off, v, at)
		patched = crc32.Update(patched, castagnoli, p)
		if h != nil {
			h.Write(p)
		}
		off += int64(len(p))
	}
	if m.hasCRC && old != m.crc {
		return 0, nil, corruptData("set_partial", k, m)
	}
	return patched, finish(h), nil
}

// crcReader tracks the CRC of a value's bytes read in order from its start,
// for the readers of whole values that read in pieces (kv.Reader).
type crcReader struct {
	next int64 // the end of the bytes read in order so far
	crc  uint32
}

// read accounts for p read at off and reports whether the whole value of
// size bytes has now been read in order, with the CRC it has.
func (c *crcReader) read(p []byte, off, size int64) (whole bool, crc uint32) {
	if off != c.next || c.next < 0 {
		c.next = -1 // out of order: no verification
		return false, 0
	}
	c.crc = crc32.Update(c.crc, castagnoli, p)
	c.next += int64(len(p))
	return c.next == size, c.crc
}

// applyPatch writes into p, the bytes of a value at offset off, the part
// of v (bytes written at offset at) that falls there.
func applyPatch(p []byte, off int64, v []byte, at int64) {
	lo, hi := max(off, at), min(off+int64(len(p)), at+int64(len(v)))
	if lo < hi {
		copy(p[lo-off:hi-off], v[lo-at:hi-at])
	}
}
