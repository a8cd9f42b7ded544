package client_test

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
	"github.com/tarstore/tarstore/kvtar"
)

// served is a store behind a test server, and the client the suite uses.
type served struct {
	store   kv.RW
	handler *httpapi.Handler
	srv     *httptest.Server
	dev     *mem.Device // kvtar only
}

// stop shuts the server and its handler down and closes the store.
func (s *served) stop(t *testing.T) {
	s.srv.Close()
	s.handler.Close()
	require.NoError(t, s.store.Close())
}

// registry maps the clients the harness returns to what serves them.
type registry struct {
	mu sync.Mutex
	m  map[kv.RW]*served
}

func (r *registry) add(c kv.RW, s *served) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[c] = s
}

func (r *registry) get(c kv.RW) *served {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[c]
}

// serve starts a test server over store and returns it with a client.
func serve(t *testing.T, store kv.RW, dev *mem.Device) (*client.Client, *served) {
	t.Helper()
	h := httpapi.New(store, httpapi.Options{Version: "test"})
	s := &served{store: store, handler: h, srv: httptest.NewServer(h), dev: dev}
	return newClient(t, s.srv.URL), s
}

func newClient(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.Options{})
	require.NoError(t, err)
	return c
}

// TestConformanceModel runs the kv conformance suite on the client, over
// the HTTP API, over the reference model: the whole mapping end to end.
// Reopen is a new client of the same server.
func TestConformanceModel(t *testing.T) {
	reg := &registry{m: map[kv.RW]*served{}}
	kvtest.TestRW(t, kvtest.Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW {
			c, s := serve(t, kvtest.NewModel(clk), nil)
			t.Cleanup(func() { s.stop(t) })
			reg.add(c, s)
			return c
		},
		Reopen: func(t *testing.T, c kv.RW, clk clock.PClock) kv.RW {
			s := reg.get(c)
			require.NoError(t, c.Close())
			c2 := newClient(t, s.srv.URL)
			reg.add(c2, s)
			return c2
		},
		MtimeResolution: time.Second, // HTTP dates
		LargeSize:       8 << 20,
		Check: func(t *testing.T, c kv.RW) {
			// The server holds no reader session the suite forgot.
			s := reg.get(c)
			require.Zero(t, openReaders(t, s.srv.URL), "reader sessions left open")
		},
	})
}

// TestConformanceKvtar runs the suite on the client over kvtar on a memory
// device. Reopen restarts the server: the handler and the store are closed
// and kvtar is opened again on the same medium.
func TestConformanceKvtar(t *testing.T) {
	reg := &registry{m: map[kv.RW]*served{}}
	open := func(t *testing.T, clk clock.PClock, dev *mem.Device) (*client.Client, *served) {
		st, err := kvtar.New(clk, dev)
		require.NoError(t, err)
		c, s := serve(t, st, dev)
		reg.add(c, s)
		return c, s
	}
	kvtest.TestRW(t, kvtest.Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW {
			dev, err := mem.New(512, (256<<20)/512)
			require.NoError(t, err)
			require.NoError(t, kvtar.Format(dev))
			c, s := open(t, clk, dev)
			t.Cleanup(func() { stopLatest(t, reg, s.dev) })
			return c
		},
		Reopen: func(t *testing.T, c kv.RW, clk clock.PClock) kv.RW {
			s := reg.get(c)
			require.NoError(t, c.Close())
			s.stop(t)
			c2, _ := open(t, clk, s.dev.Reopen())
			reg.get(c2).dev = s.dev
			return c2
		},
		MtimeResolution: time.Second,
		LargeSize:       8 << 20,
		Check: func(t *testing.T, c kv.RW) {
			s := reg.get(c)
			require.Zero(t, openReaders(t, s.srv.URL), "reader sessions left open")
			probs, err := s.store.(*kvtar.Store).Check()
			require.NoError(t, err)
			for _, p := range probs {
				require.False(t, p.Fatal, "kvtar Check: %s", p)
			}
		},
	})
}

// stopLatest stops the server of dev that is still running, if any.
func stopLatest(t *testing.T, reg *registry, dev *mem.Device) {
	reg.mu.Lock()
	var running []*served
	for _, s := range reg.m {
		if s.dev == dev {
			running = append(running, s)
		}
	}
	reg.mu.Unlock()
	for _, s := range running {
		s.srv.Close()
		s.handler.Close()
		s.store.Close() // idempotent: the stopped ones are closed already
	}
}
