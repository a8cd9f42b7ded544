package httpapi

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tarstore/tarstore/kv"
)

// KeyPath is the path of k under the API: "/v1/kv" followed by each segment,
// percent-encoded, after a "/" ("/v1/kv/a/b%20c"; "/v1/kv/" for the root).
func KeyPath(k kv.Key) string {
	segs := k.Segments()
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/v1/kv/" + strings.Join(segs, "/")
}

// parseKey decodes the key of a /v1/kv request from rest, what follows
// "/v1/kv" in the escaped path: empty segments are dropped, as kv.ParseKey
// does, and each other segment is percent-decoded on its own, so an encoded
// "/" (%2F) cannot split a segment and an encoded ".." (%2e%2e) is still
// "..", which kv refuses.
func (h *Handler) parseKey(rest string) (kv.Key, *apiError) {
	if len(rest) > 4*h.opts.MaxKeyLen+16 {
		return kv.Root, newError("invalid_key", nil, fmt.Sprintf("Invalid key: path of %d bytes is too long", len(rest)))
	}
	var segs []string
	for _, s := range strings.Split(rest, "/") {
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return kv.Root, newError("invalid_key", nil, fmt.Sprintf("Invalid key: bad percent-encoding in %q", s))
		}
		if strings.Contains(d, "/") {
			return kv.Root, newError("invalid_key", nil, fmt.Sprintf("Invalid key: segment %q contains '/'", d))
		}
		segs = append(segs, d)
	}
	return h.checkKey("/" + strings.Join(segs, "/"))
}

// checkKey parses s as a key and applies Options.MaxKeyLen.
func (h *Handler) checkKey(s string) (kv.Key, *apiError) {
	k, err := kv.ParseKey(s)
	if err != nil {
		var ke *kv.Error
		msg := err.Error()
		if errors.As(err, &ke) {
			msg = ke.Message()
		}
		return kv.Root, newError("invalid_key", nil, msg)
	}
	if n := len(k.String()); n > h.opts.MaxKeyLen {
		return kv.Root, newError("invalid_key", nil, fmt.Sprintf("Invalid key: key of %d bytes is longer than %d", n, h.opts.MaxKeyLen))
	}
	return k, nil
}

// kvOp is the metrics label of a /v1/kv request.
func kvOp(r *http.Request, q url.Values) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case q.Has("list"):
			return "list"
		case r.Method == http.MethodHead:
			return "exists"
		case r.Header.Get("Range") != "":
			return "get_partial"
		}
		return "get"
	case http.MethodPut:
		return "set"
	case http.MethodPatch:
		return "set_partial"
	case http.MethodDelete:
		return "remove"
	case http.MethodPost:
		switch {
		case q.Has("allocate"):
			return "allocate"
		case q.Has("rename-to"):
			return "rename"
		case q.Has("open"):
			return "open"
		}
	}
	return "other"
}

var kvMethods = []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodDelete}

func (h *Handler) serveKV(c *call, rest string) {
	if !h.methods(c, kvMethods...) {
		return
	}
	k, e := h.parseKey(rest)
	if e != nil {
		writeError(c.w, e)
		return
	}
	c.key = k
	switch c.r.Method {
	case http.MethodGet, http.MethodHead:
		h.get(c)
	case http.MethodPut:
		h.put(c)
	case http.MethodPatch:
		h.patch(c)
	case http.MethodPost:
		h.post(c)
	case http.MethodDelete:
		h.remove(c)
	}
}

// hashReader returns the SHA-256 of the value r reads.
func hashReader(r kv.Reader) ([]byte, error) {
	hh := sha256.New()
	if _, err := copyAhead(hh, r, 0, r.Size()); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}

// digest returns the digest of k (value or dictionary), from the cache
// when it holds it.
func (h *Handler) digest(k kv.Key) ([]byte, error) {
	comp := h.co.begin(k)
	if d, ok := h.co.cached(comp); ok {
		h.co.finish(comp, nil)
		return d, nil
	}
	d, err := h.store.Digest(k)
	if err != nil {
		h.co.finish(comp, nil)
		return nil, err
	}
	h.co.finish(comp, d)
	return d, nil
}

