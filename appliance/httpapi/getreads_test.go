package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar"
)

// readCounter is an hw.Block that counts the reads passed to the device it
// wraps.
type readCounter struct {
	hw.Block
	reads atomic.Int64
}

func (d *readCounter) Unwrap() hw.Block { return d.Block }

func (d *readCounter) Read(lba uint64, bufs ...[]byte) error {
	d.reads.Add(1)
	return d.Block.Read(lba, bufs...)
}

// TestSmallGetOneDeviceRead: a GET of a small value of the tar store,
// with its ETag, reads the device once — the digest is the store's, not a
// second read of the value.
func TestSmallGetOneDeviceRead(t *testing.T) {
	m, err := mem.New(512, (8<<20)/512)
	require.NoError(t, err)
	require.NoError(t, kvtar.Format(m))
	dev := &readCounter{Block: m}
	clk := clock.NewFake(t0)
	st, err := kvtar.New(clk, dev)
	require.NoError(t, err)
	e := serveStore(t, clk, st, httpapi.Options{})
	v := strings.Repeat("4 KiB value. ", 4096/13+1)[:4096]
	sum := sha256.Sum256([]byte(v))
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	for _, key := range []string{"a", "b/c"} {
		r := e.put("/v1/kv/"+key, v)
		require.Less(t, r.code, 300, "PUT: %s", r.body)
		for i := range 3 {
			before := dev.reads.Load()
			r = e.get("/v1/kv/" + key)
			require.Equal(t, 200, r.code)
			assert.Equal(t, v, r.body)
			assert.Equal(t, etag, r.hdr.Get("ETag"))
			assert.Equal(t, int64(1), dev.reads.Load()-before, "device reads of GET %d of /%s", i, key)
		}
	}
}
