package main

// End-to-end tests: they build the tarstore binary once (TestMain) and run
// it as a user would — on a disk, and against a live `tarstore serve`.

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/cli/clitest"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/internal/syncbuf"
	"github.com/tarstore/tarstore/internal/testenv"
)

// bin is the tarstore binary under test.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tarstore-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "tarstore")
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "the end-to-end tests build tarstore with the go command, which is not in PATH:", err)
		os.Exit(1)
	}
	// As the README and scripts build it: static (the appliance's /init
	// must be).
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building tarstore: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// environ is the environment of the commands: the test's, without any
// TARSTORE_* setting of the machine running the tests.
func environ(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TARSTORE_") {
			env = append(env, e)
		}
	}
	return append(env, extra...)
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// tarstore runs the binary with args and stdin.
func tarstore(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = environ()
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(t, cmd)
}

// runCmd runs cmd with its output captured.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return result{exitCode(t, cmd.Run()), out.String(), errb.String()}
}

// exitCode is the exit status of a command that ran and returned err (0
// for nil); any other error fails t.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// ok runs the binary, which must succeed, and returns its stdout.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := tarstore(t, stdin, args...)
	require.Equal(t, 0, r.code, "tarstore %s: %s", strings.Join(args, " "), r.stderr)
	return r.stdout
}

// server is a running `tarstore serve`.
type server struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	log  bytes.Buffer // its stderr
	done chan struct{}
}

// startServer runs `tarstore serve` with args and waits for its "serving"
// line, which tells the address.
func startServer(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...), done: make(chan struct{})}
	s.cmd.Env = environ()
	s.cmd.Dir = dir
	stderr, err := s.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())
	lines := bufio.NewReader(stderr)
	line, err := lines.ReadString('\n')
	require.NoError(t, err, "serve printed %q", line)
	s.log.WriteString(line)
	_, addr, found := strings.Cut(strings.TrimSpace(line), " on http://")
	require.True(t, found, "serve printed %q", line)
	require.True(t, strings.HasPrefix(line, "tarstore: serving "), line)
	s.url = "http://" + addr
	go func() {
		defer close(s.done)
		var buf [4096]byte
		for {
			n, err := lines.Read(buf[:])
			s.mu.Lock()
			s.log.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	})
	return s
}

// stop sends sig and waits for the server to exit; it returns the exit
// status and everything it printed.
func (s *server) stop(t *testing.T, sig syscall.Signal) (int, string) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(sig))
	<-s.done
	code := exitCode(t, s.cmd.Wait())
	s.mu.Lock()
	defer s.mu.Unlock()
	return code, s.log.String()
}

// peakRSS is the server's peak resident set (VmHWM) in bytes.
func (s *server) peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// runScript runs the steps with args prepended to each command line.
func runScript(t *testing.T, steps []clitest.Step, args ...string) []clitest.Result {
	t.Helper()
	var out []clitest.Result
	for _, s := range steps {
		r := tarstore(t, s.Stdin, append(append([]string{}, args...), s.Args...)...)
		if d := s.Check(r.code, r.stdout, r.stderr); d != "" {
			t.Error(d)
		}
		out = append(out, clitest.Result{Code: r.code, Stdout: r.stdout, Stderr: r.stderr})
	}
	return out
}

// TestSemantics runs SPEC §3 through the binary on a disk, then through a
// live server on the same (reformatted) image with --remote: same stdout,
// stderr and exit status, command by command.
func TestSemantics(t *testing.T) {
	steps, err := clitest.Parse(clitest.Semantics)
	require.NoError(t, err)
	dir := t.TempDir()
	img := filepath.Join(dir, "store.img")
	assert.Contains(t, ok(t, "", "format", "--disk", img, "--size", "64M"), "created "+img)

	local := runScript(t, steps, "--disk", img)
	ok(t, "", "format", "--disk", img, "--force")

	srv := startServer(t, dir, "--disk", img)
	remote := runScript(t, steps, "--remote", srv.url)
	// The disk is the server's while it runs.
	r := tarstore(t, "", "ls", "--disk", img)
	assert.Equal(t, 10, r.code)
	assert.Contains(t, r.stderr, "in use by another process")
	code, log := srv.stop(t, syscall.SIGTERM)
	assert.Equal(t, 0, code, log)
	assert.True(t, strings.HasPrefix(log, "tarstore: serving "+img+" on "+srv.url+"\n"), log)
	assert.True(t, strings.HasSuffix(log, "tarstore: shutting down\n"), log)

	for i := range steps {
		assert.Equal(t, local[i].Comparable(), remote[i].Comparable(), "line %d: tarstore %s",
			steps[i].Line, strings.Join(steps[i].Args, " "))
	}
	// What the server left is a sound archive.
	ok(t, "", "check", "--disk", img)
}

func TestUsage(t *testing.T) {
	r := tarstore(t, "")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "usage: tarstore <command>")
	assert.Contains(t, ok(t, "", "help"), "usage: tarstore <command>")
	assert.Contains(t, ok(t, "", "help", "serve"), "usage: tarstore serve")
	r = tarstore(t, "", "frobnicate")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, `unknown command "frobnicate"`)
	r = tarstore(t, "", "serve", "extra")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, `unexpected argument "extra"`)
}

// TestServeDefault is the README's `go run . serve`: no disk named, so
// ./tarstore.img is created (1 GiB, sparse) and served; SIGINT stops it.
func TestServeDefault(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	ok(t, "hi", "put", "/hello", "--remote", srv.url)
	code, log := srv.stop(t, syscall.SIGINT)
	assert.Equal(t, 0, code, log)
	assert.True(t, strings.HasPrefix(log, "tarstore: serving ./tarstore.img on http://127.0.0.1:"), log)
	img := filepath.Join(dir, "tarstore.img")
	st, err := os.Stat(img)
	require.NoError(t, err)
	assert.EqualValues(t, 1<<30, st.Size())
	assert.Equal(t, "hi", ok(t, "", "get", "/hello", "--disk", img))
}

