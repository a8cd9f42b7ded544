package kvtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarstore/tarstore/kv"
)

func (su *suite) testPersistence(t *testing.T) {
	t.Run("reopen", func(t *testing.T) {
		e := su.start(t)
		Populate(t, e.s, e.clk)
		e.wantPopulated()
		before := dump(t, e.s)
		e.reopen()
		wantSameDump(t, "the store reopened differs (key: after, before)", before, dump(t, e.s))
		e.wantPopulated()

		// Writes after a reopen persist too.
		e.set("/after/reopen", "new")
		e.set("/readme", "overwritten after reopening")
		e.setPartial("/patched", 10, "+appended")
		e.remove("/docs/deep")
		e.rename("/new/place", "/newer")
		e.stamp()
		if err := e.s.Allocate(mk("/alloc2"), 100, allocMtime.Add(time.Hour)); err != nil {
			t.Fatalf("Allocate(/alloc2): %v", err)
		}
		before = dump(t, e.s)
		e.reopen()
		wantSameDump(t, "the store reopened a second time differs (key: after, before)", before, dump(t, e.s))
		e.wantValue("/patched", "0123PATCH9+appended")
		e.wantKind("/docs/deep", kv.None)
	})
	t.Run("reopen_empty", func(t *testing.T) {
		e := su.start(t)
		e.reopen()
		e.wantValues(map[string]string{})
		e.set("/a", "a")
		e.remove("/a")
		e.reopen()
		e.wantValues(map[string]string{})
	})
}

// unusualKeys are keys with characters and lengths a store must carry
// through: spaces, control characters, backslashes, UTF-8, dots, a segment
// of kv.MaxSegmentLen bytes, and a key of kv.MaxKeyLen bytes.
func unusualKeys() []string {
	keys := []string{
		"/with space/and\ttab",
		"/naïve/café ☕",
		"/line\nbreak",
		"/-leading-dash",
		"/.hidden/.x",
		"/.../..v",
		"/back\\slash",
		"/quote\"'",
		"/percent%2F",
		"/long/" + repeat("s", kv.MaxSegmentLen),
		"/" + repeat("p", 99) + "/" + repeat("q", 99) + "/" + repeat("r", 99), // over ustar's 100-byte name
	}
	// kv.MaxKeyLen = 4095 bytes: 15 segments of 255 bytes and one of 254.
	var segs []string
	for i := range 15 {
		segs = append(segs, repeat(string(rune('a'+i)), kv.MaxSegmentLen))
	}
	segs = append(segs, repeat("z", kv.MaxSegmentLen-1))
	return append(keys, "/"+strings.Join(segs, "/"))
}

func (su *suite) testKeys(t *testing.T) {
	t.Run("unusual", func(t *testing.T) {
		e := su.start(t)
		want := map[string]string{}
		for i, key := range unusualKeys() {
			k, err := kv.ParseKey(key)
			if err != nil {
				t.Fatalf("kvtest: ParseKey(%q): %v", key, err)
			}
			if k.String() != key {
				t.Fatalf("kvtest: ParseKey(%q) = %q", key, k)
			}
			want[key] = fmt.Sprintf("value %d of %q", i, key)
			e.set(key, want[key])
			e.wantValue(key, want[key])
			entries, err := e.s.List(k.Parent())
			if err != nil || !slices.Contains(entries, kv.Entry{Key: k, Kind: kv.Value}) {
				t.Errorf("List(%q) = %v, %v; want it to hold %q", k.Parent(), describe(entries), err, key)
			}
		}
		if n := len(unusualKeys()[len(unusualKeys())-1]); n != kv.MaxKeyLen {
			t.Fatalf("kvtest: the longest key has %d bytes, want %d", n, kv.MaxKeyLen)
		}
		e.wantValues(want)
		e.reopen()
		e.wantValues(want)
	})
}

// The concurrency test: readers check that every value they see is a whole
// version the writer wrote. A version is self-describing: it starts with a
// header naming its key and version number, and the rest is pseudo-random
// bytes determined by both, so a value torn between two versions, or read
// from another key, does not match.

const concHeader = "kvtest %s version %d\n"

// concKey is one key of the concurrency test.
type concKey struct {
	key     kv.Key
	size    int
	partial bool         // the writer also rewrites it with SetPartial; readers do not Open it
	maxVer  atomic.Int64 // the highest version the writer has started to write
}

