package httpapi_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// t0 is when the test stores' fake clocks start.
var t0 = time.Date(2024, time.June, 1, 12, 0, 0, 250_000_000, time.UTC)

// env is a handler over a store behind a test server.
type env struct {
	t     *testing.T
	clk   *clock.Fake
	store kv.RW
	h     *httpapi.Handler
	srv   *httptest.Server
	hc    *http.Client
	token string // sent as a bearer token when not ""
}

// newEnv serves the reference model with opts.
func newEnv(t *testing.T, opts httpapi.Options) *env {
	clk := clock.NewFake(t0)
	return serveStore(t, clk, kvtest.NewModel(clk), opts)
}

func serveStore(t *testing.T, clk *clock.Fake, store kv.RW, opts httpapi.Options) *env {
	t.Helper()
	h := httpapi.New(store, opts)
	e := &env{t: t, clk: clk, store: store, h: h, srv: httptest.NewServer(h), token: opts.Token}
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	e.hc = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		e.srv.Close()
		h.Close()
		store.Close()
	})
	return e
}

// result is a response, its body read.
type result struct {
	code int
	hdr  http.Header
	body string
}

// errorDetail decodes the body as an API error.
func (r result) errorDetail(t *testing.T) httpapi.ErrorDetail {
	t.Helper()
	var eb httpapi.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &eb), "error body %q", r.body)
	require.Equal(t, "application/json", r.hdr.Get("Content-Type"))
	require.Equal(t, eb.Error.Code, r.hdr.Get(httpapi.HeaderError))
	return eb.Error
}

// wantError checks that r is the error code with status, about key ("" for
// none), and returns its detail.
func (r result) wantError(t *testing.T, status int, code, key string) httpapi.ErrorDetail {
	t.Helper()
	require.Equal(t, status, r.code, "status; body %s", r.body)
	d := r.errorDetail(t)
	require.Equal(t, code, d.Code, "code; body %s", r.body)
	require.Equal(t, key, d.Key, "key; body %s", r.body)
	require.NotEmpty(t, d.Message)
	return d
}

// do sends a request; hdr are name, value pairs.
func (e *env) do(method, path string, body io.Reader, hdr ...string) result {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	require.NoError(e.t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if e.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.hc.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func (e *env) get(path string, hdr ...string) result { return e.do("GET", path, nil, hdr...) }

func (e *env) put(path, body string, hdr ...string) result {
	return e.do("PUT", path, strings.NewReader(body), hdr...)
}

// set stores a value directly in the store, a second after the last write.
func (e *env) set(key, v string) {
	e.t.Helper()
	e.clk.Advance(time.Second)
	require.NoError(e.t, e.store.Set(kv.MustKey(key), []byte(v)))
}

// raw sends a request written by hand (for what net/http will not send)
// and returns the response.
func (e *env) raw(request string) result {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(e.t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, request)
	require.NoError(e.t, err)
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

// etag is the ETag of a value.
func etag(v string) string {
	d := sha256.Sum256([]byte(v))
	return `"` + hex.EncodeToString(d[:]) + `"`
}

// value reads key from the store directly.
func (e *env) value(key string) (string, error) {
	b, err := e.store.Get(kv.MustKey(key))
	return string(b), err
}

// kvtestModel is a fresh model store.
func kvtestModel() kv.RW { return kvtest.NewModel(clock.NewFake(t0)) }