// TestKillRestart: kill -9 of the server in the middle of writes loses
// nothing acknowledged, cycle after cycle on a small image whose space
// the writes keep reusing. Each cycle restarts the server on the image
// (which recovers), checks that every write acknowledged (2xx received)
// before the kill is there — the bytes of every PUT not overwritten or
// removed since, nothing a DELETE removed — and that the write each writer
// had in flight is there whole or not at all; `check --remote` is clean;
// then writers PUT, overwrite and DELETE values and dictionaries until the
// cycle's kill. At the end the server stops gracefully, `check --disk` is
// clean and GNU tar and bsdtar list the image as the store's values.
// TARSTORE_KILL_SEED replays a run's choices (not its timing);
// TARSTORE_KILL_KEEP=DIR keeps the image of a failed cycle as the kill
// left it, before recovery.
func TestKillRestart(t *testing.T) {
	const (
		cycles  = 5
		imgSize = 16 << 20
		writers = 4
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TARSTORE_KILL_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TARSTORE_KILL_SEED")
	}
	t.Logf("TARSTORE_KILL_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", strconv.Itoa(imgSize))
	ws := make([]*killWriter, writers)
	for i := range ws {
		ws[i] = &killWriter{t: t, id: i, rng: rand.New(rand.NewPCG(seed, uint64(i+1))), model: map[string][]byte{}}
	}
	// restart starts the server on the image and checks what the last
	// cycle left.
	restart := func() (*server, *http.Client) {
		t.Helper()
		// The image as the kill left it, before recovery changes it: kept
		// in $TARSTORE_KILL_KEEP when a check below fails, to study.
		crashed, err := os.ReadFile(img)
		require.NoError(t, err)
		defer func() {
			if keep := os.Getenv("TARSTORE_KILL_KEEP"); keep != "" && t.Failed() {
				path := filepath.Join(keep, fmt.Sprintf("kill-%d.img", seed))
				if os.WriteFile(path, crashed, 0o644) == nil {
					t.Logf("the image before recovery: %s", path)
				}
			}
		}()
		srv := startServer(t, dir, "--disk", img)
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers}}
		for _, w := range ws {
			w.verify(hc, srv.url)
		}
		out := ok(t, "", "check", "--remote", srv.url)
		assert.Contains(t, out, ": ok, 0 problems (0 fatal)")
		t.Logf("restarted: %s", strings.TrimSpace(out))
		return srv, hc
	}

	var written int64
	for cycle := range cycles {
		srv, hc := restart()
		killAt := int64(250 + rng.IntN(250)) // acknowledged writes before the kill
		var acked atomic.Int64
		reached := make(chan struct{})
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(hc, srv.url, func() {
					if acked.Add(1) == killAt {
						close(reached)
					}
				})
			}()
		}
		stopped := make(chan struct{})
		go func() {
			wg.Wait()
			close(stopped)
		}()
		select {
		case <-reached:
		case <-stopped:
			t.Fatalf("cycle %d: the writers stopped after %d acknowledged writes, before the kill", cycle, acked.Load())
		}
		require.NoError(t, srv.cmd.Process.Signal(syscall.SIGKILL))
		<-stopped
		<-srv.done
		srv.cmd.Wait()
		hc.CloseIdleConnections()
		var inFlight, cycleBytes int64
		for _, w := range ws {
			if w.pending != nil {
				inFlight++
			}
			cycleBytes += w.written
			w.written = 0
		}
		written += cycleBytes
		t.Logf("cycle %d: killed after %d acknowledged writes (%d MiB written), %d in flight", cycle, acked.Load(), cycleBytes>>20, inFlight)
		if t.Failed() {
			return
		}
	}
	srv, hc := restart()
	hc.CloseIdleConnections()
	code, log := srv.stop(t, syscall.SIGTERM)
	require.Equal(t, 0, code, log)
	var puts, removes, dictRemoves, noSpace, applied, discarded int
	want := map[string]int64{} // the values the store holds: names and sizes
	for _, w := range ws {
		puts, removes, dictRemoves, noSpace = puts+w.puts, removes+w.removes, dictRemoves+w.dictRemoves, noSpace+w.noSpace
		applied, discarded = applied+w.inFlightApplied, discarded+w.inFlightDiscarded
		for k, v := range w.model {
			want[strings.TrimPrefix(k, "/")] = int64(len(v))
		}
	}
	t.Logf("%d cycles: %d MiB written on a %d MiB image; %d PUTs, %d DELETEs of values, %d of dictionaries, %d no_space; "+
		"writes in flight at a kill: %d there, %d not", cycles, written>>20, imgSize>>20, puts, removes, dictRemoves, noSpace, applied, discarded)
	assert.Greater(t, written, int64(2*imgSize), "the writes reused the image's space")
	assert.Positive(t, dictRemoves)

	r := tarstore(t, "", "check", "--disk", img)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, ": ok, 0 problems (0 fatal)")
	for _, tool := range []struct{ name, pkg string }{{"tar", "tar"}, {"bsdtar", "libarchive-tools"}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			testenv.Need(t, tool.name+" (Debian package "+tool.pkg+")")
		}
		assert.Equal(t, want, tarList(t, tool.name, img), "%s -tv lists the store's values", tool.name)
	}
	t.Logf("GNU tar and bsdtar list the %d values", len(want))
}

