package httpapi_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

func TestGetValue(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/a/b", "hello, world")
	r := e.get("/v1/kv/a/b")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "hello, world", r.body)
	assert.Equal(t, "12", r.hdr.Get("Content-Length"))
	assert.Equal(t, "application/octet-stream", r.hdr.Get("Content-Type"))
	assert.Equal(t, "value", r.hdr.Get("X-Tarstore-Kind"))
	assert.Equal(t, etag("hello, world"), r.hdr.Get("ETag"))
	assert.Equal(t, "bytes", r.hdr.Get("Accept-Ranges"))
	assert.Equal(t, t0.Add(time.Second).Format(http.TimeFormat), r.hdr.Get("Last-Modified"))

	// The same key spelled with empty segments and escapes.
	r = e.get("/v1/kv//a//%62/")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "hello, world", r.body)

	// An empty value.
	e.set("/empty", "")
	r = e.get("/v1/kv/empty")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "", r.body)
	assert.Equal(t, "0", r.hdr.Get("Content-Length"))
	assert.Equal(t, etag(""), r.hdr.Get("ETag"))

	// ?no-digest: no ETag.
	r = e.get("/v1/kv/a/b?no-digest")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "hello, world", r.body)
	assert.Empty(t, r.hdr.Get("ETag"))
}

func TestGetErrors(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/d/v", "v")
	d := e.get("/v1/kv/nothing").wantError(t, 404, "not_found", "/nothing")
	assert.Equal(t, "Cannot find the key /nothing", d.Message)
	assert.Equal(t, "get", d.Op)
	e.get("/v1/kv/d/v/x").wantError(t, 404, "not_found", "/d/v/x") // through a prefix value
	d = e.get("/v1/kv/d").wantError(t, 409, "value_expected", "/d")
	assert.Equal(t, "Expected a value; /d is a dictionary", d.Message)
	e.get("/v1/kv").wantError(t, 409, "value_expected", "/")
	e.get("/v1/kv/").wantError(t, 409, "value_expected", "/")
	e.get("/v1/kv/d/v?list").wantError(t, 409, "dictionary_expected", "/d/v")
	e.get("/v1/kv/nothing?list").wantError(t, 404, "not_found", "/nothing")
	// Unknown routes.
	e.get("/v1/kvx").wantError(t, 404, "not_found", "")
	e.get("/console").wantError(t, 404, "not_found", "")
	e.get("/v2/kv/a").wantError(t, 404, "not_found", "")
	e.get("/v1/kv/a?x=%zz").wantError(t, 400, "invalid_argument", "")
}

func TestList(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	r := e.get("/v1/kv/?list")
	require.Equal(t, http.StatusOK, r.code)
	assert.JSONEq(t, `{"key":"/","entries":[]}`, r.body)
	e.set("/d/b", "bb")
	e.set("/d/a", "")
	e.set("/d/sub/x", "x")
	e.set("/d/with space", "s")
	r = e.get("/v1/kv/d?list")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "application/json", r.hdr.Get("Content-Type"))
	var lb httpapi.ListBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &lb))
	assert.JSONEq(t, `{"key":"/d","entries":[
		{"key":"/d/a","kind":"value","size":0},
		{"key":"/d/b","kind":"value","size":2},
		{"key":"/d/sub","kind":"dictionary"},
		{"key":"/d/with space","kind":"value","size":1}]}`, r.body)
	r = e.get("/v1/kv?list")
	assert.JSONEq(t, `{"key":"/","entries":[{"key":"/d","kind":"dictionary"}]}`, r.body)
}

func TestHead(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/d/v", "value")
	e.set("/d/w", "w")
	r := e.do("HEAD", "/v1/kv/d/v", nil)
	require.Equal(t, http.StatusOK, r.code)
	assert.Empty(t, r.body)
	assert.Equal(t, "value", r.hdr.Get("X-Tarstore-Kind"))
	assert.Equal(t, "5", r.hdr.Get("Content-Length"))
	assert.Equal(t, etag("value"), r.hdr.Get("ETag"))
	assert.Equal(t, t0.Add(time.Second).Format(http.TimeFormat), r.hdr.Get("Last-Modified"))

	// A dictionary: its digest and the latest mtime of its values.
	r = e.do("HEAD", "/v1/kv/d", nil)
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "dictionary", r.hdr.Get("X-Tarstore-Kind"))
	want, err := e.store.Digest(kv.MustKey("/d"))
	require.NoError(t, err)
	assert.Equal(t, `"`+hex.EncodeToString(want)+`"`, r.hdr.Get("ETag"))
	assert.Equal(t, t0.Add(2*time.Second).Format(http.TimeFormat), r.hdr.Get("Last-Modified"))
	assert.Empty(t, r.hdr.Get("Content-Length"))

	// The root exists even when empty... and ?no-digest gives no ETag.
	r = e.do("HEAD", "/v1/kv/?no-digest", nil)
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "dictionary", r.hdr.Get("X-Tarstore-Kind"))
	assert.Empty(t, r.hdr.Get("ETag"))
	r = e.do("HEAD", "/v1/kv/d/v?no-digest", nil)
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "5", r.hdr.Get("Content-Length"))
	assert.Empty(t, r.hdr.Get("ETag"))

	// Missing: 404, with the code in a header since there is no body.
	for _, p := range []string{"/v1/kv/nothing", "/v1/kv/nothing?no-digest", "/v1/kv/d/v/below"} {
		r = e.do("HEAD", p, nil)
		assert.Equal(t, http.StatusNotFound, r.code, p)
		assert.Equal(t, "not_found", r.hdr.Get(httpapi.HeaderError), p)
		assert.Empty(t, r.body)
	}
}

