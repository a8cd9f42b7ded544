package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Slow and stalled bodies. The http.Server bounds the time to read a
// request's headers, but a body may take as long as it likes, and a PUT
// body holds its key's write lock (and the store's) while it streams: one
// client that sends headers and then nothing would block writes, and a few
// dozen would take every connection. So every body is read under a moving
// deadline (http.ResponseController.SetReadDeadline):
//
//   - each read must bring bytes within Options.BodyTimeout
//     (DefaultBodyTimeout), and
//   - once a body has been arriving for BodyTimeout, it must average at
//     least Options.MinBodyRate bytes per second (DefaultMinBodyRate) since
//     then: n bytes received by start+BodyTimeout+n/MinBodyRate.
//
// A body that misses its deadline is cut: the read fails with
// ErrBodyTimeout, the write in progress fails and changes nothing (the
// store is handed a reader that failed), its locks are released, and the
// request is answered 408 request_timeout with "Connection: close" (the
// client may no longer be listening; the connection is closed either way).
// When a handler leaves a body unread, the server's own draining of it
// gets the same idle deadline. Responses get the idle deadline too: each
// write of a value must be taken by the client within BodyTimeout, so a
// client that stops reading does not hold its connection forever
// (sendWriter, send.go).
//
// Deadlines need the connection behind the ResponseWriter; with a writer
// that has none (httptest.ResponseRecorder) bodies are read without them.

// Defaults of Options.BodyTimeout and Options.MinBodyRate.
const (
	DefaultBodyTimeout = 30 * time.Second
	DefaultMinBodyRate = 1 << 10 // bytes per second
)

// ErrBodyTimeout is the error of a read of a request body that missed its
// deadline: it stalled for Options.BodyTimeout, or fell below
// Options.MinBodyRate.
var ErrBodyTimeout = errors.New("the request body stalled")

// bodyGuard is a request body read under the deadlines above.
type bodyGuard struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	idle    time.Duration // 0: none
	rate    int64         // bytes per second; 0: none
	now     func() time.Time
	mu      sync.Mutex
	started bool
	start   time.Time
	n       int64
	eof     bool
	err     error // sticky ErrBodyTimeout
}

// guardBody returns r with its body (if it has one) in a bodyGuard, and
// the guard. r itself is left alone: net/http looks at the type of the
// request's Body when it writes the response (to handle Expect:
// 100-continue), so the guard goes on a shallow copy.
func (h *Handler) guardBody(w http.ResponseWriter, r *http.Request) (*http.Request, *bodyGuard) {
	if r.Body == nil || r.Body == http.NoBody || h.opts.BodyTimeout <= 0 {
		return r, nil
	}
	g := &bodyGuard{body: r.Body, rc: http.NewResponseController(w), idle: h.opts.BodyTimeout,
		rate: max(h.opts.MinBodyRate, 0), now: time.Now}
	r2 := *r
	r2.Body = g
	return &r2, g
}

// deadline is when the next read must have brought bytes: within idle of
// now, and by the time the bytes so far fall below rate.
func (g *bodyGuard) deadline(now time.Time) time.Time {
	d := now.Add(g.idle)
	if g.rate > 0 {
		// n bytes are due by start + idle + n/rate.
		secs := float64(g.n) / float64(g.rate)
		if secs < float64(1<<62)/float64(time.Second) {
			if byRate := g.start.Add(g.idle + time.Duration(secs*float64(time.Second))); byRate.Before(d) {
				d = byRate
			}
		}
	}
	return d
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		return 0, g.err
	}
	now := g.now()
	if !g.started {
		g.started, g.start = true, now
	}
	d := g.deadline(now)
	g.mu.Unlock()
	g.rc.SetReadDeadline(d) // ErrNotSupported: no connection, no deadline

	n, err := g.body.Read(p)

	g.mu.Lock()
	defer g.mu.Unlock()
	g.n += int64(n)
	switch {
	case err == nil:
		if g.rate > 0 && g.now().After(g.deadline(now)) {
			// Without a connection deadline (or a reader that trickles
			// just within it), the rate is still enforced here.
			err = g.cut(fmt.Errorf("%d bytes in %v", g.n, g.now().Sub(g.start).Round(time.Millisecond)))
		}
	case errors.Is(err, io.EOF):
		g.eof = true
		g.rc.SetReadDeadline(time.Time{}) // the server's next reads are its own business
	case isTimeout(err):
		err = g.cut(err)
	}
	return n, err
}

// cut makes the guard fail from now on with ErrBodyTimeout.
func (g *bodyGuard) cut(cause error) error {
	g.err = fmt.Errorf("%w after %d bytes: %v", ErrBodyTimeout, g.n, cause)
	return g.err
}

func (g *bodyGuard) Close() error { return g.body.Close() }

// finish runs when the handler is done: a body it left unread is drained
// by the server under the idle deadline, not forever.
func (g *bodyGuard) finish() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.eof && g.err == nil {
		g.rc.SetReadDeadline(g.now().Add(g.idle))
	}
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// timeoutError is the response to a body cut by its deadline.
func timeoutError(c *call, op string, err error) *apiError {
	c.w.Header().Set("Connection", "close")
	return newError(CodeRequestTimeout, &c.key, fmt.Sprintf("%s %s: %v", op, c.key, err))
}
