package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// TestSmallArchive: a tar file smaller than the smallest store (GNU tar
// writes 10 KiB for a few small files) is read as it is: ls, get and check
// work, writes are refused (exit 11) saying how to get room, and the file
// is not changed.
func TestSmallArchive(t *testing.T) {
	_, err := exec.LookPath("tar")
	require.NoError(t, err, "GNU tar (scripts/test.sh installs it)")
	dir := t.TempDir()
	src := dir + "/src"
	require.NoError(t, os.MkdirAll(src+"/d", 0o755))
	require.NoError(t, os.WriteFile(src+"/a.txt", []byte("hello\n"), 0o644))
	require.NoError(t, os.WriteFile(src+"/d/b.txt", []byte("world\n"), 0o644))
	img := dir + "/small.tar"
	out, err := exec.Command("tar", "--format=gnu", "-cf", img, "-C", src, "a.txt", "d").CombinedOutput()
	require.NoError(t, err, "%s", out)
	before, err := os.ReadFile(img)
	require.NoError(t, err)
	require.Less(t, len(before), kvtar.MinDeviceSize)
	r := runner{t: t, prefix: []string{"--disk", img}}
	assert.Equal(t, "value\t/a.txt\ndictionary\t/d\n", r.ok("", "ls"))
	assert.Equal(t, "world\n", r.ok("", "get", "/d/b.txt"))
	r.ok("", "check")
	res := r.run("x", "put", "/new")
	assert.Equal(t, ExitReadOnly, res.code, res.stderr)
	assert.Contains(t, res.stderr, "less than the smallest store that takes writes")
	after, err := os.ReadFile(img)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the archive is not written")
}

// TestTruncatedImage: an image cut below the smallest store is corrupt
// (exit 10) with its size in the message, for every command that opens it,
// not kvtar's invalid_argument (exit 9).
func TestTruncatedImage(t *testing.T) {
	r, img := disk(t, 1*mib)
	r.ok("hello", "put", "/a")
	require.NoError(t, os.Truncate(img, 1500))
	want := fmt.Sprintf("tarstore: open %s: the disk holds 1500 bytes (1024 bytes in whole sectors), "+
		"less than the smallest store (%d bytes): it is truncated, or not a tarstore disk (corrupt)\n", img, kvtar.MinDeviceSize)
	for _, args := range [][]string{{"ls"}, {"stat", "/a"}, {"get", "/a"}, {"put", "/b"}, {"check"}, {"check", "--repair"}, {"bench"}} {
		res := r.run("x", args...)
		assert.Equal(t, ExitStorage, res.code, "%q: %s", args, res.stderr)
		assert.Equal(t, want, res.stderr, "%q", args)
	}
	res := r.run("", "check", "--json")
	assert.Equal(t, ExitStorage, res.code)
	assert.Contains(t, res.stdout, `"fatal": true`)
	assert.Contains(t, res.stdout, "less than the smallest store")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb strings.Builder
	code := Run(Env{Stderr: &errb, Context: ctx}, []string{"serve", "--disk", img, "--listen", "127.0.0.1:0"})
	assert.Equal(t, ExitStorage, code)
	assert.Equal(t, want, errb.String())
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/plain":            "/plain",
		"/with space/é":     "/with space/é",
		"/it's":             "/it's", // nothing to hide: as it is
		"/a\nb":             `$'/a\nb'`,
		"/esc\x1b[2J":       `$'/esc\e[2J'`,
		"/tab\t'q'\\":       `$'/tab\t\'q\'\\'`,
		"/bell\a\b\v\f\r":   `$'/bell\a\b\v\f\r'`,
		"/nul\x01\x7f":      `$'/nul\x01\x7f'`,
		"/c1\u009b31m":      `$'/c1\xc2\x9b31m'`,
		"/latin1-caf\xe9":   `$'/latin1-caf\xe9'`,
		"/\xff\xfe":         `$'/\xff\xfe'`,
		"/trunc\xe2\x82":    `$'/trunc\xe2\x82'`,
		"/ok\u202eevil.txt": "/ok\u202eevil.txt", // not a control character
	} {
		got := shellQuote(in)
		assert.Equal(t, want, got, "%q", in)
		// bash turns the quoted form back into the key.
		out, err := exec.Command("bash", "-c", "printf %s "+got).Output()
		if strings.HasPrefix(got, "$'") {
			require.NoError(t, err)
			assert.Equal(t, in, string(out), "%q through bash", got)
		}
	}
	assert.Equal(t, `tarstore: get /a\e[2J\n: Cannot find (not_found)`, terminalSafe("tarstore: get /a\x1b[2J\n: Cannot find (not_found)"))
	assert.Equal(t, "tarstore: plain", terminalSafe("tarstore: plain"))
}