// TestETagsFollowWrites: cached digests of values and dictionaries change
// with every write below them.
func TestETagsFollowWrites(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	headTag := func(p string) string {
		r := e.do("HEAD", p, nil)
		require.Equal(t, http.StatusOK, r.code, p)
		return r.hdr.Get("ETag")
	}
	require.Equal(t, 201, e.put("/v1/kv/a/b/c", "1").code)
	root, a, c := headTag("/v1/kv/"), headTag("/v1/kv/a"), headTag("/v1/kv/a/b/c")
	require.Equal(t, etag("1"), c)
	require.Equal(t, root, headTag("/v1/kv/"), "the digest is stable")
	require.Equal(t, 204, e.put("/v1/kv/a/b/c", "2").code)
	assert.Equal(t, etag("2"), headTag("/v1/kv/a/b/c"))
	assert.NotEqual(t, a, headTag("/v1/kv/a"))
	assert.NotEqual(t, root, headTag("/v1/kv/"))
	for _, write := range []func() int{
		func() int { return e.do("PATCH", "/v1/kv/a/b/c?offset=0", strings.NewReader("3")).code },
		func() int { return e.do("POST", "/v1/kv/a/b/n?allocate=1", nil).code },
		func() int { return e.do("POST", "/v1/kv/a/b/n?rename-to=/a/m", nil).code },
		func() int { return e.do("DELETE", "/v1/kv/a/m", nil).code },
	} {
		before := headTag("/v1/kv/a")
		code := write()
		require.Less(t, code, 300)
		after := headTag("/v1/kv/a")
		assert.NotEqual(t, before, after)
		want, err := e.store.Digest(kv.MustKey("/a"))
		require.NoError(t, err)
		assert.Equal(t, `"`+hex.EncodeToString(want)+`"`, after)
	}
	assert.Equal(t, etag("3"), e.get("/v1/kv/a/b/c").hdr.Get("ETag"))
}

func TestPut(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	r := e.put("/v1/kv/new/key", "first")
	require.Equal(t, http.StatusCreated, r.code, r.body)
	assert.Equal(t, etag("first"), r.hdr.Get("ETag"))
	assert.Equal(t, "/v1/kv/new/key", r.hdr.Get("Location"))
	v, err := e.value("/new/key")
	require.NoError(t, err)
	assert.Equal(t, "first", v)

	r = e.put("/v1/kv/new/key", "second")
	require.Equal(t, http.StatusNoContent, r.code)
	assert.Equal(t, etag("second"), r.hdr.Get("ETag"))
	assert.Equal(t, "second", e.get("/v1/kv/new/key").body)

	// Replacing a dictionary is a replacement too.
	r = e.put("/v1/kv/new", "")
	require.Equal(t, http.StatusNoContent, r.code)
	v, err = e.value("/new")
	require.NoError(t, err)
	assert.Equal(t, "", v)

	// Errors from the store.
	e.put("/v1/kv/", "x").wantError(t, 409, "value_expected", "/")
	d := e.put("/v1/kv/new/below/deep", "x").wantError(t, 409, "dictionary_expected", "/new")
	assert.Equal(t, "set", d.Op)

	// A key with characters that need escaping.
	key := kv.MustKey("/sp ace/per%cent/q?uestion#hash/ü")
	r = e.put(httpapi.KeyPath(key), "odd")
	require.Equal(t, http.StatusCreated, r.code, r.body)
	v, err = e.value(key.String())
	require.NoError(t, err)
	assert.Equal(t, "odd", v)
}

func TestPutShortBody(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/k", "old")
	r := e.raw("PUT /v1/kv/k HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
	d := r.wantError(t, 400, "invalid_argument", "/k")
	assert.Contains(t, d.Message, "3 of 10 bytes")
	v, err := e.value("/k")
	require.NoError(t, err)
	assert.Equal(t, "old", v, "a short PUT changed the value")
}

// failBody fails the test if it is read.
type failBody struct{ t *testing.T }

func (b failBody) Read([]byte) (int, error) {
	b.t.Error("the body was read")
	return 0, errors.New("must not be read")
}

func TestPutNoSpace(t *testing.T) {
	status := func() (httpapi.Status, error) { return httpapi.Status{Capacity: 1000, Free: 100}, nil }
	h := httpapi.New(kvtestModel(), httpapi.Options{Status: status})
	// Straight to the handler: the body is never read.
	req := httptest.NewRequest("PUT", "/v1/kv/big", failBody{t})
	req.ContentLength = 101
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := result{rec.Code, rec.Header(), rec.Body.String()}
	d := r.wantError(t, http.StatusInsufficientStorage, "no_space", "/big")
	assert.Contains(t, d.Message, "No space left on device")

	// Through a server, with Expect: 100-continue, the client never sends it.
	e := newEnv(t, httpapi.Options{Status: status})
	req, err := http.NewRequest("PUT", e.srv.URL+"/v1/kv/big", failBody{t})
	require.NoError(t, err)
	req.ContentLength = 1 << 30
	req.Header.Set("Expect", "100-continue")
	resp, err := e.hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusInsufficientStorage, resp.StatusCode)

	// Exactly the free space is let through.
	require.Equal(t, http.StatusCreated, e.put("/v1/kv/fits", strings.Repeat("x", 100)).code)
}

