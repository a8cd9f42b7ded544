package cli

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/internal/syncbuf"
	"github.com/tarstore/tarstore/kvtar"
)

// result is what one command did.
type result struct {
	code           int
	stdout, stderr string
}

// runner runs commands in process with an empty environment plus env, and
// the given arguments prepended (--disk IMG, --remote URL).
type runner struct {
	t      *testing.T
	prefix []string
	env    map[string]string
	isTerm bool
}

func (r runner) run(stdin string, args ...string) result {
	r.t.Helper()
	var out, errb bytes.Buffer
	e := Env{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		LookupEnv: func(k string) (string, bool) {
			v, ok := r.env[k]
			return v, ok
		},
		IsTerminal: func(io.Writer) bool { return r.isTerm },
	}
	code := Run(e, append(append([]string{}, r.prefix...), args...))
	return result{code, out.String(), errb.String()}
}

// ok runs a command that must succeed and returns its stdout.
func (r runner) ok(stdin string, args ...string) string {
	r.t.Helper()
	res := r.run(stdin, args...)
	require.Equal(r.t, 0, res.code, "tarstore %s: %s", strings.Join(args, " "), res.stderr)
	require.Empty(r.t, res.stderr)
	return res.stdout
}

// newImage creates and formats an image of size bytes in a temporary
// directory and returns its path.
func newImage(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "store.img")
	require.NoError(t, appliance.CreateImage(img, size, 0))
	return img
}

// disk returns a runner working on a fresh image of size bytes.
func disk(t *testing.T, size int64) (runner, string) {
	img := newImage(t, size)
	return runner{t: t, prefix: []string{"--disk", img}}, img
}

// server serves a fresh image of size bytes through httpapi on an httptest
// server and returns a runner working through it.
func server(t *testing.T, size int64, opts httpapi.Options) (runner, string) {
	t.Helper()
	img := newImage(t, size)
	dev, err := file.Open(img, file.Options{})
	require.NoError(t, err)
	s, err := kvtar.New(clock.System{}, dev)
	require.NoError(t, err)
	opts.Status = appliance.StatusFunc(s)
	opts.Check = appliance.CheckFunc(s)
	srv := httptest.NewServer(httpapi.New(s, opts))
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, s.Close())
	})
	return runner{t: t, prefix: []string{"--remote", srv.URL}}, img
}

// serve runs `tarstore serve` in process on img (the default disk when
// "") with extra arguments and
// returns the server's address, and a function that stops it and returns
// its exit status and stderr.
func serve(t *testing.T, img string, args ...string) (string, func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var errb syncbuf.Buffer
	ready := make(chan string, 1)
	done := make(chan int, 1)
	lw := &lineWatcher{w: &errb, prefix: "tarstore: serving ", found: ready}
	argv := []string{"serve", "--listen", "127.0.0.1:0"}
	if img != "" {
		argv = append(argv, "--disk", img)
	}
	go func() {
		done <- Run(Env{Stderr: lw, Context: ctx, LookupEnv: func(string) (string, bool) { return "", false }},
			append(argv, args...))
	}()
	var addr string
	select {
	case line := <-ready:
		_, a, ok := strings.Cut(line, " on http://")
		require.True(t, ok, line)
		addr = a
	case code := <-done:
		cancel()
		t.Fatalf("serve exited with %d: %s", code, errb.String())
	}
	stopped := false
	stop := func() (int, string) {
		if stopped {
			return -1, ""
		}
		stopped = true
		cancel()
		return <-done, errb.String()
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// lineWatcher passes writes on and reports the first line with a prefix.
type lineWatcher struct {
	w      io.Writer
	prefix string
	found  chan string
	mu     sync.Mutex
	buf    []byte
	done   bool
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	if !l.done {
		l.buf = append(l.buf, p...)
		for {
			i := bytes.IndexByte(l.buf, '\n')
			if i < 0 {
				break
			}
			line := string(l.buf[:i])
			l.buf = l.buf[i+1:]
			if strings.HasPrefix(line, l.prefix) {
				l.done = true
				l.found <- line
				break
			}
		}
	}
	l.mu.Unlock()
	return l.w.Write(p)
}
