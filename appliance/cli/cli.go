// Package cli is the tarstore command line (SPEC §5): every command, its
// help, its flags and its exit statuses.
//
// Commands work on a disk (embedded mode: the command opens the image or
// block device itself with hw/file and kvtar, read-only for the commands
// that only read) or through a running server (remote mode: --remote URL
// or TARSTORE_URL, through appliance/client). The command code sees only a
// kv.RW and a status function, so output and exit statuses are the same in
// both modes. Where each setting comes from (flags, environment, kernel
// command line, defaults) is appliance/config's business.
//
// Decisions made here, where SPEC §5 is silent:
//
//   - Flags are GNU style (parseArgs); flags may also stand before the
//     command name (`tarstore --disk x.img ls`).
//   - A disk held by another process (hw.ErrBusy: a server has it) is
//     reported as a storage error (exit 10) with a hint to use --remote. A
//     missing image is a storage error too, with a hint to create one; only
//     serve creates the default image on first use.
//   - stat prints the last-modified time in RFC 3339 to the second, in UTC:
//     that is what HTTP's Last-Modified carries, so embedded and remote
//     output agree. --json has the same fields.
//   - Keys with control characters or non-UTF-8 bytes are shown on a
//     terminal in bash's ANSI-C quoting ($'/a\nb'), by ls and stat, and
//     escaped in error lines; pipes and --json get them exactly (quote.go).
//     Env.IsTerminal decides what a terminal is.
//   - A disk smaller than the smallest store (kvtar.ErrTooSmall, which
//     kvtar reports as invalid_argument) is corrupt (exit 10): it is a
//     truncated image or not a store at all. The message gives its size
//     and the minimum.
//   - A key that does not parse is an invalid_key error (exit 9) reported
//     under the command's operation with the key as typed.
//   - Local files that cannot be read (put FILE, patch FILE, import DIR)
//     are usage errors (exit 2): the argument is wrong, not the store.
//   - serve, format and bench work on a disk only; naming a server for
//     them is a usage error. check works through a server too (the
//     server's POST /v1/check), except --repair.
//   - Through a server, a request that finds no server at the URL is
//     unreachable (exit 12) and one refused for its token unauthorized
//     (exit 13), whatever the command (SPEC §5); other failures of the
//     connection are storage errors (exit 10).
//   - check exits 10 (corrupt) when a problem is fatal and 14 when it
//     found problems but none is fatal (SPEC §5 has no status for that;
//     the issue wants check to fail on any problem, and 14 keeps
//     "damaged" apart from "look at this"). Through a server that answers
//     429 (a check ran moments ago) it waits as Retry-After says, for up
//     to 10 minutes.
//   - patch sends its data in chunks of 1 MiB (one set_partial each), so
//     its memory is bounded; a large patch is durable but not atomic.
//   - import and export do not carry modification times over: the store's
//     clock stamps what they write (kv.RW has no way to set a time on a
//     written value). Empty directories are not imported: the store has no
//     empty dictionaries of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// Exit statuses (SPEC §5).
const (
	ExitOK                 = 0
	ExitInternal           = 1
	ExitUsage              = 2
	ExitNotFound           = 3
	ExitValueExpected      = 4
	ExitDictionaryExpected = 5
	ExitAlreadyPresent     = 6
	ExitNoSpace            = 7
	ExitRenameSourcePrefix = 8
	ExitInvalid            = 9
	ExitStorage            = 10
	ExitReadOnly           = 11
	ExitUnreachable        = 12 // no server at the URL
	ExitUnauthorized       = 13 // the server refused the token, or wanted one
	// ExitProblems: check found problems, none of them fatal (a fatal one
	// is corrupt, ExitStorage). SPEC §5 has no status for it.
	ExitProblems = 14
)

// Codes of failures that are not kv errors, for ExitCode.
const (
	codeUnreachable  = "unreachable"
	codeUnauthorized = "unauthorized"
	codeProblems     = "problems"
)

// ExitCode maps an error code (kv.Code) to the exit status.
func ExitCode(code string) int {
	switch code {
	case "":
		return ExitOK
	case kv.ErrNotFound.Error():
		return ExitNotFound
	case kv.ErrValueExpected.Error():
		return ExitValueExpected
	case kv.ErrDictionaryExpected.Error():
		return ExitDictionaryExpected
	case kv.ErrAlreadyPresent.Error():
		return ExitAlreadyPresent
	case kv.ErrNoSpace.Error():
		return ExitNoSpace
	case kv.ErrRenameSourcePrefix.Error():
		return ExitRenameSourcePrefix
	case kv.ErrInvalidKey.Error(), kv.ErrInvalidArgument.Error():
		return ExitInvalid
	case kv.ErrStorage.Error(), kv.ErrCorrupt.Error():
		return ExitStorage
	case kv.ErrReadOnly.Error():
		return ExitReadOnly
	case codeUnreachable:
		return ExitUnreachable
	case codeUnauthorized:
		return ExitUnauthorized
	case codeProblems:
		return ExitProblems
	}
	return ExitInternal
}