// killWriter is one writer of TestKillRestart. It owns the keys below
// /w<id>, writes one request at a time, and keeps the model of what the
// store holds there: the bytes of each value every acknowledged write
// leaves, and the write in flight when the server died (pending), whose
// outcome the next restart tells.
type killWriter struct {
	t       *testing.T
	id      int
	rng     *rand.Rand
	model   map[string][]byte // key → value
	pending *killOp
	seq     int

	written                             int64 // bytes of acknowledged PUTs, this cycle
	puts, removes, dictRemoves, noSpace int
	inFlightApplied, inFlightDiscarded  int
}

// killOp is one write: a PUT of val at key, or a DELETE of key (a value
// or a dictionary).
type killOp struct {
	key string
	val []byte // nil: DELETE
}

// apply returns model with op done.
func (op *killOp) apply(model map[string][]byte) map[string][]byte {
	out := maps.Clone(model)
	if op.val != nil {
		out[op.key] = op.val
		return out
	}
	for k := range out {
		if k == op.key || strings.HasPrefix(k, op.key+"/") {
			delete(out, k)
		}
	}
	return out
}

// next picks the writer's next write: a PUT (new key or overwrite) of 100
// bytes to 1 MiB, a DELETE of a value, or of a dictionary.
func (w *killWriter) next() *killOp {
	w.seq++
	key := fmt.Sprintf("/w%d/d%d/k%d", w.id, w.rng.IntN(4), w.rng.IntN(12))
	switch p := w.rng.IntN(100); {
	case p < 60:
		var n int
		switch q := w.rng.IntN(10); {
		case q < 5:
			n = 100 + w.rng.IntN(4<<10)
		case q < 9:
			n = 16<<10 + w.rng.IntN(112<<10)
		default:
			n = 256<<10 + w.rng.IntN(768<<10)
		}
		val := make([]byte, n)
		for i := range val {
			val[i] = byte(w.rng.Uint32())
		}
		copy(val, fmt.Sprintf("%s #%d ", key, w.seq))
		return &killOp{key: key, val: val}
	case p < 90:
		return &killOp{key: key}
	case p < 99:
		return &killOp{key: fmt.Sprintf("/w%d/d%d", w.id, w.rng.IntN(4))}
	}
	return &killOp{key: fmt.Sprintf("/w%d", w.id)}
}

// run writes until a request fails (the server is gone): that write stays
// pending. Each acknowledged write calls ack.
func (w *killWriter) run(hc *http.Client, url string, ack func()) {
	for {
		op := w.next()
		method, body := http.MethodDelete, io.Reader(nil)
		if op.val != nil {
			method, body = http.MethodPut, bytes.NewReader(op.val)
		}
		req, err := http.NewRequest(method, url+"/v1/kv"+op.key+"?no-digest", body)
		if err != nil {
			w.t.Error(err)
			return
		}
		w.pending = op
		resp, err := hc.Do(req)
		if err != nil {
			return // the server died: op may or may not have been done
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_, had := w.model[op.key]
		switch {
		case resp.StatusCode == http.StatusInsufficientStorage && op.val != nil:
			w.noSpace++ // refused: nothing changed
			w.pending = nil
			continue
		case op.val != nil && had && resp.StatusCode != http.StatusNoContent,
			op.val != nil && !had && resp.StatusCode != http.StatusCreated,
			op.val == nil && resp.StatusCode != http.StatusNoContent:
			w.t.Errorf("%s %s (the key %s before): %d %s", method, op.key, map[bool]string{true: "there", false: "absent"}[had], resp.StatusCode, msg)
			return
		}
		w.model = op.apply(w.model)
		w.pending = nil
		switch {
		case op.val != nil:
			w.puts++
			w.written += int64(len(op.val))
		case strings.Count(op.key, "/") == 3:
			w.removes++
		default:
			w.dictRemoves++
		}
		ack()
	}
}

// verify reads what the store holds below /w<id> and compares it with the
// model: it must be the model, or the model with the pending write done.
func (w *killWriter) verify(hc *http.Client, url string) {
	t := w.t
	t.Helper()
	got := map[string][]byte{}
	var walk func(key string)
	walk = func(key string) {
		resp, err := hc.Get(url + "/v1/kv" + key + "?list")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound && key == fmt.Sprintf("/w%d", w.id) {
			return // nothing left at all
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, "list %s: %s", key, b)
		var lb httpapi.ListBody
		require.NoError(t, json.Unmarshal(b, &lb))
		for _, e := range lb.Entries {
			if e.Kind == "dictionary" {
				walk(e.Key)
				continue
			}
			resp, err := hc.Get(url + "/v1/kv" + e.Key + "?no-digest")
			require.NoError(t, err)
			v, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, "get %s: %s", e.Key, v)
			got[e.Key] = v
		}
	}
	walk(fmt.Sprintf("/w%d", w.id))
	switch {
	case sameValues(got, w.model):
		if w.pending != nil {
			w.inFlightDiscarded++
		}
	case w.pending != nil && sameValues(got, w.pending.apply(w.model)):
		w.model = w.pending.apply(w.model)
		w.inFlightApplied++
	default:
		var diffs []string
		for k, v := range w.model {
			if g, there := got[k]; !there {
				diffs = append(diffs, fmt.Sprintf("%s: acknowledged %d bytes, missing", k, len(v)))
			} else if !bytes.Equal(g, v) {
				diffs = append(diffs, fmt.Sprintf("%s: acknowledged %d bytes %q..., holds %d bytes %q...", k, len(v), v[:min(len(v), 24)], len(g), g[:min(len(g), 24)]))
			}
		}
		for k, g := range got {
			if _, known := w.model[k]; !known {
				diffs = append(diffs, fmt.Sprintf("%s: removed (or never written), holds %d bytes", k, len(g)))
			}
		}
		slices.Sort(diffs)
		pending := "none"
		if p := w.pending; p != nil {
			pending = fmt.Sprintf("PUT %s (%d bytes)", p.key, len(p.val))
			if p.val == nil {
				pending = "DELETE " + p.key
			}
		}
		t.Errorf("writer %d: the store is neither what was acknowledged nor that with the write in flight (%s) done:\n%s",
			w.id, pending, strings.Join(diffs, "\n"))
		w.model = got
	}
	w.pending = nil
}