// TestPutNoSpaceKvtar: a value larger than a kvtar store's free space is
// refused before its body is read, and one that passes the check but does
// not fit is refused by the store.
func TestPutNoSpaceKvtar(t *testing.T) {
	dev, err := mem.New(512, (256<<10)/512)
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	clk := clock.NewFake(t0)
	st, err := kvtar.New(clk, dev)
	require.NoError(t, err)
	free, err := st.Free()
	require.NoError(t, err)
	e := serveStore(t, clk, st, httpapi.Options{})

	req := httptest.NewRequest("PUT", "/v1/kv/big", failBody{t})
	req.ContentLength = free + 1
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	result{rec.Code, rec.Header(), rec.Body.String()}.wantError(t, 507, "no_space", "/big")

	// Exactly the free space does not fit either (headers need room), but
	// it is the store that says so, after reading the body.
	e.put("/v1/kv/big", strings.Repeat("x", int(free))).wantError(t, 507, "no_space", "/big")
	r := e.get("/v1/kv/?list")
	assert.JSONEq(t, `{"key":"/","entries":[]}`, r.body)
}

// TestFullStoreKvtar fills an 8 MiB kvtar store with values of about 1 KB
// until PUT answers 507, then removes a dictionary of a thousand values
// and the whole store: removal always works on a full store, and the
// space it frees takes values of the same sizes again.
func TestFullStoreKvtar(t *testing.T) {
	dev, err := mem.New(512, (8<<20)/512)
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	clk := clock.NewFake(t0)
	st, err := kvtar.New(clk, dev)
	require.NoError(t, err)
	e := serveStore(t, clk, st, httpapi.Options{})
	fill := func(prefix func(int) string) int {
		for i := 0; ; i++ {
			r := e.put(fmt.Sprintf("/v1/kv%s/k%05d", prefix(i), i), strings.Repeat("v", 900+i%200))
			if r.code == 507 {
				r.wantError(t, 507, "no_space", fmt.Sprintf("%s/k%05d", prefix(i), i))
				return i
			}
			require.Equal(t, 201, r.code, r.body)
		}
	}
	n := fill(func(i int) string { return fmt.Sprintf("/d%d", i%4) })
	require.Greater(t, n, 4000)
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/d1", nil).code)
	again := fill(func(int) string { return "/again" })
	require.GreaterOrEqual(t, again, n/4*95/100, "the space of /d1 takes values again")
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/", nil).code)
	assert.JSONEq(t, `{"key":"/","entries":[]}`, e.get("/v1/kv/?list").body)
}

func TestConditionalPut(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	// If-None-Match: * creates only.
	require.Equal(t, 201, e.put("/v1/kv/k", "v1", "If-None-Match", "*").code)
	e.put("/v1/kv/k", "v2", "If-None-Match", "*").wantError(t, 412, "precondition_failed", "/k")
	e.set("/d/x", "x")
	e.put("/v1/kv/d", "v2", "If-None-Match", "*").wantError(t, 412, "precondition_failed", "/d")

	// If-Match: the current ETag only.
	e.put("/v1/kv/k", "v2", "If-Match", etag("other")).wantError(t, 412, "precondition_failed", "/k")
	e.put("/v1/kv/k", "v2", "If-Match", "W/"+etag("v1")).wantError(t, 412, "precondition_failed", "/k")
	r := e.put("/v1/kv/k", "v2", "If-Match", etag("v1"))
	require.Equal(t, 204, r.code, r.body)
	assert.Equal(t, etag("v2"), r.hdr.Get("ETag"))
	require.Equal(t, 204, e.put("/v1/kv/k", "v3", "If-Match", `"x", `+etag("v2")).code)
	require.Equal(t, 204, e.put("/v1/kv/k", "v4", "If-Match", "*").code)

	// If-Match on an absent key fails, even with *.
	e.put("/v1/kv/absent", "v", "If-Match", etag("v")).wantError(t, 412, "precondition_failed", "/absent")
	e.put("/v1/kv/absent", "v", "If-Match", "*").wantError(t, 412, "precondition_failed", "/absent")
	_, err := e.value("/absent")
	require.ErrorIs(t, err, kv.ErrNotFound)
	v, err := e.value("/k")
	require.NoError(t, err)
	assert.Equal(t, "v4", v)

	// If-Unmodified-Since.
	lm := e.get("/v1/kv/k").hdr.Get("Last-Modified")
	old := t0.Add(-time.Hour).Format(http.TimeFormat)
	e.put("/v1/kv/k", "v5", "If-Unmodified-Since", old).wantError(t, 412, "precondition_failed", "/k")
	require.Equal(t, 204, e.put("/v1/kv/k", "v5", "If-Unmodified-Since", lm).code)

	// The other writes take preconditions too.
	cur := etag("v5")
	e.do("PATCH", "/v1/kv/k?offset=0", strings.NewReader("x"), "If-Match", etag("no")).wantError(t, 412, "precondition_failed", "/k")
	e.do("DELETE", "/v1/kv/k", nil, "If-Match", etag("no")).wantError(t, 412, "precondition_failed", "/k")
	e.do("POST", "/v1/kv/k?rename-to=/k2", nil, "If-Match", etag("no")).wantError(t, 412, "precondition_failed", "/k")
	e.do("POST", "/v1/kv/k?allocate=1", nil, "If-None-Match", "*").wantError(t, 412, "precondition_failed", "/k")
	v, _ = e.value("/k")
	assert.Equal(t, "v5", v)
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/k", nil, "If-Match", cur).code)
}

