package httpapi

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/kv"
)

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		h      string
		size   int64
		kind   rangeKind
		start  int64
		length int64
	}{
		{"bytes=0-4", 10, rangeOne, 0, 5},
		{"bytes=3-3", 10, rangeOne, 3, 1},
		{"bytes=5-", 10, rangeOne, 5, 5},
		{"bytes=-3", 10, rangeOne, 7, 3},
		{"bytes=-100", 10, rangeOne, 0, 10}, // suffix longer than the value
		{"bytes=3-100", 10, rangeOne, 3, 7}, // end clamped
		{"bytes=9-9223372036854775807", 10, rangeOne, 9, 1},
		{"Bytes = 1-2 ", 10, rangeOne, 1, 2}, // unit case and spaces
		{"bytes=1-2,", 10, rangeOne, 1, 2},   // an empty element is not a range
		{"bytes=10-", 10, rangeUnsatisfiable, 0, 0},
		{"bytes=10-20", 10, rangeUnsatisfiable, 0, 0},
		{"bytes=9223372036854775807-9223372036854775807", 10, rangeUnsatisfiable, 0, 0},
		{"bytes=-0", 10, rangeUnsatisfiable, 0, 0},
		{"bytes=0-0", 0, rangeUnsatisfiable, 0, 0}, // every range of an empty value
		{"bytes=-1", 0, rangeUnsatisfiable, 0, 0},
		{"bytes=0-", 0, rangeUnsatisfiable, 0, 0},
		{"bytes=5-3", 10, rangeWhole, 0, 0}, // last < first: invalid, ignored
		{"bytes=0-1,4-5", 10, rangeWhole, 0, 0},
		{"bytes=0-1, 20-30", 10, rangeWhole, 0, 0},
		{"items=0-1", 10, rangeWhole, 0, 0},
		{"bytes=x-y", 10, rangeWhole, 0, 0},
		{"bytes=1", 10, rangeWhole, 0, 0},
		{"bytes=", 10, rangeWhole, 0, 0},
		{"bytes=-", 10, rangeWhole, 0, 0},
		{"bytes=+1-2", 10, rangeWhole, 0, 0},
		{"bytes=99999999999999999999-", 10, rangeWhole, 0, 0}, // overflow
		{"bytes", 10, rangeWhole, 0, 0},
	} {
		rg, kind := parseRange(c.h, c.size)
		assert.Equal(t, c.kind, kind, "%q of %d", c.h, c.size)
		if kind == rangeOne {
			assert.Equal(t, byteRange{c.start, c.length}, rg, "%q of %d", c.h, c.size)
		}
	}
}

func TestMatchETag(t *testing.T) {
	const tag = `"abc"`
	for _, c := range []struct {
		header       string
		strong, weak bool
	}{
		{`"abc"`, true, true},
		{`W/"abc"`, false, true},
		{`"x", "abc"`, true, true},
		{`"x",W/"abc"`, false, true},
		{`"ab"`, false, false},
		{`abc`, false, false},
		{`"abc`, false, false},
		{`junk, "abc"`, true, true},
		{``, false, false},
	} {
		assert.Equal(t, c.strong, matchETag(c.header, tag, true), "strong %q", c.header)
		assert.Equal(t, c.weak, matchETag(c.header, tag, false), "weak %q", c.header)
	}
}

