package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// dialFrom connects to addr from the loopback address local (127.0.0.2,
// 127.0.0.3, ...: Linux answers for all of 127/8), so that tests can be
// several clients.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	// A failsafe, not a measure.
	c.SetDeadline(time.Now().Add(time.Minute))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLimitConns(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := LimitConns(inner, ConnLimits{Max: 2, PerIP: 1, Reserve: 2})
	defer l.Close()
	addr := l.Addr().String()
	accept := func() net.Conn {
		c, err := l.Accept()
		require.NoError(t, err)
		return c
	}

	dialFrom(t, "127.0.0.2", addr)
	a1 := accept()
	assert.False(t, IsReserve(a1), "the first connection of .2 has a slot")
	dialFrom(t, "127.0.0.2", addr)
	a2 := accept()
	assert.True(t, IsReserve(a2), ".2 is at its limit: the reserve")
	// Half the reserve per address: a third connection of .2 is refused
	// with 503, not accepted.
	c3 := dialFrom(t, "127.0.0.2", addr)
	dialFrom(t, "127.0.0.3", addr)
	b1 := accept() // Accept skipped c3
	assert.False(t, IsReserve(b1), ".3 has a slot")
	resp, err := http.ReadResponse(bufio.NewReader(c3), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, httpapi.CodeOverloaded, resp.Header.Get(httpapi.HeaderError))
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), `"code":"overloaded"`)
	assert.Contains(t, string(body), "Too many connections from 127.0.0.2")

	// Every slot is taken: .4 gets the reserve.
	dialFrom(t, "127.0.0.4", addr)
	d1 := accept()
	assert.True(t, IsReserve(d1))
	// Slots and reserve are full: Accept waits, until a slot frees.
	dialFrom(t, "127.0.0.5", addr)
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			got <- c
		}
		close(got)
	}()
	require.NoError(t, a1.Close())
	a1.Close() // a second Close frees nothing more
	e1, ok := <-got
	require.True(t, ok)
	assert.False(t, IsReserve(e1), ".5 takes the slot .2 left")
	for _, c := range []net.Conn{a2, b1, d1, e1} {
		require.NoError(t, c.Close())
	}
	ll := l.(*limitListener)
	ll.mu.Lock()
	assert.Zero(t, ll.main+ll.reserved)
	assert.Empty(t, ll.byIP)
	ll.mu.Unlock()
	assert.Zero(t, len(ll.sem))
}

// testServer is a running Serve on a fresh image, with a token.
type testServer struct {
	addr   string
	disk   string
	token  string
	cancel context.CancelFunc
	done   chan error
}

func startTestServer(t *testing.T, cfg config.Config, opts ServeOptions) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg.Disk = filepath.Join(dir, "s.img")
	require.NoError(t, CreateImage(cfg.Disk, 4<<20, 0))
	cfg.TokenFile = filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(cfg.TokenFile, []byte("t0k\n"), 0o600))
	cfg.Listen = "127.0.0.1:0"
	cfg.From = map[string]config.Layer{config.Disk: config.Flag}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{disk: cfg.Disk, token: "t0k", cancel: cancel, done: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	opts.Ready = func(a net.Addr) { ready <- a }
	go func() { s.done <- Serve(ctx, cfg, opts) }()
	select {
	case a := <-ready:
		s.addr = a.String()
	case err := <-s.done:
		t.Fatalf("Serve: %v", err)
	}
	return s
}

// stop shuts the server down; the test's connections must be closed first.
func (s *testServer) stop(t *testing.T) {
	s.cancel()
	require.NoError(t, <-s.done)
}

// request sends one request on c and reads the answer.
func (s *testServer) request(t *testing.T, c net.Conn, method, path, body string) (*http.Response, string) {
	t.Helper()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", method, path, s.token, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// stall starts a request (PUT or PATCH) of path from local and stalls it
// after part of its body, once the server is reading it (it said 100
// Continue): the connection holds its slot. A PUT also holds the key's
// write lock, and the store's while kvtar streams a value; a PATCH reads
// its body before it takes any lock.
func (s *testServer) stall(t *testing.T, local, method, path string) net.Conn {
	t.Helper()
	c := dialFrom(t, local, s.addr)
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n", method, path, s.token)
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "HTTP/1.1 100 "), "the server reads the body: %q", line)
	_, err = io.WriteString(c, "partial body")
	require.NoError(t, err)
	return c
}

