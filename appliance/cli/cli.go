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
//   - import stamps what it writes with the store's clock (kv.RW has no
//     way to set a time on a written value); export sets each file's
//     modification time to its value's last-modified. Modes, owners,
//     symbolic links and special files are not carried (transfer.go):
//     import skips links and special files and counts them. Empty
//     directories are not imported: the store has no empty dictionaries
//     of its own. import reads its directory itself (not through
//     kv/loopback, which stages writes inside the directory), so the
//     source is only read.
//   - Errors name the command the user typed (put, not the store's set),
//     whatever operation failed inside it; with --json (which every
//     command takes) they are the HTTP API's JSON error body on stderr
//     (report.go).
//   - rm of a dictionary needs -r (value_expected, exit 4, nothing
//     removed), and of the root --force too, as rm and mc rm do; the HTTP
//     API's DELETE keeps Mirage's recursive remove.
//   - ls -r and du walk the store depth first; through a server that is
//     one streamed GET ?list&recursive&long (client.Walk). Output streams
//     too, so ls -l has fixed-width columns. stat of a dictionary shows
//     the newest last-modified below it, found by the same walk; kv's
//     last_modified (one level) is unchanged, and ls -l shows that one.
//   - Switches may have a one-letter form (-r, -l, -s, -v), which combine
//     (-rl).
//   - A long transfer reports itself (progress.go): a bar on a terminal,
//     one summary line on stderr otherwise.
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
	return report(env, c.cmd, c.a.on("json"), c.cmd.run(c))
}

// prepare parses and checks the command line argv: the command, its flags
// and arguments, and the configuration it works with. When the command
// line ends there (help, a usage error), it has printed what there is to
// print and returns false with the exit status.
func prepare(env Env, argv []string) (*cmdCtx, int, bool) {
	name, rest := splitCommand(argv)
	if name == "" {
		for _, a := range argv {
			switch a {
			case "--help", "-h":
				usage(env.Stdout)
				return nil, ExitOK, false
			case "--version":
				io.WriteString(env.Stdout, currentVersion().String())
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
		fmt.Fprintf(env.Stderr, "tarstore: %s\nRun 'tarstore help' for the list of commands.\n", unknownCommand(name))
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
		return nil, report(env, cmd, wantsJSON(argv), &usageError{err.Error()}), false
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
		return nil, report(env, cmd, wantsJSON(argv), &usageError{err.Error()}), false
	}
	if cmd.diskOnly && cfg.IsRemote() {
		return nil, report(env, cmd, wantsJSON(argv), &usageError{fmt.Sprintf(
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
