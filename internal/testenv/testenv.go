// Package testenv holds what tests of several packages need from the test
// machine: the CI policy for missing capabilities, and loop devices.
//
// The policy: in CI (CI=true) a capability a test needs that the machine
// lacks is a failure, never a skip — scripts/test.sh installs what the
// tests need, so a gap there is a bug. Elsewhere (a developer's machine
// without root, say) the test is skipped with the reason.
package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI, where missing capabilities
// fail tests instead of skipping them.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need fails t in CI, and skips it elsewhere, when missing is not empty:
// the name of what the machine lacks for the test.
func Need(t testing.TB, missing string) {
	t.Helper()
	if missing == "" {
		return
	}
	if InCI() {
		t.Fatalf("this test needs %s (CI=true, not skipping)", missing)
	}
	t.Skipf("this test needs %s", missing)
}

// NeedLoop checks that loop devices can be set up: root, /dev/loop-control,
// losetup and blockdev (Need's policy when not).
func NeedLoop(t testing.TB) {
	t.Helper()
	missing := ""
	switch {
	case os.Geteuid() != 0:
		missing = "root (for loop devices)"
	default:
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			missing = "/dev/loop-control"
			break
		}
		for _, tool := range []string{"losetup", "blockdev"} {
			if _, err := exec.LookPath(tool); err != nil {
				missing = tool + " (Debian package util-linux)"
			}
		}
	}
	Need(t, missing)
}

// LoopDevice attaches file to a new loop device with the given logical
// sector size and direct I/O, detaches it when the test ends, and returns
// its path. Extra losetup arguments (such as --read-only) go before the
// file.
func LoopDevice(t testing.TB, file string, sectorSize int, extra ...string) string {
	t.Helper()
	NeedLoop(t)
	args := append([]string{"--find", "--show", "--sector-size", strconv.Itoa(sectorSize), "--direct-io=on"}, extra...)
	out, err := exec.Command("losetup", append(args, file)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %v: %v: %s", args, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}
