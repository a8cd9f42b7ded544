package kvtar

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// digestNoRead checks that the digest of k is the SHA-256 of its value and
// that Digest, and Digest of a reader of k, read nothing from the device.
func digestNoRead(t *testing.T, s *Store, pd *probeDev, k string, what string) {
	t.Helper()
	v, err := s.Get(kv.MustKey(k))
	require.NoError(t, err)
	want := sha256.Sum256(v)
	pd.take()
	d, err := s.Digest(kv.MustKey(k))
	require.NoError(t, err)
	assert.Equal(t, want[:], d, "%s: digest of %s", what, k)
	r, err := s.Open(kv.MustKey(k))
	require.NoError(t, err)
	d, err = r.(interface{ Digest() ([]byte, error) }).Digest()
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, want[:], d, "%s: digest of a reader of %s", what, k)
	assert.Empty(t, pd.take(), "%s: device reads of the digests of %s", what, k)
}

// TestDigestKeptByWrites: every write computes the digest of what it
// writes (up to digestInline bytes) or carries it, so that Digest reads
// nothing; in-place patches replace it.
func TestDigestKeptByWrites(t *testing.T) {
	s, pd, _ := probeStore(t, 3000)
	k := kv.MustKey
	digestNoRead(t, s, pd, "/v", "set")

	require.NoError(t, s.SetFrom(k("/stream"), bytes.NewReader(pattern(4, 300<<10)), 300<<10))
	digestNoRead(t, s, pd, "/stream", "set_from")

	require.NoError(t, s.SetPartial(k("/v"), 10, []byte("patched in place")))
	digestNoRead(t, s, pd, "/v", "set_partial in place")
	require.NoError(t, s.SetPartial(k("/v"), 2990, []byte("grows the value")))
	digestNoRead(t, s, pd, "/v", "set_partial by copy")
	require.NoError(t, s.SetPartial(k("/new"), 0, []byte("new value")))
	digestNoRead(t, s, pd, "/new", "set_partial of a new key")
	r, err := s.Open(k("/v"))
	require.NoError(t, err)
	require.NoError(t, s.SetPartial(k("/v"), 0, []byte("a reader holds it")))
	require.NoError(t, r.Close())
	digestNoRead(t, s, pd, "/v", "set_partial of a value a reader holds")

	require.NoError(t, s.Allocate(k("/zeros"), 100<<10, time.Time{}))
	digestNoRead(t, s, pd, "/zeros", "allocate")

	require.NoError(t, s.Rename(k("/v"), k("/w")))
	digestNoRead(t, s, pd, "/w", "rename in place")
	long := "/" + strings.Repeat("n", 150)
	require.NoError(t, s.Rename(k("/stream"), k(long)))
	digestNoRead(t, s, pd, long, "rename by copy")
	require.NoError(t, s.Set(k("/w"), []byte("replaced")))
	digestNoRead(t, s, pd, "/w", "set over a value")
}

// TestDigestLarge: a value larger than digestInline gets its digest from
// the first Digest, which reads it once; the next reads nothing; an
// in-place patch replaces it.
func TestDigestLarge(t *testing.T) {
	s, pd, v := probeStore(t, digestInline+5000)
	k := kv.MustKey("/v")
	pd.take()
	want := sha256.Sum256(v)
	d, err := s.Digest(k)
	require.NoError(t, err)
	assert.Equal(t, want[:], d)
	assert.NotEmpty(t, pd.take(), "the first digest reads the value")
	digestNoRead(t, s, pd, "/v", "large, computed once")

	require.NoError(t, s.SetPartial(k, 100, []byte("in place")))
	copy(v[100:], "in place")
	want = sha256.Sum256(v)
	d, err = s.Digest(k)
	require.NoError(t, err)
	assert.Equal(t, want[:], d, "the digest after an in-place patch of a large value")
	digestNoRead(t, s, pd, "/v", "large, patched")
}

// TestDigestAfterOpen: digests are not in the archive; after an open the
// first Digest of each value computes it (and verifies the CRC), the next
// reads nothing (as for the members of a foreign archive).
func TestDigestAfterOpen(t *testing.T) {
	s, pd0, _ := probeStore(t, 3000)
	require.NoError(t, s.Set(kv.MustKey("/d/a"), []byte("a")))
	require.NoError(t, s.Close())
	pd := &probeDev{Block: pd0.Block.(*mem.Device).Reopen(), release: make(chan struct{})}
	s2, err := New(clock.NewFake(time.Unix(2e9, 0)), pd)
	require.NoError(t, err)
	defer s2.Close()
	pd.take()
	_, err = s2.Digest(kv.Root)
	require.NoError(t, err)
	assert.NotEmpty(t, pd.take(), "the first digest after open reads the values")
	digestNoRead(t, s2, pd, "/v", "after open")
	digestNoRead(t, s2, pd, "/d/a", "after open")
}

// TestDigestOfAllocationsBySize: allocations of sizes that repeat and
// change each get the digest of their own size (the store keeps the sums
// of the last size), and read back verified.
func TestDigestOfAllocationsBySize(t *testing.T) {
	s, pd, _ := probeStore(t, 3000)
	for i, n := range []int64{1000, 1000, 3000, 512, 1000, 1 << 20, 70 << 10, 1000} {
		k := "/alloc/" + strings.Repeat("a", i+1)
		require.NoError(t, s.Allocate(kv.MustKey(k), n, time.Time{}))
		digestNoRead(t, s, pd, k, "allocate")
	}
}
