package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
)

// TestContentType: GET and HEAD answer the type of the key's extension,
// application/octet-stream without one mime knows, with nosniff and a
// sandbox; ranges and reader sessions too.
func TestContentType(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	for key, want := range map[string]string{
		"/a.txt":         "text/plain; charset=utf-8",
		"/d/page.HTML":   "text/html; charset=utf-8",
		"/d/x.json":      "application/json",
		"/img/p.png":     "image/png",
		"/img/s.svg":     "image/svg+xml",
		"/noext":         "application/octet-stream",
		"/dot.":          "application/octet-stream",
		"/x.unknown-ext": "application/octet-stream",
		"/dir.txt/inner": "application/octet-stream",
	} {
		e.set(key, "<html><script>alert(1)</script></html>")
		for _, r := range []result{
			e.get("/v1/kv" + key),
			e.do("HEAD", "/v1/kv"+key, nil),
			e.get("/v1/kv"+key, "Range", "bytes=0-3"),
		} {
			require.Less(t, r.code, 300, key)
			assert.Equal(t, want, r.hdr.Get("Content-Type"), key)
			assert.Equal(t, "nosniff", r.hdr.Get("X-Content-Type-Options"), key)
			assert.Equal(t, "sandbox", r.hdr.Get("Content-Security-Policy"), key)
		}
	}
	// A reader session answers its key's type.
	r := e.do("POST", "/v1/kv/a.txt?open", nil)
	require.Equal(t, http.StatusCreated, r.code)
	r = e.get(r.hdr.Get("Location"))
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "text/plain; charset=utf-8", r.hdr.Get("Content-Type"))
	// Errors stay JSON.
	assert.Equal(t, "application/json", e.get("/v1/kv/none.txt").hdr.Get("Content-Type"))
}
