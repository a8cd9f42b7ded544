// Package client is a kv.RW over tarstore's HTTP API v1 (SPEC §6, package
// appliance/httpapi): the store a CLI or program uses through a running
// server (`--remote URL`), with the same semantics and the same errors as
// the store embedded.
//
// # Mapping
//
//	Exists, Size, LastModified     HEAD /v1/kv/{key}?no-digest   (X-Tarstore-Kind, Content-Length, Last-Modified)
//	Digest                         HEAD /v1/kv/{key}             (ETag: the hex digest)
//	Get                            GET  /v1/kv/{key}?no-digest
//	GetPartial                     GET  /v1/kv/{key}?no-digest with Range (416 → empty); length 0 → HEAD
//	Open                           POST /v1/kv/{key}?open, then GET /v1/readers/{id} with Range, DELETE to close
//	List                           GET  /v1/kv/{key}?list
//	Set, SetFrom                   PUT  /v1/kv/{key}?no-digest   (streamed, Content-Length = size)
//	SetPartial                     PATCH /v1/kv/{key}?offset=N
//	Allocate                       POST /v1/kv/{key}?allocate=N[&mtime=RFC3339]
//	Rename                         POST /v1/kv/{src}?rename-to={dst}
//	Remove                         DELETE /v1/kv/{key}
//	Free, Status                   GET  /v1/status
//	Check                          POST /v1/check
//
// Keys that are not UTF-8 travel exactly: in paths percent-encoded, and in
// JSON bodies through the key_pct and dest_pct fields (httpapi's "Keys that
// are not UTF-8"), which List and the errors use when they are there.
//
// ?no-digest asks the server not to compute the ETag, which costs a read
// of the whole value (or subtree) when the server has not cached it; on
// PUT, not to hash the body, which can take longer than storing it.
//
// # Errors
//
// Every error is a *kv.Error with the method's operation (as the kvtest
// suite fixes them: Open reports "get", SetFrom "set", Free the root) and
// the key the server's error body names, wrapping the sentinel of the
// body's code, so errors.Is(err, kv.ErrNotFound) works and the message is
// the embedded store's. Responses without a kv code (401, 413, a reader
// session gone, a body that is not the API's) and transport failures are
// kv.ErrStorage, with a *ServerError or the transport error as the cause;
// errors.Is(err, ErrUnauthorized) tells a refused token (401) and
// errors.Is(err, ErrUnreachable) a server that could not be reached.
// After Close every method fails with kv.ErrClosed without a request.
//
// # Precision and snapshots
//
// Modification times travel as HTTP dates, so LastModified has whole
// seconds. Open's Reader is a true snapshot, as kv.Reader requires: the
// server keeps a kv.Reader open for it (a reader session, closed by the
// Reader's Close or after the server's idle timeout), so the bytes read do
// not change when the key is replaced, removed or renamed. Sequential reads
// are served from a read-ahead window of up to 8 MiB.
package client

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// Options configure a Client.
type Options struct {
	Token      string       // bearer token; "" sends none
	HTTPClient *http.Client // nil = a client of this package's own (transport.go)
	// TLS configures the client's own transport for https:// servers
	// (CAConfig trusts a given CA); nil = Go's defaults, the system's
	// roots. Unused with HTTPClient.
	TLS *tls.Config
}

// Client is a kv.RW served by a tarstore server. It is safe for concurrent
// use.
type Client struct {
	base   string // scheme://host[:port][/prefix], without a trailing slash
	token  string
	hc     *http.Client
	closed atomic.Bool
}

var _ kv.RW = (*Client)(nil)

// New returns a client of the server at baseURL ("http://127.0.0.1:7070";
// a path prefix is kept, for servers behind a proxy). It makes no request.
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, &kv.Error{Op: "connect", Err: kv.ErrInvalidArgument,
			Detail: fmt.Sprintf("%q is not a server URL like http://127.0.0.1:7070", baseURL)}
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: newTransport(opts.TLS)}
	}
	return &Client{base: strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), token: opts.Token, hc: hc}, nil
}