// TestConditionalPutRace: of many concurrent create-only PUTs of one key,
// exactly one wins: the check and the write are atomic.
func TestConditionalPutRace(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	const n = 16
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/kv/once", strings.NewReader(fmt.Sprint(i)))
			req.Header.Set("If-None-Match", "*")
			resp, err := e.hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	created, failed := 0, 0
	for _, c := range codes {
		switch c {
		case 201:
			created++
		case 412:
			failed++
		}
	}
	assert.Equal(t, 1, created, "codes %v", codes)
	assert.Equal(t, n-1, failed, "codes %v", codes)

	// Compare-and-swap increments: each succeeds only on the value it read,
	// so with retries every increment lands once.
	require.Equal(t, 201, e.put("/v1/kv/counter", "0").code)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				for {
					r, err := e.hc.Get(e.srv.URL + "/v1/kv/counter")
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(r.Body)
					r.Body.Close()
					var n int
					fmt.Sscan(string(b), &n)
					req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/kv/counter", strings.NewReader(fmt.Sprint(n+1)))
					req.Header.Set("If-Match", r.Header.Get("ETag"))
					resp, err := e.hc.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode == 204 {
						break
					}
					if resp.StatusCode != 412 {
						t.Errorf("PUT: %d", resp.StatusCode)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	v, err := e.value("/counter")
	require.NoError(t, err)
	assert.Equal(t, "40", v)
}

func TestConditionalGet(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/k", "0123456789")
	tag := etag("0123456789")
	lm := t0.Add(time.Second)

	r := e.get("/v1/kv/k", "If-None-Match", tag)
	require.Equal(t, http.StatusNotModified, r.code)
	assert.Empty(t, r.body)
	assert.Equal(t, tag, r.hdr.Get("ETag"))
	assert.Equal(t, http.StatusNotModified, e.get("/v1/kv/k", "If-None-Match", "*").code)
	assert.Equal(t, http.StatusNotModified, e.get("/v1/kv/k", "If-None-Match", `"a", W/`+tag).code)
	assert.Equal(t, http.StatusNotModified, e.do("HEAD", "/v1/kv/k", nil, "If-None-Match", tag).code)
	assert.Equal(t, http.StatusOK, e.get("/v1/kv/k", "If-None-Match", etag("old")).code)
	assert.Equal(t, http.StatusNotModified, e.get("/v1/kv/k", "If-Modified-Since", lm.Format(http.TimeFormat)).code)
	assert.Equal(t, http.StatusOK, e.get("/v1/kv/k", "If-Modified-Since", lm.Add(-time.Second).Format(http.TimeFormat)).code)
	assert.Equal(t, http.StatusOK, e.get("/v1/kv/k", "If-Match", tag).code)
	e.get("/v1/kv/k", "If-Match", etag("old")).wantError(t, 412, "precondition_failed", "/k")
	e.get("/v1/kv/k?no-digest", "If-Match", etag("old")).wantError(t, 412, "precondition_failed", "/k")

	// Dictionaries: HEAD honours If-None-Match with the dictionary digest.
	e.set("/d/x", "x")
	dt := e.do("HEAD", "/v1/kv/d", nil).hdr.Get("ETag")
	assert.Equal(t, http.StatusNotModified, e.do("HEAD", "/v1/kv/d", nil, "If-None-Match", dt).code)

	// If-Range: the range applies only while the value is the same.
	r = e.get("/v1/kv/k", "Range", "bytes=2-3", "If-Range", tag)
	require.Equal(t, http.StatusPartialContent, r.code)
	assert.Equal(t, "23", r.body)
	r = e.get("/v1/kv/k", "Range", "bytes=2-3", "If-Range", etag("old"))
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "0123456789", r.body)
	r = e.get("/v1/kv/k", "Range", "bytes=2-3", "If-Range", lm.Format(http.TimeFormat))
	require.Equal(t, http.StatusPartialContent, r.code)
}

func TestRange(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/v", "0123456789")
	e.set("/empty", "")
	for _, c := range []struct {
		key, rng  string
		code      int
		body      string
		contRange string
	}{
		{"/v", "bytes=0-4", 206, "01234", "bytes 0-4/10"},
		{"/v", "bytes=5-", 206, "56789", "bytes 5-9/10"},
		{"/v", "bytes=-3", 206, "789", "bytes 7-9/10"},
		{"/v", "bytes=-30", 206, "0123456789", "bytes 0-9/10"},
		{"/v", "bytes=8-100", 206, "89", "bytes 8-9/10"},
		{"/v", "bytes=9-9", 206, "9", "bytes 9-9/10"},
		{"/v", "bytes=10-", 416, "", "bytes */10"},
		{"/v", "bytes=10-20", 416, "", "bytes */10"},
		{"/v", "bytes=-0", 416, "", "bytes */10"},
		{"/v", "bytes=5-3", 200, "0123456789", ""},     // invalid: ignored
		{"/v", "bytes=0-1,4-5", 200, "0123456789", ""}, // several: the whole value
		{"/v", "bytes=x-y", 200, "0123456789", ""},     // malformed: ignored
		{"/v", "lines=1-2", 200, "0123456789", ""},     // unknown unit: ignored
		{"/empty", "bytes=0-0", 416, "", "bytes */0"},
		{"/empty", "bytes=-5", 416, "", "bytes */0"},
		{"/empty", "bytes=0-", 416, "", "bytes */0"},
	} {
		r := e.get("/v1/kv"+c.key, "Range", c.rng)
		require.Equal(t, c.code, r.code, "%s %s: %s", c.key, c.rng, r.body)
		assert.Equal(t, c.contRange, r.hdr.Get("Content-Range"), "%s %s", c.key, c.rng)
		if c.code == 416 {
			r.wantError(t, 416, httpapi.CodeRangeNotSatisfied, c.key)
			continue
		}
		assert.Equal(t, c.body, r.body, "%s %s", c.key, c.rng)
		assert.Equal(t, fmt.Sprint(len(c.body)), r.hdr.Get("Content-Length"), "%s %s", c.key, c.rng)
	}
	// HEAD with a range describes the part.
	r := e.do("HEAD", "/v1/kv/v", nil, "Range", "bytes=2-5")
	assert.Equal(t, 206, r.code)
	assert.Equal(t, "4", r.hdr.Get("Content-Length"))
	// A range of a dictionary is still value_expected.
	e.set("/d/x", "x")
	e.get("/v1/kv/d", "Range", "bytes=0-1").wantError(t, 409, "value_expected", "/d")
}

func TestPatch(t *testing.T) {
	e := newEnv(t, httpapi.Options{MaxPatch: 8})
	e.set("/k", "0123456789")
	require.Equal(t, 204, e.do("PATCH", "/v1/kv/k?offset=2", strings.NewReader("ab")).code)
	v, _ := e.value("/k")
	assert.Equal(t, "01ab456789", v)
	require.Equal(t, 204, e.do("PATCH", "/v1/kv/k?offset=100", strings.NewReader("Z")).code) // appended
	v, _ = e.value("/k")
	assert.Equal(t, "01ab456789Z", v)
	require.Equal(t, 204, e.do("PATCH", "/v1/kv/new?offset=0", strings.NewReader("n")).code) // created
	v, _ = e.value("/new")
	assert.Equal(t, "n", v)
	// A chunked body is fine for PATCH: it is bounded by MaxPatch anyway.
	require.Equal(t, 204, e.do("PATCH", "/v1/kv/k?offset=0", io.MultiReader(strings.NewReader("C"))).code)

	for _, q := range []string{"", "?offset=", "?offset=-1", "?offset=abc", "?offset=1.5", "?offset=99999999999999999999"} {
		e.do("PATCH", "/v1/kv/k"+q, strings.NewReader("x")).wantError(t, 400, "invalid_argument", "/k")
	}
	e.do("PATCH", "/v1/kv/k?offset=0", strings.NewReader("123456789")).wantError(t, 413, httpapi.CodeTooLarge, "/k")
	e.do("PATCH", "/v1/kv/k?offset=0", io.MultiReader(strings.NewReader("123456789"))).wantError(t, 413, httpapi.CodeTooLarge, "/k")
	e.set("/d/x", "x")
	e.do("PATCH", "/v1/kv/d?offset=0", strings.NewReader("x")).wantError(t, 409, "value_expected", "/d")
	e.do("PATCH", "/v1/kv/d/x/y?offset=0", strings.NewReader("x")).wantError(t, 409, "dictionary_expected", "/d/x")
	v, _ = e.value("/k")
	assert.Equal(t, "C1ab456789Z", v)
}

func TestAllocate(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	r := e.do("POST", "/v1/kv/z?allocate=2K", nil)
	require.Equal(t, 201, r.code, r.body)
	assert.Equal(t, "/v1/kv/z", r.hdr.Get("Location"))
	v, _ := e.value("/z")
	assert.Equal(t, strings.Repeat("\x00", 2048), v)

	mt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	require.Equal(t, 201, e.do("POST", "/v1/kv/m?allocate=1&mtime="+mt.Format(time.RFC3339), nil).code)
	assert.Equal(t, mt.Format(http.TimeFormat), e.do("HEAD", "/v1/kv/m", nil).hdr.Get("Last-Modified"))

	e.do("POST", "/v1/kv/z?allocate=1", nil).wantError(t, 409, "already_present", "/z")
	e.do("POST", "/v1/kv/?allocate=1", nil).wantError(t, 409, "already_present", "/")
	e.do("POST", "/v1/kv/z/below?allocate=1", nil).wantError(t, 409, "dictionary_expected", "/z")
	for _, q := range []string{"allocate=", "allocate=12Q", "allocate=-1", "allocate=1.5K", "allocate=99999999999T", "allocate=1&mtime=yesterday"} {
		e.do("POST", "/v1/kv/bad?"+q, nil).wantError(t, 400, "invalid_argument", "/bad")
	}
	_, err := e.value("/bad")
	require.ErrorIs(t, err, kv.ErrNotFound)
}

func TestRename(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/a", "A")
	require.Equal(t, 204, e.do("POST", "/v1/kv/a?rename-to=/b/c", nil).code)
	v, _ := e.value("/b/c")
	assert.Equal(t, "A", v)
	// The destination is a key in the query: escaped as a query value.
	require.Equal(t, 204, e.do("POST", "/v1/kv/b/c?rename-to=%2Fsp%20ace%2Fq%3F", nil).code)
	v, _ = e.value("/sp ace/q?")
	assert.Equal(t, "A", v)

	e.do("POST", "/v1/kv/nothing?rename-to=/x", nil).wantError(t, 404, "not_found", "/nothing")
	d := e.do("POST", "/v1/kv/sp%20ace?rename-to=/sp%20ace/deeper", nil).wantError(t, 409, "rename_source_prefix", "/sp ace")
	assert.Equal(t, "/sp ace/deeper", d.Dest)
	assert.Equal(t, "Rename: source /sp ace is prefix of destination /sp ace/deeper", d.Message)
	e.do("POST", "/v1/kv/sp%20ace?rename-to=/x/../y", nil).wantError(t, 400, "invalid_key", "")
	e.do("POST", "/v1/kv/sp%20ace?rename-to=/x%00y", nil).wantError(t, 400, "invalid_key", "")

	// POST needs exactly one action.
	e.do("POST", "/v1/kv/sp%20ace", nil).wantError(t, 400, "invalid_argument", "/sp ace")
	e.do("POST", "/v1/kv/sp%20ace?rename-to=/x&allocate=1", nil).wantError(t, 400, "invalid_argument", "/sp ace")
}

func TestDelete(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/d/x", "x")
	e.set("/d/y/z", "z")
	e.set("/k", "k")
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/d/x", nil).code)
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/d/x", nil).code) // idempotent
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/d", nil).code)   // recursive
	kind, err := e.store.Exists(kv.MustKey("/d"))
	require.NoError(t, err)
	assert.Equal(t, kv.None, kind)
	require.Equal(t, 204, e.do("DELETE", "/v1/kv/", nil).code) // the root: everything
	assert.JSONEq(t, `{"key":"/","entries":[]}`, e.get("/v1/kv/?list").body)
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	for _, c := range []struct{ method, path, allow string }{
		{"OPTIONS", "/v1/kv/k", "GET, HEAD, PUT, PATCH, POST, DELETE"},
		{"TRACE", "/v1/kv/", "GET, HEAD, PUT, PATCH, POST, DELETE"},
		{"POST", "/v1/status", "GET, HEAD"},
		{"PUT", "/metrics", "GET, HEAD"},
		{"DELETE", "/healthz", "GET, HEAD"},
		{"PUT", "/v1/readers/abc", "GET, HEAD, DELETE"},
	} {
		r := e.do(c.method, c.path, nil)
		r.wantError(t, 405, httpapi.CodeMethodNotAllowed, "")
		assert.Equal(t, c.allow, r.hdr.Get("Allow"), "%s %s", c.method, c.path)
	}
}

func TestBadKeys(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	long := strings.Repeat("s", kv.MaxSegmentLen+1)
	var segs []string
	for range 16 {
		segs = append(segs, strings.Repeat("k", 255))
	}
	huge := strings.Join(segs, "/") // 16*256-1 = 4095 bytes without the leading '/'
	for _, p := range []string{
		"/v1/kv/a/../b",
		"/v1/kv/..",
		"/v1/kv/a/.",
		"/v1/kv/./a",
		"/v1/kv/%2e%2e/x",
		"/v1/kv/a/%2E%2E",
		"/v1/kv/a/%2e",
		"/v1/kv/a%00b",
		"/v1/kv/a/%00",
		"/v1/kv/a%2Fb", // an encoded '/' cannot make a segment
		"/v1/kv/" + long,
		"/v1/kv/" + huge,
		"/v1/kv/" + strings.Repeat("%41", 5000),
	} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			r := e.do(m, p, strings.NewReader("x"))
			r.wantError(t, 400, "invalid_key", "")
		}
		r := e.do("HEAD", p, nil)
		assert.Equal(t, 400, r.code, p)
		assert.Equal(t, "invalid_key", r.hdr.Get(httpapi.HeaderError), p)
	}
	// Bad percent-encoding, which net/http will not send: net/http's server
	// refuses the request line itself.
	r := e.raw("PUT /v1/kv/a%zzb HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\nx")
	assert.Equal(t, 400, r.code)
	assert.JSONEq(t, `{"key":"/","entries":[]}`, e.get("/v1/kv/?list").body, "a bad key stored something")

	// The longest key is fine; Options.MaxKeyLen lowers the limit.
	require.Equal(t, 201, e.put("/v1/kv/"+huge[:len(huge)-1], "x").code)
	e2 := newEnv(t, httpapi.Options{MaxKeyLen: 10})
	require.Equal(t, 201, e2.put("/v1/kv/123456789", "x").code) // "/123456789": 10 bytes
	e2.put("/v1/kv/1234567890", "x").wantError(t, 400, "invalid_key", "")
	e2.do("POST", "/v1/kv/123456789?rename-to=/1234567890", nil).wantError(t, 400, "invalid_key", "")
}