// concValue is version ver of c's value.
func (c *concKey) value(ver int64) []byte {
	b := make([]byte, c.size)
	h := fnv.New64a()
	h.Write([]byte(c.key.String()))
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], h.Sum64())
	binary.BigEndian.PutUint64(seed[8:], uint64(ver))
	rand.NewChaCha8(seed).Read(b)
	copy(b, fmt.Sprintf(concHeader, c.key, ver))
	return b
}

// check reports what is wrong with b, a read of c from offset 0 (b may be
// a prefix of the value), or "" if it is a version of c.
func (c *concKey) check(b []byte) string {
	prefix := fmt.Sprintf("kvtest %s version ", c.key)
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return fmt.Sprintf("read %s, which does not start with %q", quote(b), prefix)
	}
	line, _, ok := bytes.Cut(b[len(prefix):], []byte("\n"))
	ver, err := strconv.ParseInt(string(line), 10, 64)
	if !ok || err != nil {
		return fmt.Sprintf("read %s, which has no version number", quote(b))
	}
	if m := c.maxVer.Load(); ver > m {
		return fmt.Sprintf("read version %d, but only up to %d were written", ver, m)
	}
	want := c.value(ver)
	if len(b) > len(want) || !bytes.Equal(b, want[:len(b)]) {
		return fmt.Sprintf("read %d bytes that are not version %d (%d bytes): a torn value", len(b), ver, len(want))
	}
	return ""
}

func (su *suite) testConcurrency(t *testing.T) {
	t.Run("readers_and_writer", func(t *testing.T) {
		e := su.start(t)
		var keys []*concKey
		for i := range 6 {
			c := &concKey{size: 700 + 913*i, partial: i%2 == 1}
			c.key = mk(fmt.Sprintf("/conc/k%d", i))
			keys = append(keys, c)
			e.set(c.key.String(), string(c.value(0)))
		}
		anchor := pseudoRandom(60, 20000)
		e.set("/conc/anchor", string(anchor))
		shared := e.open("/conc/anchor") // one Reader, read by every goroutine
		defer shared.Close()
		known := map[kv.Key]bool{mk("/conc/anchor"): true}
		for _, c := range keys {
			known[c.key] = true
		}

		done := make(chan struct{})
		var passes atomic.Int64 // reader passes completed, all readers together
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 3))
				for iter := 0; ; iter++ {
					select {
					case <-done:
						if iter > 0 {
							return
						}
					default:
					}
					if msg := concRead(e.s, keys, known, shared, anchor, rng); msg != "" {
						t.Errorf("reader %d: %s", g, msg)
						return
					}
					passes.Add(1)
				}
			})
		}

		// The writer goes on until the readers have made enough passes to
		// overlap its writes, however the goroutines are scheduled.
		rng := rand.New(rand.NewPCG(42, 4))
		for i := 0; i < 300 || (passes.Load() < 40 && !t.Failed()); i++ {
			c := keys[rng.IntN(len(keys))]
			var err error
			switch x := rng.IntN(10); {
			case x < 2:
				err = e.s.Remove(c.key)
			case x < 6 && c.partial:
				ver := c.maxVer.Add(1)
				// Every version has the same size, so writing a whole one
				// at 0 over another gives exactly the new version.
				err = e.s.SetPartial(c.key, 0, c.value(ver))
			default:
				ver := c.maxVer.Add(1)
				err = e.s.Set(c.key, c.value(ver))
			}
			if err != nil {
				t.Errorf("writer: on %s: %v", c.key, err)
				break
			}
		}
		close(done)
		wg.Wait()
	})
}

