package client_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

var t0 = time.Date(2024, time.June, 1, 12, 0, 0, 0, time.UTC)

// pair is a client over a served model and an embedded model with the
// same contents, to compare the two.
type pair struct {
	remote   *client.Client
	embedded kv.RW
	h        *httpapi.Handler
	srv      *httptest.Server
}

func newPair(t *testing.T, opts httpapi.Options, fill map[string]string) *pair {
	served, local := kvtest.NewModel(clock.NewFake(t0)), kvtest.NewModel(clock.NewFake(t0))
	for k, v := range fill {
		require.NoError(t, served.Set(kv.MustKey(k), []byte(v)))
		require.NoError(t, local.Set(kv.MustKey(k), []byte(v)))
	}
	h := httpapi.New(served, opts)
	srv := httptest.NewServer(h)
	c, err := client.New(srv.URL, client.Options{Token: opts.Token})
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		h.Close()
		served.Close()
	})
	return &pair{remote: c, embedded: local, h: h, srv: srv}
}

// TestErrorsAsEmbedded: the client's errors are the embedded store's: the
// same sentinel, operation, key, destination and message, so the CLI
// prints the same line either way.
func TestErrorsAsEmbedded(t *testing.T) {
	p := newPair(t, httpapi.Options{}, map[string]string{"/v": "value", "/d/w": "w"})
	k := kv.MustKey
	for _, c := range []struct {
		name string
		call func(s kv.RW) error
	}{
		{"Get missing", func(s kv.RW) error { _, err := s.Get(k("/nothing")); return err }},
		{"Get dictionary", func(s kv.RW) error { _, err := s.Get(k("/d")); return err }},
		{"Get through value", func(s kv.RW) error { _, err := s.Get(k("/v/x")); return err }},
		{"GetPartial dictionary", func(s kv.RW) error { _, err := s.GetPartial(k("/d"), 0, 0); return err }},
		{"GetPartial negative", func(s kv.RW) error { _, err := s.GetPartial(k("/v"), -1, 1); return err }},
		{"Size dictionary", func(s kv.RW) error { _, err := s.Size(k("/d")); return err }},
		{"Size missing", func(s kv.RW) error { _, err := s.Size(k("/nothing")); return err }},
		{"List value", func(s kv.RW) error { _, err := s.List(k("/v")); return err }},
		{"LastModified missing", func(s kv.RW) error { _, err := s.LastModified(k("/nothing")); return err }},
		{"Digest missing", func(s kv.RW) error { _, err := s.Digest(k("/v/x")); return err }},
		{"Open dictionary", func(s kv.RW) error { _, err := s.Open(k("/d")); return err }},
		{"Set root", func(s kv.RW) error { return s.Set(kv.Root, []byte("x")) }},
		{"Set through value", func(s kv.RW) error { return s.Set(k("/d/w/x/y"), []byte("x")) }},
		{"SetFrom negative", func(s kv.RW) error { return s.SetFrom(k("/n"), strings.NewReader(""), -1) }},
		{"SetFrom short", func(s kv.RW) error { return s.SetFrom(k("/n"), strings.NewReader("ab"), 5) }},
		{"SetPartial dictionary", func(s kv.RW) error { return s.SetPartial(k("/d"), 0, []byte("x")) }},
		{"Allocate present", func(s kv.RW) error { return s.Allocate(k("/v"), 1, time.Time{}) }},
		{"Allocate through value", func(s kv.RW) error { return s.Allocate(k("/v/x"), 1, time.Time{}) }},
		{"Rename missing", func(s kv.RW) error { return s.Rename(k("/nothing"), k("/x")) }},
		{"Rename prefix", func(s kv.RW) error { return s.Rename(k("/d"), k("/d/e/f")) }},
		{"Rename dictionary onto value", func(s kv.RW) error { return s.Rename(k("/d"), k("/v")) }},
		{"Allocate negative", func(s kv.RW) error { return s.Allocate(k("/n"), -1, time.Time{}) }},
		{"SetPartial negative", func(s kv.RW) error { return s.SetPartial(k("/v"), -1, []byte("x")) }},
	} {
		want, got := c.call(p.embedded), c.call(p.remote)
		require.Error(t, want, c.name)
		require.Error(t, got, c.name)
		var we, ge *kv.Error
		require.ErrorAs(t, want, &we, c.name)
		require.ErrorAs(t, got, &ge, c.name)
		assert.Equal(t, kv.Code(want), kv.Code(got), c.name)
		assert.ErrorIs(t, got, we.Err, c.name)
		assert.Equal(t, we.Op, ge.Op, c.name)
		assert.Equal(t, we.Key, ge.Key, c.name)
		assert.Equal(t, we.Dest, ge.Dest, c.name)
		assert.Equal(t, want.Error(), got.Error(), c.name)
	}
}

