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

// progressMin is the smallest transfer that gets a progress bar.
const progressMin = 8 << 20

// progressEvery is how often the bar is redrawn at most.
const progressEvery = 200 * time.Millisecond

// progress draws a progress bar on stderr for a long transfer, only when
// stderr is a terminal. A nil *progress draws nothing; its methods pass
// data through.
type progress struct {
	w     io.Writer
	label string
	total int64
	start time.Time
	now   func() time.Time

	mu    sync.Mutex
	done  int64
	last  time.Time
	drawn bool
}

// progress returns a bar for a transfer of total bytes, or nil when there
// is to be none (stderr is not a terminal, or the transfer is short).
func (c *cmdCtx) progress(label string, total int64) *progress {
	if total < progressMin {
		return nil
	}
	if !c.onTerminal(c.env.Stderr) {
		return nil
	}
	return newProgress(c.env.Stderr, label, total, time.Now)
}

func newProgress(w io.Writer, label string, total int64, now func() time.Time) *progress {
	t := now()
	return &progress{w: w, label: label, total: total, start: t, now: now}
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
	if t := p.now(); t.Sub(p.last) >= progressEvery || p.done >= p.total {
		p.last = t
		p.draw(t)
	}
}

// draw writes the bar: "\r<label> 42% [=====     ] 1.2 GiB / 2.0 GiB 310.5 MiB/s".
func (p *progress) draw(t time.Time) {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(1, float64(p.done)/float64(p.total))
	}
	fill := int(frac * width)
	rate := ""
	if el := t.Sub(p.start).Seconds(); el > 0 {
		rate = fmt.Sprintf(" %s/s", human(int64(float64(p.done)/el)))
	}
	fmt.Fprintf(p.w, "\r%s %3d%% [%s%s] %s / %s%s\x1b[K", p.label, int(frac*100),
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), human(p.done), human(p.total), rate)
	p.drawn = true
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		p.draw(p.now())
		fmt.Fprintln(p.w)
	}
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
