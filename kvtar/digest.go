package kvtar

import (
	"crypto/sha256"
	"hash"

	"github.com/tarstore/tarstore/kv"
)

// Digests of values in the index (doc §7). A member's SHA-256 is known
// without reading it when the store wrote the member in this session: Set,
// SetFrom, SetPartial (with the patch applied), Allocate (the digest of
// the zeroes) and the copies of rename, patch and compaction compute it
// as they write the data, for values of up to digestInline bytes; a
// rename or a move carries it. Other members' digests — a foreign
// archive's, every member after an open (the archive has no room for
// them), values larger than digestInline — are computed by the first
// Digest that needs them, which verifies the CRC as it reads, and kept.
// The store's own writes replace what they change: a new member carries
// its own digest, and an in-place patch sets the patched value's digest
// (or forgets it) when it applies.
//
// Hashing runs at about the speed of a disk (SHA-256, some hundreds of
// MB/s a core), so values larger than digestInline are not hashed as they
// are written: a streamed Set would go at the speed of the hash instead
// of the device's, for a digest that may never be asked for.

// digestInline is the size up to which a value's digest is computed as it
// is written.
const digestInline = 1 << 20

// A digest is the SHA-256 of a value.
type digest = [sha256.Size]byte

// sumDigest returns the digest of p.
func sumDigest(p []byte) *digest {
	d := digest(sha256.Sum256(p))
	return &d
}

// zerosDigest returns the digest of n zero bytes, or nil when n is larger
// than digestInline.
func zerosDigest(n int64) *digest {
	if n > digestInline {
		return nil
	}
	h := sha256.New()
	for n > 0 {
		l := min(n, int64(len(zeros)))
		h.Write(zeros[:l])
		n -= l
	}
	return finish(h)
}

// inlineHash returns the hash a write of a size-byte value computes as it
// goes, or nil when its size is larger than digestInline.
func inlineHash(size int64) hash.Hash {
	if size > digestInline {
		return nil
	}
	return sha256.New()
}

// finish returns the digest h computed, nil when h is nil.
func finish(h hash.Hash) *digest {
	if h == nil {
		return nil
	}
	var d digest
	h.Sum(d[:0])
	return &d
}

// valueDigest returns the digest of m's value (bound to k), which the
// caller has pinned (d is its data owner, sm its CRC as pinned): the
// index's, or else computed from the data, verified against the CRC, and
// kept in the index. *buf is the read buffer, made on first use. While
// the caller holds the pin, the value is not patched in place (setPartial
// copies a pinned value), so the digest kept is the value's.
func (s *Store) valueDigest(m, d *member, sm sum, k kv.Key, buf *[]byte) (*digest, error) {
	if dg := m.digest.Load(); dg != nil {
		return dg, nil
	}
	if want := min(m.size, 1<<20); int64(len(*buf)) < want {
		*buf = make([]byte, want)
	}
	b := *buf
	h := sha256.New()
	var c crcReader
	for off := int64(0); off < m.size; {
		n := min(int64(len(b)), m.size-off)
		if err := s.readData(m, d, b[:n], off); err != nil {
			return nil, err
		}
		h.Write(b[:n])
		if whole, crc := c.read(b[:n], off, m.size); whole && sm.mismatch(m, crc) {
			return nil, corruptData("digest", k, m)
		}
		off += n
	}
	dg := finish(h)
	if sm.gen == m.gen.Load() {
		m.digest.CompareAndSwap(nil, dg)
	}
	return dg, nil
}