func TestReads(t *testing.T) {
	p := newPair(t, httpapi.Options{}, map[string]string{"/v": "0123456789", "/d/e": ""})
	c := p.remote
	for _, r := range []struct {
		off, n int64
		want   string
	}{{0, 3, "012"}, {8, 100, "89"}, {10, 1, ""}, {3, math.MaxInt64, "3456789"}, {math.MaxInt64, 1, ""}, {4, 0, ""}} {
		got, err := c.GetPartial(kv.MustKey("/v"), r.off, r.n)
		require.NoError(t, err)
		assert.Equal(t, r.want, string(got), "GetPartial(%d, %d)", r.off, r.n)
	}
	got, err := c.GetPartial(kv.MustKey("/d/e"), 0, 5)
	require.NoError(t, err)
	assert.Empty(t, got)
	kind, err := c.Exists(kv.MustKey("/d"))
	require.NoError(t, err)
	assert.Equal(t, kv.Dictionary, kind)
	d, err := c.Digest(kv.MustKey("/d"))
	require.NoError(t, err)
	want, _ := p.embedded.Digest(kv.MustKey("/d"))
	assert.Equal(t, want, d)
	lm, err := c.LastModified(kv.MustKey("/v"))
	require.NoError(t, err)
	assert.True(t, lm.Equal(t0), "LastModified = %v", lm)
}

// TestClosed: after Close every call fails with closed and sends nothing.
func TestClosed(t *testing.T) {
	p := newPair(t, httpapi.Options{}, map[string]string{"/v": "v"})
	r, err := p.remote.Open(kv.MustKey("/v"))
	require.NoError(t, err)
	before := len(p.h.Metrics().Requests)
	require.NoError(t, p.remote.Close())
	require.NoError(t, p.remote.Close())
	k := kv.MustKey("/v")
	for name, err := range map[string]error{
		"Exists":       second(p.remote.Exists(k)),
		"Get":          second(p.remote.Get(k)),
		"GetPartial":   second(p.remote.GetPartial(k, 0, 1)),
		"Open":         second(p.remote.Open(k)),
		"Size":         second(p.remote.Size(k)),
		"List":         second(p.remote.List(k)),
		"LastModified": second(p.remote.LastModified(k)),
		"Digest":       second(p.remote.Digest(k)),
		"Free":         second(p.remote.Free()),
		"Status":       second(p.remote.Status()),
		"Set":          p.remote.Set(k, nil),
		"SetPartial":   p.remote.SetPartial(k, 0, nil),
		"Allocate":     p.remote.Allocate(k, 0, time.Time{}),
		"Remove":       p.remote.Remove(k),
		"Rename":       p.remote.Rename(k, kv.MustKey("/w")),
		"ReadAt":       second(r.ReadAt(make([]byte, 1), 0)),
	} {
		assert.ErrorIs(t, err, kv.ErrClosed, name)
	}
	assert.NoError(t, r.Close())
	assert.Equal(t, before, len(p.h.Metrics().Requests), "requests were sent after Close")
}

func second[T any](_ T, err error) error { return err }

