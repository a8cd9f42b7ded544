package kvtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tarstore/tarstore/kv"
)

// open calls Open, which must succeed.
func (e *env) open(key string) kv.Reader {
	e.t.Helper()
	r, err := e.s.Open(mk(key))
	if err != nil {
		e.t.Fatalf("Open(%s): %v", key, err)
	}
	return r
}

// checkReadAt reads len(p) bytes at off from r and checks them against
// want, the whole value, following the io.ReaderAt contract. It reports
// whether they matched.
func checkReadAt(t testing.TB, name string, r io.ReaderAt, want []byte, off int64, n int) bool {
	t.Helper()
	p := make([]byte, n)
	got, err := r.ReadAt(p, off)
	size := int64(len(want))
	start, end := min(off, size), min(off+int64(n), size)
	wantN := int(end - start)
	desc := fmt.Sprintf("%s: ReadAt(%d bytes at %d) of %d", name, n, off, size)
	switch {
	case got != wantN:
		t.Errorf("%s = %d bytes, %v; want %d bytes", desc, got, err, wantN)
		return false
	case !bytes.Equal(p[:got], want[start:end]):
		t.Errorf("%s returned bytes other than the value's", desc)
		return false
	case wantN < n && !errors.Is(err, io.EOF):
		t.Errorf("%s = %d bytes, %v; want io.EOF", desc, got, err)
		return false
	case wantN == n && err != nil && !(errors.Is(err, io.EOF) && end == size):
		t.Errorf("%s = %d bytes, %v; want no error", desc, got, err)
		return false
	}
	return true
}

// wantReader checks everything about a Reader over want: Size, ReadAt at the
// edges and at pseudo-random places, and streaming.
func wantReader(t testing.TB, name string, r kv.Reader, want []byte) {
	t.Helper()
	size := int64(len(want))
	if r.Size() != size {
		t.Errorf("%s: Size() = %d, want %d", name, r.Size(), size)
	}
	for _, c := range []struct {
		off int64
		n   int
	}{
		{0, len(want)}, {0, 1}, {0, 0}, {size, 0}, {size, 1}, {size + 100, 10}, {max(size-5, 0), 10}, {max(size-5, 0), 5},
	} {
		checkReadAt(t, name, r, want, c.off, c.n)
	}
	rng := rand.New(rand.NewPCG(uint64(size), 1))
	for range 200 {
		if !checkReadAt(t, name, r, want, rng.Int64N(size+50), rng.IntN(3000)) {
			break
		}
	}
	if n, err := r.ReadAt(make([]byte, 10), -1); err == nil || n != 0 {
		t.Errorf("%s: ReadAt(10 bytes at -1) = %d, %v; want an error", name, n, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, kv.NewStreamReader(r)); err != nil {
		t.Errorf("%s: streaming it: %v", name, err)
	} else if got, w := h.Sum(nil), sha256.Sum256(want); !bytes.Equal(got, w[:]) {
		t.Errorf("%s: streaming it gave other bytes than the value's", name)
	}
}

func (su *suite) testOpen(t *testing.T) {
	t.Run("read_at", func(t *testing.T) {
		e := su.start(t)
		for i, size := range []int{1, 511, 512, 513, 10000, 70001} {
			key := fmt.Sprintf("/r/v%d", i)
			want := pseudoRandom(uint64(10+i), size)
			e.set(key, string(want))
			r := e.open(key)
			wantReader(t, "Open("+key+")", r, want)
			if err := r.Close(); err != nil {
				t.Errorf("Open(%s): Close: %v", key, err)
			}
		}
	})
	t.Run("empty_value", func(t *testing.T) {
		e := su.start(t)
		e.set("/e", "")
		r := e.open("/e")
		defer r.Close()
		wantReader(t, "Open(/e)", r, nil)
	})
	t.Run("concurrent_read_at", func(t *testing.T) {
		e := su.start(t)
		want := pseudoRandom(20, 200000)
		e.set("/c", string(want))
		r := e.open("/c")
		defer r.Close()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 2))
				for range 100 {
					if !checkReadAt(t, "Open(/c)", r, want, rng.Int64N(int64(len(want))), rng.IntN(10000)) {
						return
					}
				}
			})
		}
		wg.Wait()
	})
	// An open reader is a snapshot against replacement: whatever happens to
	// the key, it reads the bytes it was opened on, even after the store
	// has had the chance to reuse their space.
	for _, c := range []struct {
		name   string
		change func(e *env)
		after  map[string]string // the store's values afterwards, besides the churn
	}{
		{"set", func(e *env) { e.set("/k", "replaced") }, map[string]string{"/k": "replaced", "/other": "other"}},
		{"remove", func(e *env) { e.remove("/k") }, map[string]string{"/other": "other"}},
		{"rename_away", func(e *env) { e.rename("/k", "/moved") }, map[string]string{"/moved": string(snapshotValue), "/other": "other"}},
		{"rename_onto", func(e *env) { e.rename("/other", "/k") }, map[string]string{"/k": "other"}},
		{"remove_parent", func(e *env) { e.remove("/") }, map[string]string{}},
	} {
		t.Run("snapshot_"+c.name, func(t *testing.T) {
			e := su.start(t)
			e.set("/k", string(snapshotValue))
			e.set("/other", "other")
			r := e.open("/k")
			c.change(e)
			// Churn: write, overwrite and remove more than the old value's
			// size, so that a store reusing its space too early is caught.
			for i := range 4 {
				e.set("/churn/a", string(pseudoRandom(uint64(30+i), len(snapshotValue))))
				e.set(fmt.Sprintf("/churn/b%d", i), string(pseudoRandom(uint64(40+i), len(snapshotValue)/3)))
			}
			e.remove("/churn")
			wantReader(t, "Open(/k), read after "+c.name, r, snapshotValue)
			if err := r.Close(); err != nil {
				t.Errorf("Close of the reader: %v", err)
			}
			e.wantValues(c.after)
		})
	}
	t.Run("errors", func(t *testing.T) {
		e := su.fixtureEnv(t)
		e.wantErrors("Open", "get", func(k kv.Key) error {
			r, err := e.s.Open(k)
			if err == nil {
				r.Close()
			}
			return err
		}, valueReadErrors)
	})
}

// snapshotValue is the value the snapshot tests open: several tar blocks.
var snapshotValue = pseudoRandom(50, 65536+100)

// rename calls Rename, which must succeed.
func (e *env) rename(src, dst string) {
	e.t.Helper()
	e.stamp()
	if err := e.s.Rename(mk(src), mk(dst)); err != nil {
		e.t.Fatalf("Rename(%s, %s): %v", src, dst, err)
	}
}
