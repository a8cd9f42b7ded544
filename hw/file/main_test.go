//go:build linux

package file

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// lockHelperEnv makes the test binary act as a second process holding a
// device open: "PATH" (writable) or "ro:PATH" (read-only).
const lockHelperEnv = "TARSTORE_FILE_LOCK_HELPER"

func TestMain(m *testing.M) {
	if arg, ok := os.LookupEnv(lockHelperEnv); ok {
		os.Exit(lockHelper(arg))
	}
	code := m.Run()
	removeBenchFile()
	os.Exit(code)
}

// lockHelper opens the device, reports "locked" on stdout and holds the
// device until stdin reaches EOF.
func lockHelper(arg string) int {
	opts := Options{}
	path, ro := strings.CutPrefix(arg, "ro:")
	opts.ReadOnly = ro
	d, err := Open(path, opts)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	d.Close()
	return 0
}

// holdInOtherProcess opens path in a child process and returns once the
// child holds it; the child exits when the test ends.
func holdInOtherProcess(t *testing.T, path string, readOnly bool) {
	t.Helper()
	arg := path
	if readOnly {
		arg = "ro:" + path
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: a -race binary otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+arg, "GORACE=atexit_sleep_ms=0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock helper: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock helper said %q (%v)", line, err)
	}
}
