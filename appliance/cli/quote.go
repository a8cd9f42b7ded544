package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keys on a terminal. A key may hold any byte but NUL and '/', so printed
// raw it could move the cursor, clear the screen or retitle the window. On
// a terminal (Env.IsTerminal), ls and stat therefore print a key that
// holds a control character (C0, DEL or C1, unicode.IsControl) or bytes
// that are not UTF-8 in bash's ANSI-C quoting, as GNU ls's shell-escape
// style does: $'/a\nb', $'/caf\xe9' — pasted into bash or zsh, it is the
// key again. Other keys are printed as they are, so a quoted key is always
// the one that begins with "$'" (a key itself begins with "/"). Pipes,
// files and --json get the exact bytes. Error lines on a terminal have
// their control characters and non-UTF-8 bytes escaped the same way, without
// the quotes.

// needsQuote reports whether s would be unsafe or ambiguous on a terminal.
func needsQuote(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || unicode.IsControl(r) {
			return true
		}
		i += n
	}
	return false
}

// shellQuote returns s as it is when needsQuote is false, else in ANSI-C
// quoting: $'...' with \a \b \t \n \v \f \r \e \\ \' and \xHH for the
// other control and non-UTF-8 bytes.
func shellQuote(s string) string {
	if !needsQuote(s) {
		return s
	}
	var b strings.Builder
	b.WriteString("$'")
	escapeControls(&b, s, true)
	b.WriteString("'")
	return b.String()
}

// escapeControls writes s to b with its control characters and non-UTF-8
// bytes escaped; with quoted, also ' and \ (inside $'...').
func escapeControls(b *strings.Builder, s string, quoted bool) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case quoted && (r == '\'' || r == '\\'):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError && n == 1, unicode.IsControl(r):
			if e := shortEscape(r); e != "" && n == 1 {
				b.WriteString(e)
			} else {
				for j := range n {
					fmt.Fprintf(b, `\x%02x`, s[i+j])
				}
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
}

func shortEscape(r rune) string {
	switch r {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\t':
		return `\t`
	case '\n':
		return `\n`
	case '\v':
		return `\v`
	case '\f':
		return `\f`
	case '\r':
		return `\r`
	case 0x1b:
		return `\e`
	}
	return ""
}

// keyPrinter returns how keys are printed on w: shellQuote on a terminal,
// exactly otherwise.
func (c *cmdCtx) keyPrinter(w io.Writer) func(string) string {
	if c.onTerminal(w) {
		return shellQuote
	}
	return func(s string) string { return s }
}

// onTerminal reports whether w is a terminal, through Env.IsTerminal.
func (c *cmdCtx) onTerminal(w io.Writer) bool { return envIsTerminal(c.env, w) }

func envIsTerminal(env Env, w io.Writer) bool {
	if env.IsTerminal != nil {
		return env.IsTerminal(w)
	}
	return isTerminal(w)
}

// terminalSafe escapes the control characters and non-UTF-8 bytes of an
// error line for a terminal.
func terminalSafe(line string) string {
	if !needsQuote(line) {
		return line
	}
	var b strings.Builder
	escapeControls(&b, line, false)
	return b.String()
}
