package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/cli/clitest"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

const mib = 1 << 20

// runScript runs the steps with r and checks each; it returns the results.
func runScript(t *testing.T, r runner, steps []clitest.Step) []clitest.Result {
	t.Helper()
	var out []clitest.Result
	for _, s := range steps {
		res := r.run(s.Stdin, s.Args...)
		if d := s.Check(res.code, res.stdout, res.stderr); d != "" {
			t.Error(d)
		}
		out = append(out, clitest.Result{Code: res.code, Stdout: res.stdout, Stderr: res.stderr})
	}
	return out
}

// TestSemantics runs SPEC §3 through the command line on a disk, then
// through `serve` (in process) with --remote: each command must print the
// same and exit the same.
func TestSemantics(t *testing.T) {
	steps, err := clitest.Parse(clitest.Semantics)
	require.NoError(t, err)
	require.Greater(t, len(steps), 50)

	// The same image for both, so that df names the same device.
	embedded, img := disk(t, 64*mib)
	local := runScript(t, embedded, steps)
	embedded.ok("", "format", "--force")

	addr, stop := serve(t, img)
	remote := runScript(t, runner{t: t, prefix: []string{"--remote", "http://" + addr}}, steps)
	code, log := stop()
	assert.Equal(t, 0, code, log)

	for i := range steps {
		assert.Equal(t, local[i].Comparable(), remote[i].Comparable(), "line %d: tarstore %s",
			steps[i].Line, strings.Join(steps[i].Args, " "))
	}
}

func TestHelp(t *testing.T) {
	r := runner{t: t}
	top := r.ok("", "help")
	for _, c := range commands {
		assert.Contains(t, top, "  "+c.name+" ", "the command list names %s", c.name)
	}
	for _, s := range []string{"exit status", "TARSTORE_URL", "tarstore.disk", "127.0.0.1:7070", "--remote"} {
		assert.Contains(t, top, s)
	}
	assert.Equal(t, top, r.ok("", "--help"))
	assert.Equal(t, top, r.ok("", "-h"))

	for _, c := range commands {
		h := r.ok("", "help", c.name)
		assert.True(t, strings.HasPrefix(h, "usage: tarstore "+c.name), h)
		if c.name != "help" {
			assert.Contains(t, h, "examples:\n  ", c.name)
			assert.Equal(t, h, r.ok("", c.name, "--help"), c.name)
			assert.Equal(t, h, r.ok("", c.name, "-h"), c.name)
		}
	}
	assert.Contains(t, r.ok("", "help", "put"), "temporary file")
	assert.Contains(t, r.ok("", "help", "serve"), "vhost-user:SOCKET is a vhost-user-blk back-end")
	assert.Contains(t, r.ok("", "put", "/a", "--help"), "TARSTORE_DISK")

	res := r.run("")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "usage: tarstore")
	res = r.run("", "frobnicate")
	assert.Equal(t, ExitUsage, res.code)
	assert.Equal(t, "tarstore: unknown command \"frobnicate\"\nRun 'tarstore help' for the list of commands.\n", res.stderr)
	res = r.run("", "help", "frobnicate")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, `unknown command "frobnicate"`)
}

func TestParseArgs(t *testing.T) {
	defs := []flagDef{{name: "offset", arg: "N"}, {name: "json"}, helpFlag}
	tests := []struct {
		in      []string
		pos     []string
		flags   map[string]string
		wantErr string
	}{
		{in: []string{"/a", "--offset", "1"}, pos: []string{"/a"}, flags: map[string]string{"offset": "1"}},
		{in: []string{"--offset", "1", "/a"}, pos: []string{"/a"}, flags: map[string]string{"offset": "1"}},
		{in: []string{"--offset=1", "/a"}, pos: []string{"/a"}, flags: map[string]string{"offset": "1"}},
		{in: []string{"/a", "--offset", "-5"}, pos: []string{"/a"}, flags: map[string]string{"offset": "-5"}},
		{in: []string{"/a", "--offset", "1", "--offset=2"}, pos: []string{"/a"}, flags: map[string]string{"offset": "2"}},
		{in: []string{"--json", "/a", "/b"}, pos: []string{"/a", "/b"}, flags: map[string]string{"json": "true"}},
		{in: []string{"--json=false"}, flags: map[string]string{"json": "false"}},
		{in: []string{"--json=yes"}, flags: map[string]string{"json": "true"}},
		{in: []string{"-", "/a"}, pos: []string{"-", "/a"}, flags: map[string]string{}},
		{in: []string{"--", "--json", "-x"}, pos: []string{"--json", "-x"}, flags: map[string]string{}},
		{in: []string{"/a", "--", "--offset"}, pos: []string{"/a", "--offset"}, flags: map[string]string{}},
		{in: []string{"-h"}, flags: map[string]string{"help": "true"}},
		{in: []string{"--offset"}, wantErr: "--offset needs a value (N)"},
		{in: []string{"--nope"}, wantErr: "unknown flag --nope"},
		{in: []string{"-x"}, wantErr: "unknown flag -x"},
		{in: []string{"-1"}, wantErr: "unknown flag -1 (to pass -1 as an argument, put -- before it)"},
		{in: []string{"--json=maybe"}, wantErr: `--json: "maybe" is not true or false`},
	}
	for _, tc := range tests {
		a, err := parseArgs(tc.in, defs)
		if tc.wantErr != "" {
			assert.EqualError(t, err, tc.wantErr, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.pos, a.pos, "%q", tc.in)
		assert.Equal(t, tc.flags, a.flags, "%q", tc.in)
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   []string
		name string
		rest []string
	}{
		{[]string{"get", "/a"}, "get", []string{"/a"}},
		{[]string{"--disk", "x.img", "get", "/a"}, "get", []string{"--disk", "x.img", "/a"}},
		{[]string{"--disk=x.img", "--json", "ls"}, "ls", []string{"--disk=x.img", "--json"}},
		{[]string{"--offset", "1", "get", "/a"}, "get", []string{"--offset", "1", "/a"}},
		{[]string{"--json"}, "", []string{"--json"}},
		{nil, "", nil},
	}
	for _, tc := range tests {
		name, rest := splitCommand(tc.in)
		assert.Equal(t, tc.name, name, "%q", tc.in)
		assert.Equal(t, tc.rest, rest, "%q", tc.in)
	}
}

// TestFlagOrder: GNU style, flags anywhere, before the command too, and
// settings from the environment.
func TestFlagOrder(t *testing.T) {
	r, img := disk(t, 16*mib)
	r.ok("0123456789", "put", "/a")
	bare := runner{t: t}
	for _, args := range [][]string{
		{"get", "/a", "--offset", "2", "--length", "3", "--disk", img},
		{"get", "--offset", "2", "/a", "--length=3", "--disk=" + img},
		{"--disk", img, "get", "--length", "3", "--offset=2", "/a"},
		{"--offset", "2", "--disk", img, "--length", "3", "get", "/a"},
	} {
		assert.Equal(t, "234", bare.ok("", args...), "%q", args)
	}
	env := runner{t: t, env: map[string]string{"TARSTORE_DISK": img}}
	assert.Equal(t, "234", env.ok("", "get", "/a", "--offset", "2", "--length", "3"))
	// The flag beats the environment.
	other := newImage(t, 16*mib)
	res := env.run("", "get", "/a", "--disk", other)
	assert.Equal(t, ExitNotFound, res.code)
	// Two targets in one layer are a usage error.
	res = bare.run("", "ls", "--disk", img, "--remote", "http://127.0.0.1:1")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "tarstore: ls: --disk, --remote: name one target only")
}

