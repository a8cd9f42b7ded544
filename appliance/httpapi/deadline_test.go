package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// stall sends head and then nothing more, and returns the response the
// server gives (nil when it closes the connection without one) and
// whether the server closed the connection after it.
func (e *env) stall(head string) (*http.Response, string, bool) {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(e.t, err)
	defer conn.Close()
	// A failsafe, not a measure: the server cuts the body long before.
	conn.SetDeadline(time.Now().Add(time.Minute))
	_, err = io.WriteString(conn, head)
	require.NoError(e.t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode == http.StatusContinue {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		return nil, "", true
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	return resp, string(b), err == io.EOF
}

// TestStalledBody: a request body that stalls is cut after
// Options.BodyTimeout with 408 request_timeout and the connection closed;
// the write changes nothing and releases its locks.
func TestStalledBody(t *testing.T) {
	e := kvtarEnv(t, 1<<20, httpapi.Options{BodyTimeout: 200 * time.Millisecond, MinBodyRate: -1})
	st := e.store.(*kvtar.Store)
	e.set("/k", "old")
	for _, head := range []string{
		"PUT /v1/kv/k HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\npartial",
		"PUT /v1/kv/new HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
		"PATCH /v1/kv/k?offset=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
		"PATCH /v1/kv/k?offset=0 HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nNEW",
	} {
		resp, body, closed := e.stall(head)
		require.NotNil(t, resp, head)
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "%q: %s", head, body)
		assert.Equal(t, httpapi.CodeRequestTimeout, resp.Header.Get(httpapi.HeaderError))
		assert.Contains(t, body, `"code":"request_timeout"`)
		assert.Contains(t, body, "the request body stalled")
		assert.True(t, closed, "%q: the connection is closed", head)
	}
	// Nothing changed, nothing is left behind, and the key is writable.
	v, err := e.value("/k")
	require.NoError(t, err)
	assert.Equal(t, "old", v)
	_, err = e.value("/new")
	assert.ErrorIs(t, err, kv.ErrNotFound)
	ps, err := st.Check()
	require.NoError(t, err)
	for _, p := range ps {
		assert.False(t, p.Fatal, p.String())
	}
	require.Equal(t, 204, e.put("/v1/kv/k", "fresh").code)
	require.Equal(t, 201, e.put("/v1/kv/new", "fresh").code)
	assert.JSONEq(t, `{"key":"/","entries":[{"key":"/k","kind":"value","size":5},{"key":"/new","kind":"value","size":5}]}`,
		e.get("/v1/kv/?list").body)
}

// TestStalledBodyBlocksNoOtherWrite: while the body of a large PUT stalls
// (well within its deadline), writes of values up to 64 KiB and removes of
// other keys complete: the store streams the body outside its write lock
// (kvtar reserve.go). When the client goes away, nothing of the value is
// left.
func TestStalledBodyBlocksNoOtherWrite(t *testing.T) {
	e := kvtarEnv(t, 16<<20, httpapi.Options{BodyTimeout: 5 * time.Minute, MinBodyRate: -1})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	_, err = io.WriteString(conn, "PUT /v1/kv/s HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("x", 200000))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		assert.Equal(t, 201, e.put("/v1/kv/other", "x").code)
		assert.Equal(t, 204, e.put("/v1/kv/other", "y").code)
		assert.Equal(t, 204, e.do("DELETE", "/v1/kv/other", nil).code)
		for i := range 6 {
			assert.Equal(t, 201, e.put(fmt.Sprintf("/v1/kv/d/more%d", i), strings.Repeat("z", 60000)).code)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a failsafe, not a measure
		t.Fatal("writes of other keys wait for a stalled body")
	}
	// The client goes away: the next large PUT (which streams once the
	// stalled one has ended) succeeds, and nothing of /s is left.
	conn.Close()
	assert.Equal(t, 201, e.put("/v1/kv/s2", strings.Repeat("w", 100000)).code)
	_, err = e.value("/s")
	assert.ErrorIs(t, err, kv.ErrNotFound)
	v, err := e.value("/d/more5")
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("z", 60000), v)
}

// TestSlowBody: a body that keeps sending, but below Options.MinBodyRate,
// is cut too; one that merely pauses at its start is not.
func TestSlowBody(t *testing.T) {
	e := kvtarEnv(t, 1<<20, httpapi.Options{BodyTimeout: 300 * time.Millisecond, MinBodyRate: 100 << 10})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	_, err = io.WriteString(conn, "PUT /v1/kv/slow HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
	require.NoError(t, err)
	// A byte every 50 ms: never idle for BodyTimeout, far below the rate.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(b))
	_, err = e.value("/slow")
	assert.ErrorIs(t, err, kv.ErrNotFound)

	// Headers, a pause shorter than BodyTimeout, then the body at speed:
	// the rate applies only once a body has been arriving for BodyTimeout.
	e = kvtarEnv(t, 1<<20, httpapi.Options{BodyTimeout: 5 * time.Second, MinBodyRate: 100 << 10})
	conn2, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn2.Close()
	_, err = io.WriteString(conn2, "PUT /v1/kv/late HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	_, err = io.WriteString(conn2, "hello")
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(conn2), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
}

// TestStalledReader: a client that stops reading a value does not hold its
// connection: the server's writes get the same idle deadline, and the
// request ends.
func TestStalledReader(t *testing.T) {
	e := newEnv(t, httpapi.Options{BodyTimeout: 200 * time.Millisecond})
	big := strings.Repeat("v", 16<<20) // more than the socket buffers hold
	require.NoError(t, e.store.Set(kv.MustKey("/big"), []byte(big)))
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	_, err = io.WriteString(conn, "GET /v1/kv/big?no-digest HTTP/1.1\r\nHost: t\r\n\r\n")
	require.NoError(t, err)
	// The handler ends (the metrics count a request when it does), though
	// the client never reads.
	require.Eventually(t, func() bool { return scrape(t, e)[`tarstore_requests_total{op="get",code="200"}`] == 1 },
		time.Minute, 20*time.Millisecond)
}