// TestTerminalKeys: ls and stat quote keys with control characters on a
// terminal and print them exactly to pipes and with --json, embedded and
// through a server; error lines on a terminal are escaped.
func TestTerminalKeys(t *testing.T) {
	keys := []string{"/d/a\nb", "/d/esc\x1b]0;pwned\a", "/d/plain"}
	embedded, _ := disk(t, 4*mib)
	remote, _ := server(t, 4*mib, httpapi.Options{})
	for name, r := range map[string]runner{"embedded": embedded, "remote": remote} {
		for _, k := range keys {
			r.ok("v", "put", "--", k)
		}
		term := r
		term.isTerm = true
		assert.Equal(t, "value\t$'/d/a\\nb'\nvalue\t$'/d/esc\\e]0;pwned\\a'\nvalue\t/d/plain\n", term.ok("", "ls", "/d"), name)
		assert.Equal(t, "value\t/d/a\nb\nvalue\t/d/esc\x1b]0;pwned\a\nvalue\t/d/plain\n", r.ok("", "ls", "/d"), name)
		var l listing
		require.NoError(t, json.Unmarshal([]byte(term.ok("", "ls", "/d", "--json")), &l))
		require.Len(t, l.Entries, 3)
		for i, k := range keys {
			assert.Equal(t, k, l.Entries[i].Key, name)
		}
		st := term.ok("", "stat", "--", keys[1])
		assert.True(t, strings.HasPrefix(st, "key: $'/d/esc\\e]0;pwned\\a'\nkind: value\n"), "%s: %q", name, st)
		st = r.ok("", "stat", "--", keys[1])
		assert.True(t, strings.HasPrefix(st, "key: /d/esc\x1b]0;pwned\a\n"), "%s: %q", name, st)

		res := term.run("", "get", "/d/gone\x1b[2J")
		assert.Equal(t, ExitNotFound, res.code)
		assert.Equal(t, `tarstore: get /d/gone\e[2J: Cannot find the key /d/gone\e[2J (not_found)`+"\n", res.stderr, name)
		res = r.run("", "get", "/d/gone\x1b[2J")
		assert.Equal(t, "tarstore: get /d/gone\x1b[2J: Cannot find the key /d/gone\x1b[2J (not_found)\n", res.stderr, name)
	}
}