// TestExitCodes covers every exit status SPEC §5 lists, and the form of
// the error line.
func TestExitCodes(t *testing.T) {
	r, img := disk(t, 2*mib)
	r.ok("v", "put", "/v")
	r.ok("v", "put", "/d/x")
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"get"}, ExitUsage, "tarstore: get: missing argument: usage: tarstore get KEY [--offset N] [--length N]\nRun 'tarstore help get' for usage.\n"},
		{[]string{"get", "/a", "/b"}, ExitUsage, "tarstore: get: unexpected argument \"/b\""},
		{[]string{"get", "/v", "--offset", "x"}, ExitUsage, "tarstore: get: --offset: \"x\" is not a size"},
		{[]string{"alloc", "/n", "1", "--mtime", "yesterday"}, ExitUsage, "is not an RFC 3339 time"},
		{[]string{"ls", "--listen", "x"}, ExitUsage, "unknown flag --listen"},
		{[]string{"get", "/nope"}, ExitNotFound, "tarstore: get /nope: Cannot find the key /nope (not_found)\n"},
		{[]string{"get", "/d"}, ExitValueExpected, "tarstore: get /d: Expected a value; /d is a dictionary (value_expected)\n"},
		{[]string{"ls", "/v"}, ExitDictionaryExpected, "tarstore: ls /v: Expected a dictionary; /v is a value (dictionary_expected)\n"},
		{[]string{"alloc", "/v", "1"}, ExitAlreadyPresent, "tarstore: alloc /v: The key /v is already present (already_present)\n"},
		{[]string{"alloc", "/big", "4M"}, ExitNoSpace, "tarstore: alloc /big: No space left on device: needs 4.0 MiB, 2.0 MiB free (the largest value that fits now: 2.0 MiB) (no_space)\n"},
		{[]string{"mv", "/d", "/d/e"}, ExitRenameSourcePrefix, "tarstore: mv /d: Rename: source /d is prefix of destination /d/e (rename_source_prefix)\n"},
		{[]string{"stat", "/a/./b"}, ExitInvalid, "tarstore: stat /a/./b: Invalid key: segment \".\" is not allowed (invalid_key)\n"},
		{[]string{"put", "/" + strings.Repeat("k", 300)}, ExitInvalid, "(invalid_key)\n"},
		{[]string{"get", "/v", "--offset", "-1"}, ExitInvalid, "(invalid_argument)\n"},
		{[]string{"put", "/w", "--read-only"}, ExitReadOnly, "tarstore: put /w: The store is read-only (read_only)\n"},
		{[]string{"rm", "/v", "--read-only=true"}, ExitReadOnly, "tarstore: rm /v: The store is read-only (read_only)\n"},
		{[]string{"ls", "--disk", img + ".missing"}, ExitStorage, "tarstore: open " + img + ".missing: no such disk image; create one with 'tarstore format"},
	}
	for _, tc := range tests {
		res := r.run("x", tc.args...)
		assert.Equal(t, tc.code, res.code, "%q: %s", tc.args, res.stderr)
		if strings.HasPrefix(tc.stderr, "tarstore: ") {
			assert.True(t, strings.HasPrefix(res.stderr, tc.stderr), "%q: %q, want prefix %q", tc.args, res.stderr, tc.stderr)
		} else {
			assert.Contains(t, res.stderr, tc.stderr, "%q", tc.args)
		}
		assert.Empty(t, res.stdout, "%q", tc.args)
	}

	// A device spec the appliance cannot parse, and a device this build
	// has no driver for.
	res := runner{t: t}.run("", "ls", "--virtio", "/tmp/vhost.sock")
	assert.Equal(t, ExitUsage, res.code)
	assert.True(t, strings.HasPrefix(res.stderr, `tarstore: ls: virtio /tmp/vhost.sock: virtio-blk "/tmp/vhost.sock": bad device spec`), res.stderr)
	res = runner{t: t}.run("", "ls", "--nvme", "0000:00:04.0")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, `NVMe "0000:00:04.0": bad device spec`)

	// 10: the disk is held by another process (here: another opener).
	dev, err := file.Open(img, file.Options{})
	require.NoError(t, err)
	res = r.run("", "ls")
	dev.Close()
	assert.Equal(t, ExitStorage, res.code)
	assert.Equal(t, "tarstore: open "+img+": the disk is in use by another process (a 'tarstore serve'?); "+
		"go through that server with --remote http://ADDR or TARSTORE_URL (storage_error)\n", res.stderr)

	// 10: corrupt archive.
	damaged := damage(t)
	res = runner{t: t, prefix: []string{"--disk", damaged}}.run("", "ls")
	assert.Equal(t, ExitStorage, res.code)
	assert.Contains(t, res.stderr, "The archive is corrupt")
	assert.True(t, strings.HasSuffix(res.stderr, "(corrupt)\n"), res.stderr)

	// 1: anything that is not a store error, such as standard output
	// failing.
	var errb bytes.Buffer
	code := Run(Env{Stdout: failWriter{}, Stderr: &errb}, []string{"get", "/v", "--disk", img})
	assert.Equal(t, ExitInternal, code)
	assert.Equal(t, "tarstore: get: writing the value: stdout is gone (internal)\n", errb.String())
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("stdout is gone") }

