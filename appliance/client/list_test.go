package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// TestWalk: Walk lists the direct children, or everything below a key,
// with sizes and last-modified times, and reports the list errors.
func TestWalk(t *testing.T) {
	p := newPair(t, httpapi.Options{}, map[string]string{"/d/a": "aa", "/d/s/x": "x", "/d/s/t/y": "yyy", "/e": ""})
	var got []string
	collect := func(e client.Entry) error {
		got = append(got, fmt.Sprintf("%s %s %d %v", e.Kind, e.Key, e.Size, e.LastModified.Equal(t0)))
		return nil
	}
	require.NoError(t, p.remote.Walk(kv.MustKey("/d"), true, collect))
	assert.Equal(t, []string{
		"value /d/a 2 true", "dictionary /d/s 0 true", "dictionary /d/s/t 0 true",
		"value /d/s/t/y 3 true", "value /d/s/x 1 true",
	}, got)
	got = nil
	require.NoError(t, p.remote.Walk(kv.Root, false, collect))
	assert.Equal(t, []string{"dictionary /d 0 true", "value /e 0 true"}, got)

	err := p.remote.Walk(kv.MustKey("/e"), true, collect)
	assert.True(t, errors.Is(err, kv.ErrDictionaryExpected), "%v", err)
	err = p.remote.Walk(kv.MustKey("/nope"), false, collect)
	assert.True(t, errors.Is(err, kv.ErrNotFound), "%v", err)
	stop := errors.New("stop")
	assert.Equal(t, stop, p.remote.Walk(kv.Root, true, func(client.Entry) error { return stop }))
}

// TestWalkServerFailure: a listing the server ends with an error after
// some entries is a failed walk, with the server's error.
func TestWalkServerFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"key":"/","entries":[{"key":"/a","kind":"value","size":1}],`+
			`"error":{"code":"storage_error","key":"/b","message":"Storage error on /b: injected"}}`)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, client.Options{})
	require.NoError(t, err)
	defer c.Close()
	n := 0
	err = c.Walk(kv.Root, true, func(client.Entry) error { n++; return nil })
	assert.Equal(t, 1, n)
	var ke *kv.Error
	require.True(t, errors.As(err, &ke), "%v", err)
	assert.True(t, errors.Is(err, kv.ErrStorage))
	assert.Equal(t, "/b", ke.Key.String())
	assert.Contains(t, ke.Message(), "injected")

	// A body cut short is a failure too, never a shorter listing.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"key":"/","entries":[{"key":"/a","kind":"value","size":1},`)
	}))
	defer srv2.Close()
	c2, err := client.New(srv2.URL, client.Options{})
	require.NoError(t, err)
	defer c2.Close()
	err = c2.Walk(kv.Root, true, func(client.Entry) error { return nil })
	assert.True(t, errors.Is(err, kv.ErrStorage), "%v", err)
}
