package appliance_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/internal/testcert"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// newTestCert returns a self-signed certificate for 127.0.0.1 and
// localhost, which is also its own CA, written as PEM files.
func newTestCert(t *testing.T) testcert.Cert { return testcert.New(t, "tarstore test") }

// trusting returns the client TLS configuration that trusts c.
func trusting(t *testing.T, c testcert.Cert) *tls.Config {
	t.Helper()
	conf, err := client.CAConfig(c.CertFile)
	require.NoError(t, err)
	return conf
}

// TestConformanceHTTPS runs the kv conformance suite through the client
// over HTTPS: a server with a test certificate, a client given its CA.
func TestConformanceHTTPS(t *testing.T) {
	cert := newTestCert(t)
	servers := map[kv.RW]*httptest.Server{}
	kvtest.TestRW(t, kvtest.Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW {
			store := kvtest.NewModel(clk)
			h := httpapi.New(store, httpapi.Options{Version: "test", TLS: true})
			srv := httptest.NewUnstartedServer(h)
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.Pair}}
			srv.StartTLS()
			t.Cleanup(func() {
				srv.Close()
				h.Close()
				store.Close()
			})
			require.True(t, strings.HasPrefix(srv.URL, "https://"))
			c, err := client.New(srv.URL, client.Options{TLS: trusting(t, cert)})
			require.NoError(t, err)
			servers[c] = srv
			return c
		},
		Reopen: func(t *testing.T, old kv.RW, clk clock.PClock) kv.RW {
			srv := servers[old]
			c, err := client.New(srv.URL, client.Options{TLS: trusting(t, cert)})
			require.NoError(t, err)
			servers[c] = srv
			return c
		},
	})
}

// TestServeTLS: serve with --tls-cert and --tls-key answers HTTPS (the
// banner says so, with no warning about the token); a client given the
// CA works, one that does not trust it gets an error that says why, and
// plain HTTP to the port is refused.
func TestServeTLS(t *testing.T) {
	cert := newTestCert(t)
	dir := t.TempDir()
	cfg := config.Config{Disk: filepath.Join(dir, "s.img"), Listen: "127.0.0.1:0", MaxConns: 4,
		TokenFile: filepath.Join(dir, "token"), TLSCert: cert.CertFile, TLSKey: cert.KeyFile,
		From: map[string]config.Layer{config.Disk: config.Flag}}
	require.NoError(t, appliance.CreateImage(cfg.Disk, 4<<20, 0))
	require.NoError(t, os.WriteFile(cfg.TokenFile, []byte("t0k\n"), 0o600))
	addr, banner, stop := serveLog(t, cfg)
	defer stop()
	url := "https://" + addr
	assert.Equal(t, "tarstore: serving "+cfg.Disk+" on "+url+"\n", banner)

	c, err := client.New(url, client.Options{Token: "t0k", TLS: trusting(t, cert)})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Set(kv.MustKey("/a"), []byte("over TLS")))
	v, err := c.Get(kv.MustKey("/a"))
	require.NoError(t, err)
	assert.Equal(t, "over TLS", string(v))

	// A client without the CA: a certificate error, named as such.
	other := newTestCert(t)
	for _, conf := range []*tls.Config{nil, trusting(t, other)} {
		c2, err := client.New(url, client.Options{Token: "t0k", TLS: conf})
		require.NoError(t, err)
		_, err = c2.Get(kv.MustKey("/a"))
		require.ErrorIs(t, err, kv.ErrStorage)
		var ce *client.CertificateError
		require.True(t, errors.As(err, &ce), "%v", err)
		assert.Contains(t, err.Error(), "the TLS certificate of "+addr+" is not trusted")
		assert.Contains(t, err.Error(), "--ca-cert")
		c2.Close()
	}

	// Plain HTTP to the TLS port gets no answer of the API.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP served on the TLS port")
	}

	// A certificate that cannot be loaded is refused before anything else.
	bad := cfg
	bad.TLSKey = cert.CertFile
	err = appliance.Serve(context.Background(), bad, appliance.ServeOptions{})
	require.ErrorIs(t, err, appliance.ErrBadTLS)
}

// TestServeTokenInClearWarning: a token served over plain HTTP off
// loopback is warned about in the banner; on loopback it is not.
func TestServeTokenInClearWarning(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Config{Disk: filepath.Join(dir, "s.img"), Listen: "0.0.0.0:0", MaxConns: 4,
		TokenFile: filepath.Join(dir, "token"), From: map[string]config.Layer{config.Disk: config.Flag}}
	require.NoError(t, appliance.CreateImage(cfg.Disk, 4<<20, 0))
	require.NoError(t, os.WriteFile(cfg.TokenFile, []byte("t0k\n"), 0o600))
	for _, tc := range []struct {
		listen string
		warn   bool
	}{{"0.0.0.0:0", true}, {"127.0.0.1:0", false}} {
		cfg.Listen = tc.listen
		_, banner, stop := serveLog(t, cfg)
		stop()
		lines := strings.Split(strings.TrimSuffix(banner, "\n"), "\n")
		if !tc.warn {
			assert.Len(t, lines, 1, "%s: %q", tc.listen, banner)
			continue
		}
		require.Len(t, lines, 2, "%s: %q", tc.listen, banner)
		assert.True(t, strings.HasPrefix(lines[1], "tarstore: WARNING: 0.0.0.0:0 is not loopback only"), lines[1])
		assert.Contains(t, lines[1], "the bearer token crosses the network in clear")
		assert.Contains(t, lines[1], "--tls-cert")
	}
}

// serveLog starts Serve with cfg and returns its address, what it logged
// before it was ready (the banner), and how to stop it.
func serveLog(t *testing.T, cfg config.Config) (addr, banner string, stop func()) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	var log strings.Builder
	logged := make(chan struct{})
	go func() {
		done <- appliance.Serve(ctx, cfg, appliance.ServeOptions{Log: pw, Ready: func(a net.Addr) { ready <- a; pw.Close() }})
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
		close(logged)
	}()
	select {
	case a := <-ready:
		addr = a.String()
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	<-logged
	return addr, log.String(), func() {
		cancel()
		require.NoError(t, <-done)
	}
}
