package kvtar

import (
	"errors"
	"sync"
)

// Read-ahead of streamed reads (kv.Reader, doc §6). A caller that reads a
// value in order — io.Copy through io.SectionReader, an HTTP response —
// asks for what its buffer holds (32 KiB for os.File.ReadFrom), and one
// device request of that size after the other leaves the device idle
// while the caller writes each piece out. So the reader of a value reads
// ahead: from the first read in order that does not reach the value's
// end, it keeps raDepth chunks of raChunk bytes in flight at once, each
// read into a device buffer (hw.AllocBuffer, through the store's pool)
// at an offset of the value that is a multiple of raChunk — which is a
// sector boundary of the device, as values that large start on one (doc
// §1) — and serves reads from them. A read elsewhere (out of order) reads
// the device directly and leaves the window where it is; a read in order
// that falls outside it starts the window again there.
//
// The chunks of all readers together are at most raBudget: a reader that
// finds none left reads the device directly, as without read-ahead, so
// that many readers held open (HTTP reader sessions) cannot hold much
// memory.
//
// A chunk's failure is reported by the read that reaches its bytes, not
// before. Close stops the read-ahead: it waits for the chunk reads in
// flight (they read the pinned data) and gives their buffers back before
// the reader unpins the value, so nothing outlives the reader.

// errReaderClosed is what a read that raced with Close gets from the
// stopped read-ahead (the reader reports kv.ErrClosed).
var errReaderClosed = errors.New("kvtar: reader closed")

// raChunk is the size of a read-ahead chunk: the store's stream chunk.
const raChunk = streamChunk

// raDepth is how many chunks a reader keeps in flight.
const raDepth = 4

// raBudget is how many chunks the readers of a store hold at most.
const raBudget = 16

// prefetch is the read-ahead window of one valueReader.
type prefetch struct {
	s    *Store
	m, d *member
	// mu serializes the reads served from the window.
	mu     sync.Mutex
	chunks []*raChunkRead // in order of offset, contiguous
	next   int64          // value offset of the chunk to start next
	wg     sync.WaitGroup // chunk reads in flight
	// stopped is set by stop: a read that raced with Close finds it.
	stopped bool
}

// raChunkRead is one chunk being read ahead.
type raChunkRead struct {
	off  int64  // value offset
	buf  []byte // from s.chunks; the bytes of the chunk once done is closed
	done chan struct{}
	err  error
}

// ready returns the chunk's bytes once read, or its error.
func (c *raChunkRead) ready() ([]byte, error) {
	<-c.done
	return c.buf, c.err
}

func newPrefetch(s *Store, m, d *member) *prefetch {
	return &prefetch{s: s, m: m, d: d}
}

// readAt serves p at the value offset off from the window, starting it at
// off's chunk when off is not in it, and keeps raDepth chunks in flight
// past what it served. It returns the number of bytes read (all of p but
// at the value's end, where the caller clipped p) and the error of the
// first chunk it reached that failed.
func (ra *prefetch) readAt(p []byte, off int64) (int, error) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.stopped {
		return 0, errReaderClosed
	}
	if len(ra.chunks) == 0 || off < ra.chunks[0].off || off >= ra.next {
		ra.drop(len(ra.chunks))
		ra.next = off / raChunk * raChunk
	}
	n := 0
	for n < len(p) {
		ra.fill()
		// Chunks wholly before off are done with.
		i := 0
		for i < len(ra.chunks) && ra.chunks[i].off+raChunk <= off+int64(n) {
			i++
		}
		ra.drop(i)
		if len(ra.chunks) == 0 {
			// The budget is spent (the caller clipped p to the value).
			if err := ra.s.readData(ra.m, ra.d, p[n:], off+int64(n)); err != nil {
				return n, err
			}
			return len(p), nil
		}
		c := ra.chunks[0]
		buf, err := c.ready()
		if err != nil {
			return n, err
		}
		n += copy(p[n:], buf[off+int64(n)-c.off:])
	}
	ra.fill()
	return n, nil
}

// fill starts chunk reads until raDepth are in flight or the value's end
// is reached. The caller holds ra.mu.
func (ra *prefetch) fill() {
	for len(ra.chunks) < raDepth && ra.next < ra.m.size {
		if ra.s.ahead.Add(1) > raBudget {
			ra.s.ahead.Add(-1)
			return
		}
		c := &raChunkRead{off: ra.next, buf: ra.s.chunks.get(ra.s.dev), done: make(chan struct{})}
		c.buf = c.buf[:min(raChunk, ra.m.size-c.off)]
		ra.chunks = append(ra.chunks, c)
		ra.next += raChunk
		ra.wg.Go(func() {
			c.err = ra.s.readData(ra.m, ra.d, c.buf, c.off)
			close(c.done)
		})
	}
}

// drop gives back the first n chunks of the window, once read. The caller
// holds ra.mu.
func (ra *prefetch) drop(n int) {
	for _, c := range ra.chunks[:n] {
		<-c.done
		if c.err == nil { // a read that failed may still own its buffer
			ra.s.chunks.put(ra.s.dev, c.buf)
		}
		ra.s.ahead.Add(-1)
	}
	ra.chunks = append(ra.chunks[:0], ra.chunks[n:]...)
}

// stop ends the read-ahead: it waits for the chunk reads in flight and
// gives every buffer back.
func (ra *prefetch) stop() {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.stopped = true
	ra.drop(len(ra.chunks))
	ra.wg.Wait()
}
