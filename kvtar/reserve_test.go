package kvtar

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/kv"
)

// gatedReader serves data, stopping after the first half until open is
// closed; failing, when set, is returned instead of the rest.
type gatedReader struct {
	data    []byte
	off     int
	open    chan struct{}
	halfway chan struct{} // closed when the first half was read
	once    sync.Once
	failing error
}

func newGatedReader(data []byte) *gatedReader {
	return &gatedReader{data: data, open: make(chan struct{}), halfway: make(chan struct{})}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	half := len(g.data) / 2
	if g.off >= half {
		g.once.Do(func() { close(g.halfway) })
		<-g.open
		if g.failing != nil {
			return 0, g.failing
		}
	}
	if g.off >= len(g.data) {
		return 0, io.EOF
	}
	end := len(g.data)
	if g.off < half {
		end = half
	}
	n := copy(p, g.data[g.off:end])
	g.off += n
	return n, nil
}

// within fails the test unless done is closed within a generous time: a
// liveness check (a write that waits for a stalled stream would hang), not
// a measure of speed.
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: still waiting after 60 s", what)
	}
}

// TestStreamOutsideTheLock streams a value whose source stalls halfway:
// meanwhile writes, overwrites and removes of other keys complete (the
// stream holds no lock), more of them than the slack before the
// reservation holds (those wait for the stream, then complete), and the
// stream commits once its source goes on. Every tar reader reads the
// result. At 512- and 4096-byte sectors.
func TestStreamOutsideTheLock(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			s, dev := newMemStore(t, ss, 16<<20)
			require.NoError(t, s.Set(kv.MustKey("/old"), pattern(1, 5000)))
			big := pattern(2, 3<<20+123)
			src := newGatedReader(big)
			streamed := make(chan error, 1)
			go func() { streamed <- s.SetFrom(kv.MustKey("/big"), src, int64(len(big))) }()
			<-src.halfway

			// Writes of other keys go on while the stream stalls.
			done := make(chan struct{})
			go func() {
				defer close(done)
				require.NoError(t, s.Set(kv.MustKey("/a"), pattern(3, 3000)))
				require.NoError(t, s.Set(kv.MustKey("/old"), pattern(4, 7000)))
				require.NoError(t, s.Remove(kv.MustKey("/a")))
				require.NoError(t, s.Set(kv.MustKey("/mid"), pattern(5, 100<<10)))
			}()
			within(t, done, "writes of other keys while a stream stalls")

			// More than the slack: the later writes wait for the stream.
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for i := range 64 {
				wg.Go(func() { errs <- s.Set(kv.MustKey(fmt.Sprintf("/many/%02d", i)), pattern(byte(i), 16<<10)) })
			}
			close(src.open)
			require.NoError(t, <-streamed)
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			want := map[string][]byte{"/big": big, "/old": pattern(4, 7000), "/mid": pattern(5, 100<<10)}
			for i := range 64 {
				want[fmt.Sprintf("/many/%02d", i)] = pattern(byte(i), 16<<10)
			}
			require.Equal(t, want, contents(t, s))
			checkStore(t, s, dev.ReaderAt())
			requireReaderLimits(t, dev.ReaderAt(), dev.Size())
			require.NoError(t, s.Close())
		})
	}
}

// TestStreamAborted: a stream whose source fails leaves nothing behind
// and ends its reservation: the writes that waited for it go on.
func TestStreamAborted(t *testing.T) {
	s, dev := newMemStore(t, 512, 8<<20)
	big := pattern(2, 1<<20)
	src := newGatedReader(big)
	src.failing = errors.New("the client went away")
	streamed := make(chan error, 1)
	go func() { streamed <- s.SetFrom(kv.MustKey("/big"), src, int64(len(big))) }()
	<-src.halfway
	waited := make(chan error, 1)
	go func() { waited <- s.Set(kv.MustKey("/after"), pattern(3, 600<<10)) }() // larger than the slack
	close(src.open)
	err := <-streamed
	require.ErrorIs(t, err, kv.ErrStorage)
	require.ErrorContains(t, err, "the client went away")
	require.NoError(t, <-waited)
	require.Equal(t, map[string][]byte{"/after": pattern(3, 600<<10)}, contents(t, s))
	checkStore(t, s, dev.ReaderAt())
	require.NoError(t, s.Close())
}

// TestStreamTailMovesBack removes the value at the end of the archive
// while a stream stalls: the end of archive moves back further than one
// header may pad, so the value is copied to a placement of its own at
// commit.
func TestStreamTailMovesBack(t *testing.T) {
	s, dev := newMemStore(t, 4096, 16<<20)
	require.NoError(t, s.Set(kv.MustKey("/tail"), pattern(1, 2<<20)))
	big := pattern(2, 1<<20+7)
	src := newGatedReader(big)
	streamed := make(chan error, 1)
	go func() { streamed <- s.SetFrom(kv.MustKey("/big"), src, int64(len(big))) }()
	<-src.halfway
	require.NoError(t, s.Remove(kv.MustKey("/tail")))
	close(src.open)
	require.NoError(t, <-streamed)
	require.Equal(t, map[string][]byte{"/big": big}, contents(t, s))
	checkStore(t, s, dev.ReaderAt())
	requireReaderLimits(t, dev.ReaderAt(), dev.Size())
	require.NoError(t, s.Close())
}