func TestPreconditions(t *testing.T) {
	lm := time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC)
	cur := validators{exists: true, etag: `"e1"`, mtime: lm}
	absent := validators{}
	before, after := lm.Add(-time.Hour).Format(http.TimeFormat), lm.Add(time.Hour).Format(http.TimeFormat)
	same := lm.Format(http.TimeFormat) // to the second
	for _, c := range []struct {
		method string
		hdr    map[string]string
		v      validators
		want   int
	}{
		{"GET", nil, cur, 0},
		{"GET", map[string]string{"If-Match": `"e1"`}, cur, 0},
		{"GET", map[string]string{"If-Match": `"e2"`}, cur, 412},
		{"GET", map[string]string{"If-Match": `W/"e1"`}, cur, 412}, // strong comparison
		{"PUT", map[string]string{"If-Match": `*`}, cur, 0},
		{"PUT", map[string]string{"If-Match": `*`}, absent, 412},
		{"PUT", map[string]string{"If-Match": `"e1"`}, absent, 412},
		{"PUT", map[string]string{"If-None-Match": `*`}, absent, 0},
		{"PUT", map[string]string{"If-None-Match": `*`}, cur, 412},
		{"PUT", map[string]string{"If-None-Match": `"e1"`}, cur, 412},
		{"PUT", map[string]string{"If-None-Match": `"e2"`}, cur, 0},
		{"GET", map[string]string{"If-None-Match": `"e1"`}, cur, 304},
		{"GET", map[string]string{"If-None-Match": `W/"e1"`}, cur, 304}, // weak comparison
		{"HEAD", map[string]string{"If-None-Match": `*`}, cur, 304},
		{"GET", map[string]string{"If-None-Match": `"e2"`}, cur, 0},
		{"GET", map[string]string{"If-Modified-Since": same}, cur, 304},
		{"GET", map[string]string{"If-Modified-Since": after}, cur, 304},
		{"GET", map[string]string{"If-Modified-Since": before}, cur, 0},
		{"GET", map[string]string{"If-Modified-Since": "garbage"}, cur, 0},
		{"GET", map[string]string{"If-None-Match": `"e2"`, "If-Modified-Since": after}, cur, 0}, // INM wins
		{"PUT", map[string]string{"If-Unmodified-Since": before}, cur, 412},
		{"PUT", map[string]string{"If-Unmodified-Since": same}, cur, 0},
		{"PUT", map[string]string{"If-Match": `"e1"`, "If-Unmodified-Since": before}, cur, 0}, // If-Match wins
	} {
		r := httptest.NewRequest(c.method, "/v1/kv/k", nil)
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		got, _ := preconditions(r, c.v)
		assert.Equal(t, c.want, got, "%s %v on %+v", c.method, c.hdr, c.v)
	}
}

func TestIfRange(t *testing.T) {
	lm := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	v := validators{exists: true, etag: `"e1"`, mtime: lm}
	for hdr, want := range map[string]bool{
		"":                         true,
		`"e1"`:                     true,
		`"e2"`:                     false,
		`W/"e1"`:                   false,
		lm.Format(http.TimeFormat): true,
		lm.Add(-time.Second).Format(http.TimeFormat): false,
		"garbage": false,
	} {
		r := httptest.NewRequest("GET", "/v1/kv/k", nil)
		if hdr != "" {
			r.Header.Set("If-Range", hdr)
		}
		assert.Equal(t, want, ifRange(r, v), "If-Range %q", hdr)
	}
}

func TestCoordLocks(t *testing.T) {
	c := newCoord()
	a, ab, b := kv.MustKey("/a"), kv.MustKey("/a/b"), kv.MustKey("/b")
	w := c.lock(a)
	// An unrelated key is not held up.
	wb := c.lock(b)
	c.unlock(wb)
	// A key below a held one waits for it.
	var got atomic.Bool
	done := make(chan struct{})
	go func() {
		w2 := c.lock(ab)
		got.Store(true)
		c.unlock(w2)
		close(done)
	}()
	assert.False(t, got.Load(), "/a/b was locked while /a was held")
	c.unlock(w)
	<-done
	// A rename locks both keys; the root conflicts with everything.
	wr := c.lock(kv.MustKey("/x"), kv.MustKey("/y/z"))
	assert.True(t, c.heldRelatedLocked(kv.MustKey("/y")))
	assert.True(t, c.heldRelatedLocked(kv.Root))
	assert.False(t, c.heldRelatedLocked(kv.MustKey("/xy")))
	c.unlock(wr)
	assert.Empty(t, c.held)
}