// concRead is one pass of a reader over the keys: Get, GetPartial, Exists,
// Open (of keys never patched), Size, List, Digest and LastModified, and a
// ReadAt of the shared reader. It returns what went wrong, or "".
func concRead(s kv.RW, keys []*concKey, known map[kv.Key]bool, shared kv.Reader, anchor []byte, rng *rand.Rand) string {
	missing := func(err error) bool { return errors.Is(err, kv.ErrNotFound) }
	for _, c := range keys {
		if b, err := s.Get(c.key); err != nil && !missing(err) {
			return fmt.Sprintf("Get(%s): %v", c.key, err)
		} else if err == nil {
			if msg := c.check(b); msg != "" {
				return fmt.Sprintf("Get(%s): %s", c.key, msg)
			}
		}
		if b, err := s.GetPartial(c.key, 0, 100); err != nil && !missing(err) {
			return fmt.Sprintf("GetPartial(%s, 0, 100): %v", c.key, err)
		} else if err == nil {
			if msg := c.check(b); msg != "" {
				return fmt.Sprintf("GetPartial(%s, 0, 100): %s", c.key, msg)
			}
		}
		if k, err := s.Exists(c.key); err != nil || (k != kv.Value && k != kv.None) {
			return fmt.Sprintf("Exists(%s) = %v, %v; want value or none", c.key, k, err)
		}
		if n, err := s.Size(c.key); (err != nil && !missing(err)) || (err == nil && n != int64(c.size)) {
			return fmt.Sprintf("Size(%s) = %d, %v; want %d", c.key, n, err, c.size)
		}
		if d, err := s.Digest(c.key); (err != nil && !missing(err)) || (err == nil && len(d) != kv.DigestSize) {
			return fmt.Sprintf("Digest(%s) = %x, %v", c.key, d, err)
		}
		if _, err := s.LastModified(c.key); err != nil && !missing(err) {
			return fmt.Sprintf("LastModified(%s): %v", c.key, err)
		}
		if !c.partial {
			r, err := s.Open(c.key)
			if err != nil && !missing(err) {
				return fmt.Sprintf("Open(%s): %v", c.key, err)
			}
			if err == nil {
				b := make([]byte, r.Size())
				n, err := r.ReadAt(b, 0)
				r.Close()
				if n != len(b) || (err != nil && err != io.EOF) {
					return fmt.Sprintf("Open(%s): ReadAt(%d bytes at 0) = %d, %v", c.key, len(b), n, err)
				}
				if msg := c.check(b); msg != "" || len(b) != c.size {
					return fmt.Sprintf("Open(%s): %s (size %d)", c.key, msg, len(b))
				}
			}
		}
	}
	entries, err := s.List(mk("/conc"))
	if err != nil {
		return fmt.Sprintf("List(/conc): %v", err)
	}
	if !slices.IsSortedFunc(entries, func(a, b kv.Entry) int { return a.Key.Compare(b.Key) }) {
		return fmt.Sprintf("List(/conc) = %v, not sorted", describe(entries))
	}
	for _, en := range entries {
		if !known[en.Key] || en.Kind != kv.Value {
			return fmt.Sprintf("List(/conc) = %v, holding %v %s", describe(entries), en.Kind, en.Key)
		}
	}
	off, n := rng.Int64N(int64(len(anchor))), rng.IntN(5000)
	p := make([]byte, n)
	got, err := shared.ReadAt(p, off)
	end := min(off+int64(n), int64(len(anchor)))
	if got != int(end-off) || !bytes.Equal(p[:got], anchor[off:end]) || (got < n && err != io.EOF) {
		return fmt.Sprintf("ReadAt(%d bytes at %d) of the shared reader of /conc/anchor = %d, %v", n, off, got, err)
	}
	return ""
}

// windowWriter keeps the bytes written to it between offsets off and off+n.
type windowWriter struct {
	off, n, pos int64
	b           []byte
}

func (w *windowWriter) Write(p []byte) (int, error) {
	lo, hi := max(w.off, w.pos), min(w.off+w.n, w.pos+int64(len(p)))
	if lo < hi {
		w.b = append(w.b, p[lo-w.pos:hi-w.pos]...)
	}
	w.pos += int64(len(p))
	return len(p), nil
}

