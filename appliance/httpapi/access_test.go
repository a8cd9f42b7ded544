package httpapi_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/internal/syncbuf"
	"github.com/tarstore/tarstore/kv"
)

// TestAccessLogJSON: one JSON record per request, with the method, the
// key, the status, the bytes sent, the duration, the client and, for an
// error, its code; the error log has the message of a server error.
func TestAccessLogJSON(t *testing.T) {
	var access, errs syncbuf.Buffer
	e := newEnv(t, httpapi.Options{
		AccessLog: slog.New(slog.NewJSONHandler(&access, nil)),
		Logger:    slog.New(slog.NewJSONHandler(&errs, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	e.set("/d/v.txt", "hello")
	require.Equal(t, 200, e.get("/v1/kv/d/v.txt").code)
	require.Equal(t, 201, e.put("/v1/kv/d/new%20one", "abc").code)
	require.Equal(t, 404, e.get("/v1/kv/none").code)
	require.Equal(t, 200, e.get("/healthz").code)

	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(access.String()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		recs = append(recs, m)
	}
	require.Len(t, recs, 4, access.String())
	for i, want := range []struct {
		method, key string
		status      float64
		bytes       float64
		err         string
	}{
		{"GET", "/d/v.txt", 200, 5, ""},
		{"PUT", "/d/new one", 201, 0, ""},
		{"GET", "/none", 404, -1, "not_found"},
		{"GET", "/healthz", 200, 3, ""},
	} {
		r := recs[i]
		assert.Equal(t, "INFO", r["level"])
		assert.Equal(t, "request", r["msg"])
		assert.Equal(t, want.method, r["method"], "%d", i)
		assert.Equal(t, want.key, r["key"], "%d", i)
		assert.Equal(t, want.status, r["status"], "%d", i)
		if want.bytes >= 0 {
			assert.Equal(t, want.bytes, r["bytes"], "%d", i)
		} else {
			assert.Greater(t, r["bytes"], 0.0, "%d: an error body", i)
		}
		assert.IsType(t, 0.0, r["duration"], "%d", i)
		assert.Contains(t, r["client"], "127.0.0.1:", "%d", i)
		if want.err != "" {
			assert.Equal(t, want.err, r["error"], "%d", i)
		} else {
			assert.NotContains(t, r, "error", "%d", i)
		}
	}
	assert.Empty(t, errs.String(), "no server error, nothing in the error log")
}

// TestAccessLogText: the same records as key=value lines, and a server
// error in the error log with its code and message.
func TestAccessLogText(t *testing.T) {
	var access, errs syncbuf.Buffer
	e := newEnv(t, httpapi.Options{
		AccessLog: slog.New(slog.NewTextHandler(&access, nil)),
		Logger:    slog.New(slog.NewTextHandler(&errs, &slog.HandlerOptions{Level: slog.LevelError})),
		Check: func() (httpapi.CheckReport, error) {
			return httpapi.CheckReport{}, kv.Storage("check", kv.Root, errors.New("the disk is on fire"))
		},
	})
	require.Equal(t, 200, e.get("/v1/status").code)
	require.Equal(t, 500, e.do("POST", "/v1/check", nil).code)
	lines := strings.Split(strings.TrimSpace(access.String()), "\n")
	require.Len(t, lines, 2, access.String())
	assert.Regexp(t, `^time=\S+ level=INFO msg=request method=GET key=/v1/status status=200 bytes=\d+ duration=[0-9.e-]+ client=127\.0\.0\.1:\d+ op=status$`, lines[0])
	assert.Regexp(t, ` method=POST key=/v1/check status=500 .* op=check error=storage_error$`, lines[1])
	assert.Regexp(t, `level=ERROR msg=request method=POST key=/v1/check status=500 .* error=storage_error message=".*the disk is on fire.*"`, errs.String())
}

// TestAccessLogOff: without Options.AccessLog nothing is logged per
// request.
func TestAccessLogOff(t *testing.T) {
	var errs syncbuf.Buffer
	e := newEnv(t, httpapi.Options{Logger: slog.New(slog.NewTextHandler(&errs, nil))})
	require.Equal(t, 404, e.get("/v1/kv/none").code)
	assert.Empty(t, errs.String(), "requests are not logged at INFO")
}