// Close releases the client's idle connections. Later calls fail with
// kv.ErrClosed; Close is idempotent. It does not close the server's store.
func (c *Client) Close() error {
	if !c.closed.Swap(true) {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// Status returns the server's status (GET /v1/status).
func (c *Client) Status() (httpapi.Status, error) {
	var st httpapi.Status
	err := c.getJSON("status", kv.Root, "/v1/status", &st)
	return st, err
}

// ServerError is the cause of a kv.ErrStorage error for a response that
// carries no kv error code: its status, and the code and message of its
// body when it has an API error body.
type ServerError struct {
	StatusCode int
	Code       string // e.g. "unauthorized", "too_large", "reader_gone"; "" without an error body
	Message    string
	// RetryAfter is the response's Retry-After in seconds (429
	// rate_limited, 503 overloaded), 0 when it has none.
	RetryAfter time.Duration
}

func (e *ServerError) Error() string {
	s := fmt.Sprintf("server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// ErrUnauthorized is matched (errors.Is) by the error of a request the
// server refused for a missing or wrong token.
var ErrUnauthorized = errors.New("unauthorized")

// Is makes errors.Is(err, ErrUnauthorized) true for 401 responses.
func (e *ServerError) Is(target error) bool {
	return target == ErrUnauthorized && e.StatusCode == http.StatusUnauthorized
}

// ErrUnreachable is matched (errors.Is) by the error of a request that
// found no server at the URL: the connection could not be made (refused,
// no route, the name does not resolve). A connection that fails later is
// a storage error only.
var ErrUnreachable = errors.New("unreachable")

// UnreachableError is the cause of a kv.ErrStorage error when no server
// answers at URL.
type UnreachableError struct {
	URL string // the server's base URL
	Err error  // the transport's error
}

func (e *UnreachableError) Error() string {
	msg := e.Err.Error()
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(e.Err, &op):
		msg = op.Error()
	case errors.As(e.Err, &dns):
		msg = dns.Error()
	}
	return "no server answers at " + e.URL + " (" + msg + ")"
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// unreachable reports whether err, from http.Client.Do, failed before a
// connection was made.
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial")
}

// sentinels are the kv errors by code.
var sentinels = map[string]error{}

func init() {
	for _, s := range []error{kv.ErrNotFound, kv.ErrValueExpected, kv.ErrDictionaryExpected, kv.ErrNoSpace,
		kv.ErrAlreadyPresent, kv.ErrRenameSourcePrefix, kv.ErrStorage, kv.ErrInvalidKey, kv.ErrInvalidArgument,
		kv.ErrReadOnly, kv.ErrClosed, kv.ErrCorrupt} {
		sentinels[s.Error()] = s
	}
}

// request is one API request.
type request struct {
	method string
	path   string // escaped, from the API root: "/v1/kv/a/b"
	query  url.Values
	header http.Header
	body   io.Reader // nil for none
	size   int64     // body length
}

// do sends rq. Its error is a transport failure.
func (c *Client) do(rq request) (*http.Response, error) {
	u := c.base + rq.path
	if len(rq.query) > 0 {
		u += "?" + encodeQuery(rq.query)
	}
	body := rq.body
	if body == nil || rq.size == 0 {
		body = http.NoBody
	}
	req, err := http.NewRequest(rq.method, u, body)
	if err != nil {
		return nil, err
	}
	if body != http.NoBody {
		req.ContentLength = rq.size
		if rq.size >= expectContinueSize {
			// Let the server refuse (no_space, a conflict) before the
			// body is sent.
			req.Header.Set("Expect", "100-continue")
		}
	}
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil && unreachable(err) {
		return nil, &UnreachableError{URL: c.base, Err: err}
	}
	return resp, err
}

// expectContinueSize is the body size from which requests ask for
// 100 Continue.
const expectContinueSize = 64 << 10

// encodeQuery is url.Values.Encode, but flags without a value are sent
// bare ("?list", not "?list=").
func encodeQuery(q url.Values) string {
	var parts []string
	for _, kv := range strings.Split(q.Encode(), "&") {
		parts = append(parts, strings.TrimSuffix(kv, "="))
	}
	return strings.Join(parts, "&")
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// responseError turns a failed response of op on k into a *kv.Error. It
// reads and closes the body.
func responseError(op string, k kv.Key, resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb httpapi.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" {
		// A HEAD response, or a body that is not the API's: the code
		// header, or the status, tells what it is.
		eb.Error.Code = resp.Header.Get(httpapi.HeaderError)
		if eb.Error.Code == "" && resp.StatusCode == http.StatusNotFound && resp.Request.Method == http.MethodHead {
			eb.Error.Code = "not_found"
		}
		if eb.Error.Code == "" {
			eb.Error.Message = strings.TrimSpace(string(bytes.ToValidUTF8(b, nil)))
		}
	}
	err := apiError(op, k, resp.StatusCode, eb.Error)
	var se *ServerError
	if errors.As(err, &se) {
		if n, perr := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64); perr == nil && n > 0 && n < 1<<31 {
			se.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return err
}

// apiError builds the *kv.Error of an error body d received with status.
func apiError(op string, k kv.Key, status int, d httpapi.ErrorDetail) error {
	sentinel, ok := sentinels[d.Code]
	if !ok {
		if d.Code == httpapi.CodeTooLarge {
			return &kv.Error{Op: op, Key: k, Err: kv.ErrInvalidArgument, Detail: d.Message}
		}
		return &kv.Error{Op: op, Key: k, Err: kv.ErrStorage, Cause: &ServerError{StatusCode: status, Code: d.Code, Message: d.Message}}
	}
	e := &kv.Error{Op: op, Key: k, Err: sentinel}
	if ek, ok := bodyKey(d.Key, d.KeyPct); ok {
		e.Key = ek
	}
	if dk, ok := bodyKey(d.Dest, d.DestPct); ok {
		e.Dest = dk
	}
	// Keep the server's words: what its message adds to the standard one
	// becomes the Detail, so that Message() is the same on both sides. The
	// server's JSON has U+FFFD for each byte of a key that is not UTF-8.
	if base := jsonLossy(e.Message()); d.Message != "" && d.Message != base {
		if rest, ok := strings.CutPrefix(d.Message, base+": "); ok {
			e.Detail = rest
		} else {
			e.Detail = d.Message
		}
	}
	return e
}

// jsonLossy is s as it comes out of encoding/json: each byte that is not
// part of valid UTF-8 replaced by U+FFFD.
func jsonLossy(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // utf8.RuneError for an invalid byte
		i += n
	}
	return b.String()
}

// bodyKey is the key a JSON body names with the fields key and key_pct:
// key_pct when it is there (the key is not valid UTF-8), else key. It
// reports false when there is none or it does not parse.
func bodyKey(key, pct string) (kv.Key, bool) {
	var k kv.Key
	var err error
	switch {
	case pct != "":
		k, err = httpapi.ParsePctKey(pct)
	case key != "":
		k, err = kv.ParseKey(key)
	default:
		return kv.Root, false
	}
	return k, err == nil
}

// getJSON GETs path and decodes the JSON body into v.
func (c *Client) getJSON(op string, k kv.Key, path string, v any, query ...string) error {
	if c.closed.Load() {
		return kv.Closed(op, k)
	}
	q := url.Values{}
	for _, name := range query {
		q.Set(name, "")
	}
	resp, err := c.do(request{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return kv.Storage(op, k, err)
	}
	if resp.StatusCode != http.StatusOK {
		return responseError(op, k, resp)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return kv.Storage(op, k, fmt.Errorf("decoding the server's answer: %w", err))
	}
	return nil
}

// Check runs the server's online check of its store (POST /v1/check) and
// returns its report. A server whose store has no check answers 501
// (not_implemented), one that ran a check too recently 429
// (rate_limited, ServerError.RetryAfter says when to ask again): both are
// kv.ErrStorage errors with a *ServerError cause.
func (c *Client) Check() (httpapi.CheckReport, error) {
	var rep httpapi.CheckReport
	if c.closed.Load() {
		return rep, kv.Closed("check", kv.Root)
	}
	resp, err := c.do(request{method: http.MethodPost, path: "/v1/check"})
	if err != nil {
		return rep, kv.Storage("check", kv.Root, err)
	}
	if resp.StatusCode != http.StatusOK {
		return rep, responseError("check", kv.Root, resp)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxCheckBody)).Decode(&rep); err != nil {
		return rep, kv.Storage("check", kv.Root, fmt.Errorf("decoding the server's answer: %w", err))
	}
	return rep, nil
}

// maxCheckBody bounds the check report read: many problems, but not
// without end.
const maxCheckBody = 256 << 20