func TestTransportFailure(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c, err := client.New(srv.URL, client.Options{})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(kv.MustKey("/k"))
	var ke *kv.Error
	require.ErrorAs(t, err, &ke)
	assert.ErrorIs(t, err, kv.ErrStorage)
	assert.Equal(t, "get", ke.Op)
	assert.Equal(t, kv.MustKey("/k"), ke.Key)
	assert.Contains(t, err.Error(), "Storage error on /k")
	assert.ErrorIs(t, c.Set(kv.MustKey("/k"), []byte("x")), kv.ErrStorage)
	_, err = c.Free()
	assert.ErrorIs(t, err, kv.ErrStorage)
}

// TestForeignResponses: answers that are not the API's (a proxy's error
// page) are storage errors carrying the status.
func TestForeignResponses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, client.Options{})
	require.NoError(t, err)
	defer c.Close()
	for _, err := range []error{second(c.Get(kv.MustKey("/k"))), second(c.Exists(kv.MustKey("/k"))), c.Remove(kv.MustKey("/k"))} {
		assert.ErrorIs(t, err, kv.ErrStorage)
		var se *client.ServerError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusBadGateway, se.StatusCode)
	}
}

func TestUnauthorized(t *testing.T) {
	p := newPair(t, httpapi.Options{Token: "right"}, nil)
	for _, tok := range []string{"", "wrong"} {
		c, err := client.New(p.srv.URL, client.Options{Token: tok})
		require.NoError(t, err)
		for _, err := range []error{c.Set(kv.MustKey("/k"), []byte("v")), second(c.Exists(kv.MustKey("/k"))), second(c.Status())} {
			assert.ErrorIs(t, err, kv.ErrStorage)
			assert.ErrorIs(t, err, client.ErrUnauthorized)
			assert.Contains(t, err.Error(), "401")
		}
		c.Close()
	}
	require.NoError(t, p.remote.Set(kv.MustKey("/k"), []byte("v")))
}

func TestNew(t *testing.T) {
	for _, u := range []string{"", "localhost:7070", "ftp://h/", "http://", "http://h/?q=1", "http://h/#f", "::"} {
		_, err := client.New(u, client.Options{})
		assert.ErrorIs(t, err, kv.ErrInvalidArgument, "%q", u)
	}
	// A path prefix is kept: a server behind a proxy.
	h := httpapi.New(kvtest.NewModel(clock.NewFake(t0)), httpapi.Options{})
	mux := http.NewServeMux()
	mux.Handle("/tarstore/", http.StripPrefix("/tarstore", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := client.New(srv.URL+"/tarstore/", client.Options{})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Set(kv.MustKey("/a b"), []byte("v")))
	got, err := c.Get(kv.MustKey("/a b"))
	require.NoError(t, err)
	assert.Equal(t, "v", string(got))
}

// TestSetFromNoSpace: a value larger than the free space is refused before
// it is sent.
func TestSetFromNoSpace(t *testing.T) {
	p := newPair(t, httpapi.Options{Status: func() (httpapi.Status, error) { return httpapi.Status{Free: 1000}, nil }}, nil)
	err := p.remote.SetFrom(kv.MustKey("/big"), bytes.NewReader(make([]byte, 1<<20)), 1<<20)
	var ke *kv.Error
	require.ErrorAs(t, err, &ke)
	assert.ErrorIs(t, err, kv.ErrNoSpace)
	assert.Equal(t, "set", ke.Op)
	assert.Equal(t, kv.MustKey("/big"), ke.Key)
	assert.Contains(t, err.Error(), "set /big: No space left on device")
	free, err := p.remote.Free()
	require.NoError(t, err)
	assert.Equal(t, int64(1000), free)
}

func TestTooLargePatch(t *testing.T) {
	p := newPair(t, httpapi.Options{MaxPatch: 4}, map[string]string{"/v": "v"})
	err := p.remote.SetPartial(kv.MustKey("/v"), 0, []byte("12345"))
	assert.ErrorIs(t, err, kv.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "at most 4 bytes")
}

// TestReaderSession: reads go through the session and a sequential stream
// is fetched in read-ahead windows; a session the server dropped is a
// storage error.
func TestReaderSession(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16+7)
	p := newPair(t, httpapi.Options{}, map[string]string{"/big": string(data)})
	r, err := p.remote.Open(kv.MustKey("/big"))
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), r.Size())
	got, err := io.ReadAll(kv.NewStreamReader(r))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
	reads := 0
	for l, n := range p.h.Metrics().Requests {
		if l.Op == "read" {
			reads += int(n)
		}
	}
	assert.LessOrEqual(t, reads, 6, "a 3 MiB stream took %d requests", reads)

	p.h.Close() // drops every session
	_, err = r.ReadAt(make([]byte, 10), 0)
	assert.ErrorIs(t, err, kv.ErrStorage)
	var se *client.ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, httpapi.CodeReaderGone, se.Code)
	assert.NoError(t, r.Close())
	assert.NoError(t, r.Close())
}

