package cli

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// cmdCtx is one running command.
type cmdCtx struct {
	env Env
	cmd *command
	a   args
	cfg config.Config
}

// target is what a command works on: the store, embedded or remote, and
// its status.
type target struct {
	kv.RW
	status func() (httpapi.Status, error)
	walk   walkFunc
}

// open opens the configured target: the disk (read-only unless write is
// set, or with --read-only) or the server.
func (c *cmdCtx) open(write bool) (*target, error) {
	if c.cfg.IsRemote() {
		cl, err := c.client()
		if err != nil {
			return nil, err
		}
		var rw kv.RW = cl
		if c.cfg.ReadOnly {
			rw = readOnly{rw}
		}
		return &target{RW: rw, status: cl.Status, walk: cl.Walk}, nil
	}
	s, err := appliance.OpenStore(c.cfg, !write || c.cfg.ReadOnly)
	if err != nil {
		return nil, openError(c.cfg, err)
	}
	if d := s.Damage(); d != "" {
		fmt.Fprintf(c.env.Stderr, "tarstore: warning: %s: %s (see `tarstore check`)\n", terminalSafe(appliance.Describe(c.cfg)), d)
	}
	ro := c.cfg.ReadOnly
	return &target{RW: s, walk: storeWalk(s), status: func() (httpapi.Status, error) {
		st, err := appliance.StatusFunc(s)()
		st.ReadOnly = ro || st.WhyReadOnly != "" || st.Damage != ""
		return st, err
	}}, nil
}

// client returns a client of the configured server, with the token of
// --token-file.
func (c *cmdCtx) client() (*client.Client, error) {
	token := ""
	if c.cfg.TokenFile != "" {
		t, err := appliance.ReadToken(c.cfg.TokenFile)
		if err != nil {
			return nil, usagef("%v", err)
		}
		token = t
	}
	opts := client.Options{Token: token, HTTPClient: c.env.HTTPClient}
	if c.cfg.CACert != "" {
		conf, err := client.CAConfig(c.cfg.CACert)
		if err != nil {
			return nil, usagef("--ca-cert: %v", err)
		}
		opts.TLS = conf
	}
	cl, err := client.New(c.cfg.Remote, opts)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return cl, nil
}

// closeInto closes t and keeps the first error in *err.
func closeInto(t io.Closer, err *error) {
	if cerr := t.Close(); *err == nil {
		*err = cerr
	}
}

// key parses a key argument; a bad one is invalid_key under the command's
// operation, with the key as typed.
func (c *cmdCtx) key(s string) (kv.Key, error) {
	k, err := kv.ParseKey(s)
	if err != nil {
		msg := err.Error()
		var ke *kv.Error
		if errors.As(err, &ke) {
			msg = strings.Replace(ke.Message(), strconv.Quote(s)+": ", "", 1)
		}
		return kv.Root, &opError{c.cmd.op, s, msg, kv.ErrInvalidKey.Error()}
	}
	return k, nil
}

// keyOrRoot parses the optional KEY argument of ls and du: the root when
// it is absent.
func (c *cmdCtx) keyOrRoot() (kv.Key, error) {
	if len(c.a.pos) == 0 {
		return kv.Root, nil
	}
	return c.key(c.a.pos[0])
}

// newKey parses a key the command writes (put, patch, alloc, the
// destination of mv, import): as key does, and it must be valid UTF-8
// (httpapi.CheckNewKey), the same rule on a disk as through a server.
func (c *cmdCtx) newKey(s string) (kv.Key, error) {
	k, err := c.key(s)
	if err != nil {
		return k, err
	}
	return k, httpapi.CheckNewKey(c.cmd.op, k)
}

// parseSize parses a size, offset or length argument: a number with an
// optional K, M, G or T suffix (powers of 1024). A plain negative number
// parses, for the command to refuse in the store's words
// (invalid_argument).
func parseSize(what, s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	n, err := httpapi.ParseSize(s)
	if err != nil {
		return 0, usagef("%s: %q is not a size (a number with an optional K, M, G or T suffix)", what, s)
	}
	return n, nil
}

// satAdd is a + b for non-negative a and b, or math.MaxInt64 when that
// overflows.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// satMul is a * b for non-negative a and b, or math.MaxInt64 when that
// overflows.
func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// parseTime parses an RFC 3339 time.
func parseTime(what, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("%s: %q is not an RFC 3339 time (like 2024-01-02T15:04:05Z)", what, s)
	}
	return t, nil
}

// input is a sized stream: a file, or standard input.
type input struct {
	r     io.Reader
	size  int64
	close func() error
}

// openInput opens FILE, or standard input for "-": its size from the file
// when it is a regular file; otherwise it is first copied into an
// unlinked temporary file (which put needs, to know the size).
func (c *cmdCtx) openInput(name string) (*input, error) {
	if name == "-" {
		if f, ok := c.env.Stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
					return &input{r: f, size: fi.Size() - pos, close: func() error { return nil }}, nil
				}
			}
		}
		return c.buffer(c.env.Stdin, "standard input")
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, usagef("%v", unwrapPath(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, usagef("%v", unwrapPath(err))
	}
	switch {
	case fi.IsDir():
		f.Close()
		return nil, usagef("%s is a directory", name)
	case fi.Mode().IsRegular():
		return &input{r: f, size: fi.Size(), close: f.Close}, nil
	}
	in, err := c.buffer(f, name)
	f.Close()
	return in, err
}

// buffer copies r into an unlinked temporary file and returns it, rewound.
func (c *cmdCtx) buffer(r io.Reader, what string) (*input, error) {
	tmp, err := os.CreateTemp("", "tarstore-put-*")
	if err != nil {
		return nil, fmt.Errorf("buffering %s: %w", what, err)
	}
	os.Remove(tmp.Name())
	p := c.quietProgress("reading "+what, -1)
	n, err := io.Copy(tmp, p.reader(r))
	p.finish()
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("buffering %s: %w", what, err)
	}
	return &input{r: tmp, size: n, close: tmp.Close}, nil
}

// unwrapPath shortens "open x: no such file or directory" errors.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

// readOnly refuses writes the way a store opened read-only does, for
// --read-only in remote mode.
type readOnly struct{ kv.RW }

func (r readOnly) Set(k kv.Key, v []byte) error { return kv.ReadOnly("set", k) }
func (r readOnly) SetFrom(k kv.Key, _ io.Reader, _ int64) error {
	return kv.ReadOnly("set", k)
}
func (r readOnly) SetPartial(k kv.Key, _ int64, _ []byte) error {
	return kv.ReadOnly("set_partial", k)
}
func (r readOnly) Allocate(k kv.Key, _ int64, _ time.Time) error {
	return kv.ReadOnly("allocate", k)
}
func (r readOnly) Remove(k kv.Key) error      { return kv.ReadOnly("remove", k) }
func (r readOnly) Rename(src, _ kv.Key) error { return kv.ReadOnly("rename", src) }

// human formats a byte count for people: "1.5 GiB".
func human(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, units[i])
}

// plural returns "1 value" or "2 values".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}
