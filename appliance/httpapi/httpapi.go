package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/kv"
)

// Options configure a Handler.
type Options struct {
	Token    string                 // bearer token; "" = no authentication
	ReadOnly bool                   // refuse writes with 403 read_only
	Version  string                 // reported by /v1/status and /metrics
	Status   func() (Status, error) // for /v1/status; nil = only what the handler knows (version, free, read-only)
	MaxPatch int64                  // largest PATCH body (held in memory); 0 = 64 MiB
	// MaxKeyLen is the longest key accepted, in bytes of its string form;
	// 0 = kv.MaxKeyLen. It can only lower kv's limit.
	MaxKeyLen int
	Logger    *slog.Logger // nil = discard
	// AccessLog receives one record per request (access.go); nil = none.
	AccessLog *slog.Logger

	// ReaderTimeout is how long an idle reader session (POST ?open) lives;
	// 0 = DefaultReaderTimeout.
	ReaderTimeout time.Duration
	// MaxReaders bounds the open reader sessions; 0 = DefaultMaxReaders.
	MaxReaders int

	// BodyTimeout is the longest a request body may go without bringing a
	// byte, and a response without the client taking one (deadline.go);
	// 0 = DefaultBodyTimeout, negative = no deadline.
	BodyTimeout time.Duration
	// MinBodyRate is the average rate in bytes per second a request body
	// must keep once it has been arriving for BodyTimeout; 0 =
	// DefaultMinBodyRate, negative = no minimum.
	MinBodyRate int64

	// Check runs the store's check for POST /v1/check (check.go); nil =
	// the store has none (501 not_implemented). The appliance passes
	// kvtar's (appliance.CheckFunc).
	Check func() (CheckReport, error)
	// CheckPause is the least time between the end of a check and the
	// start of the next; 0 = only CheckPauseFactor times the check's
	// duration.
	CheckPause time.Duration

	// UploadPiece is the size of the pieces a chunked PUT is read and
	// staged in (chunked.go), the memory one such upload holds; 0 =
	// DefaultUploadPiece.
	UploadPiece int
	// TLS tells that clients reach the server over HTTPS: the console's
	// session cookie is then marked Secure.
	TLS bool

	// Shutdown, when set, makes POST /v1/shutdown stop the server
	// gracefully: the handler answers 202 and then calls it (the
	// appliance booted as PID 1 then flushes the store and powers off).
	// Nil: the route answers 501 not_implemented.
	Shutdown func()
}

// DefaultMaxPatch is the default Options.MaxPatch.
const DefaultMaxPatch = 64 << 20

// Handler serves the HTTP API v1 over a kv.RW. It is safe for concurrent
// use. See the package documentation.
type Handler struct {
	store     kv.RW
	opts      Options
	log       *slog.Logger
	tokenHash [sha256.Size]byte
	co        *coord
	readers   *readerTable
	metrics   *metrics
	checks    *checkGate

	uploadPrefix string        // of the chunked uploads' staging dictionaries
	uploads      atomic.Uint64 // chunked uploads so far
}

var _ http.Handler = (*Handler)(nil)

// New returns the API handler over store.
func New(store kv.RW, opts Options) *Handler {
	if opts.MaxPatch <= 0 {
		opts.MaxPatch = DefaultMaxPatch
	}
	if opts.MaxKeyLen <= 0 || opts.MaxKeyLen > kv.MaxKeyLen {
		opts.MaxKeyLen = kv.MaxKeyLen
	}
	if opts.ReaderTimeout <= 0 {
		opts.ReaderTimeout = DefaultReaderTimeout
	}
	if opts.MaxReaders <= 0 {
		opts.MaxReaders = DefaultMaxReaders
	}
	if opts.BodyTimeout == 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.MinBodyRate == 0 {
		opts.MinBodyRate = DefaultMinBodyRate
	}
	if opts.UploadPiece <= 0 {
		opts.UploadPiece = DefaultUploadPiece
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		store:     store,
		opts:      opts,
		log:       log,
		tokenHash: sha256.Sum256([]byte(opts.Token)),
		co:        newCoord(),
		readers:   newReaderTable(opts.ReaderTimeout, opts.MaxReaders),
		metrics:   newMetrics(),
		checks:    &checkGate{minPause: max(opts.CheckPause, 0)},

		uploadPrefix: newUploadPrefix(),
	}
}