// damage returns an image whose only member header has a bad checksum,
// and no journal (as a foreign archive): the open fails with corrupt.
func damage(t *testing.T) string {
	r, img := disk(t, 1*mib)
	r.ok("hello", "put", "/a")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("0000777\x00"), 100) // the mode field, under the checksum
	require.NoError(t, err)
	// No journal (a foreign archive): nothing says where the archive
	// ends, so the bad header cannot be skipped as damage.
	_, err = f.WriteAt(make([]byte, mib-4096), 4096)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return img
}

func TestPutGet(t *testing.T) {
	r, _ := disk(t, 64*mib)
	dir := t.TempDir()
	big := make([]byte, 3*mib+123)
	for i := range big {
		big[i] = byte(i * 7)
	}
	src := filepath.Join(dir, "big.bin")
	require.NoError(t, os.WriteFile(src, big, 0o666))

	// From a file.
	r.ok("", "put", "/f", src)
	assert.Equal(t, big, []byte(r.ok("", "get", "/f")))
	// From standard input that is not a file: buffered.
	r.ok(string(big), "put", "/s")
	assert.Equal(t, big, []byte(r.ok("", "get", "/s")))
	r.ok(string(big), "put", "/s2", "-")
	assert.Equal(t, big, []byte(r.ok("", "get", "/s2")))
	// From standard input that is a file: read where it stands.
	f, err := os.Open(src)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Seek(100, 0)
	require.NoError(t, err)
	var out, errb bytes.Buffer
	code := Run(Env{Stdin: f, Stdout: &out, Stderr: &errb}, append([]string{"put", "/r"}, r.prefix...))
	require.Equal(t, 0, code, errb.String())
	assert.Equal(t, big[100:], []byte(r.ok("", "get", "/r")))
	// Empty values.
	r.ok("", "put", "/empty")
	assert.Equal(t, "", r.ok("", "get", "/empty"))
	// Ranges of a large value.
	assert.Equal(t, big[mib:mib+10], []byte(r.ok("", "get", "/f", "--offset", "1M", "--length", "10")))
	assert.Equal(t, big[3*mib:], []byte(r.ok("", "get", "/f", "--offset", "3M")))
	// stat's digest is the SHA-256 of the bytes.
	sum := sha256.Sum256(big)
	assert.Contains(t, r.ok("", "stat", "/f"), "digest: "+hex.EncodeToString(sum[:])+"\n")

	// Bad files are usage errors.
	res := r.run("", "put", "/x", filepath.Join(dir, "missing"))
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "missing: no such file or directory")
	res = r.run("", "put", "/x", dir)
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "is a directory")
}

// TestJSON: every --json output parses, with the fields it documents.
func TestJSON(t *testing.T) {
	r, img := disk(t, 16*mib)
	r.ok("hello", "put", "/d/v")
	var l listing
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "ls", "/d", "--json")), &l))
	require.Len(t, l.Entries, 1)
	require.NotNil(t, l.Entries[0].Size)
	assert.EqualValues(t, 5, *l.Entries[0].Size)
	_, err := time.Parse(time.RFC3339, l.Entries[0].LastModified)
	require.NoError(t, err)
	l.Entries[0].Size, l.Entries[0].LastModified = nil, ""
	assert.Equal(t, listing{Key: "/d", Entries: []listEntry{{Key: "/d/v", Kind: "value"}}}, l)
	var st statInfo
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "stat", "--json", "/d/v")), &st))
	require.NotNil(t, st.Size)
	assert.EqualValues(t, 5, *st.Size)
	assert.Equal(t, "value", st.Kind)
	_, err = time.Parse(time.RFC3339, st.LastModified)
	assert.NoError(t, err)
	var dst statInfo
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "stat", "--json", "/d")), &dst))
	assert.Nil(t, dst.Size)
	assert.Equal(t, "dictionary", dst.Kind)
	var df httpapi.Status
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "df", "--json")), &df))
	assert.Equal(t, 1, df.Entries)
	assert.Equal(t, img, df.Device.Model)
	assert.Equal(t, 512, df.Device.SectorSize)
	assert.False(t, df.ReadOnly)
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "df", "--json", "--read-only")), &df))
	assert.True(t, df.ReadOnly)
	var rep checkReport
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "check", "--json")), &rep))
	assert.Equal(t, img, rep.Disk)
	assert.True(t, rep.OK)
	// --json=false is the text form.
	assert.Equal(t, "value\t/d/v\n", r.ok("", "ls", "/d", "--json=false"))
}

