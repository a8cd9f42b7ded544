package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/kvtar"
)

// TestTruncatedImage: an image cut below the smallest store is corrupt
// (exit 10) with its size in the message, for every command that opens it,
// not kvtar's invalid_argument (exit 9).
func TestTruncatedImage(t *testing.T) {
	r, img := disk(t, 1*mib)
	r.ok("hello", "put", "/a")
	require.NoError(t, os.Truncate(img, 1500))
	want := fmt.Sprintf("tarstore: open %s: the disk holds 1500 bytes (1024 bytes in whole sectors), "+
		"less than the smallest store (%d bytes): it is truncated, or not a tarstore disk (corrupt)\n", img, kvtar.MinDeviceSize)
	for _, args := range [][]string{{"ls"}, {"stat", "/a"}, {"get", "/a"}, {"put", "/b"}, {"check"}, {"check", "--repair"}, {"bench"}} {
		res := r.run("x", args...)
		assert.Equal(t, ExitStorage, res.code, "%q: %s", args, res.stderr)
		assert.Equal(t, want, res.stderr, "%q", args)
	}
	res := r.run("", "check", "--json")
	assert.Equal(t, ExitStorage, res.code)
	assert.Contains(t, res.stdout, `"fatal": true`)
	assert.Contains(t, res.stdout, "less than the smallest store")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb strings.Builder
	code := Run(Env{Stderr: &errb, Context: ctx}, []string{"serve", "--disk", img, "--listen", "127.0.0.1:0"})
	assert.Equal(t, ExitStorage, code)
	assert.Equal(t, want, errb.String())
}
