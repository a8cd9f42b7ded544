package kvtar

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// TestPanicInPlanFailsOnlyItsGroup: a plan that panics fails its request
// (and the requests grouped with it) with kv.ErrStorage; the store is not
// wedged and takes the next writes.
func TestPanicInPlanFailsOnlyItsGroup(t *testing.T) {
	s, _ := newMemStore(t, 512, 4<<20)
	require.NoError(t, s.Set(kv.MustKey("/a"), []byte("a")))
	err := s.write("set", []kv.Key{kv.MustKey("/p")}, func(t *txn) error {
		t.put(t.diskEOA, make([]byte, blockSize)) // a queued write, never issued
		panic("planted")
	})
	require.ErrorIs(t, err, kv.ErrStorage)
	require.ErrorIs(t, err, errPanic)

	// Many writers after it: none blocks.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			require.NoError(t, s.Set(kv.MustKey("/w/"+string(rune('a'+i))), pattern(byte(i), 3000)))
		})
	}
	wg.Wait()
	v, err := s.Get(kv.MustKey("/a"))
	require.NoError(t, err)
	require.Equal(t, "a", string(v))
	checkStore(t, s, deviceReader(s.dev))
	require.NoError(t, s.Close())
}

// panicky is a device whose Flush panics once armed.
type panicky struct {
	*mem.Device
	armed atomic.Bool
}

func (p *panicky) Flush() error {
	if p.armed.Load() {
		panic("planted device panic")
	}
	return p.Device.Flush()
}

var _ hw.Block = (*panicky)(nil)

// TestPanicInStepOneFailsTheStore: a panic once the transaction has
// started to write fails the store cleanly: every writer gets an error
// (none waits forever), reads go on, later writes are refused, and a new
// open recovers a consistent archive without the failed write.
func TestPanicInStepOneFailsTheStore(t *testing.T) {
	base, err := mem.New(512, (4<<20)/512)
	require.NoError(t, err)
	require.NoError(t, Format(base))
	dev := &panicky{Device: base}
	// The failed store s is left as the panic left it; base is checked at the
	// end as s2 (below) recovered it.
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	require.NoError(t, s.Set(kv.MustKey("/a"), []byte("a")))
	dev.armed.Store(true)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 8 {
		wg.Go(func() {
			if err := s.Set(kv.MustKey("/w/"+string(rune('a'+i))), pattern(byte(i), 3000)); err != nil {
				require.ErrorIs(t, err, kv.ErrStorage)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(8), failed.Load())
	v, err := s.Get(kv.MustKey("/a"))
	require.NoError(t, err)
	require.Equal(t, "a", string(v))
	require.ErrorIs(t, s.Set(kv.MustKey("/b"), nil), kv.ErrStorage)

	dev.armed.Store(false)
	s2, err := New(clock.NewFake(time.Unix(2e9, 0)), base.Reopen())
	require.NoError(t, err)
	checkWhenDone(t, s2, base)
	got := contents(t, s2)
	require.Equal(t, "a", string(got["/a"]))
	checkStore(t, s2, base.ReaderAt())
	require.NoError(t, s2.Close())
}

// TestHugeSizes: sizes near 2^63 are no_space before any arithmetic on
// them, and the store goes on (an allocate of 2^63-1 used to overflow and
// wedge every later write).
func TestHugeSizes(t *testing.T) {
	s, _ := newMemStore(t, 512, 4<<20)
	for _, size := range []int64{1<<63 - 1, 1<<63 - 512, 1<<63 - 2048, 1 << 62, 5 << 20} {
		require.ErrorIs(t, s.Allocate(kv.MustKey("/x"), size, time.Time{}), kv.ErrNoSpace, "allocate %d", size)
		require.ErrorIs(t, s.SetFrom(kv.MustKey("/y"), eofReader{}, size), kv.ErrNoSpace, "set_from %d", size)
	}
	require.NoError(t, s.Set(kv.MustKey("/ok"), []byte("ok")))
	v, err := s.GetPartial(kv.MustKey("/ok"), 1<<63-1, 1<<63-1)
	require.NoError(t, err)
	require.Empty(t, v)
	require.NoError(t, s.SetPartial(kv.MustKey("/ok"), 1<<63-1, []byte("!")))
	v, err = s.Get(kv.MustKey("/ok"))
	require.NoError(t, err)
	require.Equal(t, "ok!", string(v))
	require.NoError(t, s.Close())
}

// eofReader has nothing to read.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
