package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar"
)

// The GetSmall benchmarks: GETs of a 4 KiB value, with its ETag, one after
// the other on one keep-alive connection — the path of bench's http-get-4k
// row. Two servers times two clients, so that one run tells the handler's
// share of a GET from the HTTP stack's:
//
//	BenchmarkGetSmall                    the API over the tar store on an in-memory device, net/http client
//	BenchmarkGetSmallMinimalClient       the same, with a minimal client (raw connection, bufio, http.ReadResponse)
//	BenchmarkGetSmallFloor               a do-nothing handler answering the value from memory, net/http client
//	BenchmarkGetSmallFloorMinimalClient  the same, with the minimal client
//
// The handler's own cost is BenchmarkGetSmall's time less
// BenchmarkGetSmallFloor's. Profile it with
//
//	go test -run '^$' -bench GetSmall -cpuprofile cpu.out -blockprofile block.out ./appliance/httpapi/
func BenchmarkGetSmall(b *testing.B) { benchGetSmall(b, apiServer, netHTTPGet) }

func BenchmarkGetSmallMinimalClient(b *testing.B) { benchGetSmall(b, apiServer, minimalGet) }

func BenchmarkGetSmallFloor(b *testing.B) { benchGetSmall(b, floorServer, netHTTPGet) }

func BenchmarkGetSmallFloorMinimalClient(b *testing.B) {
	benchGetSmall(b, floorServer, minimalGet)
}

// smallValue is the value the GetSmall benchmarks read.
var smallValue = strings.Repeat("4 KiB value. ", 4096/13+1)[:4096]

// apiServer serves the API over a tar store on an in-memory device that
// holds smallValue at /small, which it returns the path of.
func apiServer(b *testing.B) (*httptest.Server, string) {
	m, err := mem.New(512, (16<<20)/512)
	require.NoError(b, err)
	require.NoError(b, kvtar.Format(m))
	clk := clock.NewFake(t0)
	st, err := kvtar.New(clk, m)
	require.NoError(b, err)
	h := httpapi.New(st, httpapi.Options{})
	ts := httptest.NewServer(h)
	b.Cleanup(func() { ts.Close(); h.Close(); st.Close() })
	req, err := http.NewRequest(http.MethodPut, ts.URL+"/v1/kv/small", strings.NewReader(smallValue))
	require.NoError(b, err)
	resp, err := ts.Client().Do(req)
	require.NoError(b, err)
	resp.Body.Close()
	require.Less(b, resp.StatusCode, 300)
	ts.Client().CloseIdleConnections()
	return ts, "/v1/kv/small"
}

// floorServer serves a handler that does nothing but answer smallValue
// from memory with a fixed ETag and its length: the least a GET of it can
// cost through net/http.
func floorServer(b *testing.B) (*httptest.Server, string) {
	etag := []string{`"` + strings.Repeat("0", 64) + `"`}
	length := []string{strconv.Itoa(len(smallValue))}
	v := []byte(smallValue)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Etag"] = etag
		hdr["Content-Length"] = length
		w.Write(v)
	}))
	b.Cleanup(ts.Close)
	return ts, "/small"
}

// A getter makes one GET of path and returns the status, the ETag and the
// body's length; body is room for the body.
type getter func(path string, body []byte) (status int, etag string, n int, err error)

// netHTTPGet returns a getter over a net/http client of its own (one
// keep-alive connection, as bench's).
func netHTTPGet(b *testing.B, base string) getter {
	tr := &http.Transport{}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	return func(path string, body []byte) (int, string, int, error) {
		resp, err := hc.Get(base + path)
		if err != nil {
			return 0, "", 0, err
		}
		n, _ := io.ReadFull(resp.Body, body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag"), n, nil
	}
}

// minimalGet returns a getter that writes the request line and Host to a
// connection of its own and reads the answer with http.ReadResponse: what
// remains of the client's cost without net/http's Transport (its
// connection pool, its reading and writing goroutines).
func minimalGet(b *testing.B, base string) getter {
	host := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", host)
	require.NoError(b, err)
	b.Cleanup(func() { conn.Close() })
	bw, br := bufio.NewWriter(conn), bufio.NewReader(conn)
	var req []byte
	last := ""
	return func(path string, body []byte) (int, string, int, error) {
		if path != last {
			req = []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
			last = path
		}
		bw.Write(req)
		if err := bw.Flush(); err != nil {
			return 0, "", 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, "", 0, err
		}
		n, _ := io.ReadFull(resp.Body, body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag"), n, nil
	}
}

// benchGetSmall GETs the small value of the server srv starts, over and
// over, with the client newClient makes.
func benchGetSmall(b *testing.B, srv func(*testing.B) (*httptest.Server, string), newClient func(*testing.B, string) getter) {
	ts, path := srv(b)
	get := newClient(b, ts.URL)
	buf := make([]byte, 8192)
	b.SetBytes(int64(len(smallValue)))
	b.ReportAllocs()
	for b.Loop() {
		status, etag, n, err := get(path, buf)
		if err != nil {
			b.Fatal(err)
		}
		if status != http.StatusOK || n != len(smallValue) || etag == "" {
			b.Fatalf("GET: %d, %d bytes, ETag %q", status, n, etag)
		}
	}
}