func TestAuth(t *testing.T) {
	e := newEnv(t, httpapi.Options{Token: "s3cret"})
	e.token = ""
	for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret2", "Bearer", "Basic czNjcmV0", "s3cret"} {
		for _, p := range []string{"/v1/kv/k", "/v1/status", "/metrics", "/v1/readers/x", "/nowhere"} {
			r := e.get(p, "Authorization", auth)
			r.wantError(t, 401, httpapi.CodeUnauthorized, "")
			assert.Equal(t, `Bearer realm="tarstore"`, r.hdr.Get("WWW-Authenticate"))
		}
		e.put("/v1/kv/k", "x", "Authorization", auth).wantError(t, 401, httpapi.CodeUnauthorized, "")
	}
	_, err := e.value("/k")
	require.ErrorIs(t, err, kv.ErrNotFound)
	r := e.get("/healthz")
	require.Equal(t, 200, r.code)
	assert.Equal(t, "ok\n", r.body)
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret", "Bearer  s3cret "} {
		assert.Equal(t, 200, e.get("/v1/status", "Authorization", auth).code, auth)
	}
	require.Equal(t, 201, e.put("/v1/kv/k", "x", "Authorization", "Bearer s3cret").code)
}

func TestReadOnly(t *testing.T) {
	e := newEnv(t, httpapi.Options{ReadOnly: true})
	e.set("/k", "v")
	for _, c := range []struct{ method, path, op string }{
		{"PUT", "/v1/kv/k", "set"},
		{"PUT", "/v1/kv/new", "set"},
		{"PATCH", "/v1/kv/k?offset=0", "set_partial"},
		{"POST", "/v1/kv/n?allocate=1", "allocate"},
		{"POST", "/v1/kv/k?rename-to=/m", "rename"},
		{"DELETE", "/v1/kv/k", "remove"},
	} {
		d := e.do(c.method, c.path, strings.NewReader("x")).wantError(t, 403, "read_only", strings.TrimPrefix(strings.Split(c.path, "?")[0], "/v1/kv"))
		assert.Equal(t, "The store is read-only", d.Message)
		assert.Equal(t, c.op, d.Op)
	}
	v, _ := e.value("/k")
	assert.Equal(t, "v", v)
	assert.Equal(t, "v", e.get("/v1/kv/k").body)
	assert.Equal(t, 201, e.do("POST", "/v1/kv/k?open", nil).code, "opening a reader is a read")
	var st httpapi.Status
	require.NoError(t, json.Unmarshal([]byte(e.get("/v1/status").body), &st))
	assert.True(t, st.ReadOnly)
}

