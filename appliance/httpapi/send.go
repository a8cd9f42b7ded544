package httpapi

import (
	"io"
	"sync"
)

// A value is sent in chunks of sendChunk bytes, read from the store up to
// sendAhead chunks ahead of the one being written to the connection, so
// that the device and the network work at the same time. The memory of a
// response is bounded by (sendAhead+1) chunks: 2 MiB. A chunk is one
// device request (blockio.MaxIO): measured here, 1 MiB chunks send about
// 10% faster than 512 KiB ones, and reading further ahead gains nothing.
const (
	sendChunk = 1 << 20
	sendAhead = 1
)

var sendBuffers = sync.Pool{New: func() any { b := make([]byte, sendChunk); return &b }}

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
			got, err := src.ReadAt((*bp)[:want], off+done)
			if got == want {
				err = nil // io.ReaderAt may report io.EOF with the last bytes
			} else if err == nil {
				err = io.ErrUnexpectedEOF
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
