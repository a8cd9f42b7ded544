package boot_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/internal/testcert"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// TestVMServesHTTPS boots the appliance with scripts/qemu/run --tls-cert
// and --tls-key (a certificate made here for 127.0.0.1, its own CA): run
// prints an https:// URL, the forwarded port speaks HTTPS — kvtest's
// stress test through the Go client given the CA, a put and a get through
// the CLI with --ca-cert — and refuses plain HTTP; a client that does not
// trust the certificate gets a certificate error; scripts/qemu/stop shuts
// it down through the API over HTTPS.
func TestVMServesHTTPS(t *testing.T) {
	// For 127.0.0.1, the forwarded port's address; its own CA.
	cert := testcert.New(t, "tarstore VM test")
	certFile, keyFile := cert.CertFile, cert.KeyFile
	state := t.TempDir()
	img := newImage(t, 32<<20)
	v := bootVM(t, state, img, "--tls-cert", certFile, "--tls-key", keyFile)
	t.Logf("boot to serving (QEMU start to /healthz over HTTPS): %v", v.booted.Round(10*time.Millisecond))
	require.Contains(t, v.console.String(), fmt.Sprintf("API on https://127.0.0.1:%d,", v.port))
	require.Contains(t, v.console.String(), "tarstore: serving /dev/vda on https://")

	kvtest.StressSeeds(t, 1, func(t *testing.T, seed uint64) {
		kvtest.Stress(t, kvtest.StressConfig{
			Open: func(testing.TB) kv.RW {
				c := v.client()
				require.NoError(t, c.Remove(kv.Root))
				return c
			},
			Reopen: func(_ testing.TB, s kv.RW) kv.RW {
				require.NoError(t, s.Close())
				return v.client()
			},
			Writers: 2,
			Ops:     40,
			Seed:    seed,
		})
	})

	// The CLI, as a user would run it against the VM.
	img0, err := prebuilt()
	require.NoError(t, err)
	tokenFile := filepath.Join(state, fmt.Sprint(v.port), "token")
	cli := func(stdin string, args ...string) string {
		cmd := exec.Command(filepath.Join(filepath.Dir(img0), "tarstore"),
			append(args, "--remote", v.url, "--ca-cert", certFile, "--token-file", tokenFile)...)
		cmd.Stdin = bytes.NewBufferString(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "tarstore %v: %s", args, out)
		return string(out)
	}
	cli("over HTTPS in the VM", "put", "/cli/greeting", "-")
	require.Equal(t, "over HTTPS in the VM", cli("", "get", "/cli/greeting"))

	// Without the CA: the certificate is named as the problem.
	c, err := client.New(v.url, client.Options{Token: v.token})
	require.NoError(t, err)
	_, err = c.Get(kv.MustKey("/cli/greeting"))
	var ce *client.CertificateError
	require.True(t, errors.As(err, &ce), "a client without the CA: %v", err)
	c.Close()

	// Plain HTTP to the forwarded port gets no answer of the API: Go's
	// TLS server answers 400 to a request in clear, or the connection
	// fails.
	plain := &http.Client{Timeout: 10 * time.Second}
	resp, err := plain.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", v.port))
	if err == nil {
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP served on the HTTPS port")
		t.Logf("plain HTTP: %s", resp.Status)
	} else {
		t.Logf("plain HTTP: %v", err)
	}

	v.stop()
	require.NotContains(t, v.console.String(), "tarstore: shutdown requested by a signal",
		"scripts/qemu/stop shut it down through the API over HTTPS, not Ctrl-Alt-Del")
	want := storeContents(t, img)
	require.Equal(t, "over HTTPS in the VM", string(want["/cli/greeting"]))
	checkWithTools(t, img, want)
}