func TestPatch(t *testing.T) {
	r, _ := disk(t, 64*mib)
	// A patch bigger than a piece, over the end of the value: the pieces
	// land one after the other.
	base := bytes.Repeat([]byte("a"), mib/2)
	r.ok(string(base), "put", "/p")
	patch := make([]byte, 2*mib+5)
	for i := range patch {
		patch[i] = byte(i % 251)
	}
	src := filepath.Join(t.TempDir(), "patch.bin")
	require.NoError(t, os.WriteFile(src, patch, 0o666))
	r.ok("", "patch", "/p", "1000", src)
	want := append(append([]byte{}, base[:1000]...), patch...)
	assert.Equal(t, want, []byte(r.ok("", "get", "/p")))
	// Past the end: appended without a gap, even in pieces.
	r.ok(string(patch), "patch", "/p", "1G")
	want = append(want, patch...)
	assert.Equal(t, want, []byte(r.ok("", "get", "/p")))
	// An empty patch of a missing key creates it empty.
	r.ok("", "patch", "/new", "0")
	assert.Contains(t, r.ok("", "stat", "/new"), "size: 0\n")
}

func TestFormat(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "new.img")
	r := runner{t: t}

	res := r.run("", "format", "--disk", img)
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "give --size")
	res = r.run("", "format", "--disk", img, "--size", "1000")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "not a positive multiple of 512")

	out := r.ok("", "format", "--disk", img, "--size", "8M")
	assert.Regexp(t, "^created "+regexp.QuoteMeta(img)+": capacity [0-9]+ bytes \\(7\\.[0-9] MiB\\), 16384 sectors of 512 bytes\n$", out)
	st, err := os.Stat(img)
	require.NoError(t, err)
	assert.EqualValues(t, 8*mib, st.Size())

	// An empty store is formatted again without fuss.
	assert.Contains(t, r.ok("", "format", "--disk", img), "formatted "+img)
	// A store with values is not.
	r.ok("x", "put", "/a", "--disk", img)
	res = r.run("", "format", "--disk", img)
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "tarstore: format: "+img+" holds data (a tar archive with 1 value): add --force")
	assert.Equal(t, "/a\n", strings.Fields(r.ok("", "ls", "--disk", img))[1]+"\n")
	// Neither is anything else.
	other := filepath.Join(dir, "other.img")
	require.NoError(t, os.WriteFile(other, append(make([]byte, 4096), make([]byte, 4*mib)...), 0o666))
	f, err := os.OpenFile(other, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0x53, 0xEF}, 1080)
	require.NoError(t, err)
	f.Close()
	res = r.run("", "format", "--disk", other)
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "holds data (an ext2/3/4 file system)")
	// --size must match an existing device.
	res = r.run("", "format", "--disk", img, "--size", "16M", "--force")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "holds 8388608 bytes, not 16777216")
	// --force formats anyway.
	assert.Contains(t, r.ok("", "format", "--disk", img, "--force"), "formatted "+img)
	assert.Equal(t, "", r.ok("", "ls", "--disk", img))
	// format works on a disk only.
	res = runner{t: t, env: map[string]string{"TARSTORE_URL": "http://127.0.0.1:1"}}.run("", "format", "--size", "1M")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "format works on a disk, not through a server (http://127.0.0.1:1 from the environment)")
}

