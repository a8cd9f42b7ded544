package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// readAhead is the window a sequential read fetches: large enough that
// the round trip of each range request costs little next to its transfer,
// small enough to keep a streaming client's memory bounded.
const readAhead = 8 << 20

// reader is the kv.Reader of Open: a reader session on the server.
type reader struct {
	c    *Client
	k    kv.Key
	path string // /v1/readers/{id}
	size int64

	mu     sync.Mutex
	closed bool
	win    []byte // the last read-ahead window; read only under mu
	winOff int64
	next   int64  // where the last read ended: a read starting there is sequential
	spare  []byte // a window no longer in use, for the next fetch
}

var _ kv.Reader = (*reader)(nil)

// Open returns a snapshot reader over the value bound to k.
func (c *Client) Open(k kv.Key) (kv.Reader, error) {
	const op = "get"
	if c.closed.Load() {
		return nil, kv.Closed(op, k)
	}
	resp, err := c.do(request{method: http.MethodPost, path: httpapi.KeyPath(k), query: map[string][]string{"open": {""}}})
	if err != nil {
		return nil, kv.Storage(op, k, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, responseError(op, k, resp)
	}
	defer resp.Body.Close()
	var rb httpapi.ReaderBody
	if err := json.NewDecoder(resp.Body).Decode(&rb); err != nil || rb.ID == "" || rb.Size < 0 {
		return nil, kv.Storage(op, k, fmt.Errorf("the server's reader session: %v", err))
	}
	return &reader{c: c, k: k, path: "/v1/readers/" + rb.ID, size: rb.Size, next: -1}, nil
}

func (r *reader) Size() int64 { return r.size }

// ReadAt reads len(p) bytes at off, as io.ReaderAt says.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, kv.InvalidArgument("get", r.k, "negative offset")
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return 0, kv.Closed("get", r.k)
	}
	if off >= r.size {
		r.mu.Unlock()
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-off)
	if off >= r.winOff && off+n <= r.winOff+int64(len(r.win)) {
		copy(p, r.win[off-r.winOff:])
		r.next = off + n
		r.mu.Unlock()
		return eof(int(n), len(p))
	}
	sequential := off == r.next
	var win []byte
	if sequential && n > 0 && n <= readAhead/2 {
		win, r.spare = r.spare, nil
	}
	r.mu.Unlock()
	if n == 0 {
		return 0, nil
	}
	if sequential && n <= readAhead/2 {
		// The window buffers are recycled: a stream of any length uses
		// two, not one per window for the garbage collector to catch up
		// with. Windows are read under mu only, so the one replaced is
		// free once the new one is in place.
		w := min(readAhead, r.size-off)
		if int64(cap(win)) < w {
			win = make([]byte, w)
		}
		win = win[:w]
		if err := r.fetch(off, win); err != nil {
			return 0, err
		}
		copy(p, win)
		r.mu.Lock()
		if !r.closed {
			r.spare = r.win
			r.win, r.winOff, r.next = win, off, off+n
		}
		r.mu.Unlock()
		return eof(int(n), len(p))
	}
	if err := r.fetch(off, p[:n]); err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.next = off + n
	r.mu.Unlock()
	return eof(int(n), len(p))
}

// eof is the result of a read of n bytes of the want asked for.
func eof(n, want int) (int, error) {
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// fetch reads exactly len(p) bytes at off from the session.
func (r *reader) fetch(off int64, p []byte) error {
	const op = "get"
	if r.c.closed.Load() {
		return kv.Closed(op, r.k)
	}
	resp, err := r.c.do(request{method: http.MethodGet, path: r.path,
		header: http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)}}})
	if err != nil {
		return kv.Storage(op, r.k, err)
	}
	defer resp.Body.Close()
	whole := resp.StatusCode == http.StatusOK && off == 0 && int64(len(p)) == r.size
	if resp.StatusCode != http.StatusPartialContent && !whole {
		return responseError(op, r.k, resp)
	}
	if resp.ContentLength != int64(len(p)) {
		return kv.Storage(op, r.k, fmt.Errorf("the server sent %d bytes for a range of %d", resp.ContentLength, len(p)))
	}
	if _, err := io.ReadFull(resp.Body, p); err != nil {
		return kv.Storage(op, r.k, err)
	}
	return nil
}

// Close ends the session on the server. It is idempotent.
func (r *reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed, r.win, r.spare = true, nil, nil
	r.mu.Unlock()
	if r.c.closed.Load() {
		return nil
	}
	resp, err := r.c.do(request{method: http.MethodDelete, path: r.path})
	if err != nil {
		return kv.Storage("get", r.k, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusGone {
		return kv.Storage("get", r.k, &ServerError{StatusCode: resp.StatusCode})
	}
	return nil
}
