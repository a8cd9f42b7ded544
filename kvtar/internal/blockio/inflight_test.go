package blockio_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// slow is an hw.Block whose writes each take a millisecond, as a device
// with a real latency does, and that counts the most writes in flight at
// once.
type slow struct {
	hw.Block
	mu            sync.Mutex
	now, mostSeen int
}

func (s *slow) Write(lba uint64, bufs ...[]byte) error {
	s.mu.Lock()
	s.now++
	s.mostSeen = max(s.mostSeen, s.now)
	s.mu.Unlock()
	time.Sleep(time.Millisecond)
	defer func() {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}()
	return s.Block.Write(lba, bufs...)
}

// most returns the most writes seen in flight at once since the last call.
func (s *slow) most() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mostSeen
	s.mostSeen = 0
	return m
}

// TestIssueConcurrentOnSlowDevice checks that a Batch reused for batch
// after batch keeps the scattered requests of each in flight at once on a
// device whose requests take long, and writes what it was given.
func TestIssueConcurrentOnSlowDevice(t *testing.T) {
	const ss, sectors = 512, 64
	base := newDevice(t, ss, sectors)
	dev := &slow{Block: base}
	model := base.Bytes()
	b := blockio.NewBatch(dev)
	for i := range int64(5) {
		for j := range int64(4) {
			p := random(uint64(i*4+j), ss)
			off := (j*8 + i) * ss // four requests, apart
			b.Write(off, p)
			copy(model[off:], p)
		}
		require.NoError(t, b.Issue())
		require.GreaterOrEqual(t, dev.most(), 2, "batch %d: its requests went one after the other", i)
	}
	requireImage(t, model, base.Bytes())
}

// TestIssueReusedAllocatesNothing checks that a Batch reused for small
// appends through Cached (as the store makes them: the data, then zeroes
// to the end of its last sector) allocates no memory once warm, and writes
// what it was given.
func TestIssueReusedAllocatesNothing(t *testing.T) {
	for _, ss := range []int64{512, 4096} {
		base := newDevice(t, ss, 4096)
		dev := blockio.Cached(base)
		model := base.Bytes()
		b := blockio.NewBatch(dev)
		ps := [][]byte{random(1, 1000), random(2, 1000)}
		zeros := make([]byte, ss)
		off := int64(700)
		appendOne := func() {
			p := ps[off%2]
			b.Write(off, p)
			end := off + int64(len(p))
			pad := zeros[:(ss-end%ss)%ss]
			b.Write(end, pad)
			copy(model[off:], p)
			copy(model[end:], pad)
			require.NoError(t, b.Issue())
			off = end
		}
		for range 20 {
			appendOne()
		}
		allocs := testing.AllocsPerRun(100, appendOne)
		require.Zero(t, allocs, "sector size %d", ss)
		requireImage(t, model, base.Bytes())
	}
}
