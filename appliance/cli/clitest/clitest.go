// Package clitest runs scripts of tarstore command lines against their
// expected output, for the command line's tests: in process (package cli)
// and against the built binary (the end-to-end tests of package main), on a
// disk and through a server. Semantics is the script of SPEC §3, row by row.
//
// A script is a list of steps:
//
//	# a comment
//	$ put /a/b -          a command line (arguments split on spaces)
//	< hello               a line of its standard input ("hello\n")
//	<| hello              the same without the newline
//	> hello               a line of its standard output ("hello\n")
//	>| hello              the same without the newline
//	! tarstore: ...       a line of its standard error
//	? 4                   its exit status (0 when absent)
//
// A command with no ">" lines must print nothing, and likewise for "!".
// An expected line ending in "*" matches any line starting with what comes
// before the "*". "\t" in an expected or input line is a tab.
package clitest

import (
	_ "embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Semantics is the script of SPEC §3 through the command line. It starts
// from an empty store of 64 MiB.
//
//go:embed semantics.txt
var Semantics string

// Step is one command of a script and what it must do.
type Step struct {
	Line   int // line number of the "$" line
	Args   []string
	Stdin  string
	stdout []expLine
	stderr []expLine
	Code   int
}

type expLine struct {
	text     string
	newline  bool
	wildcard bool
}

// Parse parses a script.
func Parse(script string) ([]Step, error) {
	var steps []Step
	var cur *Step
	for i, line := range strings.Split(script, "\n") {
		n := i + 1
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tag, rest, _ := strings.Cut(line, " ")
		if tag == "$" {
			steps = append(steps, Step{Line: n, Args: strings.Fields(rest)})
			cur = &steps[len(steps)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: %q before the first command", n, line)
		}
		text := strings.ReplaceAll(rest, `\t`, "\t")
		switch tag {
		case "<":
			cur.Stdin += text + "\n"
		case "<|":
			cur.Stdin += text
		case ">", ">|", "!":
			e := expLine{text: text, newline: tag != ">|"}
			if strings.HasSuffix(text, "*") {
				e.text, e.wildcard = strings.TrimSuffix(text, "*"), true
			}
			if tag == "!" {
				cur.stderr = append(cur.stderr, e)
			} else {
				cur.stdout = append(cur.stdout, e)
			}
		case "?":
			c, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil {
				return nil, fmt.Errorf("line %d: bad exit status %q", n, rest)
			}
			cur.Code = c
		default:
			return nil, fmt.Errorf("line %d: unknown line %q", n, line)
		}
	}
	return steps, nil
}

func pattern(lines []expLine) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^`)
	for _, l := range lines {
		b.WriteString(regexp.QuoteMeta(l.text))
		if l.wildcard {
			b.WriteString(`[^\n]*`)
		}
		if l.newline {
			b.WriteString(`\n`)
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// Check returns a description of how code, stdout and stderr differ from
// what the step expects, or "" when they match.
func (s Step) Check(code int, stdout, stderr string) string {
	var out []string
	if code != s.Code {
		out = append(out, fmt.Sprintf("exit status %d, want %d", code, s.Code))
	}
	if !pattern(s.stdout).MatchString(stdout) {
		out = append(out, fmt.Sprintf("stdout:\n%s\nwant:\n%s", stdout, show(s.stdout)))
	}
	if !pattern(s.stderr).MatchString(stderr) {
		out = append(out, fmt.Sprintf("stderr:\n%s\nwant:\n%s", stderr, show(s.stderr)))
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("line %d: tarstore %s: %s", s.Line, strings.Join(s.Args, " "), strings.Join(out, "; "))
}

func show(lines []expLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		if l.wildcard {
			b.WriteString("*")
		}
		if l.newline {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// Result is what one step did.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// lastModified matches the times stat prints, which depend on when the
// script ran.
var lastModified = regexp.MustCompile(`(last-modified: |"last_modified": ")[0-9TZ:.-]+`)

// Comparable returns r with the times that depend on when a command ran
// masked, so that two runs of a script (on a disk, through a server) can be
// compared byte for byte.
func (r Result) Comparable() Result {
	r.Stdout = lastModified.ReplaceAllString(r.Stdout, "${1}TIME")
	return r
}
