package boot

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocListsTheSteps: the package doc lists Steps in order, each with
// whether it is fatal.
func TestDocListsTheSteps(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^//\s*(\d+)\. "([^"]+)" \((fatal|not fatal)\)`)
	var got []string
	for i, m := range re.FindAllStringSubmatch(string(src), -1) {
		require.Equal(t, i+1, atoi(t, m[1]), "the doc's steps are numbered in order")
		got = append(got, m[2]+"/"+m[3])
	}
	var want []string
	for _, st := range Steps {
		f := "not fatal"
		if st.Fatal {
			f = "fatal"
		}
		want = append(want, st.Name+"/"+f)
	}
	assert.Equal(t, want, got)
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestRun: steps run in order; a step that is not fatal and fails prints a
// warning and the boot goes on; the first fatal failure (a panic too) ends
// the run with a *StepError naming the step, and no later step runs.
func TestRun(t *testing.T) {
	var ran []string
	step := func(name string, fatal bool, err error) Step {
		return Step{name, fatal, func(*Booter) error { ran = append(ran, name); return err }}
	}
	var console bytes.Buffer
	b := &Booter{Console: &console}
	err := b.Run([]Step{
		step("one", true, nil),
		step("two", false, errors.New("no such module")),
		step("three", true, nil),
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two", "three"}, ran)
	assert.Equal(t, "tarstore: boot: two: no such module (going on)\n", console.String())

	ran, console = nil, bytes.Buffer{}
	b = &Booter{Console: &console}
	boom := errors.New("boom")
	err = b.Run([]Step{step("one", true, nil), step("two", true, boom), step("three", true, nil)})
	var se *StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "two", se.Step)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, []string{"one", "two"}, ran)

	ran = nil
	b = &Booter{Console: &console}
	require.NoError(t, b.Run([]Step{step("one", true, nil), step("probe", true, errDone), step("three", true, nil)}),
		"a step that did all there was to do ends the boot with no error")
	assert.Equal(t, []string{"one", "probe"}, ran)

	b = &Booter{Console: &console}
	err = b.Run([]Step{{"panics", true, func(*Booter) error { panic("bad state") }}, step("after", true, nil)})
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "panics", se.Step)
	assert.Contains(t, err.Error(), "panic: bad state")
}

// TestCmdline: the steps' defaults come before the kernel command line
// (which overrides them) and their decisions after it.
func TestCmdline(t *testing.T) {
	b := &Booter{Cmdline: `console=ttyS0 tarstore.listen=127.0.0.1:80 tarstore.read-only`}
	b.defaults = append(b.defaults, "tarstore.listen="+DefaultListen, "tarstore.max-conns=9")
	b.decided = append(b.decided, "tarstore.disk=/dev/vda")
	p := b.params()
	assert.Equal(t, "127.0.0.1:80", p["tarstore.listen"])
	assert.Equal(t, "9", p["tarstore.max-conns"])
	assert.Equal(t, "/dev/vda", p["tarstore.disk"])
	assert.Equal(t, "true", p["tarstore.read-only"])
	assert.True(t, strings.HasPrefix(b.cmdline(), "tarstore.listen=0.0.0.0:7070 "))
}

// TestLoadModulesReportsFailures: a list naming a file that is not a
// module reports it (the step is not fatal); a missing list is no error.
func TestLoadModulesReportsFailures(t *testing.T) {
	dir := t.TempDir()
	list := dir + "/modules.load"
	require.NoError(t, os.WriteFile(list, []byte("# comment\n\n"+dir+"/missing.ko\n"), 0o644))
	var w bytes.Buffer
	err := loadModules(list, &w)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.ko")
	assert.Contains(t, w.String(), "0 kernel modules loaded")
	require.NoError(t, loadModules(dir+"/none", &w))
}

// TestTLSFromFwCfg: the certificate and key QEMU passed are kept (the key
// mode 0600) and become tarstore.tls-cert and tarstore.tls-key; without
// them nothing changes; one without the other is an error.
func TestTLSFromFwCfg(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()+"/run/tarstore"
	certSrc, keySrc := src+"/tls-cert", src+"/tls-key"
	certDst, keyDst := dst+"/tls-cert.pem", dst+"/tls-key.pem"

	b := &Booter{}
	require.NoError(t, b.tlsFrom(certSrc, keySrc, certDst, keyDst))
	assert.Empty(t, b.decided, "no fw_cfg files: plain HTTP")

	require.NoError(t, os.WriteFile(certSrc, []byte("CERT PEM"), 0o444))
	require.ErrorIs(t, b.tlsFrom(certSrc, keySrc, certDst, keyDst), ErrHalfTLS)
	assert.Empty(t, b.decided)

	require.NoError(t, os.WriteFile(keySrc, []byte("KEY PEM"), 0o444))
	require.NoError(t, b.tlsFrom(certSrc, keySrc, certDst, keyDst))
	p := b.params()
	assert.Equal(t, certDst, p["tarstore.tls-cert"])
	assert.Equal(t, keyDst, p["tarstore.tls-key"])
	for file, want := range map[string]string{certDst: "CERT PEM", keyDst: "KEY PEM"} {
		got, err := os.ReadFile(file)
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
	fi, err := os.Stat(keyDst)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the key is readable by PID 1 only")
}
