package boot_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// The VM tests boot the appliance in QEMU (TCG where KVM does not work)
// through scripts/qemu/run and stop, as a user would, and check from the
// host what it wrote. They need QEMU and Debian's kernel, which the
// scripts install when missing (as root).

// bootTimeout bounds a boot, from run's start (it builds the binary and
// the image first) to the first answer of /healthz.
const bootTimeout = 3 * time.Minute

// A vm is one appliance booted by scripts/qemu/run.
type vm struct {
	t       *testing.T
	port    int
	state   string // TARSTORE_QEMU_STATE of its scripts
	url     string
	token   string
	tls     *tls.Config // trusting its certificate, when run was given --tls-cert
	console *lines
	cmd     *exec.Cmd
	done    chan error // run's exit
	booted  time.Duration
}

// lines collects a process's output and reports the first line holding a
// string.
type lines struct {
	mu    sync.Mutex
	b     bytes.Buffer
	start time.Time
	seen  map[string]time.Duration // substring → when it first appeared
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	for s, at := range l.seen {
		if at == 0 && strings.Contains(l.b.String(), s) {
			l.seen[s] = time.Since(l.start)
		}
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lines) when(s string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[s]
}

// repoRoot is the repository's root (the tests run in boot/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestMain(m *testing.M) {
	if os.Getpid() == 1 {
		inVM(m) // this test binary is a VM's /init: TestVMDriverSuite
	}
	code := m.Run()
	if built.Load() {
		if img, err := prebuilt(); err == nil {
			os.RemoveAll(filepath.Dir(img))
		}
	}
	os.Exit(code)
}

// built is set once prebuilt ran.
var built atomic.Bool

// prebuilt builds the static binary and its initramfs once for all the
// VM tests of a run (scripts/qemu/run would rebuild them at every boot;
// main_test.go's TestImage covers the build) and returns the image.
var prebuilt = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tarstore-vm-")
	if err != nil {
		return "", err
	}
	built.Store(true)
	bin := filepath.Join(dir, "tarstore")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	img := filepath.Join(dir, "initramfs.gz")
	if out, err := exec.Command(bin, "image", "--init", bin, "--out", img).CombinedOutput(); err != nil {
		return "", fmt.Errorf("tarstore image: %v: %s", err, out)
	}
	return img, nil
})

// startVM runs scripts/qemu/run on disk with args and returns once the
// command runs, without waiting for the boot.
func startVM(t *testing.T, state, disk string, args ...string) *vm {
	t.Helper()
	img, err := prebuilt()
	require.NoError(t, err)
	return startVMWith(t, state, disk, img, args...)
}

// startVMWith is startVM booting the initramfs img.
func startVMWith(t *testing.T, state, disk, img string, args ...string) *vm {
	t.Helper()
	port := freePort(t)
	v := &vm{t: t, port: port, state: state, url: fmt.Sprintf("http://127.0.0.1:%d", port),
		console: &lines{start: time.Now(), seen: map[string]time.Duration{"tarstore-qemu: booting ": 0}},
		done:    make(chan error, 1)}
	if i := slices.Index(args, "--tls-cert"); i >= 0 && i+1 < len(args) {
		// The appliance speaks HTTPS with that certificate, which the
		// tests make their own CA.
		conf, err := client.CAConfig(args[i+1])
		require.NoError(t, err)
		v.url, v.tls = fmt.Sprintf("https://127.0.0.1:%d", port), conf
	}
	v.cmd = exec.Command(filepath.Join(repoRoot(t), "scripts/qemu/run"),
		append([]string{"--disk", disk, "--port", fmt.Sprint(port)}, args...)...)
	v.cmd.Env = append(os.Environ(), "TARSTORE_QEMU_STATE="+state, "TARSTORE_QEMU_INITRAMFS="+img)
	v.cmd.Stdout, v.cmd.Stderr = v.console, v.console
	require.NoError(t, v.cmd.Start())
	go func() { v.done <- v.cmd.Wait() }()
	t.Cleanup(func() {
		if v.cmd.ProcessState == nil {
			v.kill()
		}
		if t.Failed() {
			t.Logf("console of the VM on port %d:\n%s", v.port, v.console)
		}
	})
	return v
}

// bootVM boots the appliance on disk and waits until it serves.
func bootVM(t *testing.T, state, disk string, args ...string) *vm {
	t.Helper()
	v := startVM(t, state, disk, args...)
	tok, err := os.ReadFile(filepath.Join(state, fmt.Sprint(v.port), "token"))
	// A short timeout: QEMU's port forward accepts at once and holds the
	// connection while the guest does not answer yet.
	poll := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: v.tls}}
	defer poll.CloseIdleConnections()
	deadline := time.Now().Add(bootTimeout)
	for {
		select {
		case err := <-v.done:
			v.done <- err
			t.Fatalf("the VM stopped before serving (%v):\n%s", err, v.console)
		default:
		}
		if resp, err := poll.Get(v.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "no /healthz within %v:\n%s", bootTimeout, v.console)
		time.Sleep(100 * time.Millisecond)
	}
	v.booted = time.Since(v.console.start) - v.console.when("tarstore-qemu: booting ")
	if err == nil || len(tok) == 0 {
		tok, err = os.ReadFile(filepath.Join(state, fmt.Sprint(v.port), "token"))
	}
	require.NoError(t, err, "the token scripts/qemu/run made")
	v.token = strings.TrimSpace(string(tok))
	return v
}

