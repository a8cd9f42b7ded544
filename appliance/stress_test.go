package appliance_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// stressImageSize is the image of TestStressHTTP: small enough that the
// writers' values fill it, so that holes are reused all the time.
const stressImageSize = 4 << 20

// TestStressHTTP runs the model-based concurrent stress test (kvtest.Stress,
// 8 writers) through the HTTP API: the real server (Serve, on 127.0.0.1:0)
// on an image file, and the client as the kv.RW. Reopen restarts the
// server on the same image. Afterwards the image, opened directly, must
// pass Check, and archive/tar must read it as the store's values.
// $TARSTORE_STRESS_SEED and $TARSTORE_STRESS_SOAK work as for kvtar's
// TestStress.
func TestStressHTTP(t *testing.T) {
	kvtest.StressSeeds(t, 2, func(t *testing.T, seed uint64) {
		img := filepath.Join(t.TempDir(), "stress.img")
		require.NoError(t, appliance.CreateImage(img, stressImageSize, 0))
		cfg := config.Config{Disk: img, Listen: "127.0.0.1:0", MaxConns: config.DefaultMaxConns,
			From: map[string]config.Layer{config.Disk: config.Flag}}
		srv := startServer(t, cfg)
		kvtest.Stress(t, kvtest.StressConfig{
			Open: func(t testing.TB) kv.RW { return srv.client(t) },
			Reopen: func(t testing.TB, c kv.RW) kv.RW {
				require.NoError(t, c.Close())
				srv.stop(t)
				srv = startServer(t, cfg)
				return srv.client(t)
			},
			Ops:  100, // HTTP round trips are slow under -race
			Seed: seed,
		})
		srv.stop(t)
		checkImage(t, cfg)
	})
}

// server is a running Serve.
type server struct {
	url    string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t testing.TB, cfg config.Config) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	go func() {
		s.done <- appliance.Serve(ctx, cfg, appliance.ServeOptions{Ready: func(a net.Addr) { ready <- a }})
	}()
	select {
	case a := <-ready:
		s.url = "http://" + a.String()
	case err := <-s.done:
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *server) client(t testing.TB) *client.Client {
	c, err := client.New(s.url, client.Options{})
	require.NoError(t, err)
	return c
}

// stop shuts the server down gracefully (it closes the store); it may be
// called again.
func (s *server) stop(t testing.TB) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	require.NoError(t, <-s.done, "Serve")
}

// checkImage opens the image cfg names: Check must find no fatal problem,
// and archive/tar must read it as the store's values (later members
// replacing earlier ones, holes skipped).
func checkImage(t *testing.T, cfg config.Config) {
	s, err := appliance.OpenStore(cfg, true)
	require.NoError(t, err)
	defer s.Close()
	probs, err := s.Check()
	require.NoError(t, err)
	for _, p := range probs {
		require.False(t, p.Fatal, "Check: %s", p)
	}
	want := kvtest.Values(t, s)

	f, err := os.Open(cfg.Disk)
	require.NoError(t, err)
	defer f.Close()
	got := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "archive/tar")
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		require.EqualValues(t, tar.TypeReg, h.Typeflag, "member %s", h.Name)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		got["/"+strings.TrimPrefix(h.Name, "/")] = b
	}
	require.Equal(t, len(want), len(got), "values in the store and members archive/tar reads")
	for k, v := range want {
		require.True(t, bytes.Equal(v, got[k]), "archive/tar reads %s as %d bytes, the store has %d", k, len(got[k]), len(v))
	}
}