// sameValues reports whether a and b bind the same keys to the same bytes.
func sameValues(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}

// tarList lists the archive img with tool -tv (GNU tar or bsdtar), which
// must succeed without a word on stderr, and returns the regular members
// it lists: name (without a leading "./" or "/") and size.
func tarList(t *testing.T, tool, img string) map[string]int64 {
	t.Helper()
	cmd := exec.Command(tool, "-tvf", img)
	cmd.Env = append(environ(), "LC_ALL=C.UTF-8", "TZ=UTC")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	require.NoError(t, err, "%s -tvf: %s", tool, errb.String())
	assert.Empty(t, errb.String(), "%s -tvf", tool)
	got := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "-") {
			continue // not a regular member
		}
		// GNU tar: mode owner/group size date time name;
		// bsdtar:  mode links owner group size month day time|year name.
		sizeField, nameField := 2, 5
		if tool == "bsdtar" {
			sizeField, nameField = 4, 8
		}
		require.Greater(t, len(f), nameField, "%s: %q", tool, line)
		size, err := strconv.ParseInt(f[sizeField], 10, 64)
		require.NoError(t, err, "%s: %q", tool, line)
		name := strings.Join(f[nameField:], " ")
		got[strings.TrimPrefix(strings.TrimPrefix(name, "./"), "/")] = size
	}
	return got
}

// TestCheckRemote: `tarstore check --remote` through a live server with a
// token: a value whose data was damaged on the image is a fatal problem
// (exit 10) with the same lines as the check of the image; without the
// token it is unauthorized (13), and with the server gone unreachable (12).
func TestCheckRemote(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", "16M")
	ok(t, "first value", "put", "/a", "--disk", img)
	ok(t, strings.Repeat("the needle ", 100), "put", "/d/needle", "--disk", img)
	ok(t, "last value", "put", "/z", "--disk", img)
	b, err := os.ReadFile(img)
	require.NoError(t, err)
	i := bytes.Index(b, []byte("the needle"))
	require.Positive(t, i)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("N"), int64(i+500))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	embedded := tarstore(t, "", "check", "--disk", img)
	require.Equal(t, 10, embedded.code, embedded.stderr)
	assert.Contains(t, embedded.stdout, `("/d/needle"): the data does not match the CRC-32C in its header [fatal]`)

	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("s3cret\n"), 0o600))
	srv := startServer(t, dir, "--disk", img, "--token-file", token)
	r := tarstore(t, "", "check", "--remote", srv.url, "--token-file", token)
	assert.Equal(t, 10, r.code, r.stderr)
	assert.Equal(t, embedded.stdout, strings.Replace(r.stdout, srv.url, img, 1))
	assert.Equal(t, embedded.stderr, strings.Replace(r.stderr, srv.url, img, 1))
	r = tarstore(t, "", "check", "--remote", srv.url)
	assert.Equal(t, 13, r.code, r.stderr)
	assert.Contains(t, r.stderr, "(unauthorized)")
	code, log := srv.stop(t, syscall.SIGTERM)
	assert.Equal(t, 0, code, log)
	assert.Contains(t, log, "level=ERROR msg=check problems=1 fatal=1")
	r = tarstore(t, "", "check", "--remote", srv.url, "--token-file", token)
	assert.Equal(t, 12, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no server answers at "+srv.url)
}

// TestLargeValueMemory streams a 4 GiB value into a server with put and
// out with get, both remote: the server's peak RSS stays under 64 MiB, and
// so does each client's.
func TestLargeValueMemory(t *testing.T) {
	const size = 4 << 30
	const limit = 64 << 20
	dir := t.TempDir()
	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", "5G")

	// A sparse source file with marks here and there, so that misplaced
	// bytes show; its CRC comes from the same content made in memory.
	marks := map[int64]string{0: "MARK0", 4095: "MARK1", 1 << 20: "MARK2", 1<<30 + 12345: "MARK3", 3<<30 + 777: "MARK4", size - 5: "MARK5"}
	src := filepath.Join(sparseDir(t), "src.bin")
	f, err := os.Create(src)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	for off, m := range marks {
		_, err := f.WriteAt([]byte(m), off)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	want := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		next := int64(size)
		for o := range marks {
			if o >= off && o < next {
				next = o
			}
		}
		for off < next {
			n := min(int64(len(zeros)), next-off)
			want.Write(zeros[:n])
			off += n
		}
		if m, isMark := marks[off]; isMark {
			want.Write([]byte(m))
			off += int64(len(m))
		}
	}
	t0 := time.Now()

	srv := startServer(t, dir, "--disk", img)
	put := exec.Command(bin, "put", "/big", src, "--remote", srv.url)
	put.Env = environ()
	var out bytes.Buffer
	put.Stdout, put.Stderr = &out, &out
	require.NoError(t, put.Start())
	putPeak := peakRSSUntilExit(put.Process.Pid)
	require.NoError(t, put.Wait(), "%s", out.String())
	assert.Less(t, putPeak, int64(limit), "put's peak RSS")
	t.Logf("put %v, peak RSS %d MiB", time.Since(t0), putPeak>>20)
	t0 = time.Now()

	get := exec.Command(bin, "get", "/big", "--remote", srv.url)
	get.Env = environ()
	var errb bytes.Buffer
	get.Stderr = &errb
	stdout, err := get.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, get.Start())
	getPeak := make(chan int64, 1)
	go func() { getPeak <- peakRSSUntilExit(get.Process.Pid) }()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.CopyBuffer(h, stdout, make([]byte, 1<<20))
	require.NoError(t, err)
	peakGet := <-getPeak
	require.NoError(t, get.Wait(), errb.String())
	assert.EqualValues(t, size, n)
	assert.Equal(t, want.Sum32(), h.Sum32())
	assert.Less(t, peakGet, int64(limit), "get's peak RSS")
	t.Logf("get %v, peak RSS %d MiB", time.Since(t0), peakGet>>20)

	peak := srv.peakRSS(t)
	t.Logf("server peak RSS %d MiB", peak>>20)
	assert.Less(t, peak, int64(limit), "the server's peak RSS")
	code, log := srv.stop(t, syscall.SIGTERM)
	assert.Equal(t, 0, code, log)
}