func TestCheck(t *testing.T) {
	r, img := disk(t, 16*mib)
	r.ok("hello", "put", "/a")
	r.ok("world", "put", "/b")
	out := r.ok("", "check")
	assert.Regexp(t, "^check: "+regexp.QuoteMeta(img)+": ok, 0 problems \\(0 fatal\\); 2 values, archive ends at 2048, [0-9]+ of [0-9]+ bytes free\n$", out)
	var rep checkReport
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "check", "--json")), &rep))
	assert.True(t, rep.OK)
	assert.Equal(t, 2, rep.Values)
	assert.Empty(t, rep.Problems)

	// A zeroed header before the end of the archive (the journal's
	// checkpoint says where it ends): damage, not the end. check reports
	// it (fatal: exit 10), reads go on with a warning, writes are
	// refused, and --repair turns it into free space.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(make([]byte, 512), 1024) // the header of /b
	require.NoError(t, err)
	require.NoError(t, f.Close())
	res := r.run("", "check")
	assert.Equal(t, ExitStorage, res.code)
	out = res.stdout
	assert.Contains(t, out, "offset 1024: a zero block at offset 1024, before the end of the archive at 2048")
	assert.Contains(t, out, ": DAMAGED, 1 problem (1 fatal); 1 value")
	res = r.run("", "check", "--json")
	assert.Equal(t, ExitStorage, res.code)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep))
	assert.False(t, rep.OK)
	require.Len(t, rep.Problems, 1)
	assert.True(t, rep.Problems[0].Fatal)
	res = r.run("", "ls")
	assert.Equal(t, 0, res.code)
	assert.Equal(t, "value\t/a\n", res.stdout)
	assert.Contains(t, res.stderr, "tarstore: warning: "+img+": the archive is damaged before its end")
	res = r.run("x", "put", "/c")
	assert.Equal(t, ExitReadOnly, res.code, res.stderr)
	assert.Contains(t, res.stderr, "tarstore check --repair")

	out = r.ok("", "check", "--repair")
	assert.Contains(t, out, "before repair:\n  offset 1024: a zero block at offset 1024")
	assert.Contains(t, out, "repaired:\n  offset 1024: the 1024 bytes from offset 1024 did not decode")
	assert.Contains(t, out, "after repair:\n")
	assert.Contains(t, out, ": ok, 0 problems (0 fatal); 1 value, archive ends at 1024")
	assert.Equal(t, "value\t/a\n", r.ok("", "ls"))
	r.ok("x", "put", "/c")
	r.ok("", "check")

	// An archive that does not open at all.
	damaged := damage(t)
	res = runner{t: t, prefix: []string{"--disk", damaged}}.run("", "check", "--json")
	assert.Equal(t, ExitStorage, res.code)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep))
	assert.False(t, rep.OK)
	require.Len(t, rep.Problems, 1)
	assert.True(t, rep.Problems[0].Fatal)
	// With --json the error is JSON too, on stderr.
	var eb httpapi.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(res.stderr), &eb), res.stderr)
	assert.Equal(t, "corrupt", eb.Error.Code)
	assert.Equal(t, "check", eb.Error.Op)
}

// writeCounter is a store that counts the writes it is asked for.
type writeCounter struct {
	kv.RW
	writes atomic.Int64
}

func (w *writeCounter) Set(k kv.Key, v []byte) error { w.writes.Add(1); return w.RW.Set(k, v) }
func (w *writeCounter) SetFrom(k kv.Key, r io.Reader, n int64) error {
	w.writes.Add(1)
	return w.RW.SetFrom(k, r, n)
}
func (w *writeCounter) SetPartial(k kv.Key, off int64, v []byte) error {
	w.writes.Add(1)
	return w.RW.SetPartial(k, off, v)
}
func (w *writeCounter) Remove(k kv.Key) error { w.writes.Add(1); return w.RW.Remove(k) }

// countingServer serves a model store that counts writes.
func countingServer(t *testing.T) (runner, *writeCounter) {
	wc := &writeCounter{RW: kvtest.NewModel(clock.System{})}
	status := func() (httpapi.Status, error) {
		return httpapi.Status{Capacity: 1 << 30, Free: 1 << 30, Largest: 1 << 30}, nil
	}
	srv := httptest.NewServer(httpapi.New(wc, httpapi.Options{Status: status}))
	t.Cleanup(srv.Close)
	return runner{t: t, prefix: []string{"--remote", srv.URL}}, wc
}

