package httpapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
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
	// The common case, a path in canonical form ("/a/b": no empty
	// segment, no percent-encoding), is the key as it stands, parsed
	// without building it again. A key refused there is refused again by
	// parseKeySegments, in its words.
	if len(rest) > 1 && rest[0] == '/' && rest[len(rest)-1] != '/' &&
		strings.IndexByte(rest, '%') < 0 && !strings.Contains(rest, "//") {
		if k, err := kv.ParseKey(rest[1:]); err == nil && len(k.Path())+1 <= h.opts.MaxKeyLen {
			return k, nil
		}
	}
	return h.parseKeySegments(rest)
}

// parseKeySegments is parseKey segment by segment, for every path.
func (h *Handler) parseKeySegments(rest string) (kv.Key, *apiError) {
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
	if n := len(k.Path()) + 1; n > h.opts.MaxKeyLen { // len(k.String()), without building it
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
	c.key, c.hasKey = k, true
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

// readerDigest returns the SHA-256 of the value r reads: the reader's own
// when it knows it (the tar store's, from its index, with no read),
// else by reading it.
func readerDigest(r kv.Reader) ([]byte, error) {
	if d, ok := r.(interface{ Digest() ([]byte, error) }); ok {
		return d.Digest()
	}
	hh := sha256.New()
	if _, err := copyAhead(hh, r, 0, r.Size()); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}

// setValidators sets the headers that describe the current state.
func setValidators(c *call, v validators) {
	if v.etag != "" {
		c.setHeader("Etag", v.etag)
	}
	if !v.mtime.IsZero() {
		c.setHeader("Last-Modified", v.mtime.UTC().Format(http.TimeFormat))
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
	r, err := h.store.Open(c.key)
	if err != nil {
		if c.r.Method == http.MethodHead && errors.Is(err, kv.ErrValueExpected) {
			h.headDictionary(c)
			return
		}
		writeError(c.w, kvError(err))
		return
	}
	defer r.Close()
	v := validators{exists: true}
	if !fast {
		d, err := readerDigest(r)
		if err != nil {
			writeError(c.w, kvError(kv.Storage("get", c.key, err)))
			return
		}
		v.etag = ETag(d)
	}
	if lm, err := h.store.LastModified(c.key); err == nil {
		v.mtime = lm
	}
	size := r.Size()
	c.setHeader("X-Tarstore-Kind", "value")
	c.setHeader("X-Tarstore-Size", strconv.FormatInt(size, 10))
	setValidators(c, v)
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
	c.setHeader("Accept-Ranges", "bytes")
	rg, kind := byteRange{0, size}, rangeWhole
	if rh := c.r.Header.Get("Range"); rh != "" && useRange {
		if rg2, k := parseRange(rh, size); k != rangeWhole {
			rg, kind = rg2, k
		}
	}
	if kind == rangeUnsatisfiable {
		hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		writeError(c.w, newError(CodeRangeNotSatisfied, &c.key, fmt.Sprintf("Range not satisfiable: %q of %d bytes", c.r.Header.Get("Range"), size)))
		return
	}
	get := c.r.Method != http.MethodHead
	var inline *[]byte
	if get && rg.length <= sendChunk {
		bp, err := readInline(r, rg.start, rg.length)
		if err != nil {
			writeError(c.w, kvError(kv.Storage("get", c.key, err)))
			return
		}
		defer sendBuffers.Put(bp)
		inline = bp
	}
	if kind == rangeOne {
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rg.start, rg.start+rg.length-1, size))
	}
	setValueHeaders(c)
	c.setHeader("Content-Length", strconv.FormatInt(rg.length, 10))
	if kind == rangeOne {
		c.w.WriteHeader(http.StatusPartialContent)
	} else {
		c.w.WriteHeader(http.StatusOK)
	}
	if !get {
		return
	}
	dst := h.sendWriter(c)
	var n int64
	var err error
	if inline != nil {
		var w int
		w, err = dst.Write((*inline)[:rg.length])
		n = int64(w)
	} else {
		// A copy, so that dst stays on the stack for the inline write.
		d := dst
		n, err = copyAhead(&d, r, rg.start, rg.length)
	}
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
	setValidators(c, v)
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
	d, err := h.store.Digest(c.key)
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
//
// With ?list&recursive, Entries holds everything below the key, depth
// first: each dictionary is followed by what is below it, siblings sorted
// by key. The body is streamed as the store is walked (never held whole):
// a failure after the 200 has gone out ends the body with Error, after the
// entries sent so far, and a client must treat such a listing as failed.
type ListBody struct {
	Key     string       `json:"key"`
	KeyPct  string       `json:"key_pct,omitempty"`
	Entries []ListEntry  `json:"entries"`
	Error   *ErrorDetail `json:"error,omitempty"`
}

// ListEntry is one entry in a ListBody: its absolute key, its kind
// ("value" or "dictionary"), for values its size, and with ?list&long its
// last-modified time (kv's last_modified: for a dictionary the newest of
// its direct entries). An entry removed while it is listed has no size or
// time. When
// the key is not valid UTF-8, Key has U+FFFD in place of the bad bytes and
// KeyPct names it exactly ("/nu/%FF%FE", also its path under /v1/kv;
// ParsePctKey).
type ListEntry struct {
	Key          string     `json:"key"`
	KeyPct       string     `json:"key_pct,omitempty"`
	Kind         string     `json:"kind"`
	Size         *int64     `json:"size,omitempty"`
	LastModified *time.Time `json:"last_modified,omitempty"`
}

// listFlushEvery is how many entries a streamed listing sends at most
// before it flushes them to the connection.
const listFlushEvery = 256

func (h *Handler) list(c *call) {
	// The first level is read before the answer starts, so that a key that
	// cannot be listed gets its own status.
	entries, err := h.store.List(c.key)
	if err != nil {
		writeError(c.w, kvError(err))
		return
	}
	head, _ := json.Marshal(ListBody{Key: c.key.String(), KeyPct: keyPct(c.key)})
	// head is {"key":"/a","entries":null}: the entries go in place of null.
	head = bytes.TrimSuffix(head, []byte("null}"))
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	dst := h.sendWriter(c)
	lw := &listWriter{
		w:  bufio.NewWriterSize(&dst, 32<<10),
		rc: http.NewResponseController(c.w),
	}
	lw.w.Write(head)
	lw.w.WriteByte('[')
	err = h.listLevel(lw, entries, listOptions{recursive: c.q.Has("recursive"), long: c.q.Has("long")})
	lw.w.WriteByte(']')
	if err != nil {
		b, _ := json.Marshal(kvError(err).detail)
		lw.w.WriteString(`,"error":`)
		lw.w.Write(b)
	}
	lw.w.WriteString("}\n")
	lw.flush()
}

// listOptions are the query's choices of what a listing holds.
type listOptions struct {
	recursive bool // everything below, not only the direct children
	long      bool // each entry's last-modified time
}

// listLevel writes entries, and with o.recursive what is below each
// dictionary among them, depth first.
func (h *Handler) listLevel(lw *listWriter, entries []kv.Entry, o listOptions) error {
	return kv.Walk(h.store, entries, o.recursive, func(e kv.Entry) error {
		le := ListEntry{Key: e.Key.String(), KeyPct: keyPct(e.Key), Kind: e.Kind.String()}
		if e.Kind == kv.Value {
			if n, err := h.store.Size(e.Key); err == nil { // a value removed meanwhile has no size
				le.Size = &n
			}
		}
		if o.long {
			if t, err := h.store.LastModified(e.Key); err == nil {
				t = t.UTC()
				le.LastModified = &t
			}
		}
		return lw.entry(le)
	})
}

// listWriter writes the entries of a streamed listing.
type listWriter struct {
	w  *bufio.Writer
	rc *http.ResponseController
	n  int
}

// entry writes one entry; its error is the connection's (the client went
// away), which ends the listing.
func (lw *listWriter) entry(le ListEntry) error {
	if lw.n > 0 {
		lw.w.WriteByte(',')
	}
	b, err := json.Marshal(le)
	if err != nil {
		return err
	}
	if _, err := lw.w.Write(b); err != nil {
		return err
	}
	lw.n++
	if lw.n%listFlushEvery == 0 {
		return lw.flush()
	}
	return nil
}

// flush sends what is buffered to the client.
func (lw *listWriter) flush() error {
	if err := lw.w.Flush(); err != nil {
		return err
	}
	if err := lw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
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
		d, err := h.store.Digest(c.key)
		if err != nil {
			return kvError(err)
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
	size := c.r.ContentLength // -1: chunked (chunked.go)
	keys := []kv.Key{c.key}
	var stage kv.Key
	if size < 0 {
		stage = h.stageKey()
		keys = append(keys, stage)
	}
	w := h.co.lock(keys...)
	defer h.co.unlock(w)
	var stored []byte // the digest of the new value
	kind, ok := h.preconditions(c, w, true)
	if !ok {
		return
	}
	// ?no-digest: the client does not want the ETag, and the body is not
	// hashed (SHA-256 can be slower than the device); a later GET with an
	// ETag computes it.
	var sum hash.Hash
	if !c.q.Has("no-digest") {
		sum = sha256.New()
	}
	var e *apiError
	if size < 0 {
		size, stored, e = h.putChunked(c, stage, sum)
	} else {
		stored, e = h.putSized(c, size, sum)
	}
	if e != nil {
		writeError(c.w, e)
		return
	}
	h.metrics.bytesWritten.Add(size)
	if stored != nil {
		c.w.Header().Set("ETag", ETag(stored))
	}
	if kind == kv.None {
		c.w.Header().Set("Location", KeyPath(c.key))
		c.w.WriteHeader(http.StatusCreated)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// putSized stores c's body of size bytes (its Content-Length) at c.key,
// streamed, and returns its SHA-256 unless hash is nil.
func (h *Handler) putSized(c *call, size int64, hash hash.Hash) ([]byte, *apiError) {
	// A value larger than the free space (or than any device) is refused
	// before its body is read (a client sending Expect: 100-continue never
	// uploads it), in the store's own words, after the checks the store
	// makes first.
	if free, ok := h.freeSpace(); size > MaxValueSize || ok && size > free {
		return nil, kvError(RoomError(h.store, "set", c.key))
	}
	body := &bodyReader{r: c.r.Body, size: size, hash: hash}
	if err := h.store.SetFrom(c.key, body, size); err != nil {
		if errors.Is(body.err, ErrBodyTimeout) {
			return nil, timeoutError(c, "set", body.err)
		}
		if body.err != nil {
			return nil, invalidArgument("set", c.key, body.err.Error())
		}
		return nil, kvError(err)
	}
	if body.n != size || hash == nil {
		return nil, nil
	}
	return hash.Sum(nil), nil
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
	defer h.co.unlock(w)
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
	defer h.co.unlock(w)
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
	defer h.co.unlock(w)
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
	defer h.co.unlock(w)
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
	c.key, c.hasKey = s.key, true
	size := s.r.Size()
	c.w.Header().Set("X-Tarstore-Size", strconv.FormatInt(size, 10))
	h.sendValue(c, s.r, size, true)
}
