package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trickle gives one byte per read.
type trickle struct{ err error }

func (r trickle) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	p[0] = 'x'
	return 1, nil
}

// TestBodyGuardWithoutDeadlines: without a connection to set deadlines on
// (a recorder), the rate is still enforced after each read, and a timeout
// from below is ErrBodyTimeout.
func TestBodyGuardWithoutDeadlines(t *testing.T) {
	h := New(nil, Options{BodyTimeout: 2 * time.Second, MinBodyRate: 10})
	req := httptest.NewRequest("PUT", "/v1/kv/k", io.NopCloser(trickle{}))
	r2, g := h.guardBody(httptest.NewRecorder(), req)
	require.NotNil(t, g)
	assert.NotSame(t, req, r2, "the server's request keeps its body")
	assert.Same(t, g, r2.Body)
	clk := time.Unix(1000, 0)
	g.now = func() time.Time { return clk }
	buf := make([]byte, 8)
	// One byte a second: the grace of BodyTimeout, then 10 bytes a second
	// are due, and one byte falls behind.
	var err error
	reads := 0
	for err == nil && reads < 100 {
		_, err = g.Read(buf)
		clk = clk.Add(time.Second)
		reads++
	}
	assert.ErrorIs(t, err, ErrBodyTimeout)
	assert.Less(t, reads, 5)
	_, err = g.Read(buf)
	assert.ErrorIs(t, err, ErrBodyTimeout, "sticky")

	req = httptest.NewRequest("PUT", "/v1/kv/k", io.NopCloser(trickle{err: os.ErrDeadlineExceeded}))
	_, g = h.guardBody(httptest.NewRecorder(), req)
	_, err = g.Read(buf)
	assert.ErrorIs(t, err, ErrBodyTimeout)

	// No body, or no deadline: no guard.
	_, g = h.guardBody(httptest.NewRecorder(), httptest.NewRequest("GET", "/", http.NoBody))
	assert.Nil(t, g)
	h2 := New(nil, Options{BodyTimeout: -1})
	_, g = h2.guardBody(httptest.NewRecorder(), httptest.NewRequest("PUT", "/", io.NopCloser(trickle{})))
	assert.Nil(t, g)
	g.finish() // a nil guard is fine
}