func TestStatus(t *testing.T) {
	want := httpapi.Status{Version: "v1", Capacity: 10, Free: 5, Largest: 4, Entries: 1, ReadOnly: true,
		Device: httpapi.DeviceStatus{Driver: "mem", Model: "m", Serial: "s", SectorSize: 512, Sectors: 20}}
	p := newPair(t, httpapi.Options{Status: func() (httpapi.Status, error) { return want, nil }}, nil)
	got, err := p.remote.Status()
	require.NoError(t, err)
	assert.Equal(t, want, got)

	p = newPair(t, httpapi.Options{Status: func() (httpapi.Status, error) {
		return httpapi.Status{}, kv.Storage("stat", kv.Root, errors.New("EIO"))
	}}, nil)
	_, err = p.remote.Status()
	assert.ErrorIs(t, err, kv.ErrStorage)
	assert.Contains(t, err.Error(), "EIO")
}

// TestCheck: Check returns the server's report, exact names included; a
// store without a check and a check refused for the rate limit are
// storage errors whose ServerError tells which (and when to ask again).
func TestCheck(t *testing.T) {
	p := newPair(t, httpapi.Options{}, nil)
	_, err := p.remote.Check()
	assert.ErrorIs(t, err, kv.ErrStorage)
	var se *client.ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusNotImplemented, se.StatusCode)
	assert.Equal(t, httpapi.CodeNotImplemented, se.Code)

	p = newPair(t, httpapi.Options{CheckPause: time.Hour, Check: func() (httpapi.CheckReport, error) {
		return httpapi.CheckReport{Values: 3, Problems: []httpapi.CheckProblem{
			httpapi.NewCheckProblem(512, "/nu/\xff", "not UTF-8", false),
			httpapi.NewCheckProblem(1024, "/v", "bad data", true),
		}}, nil
	}}, nil)
	rep, err := p.remote.Check()
	require.NoError(t, err)
	assert.False(t, rep.OK)
	assert.Equal(t, 1, rep.Fatal)
	assert.Equal(t, 3, rep.Values)
	require.Len(t, rep.Problems, 2)
	assert.Equal(t, "/nu/\xff", rep.Problems[0].Name())
	assert.Equal(t, "/nu/%FF", rep.Problems[0].KeyPct)
	assert.Equal(t, "/v", rep.Problems[1].Name())
	_, err = p.remote.Check()
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusTooManyRequests, se.StatusCode)
	assert.Equal(t, httpapi.CodeRateLimited, se.Code)
	assert.InDelta(t, time.Hour.Seconds(), se.RetryAfter.Seconds(), 5)
}

// TestUnreachableServer: no server at the URL is ErrUnreachable, a storage
// error that names the URL.
func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	ln.Close()
	c, err := client.New(url, client.Options{})
	require.NoError(t, err)
	defer c.Close()
	for _, err := range []error{second(c.Get(kv.MustKey("/k"))), second(c.Check()), c.Set(kv.MustKey("/k"), []byte("v"))} {
		assert.ErrorIs(t, err, kv.ErrStorage)
		assert.ErrorIs(t, err, client.ErrUnreachable)
		assert.NotErrorIs(t, err, client.ErrUnauthorized)
		assert.Contains(t, err.Error(), "no server answers at "+url+" (dial tcp ")
	}
}
