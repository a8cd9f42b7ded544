package blockio_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// sectorSizes are the sector sizes every table runs at.
var sectorSizes = []int64{512, 1024, 4096, 8192}

// ext is a byte range in a test table.
type ext struct{ off, n int64 }

// random returns n pseudo-random bytes, a function of seed.
func random(seed uint64, n int64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b) // never fails
	return b
}

// newDevice returns a mem device of sectors sectors of ss bytes filled with
// random bytes, so that a read-modify-write that assumed zeroes shows.
func newDevice(t *testing.T, ss int64, sectors uint64) *mem.Device {
	t.Helper()
	dev, err := mem.FromBytes(int(ss), random(uint64(ss)<<32|sectors, ss*int64(sectors)))
	require.NoError(t, err)
	return dev
}

// request is one Read or Write a spy saw.
type request struct {
	write bool
	lba   uint64
	bufs  [][]byte // the caller's buffers, not copies
}

func (r request) bytes() int64 {
	var n int64
	for _, b := range r.bufs {
		n += int64(len(b))
	}
	return n
}

func (r request) String() string {
	op := "read"
	if r.write {
		op = "write"
	}
	return fmt.Sprintf("%s lba %d, %d bufs, %d bytes", op, r.lba, len(r.bufs), r.bytes())
}

// spy is an hw.Block that records the requests it passes to its device.
type spy struct {
	hw.Block
	mu   sync.Mutex
	reqs []request
}

func (s *spy) Read(lba uint64, bufs ...[]byte) error {
	s.record(false, lba, bufs)
	return s.Block.Read(lba, bufs...)
}

func (s *spy) Write(lba uint64, bufs ...[]byte) error {
	s.record(true, lba, bufs)
	return s.Block.Write(lba, bufs...)
}

func (s *spy) record(write bool, lba uint64, bufs [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, request{write: write, lba: lba, bufs: append([][]byte(nil), bufs...)})
}

// requests returns the requests seen since the last call and forgets them.
func (s *spy) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

// count returns how many of reqs are reads and writes.
func count(reqs []request) (reads, writes int) {
	for _, r := range reqs {
		if r.write {
			writes++
		} else {
			reads++
		}
	}
	return reads, writes
}

// requireBounded checks every request against MaxIO and MaxSegments.
func requireBounded(t *testing.T, ss int64, reqs []request) {
	t.Helper()
	for _, r := range reqs {
		require.LessOrEqual(t, r.bytes(), max(ss, int64(blockio.MaxIO)), "%v", r)
		require.LessOrEqual(t, len(r.bufs), blockio.MaxSegments, "%v", r)
	}
}

// aliases reports whether a buffer of a request of reqs (writes when write
// is set, else reads) starts at &p[0]: the caller's memory went to the
// device without a copy.
func aliases(reqs []request, write bool, p []byte) bool {
	for _, r := range reqs {
		for _, b := range r.bufs {
			if r.write == write && &b[0] == &p[0] {
				return true
			}
		}
	}
	return false
}