// TestImportExport: import copies the regular files of a tree, skips and
// counts links and special files, writes nothing for unchanged files,
// mirrors with --delete; export writes the values back with their
// last-modified times. On a disk and through a server.
func TestImportExport(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{
		"a.txt":         "alpha",
		"sub/b.txt":     "beta",
		"sub/deep/c":    strings.Repeat("c", 100000),
		"sub/deep/d/e":  "",
		"with space.md": "spaces",
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o777))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o666))
	}
	require.NoError(t, os.Symlink("a.txt", filepath.Join(src, "link")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "sub/fifo"), 0o666))
	require.NoError(t, os.Mkdir(filepath.Join(src, "empty"), 0o777))

	embedded, _ := disk(t, 16*mib)
	remote, wc := countingServer(t)
	for name, r := range map[string]runner{"embedded": embedded, "remote": remote} {
		writes := func() int64 { return wc.writes.Load() }
		require.NoError(t, os.WriteFile(filepath.Join(src, "sub/b.txt"), []byte("beta"), 0o666))
		out := r.ok("", "import", src, "/in")
		assert.Equal(t, fmt.Sprintf("imported 5 values (100015 bytes) from %s into /in; 0 unchanged, 2 skipped (-v names them)\n", src), out, name)
		assert.Equal(t, "value\t/in/a.txt\ndictionary\t/in/sub\nvalue\t/in/with space.md\n", r.ok("", "ls", "/in"), name)
		assert.Equal(t, "beta", r.ok("", "get", "/in/sub/b.txt"), name)

		// Again: nothing is written.
		before := writes()
		out = r.ok("", "import", src, "/in", "-v")
		assert.Equal(t, "skipped link: a symbolic link\nskipped sub/fifo: not a regular file\n"+
			"unchanged /in/a.txt\nunchanged /in/sub/b.txt\nunchanged /in/sub/deep/c\nunchanged /in/sub/deep/d/e\nunchanged /in/with space.md\n"+
			fmt.Sprintf("imported 0 values (0 bytes) from %s into /in; 5 unchanged, 2 skipped\n", src), out, name)
		assert.Equal(t, before, writes(), "%s: a re-import of an unchanged tree wrote", name)

		// A file changed with the same size is copied again; --delete
		// removes what the tree no longer has.
		require.NoError(t, os.WriteFile(filepath.Join(src, "sub/b.txt"), []byte("BETA"), 0o666))
		r.ok("stale", "put", "/in/sub/deep/stale")
		r.ok("keep", "put", "/outside")
		before = writes()
		out = r.ok("", "import", "--delete", src, "/in")
		assert.Equal(t, fmt.Sprintf("imported 1 value (4 bytes) from %s into /in; 4 unchanged, 2 skipped, 1 removed (-v names them)\n", src), out, name)
		if name == "remote" {
			assert.Equal(t, before+2, writes(), "one set and one remove")
		}
		assert.Equal(t, "BETA", r.ok("", "get", "/in/sub/b.txt"), name)
		assert.Equal(t, "value\t/in/sub/deep/c\ndictionary\t/in/sub/deep/d\n", r.ok("", "ls", "/in/sub/deep"), name)
		assert.Equal(t, "keep", r.ok("", "get", "/outside"), name)

		// Export: the same bytes, the values' times.
		dst := filepath.Join(t.TempDir(), "out")
		out = r.ok("", "export", "/in", dst)
		assert.Equal(t, fmt.Sprintf("exported 5 values (100015 bytes) from /in into %s\n", dst), out, name)
		var got []string
		require.NoError(t, filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(dst, path)
			got = append(got, rel)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			want := files[rel]
			if rel == "sub/b.txt" {
				want = "BETA"
			}
			assert.Equal(t, want, string(b), "%s: %s", name, rel)
			var st statInfo
			require.NoError(t, json.Unmarshal([]byte(r.ok("", "stat", "/in/"+rel, "--json")), &st))
			fi, err := d.Info()
			require.NoError(t, err)
			assert.Equal(t, st.LastModified, rfc3339(fi.ModTime()), "%s: %s", name, rel)
			assert.Equal(t, fs.FileMode(0o644), fi.Mode().Perm()&0o644, "%s: %s", name, rel)
			return nil
		}))
		assert.ElementsMatch(t, []string{"a.txt", "sub/b.txt", "sub/deep/c", "sub/deep/d/e", "with space.md"}, got, name)

		// A time in the past is carried over.
		r.ok("", "alloc", "/old/z", "3", "--mtime", "2020-01-02T03:04:05Z")
		dst3 := t.TempDir()
		r.ok("", "export", "/old", dst3)
		fi, err := os.Stat(filepath.Join(dst3, "z"))
		require.NoError(t, err)
		assert.Equal(t, "2020-01-02T03:04:05Z", rfc3339(fi.ModTime()), name)
		assert.EqualValues(t, 3, fi.Size())

		// A value exports as a file named after it.
		dst2 := t.TempDir()
		r.ok("", "export", "/in/a.txt", dst2)
		b, err := os.ReadFile(filepath.Join(dst2, "a.txt"))
		require.NoError(t, err)
		assert.Equal(t, "alpha", string(b))
		// Missing prefix, missing directory.
		res := r.run("", "export", "/nope", dst)
		assert.Equal(t, ExitNotFound, res.code)
		assert.Equal(t, "tarstore: export /nope: Cannot find the key /nope (not_found)\n", res.stderr)
		res = r.run("", "import", filepath.Join(src, "nope"))
		assert.Equal(t, ExitUsage, res.code)
	}
}

func TestBench(t *testing.T) {
	r, _ := disk(t, 64*mib)
	r.ok("keep me", "put", "/data")
	before := r.ok("", "stat", "/")
	out := r.ok("", "bench", "--size", "2M", "--ops", "16", "--rounds", "2", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Results, 6)
	for _, res := range rep.Results {
		assert.Greater(t, res.Raw, 0.0, res.Name)
		assert.Greater(t, res.Store, 0.0, res.Name)
		require.Len(t, res.Rounds, 2, res.Name)
		assert.InDelta(t, (res.Rounds[0]+res.Rounds[1])/2, res.Ratio, 1e-9, res.Name)
	}
	assert.EqualValues(t, 2*mib, rep.Size)
	assert.EqualValues(t, 2, rep.Rounds)
	// The raw region is past the archive's end, within the archive area.
	var df httpapi.Status
	require.NoError(t, json.Unmarshal([]byte(r.ok("", "df", "--json")), &df))
	assert.GreaterOrEqual(t, rep.RawRegion[0], int64(2*mib+8*mib))
	assert.LessOrEqual(t, rep.RawRegion[1], df.Capacity)
	// The store is as it was, and its archive is sound.
	assert.Equal(t, before, r.ok("", "stat", "/"))
	assert.Equal(t, "keep me", r.ok("", "get", "/data"))
	assert.Equal(t, "value\t/data\n", r.ok("", "ls"))
	r.ok("", "check")

	human := r.ok("", "bench", "--size", "1M", "--ops", "4", "--rounds", "1")
	for _, name := range []string{"seq-write", "overwrite-seq", "seq-read", "rand-read", "write-flush", "overwrite-flush", "store/raw"} {
		assert.Contains(t, human, name)
	}

	// No room: said so, nothing touched.
	small, _ := disk(t, 4*mib)
	res := small.run("", "bench", "--size", "4M")
	assert.Equal(t, ExitNoSpace, res.code)
	assert.Contains(t, res.stderr, "not enough free space at the end of the archive")
	assert.True(t, strings.HasSuffix(res.stderr, "(no_space)\n"), res.stderr)
	assert.Equal(t, "", small.ok("", "ls"))
}

