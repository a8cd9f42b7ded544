package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
)

// curl runs the real curl binary with args and returns its standard
// output. It fails the test, naming the Debian package, when curl is not
// installed.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is not installed: install the Debian package \"curl\" (apt-get install -y curl): %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, append([]string{"-sS"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "curl %s: %s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// TestCurl drives the API with the real curl, as a user of the appliance
// would: PUT a file, GET it back whole and in part, HEAD, DELETE, errors.
func TestCurl(t *testing.T) {
	e := newEnv(t, httpapi.Options{Token: "tok"})
	auth := "Authorization: Bearer tok"
	base := e.srv.URL
	dir := t.TempDir()

	// A file large enough for curl to ask for 100 Continue (over 1 MiB).
	data := make([]byte, 1<<20+12345)
	rand.NewChaCha8([32]byte{1, 2}).Read(data)
	in := filepath.Join(dir, "in.bin")
	require.NoError(t, os.WriteFile(in, data, 0o644))
	sum := sha256.Sum256(data)
	tag := `"` + hex.EncodeToString(sum[:]) + `"`

	code := curl(t, "-H", auth, "-X", "PUT", "--data-binary", "@"+in, "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/files/in%20put.bin")
	assert.Equal(t, "201", code)
	code = curl(t, "-H", auth, "-T", in, "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/files/in%20put.bin")
	assert.Equal(t, "204", code, "curl -T replaces it")

	out := filepath.Join(dir, "out.bin")
	code = curl(t, "-H", auth, "-o", out, "-w", "%{http_code}", base+"/v1/kv/files/in%20put.bin")
	assert.Equal(t, "200", code)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the file came back different")

	// Range.
	part := curl(t, "-H", auth, "-r", "1000-1099", base+"/v1/kv/files/in%20put.bin")
	assert.Equal(t, string(data[1000:1100]), part)
	code = curl(t, "-H", auth, "-r", "99999999-", "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/files/in%20put.bin")
	assert.Equal(t, "416", code)

	// HEAD.
	head := curl(t, "-H", auth, "-I", base+"/v1/kv/files/in%20put.bin")
	assert.Contains(t, head, "HTTP/1.1 200 OK")
	assert.Regexp(t, `(?i)x-tarstore-kind: value\r\n`, head)
	assert.Regexp(t, `(?i)content-length: 1060921\r\n`, head)
	assert.Regexp(t, `(?i)etag: `+tag+`\r\n`, head)
	assert.Regexp(t, `(?i)last-modified: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n`, head)

	// A conditional GET: If-None-Match with the tag gives 304.
	code = curl(t, "-H", auth, "-H", "If-None-Match: "+tag, "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/files/in%20put.bin")
	assert.Equal(t, "304", code)

	// Listing.
	var lb httpapi.ListBody
	require.NoError(t, json.Unmarshal([]byte(curl(t, "-H", auth, base+"/v1/kv/files?list")), &lb))
	assert.Equal(t, []httpapi.ListEntry{{Key: "/files/in put.bin", Kind: "value", Size: ptr(int64(len(data)))}}, lb.Entries)

	// DELETE, then the error JSON of a GET.
	code = curl(t, "-H", auth, "-X", "DELETE", "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/files")
	assert.Equal(t, "204", code)
	body := curl(t, "-H", auth, "-w", "\n%{http_code}", base+"/v1/kv/files/in%20put.bin")
	js, status, _ := strings.Cut(body, "\n\n") // the JSON ends with a newline
	assert.Equal(t, "404", status)
	assert.JSONEq(t, `{"error":{"code":"not_found","key":"/files/in put.bin","message":"Cannot find the key /files/in put.bin","op":"get"}}`, js)

	// No token: 401; a key with ".." sent as is: 400 invalid_key.
	code = curl(t, "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/x")
	assert.Equal(t, "401", code)
	body = curl(t, "-H", auth, "--path-as-is", "-X", "PUT", "--data-binary", "x", "-w", "\n%{http_code}", base+"/v1/kv/a/../b")
	assert.True(t, strings.HasSuffix(body, "\n400"), "%q", body)
	assert.Contains(t, body, `"code":"invalid_key"`)

	// Allocate, rename and patch.
	code = curl(t, "-H", auth, "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/z?allocate=4K")
	assert.Equal(t, "201", code)
	code = curl(t, "-H", auth, "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/z?rename-to=/y")
	assert.Equal(t, "204", code)
	code = curl(t, "-H", auth, "-X", "PATCH", "--data-binary", "abc", "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/kv/y?offset=4094")
	assert.Equal(t, "204", code)
	v, err := e.value("/y")
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("\x00", 4094)+"abc", v)

	// Health needs no token; status and metrics do.
	assert.Equal(t, "ok\n", curl(t, base+"/healthz"))
	assert.Contains(t, curl(t, "-H", auth, base+"/metrics"), `tarstore_requests_total{op="set",code="201"} 1`)
	var st httpapi.Status
	require.NoError(t, json.Unmarshal([]byte(curl(t, "-H", auth, base+"/v1/status")), &st))
	assert.Positive(t, st.Free)
}

func ptr[T any](v T) *T { return &v }

// TestCurlChunkedTar: `tar c dir | curl -T - URL` stores the stream (curl
// sends it chunked, of unknown length): the value is the archive's bytes,
// which tar lists again; a second upload replaces it.
func TestCurlChunkedTar(t *testing.T) {
	for _, tool := range []string{"curl", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: install the Debian package %q (apt-get install -y %s)", tool, tool, tool)
		}
	}
	e := kvtarEnv(t, 32<<20, httpapi.Options{Token: "tok"})
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	rng := rand.NewChaCha8([32]byte{3})
	for name, size := range map[string]int{"a.bin": 1<<20 + 5, "sub/b.bin": 2 << 20, "sub/c.txt": 10} {
		b := make([]byte, size)
		rng.Read(b)
		require.NoError(t, os.WriteFile(filepath.Join(src, name), b, 0o644))
	}
	sent := filepath.Join(dir, "sent.tar")
	for _, want := range []string{"201", "204"} {
		// tee keeps what curl was given, to compare.
		cmd := exec.Command("bash", "-c", `set -o pipefail; tar -C "$1" -c . | tee "$2" | curl -sS -T - -H "Authorization: Bearer tok" -o /dev/null -w '%{http_code}' "$3"`,
			"bash", src, sent, e.srv.URL+"/v1/kv/backups/src.tar")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, want, string(out))
	}
	tarball, err := os.ReadFile(sent)
	require.NoError(t, err)
	require.Greater(t, len(tarball), 3<<20)
	got, err := e.value("/backups/src.tar")
	require.NoError(t, err)
	require.True(t, bytes.Equal(tarball, []byte(got)), "the stored value differs from the stream")

	back := filepath.Join(dir, "back.tar")
	curl(t, "-H", "Authorization: Bearer tok", "-o", back, e.srv.URL+"/v1/kv/backups/src.tar")
	list, err := exec.Command("tar", "-tf", back).CombinedOutput()
	require.NoError(t, err, "%s", list)
	assert.Contains(t, string(list), "./sub/b.bin")
	kind, err := e.store.Exists(httpapi.UploadDir)
	require.NoError(t, err)
	assert.Equal(t, "none", kind.String(), "pieces left behind")
}
