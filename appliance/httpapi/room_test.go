package httpapi_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// TestHugeSizes: sizes and offsets up to 2^63-1 never reach the store's
// arithmetic: an allocation or a PUT larger than the device is no_space
// (in the store's order of checks), an offset past every value appends,
// and ranges are clamped.
func TestHugeSizes(t *testing.T) {
	max := strconv.FormatInt(1<<63-1, 10)
	for name, e := range map[string]*env{
		"kvtar":  kvtarEnv(t, 256<<10, httpapi.Options{}),
		"status": kvtarEnv(t, 256<<10, httpapi.Options{Status: func() (httpapi.Status, error) { return httpapi.Status{Capacity: 1 << 20, Free: 1 << 10}, nil }}),
		"model":  newEnv(t, httpapi.Options{}),
	} {
		e.set("/a", "0123456789")
		for _, n := range []string{max, "9223372036854775000", "9223372036854774000", "4611686018427387905", "8191T", "2T"} {
			e.do("POST", "/v1/kv/x?allocate="+n, nil).wantError(t, 507, "no_space", "/x")
			// The store's order: what is there comes first.
			e.do("POST", "/v1/kv/a?allocate="+n, nil).wantError(t, 409, "already_present", "/a")
			e.do("POST", "/v1/kv/a/b?allocate="+n, nil).wantError(t, 409, "dictionary_expected", "/a")
			e.do("POST", "/v1/kv/?allocate="+n, nil).wantError(t, 409, "already_present", "/")
		}
		e.do("POST", "/v1/kv/x?allocate=-"+max, nil).wantError(t, 400, "invalid_argument", "/x")
		_, err := e.value("/x")
		assert.ErrorIs(t, err, kv.ErrNotFound, name)

		// A PUT of 2^63-1 bytes: refused before its body is read.
		for _, n := range []string{max, "9223372036854775000"} {
			r := e.raw("PUT /v1/kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: " + n + "\r\nConnection: close\r\n\r\nabc")
			r.wantError(t, 507, "no_space", "/big")
			r = e.raw("PUT /v1/kv/a/big HTTP/1.1\r\nHost: t\r\nContent-Length: " + n + "\r\nConnection: close\r\n\r\nabc")
			r.wantError(t, 409, "dictionary_expected", "/a")
		}

		// PATCH past every value appends, whatever the offset.
		for _, off := range []string{max, "9223372036854775806", "4611686018427387904"} {
			require.Equal(t, 204, e.do("PATCH", "/v1/kv/a?offset="+off, strings.NewReader("+")).code, name)
		}
		v, err := e.value("/a")
		require.NoError(t, err)
		assert.Equal(t, "0123456789+++", v, name)

		// Ranges at the edges of int64.
		for rg, want := range map[string]int{
			"bytes=0-" + max:                   206,
			"bytes=-" + max:                    206,
			"bytes=" + max + "-":               416,
			"bytes=9223372036854775806-" + max: 416,
			"bytes=1-" + max + "0":             200, // does not parse: ignored
			"bytes=" + max + "-" + max:         416,
			"bytes=12-" + max:                  206,
		} {
			r := e.get("/v1/kv/a", "Range", rg)
			assert.Equal(t, want, r.code, "%s: %s", name, rg)
		}
		r := e.get("/v1/kv/a", "Range", "bytes=12-"+max)
		assert.Equal(t, "+", r.body)
		assert.Equal(t, "bytes 12-12/13", r.hdr.Get("Content-Range"))
	}
}
