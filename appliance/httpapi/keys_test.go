package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// kvtarEnv serves a kvtar store on an in-memory device of size bytes.
func kvtarEnv(t *testing.T, size int64, opts httpapi.Options) *env {
	t.Helper()
	_, clk, st := memKvtar(t, size)
	return serveStore(t, clk, st, opts)
}

// memKvtar opens a kvtar store on a new formatted in-memory device of size
// bytes, with a fake clock.
func memKvtar(t *testing.T, size int64) (*mem.Device, *clock.Fake, *kvtar.Store) {
	t.Helper()
	dev, err := mem.New(512, uint64(size/512))
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	clk := clock.NewFake(t0)
	st, err := kvtar.New(clk, dev)
	require.NoError(t, err)
	return dev, clk, st
}

func TestPctKey(t *testing.T) {
	for _, s := range []string{"/", "/a", "/nu/\xff\xfe", "/sp ace/q?#%", "/caf\xe9/é/\x01"} {
		k := kv.MustKey(s)
		p := httpapi.PctKey(k)
		assert.Equal(t, "/v1/kv"+p, httpapi.KeyPath(k))
		for _, c := range p {
			assert.Less(t, c, rune(0x80), "%q is ASCII", p)
		}
		back, err := httpapi.ParsePctKey(p)
		require.NoError(t, err)
		assert.Equal(t, k, back, p)
	}
	assert.Equal(t, "/nu/%FF%FE", httpapi.PctKey(kv.MustKey("/nu/\xff\xfe")))
	for _, bad := range []string{"/a%zz", "/a%2Fb", "/%2e%2e", "/a%00"} {
		_, err := httpapi.ParsePctKey(bad)
		assert.ErrorIs(t, err, kv.ErrInvalidKey, bad)
	}
	require.NoError(t, httpapi.CheckNewKey("set", kv.MustKey("/é/ok")))
	err := httpapi.CheckNewKey("set", kv.MustKey("/ok/caf\xe9"))
	assert.ErrorIs(t, err, kv.ErrInvalidKey)
	assert.Contains(t, err.Error(), `segment "caf\xe9" is not valid UTF-8`)
}

// TestNonUTF8Keys: keys that are not UTF-8 are refused for writes at every
// length, and those already in the store are listed with key_pct, which
// names them exactly: a listed key can be read, renamed and removed.
func TestNonUTF8Keys(t *testing.T) {
	e := kvtarEnv(t, 1<<20, httpapi.Options{})
	long := "/" + strings.Repeat("a", 100) + "/" + strings.Repeat("%ff", 120) // past ustar: a PAX path
	d := e.put("/v1/kv"+long, "x").wantError(t, 400, "invalid_key", strings.ReplaceAll(long, "%ff", "\ufffd"))
	assert.Equal(t, strings.ReplaceAll(long, "%ff", "%FF"), d.KeyPct)
	d = e.put("/v1/kv/nu/%ff%fe", "x").wantError(t, 400, "invalid_key", "/nu/\ufffd\ufffd")
	assert.Equal(t, "/nu/%FF%FE", d.KeyPct)
	assert.Equal(t, `Invalid key: segment "\xff\xfe" is not valid UTF-8 (keys written through tarstore must be UTF-8)`, d.Message)
	for _, r := range []result{
		e.do("PATCH", "/v1/kv/nu/%ff?offset=0", strings.NewReader("x")),
		e.do("POST", "/v1/kv/nu/%ff?allocate=1", nil),
	} {
		assert.Equal(t, "/nu/%FF", r.wantError(t, 400, "invalid_key", "/nu/\ufffd").KeyPct)
	}
	e.set("/src", "s")
	d = e.do("POST", "/v1/kv/src?rename-to=%2Fnu%2F%ff", nil).wantError(t, 400, "invalid_key", "/nu/\ufffd")
	assert.Equal(t, "/nu/%FF", d.KeyPct)
	assert.JSONEq(t, `{"key":"/","entries":[{"key":"/src","kind":"value","size":1}]}`, e.get("/v1/kv/?list").body)

	// Keys already in the store (kvtar stores short ones; a foreign
	// archive may hold them).
	e.set("/nu/\xff\xfe", "ff-fe")
	e.set("/nu/caf\xe9", "latin-1")
	e.set("/nu/d\xff/x", "below")
	e.set("/nu/ok", "ok")
	r := e.get("/v1/kv/nu?list")
	require.Equal(t, 200, r.code)
	assert.JSONEq(t, `{"key":"/nu","entries":[
		{"key":"/nu/caf\ufffd","key_pct":"/nu/caf%E9","kind":"value","size":7},
		{"key":"/nu/d\ufffd","key_pct":"/nu/d%FF","kind":"dictionary"},
		{"key":"/nu/ok","kind":"value","size":2},
		{"key":"/nu/\ufffd\ufffd","key_pct":"/nu/%FF%FE","kind":"value","size":5}]}`, r.body)
	var lb httpapi.ListBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &lb))
	for _, le := range lb.Entries {
		name := le.Key
		if le.KeyPct != "" {
			name = le.KeyPct
			// The lossy "key" names another key.
			e.get(httpapi.KeyPath(kv.MustKey(le.Key))).wantError(t, 404, "not_found", le.Key)
		}
		k, err := httpapi.ParsePctKey(name)
		require.NoError(t, err)
		if le.Kind == "value" {
			got := e.get("/v1/kv" + name)
			require.Equal(t, http.StatusOK, got.code, name)
			want, err := e.value(k.String())
			require.NoError(t, err)
			assert.Equal(t, want, got.body, name)
		} else {
			sub := e.get("/v1/kv" + name + "?list")
			require.Equal(t, 200, sub.code)
			assert.JSONEq(t, `{"key":"/nu/d\ufffd","key_pct":"/nu/d%FF","entries":[
				{"key":"/nu/d\ufffd/x","key_pct":"/nu/d%FF/x","kind":"value","size":5}]}`, sub.body)
		}
	}
	// Errors name such keys exactly too.
	d = e.get("/v1/kv/nu/%ff%ff").wantError(t, 404, "not_found", "/nu/\ufffd\ufffd")
	assert.Equal(t, "/nu/%FF%FF", d.KeyPct)
	// Readers name them.
	r = e.do("POST", "/v1/kv/nu/%FF%FE?open", nil)
	require.Equal(t, 201, r.code, r.body)
	var rb httpapi.ReaderBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &rb))
	assert.Equal(t, "/nu/%FF%FE", rb.KeyPct)
	// They can be renamed to a UTF-8 key and removed.
	require.Equal(t, 204, e.do("POST", "/v1/kv/nu/caf%E9?rename-to=/nu/café", nil).code)
	v, err := e.value("/nu/café")
	require.NoError(t, err)
	assert.Equal(t, "latin-1", v)
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/nu/%FF%FE", nil).code)
	_, err = e.value("/nu/\xff\xfe")
	assert.ErrorIs(t, err, kv.ErrNotFound)
}