// Env is what a command runs with. Main fills it from the process; tests
// pass buffers.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// LookupEnv reads the environment (os.LookupEnv); nil is an empty one.
	LookupEnv func(string) (string, bool)
	// Cmdline is the kernel command line when it applies (PID 1), else "".
	Cmdline string
	// Context stops serve when it is done. Nil: serve stops on SIGINT or
	// SIGTERM.
	Context context.Context
	// IsTerminal tells whether w is a terminal: progress bars are drawn on
	// stderr only then, and keys with control characters are quoted on
	// stdout (ls, stat) and escaped in error lines (quote.go) only then.
	// Nil: detect a terminal with TCGETS.
	IsTerminal func(w io.Writer) bool
	// HTTPClient is used in remote mode; nil uses the client's default.
	HTTPClient *http.Client
}

// Main runs the command line args (without the program name) of the
// process and returns its exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(Env{
		Stdin:     stdin,
		Stdout:    stdout,
		Stderr:    stderr,
		LookupEnv: os.LookupEnv,
		Cmdline:   config.KernelCmdline(),
	}, args)
}

// Run runs one command line in env and returns the exit status.
func Run(env Env, argv []string) int {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	c, code, ok := prepare(env, argv)
	if !ok {
		return code
	}
	return report(env, c.cmd, c.cmd.run(c))
}

// prepare parses and checks the command line argv: the command, its flags
// and arguments, and the configuration it works with. When the command
// line ends there (help, a usage error), it has printed what there is to
// print and returns false with the exit status.
func prepare(env Env, argv []string) (*cmdCtx, int, bool) {
	name, rest := splitCommand(argv)
	if name == "" {
		for _, a := range argv {
			if a == "--help" || a == "-h" {
				usage(env.Stdout)
				return nil, ExitOK, false
			}
		}
		if len(argv) > 0 {
			fmt.Fprintf(env.Stderr, "tarstore: no command in %q\n", strings.Join(argv, " "))
		}
		usage(env.Stderr)
		return nil, ExitUsage, false
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "tarstore: unknown command %q\nRun 'tarstore help' for the list of commands.\n", name)
		return nil, ExitUsage, false
	}
	a, err := parseArgs(rest, cmd.allFlags())
	if err == nil && a.on("help") {
		cmd.printHelp(env.Stdout)
		return nil, ExitOK, false
	}
	if err == nil {
		err = cmd.checkArgs(a)
	}
	if err != nil {
		return nil, report(env, cmd, &usageError{err.Error()}), false
	}
	if cmd.noTarget {
		return &cmdCtx{env: env, cmd: cmd, a: a}, 0, true
	}
	flags := map[string]string{}
	for _, s := range cmd.settings {
		if a.has(s) {
			flags[s] = a.get(s)
		}
	}
	cfg, err := config.Load(config.Sources{Flags: flags, LookupEnv: env.LookupEnv, Cmdline: env.Cmdline})
	if err != nil {
		return nil, report(env, cmd, &usageError{err.Error()}), false
	}
	if cmd.diskOnly && cfg.IsRemote() {
		return nil, report(env, cmd, &usageError{fmt.Sprintf(
			"%s works on a disk, not through a server (%s from the %s): name the disk with --disk",
			cmd.name, cfg.Remote, cfg.From[config.Remote])}), false
	}
	return &cmdCtx{env: env, cmd: cmd, a: a, cfg: cfg}, 0, true
}

// usageError is a bad command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// opError is a failure outside the store's own errors (opening the disk,
// a failed check) in the form of a store error: op, subject, message, code.
type opError struct {
	op, subject, msg, code string
}

func (e *opError) Error() string { return e.op + " " + e.subject + ": " + e.msg }

