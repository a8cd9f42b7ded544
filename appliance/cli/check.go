package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// problem is a kvtar.Problem for --json.
type problem struct {
	Offset int64  `json:"offset"`
	Name   string `json:"name,omitempty"`
	What   string `json:"what"`
	Fatal  bool   `json:"fatal"`
}

// checkReport is what check --json prints.
type checkReport struct {
	Disk         string    `json:"disk"`
	OK           bool      `json:"ok"` // no fatal problem (non-fatal ones may be there: exit status 14)
	Values       int       `json:"values"`
	End          int64     `json:"end"`      // offset of the end-of-archive marker
	Capacity     int64     `json:"capacity"` // bytes of the archive area
	Free         int64     `json:"free"`
	Seconds      float64   `json:"seconds"` // how long the check took (not the open)
	Problems     []problem `json:"problems"`
	BeforeRepair []problem `json:"before_repair,omitempty"` // with --repair: what a read-only look found first
	Repaired     []problem `json:"repaired,omitempty"`      // with --repair: what the repair changed
}

func toProblems(ps []kvtar.Problem) []problem {
	out := []problem{}
	for _, p := range ps {
		out = append(out, problem{p.Offset, p.Name, p.What, p.Fatal})
	}
	return out
}

// openProblem turns a failed open of the disk at path (a damaged or
// truncated archive) into a fatal problem, or returns nil when the failure
// is not about the archive.
func openProblem(path string, err error) *problem {
	var ke *kv.Error
	switch {
	case errors.Is(err, kvtar.ErrTooSmall):
		return &problem{What: tooSmallMessage(path, err), Fatal: true}
	case errors.As(err, &ke) && (errors.Is(err, kv.ErrCorrupt) || errors.Is(err, kv.ErrStorage)):
		return &problem{What: ke.Message(), Fatal: true}
	}
	return nil
}

func runCheck(c *cmdCtx) (err error) {
	if c.cfg.IsRemote() {
		return runRemoteCheck(c)
	}
	rep := checkReport{Disk: appliance.Describe(c.cfg), Problems: []problem{}}
	fail := func(err error) error {
		p := openProblem(c.cfg.Disk, err)
		if p == nil {
			return openError(c.cfg, err)
		}
		rep.Problems = append(rep.Problems, *p)
		if c.a.on("json") {
			writeJSON(c.env.Stdout, rep)
		}
		if errors.Is(err, kvtar.ErrTooSmall) {
			return openError(c.cfg, err) // corrupt, not kvtar's invalid_argument
		}
		return err
	}
	if c.a.on("repair") {
		// First a read-only look, to report what the repair is about.
		s, err := appliance.OpenStore(c.cfg, true)
		if err != nil {
			if p := openProblem(c.cfg.Disk, err); p != nil {
				rep.BeforeRepair = []problem{*p}
			} else {
				return openError(c.cfg, err)
			}
		} else {
			ps, err := s.Check()
			s.Close()
			if err != nil {
				return err
			}
			rep.BeforeRepair = toProblems(ps)
		}
		fixed, err := appliance.RepairStore(c.cfg)
		if err != nil {
			return fail(err)
		}
		if len(fixed) > 0 {
			rep.Repaired = toProblems(fixed)
		}
	}
	s, err := appliance.OpenStore(c.cfg, !c.a.on("repair"))
	if err != nil {
		return fail(err)
	}
	defer closeInto(s, &err)
	start := time.Now()
	ps, err := s.Check()
	if err != nil {
		return fail(err)
	}
	rep.Seconds = time.Since(start).Seconds()
	info, err := s.Stat()
	if err != nil {
		return err
	}
	rep.Problems = toProblems(ps)
	rep.Values, rep.End, rep.Capacity, rep.Free = info.Values, info.End, info.Size, info.Free
	return finishCheck(c, rep)
}

// checkWaitMax bounds how long check --remote waits for a server that
// answers 429 rate_limited (a check running, or one that ended too
// recently) before it gives up.
const checkWaitMax = 10 * time.Minute

