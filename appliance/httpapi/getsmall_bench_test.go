package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar"
)

// BenchmarkGetSmall: GETs of a 4 KiB value of the tar store, with its
// ETag, on one keep-alive connection — the path of bench's http-get-4k
// row, on an in-memory device. Profile it with
//
//	go test -run '^$' -bench GetSmall -cpuprofile cpu.out -blockprofile block.out ./appliance/httpapi/
func BenchmarkGetSmall(b *testing.B) {
	m, err := mem.New(512, (16<<20)/512)
	require.NoError(b, err)
	require.NoError(b, kvtar.Format(m))
	clk := clock.NewFake(t0)
	st, err := kvtar.New(clk, m)
	require.NoError(b, err)
	h := httpapi.New(st, httpapi.Options{})
	ts := httptest.NewServer(h)
	b.Cleanup(func() { ts.Close(); h.Close(); st.Close() })
	srv := ts.URL
	v := strings.Repeat("4 KiB value. ", 4096/13+1)[:4096]
	req, err := http.NewRequest(http.MethodPut, srv+"/v1/kv/small", strings.NewReader(v))
	require.NoError(b, err)
	tr := &http.Transport{}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	resp, err := hc.Do(req)
	require.NoError(b, err)
	resp.Body.Close()
	require.Less(b, resp.StatusCode, 300)
	buf := make([]byte, 8192)
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Get(srv + "/v1/kv/small")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.ReadFull(resp.Body, buf)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != len(v) || resp.Header.Get("ETag") == "" {
			b.Fatalf("GET: %s, %d bytes, ETag %q", resp.Status, n, resp.Header.Get("ETag"))
		}
	}
}