// sparseDir returns a directory for a large sparse file that is cheap to
// read: on tmpfs (/dev/shm) holes read as the zero page, while a disk file
// system fills the page cache with zeroes first, which is slow on small
// machines.
func sparseDir(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "tarstore-e2e-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// peakRSSUntilExit samples the peak resident set (VmHWM) of the running
// process pid until it has exited (a zombie: its parent must not reap it
// before this returns), and returns it in bytes. The rusage wait4 gives
// will not do: Linux starts a child's ru_maxrss from the high-water mark
// of the memory it ran in before exec — the parent's, when Go forks with
// CLONE_VM — so under -race, after tests that hold many values, every
// child would seem to use what the test process did.
func peakRSSUntilExit(pid int) int64 {
	var peak int64
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return peak
		}
		exited := false
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					peak = max(peak, kb<<10)
				}
			}
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				v = strings.TrimSpace(v)
				exited = strings.HasPrefix(v, "Z") || strings.HasPrefix(v, "X")
			}
		}
		if exited {
			return peak
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestImage builds the appliance's initramfs with `tarstore image` from a
// static build of the binary, for the installed Debian kernel: the same
// inputs give the same bytes, the image is under 12 MiB, bsdtar reads it
// as a cpio archive with /init, /dev/console and the module list; a
// dynamically linked /init is refused.
func TestImage(t *testing.T) {
	if _, err := exec.LookPath("bsdtar"); err != nil {
		testenv.Need(t, "bsdtar (apt-get install libarchive-tools)")
	}
	if kernels, _ := filepath.Glob("/lib/modules/*/modules.dep"); len(kernels) == 0 {
		testenv.Need(t, "a kernel's modules in /lib/modules (apt-get install linux-image-amd64)")
	}
	dir := t.TempDir()
	static := filepath.Join(dir, "tarstore")
	cmd := exec.Command("go", "build", "-o", static, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	var images [][]byte
	for i := range 2 {
		img := filepath.Join(dir, fmt.Sprintf("initramfs-%d.gz", i))
		out, err := exec.Command(static, "image", "--out", img).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), img+": ")
		b, err := os.ReadFile(img)
		require.NoError(t, err)
		images = append(images, b)
	}
	require.Equal(t, images[0], images[1], "the same inputs give the same image")
	require.Less(t, len(images[0]), 12<<20, "the compressed image")
	t.Logf("initramfs: %d bytes", len(images[0]))

	list, err := exec.Command("bsdtar", "-tvf", filepath.Join(dir, "initramfs-0.gz")).CombinedOutput()
	require.NoError(t, err, "%s", list)
	for _, want := range []string{" init\n", " dev/console\n", " etc/tarstore/modules.load\n", "virtio_blk.ko\n", "nvme.ko\n"} {
		require.Contains(t, string(list), want)
	}
	require.Regexp(t, `(?m)^c.* dev/console$`, string(list), "/dev/console is a character device")

	// A program that needs a dynamic loader cannot be /init.
	dynamic := filepath.Join(dir, "dynamic")
	require.NoError(t, os.WriteFile(dynamic, elfWithInterp(t), 0o755))
	out, err = exec.Command(static, "image", "--init", dynamic, "--out", filepath.Join(dir, "x.gz")).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "CGO_ENABLED=0")
}

// elfWithInterp returns a dynamically linked program of this machine
// (/bin/sh's), as a dynamic /init would be.
func elfWithInterp(t *testing.T) []byte {
	t.Helper()
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	b, err := os.ReadFile(sh)
	require.NoError(t, err)
	return b
}

// TestTour runs the README's tour as written, line by line in one bash:
// the built binary stands for `go run .`, and the server listens on a free
// port instead of 7070 (TARSTORE_LISTEN, and the port in the URLs), so that
// the test does not depend on what else runs on the machine. Every line
// must succeed, and what the comments promise is checked.
func TestTour(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Need(t, tool)
		}
	}
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	lines := tourLines(t, string(readme))
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), readme, 0o644))
	port := freePort(t)
	sh := startShell(t, dir, "TARSTORE_LISTEN=127.0.0.1:"+port)

	out := map[string]string{}
	for _, line := range lines {
		run := strings.ReplaceAll(line, "go run .", bin)
		run = strings.ReplaceAll(run, "127.0.0.1:7070", "127.0.0.1:"+port)
		code, stdout := sh.run(t, run)
		require.Equal(t, 0, code, "tour line %q exited %d:\n%s\nstderr so far:\n%s", line, code, stdout, sh.stderr.String())
		if strings.HasSuffix(strings.TrimSpace(cutComment(run)), "&") {
			waitHealthy(t, "http://127.0.0.1:"+port)
		}
		out[line] = stdout
	}
	find := func(prefix string) string {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return out[l]
			}
		}
		t.Fatalf("the tour has no line %q", prefix)
		return ""
	}
	put := find("curl -i -X PUT")
	assert.Contains(t, put, "HTTP/1.1 201 Created")
	assert.Contains(t, put, "Etag: \"")
	assert.Contains(t, find("curl -i -X DELETE"), "HTTP/1.1 204 No Content")
	assert.Equal(t, "value\t/notes/today\n", find("go run . ls /notes"))
	assert.Contains(t, find("go run . ls / -r -l"), "/archive/2026/today\n")
	assert.Contains(t, find("go run . rm -r /archive --dry-run"), "value\t/archive/2026/today\n")
	assert.Contains(t, find("curl 'http://127.0.0.1:7070/v1/kv/?list&recursive&long'"), `"key":"/archive/2026/today"`)
	assert.Contains(t, find("tar -tvf tarstore.img"), "archive/2026/today")
	assert.Equal(t, "value\t/archive/2026/today\n", find("go run . ls /archive/2026 --disk tarstore.img"))
}

