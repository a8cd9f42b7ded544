package loopback

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tarstore/tarstore/kv"
)

// errNotRegular means a file turned out not to be a regular file when
// opened: it was replaced between the lookup and the open.
var errNotRegular = errors.New("not a regular file")

func sortChildren(cs []child) {
	slices.SortFunc(cs, func(a, b child) int { return strings.Compare(a.name, b.name) })
}

// Exists reports whether k is a value, a dictionary, or neither.
func (s *Store) Exists(k kv.Key) (kv.Kind, error) {
	const op = "exists"
	if err := s.beginRead(op, k); err != nil {
		return kv.None, err
	}
	defer s.mu.RUnlock()
	n, err := s.lookup(k)
	if err != nil {
		return kv.None, kv.Storage(op, k, err)
	}
	return n.kind, nil
}

// openRegular opens the file at p for reading. O_NONBLOCK keeps the open
// from hanging should p have become a FIFO since it was looked up; the
// opened file must be a regular file.
func (s *Store) openRegular(p string) (*os.File, os.FileInfo, error) {
	f, err := s.root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// openValue opens the value bound to k, with the lock held.
func (s *Store) openValue(op string, k kv.Key) (*os.File, os.FileInfo, error) {
	n, err := s.lookup(k)
	if err != nil {
		return nil, nil, kv.Storage(op, k, err)
	}
	switch n.kind {
	case kv.Dictionary:
		return nil, nil, kv.ValueExpected(op, k)
	case kv.None:
		return nil, nil, kv.NotFound(op, k)
	}
	f, fi, err := s.openRegular(k.Path())
	if err != nil {
		return nil, nil, kv.Storage(op, k, err)
	}
	return f, fi, nil
}

// Get returns the value bound to k.
func (s *Store) Get(k kv.Key) ([]byte, error) {
	const op = "get"
	if err := s.beginRead(op, k); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	f, fi, err := s.openValue(op, k)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, fi.Size())
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF { // unexpected EOF: shrunk by hand since the fstat
		return nil, kv.Storage(op, k, err)
	}
	return buf[:n], nil
}

// GetPartial returns at most length bytes of the value bound to k from off.
func (s *Store) GetPartial(k kv.Key, off, length int64) ([]byte, error) {
	const op = "get_partial"
	if err := s.beginRead(op, k); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if off < 0 || length < 0 {
		return nil, kv.InvalidArgument(op, k, "negative offset or length")
	}
	f, fi, err := s.openValue(op, k)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if off >= fi.Size() {
		return []byte{}, nil
	}
	buf := make([]byte, min(length, fi.Size()-off))
	n, err := f.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return nil, kv.Storage(op, k, err)
	}
	return buf[:n], nil
}

// Open returns a reader over the value bound to k. It reads the file that
// was bound to k at the time of the call, whatever happens to k later
// (POSIX keeps the bytes of an open file), and its Size is the size the
// value had then. Its errors are those of "get", the operation it streams.
func (s *Store) Open(k kv.Key) (kv.Reader, error) {
	const op = "get"
	if err := s.beginRead(op, k); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	f, fi, err := s.openValue(op, k)
	if err != nil {
		return nil, err
	}
	return &reader{f: f, size: fi.Size()}, nil
}

// reader is the kv.Reader of Open.
type reader struct {
	f    *os.File
	size int64
}

func (r *reader) Size() int64  { return r.size }
func (r *reader) Close() error { return r.f.Close() }

// ReadAt reads within the size the value had when it was opened.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("loopback: negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	short := false
	if rest := r.size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := r.f.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// Size returns the length of the value bound to k.
func (s *Store) Size(k kv.Key) (int64, error) {
	const op = "size"
	if err := s.beginRead(op, k); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	n, err := s.lookup(k)
	if err != nil {
		return 0, kv.Storage(op, k, err)
	}
	switch n.kind {
	case kv.Dictionary:
		return 0, kv.ValueExpected(op, k)
	case kv.None:
		return 0, kv.NotFound(op, k)
	}
	return n.info.Size(), nil
}

