package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// durationBuckets are the upper bounds, in seconds, of the request latency
// histogram.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// RequestLabel names one series of tarstore_requests_total: the operation
// ("get", "set", "list", "exists" for HEAD, ...) and the HTTP status code.
type RequestLabel struct{ Op, Code string }

// MetricsSnapshot is what the handler has counted so far.
type MetricsSnapshot struct {
	Requests     map[RequestLabel]uint64
	BytesRead    int64 // value bytes sent in responses
	BytesWritten int64 // value bytes stored by PUT and PATCH
}

// metrics holds the handler's counters. Counts and histograms share one
// mutex: a request updates them once, at its end.
type metrics struct {
	mu           sync.Mutex
	requests     map[requestKey]uint64
	histograms   map[string]*histogram
	bytesRead    atomic.Int64
	bytesWritten atomic.Int64
}

// requestKey is a RequestLabel with the code as a number: the label's
// string is made when the metrics are read, not on every request.
type requestKey struct {
	op   string
	code int
}

// requestCounts returns the request counts by label. The caller holds
// m.mu.
func (m *metrics) requestCounts() map[RequestLabel]uint64 {
	counts := make(map[RequestLabel]uint64, len(m.requests))
	for k, n := range m.requests {
		counts[RequestLabel{k.op, strconv.Itoa(k.code)}] = n
	}
	return counts
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{requests: map[requestKey]uint64{}, histograms: map[string]*histogram{}}
}

func (m *metrics) observe(op string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[requestKey{op, status}]++
	hg := m.histograms[op]
	if hg == nil {
		hg = &histogram{counts: make([]uint64, len(durationBuckets)+1)}
		m.histograms[op] = hg
	}
	s := d.Seconds()
	i, _ := slices.BinarySearch(durationBuckets, s) // first bound >= s
	hg.counts[i]++
	hg.sum += s
	hg.n++
}

func (m *metrics) snapshot() MetricsSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MetricsSnapshot{
		Requests:     m.requestCounts(),
		BytesRead:    m.bytesRead.Load(),
		BytesWritten: m.bytesWritten.Load(),
	}
}

// Metrics returns what the handler has counted so far.
func (h *Handler) Metrics() MetricsSnapshot { return h.metrics.snapshot() }

// writeMetrics writes the Prometheus text exposition format, version 0.0.4.
func (h *Handler) writeMetrics(w io.Writer) error {
	bw := bufio.NewWriter(w)
	m := h.metrics
	m.mu.Lock()
	header(bw, "tarstore_requests_total", "counter", "HTTP requests by operation and status code.")
	counts := m.requestCounts()
	labels := slices.SortedFunc(maps.Keys(counts), func(a, b RequestLabel) int {
		return strings.Compare(a.Op+"\x00"+a.Code, b.Op+"\x00"+b.Code)
	})
	for _, l := range labels {
		fmt.Fprintf(bw, "tarstore_requests_total{op=%s,code=%s} %d\n", quoteLabel(l.Op), quoteLabel(l.Code), counts[l])
	}
	header(bw, "tarstore_request_duration_seconds", "histogram", "Time to serve a request, by operation.")
	for _, op := range slices.Sorted(maps.Keys(m.histograms)) {
		hg := m.histograms[op]
		var cum uint64
		for i, c := range hg.counts {
			cum += c
			le := "+Inf"
			if i < len(durationBuckets) {
				le = strconv.FormatFloat(durationBuckets[i], 'g', -1, 64)
			}
			fmt.Fprintf(bw, "tarstore_request_duration_seconds_bucket{op=%s,le=%q} %d\n", quoteLabel(op), le, cum)
		}
		fmt.Fprintf(bw, "tarstore_request_duration_seconds_sum{op=%s} %s\n", quoteLabel(op), strconv.FormatFloat(hg.sum, 'g', -1, 64))
		fmt.Fprintf(bw, "tarstore_request_duration_seconds_count{op=%s} %d\n", quoteLabel(op), hg.n)
	}
	m.mu.Unlock()

	header(bw, "tarstore_bytes_read_total", "counter", "Value bytes sent to clients.")
	fmt.Fprintf(bw, "tarstore_bytes_read_total %d\n", m.bytesRead.Load())
	header(bw, "tarstore_bytes_written_total", "counter", "Value bytes received from clients and stored.")
	fmt.Fprintf(bw, "tarstore_bytes_written_total %d\n", m.bytesWritten.Load())
	header(bw, "tarstore_open_readers", "gauge", "Reader sessions open (POST ?open).")
	fmt.Fprintf(bw, "tarstore_open_readers %d\n", h.readers.count())

	st, err := h.status()
	header(bw, "tarstore_status_up", "gauge", "1 if the store answered the status query.")
	if err != nil {
		fmt.Fprintf(bw, "tarstore_status_up 0\n")
		return bw.Flush()
	}
	fmt.Fprintf(bw, "tarstore_status_up 1\n")
	header(bw, "tarstore_free_bytes", "gauge", "Unused bytes in the store.")
	fmt.Fprintf(bw, "tarstore_free_bytes %d\n", st.Free)
	if h.opts.Status != nil {
		header(bw, "tarstore_capacity_bytes", "gauge", "Bytes the store can hold.")
		fmt.Fprintf(bw, "tarstore_capacity_bytes %d\n", st.Capacity)
		header(bw, "tarstore_largest_value_bytes", "gauge", "The largest value that fits now.")
		fmt.Fprintf(bw, "tarstore_largest_value_bytes %d\n", st.Largest)
		header(bw, "tarstore_entries", "gauge", "Number of values in the store.")
		fmt.Fprintf(bw, "tarstore_entries %d\n", st.Entries)
	}
	ro := 0
	if st.ReadOnly {
		ro = 1
	}
	header(bw, "tarstore_read_only", "gauge", "1 if the store refuses writes.")
	fmt.Fprintf(bw, "tarstore_read_only %d\n", ro)
	header(bw, "tarstore_build_info", "gauge", "The version of tarstore serving.")
	fmt.Fprintf(bw, "tarstore_build_info{version=%s} 1\n", quoteLabel(st.Version))
	return bw.Flush()
}

func header(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// quoteLabel quotes a label value as the text format wants: backslash,
// double quote and newline escaped.
func quoteLabel(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// metricsContentType is the content type of the text exposition format.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// statusRecorder is the ResponseWriter the handler serves through: it keeps
// the status code for the metrics, and the bytes of the body and the error
// sent (writeError) for the logs.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    *ErrorDetail
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
