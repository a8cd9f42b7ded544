package kvtar

import (
	"bytes"
	"errors"
	"io"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// probeDev is an hw.Block that records the reads passed to the device it
// wraps: how many, their sizes, how many are in flight (and the sizes of
// the writes); it can fail the
// reads that touch a byte range and hold back the reads that start at or
// after an offset until released.
type probeDev struct {
	hw.Block
	mu       sync.Mutex
	reads    []int // bytes of each read, in order
	writes   []int // bytes of each write, in order
	inFlight int
	failOff  int64 // reads touching [failOff, failOff+failLen) fail
	failLen  int64
	holdFrom int64         // reads from here wait for release (0: none)
	release  chan struct{} // closed to let held reads go
}

var errProbe = errors.New("probe: injected read error")

func newProbeDev(t testing.TB, ss int, size uint64) (*probeDev, *mem.Device) {
	t.Helper()
	m, err := mem.New(ss, size/uint64(ss))
	require.NoError(t, err)
	return &probeDev{Block: m, release: make(chan struct{})}, m
}

func (d *probeDev) Unwrap() hw.Block { return d.Block }

func (d *probeDev) Write(lba uint64, bufs ...[]byte) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	d.mu.Lock()
	d.writes = append(d.writes, n)
	d.mu.Unlock()
	return d.Block.Write(lba, bufs...)
}

func (d *probeDev) Read(lba uint64, bufs ...[]byte) error {
	off := int64(lba) * int64(d.Info().SectorSize)
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	d.mu.Lock()
	d.reads = append(d.reads, n)
	d.inFlight++
	fail := d.failLen > 0 && off < d.failOff+d.failLen && d.failOff < off+int64(n)
	hold := d.holdFrom > 0 && off >= d.holdFrom
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.inFlight--
		d.mu.Unlock()
	}()
	if hold {
		<-d.release
	}
	if fail {
		return errProbe
	}
	return d.Block.Read(lba, bufs...)
}

// take returns the reads recorded so far and forgets them.
func (d *probeDev) take() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.reads
	d.reads = nil
	return r
}

// probeStore returns a store on a probeDev with a value of size bytes at
// /v, and the value.
func probeStore(t *testing.T, size int) (*Store, *probeDev, []byte) {
	t.Helper()
	pd, m := newProbeDev(t, 512, 64<<20)
	require.NoError(t, Format(pd))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), pd)
	require.NoError(t, err)
	checkWhenDone(t, s, m)
	v := make([]byte, size)
	for i := range v {
		v[i] = byte(i*7 + i>>12)
	}
	require.NoError(t, s.Set(kv.MustKey("/v"), v))
	return s, pd, v
}

// TestReadAheadLargeRequests: a value streamed in 32 KiB pieces (as
// os.File.ReadFrom asks for it) is read from the device in chunks of
// raChunk bytes, not in the caller's pieces.
func TestReadAheadLargeRequests(t *testing.T) {
	const size = 5*raChunk + raChunk/2
	s, pd, v := probeStore(t, size)
	r, err := s.Open(kv.MustKey("/v"))
	require.NoError(t, err)
	pd.take()
	var got bytes.Buffer
	_, err = io.CopyBuffer(&got, kv.NewStreamReader(r), make([]byte, 32<<10))
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.True(t, bytes.Equal(v, got.Bytes()), "the bytes read")
	reads := pd.take()
	// Six chunks, the last a half one; a driver may split none of them.
	assert.LessOrEqual(t, len(reads), (size+raChunk-1)/raChunk, "device reads: %v", reads)
	total := 0
	for _, n := range reads {
		total += n
	}
	assert.Equal(t, size, total, "bytes read from the device")
}

// TestReadAheadSmallWhole: a read of a whole small value is one device
// read into the caller's buffer, no read-ahead.
func TestReadAheadSmallWhole(t *testing.T) {
	s, pd, v := probeStore(t, 4096)
	r, err := s.Open(kv.MustKey("/v"))
	require.NoError(t, err)
	pd.take()
	p := make([]byte, 1<<20)
	n, err := r.ReadAt(p, 0)
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, v, p[:n])
	require.NoError(t, r.Close())
	assert.Equal(t, []int{4096}, pd.take())
}

// TestReadAheadErrorWhereReached: a device error in the third chunk
// fails the read that reaches its bytes, not the reads before it, even
// though the read-ahead met it earlier.
func TestReadAheadErrorWhereReached(t *testing.T) {
	s, pd, v := probeStore(t, 4*raChunk)
	s.mu.RLock()
	dataOff := s.ix.lookup(kv.MustKey("/v")).val.dataOff
	s.mu.RUnlock()
	pd.mu.Lock()
	pd.failOff, pd.failLen = dataOff+2*raChunk+4096, 512
	pd.mu.Unlock()
	r, err := s.Open(kv.MustKey("/v"))
	require.NoError(t, err)
	defer r.Close()
	p := make([]byte, 64<<10)
	var off int64
	for ; off < 2*raChunk; off += int64(len(p)) {
		n, err := r.ReadAt(p, off)
		require.NoError(t, err, "read at %d, before the damage", off)
		require.Equal(t, v[off:off+int64(n)], p[:n])
	}
	_, err = r.ReadAt(p, off)
	assert.ErrorIs(t, err, kv.ErrStorage, "the read that reaches the failed chunk")
	assert.ErrorIs(t, err, errProbe)
}

