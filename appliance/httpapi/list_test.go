package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// TestListRecursive: ?list&recursive lists everything below the key depth
// first, each dictionary followed by what is below it; ?list&long adds each
// entry's last-modified time (for a dictionary kv's last_modified, one
// level).
func TestListRecursive(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	e.set("/d/b", "bb")
	e.set("/d/sub/x", "x")
	e.set("/d/a", "")
	e.set("/d/sub/deeper/y", "yyy")
	e.set("/e", "e")
	r := e.get("/v1/kv/d?list&recursive")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "application/json", r.hdr.Get("Content-Type"))
	assert.JSONEq(t, `{"key":"/d","entries":[
		{"key":"/d/a","kind":"value","size":0},
		{"key":"/d/b","kind":"value","size":2},
		{"key":"/d/sub","kind":"dictionary"},
		{"key":"/d/sub/deeper","kind":"dictionary"},
		{"key":"/d/sub/deeper/y","kind":"value","size":3},
		{"key":"/d/sub/x","kind":"value","size":1}]}`, r.body)

	r = e.get("/v1/kv/?list&recursive&long")
	require.Equal(t, http.StatusOK, r.code, r.body)
	var lb httpapi.ListBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &lb))
	require.Nil(t, lb.Error)
	got := map[string]time.Time{}
	for _, le := range lb.Entries {
		require.NotNil(t, le.LastModified, le.Key)
		got[le.Key] = *le.LastModified
	}
	s := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	assert.Equal(t, map[string]time.Time{
		"/d": s(3), "/d/a": s(3), "/d/b": s(1), "/d/sub": s(2), "/d/sub/deeper": s(4),
		"/d/sub/deeper/y": s(4), "/d/sub/x": s(2), "/e": s(5),
	}, got)

	// Without long, no times; errors are those of a plain list.
	r = e.get("/v1/kv/d?list")
	assert.NotContains(t, r.body, "last_modified")
	e.get("/v1/kv/e?list&recursive").wantError(t, 409, "dictionary_expected", "/e")
	e.get("/v1/kv/nothing?list&recursive").wantError(t, 404, "not_found", "/nothing")
	assert.JSONEq(t, `{"key":"/d/sub/deeper","entries":[{"key":"/d/sub/deeper/y","kind":"value","size":3}]}`,
		e.get("/v1/kv/d/sub/deeper?list&recursive").body)
}

// gatedStore blocks List of one key until gate is closed, and fails List
// of another with a storage error.
type gatedStore struct {
	kv.RW
	block, fail kv.Key
	reached     chan struct{}
	gate        chan struct{}
}

func (s *gatedStore) List(k kv.Key) ([]kv.Entry, error) {
	switch {
	case k.String() == s.block.String():
		close(s.reached)
		<-s.gate
	case k.String() == s.fail.String():
		return nil, kv.Storage("list", k, fmt.Errorf("injected"))
	}
	return s.RW.List(k)
}

// TestListStreamed: a recursive listing reaches the client while the store
// is still being walked (the server does not hold it whole), and a failure
// in the middle ends the body with an error after what was sent.
func TestListStreamed(t *testing.T) {
	model := kvtestModel()
	for i := range 600 {
		require.NoError(t, model.Set(kv.MustKey(fmt.Sprintf("/a/v%03d", i)), []byte("x")))
	}
	require.NoError(t, model.Set(kv.MustKey("/b/x"), []byte("x")))
	require.NoError(t, model.Set(kv.MustKey("/c/x"), []byte("x")))
	gs := &gatedStore{RW: model, block: kv.MustKey("/b"), fail: kv.MustKey("/c"),
		reached: make(chan struct{}), gate: make(chan struct{})}
	e := serveStore(t, nil, gs, httpapi.Options{})

	// The response is read on another goroutine: with a buffered listing
	// not even its status would arrive while the walk is held at /b.
	var seen strings.Builder
	var br *bufio.Reader
	found := make(chan error, 1)
	go func() {
		resp, err := e.hc.Get(e.srv.URL + "/v1/kv/?list&recursive")
		if err != nil {
			found <- err
			return
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			found <- fmt.Errorf("status %d", resp.StatusCode)
			return
		}
		br = bufio.NewReader(resp.Body)
		for !strings.Contains(seen.String(), `"/a/v500"`) {
			b, err := br.ReadByte()
			if err != nil {
				found <- err
				return
			}
			seen.WriteByte(b)
		}
		found <- nil
	}()
	<-gs.reached // the walk is at /b, and stays there until the gate opens
	select {
	case err := <-found:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		close(gs.gate)
		t.Fatal("the entries before /b did not arrive while the walk was held at /b: the listing is buffered")
	}
	close(gs.gate)
	rest := new(strings.Builder)
	_, err := br.WriteTo(rest)
	require.NoError(t, err)
	var lb httpapi.ListBody
	require.NoError(t, json.Unmarshal([]byte(seen.String()+rest.String()), &lb))
	require.NotNil(t, lb.Error, "a failure in the walk must end the body with an error")
	assert.Equal(t, "storage_error", lb.Error.Code)
	assert.Equal(t, "/c", lb.Error.Key)
	// Everything up to /c was sent: /a, its 600 values, /b, /b/x, /c.
	require.Len(t, lb.Entries, 604)
	assert.Equal(t, "/c", lb.Entries[603].Key)
}