func TestStatus(t *testing.T) {
	e := newEnv(t, httpapi.Options{Version: "1.2.3"})
	r := e.get("/v1/status")
	require.Equal(t, 200, r.code)
	var st httpapi.Status
	require.NoError(t, json.Unmarshal([]byte(r.body), &st))
	free, _ := e.store.Free()
	assert.Equal(t, httpapi.Status{Version: "1.2.3", Free: free}, st)

	dev, err := mem.New(4096, 1024)
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	st2, err := kvtar.New(clock.NewFake(t0), dev)
	require.NoError(t, err)
	e2 := serveStore(t, nil, st2, httpapi.Options{Version: "v", Status: func() (httpapi.Status, error) {
		info, err := st2.Stat()
		if err != nil {
			return httpapi.Status{}, err
		}
		return httpapi.Status{Capacity: info.Size, Free: info.Free, Largest: info.Largest, Entries: info.Values,
			Device: httpapi.DeviceStatus{Driver: info.Device.Driver, Model: info.Device.Model,
				SectorSize: info.Device.SectorSize, Sectors: info.Device.Sectors}}, nil
	}})
	require.Equal(t, 201, e2.put("/v1/kv/a", "aaa").code)
	r = e2.get("/v1/status")
	require.Equal(t, 200, r.code)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &raw))
	for _, f := range []string{"version", "capacity", "free", "largest", "entries", "read_only", "device"} {
		assert.Contains(t, raw, f)
	}
	assert.Equal(t, map[string]any{"driver": "mem", "model": "mem", "sector_size": 4096.0, "sectors": 1024.0}, raw["device"])
	assert.Equal(t, 1.0, raw["entries"])

	// A closed store: 503 closed.
	require.NoError(t, e.store.Close())
	d := e.get("/v1/status").wantError(t, 503, "closed", "/")
	assert.Equal(t, "The store is closed", d.Message)
	e.get("/v1/kv/k").wantError(t, 503, "closed", "/k")
}