func TestProgress(t *testing.T) {
	r, _ := disk(t, 64*mib)
	r.isTerm = true
	data := strings.Repeat("x", 9*mib)
	res := r.run(data, "put", "/big")
	require.Equal(t, 0, res.code, res.stderr)
	// Standard input is not a file: it is read (buffered) first, with its
	// own report, of bytes so far, then sent.
	assert.Contains(t, res.stderr, "\rreading standard input 9.0 MiB")
	assert.Contains(t, res.stderr, "\rput /big 100% [==============================] 9.0 MiB / 9.0 MiB")
	assert.True(t, strings.HasSuffix(res.stderr, "\n"))
	res = r.run("", "get", "/big")
	assert.Equal(t, data, res.stdout)
	assert.Contains(t, res.stderr, "\rget /big 100%")
	// Small transfers get nothing; off a terminal a long one gets one line
	// at the end.
	res = r.run("small", "put", "/small")
	assert.Empty(t, res.stderr)
	r.isTerm = false
	res = r.run(data, "put", "/big")
	assert.Regexp(t, `^put /big: 9\.0 MiB in [0-9.]+ s,( [0-9.]+ [KMG]iB/s)?\n$`, res.stderr)
	res = r.run("", "get", "/big")
	assert.Equal(t, data, res.stdout)
	assert.Regexp(t, `^get /big: 9\.0 MiB in [0-9.]+ s,( [0-9.]+ [KMG]iB/s)?\n$`, res.stderr)

	// The bar itself, on a fake clock.
	var b bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgress(&b, "x", 100*mib, func() time.Time { return now })
	now = now.Add(time.Second)
	p.add(50 * mib)
	assert.Equal(t, "\rx  50% [===============               ] 50.0 MiB / 100.0 MiB 50.0 MiB/s\x1b[K", b.String())
	b.Reset()
	p.add(1) // too soon to redraw
	assert.Empty(t, b.String())
	p.finish()
	assert.True(t, strings.HasSuffix(b.String(), "\n"))
	var nilp *progress
	nilp.add(1)
	nilp.finish()
	assert.False(t, isTerminal(&b))
}

func TestReadOnlyRemote(t *testing.T) {
	// --read-only through a server refuses writes the way a read-only disk
	// does; a server started --read-only refuses them itself.
	img := newImage(t, 16*mib)
	addr, _ := serve(t, img)
	r := runner{t: t, prefix: []string{"--remote", "http://" + addr}}
	r.ok("v", "put", "/v")
	res := r.run("w", "put", "/v", "--read-only")
	assert.Equal(t, ExitReadOnly, res.code)
	assert.Equal(t, "tarstore: put /v: The store is read-only (read_only)\n", res.stderr)

	img2 := newImage(t, 16*mib)
	addr2, _ := serve(t, img2, "--read-only")
	r2 := runner{t: t, prefix: []string{"--remote", "http://" + addr2}}
	res = r2.run("w", "put", "/v")
	assert.Equal(t, ExitReadOnly, res.code)
	assert.Equal(t, "tarstore: put /v: The store is read-only (read_only)\n", res.stderr)
	var st httpapi.Status
	require.NoError(t, json.Unmarshal([]byte(r2.ok("", "df", "--json")), &st))
	assert.True(t, st.ReadOnly)
}

func TestServe(t *testing.T) {
	img := newImage(t, 16*mib)
	addr, stop := serve(t, img)
	r := runner{t: t, prefix: []string{"--remote", "http://" + addr}}
	r.ok("v", "put", "/v")
	// The disk is locked while it is served.
	res := runner{t: t, prefix: []string{"--disk", img}}.run("", "ls")
	assert.Equal(t, ExitStorage, res.code)
	assert.Contains(t, res.stderr, "--remote")
	// The same through TARSTORE_URL.
	env := runner{t: t, env: map[string]string{"TARSTORE_URL": "http://" + addr}}
	assert.Equal(t, "value\t/v\n", env.ok("", "ls"))
	// Graceful shutdown: exit 0, the store closed and the disk free.
	code, log := stop()
	assert.Equal(t, 0, code, log)
	assert.Equal(t, "tarstore: serving "+img+" on http://"+addr+"\ntarstore: shutting down\n", log)
	assert.Equal(t, "v", runner{t: t, prefix: []string{"--disk", img}}.ok("", "get", "/v"))
}

func TestServeToken(t *testing.T) {
	dir := t.TempDir()
	img := newImage(t, 16*mib)
	tok := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tok, []byte("s3cret\n"), 0o600))

	// Not on loopback without a token: refused before anything opens.
	r := runner{t: t}
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:0"} {
		res := r.run("", "serve", "--disk", img, "--listen", listen)
		assert.Equal(t, ExitUsage, res.code, listen)
		assert.Contains(t, res.stderr, "refusing to listen on a non-loopback address without --token-file", listen)
	}
	res := r.run("", "serve", "--disk", img, "--token-file", filepath.Join(dir, "none"))
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "bad token file")

	addr, _ := serve(t, img, "--token-file", tok)
	url := "http://" + addr
	good := runner{t: t, prefix: []string{"--remote", url, "--token-file", tok}}
	good.ok("v", "put", "/v")
	assert.Equal(t, "v", good.ok("", "get", "/v"))
	// Without the token, or with another: unauthorized (13), check too.
	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("guess\n"), 0o600))
	for _, r := range []runner{{t: t, prefix: []string{"--remote", url}}, {t: t, prefix: []string{"--remote", url, "--token-file", bad}}} {
		res = r.run("", "get", "/v")
		assert.Equal(t, ExitUnauthorized, res.code)
		assert.Equal(t, "tarstore: get /v: Missing or invalid bearer token: give the server's token with --token-file (unauthorized)\n", res.stderr)
		res = r.run("", "check")
		assert.Equal(t, ExitUnauthorized, res.code)
		assert.Equal(t, "tarstore: check /: Missing or invalid bearer token: give the server's token with --token-file (unauthorized)\n", res.stderr)
		assert.Empty(t, res.stdout)
	}
	assert.Contains(t, good.ok("", "check"), "check: "+url+": ok, 0 problems (0 fatal); 1 value, archive ends at ")
}

