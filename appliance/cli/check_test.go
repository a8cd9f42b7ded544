package cli

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar"
)

// memServer serves a kvtar store on a memory device of size bytes, with
// its check, on an httptest server; it returns a runner through it (by
// --remote) and the device, to damage underneath the store.
func memServer(t *testing.T, size int64, opts httpapi.Options) (runner, string, *mem.Device) {
	t.Helper()
	dev, err := mem.New(512, uint64(size/512))
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	s, err := kvtar.New(clock.System{}, dev)
	require.NoError(t, err)
	opts.Status = appliance.StatusFunc(s)
	opts.Check = appliance.CheckFunc(s)
	h := httpapi.New(s, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		require.NoError(t, s.Close())
	})
	return runner{t: t, prefix: []string{"--remote", srv.URL}}, srv.URL, dev
}

// flip flips one byte of dev at off, underneath its store.
func flip(t *testing.T, dev *mem.Device, off int64) {
	t.Helper()
	buf := make([]byte, 512)
	require.NoError(t, dev.Read(uint64(off/512), buf))
	buf[off%512] ^= 0x20
	require.NoError(t, dev.Write(uint64(off/512), buf))
}

// TestCheckRemote: check --remote runs the server's check (POST
// /v1/check) and prints it as a check of a disk is: clean is exit 0; a
// byte of a value's data flipped on the device under the running store is
// a fatal problem naming the value, exit 10.
func TestCheckRemote(t *testing.T) {
	r, url, dev := memServer(t, 1<<20, httpapi.Options{})
	r.ok("hello", "put", "/a")
	r.ok("the needle in the haystack", "put", "/d/needle")
	out := r.ok("", "check")
	assert.Regexp(t, "^check: "+regexp.QuoteMeta(url)+": ok, 0 problems \\(0 fatal\\); 2 values, archive ends at [0-9]+, [0-9]+ of [0-9]+ bytes free\n$", out)
	// TARSTORE_URL names the server as well; --json is the disk's JSON.
	env := runner{t: t, env: map[string]string{"TARSTORE_URL": url}}
	var rep checkReport
	require.NoError(t, json.Unmarshal([]byte(env.ok("", "check", "--json")), &rep))
	assert.Equal(t, url, rep.Disk)
	assert.True(t, rep.OK)
	assert.Equal(t, 2, rep.Values)
	assert.NotNil(t, rep.Problems)
	assert.Empty(t, rep.Problems)
	assert.Positive(t, rep.Capacity)

	res := r.run("", "check", "--repair")
	assert.Equal(t, ExitUsage, res.code)
	assert.Contains(t, res.stderr, "tarstore: check: --repair works on a disk only")

	i := bytes.Index(dev.Bytes(), []byte("the needle"))
	require.Positive(t, i)
	flip(t, dev, int64(i)+4)
	res = r.run("", "check")
	assert.Equal(t, ExitStorage, res.code, res.stderr)
	assert.Regexp(t, `^offset [0-9]+ \("/d/needle"\): the data does not match the CRC-32C in its header \[fatal\]
check: `+regexp.QuoteMeta(url)+`: DAMAGED, 1 problem \(1 fatal\); 2 values, `, res.stdout)
	assert.Equal(t, "tarstore: check "+url+": 1 fatal problem: the archive is damaged, or the store and the device disagree (corrupt)\n", res.stderr)
	res = r.run("", "check", "--json")
	assert.Equal(t, ExitStorage, res.code, res.stderr)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep))
	assert.False(t, rep.OK)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, "/d/needle", rep.Problems[0].Name)
	assert.True(t, rep.Problems[0].Fatal)
	assert.Less(t, rep.Problems[0].Offset, int64(i))
}

// TestCheckRemoteProblems: problems none of which is fatal are exit 14
// through a server as on a disk, and names that are not UTF-8 come back
// exactly.
func TestCheckRemoteProblems(t *testing.T) {
	canned := func() (httpapi.CheckReport, error) {
		return httpapi.CheckReport{Values: 1, Problems: []httpapi.CheckProblem{
			httpapi.NewCheckProblem(1536, "./caf\xe9 -> x", "symbolic link (not exposed)", false),
		}}, nil
	}
	srv := httptest.NewServer(httpapi.New(nil, httpapi.Options{Check: canned})) // the check route needs no store
	defer srv.Close()
	url := srv.URL
	r := runner{t: t, prefix: []string{"--remote", url}}
	res := r.run("", "check")
	assert.Equal(t, ExitProblems, res.code, res.stderr)
	assert.Equal(t, "offset 1536 (\"./caf\\xe9 -> x\"): symbolic link (not exposed)\n"+
		"check: "+url+": ok, 1 problem (0 fatal); 1 value, archive ends at 0, 0 of 0 bytes free\n", res.stdout)
	assert.Equal(t, "tarstore: check "+url+": 1 problem, none fatal: the store works, but look at the list (problems)\n", res.stderr)
}

// TestCheckRemoteWaits: a server that ran a check moments ago answers 429
// with Retry-After; check waits that long and asks again, saying so on a
// terminal only.
func TestCheckRemoteWaits(t *testing.T) {
	r, url, _ := memServer(t, 1<<20, httpapi.Options{CheckPause: 1500 * time.Millisecond})
	r.ok("", "check")
	start := time.Now()
	r.ok("", "check") // ok: nothing on stderr
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "it waited for the Retry-After")
	term := r
	term.isTerm = true
	res := term.run("", "check")
	assert.Equal(t, ExitOK, res.code, res.stderr)
	assert.Regexp(t, "^tarstore: check "+regexp.QuoteMeta(url)+": The last check took [0-9.]+[mµn]?s and ended [0-9.]+[mµn]?s ago; .*; try again in 2 s; asking again in 2s\n$", res.stderr)
}

// TestCheckSameOutput: check of an image through a server that serves it
// prints what check of the image prints, clean and damaged (a value's
// data, the last member's or one in the middle).
func TestCheckSameOutput(t *testing.T) {
	for _, which := range []string{"/a", "/z"} {
		r, img := disk(t, 4*mib)
		for _, k := range []string{"/a", "/m", "/z"} {
			r.ok(strings.Repeat("data of "+k+";", 200), "put", k)
		}
		embedded := r.ok("", "check")
		addr, stop := serve(t, img)
		remote := runner{t: t, prefix: []string{"--remote", "http://" + addr}}.ok("", "check")
		code, log := stop()
		require.Equal(t, 0, code, log)
		assert.Equal(t, embedded, strings.Replace(remote, "http://"+addr, img, 1))

		b, err := os.ReadFile(img)
		require.NoError(t, err)
		i := bytes.Index(b, []byte("data of "+which+";"))
		require.Positive(t, i)
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte("D"), int64(i))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		res := r.run("", "check")
		assert.Equal(t, ExitStorage, res.code, res.stderr)
		assert.Contains(t, res.stdout, "(\""+which+"\"): the data does not match the CRC-32C in its header [fatal]\n")
		addr, stop = serve(t, img)
		rres := runner{t: t, prefix: []string{"--remote", "http://" + addr}}.run("", "check")
		code, log = stop()
		require.Equal(t, 0, code, log)
		assert.Equal(t, res.code, rres.code, which)
		assert.Equal(t, res.stdout, strings.Replace(rres.stdout, "http://"+addr, img, 1), which)
		assert.Equal(t, res.stderr, strings.Replace(rres.stderr, "http://"+addr, img, 1), which)
	}
}