// TestReadAheadStopsOnClose: Close stops the read-ahead: when it returns,
// no chunk read is in flight, no goroutine of the read-ahead is left, and
// the device sees no further reads; the reader is closed.
func TestReadAheadStopsOnClose(t *testing.T) {
	s, pd, _ := probeStore(t, 8*raChunk)
	s.mu.RLock()
	dataOff := s.ix.lookup(kv.MustKey("/v")).val.dataOff
	s.mu.RUnlock()
	pd.mu.Lock()
	pd.holdFrom = dataOff + raChunk // the chunks after the first wait
	pd.mu.Unlock()
	r, err := s.Open(kv.MustKey("/v"))
	require.NoError(t, err)
	_, err = r.ReadAt(make([]byte, 32<<10), 0)
	require.NoError(t, err)
	go close(pd.release)
	require.NoError(t, r.Close())
	pd.mu.Lock()
	inFlight := pd.inFlight
	pd.mu.Unlock()
	assert.Zero(t, inFlight, "device reads in flight after Close")
	var stacks strings.Builder
	require.NoError(t, pprof.Lookup("goroutine").WriteTo(&stacks, 2))
	assert.NotContains(t, stacks.String(), "kvtar.(*prefetch)", "goroutines of the read-ahead after Close")
	pd.take()
	_, err = r.ReadAt(make([]byte, 32<<10), 32<<10)
	assert.ErrorIs(t, err, kv.ErrClosed)
	assert.Empty(t, pd.take(), "device reads after Close")
}

// TestReadAheadOutOfOrder: reads out of order and jumps give the right
// bytes; a read in order after a jump continues from there.
func TestReadAheadOutOfOrder(t *testing.T) {
	s, _, v := probeStore(t, 3*raChunk+1000)
	r, err := s.Open(kv.MustKey("/v"))
	require.NoError(t, err)
	defer r.Close()
	for _, at := range []struct{ off, n int64 }{
		{0, 1000}, {1000, 5000}, {2 * raChunk, 100}, {2*raChunk + 100, raChunk + 900}, {10, 10},
		{raChunk - 7, 14}, {raChunk + 7, 2 * raChunk}, {3 * raChunk, 1000},
	} {
		p := make([]byte, at.n)
		n, err := r.ReadAt(p, at.off)
		want := v[at.off:min(at.off+at.n, int64(len(v)))]
		if int64(len(want)) < at.n {
			assert.ErrorIs(t, err, io.EOF)
		} else {
			assert.NoError(t, err)
		}
		assert.True(t, bytes.Equal(want, p[:n]), "bytes at %d+%d", at.off, at.n)
	}
}

// TestReadAheadBudget: readers held open while reading in order hold at
// most raBudget chunks together; those past the budget read the device
// directly and still get the right bytes; closing them gives every chunk
// back.
func TestReadAheadBudget(t *testing.T) {
	s, _, v := probeStore(t, 8*raChunk)
	var rs []kv.Reader
	for i := range raBudget/raDepth + 3 {
		r, err := s.Open(kv.MustKey("/v"))
		require.NoError(t, err)
		rs = append(rs, r)
		for off := int64(0); off < raChunk; off += 256 << 10 {
			p := make([]byte, 256<<10)
			_, err := r.ReadAt(p, off)
			require.NoError(t, err)
			require.True(t, bytes.Equal(v[off:off+int64(len(p))], p), "reader %d at %d", i, off)
		}
		assert.LessOrEqual(t, s.ahead.Load(), int64(raBudget), "chunks held with %d readers", i+1)
	}
	for _, r := range rs {
		require.NoError(t, r.Close())
	}
	assert.Zero(t, s.ahead.Load(), "chunks held after Close")
}

// sizeReader reads from r and records the size of each read asked of it.
type sizeReader struct {
	r     io.Reader
	asked []int
}

func (s *sizeReader) Read(p []byte) (int, error) {
	s.asked = append(s.asked, len(p))
	return s.r.Read(p)
}

// TestStreamedWriteLargeRequests: SetFrom reads its source in chunks of
// streamChunk bytes, whatever the source, and writes the device in
// requests of that size.
func TestStreamedWriteLargeRequests(t *testing.T) {
	const size = 5*streamChunk + 12345
	pd, m := newProbeDev(t, 512, 64<<20)
	require.NoError(t, Format(pd))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), pd)
	require.NoError(t, err)
	checkWhenDone(t, s, m)
	v := pattern(9, size)
	src := &sizeReader{r: bytes.NewReader(v)}
	require.NoError(t, s.SetFrom(kv.MustKey("/big"), src, size))
	for i, n := range src.asked {
		if i < len(src.asked)-1 {
			assert.GreaterOrEqual(t, n, streamChunk, "read %d of the source", i)
		}
	}
	assert.LessOrEqual(t, len(src.asked), size/streamChunk+2, "reads of the source: %v", src.asked)
	pd.mu.Lock()
	writes := pd.writes
	pd.mu.Unlock()
	big := 0
	for _, n := range writes {
		if n >= streamChunk {
			big++
		}
	}
	assert.GreaterOrEqual(t, big, size/streamChunk, "device writes: %v", writes)
	got, err := s.Get(kv.MustKey("/big"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(v, got))
}
