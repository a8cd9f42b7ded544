package httpapi

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// A value is sent in chunks of sendChunk bytes. A value (or range) that
// fits one chunk is read inline, on the handler's goroutine, into one
// pooled buffer, before the status is sent — so a failed read is answered
// with an error rather than a truncated body — and written with one Write.
// A larger one is read from the store up to sendAhead chunks ahead of the
// one being written to the connection, so that the device and the network
// work at the same time. The memory of a response is bounded by
// (sendAhead+1) chunks: 2 MiB. A chunk is one device request
// (blockio.MaxIO): measured here, 1 MiB chunks send about 10% faster than
// 512 KiB ones, and reading further ahead gains nothing.
const (
	sendChunk = 1 << 20
	sendAhead = 1
)

var sendBuffers = sync.Pool{New: func() any { b := make([]byte, sendChunk); return &b }}

// readInline reads the n bytes of src from offset off (n ≤ sendChunk)
// into a buffer of sendBuffers, which the caller puts back.
func readInline(src io.ReaderAt, off, n int64) (*[]byte, error) {
	bp := sendBuffers.Get().(*[]byte)
	if err := readFull(src, (*bp)[:n], off); err != nil {
		sendBuffers.Put(bp)
		return nil, err
	}
	return bp, nil
}

// readFull fills p from src at off; io.ReaderAt may report io.EOF with
// the last bytes, which is no error here, and a short read is
// io.ErrUnexpectedEOF.
func readFull(src io.ReaderAt, p []byte, off int64) error {
	got, err := src.ReadAt(p, off)
	switch {
	case got == len(p):
		return nil
	case err == nil:
		return io.ErrUnexpectedEOF
	}
	return err
}

// A sendPart is one chunk read from the store: n bytes of *buf, and the
// error that ended the reading, if any.
type sendPart struct {
	buf *[]byte
	n   int
	err error
}

// copyAhead writes the n bytes of src from offset off to dst, reading
// ahead on another goroutine. It returns the bytes written and the first
// error of either side; it returns only once that goroutine is done with
// src.
func copyAhead(dst io.Writer, src io.ReaderAt, off, n int64) (int64, error) {
	parts := make(chan sendPart, sendAhead)
	stop := make(chan struct{})
	go func() {
		defer close(parts)
		for done := int64(0); done < n; {
			bp := sendBuffers.Get().(*[]byte)
			want := int(min(sendChunk, n-done))
			err := readFull(src, (*bp)[:want], off+done)
			got := want
			if err != nil {
				got = 0
			}
			select {
			case parts <- sendPart{bp, got, err}:
			case <-stop:
				sendBuffers.Put(bp)
				return
			}
			if err != nil {
				return
			}
			done += int64(got)
		}
	}()
	var sent int64
	var err error
	for p := range parts {
		if err == nil {
			var w int
			w, err = dst.Write((*p.buf)[:p.n])
			sent += int64(w)
			if err == nil {
				err = p.err
			}
			if err != nil {
				close(stop)
			}
		}
		sendBuffers.Put(p.buf)
	}
	return sent, err
}

// sendWriter is the response writer for a value or a listing: each write
// must be taken by the client within idle (see deadline.go). A value that
// fits one chunk is one write, so its response sets the deadline once.
type sendWriter struct {
	w    http.ResponseWriter
	dl   writeDeadliner // nil: no deadlines
	idle time.Duration
}

// writeDeadliner sets the write deadline of a response's connection.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// sendWriter returns the writer of a response body for c.
func (h *Handler) sendWriter(c *call) sendWriter {
	s := sendWriter{w: c.w, idle: h.opts.BodyTimeout}
	if s.idle > 0 {
		s.dl = findWriteDeadliner(c.w)
	}
	return s
}

// findWriteDeadliner finds what sets w's write deadline, unwrapping w as
// http.ResponseController.SetWriteDeadline does, but without allocating
// the controller, which every GET would; nil when w has none (a
// ResponseWriter without a connection: no deadline).
func findWriteDeadliner(w http.ResponseWriter) writeDeadliner {
	for {
		switch t := w.(type) {
		case writeDeadliner:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

func (s *sendWriter) Write(p []byte) (int, error) {
	if s.dl != nil {
		s.dl.SetWriteDeadline(time.Now().Add(s.idle))
	}
	return s.w.Write(p)
}