// TestUnreachable: through a URL where no server listens, every command
// fails with unreachable (exit 12), check too.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	for _, prefix := range [][]string{{"--remote", url}, {"--remote", url + "/"}} {
		r := runner{t: t, prefix: prefix}
		for _, args := range [][]string{{"ls"}, {"get", "/a"}, {"put", "/a"}, {"df"}, {"check"}} {
			res := r.run("x", args...)
			assert.Equal(t, ExitUnreachable, res.code, "%q: %s", args, res.stderr)
			assert.Regexp(t, "^tarstore: [a-z]+ /a?: no server answers at "+regexp.QuoteMeta(url)+
				` \(dial tcp [0-9.:]+: connect: connection refused\): is 'tarstore serve' running there\? \(unreachable\)\n$`,
				res.stderr, "%q", args)
			assert.Empty(t, res.stdout, "%q", args)
		}
		for _, args := range [][]string{{"check", "--json"}, {"get", "/a", "--json"}} {
			res := r.run("x", args...)
			assert.Equal(t, ExitUnreachable, res.code, "%q: %s", args, res.stderr)
			var eb httpapi.ErrorBody
			require.NoError(t, json.Unmarshal([]byte(res.stderr), &eb), res.stderr)
			assert.Equal(t, "unreachable", eb.Error.Code)
			assert.Contains(t, eb.Error.Message, "no server answers at "+url)
			assert.Empty(t, res.stdout, "%q", args)
		}
	}
	res := runner{t: t, env: map[string]string{"TARSTORE_URL": "http://no-such-host.invalid:7070"}}.run("", "check")
	assert.Equal(t, ExitUnreachable, res.code, res.stderr)
	assert.Contains(t, res.stderr, "tarstore: check /: no server answers at http://no-such-host.invalid:7070 (")
}

func TestServeDrivers(t *testing.T) {
	r := runner{t: t}
	res := r.run("", "serve", "--virtio", "/run/vhost.sock")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, `tarstore: serve: virtio /run/vhost.sock: virtio-blk "/run/vhost.sock": bad device spec: want vhost-user:SOCKET, pci:BDF or vfio:BDF`)
	res = r.run("", "serve", "--virtio", "pci:0000:7f:1f.7") // no such function
	assert.Equal(t, ExitStorage, res.code)
	assert.Contains(t, res.stderr, "tarstore: open virtio pci:0000:7f:1f.7: i/o error: virtio-pci pci:0000:7f:1f.7: open: pci 0000:7f:1f.7: open: stat /sys/bus/pci/devices/0000:7f:1f.7: no such file or directory (storage_error)")
	res = r.run("", "serve", "--nvme", "0000:00:04.0")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, `NVMe "0000:00:04.0": bad device spec: want pci:BDF, vfio:BDF or passthru:/dev/NODE`)
	res = r.run("", "serve", "--disk", filepath.Join(t.TempDir(), "missing.img"))
	assert.Equal(t, ExitStorage, res.code)
	assert.Contains(t, res.stderr, "no such disk image")
	res = runner{t: t, env: map[string]string{"TARSTORE_URL": "http://127.0.0.1:1"}}.run("", "serve")
	assert.Equal(t, ExitUsage, res.code)
}

// TestServeDefaultImage: with nothing naming a disk, serve creates
// ./tarstore.img (1 GiB, sparse, formatted) on first use.
func TestServeDefaultImage(t *testing.T) {
	t.Chdir(t.TempDir())
	_, stop := serve(t, "")
	code, log := stop()
	assert.Equal(t, 0, code, log)
	assert.True(t, strings.HasPrefix(log, "tarstore: serving ./tarstore.img on http://127.0.0.1:"), log)
	st, err := os.Stat("tarstore.img")
	require.NoError(t, err)
	assert.EqualValues(t, 1<<30, st.Size())
	assert.Equal(t, "", runner{t: t}.ok("", "ls"))
	var df httpapi.Status
	require.NoError(t, json.Unmarshal([]byte(runner{t: t}.ok("", "df", "--json")), &df))
	assert.Greater(t, df.Capacity, int64(1000*mib))
}

// TestTooLargeSameThroughServer: a value larger than the store is refused
// the same way on a disk and through a server, and the errors that come
// before space (the target's kind) come first in both.
func TestTooLargeSameThroughServer(t *testing.T) {
	big := strings.Repeat("x", 3*mib)
	local, _ := disk(t, 2*mib)
	img := newImage(t, 2*mib)
	addr, _ := serve(t, img)
	remote := runner{t: t, prefix: []string{"--remote", "http://" + addr}}
	for _, r := range []runner{local, remote} {
		r.ok("v", "put", "/p")
	}
	for _, args := range [][]string{
		{"put", "/new"},
		{"put", "/"},
		{"put", "/p/x"},
	} {
		l, r := local.run(big, args...), remote.run(big, args...)
		assert.Equal(t, l, r, "%q", args)
	}
}