// faultyStore fails every operation with err.
type faultyStore struct {
	kv.RW
	err func(op string, k kv.Key) error
}

func (s faultyStore) Open(k kv.Key) (kv.Reader, error) { return nil, s.err("get", k) }
func (s faultyStore) Set(k kv.Key, v []byte) error     { return s.err("set", k) }
func (s faultyStore) SetFrom(k kv.Key, r io.Reader, n int64) error {
	return s.err("set", k)
}
func (s faultyStore) Exists(k kv.Key) (kv.Kind, error) { return kv.None, nil }

func TestStoreFailures(t *testing.T) {
	for _, c := range []struct {
		err    func(op string, k kv.Key) error
		status int
		code   string
	}{
		{func(op string, k kv.Key) error { return kv.Storage(op, k, errors.New("EIO")) }, 500, "storage_error"},
		{func(op string, k kv.Key) error { return &kv.Error{Op: op, Key: k, Err: kv.ErrCorrupt, Detail: "bad"} }, 500, "corrupt"},
		{func(op string, k kv.Key) error { return kv.Closed(op, k) }, 503, "closed"},
		{func(op string, k kv.Key) error { return errors.New("not a kv error") }, 500, "internal"},
	} {
		clk := clock.NewFake(t0)
		e := serveStore(t, clk, faultyStore{RW: kvtestModel(), err: c.err}, httpapi.Options{})
		d := e.get("/v1/kv/k").errorDetail(t)
		assert.Equal(t, c.code, d.Code)
		r := e.put("/v1/kv/k", "v")
		assert.Equal(t, c.status, r.code)
		if c.code == "storage_error" {
			assert.Equal(t, "Storage error on /k: EIO", d.Message)
		}
	}
	assert.Equal(t, 500, httpapi.StatusCode("storage_error"))
	assert.Equal(t, 500, httpapi.StatusCode("corrupt"))
	assert.Equal(t, 500, httpapi.StatusCode("whatever"))
	assert.Equal(t, 404, httpapi.StatusCode("not_found"))
	assert.Equal(t, 409, httpapi.StatusCode("rename_source_prefix"))
	assert.Equal(t, 507, httpapi.StatusCode("no_space"))
	assert.Equal(t, 403, httpapi.StatusCode("read_only"))
	assert.Equal(t, 400, httpapi.StatusCode("invalid_key"))
}

