package cli

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBenchHTTP(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where cli-put-seq's source file goes
	r, _ := disk(t, 64*mib)
	r.ok("keep me", "put", "/data")
	r.ok("also kept", "put", "/dir/x")
	before := r.ok("", "stat", "/")
	out := r.ok("", "bench", "--http", "--size", "4M", "--ops", "64", "--rounds", "1", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.True(t, rep.HTTP)
	assert.EqualValues(t, 4*mib, rep.Size)
	assert.Equal(t, 64, rep.Ops)
	byName := map[string]benchResult{}
	for _, res := range rep.Results {
		byName[res.Name] = res
	}
	for name, unit := range map[string]string{"http-put-seq": "MiB/s", "http-overwrite-seq": "MiB/s", "http-get-seq": "MiB/s",
		"http-put-4k-16": "IOPS", "http-overwrite-4k-16": "IOPS", "http-device-put": "MiB/s", "http-device-get": "MiB/s",
		"http-loopback-put": "MiB/s", "http-loopback-get": "MiB/s",
		"http-get-4k": "IOPS", "http-loopback-4k": "IOPS", "http-device-4k": "IOPS", "cli-get-seq": "MiB/s", "cli-put-seq": "MiB/s"} {
		res, ok := byName[name]
		if !assert.True(t, ok, "no %s in %s", name, out) {
			continue
		}
		assert.Equal(t, unit, res.Unit, name)
		assert.Greater(t, res.Raw, 0.0, name)
		assert.Greater(t, res.Store, 0.0, name)
		// One round: its ratio is the median, and the rates' ratio.
		assert.Equal(t, []float64{res.Ratio}, res.Rounds, name)
		assert.InDelta(t, res.Store/res.Raw, res.Ratio, 1e-9, name)
	}
	assert.Len(t, rep.Results, 14)

	// The source file of cli-put-seq is gone.
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "files the bench left in TMPDIR")

	// The store is as it was, without the bench keys, and sound.
	assert.Equal(t, before, r.ok("", "stat", "/"))
	assert.Equal(t, "keep me", r.ok("", "get", "/data"))
	assert.Equal(t, "also kept", r.ok("", "get", "/dir/x"))
	assert.Equal(t, "value\t/data\ndictionary\t/dir\n", r.ok("", "ls"))
	r.ok("", "check")

	// The human form names the tests; without --http nothing changes.
	human := r.ok("", "bench", "--http", "--size", "1M", "--ops", "4", "--rounds", "1")
	for _, name := range []string{"http-put-seq", "http-get-seq", "http-put-4k-16", "http-overwrite-4k-16", "http-get-4k", "http-loopback-4k", "http-device-4k", "cli-get-seq", "cli-put-seq", "store/raw", "through HTTP"} {
		assert.Contains(t, human, name)
	}
	out = r.ok("", "bench", "--size", "1M", "--ops", "4", "--rounds", "1", "--json")
	assert.NotContains(t, out, `"http"`)
	rep = benchReport{}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Results, 6)
	assert.Equal(t, "seq-write", rep.Results[0].Name)
	assert.Equal(t, "overwrite-seq", rep.Results[1].Name)
	assert.Equal(t, "keep me", r.ok("", "get", "/data"))
}