// Close closes the reader sessions still open, so that the store can be
// closed without readers pinning it. It does not close the store. Requests
// after Close are still served.
func (h *Handler) Close() error {
	h.readers.closeAll()
	return nil
}

// call is one request being served.
type call struct {
	w   *statusRecorder // &rec
	rec statusRecorder  // in the call, so that a request makes one allocation for both
	r   *http.Request
	q   url.Values
	key kv.Key
	op  string // metrics label
	// hasKey: key is the request's (a /v1/kv or reader request).
	hasKey bool
	// hdrVals holds the values setHeader gives the response's headers, in
	// hdrBuf while they fit.
	hdrVals []string
	hdrBuf  [10]string
}

// setHeader sets the response header key to v, as http.Header.Set does,
// for a key already in canonical form ("Etag", "Content-Length", as
// http.CanonicalHeaderKey makes it): Set would canonicalise the key again
// and allocate a slice for each value, and a GET of a value sets nine
// headers (ten for a range). Here the values share an array in the call, which is
// allocated anyway; each header gets a slice of it with capacity 1, so
// that an Add to that header copies it rather than overwriting the next
// header's value.
func (c *call) setHeader(key, v string) {
	switch {
	case c.hdrVals == nil:
		c.hdrVals = c.hdrBuf[:0]
	case len(c.hdrVals) == cap(c.hdrVals):
		c.hdrVals = make([]string, 0, len(c.hdrBuf))
	}
	c.hdrVals = append(c.hdrVals, v)
	n := len(c.hdrVals)
	c.w.Header()[key] = c.hdrVals[n-1 : n : n]
}

// route is what a request path names.
type route int

const (
	routeUnknown route = iota
	routeHealth
	routeKV
	routeReader
	routeStatus
	routeMetrics
	routeCheck
	routeShutdown
	routeConsole // console.go
	routeStatic
	routeLogin
	routeLogout
)

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	r, body := h.guardBody(w, r)
	defer body.finish()
	c := &call{rec: statusRecorder{ResponseWriter: w}, r: r, op: "other"}
	c.w = &c.rec
	defer func() {
		d := time.Since(start)
		h.metrics.observe(c.op, c.w.code(), d)
		h.logRequest(c, d)
	}()

	path := r.URL.EscapedPath()
	rt, rest := classify(path)
	// The query is parsed once, for the metrics label and the route; most
	// requests have none, and a nil url.Values answers Has and Get alike.
	var q url.Values
	var qerr error
	if r.URL.RawQuery != "" {
		q, qerr = url.ParseQuery(r.URL.RawQuery)
	}
	c.op = opOf(rt, r, q)
	if rt == routeHealth {
		h.health(c)
		return
	}
	authorized := h.authorized(r)
	if qerr != nil && authorized {
		writeError(c.w, newError("invalid_argument", nil, "Invalid argument: query: "+qerr.Error()))
		return
	}
	c.q = q
	if rt.console() {
		h.serveConsole(c, rt, rest, authorized)
		return
	}
	if !authorized {
		writeError(c.w, newError(CodeUnauthorized, nil, "Missing or invalid bearer token"))
		return
	}
	switch rt {
	case routeKV:
		h.serveKV(c, rest)
	case routeReader:
		h.serveReader(c, strings.TrimPrefix(rest, "/"))
	case routeStatus:
		if h.methods(c, http.MethodGet, http.MethodHead) {
			h.serveStatus(c)
		}
	case routeMetrics:
		if h.methods(c, http.MethodGet, http.MethodHead) {
			c.w.Header().Set("Content-Type", metricsContentType)
			h.writeMetrics(c.w)
		}
	case routeCheck:
		h.serveCheck(c)
	case routeShutdown:
		h.serveShutdown(c)
	default:
		writeError(c.w, newError("not_found", nil, "Unknown path "+path))
	}
}

