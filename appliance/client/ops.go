package client

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// head sends HEAD for k: with fast, ?no-digest (no ETag). A response other
// than 200 is returned as an error.
func (c *Client) head(op string, k kv.Key, fast bool) (*http.Response, error) {
	if c.closed.Load() {
		return nil, kv.Closed(op, k)
	}
	rq := request{method: http.MethodHead, path: httpapi.KeyPath(k)}
	if fast {
		rq.query = url.Values{"no-digest": {""}}
	}
	resp, err := c.do(rq)
	if err != nil {
		return nil, kv.Storage(op, k, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, responseError(op, k, resp)
	}
	resp.Body.Close()
	return resp, nil
}

// kindOf reads the kind of a HEAD response.
func kindOf(op string, k kv.Key, resp *http.Response) (kv.Kind, error) {
	switch resp.Header.Get("X-Tarstore-Kind") {
	case "value":
		return kv.Value, nil
	case "dictionary":
		return kv.Dictionary, nil
	}
	return kv.None, kv.Storage(op, k, fmt.Errorf("the server's answer has no X-Tarstore-Kind"))
}

// Exists reports what k is bound to.
func (c *Client) Exists(k kv.Key) (kv.Kind, error) {
	resp, err := c.head("exists", k, true)
	if errors.Is(err, kv.ErrNotFound) {
		return kv.None, nil
	}
	if err != nil {
		return kv.None, err
	}
	return kindOf("exists", k, resp)
}

// sizeOf reads the size of a value from the headers of resp.
func sizeOf(op string, k kv.Key, resp *http.Response) (int64, error) {
	s := resp.Header.Get("X-Tarstore-Size")
	if s == "" {
		s = resp.Header.Get("Content-Length")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, kv.Storage(op, k, fmt.Errorf("the server's answer has no size"))
	}
	return n, nil
}

// Size returns the length of the value bound to k.
func (c *Client) Size(k kv.Key) (int64, error) {
	resp, err := c.head("size", k, true)
	if err != nil {
		return 0, err
	}
	switch kind, err := kindOf("size", k, resp); {
	case err != nil:
		return 0, err
	case kind == kv.Dictionary:
		return 0, kv.ValueExpected("size", k)
	}
	return sizeOf("size", k, resp)
}

// LastModified returns the modification time of k, to the second.
func (c *Client) LastModified(k kv.Key) (time.Time, error) {
	resp, err := c.head("last_modified", k, true)
	if err != nil {
		return time.Time{}, err
	}
	t, err := http.ParseTime(resp.Header.Get("Last-Modified"))
	if err != nil {
		return time.Time{}, kv.Storage("last_modified", k, fmt.Errorf("the server's Last-Modified: %w", err))
	}
	return t.UTC(), nil
}

// Digest returns the digest of k: its ETag.
func (c *Client) Digest(k kv.Key) ([]byte, error) {
	resp, err := c.head("digest", k, false)
	if err != nil {
		return nil, err
	}
	tag := resp.Header.Get("ETag")
	d, err := hex.DecodeString(strings.Trim(tag, `"`))
	if err != nil || len(d) != kv.DigestSize || !strings.HasPrefix(tag, `"`) {
		return nil, kv.Storage("digest", k, fmt.Errorf("the server's ETag %q is not a digest", tag))
	}
	return d, nil
}

// Get returns the value bound to k.
func (c *Client) Get(k kv.Key) ([]byte, error) {
	if c.closed.Load() {
		return nil, kv.Closed("get", k)
	}
	resp, err := c.do(request{method: http.MethodGet, path: httpapi.KeyPath(k), query: url.Values{"no-digest": {""}}})
	if err != nil {
		return nil, kv.Storage("get", k, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, responseError("get", k, resp)
	}
	defer resp.Body.Close()
	return readBody("get", k, resp, resp.ContentLength)
}

// readBody reads a response body of want bytes (-1: unknown).
func readBody(op string, k kv.Key, resp *http.Response, want int64) ([]byte, error) {
	var buf bytes.Buffer
	if want > 0 {
		buf.Grow(int(min(want, 64<<20)))
	}
	n, err := io.Copy(&buf, resp.Body)
	if err == nil && want >= 0 && n != want {
		err = fmt.Errorf("the server sent %d of %d bytes", n, want)
	}
	if err != nil {
		return nil, kv.Storage(op, k, err)
	}
	return buf.Bytes(), nil
}

// GetPartial returns at most length bytes of the value bound to k from off.
func (c *Client) GetPartial(k kv.Key, off, length int64) ([]byte, error) {
	const op = "get_partial"
	if off < 0 || length < 0 {
		return nil, kv.InvalidArgument(op, k, fmt.Sprintf("offset %d, length %d", off, length))
	}
	if c.closed.Load() {
		return nil, kv.Closed(op, k)
	}
	if length == 0 {
		// No range asks for nothing: only the kind matters.
		resp, err := c.head(op, k, true)
		if err != nil {
			return nil, err
		}
		switch kind, err := kindOf(op, k, resp); {
		case err != nil:
			return nil, err
		case kind == kv.Dictionary:
			return nil, kv.ValueExpected(op, k)
		}
		return []byte{}, nil
	}
	last := int64(math.MaxInt64)
	if off <= math.MaxInt64-length {
		last = off + length - 1
	}
	resp, err := c.do(request{method: http.MethodGet, path: httpapi.KeyPath(k), query: url.Values{"no-digest": {""}},
		header: http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", off, last)}}})
	if err != nil {
		return nil, kv.Storage(op, k, err)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		defer resp.Body.Close()
		return readBody(op, k, resp, resp.ContentLength)
	case http.StatusRequestedRangeNotSatisfiable: // off is at or past the end
		resp.Body.Close()
		return []byte{}, nil
	case http.StatusOK: // the range was ignored: cut it out of the whole value
		defer resp.Body.Close()
		if _, err := io.CopyN(io.Discard, resp.Body, off); err == io.EOF {
			return []byte{}, nil
		} else if err != nil {
			return nil, kv.Storage(op, k, err)
		}
		return readBody(op, k, &http.Response{Body: io.NopCloser(io.LimitReader(resp.Body, length))}, -1)
	}
	return nil, responseError(op, k, resp)
}

// List returns the children of the dictionary k.
func (c *Client) List(k kv.Key) ([]kv.Entry, error) {
	var lb httpapi.ListBody
	if err := c.getJSON("list", k, httpapi.KeyPath(k), &lb, "list"); err != nil {
		return nil, err
	}
	if lb.Error != nil { // the listing failed after it had started
		return nil, apiError("list", k, httpapi.StatusCode(lb.Error.Code), *lb.Error)
	}
	out := make([]kv.Entry, 0, len(lb.Entries))
	for _, e := range lb.Entries {
		ek, ok := bodyKey(e.Key, e.KeyPct)
		var kind kv.Kind
		switch e.Kind {
		case "value":
			kind = kv.Value
		case "dictionary":
			kind = kv.Dictionary
		}
		if !ok || kind == kv.None {
			return nil, kv.Storage("list", k, fmt.Errorf("the server listed %s %q", e.Kind, e.Key))
		}
		out = append(out, kv.Entry{Key: ek, Kind: kind})
	}
	return out, nil
}

// Set binds k to v.
func (c *Client) Set(k kv.Key, v []byte) error {
	return c.SetFrom(k, bytes.NewReader(v), int64(len(v)))
}

// errEarlyEnd is what sizedBody returns when the caller's reader ends early.
var errEarlyEnd = errors.New("the reader ended early")

// sizedBody is the body of a PUT: exactly size bytes of r. It notes how r
// failed, if it did: the transport only reports that the request failed.
// The transport may go on reading the body after Do returns, so every Read
// holds mu and stop makes later ones fail without touching r.
type sizedBody struct {
	mu      sync.Mutex
	r       io.Reader
	size, n int64
	err     error // errEarlyEnd or r's error
	stopped bool
}

func (b *sizedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.stopped:
		return 0, errors.New("the request is over")
	case b.err != nil:
		return 0, b.err
	case b.n == b.size:
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.size-b.n)]
	n, err := b.r.Read(p)
	b.n += int64(n)
	switch {
	case b.n == b.size:
		return n, nil
	case err == io.EOF:
		b.err = errEarlyEnd
	case err != nil:
		b.err = err
	}
	return n, b.err
}

// stop ends the body's use of r and returns how r failed, if it did.
func (b *sizedBody) stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	return b.err
}

// SetFrom binds k to the next size bytes of r, streamed to the server.
func (c *Client) SetFrom(k kv.Key, r io.Reader, size int64) error {
	const op = "set"
	if c.closed.Load() {
		return kv.Closed(op, k)
	}
	if size < 0 {
		return kv.InvalidArgument(op, k, fmt.Sprintf("size %d", size))
	}
	body := &sizedBody{r: r, size: size}
	resp, err := c.do(request{method: http.MethodPut, path: httpapi.KeyPath(k), query: url.Values{"no-digest": {""}}, body: body, size: size})
	rerr := body.stop()
	switch {
	case rerr == errEarlyEnd:
		err = kv.InvalidArgument(op, k, fmt.Sprintf("the reader ended after %d of %d bytes", body.n, size))
	case rerr != nil:
		err = kv.Storage(op, k, rerr)
	case err != nil:
		return kv.Storage(op, k, err)
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusNoContent:
		resp.Body.Close()
		return nil
	default:
		return responseError(op, k, resp)
	}
	if resp != nil {
		resp.Body.Close()
	}
	return err
}

// expect sends rq for op on k and wants the status ok.
func (c *Client) expect(op string, k kv.Key, rq request, ok int) error {
	if c.closed.Load() {
		return kv.Closed(op, k)
	}
	resp, err := c.do(rq)
	if err != nil {
		return kv.Storage(op, k, err)
	}
	if resp.StatusCode != ok {
		return responseError(op, k, resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	return nil
}

// SetPartial writes v into the value bound to k at off.
func (c *Client) SetPartial(k kv.Key, off int64, v []byte) error {
	return c.expect("set_partial", k, request{method: http.MethodPatch, path: httpapi.KeyPath(k),
		query: url.Values{"offset": {strconv.FormatInt(off, 10)}}, body: bytes.NewReader(v), size: int64(len(v))}, http.StatusNoContent)
}

// Allocate binds the absent k to size zero bytes, with mtime unless it is
// zero.
func (c *Client) Allocate(k kv.Key, size int64, mtime time.Time) error {
	q := url.Values{"allocate": {strconv.FormatInt(size, 10)}}
	if !mtime.IsZero() {
		q.Set("mtime", mtime.Format(time.RFC3339Nano))
	}
	return c.expect("allocate", k, request{method: http.MethodPost, path: httpapi.KeyPath(k), query: q}, http.StatusCreated)
}

// Remove unbinds k and everything below it.
func (c *Client) Remove(k kv.Key) error {
	return c.expect("remove", k, request{method: http.MethodDelete, path: httpapi.KeyPath(k)}, http.StatusNoContent)
}

// Rename moves the binding of src to dst.
func (c *Client) Rename(src, dst kv.Key) error {
	return c.expect("rename", src, request{method: http.MethodPost, path: httpapi.KeyPath(src),
		query: url.Values{"rename-to": {dst.String()}}}, http.StatusNoContent)
}

// Free returns the server's free bytes.
func (c *Client) Free() (int64, error) {
	var st httpapi.Status
	if err := c.getJSON("free", kv.Root, "/v1/status", &st); err != nil {
		return 0, err
	}
	return st.Free, nil
}
