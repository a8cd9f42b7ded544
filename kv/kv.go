// Package kv is MirageOS's Mirage_kv signature (RO and RW) in Go, with the
// semantics tarstore implements (SPEC §2–3).
//
// A store binds keys (Key) to values (byte strings). Dictionaries are not
// stored things of their own: a key is a dictionary when a value or an
// explicit directory lies below it, and the root is always a dictionary.
// Every store in the project — kv/loopback over a host directory, kvtar over
// a block device — implements RW and passes the conformance suite in
// kv/kvtest, which is the executable form of the table below.
//
//	operation       result
//	Exists k        value → Value; something below k → Dictionary; root → Dictionary; else (also through a prefix value) → None
//	Get k           value → bytes; dictionary → value_expected k; missing or through a prefix value → not_found k
//	GetPartial      off/len < 0 → invalid_argument; off ≥ size → empty; short read at the end; dictionary → value_expected
//	Size k          value → bytes; dictionary → value_expected k; missing → not_found k
//	List k          dictionary (root even when empty) → direct children, absolute keys, sorted; value → dictionary_expected k; missing → not_found k
//	LastModified k  value → its mtime; dictionary → latest mtime of the values directly in it, the epoch when it has none; missing → not_found k
//	Digest k        value → SHA-256 of the bytes; dictionary → DictDigest of its sorted entries; missing → not_found k
//	Set k v         replaces the binding (a dictionary is replaced whole); creates parents; root → value_expected /;
//	                prefix value p → dictionary_expected p; no room → no_space and nothing changes; durable and atomic
//	SetPartial      value → writes v at off (off > size appends at the end); missing → creates k with v; dictionary → value_expected k;
//	                prefix value p → dictionary_expected p; off < 0 → invalid_argument; durable
//	Allocate        zero-filled value; k exists → already_present k; prefix value p → dictionary_expected p; no room → no_space
//	Remove k        value or dictionary (recursively) removed; root → everything; missing → success; emptied parents disappear; durable, atomic
//	Rename src dst  src missing → not_found src; src a prefix of dst or the root → rename_source_prefix; src == dst value → no-op;
//	                value → missing or value: moved/replaced; → existing dictionary d: moved to d/base(src), replacing what is there;
//	                dictionary → missing: subtree moved, parents created; dictionary → value → value_expected src;
//	                dst through a prefix value p → dictionary_expected p; durable and atomic
//	Free            unused bytes
//	Close           flushes and releases; later calls → closed
//
// The last-modified time of a dictionary is, as the seed says, one level deep
// and not recursive: it is the latest mtime of the values directly in it;
// sub-dictionaries are not looked into, so a dictionary holding only
// dictionaries reports the Unix epoch, as an empty one does.
//
// Stores are safe for concurrent use: reads run in parallel, writes are
// serialized (and may share a flush), and each write returns only when it is
// durable.
package kv

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"time"
)

// Kind says what a key is bound to.
type Kind uint8

const (
	None       Kind = iota // the key is not bound
	Value                  // the key is bound to a value
	Dictionary             // the key is a dictionary
)

func (k Kind) String() string {
	switch k {
	case Value:
		return "value"
	case Dictionary:
		return "dictionary"
	}
	return "none"
}

// Entry is one child in a List result.
type Entry struct {
	Key  Key // absolute key of the child (the listed key with one segment added)
	Kind Kind
}

// DigestSize is the length of a digest: SHA-256.
const DigestSize = sha256.Size

// RO is Mirage_kv.RO: the read side of a store.
type RO interface {
	// Exists reports what k is bound to; None (with a nil error) when
	// nothing is.
	Exists(k Key) (Kind, error)
	// Get returns the whole value bound to k.
	Get(k Key) ([]byte, error)
	// GetPartial returns at most length bytes of the value bound to k,
	// starting at off: fewer at the end of the value, none at or past it.
	GetPartial(k Key, off, length int64) ([]byte, error)
	// Open returns a reader over the value bound to k, for values too large
	// to hold in memory. See Reader for what it sees when k changes.
	Open(k Key) (Reader, error)
	// Size returns the length of the value bound to k.
	Size(k Key) (int64, error)
	// List returns the direct children of the dictionary k, sorted by key.
	List(k Key) ([]Entry, error)
	// LastModified returns the modification time of k.
	LastModified(k Key) (time.Time, error)
	// Digest returns the DigestSize-byte digest of k.
	Digest(k Key) ([]byte, error)
	// Close flushes and releases the store. Calls after Close fail with
	// ErrClosed; Close itself is idempotent.
	Close() error
}

// RW is Mirage_kv.RW: a store that can be written.
type RW interface {
	RO
	// Set binds k to v, replacing whatever was bound to k.
	Set(k Key, v []byte) error
	// SetFrom binds k to the next size bytes of r, read as a stream with
	// bounded memory. If r ends early or fails, nothing changes and the
	// error is invalid_argument (early end) or r's error wrapped in
	// storage_error.
	SetFrom(k Key, r io.Reader, size int64) error
	// SetPartial writes v into the value bound to k at off.
	SetPartial(k Key, off int64, v []byte) error
	// Allocate binds the absent k to size zero bytes. A zero mtime means
	// now.
	Allocate(k Key, size int64, mtime time.Time) error
	// Remove unbinds k and everything below it.
	Remove(k Key) error
	// Rename moves the binding of src (a value or a whole dictionary) to
	// dst.
	Rename(src, dst Key) error
	// Free returns the number of unused bytes.
	Free() (int64, error)
}

// Reader reads a value opened with RO.Open. It is a snapshot against
// replacement: if the key is later set, removed or renamed, the reader keeps
// returning the bytes it was opened on, and the store keeps their space until
// Close. SetPartial on the same key may or may not be seen by an open
// reader. Reads past Size return io.EOF, as io.ReaderAt says. A Reader is
// safe for concurrent ReadAt calls; Close must be called exactly once.
type Reader interface {
	io.ReaderAt
	Size() int64
	io.Closer
}

// NewStreamReader adapts a Reader to io.Reader, reading from the start.
func NewStreamReader(r Reader) *io.SectionReader { return io.NewSectionReader(r, 0, r.Size()) }

// ValueDigest is the digest of a value: SHA-256 of its bytes.
func ValueDigest(v []byte) []byte {
	d := sha256.Sum256(v)
	return d[:]
}

// DigestEntry is one child of a dictionary as DictDigest consumes it.
type DigestEntry struct {
	Name   string // the child's last segment
	Kind   Kind
	Digest []byte // the child's digest (ValueDigest or DictDigest)
}

// dictDomain separates dictionary digests from value digests.
const dictDomain = "tarstore dictionary v1\n"

// DictDigest is the digest of a dictionary, deterministic across stores: the
// SHA-256 of a domain string followed by, for each entry in the order given
// (callers pass them sorted by name, as List returns them), the name's length
// as a 4-byte big-endian integer, the name, the kind as one byte and the
// child's digest. It changes whenever anything below the dictionary changes.
func DictDigest(entries []DigestEntry) []byte {
	h := sha256.New()
	io.WriteString(h, dictDomain)
	var n [4]byte
	for _, e := range entries {
		binary.BigEndian.PutUint32(n[:], uint32(len(e.Name)))
		h.Write(n[:])
		io.WriteString(h, e.Name)
		h.Write([]byte{byte(e.Kind)})
		h.Write(e.Digest)
	}
	return h.Sum(nil)
}