// tourLines are the command lines of the README's tour block.
func tourLines(t *testing.T, readme string) []string {
	t.Helper()
	_, tour, ok := strings.Cut(readme, "## A tour\n")
	require.True(t, ok, "README.md has no tour")
	_, block, ok := strings.Cut(tour, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	require.NotEmpty(t, lines)
	return lines
}

// cutComment is a shell line without its comment (a "#" after a space;
// the tour's commands have no "#" of their own).
func cutComment(line string) string {
	if i := strings.Index(line, " #"); i >= 0 {
		return line[:i]
	}
	return line
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	return port
}

// waitHealthy waits for a server to answer /healthz, for up to a minute.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		require.Less(t, i, 600, "no server answered at %s: %v", url, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// shell is one bash reading command lines from a pipe, as a terminal
// session would: variables, jobs and the directory carry over.
type shell struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *syncbuf.Buffer
	n      int
}

func startShell(t *testing.T, dir string, env ...string) *shell {
	t.Helper()
	sh := &shell{cmd: exec.Command("bash", "--norc", "--noprofile"), stderr: &syncbuf.Buffer{}}
	sh.cmd.Dir = dir
	sh.cmd.Env = environ(env...)
	sh.cmd.Stderr = sh.stderr
	var err error
	sh.in, err = sh.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := sh.cmd.StdoutPipe()
	require.NoError(t, err)
	sh.out = bufio.NewReader(stdout)
	require.NoError(t, sh.cmd.Start())
	t.Cleanup(func() {
		// The background jobs first (a server left by a failed tour).
		io.WriteString(sh.in, "kill $(jobs -p) 2>/dev/null; wait\n")
		sh.in.Close()
		sh.cmd.Wait()
	})
	return sh
}

// run runs one line and returns its exit status and standard output.
func (sh *shell) run(t *testing.T, line string) (int, string) {
	t.Helper()
	sh.n++
	marker := fmt.Sprintf("__tarstore_tour_%d__", sh.n)
	_, err := fmt.Fprintf(sh.in, "%s\necho; echo %s $?\n", line, marker)
	require.NoError(t, err)
	var out strings.Builder
	for {
		l, err := sh.out.ReadString('\n')
		require.NoError(t, err, "the shell ended; stderr:\n%s", sh.stderr.String())
		if rest, ok := strings.CutPrefix(l, marker+" "); ok {
			code, err := strconv.Atoi(strings.TrimSpace(rest))
			require.NoError(t, err)
			// The "echo" before the marker ends a last line without a
			// newline; it is not the command's.
			return code, strings.TrimSuffix(out.String(), "\n")
		}
		out.WriteString(l)
	}
}

// TestRemoteFailures: a server that refuses the token is unauthorized (13)
// and one that is gone unreachable (12), with their hints, as text and as
// JSON on stderr with --json.
func TestRemoteFailures(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", "16M")
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("s3cret\n"), 0o600))
	wrong := filepath.Join(dir, "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("guess\n"), 0o600))
	srv := startServer(t, dir, "--disk", img, "--token-file", token)
	ok(t, "v", "put", "/v", "--remote", srv.url, "--token-file", token)
	for _, args := range [][]string{{"ls"}, {"get", "/v"}, {"put", "/w"}, {"rm", "/v"}, {"du"}} {
		for _, tf := range [][]string{nil, {"--token-file", wrong}} {
			r := tarstore(t, "x", append(append(args, "--remote", srv.url), tf...)...)
			assert.Equal(t, 13, r.code, "%q %q: %s", args, tf, r.stderr)
			assert.Regexp(t, "^tarstore: "+args[0]+" .*: give the server's token with --token-file \\(unauthorized\\)\n$", r.stderr)
		}
	}
	r := tarstore(t, "", "get", "/v", "--remote", srv.url, "--json")
	assert.Equal(t, 13, r.code)
	var eb httpapi.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(r.stderr), &eb), r.stderr)
	assert.Equal(t, httpapi.ErrorDetail{Code: "unauthorized", Key: "/v", Op: "get",
		Message: "Missing or invalid bearer token: give the server's token with --token-file"}, eb.Error)
	assert.Equal(t, "v", ok(t, "", "get", "/v", "--remote", srv.url, "--token-file", token), "nothing was removed")

	code, log := srv.stop(t, syscall.SIGTERM)
	require.Equal(t, 0, code, log)
	for _, args := range [][]string{{"ls"}, {"get", "/v"}, {"put", "/w"}, {"stat", "/v"}} {
		r := tarstore(t, "x", append(args, "--remote", srv.url, "--token-file", token)...)
		assert.Equal(t, 12, r.code, "%q: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "no server answers at "+srv.url)
		assert.True(t, strings.HasSuffix(r.stderr, ": is 'tarstore serve' running there? (unreachable)\n"), r.stderr)
	}
	r = tarstore(t, "", "ls", "--remote", srv.url, "--json")
	assert.Equal(t, 12, r.code)
	require.NoError(t, json.Unmarshal([]byte(r.stderr), &eb), r.stderr)
	assert.Equal(t, "unreachable", eb.Error.Code)
	// The help's table has both.
	help := ok(t, "", "help")
	assert.Contains(t, help, "12 unreachable")
	assert.Contains(t, help, "13 unauthorized")
}

