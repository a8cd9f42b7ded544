package tarfmt

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The tests run the real readers. Each must be installed; the message
// names the Debian package that provides it.
var toolPackages = map[string]string{
	"tar":     "tar",
	"bsdtar":  "libarchive-tools",
	"python3": "python3",
}

// needTool fails the test unless the command is installed (GNU tar for
// "tar").
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is required: install the Debian package %s (apt-get install -y %s)",
			name, toolPackages[name], toolPackages[name])
	}
	if name == "tar" {
		out, err := exec.Command("tar", "--version").Output()
		if err != nil || !bytes.Contains(out, []byte("GNU tar")) {
			t.Fatalf("tar is not GNU tar: install the Debian package tar")
		}
	}
}

// run runs a reader in the UTF-8 C locale, in UTC, and returns its stdout
// and stderr.
func run(t testing.TB, stdin []byte, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	needTool(t, name)
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "TZ=UTC", "PYTHONIOENCODING=utf-8:surrogateescape")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestToolsPresent states which commands the reader tests need.
func TestToolsPresent(t *testing.T) {
	for name := range toolPackages {
		needTool(t, name)
	}
	if out, _, err := run(t, nil, "bsdtar", "--version"); err != nil || !strings.Contains(out, "libarchive") {
		t.Fatalf("bsdtar --version: %q %v", out, err)
	}
}