// report prints err to stderr in the form SPEC §5 gives and returns the
// exit status. On a terminal, control characters in the message (a key's)
// are escaped (terminalSafe).
func report(env Env, cmd *command, err error) int {
	if err == nil {
		return ExitOK
	}
	esc := func(s string) string { return s }
	if envIsTerminal(env, env.Stderr) {
		esc = terminalSafe
	}
	w := env.Stderr
	var (
		ue  *usageError
		oe  *opError
		ke  *kv.Error
		unr *client.UnreachableError
		se  *client.ServerError
	)
	// Through a server, the operation and key that failed, else the command.
	subject := cmd.name
	if errors.As(err, &ke) {
		subject = ke.Op + " " + ke.Key.String()
	}
	switch {
	case errors.As(err, &unr):
		fmt.Fprintf(w, "%s\n", esc(fmt.Sprintf("tarstore: %s: %s (%s)", subject, unr.Error(), codeUnreachable)))
		return ExitUnreachable
	case errors.Is(err, client.ErrUnauthorized) && errors.As(err, &se):
		msg := se.Message
		if msg == "" {
			msg = "the server refused the request"
		}
		fmt.Fprintf(w, "%s\n", esc(fmt.Sprintf("tarstore: %s: %s: give the server's token with --token-file (%s)",
			subject, strings.TrimSuffix(msg, "."), codeUnauthorized)))
		return ExitUnauthorized
	case errors.As(err, &ue):
		fmt.Fprintf(w, "%s\nRun 'tarstore help %s' for usage.\n", esc("tarstore: "+cmd.name+": "+ue.msg), cmd.name)
		return ExitUsage
	case errors.As(err, &oe):
		fmt.Fprintf(w, "%s\n", esc(fmt.Sprintf("tarstore: %s (%s)", oe.Error(), oe.code)))
		return ExitCode(oe.code)
	case errors.As(err, &ke):
		fmt.Fprintf(w, "%s\n", esc(fmt.Sprintf("tarstore: %s %s: %s (%s)", ke.Op, ke.Key, ke.Message(), ke.Code())))
		return ExitCode(ke.Code())
	}
	code := kv.Code(err)
	fmt.Fprintf(w, "%s\n", esc(fmt.Sprintf("tarstore: %s: %v (%s)", cmd.name, err, code)))
	return ExitCode(code)
}

// openError turns an error opening the device into one the user can act on.
func openError(cfg config.Config, err error) error {
	dev := appliance.Describe(cfg)
	if errors.Is(err, kvtar.ErrTooSmall) {
		// kvtar calls it invalid_argument (the device it was handed is
		// unusable); to the user an image below the smallest store is a
		// damaged one: corrupt, exit 10.
		return &opError{"open", dev, tooSmallMessage(cfg.Disk, err), kv.ErrCorrupt.Error()}
	}
	var ke *kv.Error
	if errors.As(err, &ke) {
		return err
	}
	switch {
	case errors.Is(err, appliance.ErrBadSpec):
		return &usageError{err.Error()}
	case errors.Is(err, appliance.ErrNoImage):
		return &opError{"open", dev, "no such disk image; create one with 'tarstore format --disk " + dev +
			" --size 1G', or run 'tarstore serve', which creates " + config.DefaultDisk + " on first use", kv.ErrStorage.Error()}
	case errors.Is(err, hw.ErrBusy):
		return &opError{"open", dev, "the disk is in use by another process (a 'tarstore serve'?); " +
			"go through that server with --remote http://ADDR or TARSTORE_URL", kv.ErrStorage.Error()}
	}
	var he *hw.Error
	if errors.As(err, &he) {
		msg := he.Kind.Error()
		if he.Err != nil {
			msg += ": " + he.Err.Error()
		}
		return &opError{"open", dev, msg, kv.ErrStorage.Error()}
	}
	return &opError{"open", dev, err.Error(), kv.ErrStorage.Error()}
}

// tooSmallMessage explains kvtar.ErrTooSmall for the disk at path: its size
// (of the file, when it is one, and what the store saw in whole sectors)
// against the smallest store.
func tooSmallMessage(path string, err error) string {
	seen := ""
	var ke *kv.Error
	if errors.As(err, &ke) && ke.Detail != "" {
		seen, _, _ = strings.Cut(ke.Detail, ",") // "1024 bytes, need at least 65536"
	}
	size := seen
	if fi, serr := os.Stat(path); serr == nil && fi.Mode().IsRegular() {
		size = fmt.Sprintf("%d bytes", fi.Size())
		if seen != "" && seen != size {
			size += " (" + seen + " in whole sectors)"
		}
	}
	if size == "" {
		size = "fewer bytes"
	}
	return fmt.Sprintf("the disk holds %s, less than the smallest store (%d bytes): it is truncated, or not a tarstore disk",
		size, kvtar.MinDeviceSize)
}