// setValidators sets the headers that describe the current state.
func setValidators(hdr http.Header, v validators) {
	if v.etag != "" {
		hdr.Set("ETag", v.etag)
	}
	if !v.mtime.IsZero() {
		hdr.Set("Last-Modified", v.mtime.UTC().Format(http.TimeFormat))
	}
}

// get serves GET and HEAD of a key.
func (h *Handler) get(c *call) {
	if c.q.Has("list") {
		h.list(c)
		return
	}
	// ?no-digest: the client does not want the ETag, which costs a read of
	// the whole value (or subtree) when it is not cached.
	fast := c.q.Has("no-digest") && !needsETag(c.r)
	if c.r.Method == http.MethodHead && fast {
		h.headFast(c)
		return
	}
	comp := h.co.begin(c.key)
	r, err := h.store.Open(c.key)
	if err != nil {
		h.co.finish(comp, nil)
		if c.r.Method == http.MethodHead && errors.Is(err, kv.ErrValueExpected) {
			h.headDictionary(c)
			return
		}
		writeError(c.w, kvError(err))
		return
	}
	defer r.Close()
	v := validators{exists: true}
	if fast {
		h.co.finish(comp, nil)
	} else {
		d, ok := h.co.cached(comp)
		if !ok {
			if d, err = hashReader(r); err != nil {
				h.co.finish(comp, nil)
				writeError(c.w, kvError(kv.Storage("get", c.key, err)))
				return
			}
		}
		h.co.finish(comp, d)
		v.etag = ETag(d)
	}
	if lm, err := h.store.LastModified(c.key); err == nil {
		v.mtime = lm
	}
	size := r.Size()
	hdr := c.w.Header()
	hdr.Set("X-Tarstore-Kind", "value")
	hdr.Set("X-Tarstore-Size", strconv.FormatInt(size, 10))
	setValidators(hdr, v)
	switch status, why := preconditions(c.r, v); status {
	case http.StatusNotModified:
		c.w.WriteHeader(status)
		return
	case http.StatusPreconditionFailed:
		writeError(c.w, newError(CodePreconditionFailed, &c.key, "Precondition failed on "+c.key.String()+": "+why))
		return
	}
	h.sendValue(c, r, size, ifRange(c.r, v))
}

// sendValue answers with the value r of size bytes, or the part of it the
// Range header asks for when useRange.
func (h *Handler) sendValue(c *call, r io.ReaderAt, size int64, useRange bool) {
	hdr := c.w.Header()
	hdr.Set("Accept-Ranges", "bytes")
	rg, kind := byteRange{0, size}, rangeWhole
	if rh := c.r.Header.Get("Range"); rh != "" && useRange {
		if rg2, k := parseRange(rh, size); k != rangeWhole {
			rg, kind = rg2, k
		}
	}
	switch kind {
	case rangeUnsatisfiable:
		hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		writeError(c.w, newError(CodeRangeNotSatisfied, &c.key, fmt.Sprintf("Range not satisfiable: %q of %d bytes", c.r.Header.Get("Range"), size)))
		return
	case rangeOne:
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rg.start, rg.start+rg.length-1, size))
	}
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.FormatInt(rg.length, 10))
	if kind == rangeOne {
		c.w.WriteHeader(http.StatusPartialContent)
	} else {
		c.w.WriteHeader(http.StatusOK)
	}
	if c.r.Method == http.MethodHead {
		return
	}
	var dst io.Writer = c.w
	if h.opts.BodyTimeout > 0 {
		dst = &sendWriter{w: c.w, rc: http.NewResponseController(c.w), idle: h.opts.BodyTimeout}
	}
	n, err := copyAhead(dst, r, rg.start, rg.length)
	h.metrics.bytesRead.Add(n)
	if err != nil {
		// The status is sent: the connection is closed short of the
		// Content-Length, which the client sees as a truncated body.
		h.log.Warn("sending a value failed", "key", c.key.String(), "sent", n, "of", rg.length, "err", err)
	}
}