// dictionary checks, with the lock held, that k is a dictionary.
func (s *Store) dictionary(op string, k kv.Key) error {
	n, err := s.lookup(k)
	if err != nil {
		return kv.Storage(op, k, err)
	}
	switch n.kind {
	case kv.Value:
		return kv.DictionaryExpected(op, k)
	case kv.None:
		return kv.NotFound(op, k)
	}
	return nil
}

// List returns the exposed entries of the dictionary k, sorted by key.
func (s *Store) List(k kv.Key) ([]kv.Entry, error) {
	const op = "list"
	if err := s.beginRead(op, k); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if err := s.dictionary(op, k); err != nil {
		return nil, err
	}
	cs, err := s.children(k)
	if err != nil {
		return nil, kv.Storage(op, k, err)
	}
	es := make([]kv.Entry, len(cs))
	for i, c := range cs {
		es[i] = kv.Entry{Key: c.key, Kind: c.kind}
	}
	return es, nil
}

// epoch is the last-modified time of a dictionary without values.
var epoch = time.Unix(0, 0).UTC()

// LastModified returns the mtime of the value k, or the latest mtime of the
// values directly in the dictionary k (the epoch when it has none).
func (s *Store) LastModified(k kv.Key) (time.Time, error) {
	const op = "last_modified"
	if err := s.beginRead(op, k); err != nil {
		return time.Time{}, err
	}
	defer s.mu.RUnlock()
	n, err := s.lookup(k)
	if err != nil {
		return time.Time{}, kv.Storage(op, k, err)
	}
	switch n.kind {
	case kv.None:
		return time.Time{}, kv.NotFound(op, k)
	case kv.Value:
		return n.info.ModTime().UTC(), nil
	}
	cs, err := s.children(k)
	if err != nil {
		return time.Time{}, kv.Storage(op, k, err)
	}
	latest := epoch
	for _, c := range cs {
		if c.kind != kv.Value {
			continue
		}
		fi, err := c.de.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by hand since the listing
		}
		if err != nil {
			return time.Time{}, kv.Storage(op, k, err)
		}
		if t := fi.ModTime(); t.After(latest) {
			latest = t.UTC()
		}
	}
	return latest, nil
}

// Digest returns the SHA-256 of the value k, or the kv.DictDigest of the
// dictionary k, computed recursively over its exposed entries.
func (s *Store) Digest(k kv.Key) ([]byte, error) {
	const op = "digest"
	if err := s.beginRead(op, k); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	n, err := s.lookup(k)
	if err != nil {
		return nil, kv.Storage(op, k, err)
	}
	var d []byte
	switch n.kind {
	case kv.None:
		return nil, kv.NotFound(op, k)
	case kv.Value:
		d, err = s.valueDigest(k.Path())
	default:
		d, err = s.dictDigest(k)
	}
	if err != nil {
		return nil, kv.Storage(op, k, err)
	}
	return d, nil
}

func (s *Store) valueDigest(p string) ([]byte, error) {
	f, _, err := s.openRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (s *Store) dictDigest(k kv.Key) ([]byte, error) {
	cs, err := s.children(k)
	if err != nil {
		return nil, err
	}
	es := make([]kv.DigestEntry, len(cs))
	for i, c := range cs {
		var d []byte
		if c.kind == kv.Value {
			d, err = s.valueDigest(c.key.Path())
		} else {
			d, err = s.dictDigest(c.key)
		}
		if err != nil {
			return nil, err
		}
		es[i] = kv.DigestEntry{Name: c.name, Kind: c.kind, Digest: d}
	}
	return kv.DictDigest(es), nil
}

// Free returns the bytes available on the file system holding the root.
func (s *Store) Free() (int64, error) {
	const op = "free"
	if err := s.beginRead(op, kv.Root); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	n, err := freeBytes(s.dir)
	if err != nil {
		return 0, kv.Storage(op, kv.Root, err)
	}
	return n, nil
}