// TestServeStalledClients: one client stalling uploads on every slot it
// may take leaves the others their slots; a client that takes every slot
// still leaves /healthz and /v1/status answerable.
func TestServeStalledClients(t *testing.T) {
	// Long body deadlines: the stalls hold for the test.
	opts := ServeOptions{BodyTimeout: time.Hour}

	t.Run("per-address", func(t *testing.T) {
		s := startTestServer(t, config.Config{MaxConns: 4, MaxConnsPerIP: 2}, opts)
		var stalled []net.Conn
		for i := range 2 {
			stalled = append(stalled, s.stall(t, "127.0.0.2", "PATCH", fmt.Sprintf("/v1/kv/stalled/%d?offset=0", i)))
		}
		// .2's next connection is a reserve one: writes are refused there.
		c := dialFrom(t, "127.0.0.2", s.addr)
		resp, body := s.request(t, c, "PUT", "/v1/kv/more", "x")
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		assert.Equal(t, httpapi.CodeOverloaded, resp.Header.Get(httpapi.HeaderError))
		// Another client has its slots.
		c = dialFrom(t, "127.0.0.3", s.addr)
		resp, body = s.request(t, c, "PUT", "/v1/kv/other", "from .3")
		assert.Equal(t, http.StatusCreated, resp.StatusCode, body)
		resp, body = s.request(t, c, "GET", "/v1/kv/other", "")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "from .3", body)
		for _, c := range stalled {
			c.Close()
		}
		s.stop(t)
	})

	t.Run("every-slot", func(t *testing.T) {
		s := startTestServer(t, config.Config{MaxConns: 4, MaxConnsPerIP: 4}, opts)
		// A PUT that holds the store's write lock, and PATCHes.
		stalled := []net.Conn{s.stall(t, "127.0.0.2", "PUT", "/v1/kv/stalled/put")}
		for i := range 3 {
			stalled = append(stalled, s.stall(t, "127.0.0.2", "PATCH", fmt.Sprintf("/v1/kv/stalled/%d?offset=0", i)))
		}
		// Every slot is taken by .2; the light routes still answer, to
		// .2 itself and to others, on reserve connections.
		for _, local := range []string{"127.0.0.2", "127.0.0.3"} {
			for _, path := range []string{"/healthz", "/v1/status", "/metrics"} {
				c := dialFrom(t, local, s.addr)
				resp, body := s.request(t, c, "GET", path, "")
				assert.Equal(t, http.StatusOK, resp.StatusCode, "%s from %s: %s", path, local, body)
				assert.True(t, resp.Close, "a reserve connection serves one request")
			}
			// Neither reads nor the online check (which blocks writes
			// while it runs) are light.
			for _, rq := range [][2]string{{"GET", "/v1/kv/stalled/0"}, {"POST", "/v1/check"}} {
				c := dialFrom(t, local, s.addr)
				resp, body := s.request(t, c, rq[0], rq[1], "")
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
				assert.Contains(t, body, "only /healthz, /v1/status and /metrics are served now")
			}
		}
		for _, c := range stalled {
			c.Close()
		}
		// The slots are free again: a write goes through, and the stalled
		// uploads left nothing.
		var resp *http.Response
		require.Eventually(t, func() bool {
			c := dialFrom(t, "127.0.0.2", s.addr)
			resp, _ = s.request(t, c, "PUT", "/v1/kv/after", "x")
			c.Close()
			return resp.StatusCode == http.StatusCreated
		}, time.Minute, 10*time.Millisecond)
		c := dialFrom(t, "127.0.0.3", s.addr)
		resp, body := s.request(t, c, "GET", "/v1/kv/?list", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, `{"key":"/","entries":[{"key":"/after","kind":"value","size":1}]}`, body)
		// Serve passes the store's check: the stalled uploads left the
		// archive sound.
		resp, body = s.request(t, c, "POST", "/v1/check", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		var rep httpapi.CheckReport
		require.NoError(t, json.Unmarshal([]byte(body), &rep))
		assert.True(t, rep.OK, body)
		assert.Empty(t, rep.Problems)
		assert.Equal(t, 1, rep.Values)
		c.Close()
		// Without the token: 401, as everywhere.
		c = dialFrom(t, "127.0.0.3", s.addr)
		fmt.Fprintf(c, "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		c.Close()
		s.stop(t)
	})
}

// TestServeCutsStalledBody: with Serve's body deadline, a stalled upload
// is cut (408, connection closed), leaves nothing in the store, and frees
// its key and its slot: with one slot, the next client gets it.
func TestServeCutsStalledBody(t *testing.T) {
	s := startTestServer(t, config.Config{MaxConns: 1}, ServeOptions{BodyTimeout: 200 * time.Millisecond})
	c := s.stall(t, "127.0.0.2", "PUT", "/v1/kv/k")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	resp.Body.Close()
	_, err = io.Copy(io.Discard, br) // until the server closes it
	require.NoError(t, err)
	c2 := dialFrom(t, "127.0.0.3", s.addr)
	resp, body := s.request(t, c2, "PUT", "/v1/kv/k", "whole")
	assert.Equal(t, http.StatusCreated, resp.StatusCode, body)
	c.Close()
	c2.Close()
	s.stop(t)
	st, err := OpenStore(config.Config{Disk: s.disk}, true)
	require.NoError(t, err)
	defer st.Close()
	v, err := st.Get(kv.MustKey("/k"))
	require.NoError(t, err)
	assert.Equal(t, "whole", string(v))
}
