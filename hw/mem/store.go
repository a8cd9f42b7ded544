package mem

import "sync"

// chunkSize is the allocation unit of the sparse medium. It is independent
// of the sector size: a sector may straddle two chunks.
const chunkSize = 64 << 10

// store is a sparse byte array of a fixed size. Absent chunks read as
// zeroes. The methods that do not lock expect the caller to hold mu and to
// pass ranges inside [0, size).
type store struct {
	mu     sync.RWMutex
	size   int64
	chunks map[int64][]byte // chunk index -> chunkSize bytes
}

func newStore(size int64) *store {
	return &store{size: size, chunks: make(map[int64][]byte)}
}

// readAt copies the bytes at off into p.
func (s *store) readAt(p []byte, off int64) {
	for len(p) > 0 {
		idx, in := off/chunkSize, int(off%chunkSize)
		n := min(len(p), chunkSize-in)
		if c := s.chunks[idx]; c != nil {
			copy(p[:n], c[in:])
		} else {
			clear(p[:n])
		}
		p, off = p[n:], off+int64(n)
	}
}

// writeAt copies p to the medium at off, allocating chunks only for pieces
// that hold a non-zero byte.
func (s *store) writeAt(p []byte, off int64) {
	for len(p) > 0 {
		idx, in := off/chunkSize, int(off%chunkSize)
		n := min(len(p), chunkSize-in)
		c := s.chunks[idx]
		switch {
		case c != nil:
			copy(c[in:], p[:n])
		case !allZero(p[:n]):
			c = make([]byte, chunkSize)
			copy(c[in:], p[:n])
			s.chunks[idx] = c
		}
		p, off = p[n:], off+int64(n)
	}
}

// zero makes n bytes at off read as zeroes, freeing the chunks the range
// covers whole. Its cost follows the smaller of the range and the number of
// allocated chunks, so zeroing a huge sparse device is cheap.
func (s *store) zero(off, n int64) {
	if n <= 0 {
		return
	}
	end := off + n
	first, last := off/chunkSize, (end-1)/chunkSize
	if last-first+1 > int64(len(s.chunks)) {
		for idx := range s.chunks {
			if idx >= first && idx <= last {
				s.zeroChunk(idx, off, end)
			}
		}
		return
	}
	for idx := first; idx <= last; idx++ {
		s.zeroChunk(idx, off, end)
	}
}

// zeroChunk zeroes the part of chunk idx inside [off, end).
func (s *store) zeroChunk(idx, off, end int64) {
	c := s.chunks[idx]
	if c == nil {
		return
	}
	base := idx * chunkSize
	lo, hi := max(off, base)-base, min(end, base+chunkSize)-base
	if lo == 0 && hi == chunkSize {
		delete(s.chunks, idx)
		return
	}
	clear(c[lo:hi])
}

// clone returns a deep copy of the medium. The caller holds at least a read
// lock.
func (s *store) clone() *store {
	c := newStore(s.size)
	for idx, b := range s.chunks {
		c.chunks[idx] = append([]byte(nil), b...)
	}
	return c
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
