package appliance_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/internal/syncbuf"
)

// TestServeAccessLog: with --access-log, serve logs one line per request
// to its log, as text or JSON (--log-format); without it, none.
func TestServeAccessLog(t *testing.T) {
	for _, tc := range []struct {
		access bool
		format string
	}{{false, config.LogText}, {true, config.LogText}, {true, config.LogJSON}} {
		dir := t.TempDir()
		cfg := config.Config{Disk: filepath.Join(dir, "s.img"), Listen: "127.0.0.1:0", MaxConns: 4,
			AccessLog: tc.access, LogFormat: tc.format, From: map[string]config.Layer{config.Disk: config.Flag}}
		require.NoError(t, appliance.CreateImage(cfg.Disk, 4<<20, 0))
		var log syncbuf.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan net.Addr, 1)
		done := make(chan error, 1)
		go func() {
			done <- appliance.Serve(ctx, cfg, appliance.ServeOptions{Log: &log, Ready: func(a net.Addr) { ready <- a }})
		}()
		addr := (<-ready).String()
		resp, err := http.Get("http://" + addr + "/v1/kv/missing.txt")
		require.NoError(t, err)
		resp.Body.Close()
		cancel()
		require.NoError(t, <-done)

		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
			if !strings.HasPrefix(l, "tarstore: ") {
				lines = append(lines, l)
			}
		}
		if !tc.access {
			assert.Empty(t, lines, "no access log by default")
			continue
		}
		require.Len(t, lines, 1, log.String())
		if tc.format == config.LogJSON {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &m), lines[0])
			assert.Equal(t, "GET", m["method"])
			assert.Equal(t, "/missing.txt", m["key"])
			assert.Equal(t, 404.0, m["status"])
			assert.Equal(t, "not_found", m["error"])
			assert.Contains(t, m["client"], "127.0.0.1:")
			continue
		}
		assert.Regexp(t, `^time=\S+ level=INFO msg=request method=GET key=/missing.txt status=404 bytes=\d+ duration=\S+ client=127\.0\.0\.1:\d+ op=get error=not_found$`, lines[0])
	}
}
