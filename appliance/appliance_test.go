package appliance

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
)

// fakeResolver resolves the names it holds; others do not resolve.
type fakeResolver map[string][]string

func (r fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	addrs, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, a := range addrs {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	return out, nil
}

func TestIsLoopback(t *testing.T) {
	ctx := context.Background()
	r := fakeResolver{
		"localhost": {"127.0.0.1", "::1"},
		"lo6":       {"::1"},
		"hijacked":  {"127.0.0.1", "10.0.2.15"}, // one address is enough to refuse
		"public":    {"203.0.113.7"},
		"nothing":   {},
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:7070": true,
		"127.1.2.3:1":    true,
		"[::1]:7070":     true,
		"localhost:7070": true,
		"lo6:1":          true,
		"hijacked:7070":  false,
		"public:7070":    false,
		"nothing:7070":   false,
		"unknown:7070":   false,
		"0.0.0.0:7070":   false,
		":7070":          false,
		"[::]:7070":      false,
		"10.0.2.15:80":   false,
		"garbage":        false,
	} {
		err := CheckLoopback(ctx, r, addr)
		assert.Equal(t, want, err == nil, "%s: %v", addr, err)
		assert.Equal(t, want, IsLoopback(ctx, r, addr), addr)
		if !want {
			assert.ErrorIs(t, err, ErrNotLoopback, addr)
		}
	}
	// The name is never trusted: localhost resolving to a public address
	// is not loopback.
	err := CheckLoopback(ctx, fakeResolver{"localhost": {"198.51.100.1"}}, "localhost:7070")
	assert.ErrorIs(t, err, ErrNotLoopback)
	assert.Contains(t, err.Error(), "localhost resolves to 198.51.100.1")
	// The real resolver: an IP literal needs none.
	assert.True(t, IsLoopback(ctx, nil, "127.0.0.1:0"))
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	tok, err := ReadToken(write("ok", "  s3cret \n"))
	require.NoError(t, err)
	assert.Equal(t, "s3cret", tok)
	for _, p := range []string{write("empty", " \n"), write("two", "a\nb\n"), filepath.Join(dir, "missing")} {
		_, err := ReadToken(p)
		assert.ErrorIs(t, err, ErrBadToken, p)
	}
}

func TestOpenDevice(t *testing.T) {
	_, err := OpenDevice(config.Config{Virtio: "/run/vhost.sock"}, false)
	assert.ErrorIs(t, err, ErrBadSpec)
	assert.Contains(t, err.Error(), `virtio /run/vhost.sock: virtio-blk "/run/vhost.sock": bad device spec: want vhost-user:SOCKET, pci:BDF or vfio:BDF`)
	_, err = OpenDevice(config.Config{Virtio: "pci:0000:7f:1f.7"}, false) // no such function
	assert.ErrorIs(t, err, hw.ErrIO)
	_, err = OpenDevice(config.Config{Virtio: "vhost-user:" + filepath.Join(t.TempDir(), "none.sock")}, false)
	assert.ErrorIs(t, err, hw.ErrIO)
	_, err = OpenDevice(config.Config{NVMe: "0000:00:04.0"}, false)
	assert.ErrorIs(t, err, ErrBadSpec)
	_, err = OpenDevice(config.Config{NVMe: "passthru:" + filepath.Join(t.TempDir(), "nvme9n1")}, false)
	assert.Error(t, err)
	_, err = OpenDevice(config.Config{NVMe: "pci:0000:7f:1f.7"}, false) // no such function
	assert.ErrorIs(t, err, hw.ErrIO)
	_, err = OpenDevice(config.Config{Disk: filepath.Join(t.TempDir(), "none.img")}, false)
	assert.ErrorIs(t, err, ErrNoImage)

	img := filepath.Join(t.TempDir(), "a.img")
	require.NoError(t, CreateImage(img, 1<<20, 0))
	s, err := OpenStore(config.Config{Disk: img}, false)
	require.NoError(t, err)
	// A second opener is refused while the first holds the disk.
	_, err = OpenStore(config.Config{Disk: img}, true)
	assert.ErrorIs(t, err, hw.ErrBusy)
	require.NoError(t, s.Set(kv.MustKey("/a"), []byte("x")))
	st, err := StatusFunc(s)()
	require.NoError(t, err)
	assert.Equal(t, Version, st.Version)
	assert.Equal(t, 1, st.Entries)
	assert.Equal(t, "file", st.Device.Driver)
	assert.Equal(t, img, st.Device.Model)
	assert.EqualValues(t, 2048, st.Device.Sectors)
	assert.Greater(t, st.Capacity, int64(0))
	assert.LessOrEqual(t, st.Free, st.Capacity)
	require.NoError(t, s.Close())

	// Read-only: shared, and writes are refused.
	r1, err := OpenStore(config.Config{Disk: img}, true)
	require.NoError(t, err)
	r2, err := OpenStore(config.Config{Disk: img}, true)
	require.NoError(t, err)
	assert.ErrorIs(t, r1.Set(kv.MustKey("/b"), nil), kv.ErrReadOnly)
	require.NoError(t, r1.Close())
	require.NoError(t, r2.Close())

	// CreateImage refuses an existing file and leaves it alone.
	assert.Error(t, CreateImage(img, 1<<20, 0))
	s, err = OpenStore(config.Config{Disk: img}, true)
	require.NoError(t, err)
	v, err := s.Get(kv.MustKey("/a"))
	require.NoError(t, err)
	assert.Equal(t, "x", string(v))
	require.NoError(t, s.Close())
}

func TestEnsureDefaultImage(t *testing.T) {
	dir := t.TempDir()
	named := config.Config{Disk: filepath.Join(dir, "named.img"), From: map[string]config.Layer{config.Disk: config.Flag}}
	created, err := EnsureDefaultImage(named)
	require.NoError(t, err)
	assert.False(t, created)
	_, err = os.Stat(named.Disk)
	assert.True(t, os.IsNotExist(err), "a disk named explicitly is not created")

	def := config.Config{Disk: filepath.Join(dir, "default.img"), From: map[string]config.Layer{config.Disk: config.Default}}
	created, err = EnsureDefaultImage(def)
	require.NoError(t, err)
	assert.True(t, created)
	st, err := os.Stat(def.Disk)
	require.NoError(t, err)
	assert.EqualValues(t, DefaultImageSize, st.Size())
	created, err = EnsureDefaultImage(def)
	require.NoError(t, err)
	assert.False(t, created)
	s, err := OpenStore(def, true)
	require.NoError(t, err)
	es, err := s.List(kv.Root)
	require.NoError(t, err)
	assert.Empty(t, es)
	require.NoError(t, s.Close())
}

func TestClock(t *testing.T) {
	c := Clock()
	if _, err := os.Stat(clock.DefaultRTC); err != nil {
		assert.Equal(t, clock.System{}, c)
	} else {
		assert.IsType(t, &clock.RTC{}, c)
	}
	assert.WithinDuration(t, time.Now(), c.Now(), time.Hour)
}

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := LimitListener(inner, 1)
	defer l.Close()

	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	first, err := l.Accept()
	require.NoError(t, err)
	dial() // waits in the backlog

	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			got <- c
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second connection was accepted while the first is open")
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, first.Close())
	first.Close() // a second Close does not release a second slot
	second, ok := <-got
	require.True(t, ok)
	require.NoError(t, second.Close())

	// Close wakes an Accept waiting for a slot.
	dial()
	third, err := l.Accept()
	require.NoError(t, err)
	defer third.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	require.NoError(t, l.Close())
	assert.ErrorIs(t, <-errc, net.ErrClosed)
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "s.img")
	require.NoError(t, CreateImage(img, 4<<20, 0))
	tok := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tok, []byte("t0k\n"), 0o600))
	cfg := config.Config{Disk: img, Listen: "127.0.0.1:0", TokenFile: tok, MaxConns: 2,
		From: map[string]config.Layer{config.Disk: config.Flag}}

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, cfg, ServeOptions{Log: pw, Ready: func(a net.Addr) { ready <- a }})
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	require.True(t, lines.Scan())
	addr := <-ready
	assert.Equal(t, "tarstore: serving "+img+" on http://"+addr.String(), lines.Text())
	go io.Copy(io.Discard, pr)

	get := func(path, token string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr.String()+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, get("/healthz", ""))
	assert.Equal(t, http.StatusUnauthorized, get("/v1/status", ""))
	assert.Equal(t, http.StatusOK, get("/v1/status", "t0k"))

	// Headers beyond MaxHeaderBytes are refused.
	req, err := http.NewRequest(http.MethodGet, "http://"+addr.String()+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("x", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	cancel()
	require.NoError(t, <-done)
	// The store was closed: the disk is free.
	s, err := OpenStore(cfg, false)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestServeRefusals(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "s.img")
	require.NoError(t, CreateImage(img, 1<<20, 0))
	ctx := context.Background()
	err := Serve(ctx, config.Config{Disk: img, Listen: "0.0.0.0:0", MaxConns: 1}, ServeOptions{})
	assert.ErrorIs(t, err, ErrNeedToken)
	// A name is judged by what it resolves to.
	err = Serve(ctx, config.Config{Disk: img, Listen: "localhost:0", MaxConns: 1},
		ServeOptions{Resolver: fakeResolver{"localhost": {"127.0.0.1", "192.0.2.1"}}})
	assert.ErrorIs(t, err, ErrNeedToken)
	assert.ErrorIs(t, err, ErrNotLoopback)
	assert.Contains(t, err.Error(), "localhost resolves to 192.0.2.1")
	err = Serve(ctx, config.Config{Remote: "http://127.0.0.1:1", Listen: "127.0.0.1:0", MaxConns: 1}, ServeOptions{})
	assert.Error(t, err)
	err = Serve(ctx, config.Config{Disk: filepath.Join(dir, "none.img"), Listen: "127.0.0.1:0", MaxConns: 1,
		From: map[string]config.Layer{config.Disk: config.Flag}}, ServeOptions{})
	assert.ErrorIs(t, err, ErrNoImage)
	// A port in use: the store is closed again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	err = Serve(ctx, config.Config{Disk: img, Listen: l.Addr().String(), MaxConns: 1}, ServeOptions{})
	require.Error(t, err)
	var ke *kv.Error
	assert.False(t, errors.As(err, &ke))
	s, err := OpenStore(config.Config{Disk: img}, false)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
