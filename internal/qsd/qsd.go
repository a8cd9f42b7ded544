// Package qsd runs qemu-storage-daemon for tests and benchmarks: it exports
// a disk image as a vhost-user-blk unix socket, the back-end that
// hw/virtio's vhost-user transport talks to (see the hardware notes: the
// command line below is the one measured to work with QEMU 7.2).
package qsd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/internal/testenv"
)

// Daemon is a running qemu-storage-daemon exporting Image on Sock.
type Daemon struct {
	Sock      string // the vhost-user socket
	Image     string // the exported image
	BlockSize int    // logical block size of the export
	log       string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// SocketDir returns a directory for a socket: t.TempDir() unless its path
// is too long for sun_path (108 bytes), else a short one under os.TempDir.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 {
		var err error
		if dir, err = os.MkdirTemp("", "qsd"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir
}

// Start exports image (which must exist) writable with the given logical
// block size on a socket in a fresh directory, and waits until the socket
// exists. The daemon is killed when the test ends; its log is printed if
// the test failed. A machine without qemu-storage-daemon follows
// testenv.Need's policy.
func Start(t testing.TB, image string, blockSize int) *Daemon {
	t.Helper()
	d := &Daemon{Image: image, BlockSize: blockSize}
	dir := SocketDir(t)
	d.Sock = filepath.Join(dir, "blk.sock")
	d.log = filepath.Join(dir, "qsd.log")
	d.start(t)
	return d
}

// Restart starts the daemon again on the same socket and image after Kill.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	os.Remove(d.Sock)
	d.start(t)
}

func (d *Daemon) start(t testing.TB) {
	t.Helper()
	bin, err := exec.LookPath("qemu-storage-daemon")
	if err != nil {
		testenv.Need(t, "qemu-storage-daemon (Debian package qemu-system-common)")
	}
	cache := "cache.direct=on,aio=native"
	if !DirectIOWorks(d.Image) {
		cache = "cache.direct=off,aio=threads"
	}
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.exited = make(chan struct{})
	d.cmd = exec.Command(bin,
		"--blockdev", "driver=file,node-name=file0,filename="+d.Image+","+cache,
		"--blockdev", "driver=raw,node-name=disk0,file=file0",
		"--export", fmt.Sprintf("type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=%s,writable=on,logical-block-size=%d", d.Sock, d.BlockSize))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := d.cmd, d.exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("qemu-storage-daemon log:\n%s", d.LogText())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(d.Sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		if !d.Alive() {
			t.Fatalf("qemu-storage-daemon exited (%v) before creating its socket:\n%s", d.cmd.ProcessState, d.LogText())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket %s after 10s:\n%s", d.Sock, d.LogText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Alive reports whether the daemon process is still running.
func (d *Daemon) Alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// Kill kills the daemon with SIGKILL and waits for it to exit.
func (d *Daemon) Kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// LogText returns what the daemon wrote to stdout and stderr.
func (d *Daemon) LogText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// DirectIOWorks reports whether path's file system accepts O_DIRECT (tmpfs
// does not).
func DirectIOWorks(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}