// TestReaderExpiry: an idle reader session is closed after the timeout;
// one in use is not.
func TestReaderExpiry(t *testing.T) {
	tab := newReaderTable(time.Minute, 10)
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tab.now = func() time.Time { return now }
	r1, r2 := &countingReader{}, &countingReader{}
	id1, ok := tab.add(kv.MustKey("/a"), r1)
	require.True(t, ok)
	id2, ok := tab.add(kv.MustKey("/b"), r2)
	require.True(t, ok)
	s2, ok := tab.acquire(id2) // in use across the timeout
	require.True(t, ok)
	now = now.Add(2 * time.Minute)
	_, ok = tab.acquire(id1)
	require.False(t, ok, "expired session still there")
	require.Equal(t, int32(1), r1.closed.Load())
	require.Equal(t, int32(0), r2.closed.Load(), "session in use was closed")
	require.True(t, tab.remove(id2))
	require.Equal(t, int32(0), r2.closed.Load(), "closed under a reader")
	tab.release(s2)
	require.Equal(t, int32(1), r2.closed.Load())
	require.False(t, tab.remove(id2))
}

type countingReader struct{ closed atomic.Int32 }

func (r *countingReader) ReadAt(p []byte, off int64) (int, error) { return 0, nil }
func (r *countingReader) Size() int64                             { return 0 }
func (r *countingReader) Close() error                            { r.closed.Add(1); return nil }

// TestParseKeyCanonical: the shortcut parseKey takes for a path in
// canonical form gives what the segment-by-segment parse gives, key or
// error, at the default key length limit and at a low one.
func TestParseKeyCanonical(t *testing.T) {
	long := "/" + strings.Repeat("x", 300)
	paths := []string{
		"", "/", "//", "/a", "/a/b", "/a/b/", "//a", "/a//b", "a/b", "/a/./b", "/a/../b", "/.", "/..",
		"/a%2Fb", "/%2e%2e", "/a%20b", "/a+b", "/a;b", "/a:b@c", "/.hidden/x", "/a.txt", "/ab/cdefghij",
		long, "/a" + long, "/" + strings.Repeat("y/", 20) + "z", "/abcdefg", "/abcdefgh", "/abc/defg",
	}
	for _, maxLen := range []int{0, 9} {
		h := New(nil, Options{MaxKeyLen: maxLen})
		for _, p := range paths {
			if len(p) > 4*h.opts.MaxKeyLen+16 {
				continue // refused before either parse
			}
			k, e := h.parseKey(p)
			wantK, wantE := h.parseKeySegments(p)
			assert.Equal(t, wantK, k, "%q, MaxKeyLen %d", p, maxLen)
			assert.Equal(t, wantE, e, "%q, MaxKeyLen %d", p, maxLen)
		}
	}
}

// TestETagForm: ETag is the quoted lowercase hex of the digest, at any
// length.
func TestETagForm(t *testing.T) {
	for _, n := range []int{0, 1, 32, 33, 64} {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(i*37 + 11)
		}
		assert.Equal(t, `"`+hex.EncodeToString(d)+`"`, ETag(d), n)
	}
}

// TestSetHeader: setHeader sets a header as Header.Set does, and an Add
// to one header leaves the others' values alone.
func TestSetHeader(t *testing.T) {
	rec := httptest.NewRecorder()
	c := &call{rec: statusRecorder{ResponseWriter: rec}}
	c.w = &c.rec
	for i := range 20 {
		c.setHeader(fmt.Sprintf("X-H%d", i), strconv.Itoa(i))
	}
	c.setHeader("X-H3", "again")
	c.w.Header().Add("X-H1", "more")
	for i := range 20 {
		want := []string{strconv.Itoa(i)}
		switch i {
		case 1:
			want = append(want, "more")
		case 3:
			want = []string{"again"}
		}
		assert.Equal(t, want, rec.Header().Values(fmt.Sprintf("X-H%d", i)), i)
	}
}
