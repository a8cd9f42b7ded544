package main

// End-to-end tests: they build the tarstore binary once (TestMain) and run
// it as a user would — on a disk, and against a live `tarstore serve`.

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/cli/clitest"
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
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
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
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errb.String()}
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
	err := s.cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
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

// TestKillRestart: values acknowledged by the server (put exited 0) survive
// kill -9 of the server; values in flight are all there or not at all.
func TestKillRestart(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "store.img")
	ok(t, "", "format", "--disk", img, "--size", "256M")
	srv := startServer(t, dir, "--disk", img)

	value := func(w, i int) string { return strings.Repeat(fmt.Sprintf("w%d-i%d;", w, i), 1000*(i%5+1)) }
	ok(t, value(0, 0), "put", "/before", "--remote", srv.url)

	// Writers put values until the server dies; every put that exited 0 was
	// acknowledged.
	const writers = 4
	var mu sync.Mutex
	acked := map[string]string{}
	tried := map[string]string{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	killed := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; ; i++ {
				key := fmt.Sprintf("/w%d/%d", w, i)
				mu.Lock()
				tried[key] = value(w, i)
				mu.Unlock()
				cmd := exec.Command(bin, "put", key, "--remote", srv.url)
				cmd.Env = environ()
				cmd.Stdin = strings.NewReader(value(w, i))
				if cmd.Run() != nil {
					return
				}
				mu.Lock()
				acked[key] = value(w, i)
				n := len(acked)
				mu.Unlock()
				if n == 20 {
					close(killed)
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	close(start)
	select {
	case <-killed:
	case <-allDone:
		t.Fatal("the writers stopped before 20 values were acknowledged")
	}
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGKILL))
	<-allDone
	<-srv.done
	srv.cmd.Wait()

	srv = startServer(t, dir, "--disk", img)
	assert.Equal(t, value(0, 0), ok(t, "", "get", "/before", "--remote", srv.url))
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(acked), 20)
	for key, want := range acked {
		assert.Equal(t, want, ok(t, "", "get", key, "--remote", srv.url), key)
	}
	for key, want := range tried {
		if _, isAcked := acked[key]; isAcked {
			continue
		}
		r := tarstore(t, "", "get", key, "--remote", srv.url)
		if r.code == 0 {
			assert.Equal(t, want, r.stdout, "%s is there, so it must be whole", key)
		} else {
			assert.Equal(t, 3, r.code, "%s: %s", key, r.stderr)
		}
	}
	code, log := srv.stop(t, syscall.SIGTERM)
	assert.Equal(t, 0, code, log)
	assert.Contains(t, ok(t, "", "check", "--disk", img), ": ok, 0 problems")
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
	out, err := put.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Less(t, maxRSS(put), int64(limit), "put's peak RSS")
	t.Logf("put %v", time.Since(t0))
	t0 = time.Now()

	get := exec.Command(bin, "get", "/big", "--remote", srv.url)
	get.Env = environ()
	var errb bytes.Buffer
	get.Stderr = &errb
	stdout, err := get.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, get.Start())
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.CopyBuffer(h, stdout, make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, get.Wait(), errb.String())
	assert.EqualValues(t, size, n)
	assert.Equal(t, want.Sum32(), h.Sum32())
	assert.Less(t, maxRSS(get), int64(limit), "get's peak RSS")
	t.Logf("get %v", time.Since(t0))

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

// maxRSS is the peak RSS of a finished command, in bytes.
func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}