// headFast answers HEAD ?no-digest: kind, size and Last-Modified, no ETag.
func (h *Handler) headFast(c *call) {
	kind, err := h.store.Exists(c.key)
	if err != nil {
		writeError(c.w, kvError(err))
		return
	}
	hdr := c.w.Header()
	switch kind {
	case kv.None:
		writeError(c.w, kvError(kv.NotFound("exists", c.key)))
		return
	case kv.Value:
		size, err := h.store.Size(c.key)
		if err != nil {
			writeError(c.w, kvError(err))
			return
		}
		hdr.Set("X-Tarstore-Size", strconv.FormatInt(size, 10))
		hdr.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	hdr.Set("X-Tarstore-Kind", kind.String())
	v := validators{exists: true}
	lm, err := h.store.LastModified(c.key)
	if err != nil {
		// Changed since Exists (a concurrent remove): answer as it is now.
		writeError(c.w, kvError(kv.WithOp(err, "exists")))
		return
	}
	v.mtime = lm
	h.answerHead(c, v)
}

// answerHead sets the validators of a HEAD answer and answers it: 200, or
// what the request's conditions make of it (304, 412).
func (h *Handler) answerHead(c *call, v validators) {
	setValidators(c.w.Header(), v)
	if status, why := preconditions(c.r, v); status != 0 {
		if status == http.StatusNotModified {
			c.w.WriteHeader(status)
			return
		}
		writeError(c.w, newError(CodePreconditionFailed, &c.key, "Precondition failed on "+c.key.String()+": "+why))
		return
	}
	c.w.WriteHeader(http.StatusOK)
}

// headDictionary answers HEAD of a dictionary: its kind, digest and
// Last-Modified.
func (h *Handler) headDictionary(c *call) {
	d, err := h.digest(c.key)
	if err != nil {
		writeError(c.w, kvError(kv.WithOp(err, "exists")))
		return
	}
	v := validators{exists: true, etag: ETag(d)}
	lm, err := h.store.LastModified(c.key)
	if err != nil {
		writeError(c.w, kvError(kv.WithOp(err, "exists")))
		return
	}
	v.mtime = lm
	hdr := c.w.Header()
	hdr.Set("X-Tarstore-Kind", kv.Dictionary.String())
	h.answerHead(c, v)
}

// ListBody is the JSON body of GET /v1/kv/{key}?list. KeyPct is the
// listed key percent-encoded when it is not valid UTF-8 (keys.go).
type ListBody struct {
	Key     string      `json:"key"`
	KeyPct  string      `json:"key_pct,omitempty"`
	Entries []ListEntry `json:"entries"`
}

// ListEntry is one child in a ListBody: its absolute key, its kind
// ("value" or "dictionary") and, for values, its size. When the key is not
// valid UTF-8, Key has U+FFFD in place of the bad bytes and KeyPct names it
// exactly ("/nu/%FF%FE", also its path under /v1/kv; ParsePctKey).
type ListEntry struct {
	Key    string `json:"key"`
	KeyPct string `json:"key_pct,omitempty"`
	Kind   string `json:"kind"`
	Size   *int64 `json:"size,omitempty"`
}

func (h *Handler) list(c *call) {
	entries, err := h.store.List(c.key)
	if err != nil {
		writeError(c.w, kvError(err))
		return
	}
	body := ListBody{Key: c.key.String(), KeyPct: keyPct(c.key), Entries: make([]ListEntry, 0, len(entries))}
	for _, e := range entries {
		le := ListEntry{Key: e.Key.String(), KeyPct: keyPct(e.Key), Kind: e.Kind.String()}
		if e.Kind == kv.Value {
			if n, err := h.store.Size(e.Key); err == nil { // a value removed meanwhile has no size
				le.Size = &n
			}
		}
		body.Entries = append(body.Entries, le)
	}
	writeJSON(c.w, http.StatusOK, body)
}

// newKey refuses a write of op that would bind k when k is not valid UTF-8
// (CheckNewKey).
func (h *Handler) newKey(c *call, op string, k kv.Key) bool {
	if err := CheckNewKey(op, k); err != nil {
		writeError(c.w, kvError(err))
		return false
	}
	return true
}

// writable refuses writes on a read-only handler.
func (h *Handler) writable(c *call, op string) bool {
	if h.opts.ReadOnly {
		writeError(c.w, kvError(kv.ReadOnly(op, c.key)))
		return false
	}
	return true
}

// checkWrite evaluates the preconditions of a write of c.key, whose kind is
// kind, under the write lock w.
func (h *Handler) checkWrite(c *call, w *writeLock, kind kv.Kind) *apiError {
	if !hasPreconditions(c.r) {
		return nil
	}
	v := validators{exists: kind != kv.None}
	if v.exists && needsETag(c.r) {
		d, ok := h.co.cachedUnder(w, c.key)
		if !ok {
			var err error
			if d, err = h.store.Digest(c.key); err != nil {
				return kvError(err)
			}
		}
		v.etag = ETag(d)
	}
	if v.exists && c.r.Header.Get("If-Unmodified-Since") != "" {
		if lm, err := h.store.LastModified(c.key); err == nil {
			v.mtime = lm
		}
	}
	if status, why := preconditions(c.r, v); status != 0 {
		return newError(CodePreconditionFailed, &c.key, "Precondition failed on "+c.key.String()+": "+why)
	}
	return nil
}

// kindForWrite is the kind of c.key when the write needs it (PUT always,
// other writes only for preconditions).
func (h *Handler) kindForWrite(c *call, always bool) (kv.Kind, *apiError) {
	if !always && !hasPreconditions(c.r) {
		return kv.None, nil
	}
	kind, err := h.store.Exists(c.key)
	if err != nil {
		return kv.None, kvError(err)
	}
	return kind, nil
}

// preconditions checks the request's conditions (If-Match, If-None-Match)
// against the key's current binding, under the write lock w, and answers
// the request with an error when they fail. It returns the key's kind when
// it looked it up (always, or because a condition needed it).
func (h *Handler) preconditions(c *call, w *writeLock, always bool) (kv.Kind, bool) {
	kind, e := h.kindForWrite(c, always)
	if e == nil {
		e = h.checkWrite(c, w, kind)
	}
	if e != nil {
		writeError(c.w, e)
		return kind, false
	}
	return kind, true
}

// capacity is the most a value can ever take: the device's capacity from
// Options.Status, else the free space, if it is known.
func (h *Handler) capacity() (int64, bool) {
	if h.opts.Status != nil {
		if st, err := h.opts.Status(); err == nil && st.Capacity > 0 {
			return st.Capacity, true
		}
	}
	return h.freeSpace()
}

// freeSpace is the store's free space, if it is known.
func (h *Handler) freeSpace() (int64, bool) {
	if h.opts.Status != nil {
		st, err := h.opts.Status()
		return st.Free, err == nil
	}
	n, err := h.store.Free()
	return n, err == nil
}

// bodyReader reads a PUT body for the store: it hashes what it reads
// (unless hash is nil), counts it, and turns an early end (io.ErrUnexpectedEOF from net/http) into
// io.EOF, so that the store reports invalid_argument, as it does for any
// reader that ends early. Any failure of the body is kept in err.
type bodyReader struct {
	r    io.Reader
	size int64
	n    int64
	hash hash.Hash
	err  error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.hash != nil {
		b.hash.Write(p[:n])
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if b.n < b.size {
			b.err = fmt.Errorf("the request body ended after %d of %d bytes", b.n, b.size)
		}
		err = io.EOF
	default:
		b.err = fmt.Errorf("reading the request body: %w", err)
	}
	return n, err
}

func (h *Handler) put(c *call) {
	if !h.writable(c, "set") || !h.newKey(c, "set", c.key) {
		return
	}
	size := c.r.ContentLength
	if size < 0 {
		e := invalidArgument("set", c.key, "a PUT needs a Content-Length")
		e.status = http.StatusLengthRequired
		writeError(c.w, e)
		return
	}
	w := h.co.lock(c.key)
	var stored []byte // the digest of the new value
	defer func() { h.co.unlock(w, c.key, stored) }()
	kind, ok := h.preconditions(c, w, true)
	if !ok {
		return
	}
	// A value larger than the free space (or than any device) is refused
	// before its body is read (a client sending Expect: 100-continue never
	// uploads it), in the store's own words, after the checks the store
	// makes first.
	if free, ok := h.freeSpace(); size > MaxValueSize || ok && size > free {
		writeError(c.w, kvError(RoomError(h.store, "set", c.key)))
		return
	}
	// ?no-digest: the client does not want the ETag, and the body is not
	// hashed (SHA-256 can be slower than the device); a later GET with an
	// ETag computes it.
	body := &bodyReader{r: c.r.Body, size: size}
	if !c.q.Has("no-digest") {
		body.hash = sha256.New()
	}
	if err := h.store.SetFrom(c.key, body, size); err != nil {
		if errors.Is(body.err, ErrBodyTimeout) {
			writeError(c.w, timeoutError(c, "set", body.err))
			return
		}
		if body.err != nil {
			writeError(c.w, invalidArgument("set", c.key, body.err.Error()))
			return
		}
		writeError(c.w, kvError(err))
		return
	}
	h.metrics.bytesWritten.Add(size)
	if body.n == size && body.hash != nil {
		stored = body.hash.Sum(nil)
		c.w.Header().Set("ETag", ETag(stored))
	}
	if kind == kv.None {
		c.w.Header().Set("Location", KeyPath(c.key))
		c.w.WriteHeader(http.StatusCreated)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) patch(c *call) {
	if !h.writable(c, "set_partial") || !h.newKey(c, "set_partial", c.key) {
		return
	}
	if !c.q.Has("offset") {
		writeError(c.w, invalidArgument("set_partial", c.key, "PATCH needs ?offset=N"))
		return
	}
	// A negative offset is the store's to refuse, in its words; one past
	// MaxValueSize is past the end of every value, and appends as
	// MaxValueSize does, without overflowing offset + length.
	off, err := strconv.ParseInt(c.q.Get("offset"), 10, 64)
	if err != nil {
		writeError(c.w, invalidArgument("set_partial", c.key, fmt.Sprintf("offset %q is not an integer", c.q.Get("offset"))))
		return
	}
	off = min(off, MaxValueSize)
	max := h.opts.MaxPatch
	tooLarge := newError(CodeTooLarge, &c.key, fmt.Sprintf("A PATCH body may hold at most %d bytes", max))
	if c.r.ContentLength > max {
		writeError(c.w, tooLarge)
		return
	}
	data, err := io.ReadAll(io.LimitReader(c.r.Body, max+1))
	switch {
	case errors.Is(err, ErrBodyTimeout):
		writeError(c.w, timeoutError(c, "set_partial", err))
		return
	case err != nil:
		writeError(c.w, invalidArgument("set_partial", c.key, "reading the request body: "+err.Error()))
		return
	case int64(len(data)) > max:
		writeError(c.w, tooLarge)
		return
	}
	w := h.co.lock(c.key)
	defer h.co.unlock(w, c.key, nil)
	if _, ok := h.preconditions(c, w, false); !ok {
		return
	}
	if err := h.store.SetPartial(c.key, off, data); err != nil {
		writeError(c.w, kvError(err))
		return
	}
	h.metrics.bytesWritten.Add(int64(len(data)))
	c.w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) post(c *call) {
	n := 0
	for _, p := range []string{"allocate", "rename-to", "open"} {
		if c.q.Has(p) {
			n++
		}
	}
	if n != 1 {
		writeError(c.w, invalidArgument("post", c.key, "POST needs exactly one of ?allocate=SIZE, ?rename-to=KEY, ?open"))
		return
	}
	switch {
	case c.q.Has("open"):
		h.open(c)
	case c.q.Has("allocate"):
		h.allocate(c)
	default:
		h.rename(c)
	}
}

func (h *Handler) allocate(c *call) {
	if !h.writable(c, "allocate") || !h.newKey(c, "allocate", c.key) {
		return
	}
	// A negative size is the store's to refuse, in its words.
	arg, neg := strings.CutPrefix(c.q.Get("allocate"), "-")
	size, err := ParseSize(arg)
	if neg {
		size = -size
	}
	if err != nil {
		writeError(c.w, invalidArgument("allocate", c.key, err.Error()))
		return
	}
	var mtime time.Time
	if s := c.q.Get("mtime"); s != "" {
		if mtime, err = time.Parse(time.RFC3339Nano, s); err != nil {
			writeError(c.w, invalidArgument("allocate", c.key, fmt.Sprintf("mtime %q is not an RFC 3339 time", s)))
			return
		}
	}
	w := h.co.lock(c.key)
	defer h.co.unlock(w, c.key, nil)
	if _, ok := h.preconditions(c, w, false); !ok {
		return
	}
	// A size larger than the device can ever hold is no_space without
	// handing it to the store (whose arithmetic on it could overflow).
	if limit, ok := h.capacity(); size > MaxValueSize || ok && size > limit {
		writeError(c.w, kvError(RoomError(h.store, "allocate", c.key)))
		return
	}
	if err := h.store.Allocate(c.key, size, mtime); err != nil {
		writeError(c.w, kvError(err))
		return
	}
	c.w.Header().Set("Location", KeyPath(c.key))
	c.w.WriteHeader(http.StatusCreated)
}

func (h *Handler) rename(c *call) {
	if !h.writable(c, "rename") {
		return
	}
	dst, e := h.checkKey(c.q.Get("rename-to"))
	if e != nil {
		writeError(c.w, e)
		return
	}
	if !h.newKey(c, "rename", dst) {
		return
	}
	w := h.co.lock(c.key, dst)
	defer h.co.unlock(w, c.key, nil)
	if _, ok := h.preconditions(c, w, false); !ok {
		return
	}
	if err := h.store.Rename(c.key, dst); err != nil {
		writeError(c.w, kvError(err))
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) remove(c *call) {
	if !h.writable(c, "remove") {
		return
	}
	w := h.co.lock(c.key)
	defer h.co.unlock(w, c.key, nil)
	if _, ok := h.preconditions(c, w, false); !ok {
		return
	}
	if err := h.store.Remove(c.key); err != nil {
		writeError(c.w, kvError(err))
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// open starts a reader session over a snapshot of the value.
func (h *Handler) open(c *call) {
	r, err := h.store.Open(c.key)
	if err != nil {
		writeError(c.w, kvError(err))
		return
	}
	id, ok := h.readers.add(c.key, r)
	if !ok {
		r.Close()
		writeError(c.w, newError(CodeTooManyReaders, &c.key, fmt.Sprintf("%d readers are open; close some", h.opts.MaxReaders)))
		return
	}
	c.w.Header().Set("Location", "/v1/readers/"+id)
	writeJSON(c.w, http.StatusCreated, ReaderBody{ID: id, Key: c.key.String(), KeyPct: keyPct(c.key), Size: r.Size()})
}

// serveReader serves /v1/readers/{id}: GET (with Range) and HEAD read the
// snapshot, DELETE closes it.
func (h *Handler) serveReader(c *call, id string) {
	if !h.methods(c, http.MethodGet, http.MethodHead, http.MethodDelete) {
		return
	}
	gone := newError(CodeReaderGone, nil, fmt.Sprintf("No open reader %q: it was closed or expired", id))
	if id == "" || strings.Contains(id, "/") {
		writeError(c.w, gone)
		return
	}
	if c.r.Method == http.MethodDelete {
		if !h.readers.remove(id) {
			writeError(c.w, gone)
			return
		}
		c.w.WriteHeader(http.StatusNoContent)
		return
	}
	s, ok := h.readers.acquire(id)
	if !ok {
		writeError(c.w, gone)
		return
	}
	defer h.readers.release(s)
	c.key = s.key
	size := s.r.Size()
	c.w.Header().Set("X-Tarstore-Size", strconv.FormatInt(size, 10))
	h.sendValue(c, s.r, size, true)
}
