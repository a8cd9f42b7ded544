package cli

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar"
)

// fuzzRuns are the commands FuzzCommandLine runs once their command line
// parses: those that touch nothing but the store (and standard input and
// output). import, export, serve, format, check and bench would read or
// write host files, devices or ports the fuzzer names.
var fuzzRuns = map[string]bool{"put": true, "get": true, "stat": true, "ls": true, "rm": true, "mv": true,
	"alloc": true, "patch": true, "df": true, "help": true}

// FuzzCommandLine parses arbitrary command lines (arguments separated by
// NUL, which no real argument holds) and must not panic: the command, its
// flags and arguments, the configuration, and every size, time and key
// among the arguments. Command lines that parse and stay on the test
// server (TARSTORE_URL, a small kvtar store on memory) are run too, with
// the fuzzed standard input: sizes and offsets reach the command's
// arithmetic, the client and the server. The seeds run as ordinary tests.
func FuzzCommandLine(f *testing.F) {
	dev, err := mem.New(512, 2048) // 1 MiB
	if err != nil {
		f.Fatal(err)
	}
	if err := kvtar.Format(dev); err != nil {
		f.Fatal(err)
	}
	st, err := kvtar.New(clock.System{}, dev)
	if err != nil {
		f.Fatal(err)
	}
	h := httpapi.New(st, httpapi.Options{Status: appliance.StatusFunc(st)})
	srv := httptest.NewServer(h)
	f.Cleanup(func() {
		srv.Close()
		h.Close()
		st.Close()
	})

	max := strconv.FormatInt(1<<63-1, 10)
	for _, argv := range [][]string{
		{"put", "/a"},
		{"alloc", "/x", max},
		{"alloc", "/x", "9223372036854775000"},
		{"alloc", "/x", "9223372036854774000"},
		{"alloc", "/x", "8191T"},
		{"alloc", "/x", "-1"},
		{"alloc", "/a", max},
		{"alloc", "/y", "1K", "--mtime", "2024-01-01T00:00:00Z"},
		{"get", "/a", "--offset", max, "--length", max},
		{"get", "/a", "--offset", "1", "--length", max},
		{"get", "/a", "--offset=9223372036854775806", "--length=2"},
		{"get", "/a", "--length", "-1"},
		{"patch", "/a", max},
		{"patch", "/a", "9223372036854775806"},
		{"patch", "/a", "--", "-1"},
		{"ls", "/", "--json"},
		{"stat", "/a"},
		{"mv", "/a", "/b/c"},
		{"rm", "/b"},
		{"df", "--json"},
		{"--disk", "x.img", "ls"},
		{"ls", "--remote", "http://127.0.0.1:1"},
		{"format", "--size", max},
		{"bench", "--size", max, "--rounds", max, "--ops", max},
		{"help", "alloc"},
		{"get", "--", "-x"},
		{"put", "/nu/\xff"},
		{"--max-conns", "0", "serve"},
		{"ls", "--read-only=maybe"},
		{},
	} {
		f.Add(strings.Join(argv, "\x00"), []byte("data"))
	}
	f.Fuzz(func(t *testing.T, line string, stdin []byte) {
		var argv []string
		if line != "" {
			argv = strings.Split(line, "\x00")
		}
		var out bytes.Buffer
		env := Env{
			Stdin:  bytes.NewReader(stdin),
			Stdout: &out,
			Stderr: io.Discard,
			LookupEnv: func(k string) (string, bool) {
				if k == "TARSTORE_URL" {
					return srv.URL, true
				}
				return "", false
			},
			IsTerminal: func(io.Writer) bool { return len(stdin)%2 == 1 },
		}
		c, code, ok := prepare(env, argv)
		if !ok {
			if code != ExitOK && code != ExitUsage {
				t.Fatalf("%q: exit %d before running", argv, code)
			}
			return
		}
		for _, v := range c.a.pos {
			parseSize("ARG", v)
			parseTime("ARG", v)
			c.key(v)
			c.newKey(v)
		}
		for name, v := range c.a.flags {
			parseSize("--"+name, v)
			parseTime("--"+name, v)
		}
		if !fuzzRuns[c.cmd.name] || !c.cmd.noTarget && c.cfg.Remote != srv.URL {
			return
		}
		code = report(env, c.cmd, c.a.on("json"), c.cmd.run(c))
		if code < ExitOK || code > ExitReadOnly || code == ExitInternal {
			t.Fatalf("%q: exit %d", argv, code)
		}
	})
}