// TestNonUTF8KeysCLI: a key that is not UTF-8 is listed and read the same
// on a disk and through a server, and writing one is refused the same way
// (invalid_key, exit 9) at every length.
func TestNonUTF8KeysCLI(t *testing.T) {
	embedded, img := disk(t, 4*mib)
	s, err := appliance.OpenStore(config.Config{Disk: img}, false)
	require.NoError(t, err)
	require.NoError(t, s.Set(kv.MustKey("/nu/caf\xe9"), []byte("latin-1")))
	require.NoError(t, s.Set(kv.MustKey("/nu/\xff\xfe"), []byte("ff-fe")))
	require.NoError(t, s.Close())
	long := "/" + strings.Repeat("a", 100) + "/" + strings.Repeat("\xff", 120)

	var outs [][]string
	check := func(r runner) {
		term := r
		term.isTerm = true
		out := []string{
			r.ok("", "ls", "/nu"),
			term.ok("", "ls", "/nu"),
			r.ok("", "get", "/nu/caf\xe9"),
			r.ok("", "get", "/nu/\xff\xfe"),
		}
		for _, args := range [][]string{{"put", "/nu/\xe9t\xe9"}, {"put", long}, {"alloc", "/nu/\xff", "1"},
			{"patch", "/nu/\xff", "0"}, {"mv", "/nu/caf\xe9", "/nu/\xe9"}} {
			res := r.run("x", args...)
			assert.Equal(t, ExitInvalid, res.code, "%q: %s", args, res.stderr)
			out = append(out, res.stderr)
		}
		outs = append(outs, out)
	}
	check(embedded)
	addr, stop := serve(t, img)
	check(runner{t: t, prefix: []string{"--remote", "http://" + addr}})
	code, log := stop()
	require.Equal(t, 0, code, log)

	assert.Equal(t, outs[0], outs[1], "embedded and remote agree")
	o := outs[0]
	assert.Equal(t, "value\t/nu/caf\xe9\nvalue\t/nu/\xff\xfe\n", o[0])
	assert.Equal(t, "value\t$'/nu/caf\\xe9'\nvalue\t$'/nu/\\xff\\xfe'\n", o[1])
	assert.Equal(t, "latin-1", o[2])
	assert.Equal(t, "ff-fe", o[3])
	assert.Equal(t, "tarstore: put /nu/\xe9t\xe9: Invalid key: segment \"\\xe9t\\xe9\" is not valid UTF-8 (keys written through tarstore must be UTF-8) (invalid_key)\n", o[4])
	assert.Contains(t, o[5], "is not valid UTF-8")
	assert.True(t, strings.HasPrefix(o[8], "tarstore: mv /nu/\xe9: Invalid key"), o[8])
}

// TestHugeSizesCLI: sizes, offsets and lengths up to 2^63-1 on the command
// line never overflow: an allocation larger than the device is no_space
// before the store sees it, on a disk as through a server.
func TestHugeSizesCLI(t *testing.T) {
	max := "9223372036854775807"
	embedded, _ := disk(t, 2*mib)
	remote, _ := server(t, 2*mib, httpapi.Options{})
	for name, r := range map[string]runner{"embedded": embedded, "remote": remote} {
		r.ok("0123456789", "put", "/a")
		for _, n := range []string{max, "9223372036854775000", "9223372036854774000", "8191T", "3M"} {
			res := r.run("", "alloc", "/x", n)
			assert.Equal(t, ExitNoSpace, res.code, "%s %s: %s", name, n, res.stderr)
			assert.Regexp(t, `^tarstore: alloc /x: No space left on device: needs [0-9.]+ [MPE]iB, 2.0 MiB free \(the largest value that fits now: 2.0 MiB\) \(no_space\)\n$`, res.stderr, name)
			res = r.run("", "alloc", "/a", n)
			assert.Equal(t, ExitAlreadyPresent, res.code, "%s %s: %s", name, n, res.stderr)
			res = r.run("", "alloc", "/a/b", n)
			assert.Equal(t, ExitDictionaryExpected, res.code, "%s %s: %s", name, n, res.stderr)
		}
		assert.Equal(t, "", r.ok("", "get", "/a", "--offset", max, "--length", max), name)
		assert.Equal(t, "123456789", r.ok("", "get", "/a", "--offset", "1", "--length", max), name)
		assert.Equal(t, "9", r.ok("", "get", "/a", "--offset", "9", "--length", max), name)
		assert.Equal(t, "", r.ok("", "get", "/a", "--offset", "9223372036854775806", "--length", "2"), name)
		r.ok("+", "patch", "/a", max)
		r.ok("-", "patch", "/a", "9223372036854775806")
		assert.Equal(t, "0123456789+-", r.ok("", "get", "/a"), name)
	}
	res := embedded.run("", "bench", "--size", max, "--rounds", max, "--ops", max)
	assert.Equal(t, ExitNoSpace, res.code, res.stderr)
	assert.Contains(t, res.stderr, "not enough free space")
}
