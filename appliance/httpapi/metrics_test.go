package httpapi_test

import (
	"bufio"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
)

// sampleLine is a sample of the text exposition format 0.0.4:
// name{label="value",...} value.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$`)

// scrape fetches /metrics, checks that every line is a comment or a sample
// of a declared family, and returns the samples by "name{labels}".
func scrape(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	r := e.get("/metrics")
	require.Equal(t, 200, r.code)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", r.hdr.Get("Content-Type"))
	samples := map[string]float64{}
	types := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			f := strings.SplitN(rest, " ", 3)
			require.Len(t, f, 3, "comment %q", line)
			switch f[0] {
			case "TYPE":
				require.Contains(t, []string{"counter", "gauge", "histogram"}, f[2], line)
				require.NotContains(t, types, f[1], "family %s declared twice", f[1])
				types[f[1]] = f[2]
			case "HELP":
			default:
				t.Fatalf("unexpected comment %q", line)
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		require.NotNil(t, m, "line %q is not a sample", line)
		v, err := strconv.ParseFloat(m[3], 64)
		require.NoError(t, err, "value of %q", line)
		family := m[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(family, suf); ok && types[base] == "histogram" {
				family = base
			}
		}
		require.Contains(t, types, family, "sample %q before its TYPE", line)
		require.NotContains(t, samples, m[1]+m[2], "duplicate sample %q", line)
		samples[m[1]+m[2]] = v
	}
	require.NoError(t, sc.Err())
	return samples
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, httpapi.Options{Version: `v"1"`, Status: func() (httpapi.Status, error) {
		return httpapi.Status{Capacity: 1000, Free: 600, Largest: 500, Entries: 3}, nil
	}})
	require.Equal(t, 201, e.put("/v1/kv/a", "hello").code)
	require.Equal(t, 200, e.get("/v1/kv/a").code)
	require.Equal(t, 206, e.get("/v1/kv/a", "Range", "bytes=1-2").code)
	require.Equal(t, 404, e.get("/v1/kv/missing").code)
	require.Equal(t, 200, e.do("HEAD", "/v1/kv/a", nil).code)
	require.Equal(t, 204, e.do("PATCH", "/v1/kv/a?offset=5", strings.NewReader("!!")).code)

	s := scrape(t, e)
	for name, want := range map[string]float64{
		`tarstore_requests_total{op="set",code="201"}`:                 1,
		`tarstore_requests_total{op="get",code="200"}`:                 1,
		`tarstore_requests_total{op="get_partial",code="206"}`:         1,
		`tarstore_requests_total{op="get",code="404"}`:                 1,
		`tarstore_requests_total{op="exists",code="200"}`:              1,
		`tarstore_requests_total{op="set_partial",code="204"}`:         1,
		`tarstore_bytes_read_total`:                                    5 + 2,
		`tarstore_bytes_written_total`:                                 5 + 2,
		`tarstore_free_bytes`:                                          600,
		`tarstore_capacity_bytes`:                                      1000,
		`tarstore_largest_value_bytes`:                                 500,
		`tarstore_entries`:                                             3,
		`tarstore_read_only`:                                           0,
		`tarstore_open_readers`:                                        0,
		`tarstore_status_up`:                                           1,
		`tarstore_build_info{version="v\"1\""}`:                        1,
		`tarstore_request_duration_seconds_count{op="get"}`:            2,
		`tarstore_request_duration_seconds_bucket{op="get",le="+Inf"}`: 2,
	} {
		assert.Equal(t, want, s[name], name)
	}
	// The scrape itself is counted by the next one.
	s = scrape(t, e)
	assert.Equal(t, 1.0, s[`tarstore_requests_total{op="metrics",code="200"}`])
	// Refused requests are counted under their operation.
	e2 := newEnv(t, httpapi.Options{Token: "t"})
	e2.token = ""
	e2.put("/v1/kv/a", "x")
	assert.Equal(t, uint64(1), e2.h.Metrics().Requests[httpapi.RequestLabel{Op: "set", Code: "401"}])
	snap := e.h.Metrics()
	assert.Equal(t, uint64(1), snap.Requests[httpapi.RequestLabel{Op: "set", Code: "201"}])
	assert.Equal(t, int64(7), snap.BytesRead)
	assert.Equal(t, int64(7), snap.BytesWritten)
}

// TestMetricsBuckets: the histogram's buckets are cumulative and end with
// +Inf equal to the count.
func TestMetricsBuckets(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	for range 5 {
		e.get("/v1/kv/x")
	}
	s := scrape(t, e)
	var bounds []float64
	counts := map[float64]float64{}
	re := regexp.MustCompile(`^tarstore_request_duration_seconds_bucket\{op="get",le="([^"]+)"\}$`)
	for k, v := range s {
		if m := re.FindStringSubmatch(k); m != nil {
			b, err := strconv.ParseFloat(m[1], 64) // "+Inf" parses as +Inf
			require.NoError(t, err)
			bounds = append(bounds, b)
			counts[b] = v
		}
	}
	require.NotEmpty(t, bounds)
	prev := -1.0
	for _, b := range sortedFloats(bounds) {
		assert.GreaterOrEqual(t, counts[b], prev, "bucket le=%v", b)
		prev = counts[b]
	}
	assert.Equal(t, 5.0, prev)
	assert.Equal(t, 5.0, s[`tarstore_request_duration_seconds_count{op="get"}`])
	// Without Options.Status only what the handler knows.
	assert.NotContains(t, s, "tarstore_capacity_bytes")
	assert.Contains(t, s, "tarstore_free_bytes")
}

func sortedFloats(v []float64) []float64 {
	out := slices.Clone(v)
	slices.Sort(out)
	return out
}