// classify splits an escaped path into its route and the rest.
func classify(path string) (route, string) {
	if rt, rest, ok := consoleRoute(path); ok {
		return rt, rest
	}
	switch path {
	case "/healthz":
		return routeHealth, ""
	case "/v1/status":
		return routeStatus, ""
	case "/metrics":
		return routeMetrics, ""
	case "/v1/check":
		return routeCheck, ""
	case "/v1/shutdown":
		return routeShutdown, ""
	}
	for _, p := range []struct {
		prefix string
		rt     route
	}{{"/v1/kv", routeKV}, {"/v1/readers", routeReader}} {
		if rest, ok := strings.CutPrefix(path, p.prefix); ok && (rest == "" || rest[0] == '/') {
			return p.rt, rest
		}
	}
	return routeUnknown, ""
}

// opOf is the metrics label of a request: the kv operation of a /v1/kv
// request ("get", "set", "exists" for HEAD, ...), else the route's name.
// q is the request's query, as far as it parses.
func opOf(rt route, r *http.Request, q url.Values) string {
	switch rt {
	case routeHealth:
		return "healthz"
	case routeStatus:
		return "status"
	case routeMetrics:
		return "metrics"
	case routeCheck:
		return "check"
	case routeShutdown:
		return "shutdown"
	case routeReader:
		if r.Method == http.MethodDelete {
			return "close_reader"
		}
		return "read"
	case routeKV:
		return kvOp(r, q)
	}
	if rt.console() {
		return "console"
	}
	return "other"
}

// authorized checks the bearer token in constant time (the comparison is of
// SHA-256 digests, so not even the token's length leaks), or the console's
// session cookie in its place (console.go).
func (h *Handler) authorized(r *http.Request) bool {
	if h.opts.Token == "" {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return sessionAllowed(r) && h.sessionToken(r)
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}

// methods reports whether c's method is one of allowed, and answers 405
// with an Allow header otherwise.
func (h *Handler) methods(c *call, allowed ...string) bool {
	for _, m := range allowed {
		if c.r.Method == m {
			return true
		}
	}
	c.w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(c.w, newError(CodeMethodNotAllowed, nil, fmt.Sprintf("Method %s not allowed; allowed: %s", c.r.Method, strings.Join(allowed, ", "))))
	return false
}

func (h *Handler) health(c *call) {
	if !h.methods(c, http.MethodGet, http.MethodHead) {
		return
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.Write([]byte("ok\n"))
}

// status returns the Status: Options.Status's, or what the handler knows.
func (h *Handler) status() (Status, error) {
	var st Status
	if h.opts.Status != nil {
		var err error
		if st, err = h.opts.Status(); err != nil {
			return Status{}, err
		}
	} else {
		free, err := h.store.Free()
		if err != nil {
			return Status{}, err
		}
		st.Free = free
	}
	if st.Version == "" {
		st.Version = h.opts.Version
	}
	st.ReadOnly = st.ReadOnly || h.opts.ReadOnly
	return st, nil
}

func (h *Handler) serveStatus(c *call) {
	st, err := h.status()
	if err != nil {
		writeError(c.w, kvError(err))
		return
	}
	writeJSON(c.w, http.StatusOK, st)
}

// serveShutdown answers POST /v1/shutdown: 202, then Options.Shutdown.
func (h *Handler) serveShutdown(c *call) {
	if !h.methods(c, http.MethodPost) {
		return
	}
	if h.opts.Shutdown == nil {
		writeError(c.w, newError(CodeNotImplemented, nil, "This server cannot be shut down over the API (only the appliance booted as PID 1 can)"))
		return
	}
	writeJSON(c.w, http.StatusAccepted, map[string]string{"status": "shutting down"})
	// The server's graceful shutdown waits for this response to be sent.
	go h.opts.Shutdown()
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, newError(CodeInternal, nil, err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