// TestRmRecursive: rm of a dictionary without -r is refused and removes
// nothing; --dry-run lists and removes nothing; rm -r removes; the root
// needs --force. On a disk and through a server.
func TestRmRecursive(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", "16M")
	srv := startServer(t, dir, "--disk", img)
	for _, target := range [][]string{{"--remote", srv.url}} {
		run := func(stdin string, args ...string) result { return tarstore(t, stdin, append(args, target...)...) }
		for _, k := range []string{"/d/a", "/d/sub/b", "/d/sub/c", "/e"} {
			require.Equal(t, 0, run("x", "put", k).code)
		}
		before := run("", "ls", "-r", "/").stdout
		r := run("", "rm", "/d")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Equal(t, "tarstore: rm /d: Expected a value; /d is a dictionary: rm -r removes a dictionary with everything below it (value_expected)\n", r.stderr)
		assert.Equal(t, before, run("", "ls", "-r", "/").stdout, "rm without -r removed something")
		r = run("", "rm", "-r", "/d", "--dry-run")
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "dictionary\t/d\nvalue\t/d/a\ndictionary\t/d/sub\nvalue\t/d/sub/b\nvalue\t/d/sub/c\n", r.stdout)
		assert.Equal(t, before, run("", "ls", "-r", "/").stdout, "--dry-run removed something")
		assert.Equal(t, 4, run("", "rm", "-r", "/").code)
		assert.Equal(t, before, run("", "ls", "-r", "/").stdout)
		assert.Equal(t, 0, run("", "rm", "--recursive", "/d").code)
		assert.Equal(t, "value\t/e\n", run("", "ls", "-r", "/").stdout)
		assert.Equal(t, 0, run("", "rm", "-r", "--force", "/").code)
		assert.Equal(t, "", run("", "ls", "-r", "/").stdout)
	}
	code, log := srv.stop(t, syscall.SIGTERM)
	require.Equal(t, 0, code, log)
	r := tarstore(t, "", "rm", "/", "--disk", img)
	assert.Equal(t, 4, r.code)
}

// metricWrites is the number of write requests (set, set_partial,
// allocate, rename, remove) a server has answered, from /metrics.
func metricWrites(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "tarstore_requests_total{")
		if !ok {
			continue
		}
		labels, count, _ := strings.Cut(rest, "} ")
		for _, op := range []string{"set", "set_partial", "allocate", "rename", "remove"} {
			if strings.Contains(labels, `op="`+op+`"`) {
				c, err := strconv.Atoi(count)
				require.NoError(t, err)
				n += c
			}
		}
	}
	return n
}

// treeState is what a directory tree holds: for each entry its type, mode,
// size, modification time and, for regular files, content.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		fi, err := d.Info()
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, path)
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			v += " " + string(b)
		}
		state[rel] = v
		return nil
	}))
	return state
}

// TestImportReadOnlyRoundTrip imports a read-only tree (mode 0555, and
// when the test runs as root, imported as the user nobody, for whom the
// modes hold) through a server: nothing is created or changed in it; the
// symbolic link and the FIFO are skipped and counted; export gives back
// the same files with the values' times; a second import writes nothing
// (the server's write requests do not move).
func TestImportReadOnlyRoundTrip(t *testing.T) {
	// Not t.TempDir(): its parent is closed to other users.
	dir, err := os.MkdirTemp("", "tarstore-ro-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	src := filepath.Join(dir, "src")
	files := map[string]string{
		"index.html":            "<html>hello</html>\n",
		"css/site.css":          "body{}\n",
		"img/a b/logo.svg":      strings.Repeat("<svg/>", 5000),
		"deep/er/and/deeper/x":  "",
		"docs/notes-2026.txt":   "notes\n",
		"docs/notes/2026/1.txt": "one\n",
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	require.NoError(t, os.Symlink("index.html", filepath.Join(src, "home.html")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "docs/pipe"), 0o644))
	require.NoError(t, filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chmod(path, 0o555)
	}))
	t.Cleanup(func() {
		filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(path, 0o755)
			}
			return nil
		})
	})
	before := treeState(t, src)
	total := 0
	for _, content := range files {
		total += len(content)
	}

	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", "16M")
	srv := startServer(t, dir, "--disk", img)

	// As a user the modes bind: root would write into a 0555 directory.
	importAs := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"import", src, "/site", "--remote", srv.url}, args...)...)
		cmd.Env = environ()
		cmd.Dir = "/"
		if os.Getuid() == 0 {
			require.NoError(t, os.Chmod(filepath.Dir(bin), 0o755))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		return runCmd(t, cmd)
	}
	if os.Getuid() == 0 {
		// The check is real: as nobody, the source cannot be written.
		probe := exec.Command("sh", "-c", "touch "+filepath.Join(src, "probe"))
		probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		require.Error(t, probe.Run(), "nobody could write into the read-only source")
	}
	r := importAs()
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, fmt.Sprintf("imported 6 values (%d bytes) from %s into /site; 0 unchanged, 2 skipped (-v names them)\n", total, src), r.stdout)
	assert.Equal(t, before, treeState(t, src), "import changed its source")

	writes := metricWrites(t, srv.url)
	r = importAs("-v")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "skipped docs/pipe: not a regular file\nskipped home.html: a symbolic link\n")
	assert.Contains(t, r.stdout, "; 6 unchanged, 2 skipped\n")
	assert.Equal(t, writes, metricWrites(t, srv.url), "a re-import of an unchanged tree wrote")
	assert.Equal(t, before, treeState(t, src), "import changed its source")

	out := filepath.Join(dir, "out")
	assert.Equal(t, fmt.Sprintf("exported 6 values (%d bytes) from /site into %s\n", total, out),
		ok(t, "", "export", "/site", out, "--remote", srv.url))
	got := treeState(t, out)
	for name, content := range files {
		st := ok(t, "", "stat", "/site/"+name, "--remote", srv.url, "--json")
		var info struct {
			LastModified time.Time `json:"last_modified"`
		}
		require.NoError(t, json.Unmarshal([]byte(st), &info))
		fi, err := os.Stat(filepath.Join(out, name))
		require.NoError(t, err)
		assert.Equal(t, content, strings.SplitN(got[name], " ", 4)[3], name)
		assert.Equal(t, info.LastModified, fi.ModTime().UTC().Truncate(time.Second), name)
		delete(got, name)
	}
	for name, v := range got {
		assert.True(t, strings.HasPrefix(v, "d"), "export made %s: %s", name, v)
	}
	code, log := srv.stop(t, syscall.SIGTERM)
	require.Equal(t, 0, code, log)
}

