package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServeCreatesImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "tarstore.img")
	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run([]string{"serve", "--disk", img}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "created "+img)
	st, err := os.Stat(img)
	require.NoError(t, err)
	assert.EqualValues(t, defaultImageSize, st.Size())

	out.Reset()
	require.Equal(t, exitOK, run([]string{"serve", "--disk", img}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "opened "+img)
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, exitUsage, run(nil, &out, &errb))
	assert.Equal(t, exitUsage, run([]string{"frobnicate"}, &out, &errb))
	assert.Contains(t, errb.String(), `unknown command "frobnicate"`)
	assert.Equal(t, exitUsage, run([]string{"serve", "extra"}, &out, &errb))
	assert.Equal(t, exitOK, run([]string{"help"}, &out, &errb))
	assert.Contains(t, out.String(), "usage: tarstore")
}