func TestReaders(t *testing.T) {
	e := newEnv(t, httpapi.Options{MaxReaders: 2})
	e.set("/k", "0123456789")
	r := e.do("POST", "/v1/kv/k?open", nil)
	require.Equal(t, 201, r.code, r.body)
	var rb httpapi.ReaderBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &rb))
	assert.Equal(t, "/k", rb.Key)
	assert.Equal(t, int64(10), rb.Size)
	path := "/v1/readers/" + rb.ID
	assert.Equal(t, path, r.hdr.Get("Location"))

	// A snapshot: replacing the key changes nothing for the reader.
	require.Equal(t, 204, e.put("/v1/kv/k", "replaced").code)
	r = e.get(path, "Range", "bytes=2-4")
	require.Equal(t, 206, r.code)
	assert.Equal(t, "234", r.body)
	assert.Equal(t, "bytes 2-4/10", r.hdr.Get("Content-Range"))
	assert.Equal(t, "0123456789", e.get(path).body)
	e.get(path, "Range", "bytes=10-").wantError(t, 416, httpapi.CodeRangeNotSatisfied, "/k")

	// Bounded: a third reader is refused.
	require.Equal(t, 201, e.do("POST", "/v1/kv/k?open", nil).code)
	e.do("POST", "/v1/kv/k?open", nil).wantError(t, 503, httpapi.CodeTooManyReaders, "/k")

	require.Equal(t, 204, e.do("DELETE", path, nil).code)
	e.get(path).wantError(t, 410, httpapi.CodeReaderGone, "")
	e.do("DELETE", path, nil).wantError(t, 410, httpapi.CodeReaderGone, "")
	e.get("/v1/readers/").wantError(t, 410, httpapi.CodeReaderGone, "")
	require.Equal(t, 201, e.do("POST", "/v1/kv/k?open", nil).code, "a closed session frees its slot")

	e.set("/d/x", "x")
	e.do("POST", "/v1/kv/d?open", nil).wantError(t, 409, "value_expected", "/d")
	e.do("POST", "/v1/kv/nothing?open", nil).wantError(t, 404, "not_found", "/nothing")
	m := e.h.Metrics().Requests
	assert.Equal(t, 1, int(m[httpapi.RequestLabel{Op: "read", Code: "206"}]))
	assert.Equal(t, 1, int(m[httpapi.RequestLabel{Op: "read", Code: "200"}]))
	assert.Equal(t, 1, int(m[httpapi.RequestLabel{Op: "read", Code: "416"}]))
	assert.Equal(t, 2, int(m[httpapi.RequestLabel{Op: "read", Code: "410"}]))
	assert.Equal(t, 1, int(m[httpapi.RequestLabel{Op: "close_reader", Code: "410"}]))
	e.h.Close()
	e.get(path).wantError(t, 410, httpapi.CodeReaderGone, "")
}

// TestConcurrentClients: many clients write, read, list and remove
// overlapping keys at once (meaningful under -race); afterwards every key
// holds one of the values written to it, whole.
func TestConcurrentClients(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				key := fmt.Sprintf("/c/k%d", (g+i)%5)
				val := strings.Repeat(fmt.Sprintf("g%di%d;", g, i), 100+i)
				codes := []int{}
				codes = append(codes, e.put("/v1/kv"+key, val).code)
				r := e.get("/v1/kv" + key)
				codes = append(codes, r.code)
				if r.code == 200 && r.hdr.Get("ETag") != etag(r.body) {
					t.Errorf("GET %s: ETag %s does not match the body", key, r.hdr.Get("ETag"))
				}
				codes = append(codes, e.get("/v1/kv/c?list").code)
				codes = append(codes, e.do("HEAD", "/v1/kv/c", nil).code)
				codes = append(codes, e.do("PATCH", "/v1/kv"+key+"?offset=0", strings.NewReader("g")).code)
				if i%7 == 0 {
					codes = append(codes, e.do("DELETE", "/v1/kv"+key, nil).code)
				}
				for _, c := range codes {
					if c >= 300 && c != 404 {
						t.Errorf("%s: status %d (%v)", key, c, codes)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	entries, err := e.store.List(kv.MustKey("/c"))
	require.NoError(t, err)
	for _, en := range entries {
		v, err := e.store.Get(en.Key)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(v), "g"), "%s = %.20q", en.Key, v)
		r := e.get(httpapi.KeyPath(en.Key))
		assert.Equal(t, etag(string(v)), r.hdr.Get("ETag"), "cached ETag of %s is stale", en.Key)
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{
		"0": 0, "4096": 4096, "1K": 1024, "1k": 1024, "64K": 64 << 10, "1M": 1 << 20, "2G": 2 << 30,
		"3T": 3 << 40, "1KiB": 1024, "5MiB": 5 << 20, "8388607T": 8388607 << 40,
		"9223372036854775807": 1<<63 - 1,
	} {
		got, err := httpapi.ParseSize(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "-1", "1.5K", "K", "1KB", "1B", "1iB", "1 K", " 1", "1P", "8388608T", "9223372036854775808", "0x10", "1e3", "1kib"} {
		_, err := httpapi.ParseSize(s)
		require.Error(t, err, s)
		assert.ErrorIs(t, err, kv.ErrInvalidArgument, s)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", s))
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	r := e.get("/healthz")
	assert.Equal(t, 200, r.code)
	assert.Equal(t, "ok\n", r.body)
	assert.Equal(t, 200, e.do("HEAD", "/healthz", nil).code)
}