// client returns a client of the appliance's API.
func (v *vm) client() *client.Client {
	c, err := client.New(v.url, client.Options{Token: v.token, TLS: v.tls})
	require.NoError(v.t, err)
	return c
}

// stop shuts the appliance down with scripts/qemu/stop and waits for run
// to return; both must succeed.
func (v *vm) stop() {
	v.t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(v.t), "scripts/qemu/stop"), "--port", fmt.Sprint(v.port))
	cmd.Env = append(os.Environ(), "TARSTORE_QEMU_STATE="+v.state)
	out, err := cmd.CombinedOutput()
	require.NoError(v.t, err, "scripts/qemu/stop: %s", out)
	require.NoError(v.t, v.wait(time.Minute), "scripts/qemu/run after the shutdown")
	require.Contains(v.t, v.console.String(), "tarstore: powering off")
}

// errRunning is wait's error when run did not return in time.
var errRunning = errors.New("scripts/qemu/run is still running")

// monitor sends one command to the VM's QEMU monitor.
func (v *vm) monitor(cmd string) {
	v.t.Helper()
	c, err := net.Dial("unix", filepath.Join(v.state, fmt.Sprint(v.port), "monitor.sock"))
	require.NoError(v.t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// readUntil reads until the output holds s: the monitor takes input
	// once it showed its prompt, and runs a command once it echoed it
	// (closing the connection earlier may drop the command).
	var out []byte
	readUntil := func(s string) {
		buf := make([]byte, 4096)
		for !bytes.Contains(out, []byte(s)) {
			n, err := c.Read(buf)
			require.NoError(v.t, err, "the QEMU monitor said: %q", out)
			out = append(out, buf[:n]...)
		}
	}
	readUntil("(qemu) ")
	_, err = c.Write([]byte(cmd + "\n"))
	require.NoError(v.t, err)
	out = nil
	readUntil("(qemu) ") // the next prompt: the command ran
}

// wait waits up to d for run to return and returns its error (errRunning
// when it did not).
func (v *vm) wait(d time.Duration) error {
	select {
	case err := <-v.done:
		v.done <- err
		return err
	case <-time.After(d):
		return fmt.Errorf("%w after %v", errRunning, d)
	}
}

// kill cuts the power: QEMU is killed with SIGKILL, then run returns.
func (v *vm) kill() {
	if b, err := os.ReadFile(filepath.Join(v.state, fmt.Sprint(v.port), "qemu.pid")); err == nil {
		var pid int
		fmt.Sscan(string(b), &pid)
		if p, err := os.FindProcess(pid); err == nil && pid > 0 {
			p.Kill()
		}
	}
	if errors.Is(v.wait(30*time.Second), errRunning) {
		v.cmd.Process.Kill()
		v.wait(30 * time.Second)
	}
}

// newImage creates a formatted image of size bytes.
func newImage(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	require.NoError(t, file.Create(path, size))
	dev, err := file.Open(path, file.Options{})
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(dev))
	require.NoError(t, dev.Close())
	return path
}

// storeContents opens the image read-only on the host and returns every
// value, after kvtar's Check found no problem.
func storeContents(t *testing.T, img string) map[string][]byte {
	t.Helper()
	dev, err := file.Open(img, file.Options{ReadOnly: true})
	require.NoError(t, err)
	s, err := kvtar.New(clock.System{}, dev)
	require.NoError(t, err)
	defer s.Close()
	probs, err := s.Check()
	require.NoError(t, err)
	require.Empty(t, probs, "kvtar's check of the image on the host")
	out := map[string][]byte{}
	var walk func(k kv.Key)
	walk = func(k kv.Key) {
		es, err := s.List(k)
		require.NoError(t, err)
		for _, e := range es {
			if e.Kind == kv.Dictionary {
				walk(e.Key)
				continue
			}
			v, err := s.Get(e.Key)
			require.NoError(t, err)
			out[e.Key.String()] = v
		}
	}
	walk(kv.Root)
	return out
}

// checkWithTools reads the image with GNU tar, bsdtar and Go's archive/tar:
// no tool complains, and extraction (later members replacing earlier
// ones) gives want.
func checkWithTools(t *testing.T, img string, want map[string][]byte) {
	t.Helper()
	for _, tool := range [][]string{{"tar", "-tvf", img}, {"bsdtar", "-tvf", img}} {
		var stderr bytes.Buffer
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Run(), "%s: %s", tool[0], stderr.String())
		require.Empty(t, stderr.String(), "%s printed on stderr", tool[0])
	}
	dir := t.TempDir()
	var stderr bytes.Buffer
	cmd := exec.Command("tar", "-x", "-C", dir, "-f", img)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), "tar -x: %s", stderr.String())
	require.Empty(t, stderr.String(), "tar -x printed on stderr")
	got := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		got["/"+filepath.ToSlash(strings.TrimPrefix(p, dir+"/"))] = b
		return err
	}))
	require.Equal(t, keys(want), keys(got), "tar -x extracts the store's values")
	for k, v := range want {
		require.True(t, bytes.Equal(v, got[k]), "tar -x: %s differs", k)
	}

	f, err := os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(bufio.NewReader(f))
	goGot := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "archive/tar")
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			goGot["/"+h.Name] = b
		}
	}
	require.Equal(t, keys(want), keys(goGot), "archive/tar reads the store's values")
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// runCmd runs a command and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
