package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// How a failure is reported (SPEC §5): one line on stderr,
//
//	tarstore: <op> <key>: <message> (<code>)
//
// where <op> is the command the user typed (put, not the store's "set"),
// or with --json one JSON object in the HTTP API's error form,
//
//	{"error":{"code":"not_found","key":"/a","message":"Cannot find the key /a","op":"get"}}
//
// and the exit status of the code (ExitCode). A usage error adds a line
// pointing at the command's help (not with --json).

// failure is an error taken apart for printing.
type failure struct {
	op, key, msg, code string
	keyPct             string // the key percent-encoded when it is not UTF-8 (JSON only)
	helpLine           string // printed after the error line, not in JSON
}

// describe takes err apart: what failed, the message, the code.
func describe(cmd *command, err error) failure {
	var (
		ue  *usageError
		oe  *opError
		ke  *kv.Error
		unr *client.UnreachableError
		se  *client.ServerError
	)
	f := failure{op: cmd.name}
	if errors.As(err, &ke) {
		f.key, f.keyPct = ke.Key.String(), httpapiKeyPct(ke.Key)
	}
	switch {
	case errors.As(err, &unr):
		f.msg = unr.Error() + ": is 'tarstore serve' running there?"
		f.code = codeUnreachable
	case errors.Is(err, client.ErrUnauthorized) && errors.As(err, &se):
		msg := se.Message
		if msg == "" {
			msg = "the server refused the request"
		}
		f.msg = strings.TrimSuffix(msg, ".") + ": give the server's token with --token-file"
		f.code = codeUnauthorized
	case errors.As(err, &ue):
		f.msg, f.code = ue.msg, "usage"
		f.helpLine = "Run 'tarstore help " + cmd.name + "' for usage."
	case errors.As(err, &oe):
		if oe.op != cmd.op && oe.op != cmd.name {
			f.op = oe.op // a step of its own, as "open" of the disk
		}
		f.key, f.msg, f.code = oe.subject, oe.msg, oe.code
	case errors.As(err, &ke):
		f.msg, f.code = ke.Message(), ke.Code()
	default:
		f.msg, f.code = err.Error(), kv.Code(err)
	}
	return f
}

// httpapiKeyPct is k percent-encoded when it is not valid UTF-8, else "".
func httpapiKeyPct(k kv.Key) string {
	if s := k.String(); strings.ToValidUTF8(s, "") == s {
		return ""
	}
	return httpapi.PctKey(k)
}

// report prints err to stderr in the form above (as JSON when jsonOut)
// and returns the exit status. On a terminal, control characters in the
// line (a key's) are escaped (terminalSafe).
func report(env Env, cmd *command, jsonOut bool, err error) int {
	if err == nil {
		return ExitOK
	}
	f := describe(cmd, err)
	status := ExitCode(f.code)
	if f.code == "usage" {
		status = ExitUsage
	}
	if jsonOut {
		b, _ := json.Marshal(httpapi.ErrorBody{Error: httpapi.ErrorDetail{
			Code: f.code, Key: f.key, KeyPct: f.keyPct, Message: f.msg, Op: f.op}})
		fmt.Fprintf(env.Stderr, "%s\n", b)
		return status
	}
	esc := func(s string) string { return s }
	if envIsTerminal(env, env.Stderr) {
		esc = terminalSafe
	}
	subject := f.op
	if f.key != "" {
		subject += " " + f.key
	}
	line := "tarstore: " + subject + ": " + f.msg
	if f.code != "usage" {
		line += " (" + f.code + ")"
	}
	fmt.Fprintf(env.Stderr, "%s\n", esc(line))
	if f.helpLine != "" {
		io.WriteString(env.Stderr, f.helpLine+"\n")
	}
	return status
}

// wantsJSON reports whether a command line asks for JSON output, for the
// errors of a command line that does not parse.
func wantsJSON(argv []string) bool {
	for _, a := range argv {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return false
}

// withRoom adds to a no_space error what was needed and what is free.
func (t *target) withRoom(err error, need int64) error {
	var ke *kv.Error
	if !errors.As(err, &ke) || ke.Err != kv.ErrNoSpace || ke.Detail != "" {
		return err
	}
	st, serr := t.status()
	if serr != nil {
		return err
	}
	c := *ke
	c.Detail = fmt.Sprintf("needs %s, %s free (the largest value that fits now: %s)",
		human(need), human(st.Free), human(st.Largest))
	return &c
}
