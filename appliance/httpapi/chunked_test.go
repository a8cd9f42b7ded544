package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// chunkedBody is a body of unknown length: net/http sends it chunked.
func chunkedBody(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// uploadsLeft reports whether anything is staged under httpapi.UploadDir.
func uploadsLeft(t *testing.T, st kv.RO) bool {
	t.Helper()
	kind, err := st.Exists(httpapi.UploadDir)
	require.NoError(t, err)
	return kind != kv.None
}

// TestPutChunked: a PUT without Content-Length stores its body whole,
// whether it fits in one piece or is staged in several, with the ETag of
// what was stored, and leaves no piece behind.
func TestPutChunked(t *testing.T) {
	e := kvtarEnv(t, 4<<20, httpapi.Options{UploadPiece: 4096})
	for i, size := range []int{0, 100, 4096, 4097, 3*4096 + 17, 64 << 10} {
		data := randomBytes(size, byte(i))
		r := e.do("PUT", "/v1/kv/up/v", chunkedBody(data))
		want := http.StatusNoContent
		if i == 0 {
			want = http.StatusCreated
		}
		require.Equal(t, want, r.code, "size %d: %s", size, r.body)
		assert.Equal(t, etag(string(data)), r.hdr.Get("ETag"), "size %d", size)
		got, err := e.store.Get(kv.MustKey("/up/v"))
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, got), "size %d: the value differs from the body", size)
		assert.False(t, uploadsLeft(t, e.store), "size %d: pieces left behind", size)
	}
	// ?no-digest: no ETag, the same bytes.
	r := e.do("PUT", "/v1/kv/up/w?no-digest", chunkedBody(randomBytes(10000, 9)))
	require.Equal(t, http.StatusCreated, r.code, r.body)
	assert.Empty(t, r.hdr.Get("ETag"))
	// Preconditions hold as for any PUT.
	r = e.do("PUT", "/v1/kv/up/w", chunkedBody(randomBytes(10000, 9)), "If-None-Match", "*")
	r.wantError(t, http.StatusPreconditionFailed, "precondition_failed", "/up/w")
}

// TestPutChunkedInterrupted: a chunked upload whose client goes away
// after several pieces were staged changes nothing: the old value stays
// and the pieces are removed.
func TestPutChunkedInterrupted(t *testing.T) {
	e := kvtarEnv(t, 4<<20, httpapi.Options{UploadPiece: 4096})
	e.set("/k", "old")
	free, err := e.store.Free()
	require.NoError(t, err)

	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	_, err = io.WriteString(conn, "PUT /v1/kv/k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
	require.NoError(t, err)
	chunk := randomBytes(4096, 1)
	for range 3 {
		_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
		require.NoError(t, err)
	}
	// The pieces are staged while the body arrives ...
	require.Eventually(t, func() bool { return uploadsLeft(t, e.store) }, 10*time.Second, 5*time.Millisecond)
	// ... and gone, with nothing changed, once the client is.
	_, err = fmt.Fprintf(conn, "%x\r\n%s", len(chunk), chunk[:100]) // a chunk cut short
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	require.Eventually(t, func() bool { return !uploadsLeft(t, e.store) }, 10*time.Second, 5*time.Millisecond)
	v, err := e.value("/k")
	require.NoError(t, err)
	assert.Equal(t, "old", v)
	after, err := e.store.Free()
	require.NoError(t, err)
	assert.Equal(t, free, after, "the pieces' space was not given back")
}

// TestPutChunkedNoSpace: a chunked body that outgrows the free space is
// refused with 507 no_space and leaves nothing behind, whether it was
// held in memory or staged.
func TestPutChunkedNoSpace(t *testing.T) {
	for _, piece := range []int{8 << 10, 1 << 20} {
		e := kvtarEnv(t, 512<<10, httpapi.Options{UploadPiece: piece})
		free, err := e.store.Free()
		require.NoError(t, err)
		r := e.do("PUT", "/v1/kv/big", chunkedBody(randomBytes(int(free)+1, 2)))
		r.wantError(t, http.StatusInsufficientStorage, "no_space", "/big")
		assert.False(t, uploadsLeft(t, e.store), "piece %d: pieces left behind", piece)
		after, err := e.store.Free()
		require.NoError(t, err)
		assert.Equal(t, free, after, "piece %d", piece)
		// What fits twice (staged) or once (in memory) is stored.
		fits := randomBytes(int(free/3), 3)
		r = e.do("PUT", "/v1/kv/fits", chunkedBody(fits))
		require.Equal(t, http.StatusCreated, r.code, "piece %d: %s", piece, r.body)
		got, err := e.value("/fits")
		require.NoError(t, err)
		assert.True(t, bytes.Equal(fits, []byte(got)))
	}
}

// TestPutChunkedStalled: a chunked body that stalls after pieces were
// staged is cut with 408, like any body, and leaves nothing behind.
func TestPutChunkedStalled(t *testing.T) {
	e := kvtarEnv(t, 4<<20, httpapi.Options{UploadPiece: 4096, BodyTimeout: 200 * time.Millisecond, MinBodyRate: -1})
	chunk := randomBytes(3*4096, 4)
	resp, body, closed := e.stall(fmt.Sprintf("PUT /v1/kv/k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(chunk), chunk))
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, body)
	assert.True(t, closed)
	assert.False(t, uploadsLeft(t, e.store), "pieces left behind")
	kind, err := e.store.Exists(kv.MustKey("/k"))
	require.NoError(t, err)
	assert.Equal(t, kv.None, kind)
}

// TestPutChunkedPieceNoSpace: when a piece itself does not fit (the free
// space was misjudged), the error is the uploaded key's, and the pieces
// staged so far are removed.
func TestPutChunkedPieceNoSpace(t *testing.T) {
	e := kvtarEnv(t, 512<<10, httpapi.Options{UploadPiece: 32 << 10,
		Status: func() (httpapi.Status, error) { return httpapi.Status{Free: 1 << 40}, nil }})
	free, err := e.store.Free()
	require.NoError(t, err)
	r := e.do("PUT", "/v1/kv/big", chunkedBody(randomBytes(int(free)*2, 5)))
	d := r.wantError(t, http.StatusInsufficientStorage, "no_space", "/big")
	assert.Equal(t, "set", d.Op)
	assert.False(t, uploadsLeft(t, e.store), "pieces left behind")
	after, err := e.store.Free()
	require.NoError(t, err)
	assert.Equal(t, free, after)
}
