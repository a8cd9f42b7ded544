package kvtar

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// A pin keeps a member's data readable while readers use it (doc §6): a
// member released while pinned becomes a zombie, its space is not reused
// until the last reader leaves, and the bytes that transactions overwrite
// in it (hole structure, an end-of-archive marker) are saved in the overlay
// first.
type pin struct {
	mu      sync.Mutex
	readers int
	zombie  bool
	overlay map[int64][]byte // block offset → the block's bytes before it was overwritten
}

// owner returns the member that holds m's data (m itself, or the target of
// a hard link).
func (m *member) owner() *member {
	for m.link != nil {
		m = m.link
	}
	return m
}

// dataExtent is where m's stored data lies.
func (m *member) dataExtent() extent { return extent{m.dataOff, m.dataSize} }

// acquire pins the owner of m's data. The caller holds s.mu (shared).
func acquire(m *member) *member {
	d := m.owner()
	d.pin.mu.Lock()
	d.pin.readers++
	d.pin.mu.Unlock()
	return d
}

// pinned reports whether readers hold m's data.
func (m *member) pinned() bool {
	m.pin.mu.Lock()
	defer m.pin.mu.Unlock()
	return m.pin.readers > 0
}

// releasePin unpins d; the last reader of a zombie frees its space.
func (s *Store) releasePin(d *member) {
	d.pin.mu.Lock()
	d.pin.readers--
	last := d.pin.readers == 0 && d.pin.zombie
	if last {
		d.pin.zombie = false
		d.pin.overlay = nil
	}
	d.pin.mu.Unlock()
	if last {
		s.mu.Lock()
		delete(s.zombies, d)
		due := len(s.sp.bad()) > 0
		s.mu.Unlock()
		if due {
			// The space the readers held may be what compaction waits
			// for (compact.go): a write with nothing to plan runs it.
			go s.write("compact", []kv.Key{kv.Root}, func(*txn) error { return nil })
		}
	}
}

// zombify makes a released member a zombie if readers hold it. The caller
// holds s.mu.
func (s *Store) zombify(m *member) {
	d := m
	d.pin.mu.Lock()
	if d.pin.readers > 0 {
		d.pin.zombie = true
		s.zombies[d] = struct{}{}
	}
	d.pin.mu.Unlock()
}

// avoid lists the extents of zombies, which placements must not use. The
// caller holds s.mu.
func (s *Store) avoid() []extent {
	var es []extent
	for z := range s.zombies {
		es = append(es, z.extent())
	}
	return es
}

// zombieList returns the zombies. The caller holds s.mu.
func (s *Store) zombieList() []*member {
	zs := make([]*member, 0, len(s.zombies))
	for z := range s.zombies {
		zs = append(zs, z)
	}
	return zs
}

