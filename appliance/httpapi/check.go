package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// CheckProblem is one problem an online check found (kvtar.Problem).
type CheckProblem struct {
	Offset int64  `json:"offset"`            // archive offset of the member or block at fault
	Key    string `json:"key,omitempty"`     // the key or member name it is about, when there is one
	KeyPct string `json:"key_pct,omitempty"` // Key percent-encoded (pctName), when it is not valid UTF-8
	What   string `json:"what"`              // what is wrong, for humans
	Fatal  bool   `json:"fatal"`             // the archive is damaged, or the store and the device disagree
}

// NewCheckProblem is a CheckProblem about name (a key or member name, ""
// for none): KeyPct names it exactly when it is not valid UTF-8.
func NewCheckProblem(offset int64, name, what string, fatal bool) CheckProblem {
	p := CheckProblem{Offset: offset, Key: name, What: what, Fatal: fatal}
	if !utf8.ValidString(name) {
		p.KeyPct = pctName(name)
	}
	return p
}

// pctName percent-encodes every byte of s that is not printable ASCII, and
// "%": "/nu/%FF". A member name need not be a key (it may have "." and
// ".." segments), so PctKey does not do; url.PathUnescape decodes it.
func pctName(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Name is the exact key or member name p is about: KeyPct decoded when it
// is there, else Key.
func (p CheckProblem) Name() string {
	if p.KeyPct != "" {
		if s, err := url.PathUnescape(p.KeyPct); err == nil {
			return s
		}
	}
	return p.Key
}

// CheckReport is the body of POST /v1/check (see "Online check" in the
// package documentation). The store's Options.Check fills Problems and the
// counts; the handler sets Fatal, OK, Started and Seconds.
type CheckReport struct {
	OK       bool           `json:"ok"`       // no problem is fatal
	Fatal    int            `json:"fatal"`    // how many problems are fatal
	Problems []CheckProblem `json:"problems"` // [] when there is none
	Values   int            `json:"values"`   // values in the store
	End      int64          `json:"end"`      // offset of the end-of-archive marker
	Capacity int64          `json:"capacity"` // bytes of the archive area
	Free     int64          `json:"free"`     // unused bytes
	Started  time.Time      `json:"started"`  // when the check started
	Seconds  float64        `json:"seconds"`  // how long it took
}

// CheckPauseFactor spaces online checks: after a check that took D, the
// next one may start D×CheckPauseFactor later (or Options.CheckPause, when
// that is longer). A check blocks the store's writes while it runs (kvtar's
// Check), so checks back to back hold writes for at most
// 1/(CheckPauseFactor+1) of the time.
const CheckPauseFactor = 4

// Codes of the online check's refusals.
const (
	CodeNotImplemented = "not_implemented" // 501: the store has no check
	CodeRateLimited    = "rate_limited"    // 429: a check runs, or one ended too recently (Retry-After)
)

// checkGate lets one check run at a time, spaced as CheckPauseFactor says.
type checkGate struct {
	minPause time.Duration

	mu      sync.Mutex
	running bool
	started time.Time     // of the check running, or of the last one
	last    time.Duration // how long the last check took
	next    time.Time     // the earliest start of the next check
}

// enter reserves the right to run a check now, or says how long to wait
// and why.
func (g *checkGate) enter(now time.Time) (wait time.Duration, why string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.running:
		// Expect it to take as long as the last one (or as long as it
		// has run so far), then the pause after it.
		elapsed := now.Sub(g.started)
		expect := max(g.last, elapsed)
		return expect - elapsed + g.pause(expect),
			fmt.Sprintf("A check is running (started %s ago)", elapsed.Round(time.Millisecond)), false
	case now.Before(g.next):
		return g.next.Sub(now), fmt.Sprintf("The last check took %s and ended %s ago; checks block writes while they run, "+
			"so the next one waits %d times as long", g.last.Round(time.Millisecond),
			now.Sub(g.started.Add(g.last)).Round(time.Millisecond), CheckPauseFactor), false
	}
	g.running, g.started = true, now
	return 0, "", true
}

// leave ends the check that enter let in: it took d.
func (g *checkGate) leave(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running, g.last = false, d
	g.next = g.started.Add(d + g.pause(d))
}

// pause is the pause after a check that took d.
func (g *checkGate) pause(d time.Duration) time.Duration {
	return max(g.minPause, d*CheckPauseFactor)
}

// serveCheck is POST /v1/check.
func (h *Handler) serveCheck(c *call) {
	if !h.methods(c, http.MethodPost) {
		return
	}
	if h.opts.Check == nil {
		writeError(c.w, newError(CodeNotImplemented, nil, "This store has no check (only the tar store does)"))
		return
	}
	start := time.Now()
	wait, why, ok := h.checks.enter(start)
	if !ok {
		secs := int64(math.Ceil(wait.Seconds()))
		secs = max(secs, 1)
		c.w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeError(c.w, newError(CodeRateLimited, nil, fmt.Sprintf("%s; try again in %d s", why, secs)))
		return
	}
	rep, err := h.opts.Check()
	d := time.Since(start)
	h.checks.leave(d)
	if err != nil {
		writeError(c.w, kvError(err))
		return
	}
	if rep.Problems == nil {
		rep.Problems = []CheckProblem{}
	}
	rep.Fatal = 0
	for _, p := range rep.Problems {
		if p.Fatal {
			rep.Fatal++
		}
	}
	rep.OK = rep.Fatal == 0
	rep.Started = start.UTC()
	rep.Seconds = d.Seconds()
	level := h.log.Info
	if !rep.OK {
		level = h.log.Error
	}
	level("check", "problems", len(rep.Problems), "fatal", rep.Fatal, "duration", d)
	writeJSON(c.w, http.StatusOK, rep)
}
