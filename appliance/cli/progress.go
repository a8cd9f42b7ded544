package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progressMin is the smallest transfer that gets a progress bar, or a
// summary line.
const progressMin = 8 << 20

// progressEvery is how often the bar is redrawn at most.
const progressEvery = 200 * time.Millisecond

// progress reports a long transfer on stderr: on a terminal a bar redrawn
// as bytes move (for a transfer of unknown size, such as a pipe being
// read, the bytes so far and the rate); elsewhere, when summary is set,
// one line at the end ("put /big: 1.0 GiB in 3.2 s, 320.0 MiB/s"). Short
// transfers (under progressMin) get neither. A nil *progress reports
// nothing; its methods pass data through.
type progress struct {
	w        io.Writer
	label    string
	total    int64 // -1: unknown
	start    time.Time
	now      func() time.Time
	terminal bool
	summary  bool

	mu    sync.Mutex
	done  int64
	last  time.Time
	drawn bool
}

// progress returns the report of a transfer of total bytes (-1 when
// unknown) with a summary line off a terminal, or nil when there is to be
// none (a known total under progressMin).
func (c *cmdCtx) progress(label string, total int64) *progress {
	return c.newProgress(label, total, true)
}

// quietProgress is progress without the summary line, for commands that
// print their own (import, export) and for steps of a command.
func (c *cmdCtx) quietProgress(label string, total int64) *progress {
	return c.newProgress(label, total, false)
}

func (c *cmdCtx) newProgress(label string, total int64, summary bool) *progress {
	if total >= 0 && total < progressMin {
		return nil
	}
	p := newProgress(c.env.Stderr, label, total, time.Now)
	p.terminal = c.onTerminal(c.env.Stderr)
	p.summary = summary
	return p
}

func newProgress(w io.Writer, label string, total int64, now func() time.Time) *progress {
	t := now()
	return &progress{w: w, label: label, total: total, start: t, now: now, terminal: true}
}

// isTerminal reports whether w is a terminal (TCGETS succeeds on it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// add counts n more bytes and redraws when it is time.
func (p *progress) add(n int) {
	if p == nil || n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if !p.terminal || (p.total < 0 && p.done < progressMin) {
		return
	}
	if t := p.now(); t.Sub(p.last) >= progressEvery || p.done == p.total {
		p.last = t
		p.draw(t)
	}
}

// rate is the average speed so far, " 12.5 MiB/s", or "" at the start.
func (p *progress) rate(t time.Time) string {
	if el := t.Sub(p.start).Seconds(); el > 0 {
		return fmt.Sprintf(" %s/s", human(int64(float64(p.done)/el)))
	}
	return ""
}

// draw writes the bar: "\r<label> 42% [=====     ] 1.2 GiB / 2.0 GiB 310.5 MiB/s",
// or for an unknown total "\r<label> 1.2 GiB 310.5 MiB/s".
func (p *progress) draw(t time.Time) {
	const width = 30
	p.drawn = true
	if p.total < 0 {
		fmt.Fprintf(p.w, "\r%s %s%s\x1b[K", p.label, human(p.done), p.rate(t))
		return
	}
	frac := 1.0
	if p.total > 0 {
		frac = min(1, float64(p.done)/float64(p.total))
	}
	fill := int(frac * width)
	fmt.Fprintf(p.w, "\r%s %3d%% [%s%s] %s / %s%s\x1b[K", p.label, int(frac*100),
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), human(p.done), human(p.total), p.rate(t))
}

// finish ends the bar's line, or off a terminal prints the summary line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	switch {
	case p.drawn:
		p.draw(t)
		fmt.Fprintln(p.w)
	case !p.terminal && p.summary && p.done >= progressMin:
		fmt.Fprintf(p.w, "%s: %s in %.1f s,%s\n", p.label, human(p.done), t.Sub(p.start).Seconds(), p.rate(t))
	}
	p.drawn = false
	p.summary = false
}

func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &progressReader{r: r, p: p}
}

func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return &progressWriter{w: w, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w *progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}
