package tarfmt

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTag: a tagged ustar header reads back its tag, keeps a valid
// checksum, and Go's archive/tar reads the member as before (the other
// readers are checked on the store's archives by the kvtar interop tests).
func TestTag(t *testing.T) {
	data := []byte("hello, tag")
	hdr, err := EncodeHeader(Header{Name: "dir/file", Size: int64(len(data)), ModTime: time.Unix(1e9, 0), Typeflag: TypeReg, Mode: 0o644})
	require.NoError(t, err)
	require.Len(t, hdr, BlockSize)
	var b Block
	copy(b[:], hdr)
	_, ok := GetTag(&b)
	require.False(t, ok, "an untagged header")
	tag := Tag{DataCRC: DataCRC(data), Chain: 0xdeadbeef}
	require.True(t, SetTag(&b, tag))
	got, ok := GetTag(&b)
	require.True(t, ok)
	require.Equal(t, tag, got)
	require.True(t, b.ChecksumOK())
	require.Equal(t, FormatUSTAR, b.Format())

	var arch bytes.Buffer
	arch.Write(b[:])
	arch.Write(data)
	arch.Write(Padding(int64(len(data))))
	arch.Write(EndOfArchive())
	tr := tar.NewReader(&arch)
	h, err := tr.Next()
	require.NoError(t, err)
	require.Equal(t, "dir/file", h.Name)
	v, err := io.ReadAll(tr)
	require.NoError(t, err)
	require.Equal(t, data, v)
	_, err = tr.Next()
	require.ErrorIs(t, err, io.EOF)

	// Not a ustar header: no tag.
	var gnu Block
	copy(gnu[:], hdr)
	copy(gnu[257:265], "ustar  \x00")
	require.False(t, SetTag(&gnu, tag))
}