// runRemoteCheck is check --remote: the server's online check (POST
// /v1/check), printed as a check of a disk is. A server busy with a check
// is asked again when its Retry-After says, for up to checkWaitMax.
func runRemoteCheck(c *cmdCtx) (err error) {
	if c.a.on("repair") {
		return usagef("--repair works on a disk only: a server repaired its disk when it opened it (unless it serves it --read-only)")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer closeInto(cl, &err)
	ctx := c.env.Context
	if ctx == nil {
		ctx = context.Background()
	}
	giveUp := time.Now().Add(checkWaitMax)
	var got httpapi.CheckReport
	for {
		got, err = cl.Check()
		var se *client.ServerError
		if err == nil || !errors.As(err, &se) || se.Code != httpapi.CodeRateLimited || se.RetryAfter <= 0 ||
			time.Now().Add(se.RetryAfter).After(giveUp) {
			break
		}
		if envIsTerminal(c.env, c.env.Stderr) {
			fmt.Fprintf(c.env.Stderr, "tarstore: check %s: %s; asking again in %s\n",
				terminalSafe(c.cfg.Remote), terminalSafe(se.Message), se.RetryAfter)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(se.RetryAfter):
		}
	}
	if err != nil {
		return err
	}
	rep := checkReport{Disk: appliance.Describe(c.cfg), Problems: []problem{},
		Values: got.Values, End: got.End, Capacity: got.Capacity, Free: got.Free, Seconds: got.Seconds}
	for _, p := range got.Problems {
		rep.Problems = append(rep.Problems, problem{p.Offset, p.Name(), p.What, p.Fatal})
	}
	return finishCheck(c, rep)
}

// finishCheck prints rep (text or --json) and returns the error that
// sets the exit status: corrupt (10) when a problem is fatal, problems
// (14) when there are problems but none is fatal.
func finishCheck(c *cmdCtx, rep checkReport) error {
	fatal := 0
	for _, p := range rep.Problems {
		if p.Fatal {
			fatal++
		}
	}
	rep.OK = fatal == 0
	if c.a.on("json") {
		if err := writeJSON(c.env.Stdout, rep); err != nil {
			return err
		}
	} else {
		printCheck(c.env.Stdout, rep, c.a.on("repair"))
	}
	switch {
	case fatal > 0:
		return &opError{"check", rep.Disk, fmt.Sprintf("%s: the archive is damaged, or the store and the device disagree",
			plural(int64(fatal), "fatal problem")), kv.ErrCorrupt.Error()}
	case len(rep.Problems) > 0:
		return &opError{"check", rep.Disk, fmt.Sprintf("%s, none fatal: the store works, but look at the list",
			plural(int64(len(rep.Problems)), "problem")), codeProblems}
	}
	return nil
}

func printCheck(out io.Writer, rep checkReport, repair bool) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	line := func(p problem) {
		s := fmt.Sprintf("offset %d", p.Offset)
		if p.Name != "" {
			s += fmt.Sprintf(" (%q)", p.Name)
		}
		s += ": " + p.What
		if p.Fatal {
			s += " [fatal]"
		}
		fmt.Fprintln(w, s)
	}
	if repair && len(rep.BeforeRepair) > 0 {
		fmt.Fprintf(w, "before repair:\n")
		for _, p := range rep.BeforeRepair {
			fmt.Fprint(w, "  ")
			line(p)
		}
		if len(rep.Repaired) > 0 {
			fmt.Fprintf(w, "repaired:\n")
			for _, p := range rep.Repaired {
				fmt.Fprint(w, "  ")
				line(p)
			}
		}
		fmt.Fprintf(w, "after repair:\n")
	}
	for _, p := range rep.Problems {
		line(p)
	}
	fatal := 0
	for _, p := range rep.Problems {
		if p.Fatal {
			fatal++
		}
	}
	status := "ok"
	if fatal > 0 {
		status = "DAMAGED"
	}
	fmt.Fprintf(w, "check: %s: %s, %s (%d fatal); %s, archive ends at %d, %d of %d bytes free\n",
		rep.Disk, status, plural(int64(len(rep.Problems)), "problem"), fatal,
		plural(int64(rep.Values), "value"), rep.End, rep.Free, rep.Capacity)
}
