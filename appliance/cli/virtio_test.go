package cli

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/internal/qsd"
)

// TestServeVhostUser serves a store through the userspace virtio-blk
// driver on a qemu-storage-daemon export, puts and gets through the CLI as
// a client would, and checks the image with GNU tar and bsdtar.
func TestServeVhostUser(t *testing.T) {
	img := newImage(t, 64<<20)
	d := qsd.Start(t, img, 512)
	addr, stop := serve(t, "", "--virtio", "vhost-user:"+d.Sock)
	c := runner{t: t, prefix: []string{"--remote", "http://" + addr}}
	res := c.run("hello over virtio\n", "put", "greetings/hello.txt", "-")
	require.Equal(t, 0, res.code, res.stderr)
	res = c.run("", "get", "greetings/hello.txt")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, "hello over virtio\n", res.stdout)
	res = c.run("", "df", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "virtio")
	code, log := stop()
	require.Equal(t, 0, code, log)
	assert.Contains(t, log, "tarstore: serving virtio vhost-user:"+d.Sock)
	for _, tool := range []string{"tar", "bsdtar"} {
		out, err := exec.Command(tool, "-xOf", img, "greetings/hello.txt").CombinedOutput()
		require.NoError(t, err, "%s: %s", tool, out)
		assert.Equal(t, "hello over virtio\n", string(out), tool)
		list, err := exec.Command(tool, "-tf", img).CombinedOutput()
		require.NoError(t, err, "%s: %s", tool, list)
		assert.True(t, strings.Contains(string(list), "greetings/hello.txt"), "%s lists %s", tool, list)
	}
}