// TestManyKeys: ls -r and du over a few thousand keys, on a disk and
// through a server, agree with each other and with what was imported.
func TestManyKeys(t *testing.T) {
	const dirs, per = 40, 110 // 4 400 values
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	var total int64
	for d := range dirs {
		require.NoError(t, os.MkdirAll(filepath.Join(src, fmt.Sprintf("d%02d", d)), 0o755))
		for f := range per {
			content := strings.Repeat("k", d+f)
			total += int64(len(content))
			require.NoError(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("d%02d/f%03d", d, f)), []byte(content), 0o644))
		}
	}
	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", "64M")
	ok(t, "", "import", src, "/many", "--disk", img)
	embeddedLs := ok(t, "", "ls", "-r", "/many", "--disk", img)
	embeddedDu := ok(t, "", "du", "/many", "--disk", img)
	srv := startServer(t, dir, "--disk", img)
	remoteLs := ok(t, "", "ls", "-r", "/many", "--remote", srv.url)
	remoteDu := ok(t, "", "du", "/many", "--remote", srv.url)
	assert.Equal(t, embeddedLs, remoteLs)
	assert.Equal(t, embeddedDu, remoteDu)
	lines := strings.Split(strings.TrimSuffix(remoteLs, "\n"), "\n")
	require.Len(t, lines, dirs*per+dirs)
	assert.Equal(t, "dictionary\t/many/d00", lines[0])
	assert.Equal(t, "value\t/many/d00/f000", lines[1])
	assert.Equal(t, fmt.Sprintf("value\t/many/d%02d/f%03d", dirs-1, per-1), lines[len(lines)-1])
	duLines := strings.Split(strings.TrimSuffix(remoteDu, "\n"), "\n")
	require.Len(t, duLines, dirs+1)
	assert.Equal(t, fmt.Sprintf("%d\t%d\t/many", total, dirs*per), duLines[dirs])
	assert.Equal(t, fmt.Sprintf("%d\t%d\t/many\n", total, dirs*per), ok(t, "", "du", "-s", "/many", "--remote", srv.url))
	var l struct{ Entries []map[string]any }
	require.NoError(t, json.Unmarshal([]byte(ok(t, "", "ls", "-r", "/many/d01", "--json", "--remote", srv.url)), &l))
	require.Len(t, l.Entries, per)
	assert.EqualValues(t, 1, l.Entries[0]["size"])
	long := ok(t, "", "ls", "-l", "/many/d01", "--remote", srv.url)
	assert.Regexp(t, "^value {18}1 20[0-9-]{8}T[0-9:]{8}Z /many/d01/f000\n", long)
	code, log := srv.stop(t, syscall.SIGTERM)
	require.Equal(t, 0, code, log)
}

// TestVersionAndCompletion: --version names the commit and Go; a typo gets
// a suggestion; bash completes command names and flags with the script of
// `completion bash`.
func TestVersionAndCompletion(t *testing.T) {
	// The binary is static, as TestMain builds it (CGO_ENABLED=0, as the
	// README says): no program interpreter.
	f, err := elf.Open(bin)
	require.NoError(t, err)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "the binary needs a dynamic loader")
	}
	f.Close()

	v := ok(t, "", "--version")
	assert.Regexp(t, `^tarstore \S+\ncommit: \S+.*\ngo: go1\.\S+ \S+/\S+\n$`, v)
	assert.Equal(t, v, ok(t, "", "version"))
	r := tarstore(t, "", "pt", "/a")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, `unknown command "pt"; did you mean 'put'?`)

	if _, err := exec.LookPath("bash"); err != nil {
		testenv.Need(t, "bash")
	}
	script := filepath.Join(t.TempDir(), "tarstore.bash")
	require.NoError(t, os.WriteFile(script, []byte(ok(t, "", "completion", "bash")), 0o644))
	complete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = strconv.Quote(w)
		}
		prog := fmt.Sprintf(`source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _tarstore; echo "${COMPREPLY[*]}"`,
			script, strings.Join(quoted, " "), len(words)-1)
		out, err := exec.Command("bash", "--norc", "-c", prog).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}
	assert.Equal(t, "put patch", complete("tarstore", "p"))
	assert.Equal(t, "--recursive", complete("tarstore", "ls", "--rec"))
	assert.Equal(t, "--dry-run", complete("tarstore", "--disk", "x.img", "rm", "--dr"))
	assert.Equal(t, "zsh", complete("tarstore", "completion", "z"))
	for _, shell := range []string{"zsh", "fish"} {
		assert.Contains(t, ok(t, "", "completion", shell), "tarstore")
	}
}