// capture saves, in the overlay of each zombie in zs, the blocks of its data
// that ws are about to overwrite, unless saved already.
func (s *Store) capture(zs []*member, ws []write) error {
	for _, z := range zs {
		de := z.dataExtent()
		for _, w := range ws {
			we := extent{w.off, int64(len(w.data))}
			if !we.overlaps(de) {
				continue
			}
			lo := max(we.off, de.off) / blockSize * blockSize
			hi := min(we.end(), de.end())
			for b := lo; b < hi; b += blockSize {
				if err := z.save(s, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// save copies the block at off into the overlay.
func (z *member) save(s *Store, off int64) error {
	z.pin.mu.Lock()
	defer z.pin.mu.Unlock()
	if _, ok := z.pin.overlay[off]; ok {
		return nil
	}
	buf := make([]byte, blockSize)
	if err := blockio.ReadAt(s.dev, buf, off); err != nil {
		return err
	}
	if z.pin.overlay == nil {
		z.pin.overlay = map[int64][]byte{}
	}
	z.pin.overlay[off] = buf
	return nil
}

// readData reads len(p) bytes of m's value at logical offset off (the
// caller has clipped the range to the value) into p. d is m's pinned data
// owner.
func (s *Store) readData(m, d *member, p []byte, off int64) error {
	var buf [1]tarfmt.Extent // a member's one extent, unless it is sparse
	for _, e := range tarfmt.AppendExtents(buf[:0], m.size, d.dataOff, d.sparse, off, int64(len(p))) {
		dst := p[e.Logical-off:][:e.Length]
		if e.Physical < 0 {
			clear(dst)
			continue
		}
		if err := blockio.ReadAt(s.dev, dst, e.Physical); err != nil {
			return err
		}
		d.patch(dst, e.Physical)
	}
	return nil
}

// patch applies the overlay to bytes p read at device offset off.
func (d *member) patch(p []byte, off int64) {
	d.pin.mu.Lock()
	defer d.pin.mu.Unlock()
	for b, saved := range d.pin.overlay {
		lo, hi := max(b, off), min(b+blockSize, off+int64(len(p)))
		if lo < hi {
			copy(p[lo-off:hi-off], saved[lo-b:hi-b])
		}
	}
}

// lookup resolves k for a read operation. The caller holds s.mu shared.
func (s *Store) lookup(op string, k kv.Key) (*node, error) {
	if s.closed {
		return nil, kv.Closed(op, k)
	}
	n := s.ix.lookup(k)
	if n == nil {
		return nil, kv.NotFound(op, k)
	}
	return n, nil
}

// value resolves k to a value and pins its data; sm is its CRC as of now.
// The caller must releasePin the returned owner.
// A value being patched in place is waited for (member.patching).
func (s *Store) value(op string, k kv.Key) (m, d *member, sm sum, err error) {
	for {
		s.mu.RLock()
		n, err := s.lookup(op, k)
		if err != nil {
			s.mu.RUnlock()
			return nil, nil, sum{}, err
		}
		if !n.isValue() {
			s.mu.RUnlock()
			return nil, nil, sum{}, kv.ValueExpected(op, k)
		}
		if ch := n.val.patching; ch != nil {
			s.mu.RUnlock()
			<-ch
			continue
		}
		m := n.val
		d, sm := acquire(m), sumOf(m)
		s.mu.RUnlock()
		return m, d, sm, nil
	}
}

// Exists reports what k is bound to.
func (s *Store) Exists(k kv.Key) (kv.Kind, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return kv.None, kv.Closed("exists", k)
	}
	return s.ix.lookup(k).kind(), nil
}

// Get returns the value bound to k.
func (s *Store) Get(k kv.Key) ([]byte, error) {
	m, d, sm, err := s.value("get", k)
	if err != nil {
		return nil, err
	}
	defer s.releasePin(d)
	p, crc, err := s.readNew(m, d, sm.ok)
	if err != nil {
		return nil, kv.Storage("get", k, err)
	}
	if sm.ok && sm.mismatch(m, crc) {
		return nil, corruptData("get", k, m)
	}
	return p, nil
}

// readNew returns m's data in a new slice. Making a large slice costs
// time before the first byte can be read into it (the runtime zeroes
// recycled memory; fresh memory faults page by page), so while it is
// being made the device reads the value's first chunks into reused
// buffers (at most headMax bytes), and those are copied into the result
// while the device reads the rest straight into it: the making and the
// copying overlap the device's work instead of adding to it. So does the
// CRC-32C of the data, which it returns when withCRC is set (else 0): the
// staged chunks' as they are copied, the rest's piece by piece (crcPiece)
// as the next is read.
func (s *Store) readNew(m, d *member, withCRC bool) ([]byte, uint32, error) {
	if m.size < 4*headChunk {
		p := make([]byte, m.size)
		if err := s.readData(m, d, p, 0); err != nil {
			return nil, 0, err
		}
		if !withCRC {
			return p, 0, nil
		}
		return p, crc32.Checksum(p, castagnoli), nil
	}
	sum := func(crc uint32, q []byte) uint32 {
		if !withCRC {
			return 0
		}
		return crc32.Update(crc, castagnoli, q)
	}
	made := make(chan []byte, 1)
	go func() { made <- make([]byte, m.size) }()
	var (
		p      []byte
		staged [][]byte
		good   int // the staged buffers whose reads succeeded, in order
		off    int64
		err    error
	)
	defer func() {
		// Not the buffer of a read that failed: it may still own it.
		for _, b := range staged[:good] {
			s.heads.put(s.dev, b)
		}
	}()
	// The first chunk is always staged (making takes longer than one
	// read), the others until the result is there.
	for err == nil && off+headChunk <= min(m.size, headMax) {
		if off > 0 {
			select {
			case p = <-made:
			default:
			}
			if p != nil {
				break
			}
		}
		b := s.heads.get(s.dev)
		staged = append(staged, b)
		if err = s.readData(m, d, b, off); err == nil {
			good++
		}
		off += headChunk
	}
	if p == nil {
		p = <-made
	}
	if err != nil {
		return nil, 0, err
	}
	// The copies and the CRC run behind the reads, in order: first the
	// staged chunks, then each piece read straight into p.
	pieces := make(chan []byte, 2)
	crcDone := make(chan uint32, 1)
	go func() {
		crc := uint32(0)
		for i, b := range staged {
			q := p[int64(i)*headChunk:][:len(b)]
			copy(q, b)
			crc = sum(crc, q)
		}
		for q := range pieces {
			crc = sum(crc, q)
		}
		crcDone <- crc
	}()
	for ; err == nil && off < m.size; off += crcPiece {
		q := p[off:min(off+crcPiece, m.size)]
		if err = s.readData(m, d, q, off); err == nil {
			pieces <- q
		}
	}
	close(pieces)
	crc := <-crcDone
	if err != nil {
		return nil, 0, err
	}
	return p, crc, nil
}

// crcPiece is how much of a large value Get reads before the CRC of what
// it read goes on beside the next read.
const crcPiece = 16 << 20

// readNew reads the start of a value in chunks of headChunk bytes, up to
// headMax bytes, while the result is being made. Measured here (64 MiB
// values, in-process A/B): 4 MiB chunks beat 1 and 2 MiB ones, and the
// whole is 6-40% faster than reading 8 MiB ahead and waiting for the
// result.
const (
	headChunk = 4 << 20
	headMax   = 32 << 20
)

// GetPartial returns at most length bytes of the value bound to k from off.
func (s *Store) GetPartial(k kv.Key, off, length int64) ([]byte, error) {
	if off < 0 || length < 0 {
		return nil, kv.InvalidArgument("get_partial", k, "negative offset or length")
	}
	m, d, _, err := s.value("get_partial", k)
	if err != nil {
		return nil, err
	}
	defer s.releasePin(d)
	if off >= m.size {
		return []byte{}, nil
	}
	n := min(length, m.size-off)
	p := make([]byte, n)
	if err := s.readData(m, d, p, off); err != nil {
		return nil, kv.Storage("get_partial", k, err)
	}
	return p, nil
}

// Size returns the length of the value bound to k.
func (s *Store) Size(k kv.Key) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, err := s.lookup("size", k)
	if err != nil {
		return 0, err
	}
	if !n.isValue() {
		return 0, kv.ValueExpected("size", k)
	}
	return n.val.size, nil
}

// List returns the children of the dictionary k, sorted.
func (s *Store) List(k kv.Key) ([]kv.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, err := s.lookup("list", k)
	if err != nil {
		return nil, err
	}
	if n.isValue() {
		return nil, kv.DictionaryExpected("list", k)
	}
	cs := n.sortedChildren()
	out := make([]kv.Entry, 0, len(cs))
	for _, c := range cs {
		ck, err := k.Add(c.name)
		if err != nil {
			continue // not reachable: names in the index are valid segments of valid keys
		}
		out = append(out, kv.Entry{Key: ck, Kind: c.kind()})
	}
	return out, nil
}

// LastModified returns the mtime of a value, or the latest mtime of the
// values directly in a dictionary (the epoch when there are none).
func (s *Store) LastModified(k kv.Key) (time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, err := s.lookup("last_modified", k)
	if err != nil {
		return time.Time{}, err
	}
	if n.isValue() {
		return n.val.mtime, nil
	}
	latest := time.Unix(0, 0).UTC()
	for _, c := range n.children {
		if c.isValue() && c.val.mtime.After(latest) {
			latest = c.val.mtime
		}
	}
	return latest, nil
}

// Digest returns the SHA-256 of a value, or the digest of a dictionary
// (kv.DictDigest over its sorted entries).
func (s *Store) Digest(k kv.Key) ([]byte, error) {
	// Pin every value below k, then hash without holding the lock. A value
	// being patched in place is waited for (member.patching), then the
	// pinning starts again.
	type item struct {
		m, d *member
		k    kv.Key
		sum  sum
	}
	var pins []*member
	defer func() {
		for _, d := range pins {
			s.releasePin(d)
		}
	}()
	var t any
	for {
		s.mu.RLock()
		n, err := s.lookup("digest", k)
		if err != nil {
			s.mu.RUnlock()
			return nil, err
		}
		var wait chan struct{}
		var tree func(n *node) any
		tree = func(n *node) any {
			if n.isValue() {
				if ch := n.val.patching; ch != nil {
					wait = ch
					return nil
				}
				d := acquire(n.val)
				pins = append(pins, d)
				return item{n.val, d, n.key(), sumOf(n.val)}
			}
			var cs []any
			for _, c := range n.sortedChildren() {
				cs = append(cs, [2]any{c.name, tree(c)})
			}
			return cs
		}
		t = tree(n)
		s.mu.RUnlock()
		if wait == nil {
			break
		}
		for _, d := range pins {
			s.releasePin(d)
		}
		pins = nil
		<-wait
	}
	var buf []byte
	var digest func(t any) ([]byte, kv.Kind, error)
	digest = func(t any) ([]byte, kv.Kind, error) {
		if it, ok := t.(item); ok {
			d, err := s.valueDigest(it.m, it.d, it.sum, it.k, &buf)
			if err != nil {
				return nil, 0, err
			}
			return bytes.Clone(d[:]), kv.Value, nil
		}
		var es []kv.DigestEntry
		for _, c := range t.([]any) {
			pair := c.([2]any)
			d, kind, err := digest(pair[1])
			if err != nil {
				return nil, 0, err
			}
			es = append(es, kv.DigestEntry{Name: pair[0].(string), Kind: kind, Digest: d})
		}
		return kv.DictDigest(es), kv.Dictionary, nil
	}
	d, _, err := digest(t)
	var ke *kv.Error
	if errors.As(err, &ke) {
		return nil, ke
	}
	if err != nil {
		return nil, kv.Storage("digest", k, err)
	}
	return d, nil
}

// Open returns a reader over the value bound to k: a snapshot against
// replacement (kv.Reader).
func (s *Store) Open(k kv.Key) (kv.Reader, error) {
	m, d, sm, err := s.value("get", k)
	if err != nil {
		return nil, err
	}
	return &valueReader{s: s, k: k, m: m, d: d, sum: sm}, nil
}

type valueReader struct {
	s      *Store
	k      kv.Key
	m, d   *member
	mu     sync.Mutex
	closed bool
	crc    crcReader // reads in order from the start are verified at the end
	sum    sum       // against the CRC the member had at Open
	// pos is where the last read ended: a read there continues in order
	// and is served by the read-ahead (readahead.go), which the first
	// such read that does not reach the value's end starts.
	pos int64
	ra  *prefetch
}

func (r *valueReader) Size() int64 { return r.m.size }

func (r *valueReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, kv.InvalidArgument("get", r.k, "negative offset")
	}
	if off >= r.m.size {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return 0, kv.Closed("get", r.k)
		}
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.m.size-off)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return 0, kv.Closed("get", r.k)
	}
	inOrder := off == r.pos
	r.pos = off + n
	if inOrder && r.ra == nil && off+n < r.m.size {
		r.ra = newPrefetch(r.s, r.m, r.d)
	}
	ra := r.ra
	r.mu.Unlock()
	var err error
	if inOrder && ra != nil {
		_, err = ra.readAt(p[:n], off)
	} else {
		err = r.s.readData(r.m, r.d, p[:n], off)
	}
	if errors.Is(err, errReaderClosed) {
		return 0, kv.Closed("get", r.k)
	}
	if err != nil {
		return 0, kv.Storage("get", r.k, err)
	}
	r.mu.Lock()
	whole, crc := r.crc.read(p[:n], off, r.m.size)
	r.mu.Unlock()
	if whole && r.sum.mismatch(r.m, crc) {
		return 0, corruptData("get", r.k, r.m)
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// Digest returns the SHA-256 of the value the reader reads (its
// snapshot): from the index when known, else computed (one read of the
// whole value, verified against its CRC) and kept there (digest.go).
func (r *valueReader) Digest() ([]byte, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, kv.Closed("digest", r.k)
	}
	var buf []byte
	d, err := r.s.valueDigest(r.m, r.d, r.sum, r.k, &buf)
	var ke *kv.Error
	if errors.As(err, &ke) {
		return nil, ke
	}
	if err != nil {
		return nil, kv.Storage("digest", r.k, err)
	}
	return bytes.Clone(d[:]), nil
}

func (r *valueReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.ra != nil {
		r.ra.stop()
	}
	r.s.releasePin(r.d)
	return nil
}

// Free returns the number of unused bytes: the free tail and the holes.
func (s *Store) Free() (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, kv.Closed("free", kv.Root)
	}
	return s.free(), nil
}