func (su *suite) testLarge(t *testing.T) {
	t.Run("stream", func(t *testing.T) {
		e := su.start(t)
		size := e.h.LargeSize
		const win = 4096
		mid := &windowWriter{off: max(size/2-777, 0), n: win}
		tail := &windowWriter{off: max(size-win, 0), n: win}
		sum := sha256.New()
		// The value is generated as it is stored: it is never in the test's
		// memory.
		src := io.TeeReader(io.LimitReader(newStream(70), size), io.MultiWriter(sum, mid, tail))
		k := mk("/large/value")
		at := e.stamp()
		if err := e.s.SetFrom(k, src, size); err != nil {
			t.Fatalf("SetFrom(%s, %d bytes): %v", k, size, err)
		}
		want := sum.Sum(nil)

		if n, err := e.s.Size(k); err != nil || n != size {
			t.Errorf("Size(%s) = %d, %v; want %d", k, n, err, size)
		}
		e.wantMtime(k.String(), at)
		if d, err := e.s.Digest(k); err != nil || !bytes.Equal(d, want) {
			t.Errorf("Digest(%s) = %x, %v; want %x", k, d, err, want)
		}
		r := e.open(k.String())
		if r.Size() != size {
			t.Errorf("Open(%s).Size() = %d, want %d", k, r.Size(), size)
		}
		h := sha256.New()
		if n, err := io.Copy(h, kv.NewStreamReader(r)); err != nil || n != size {
			t.Errorf("Open(%s): streaming it = %d bytes, %v; want %d", k, n, err, size)
		} else if got := h.Sum(nil); !bytes.Equal(got, want) {
			t.Errorf("Open(%s): streamed bytes have SHA-256 %x, want %x", k, got, want)
		}
		tb := tail.b
		p := make([]byte, 100)
		if n, err := r.ReadAt(p, size-10); n != 10 || err != io.EOF || !bytes.Equal(p[:10], tb[len(tb)-10:]) {
			t.Errorf("Open(%s).ReadAt(100 bytes at size-10) = %d, %v; want the last 10 bytes and io.EOF", k, n, err)
		}
		r.Close()

		for _, c := range []struct {
			off, length int64
			want        []byte
		}{
			{size - int64(len(tb)), int64(len(tb)), tb},
			{size - 100, 4096, tb[len(tb)-100:]},
			{size - 1, 1, tb[len(tb)-1:]},
			{size, 1, nil},
			{size + 1, 1, nil},
			{mid.off, int64(len(mid.b)), mid.b},
			{mid.off, 0, nil},
		} {
			got, err := e.s.GetPartial(k, c.off, c.length)
			if err != nil || !bytes.Equal(got, c.want) {
				t.Errorf("GetPartial(%s, %d, %d) of %d bytes = %d bytes, %v; want %d bytes of the value", k, c.off, c.length, size, len(got), err, len(c.want))
			}
		}
	})
}

func (su *suite) testClose(t *testing.T) {
	t.Run("later_calls", func(t *testing.T) {
		e := su.start(t)
		e.fill(fixture)
		before := dump(t, e.s)
		e.close()
		k, dst := mk("/v"), mk("/w")
		for _, c := range []struct {
			call string
			op   string
			key  kv.Key
			f    func(s kv.RW) error
		}{
			{"Exists(/v)", "exists", k, func(s kv.RW) error { _, err := s.Exists(k); return err }},
			{"Get(/v)", "get", k, func(s kv.RW) error { _, err := s.Get(k); return err }},
			{"GetPartial(/v, 0, 1)", "get_partial", k, func(s kv.RW) error { _, err := s.GetPartial(k, 0, 1); return err }},
			{"Open(/v)", "get", k, func(s kv.RW) error {
				r, err := s.Open(k)
				if err == nil {
					r.Close()
				}
				return err
			}},
			{"Size(/v)", "size", k, func(s kv.RW) error { _, err := s.Size(k); return err }},
			{"List(/)", "list", kv.Root, func(s kv.RW) error { _, err := s.List(kv.Root); return err }},
			{"LastModified(/v)", "last_modified", k, func(s kv.RW) error { _, err := s.LastModified(k); return err }},
			{"Digest(/v)", "digest", k, func(s kv.RW) error { _, err := s.Digest(k); return err }},
			{"Set(/v)", "set", k, func(s kv.RW) error { return s.Set(k, []byte("x")) }},
			{"SetFrom(/v)", "set", k, func(s kv.RW) error { return s.SetFrom(k, strings.NewReader("x"), 1) }},
			{"SetPartial(/v)", "set_partial", k, func(s kv.RW) error { return s.SetPartial(k, 0, []byte("x")) }},
			{"Allocate(/w)", "allocate", dst, func(s kv.RW) error { return s.Allocate(dst, 1, time.Time{}) }},
			{"Remove(/v)", "remove", k, func(s kv.RW) error { return s.Remove(k) }},
			{"Rename(/v, /w)", "rename", k, func(s kv.RW) error { return s.Rename(k, dst) }},
			{"Free()", "free", kv.Root, func(s kv.RW) error { _, err := s.Free(); return err }},
		} {
			wantError(t, c.call+" after Close", c.f(e.s), kv.ErrClosed, c.op, c.key)
		}
		if err := e.s.Close(); err != nil {
			t.Errorf("a second Close: %v", err)
		}
		// Close flushed: the storage reopens with everything.
		e.reopen()
		wantSameDump(t, "the store reopened after Close differs (key: after, before)", before, dump(t, e.s))
	})
}
