package kv

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		segs     []string
	}{
		{"", "/", nil},
		{"/", "/", nil},
		{"//", "/", nil},
		{"a", "/a", []string{"a"}},
		{"/a", "/a", []string{"a"}},
		{"//a//b/", "/a/b", []string{"a", "b"}},
		{"a/b/c", "/a/b/c", []string{"a", "b", "c"}},
		{"/.a/..b/c..", "/.a/..b/c..", []string{".a", "..b", "c.."}},
		{"/ sp ace/ü/\x01", "/ sp ace/ü/\x01", []string{" sp ace", "ü", "\x01"}},
	} {
		k, err := ParseKey(tc.in)
		require.NoError(t, err, "ParseKey(%q)", tc.in)
		assert.Equal(t, tc.want, k.String(), "ParseKey(%q)", tc.in)
		assert.Equal(t, tc.segs, k.Segments(), "ParseKey(%q)", tc.in)
		assert.Equal(t, len(tc.segs), k.Depth())
		assert.Equal(t, strings.TrimPrefix(tc.want, "/"), k.Path())
		// The canonical form parses to the same key.
		again, err := ParseKey(k.String())
		require.NoError(t, err)
		assert.Equal(t, k, again)
	}
}

func TestParseKeyRejects(t *testing.T) {
	long := strings.Repeat("x", MaxSegmentLen+1)
	var deep strings.Builder
	for deep.Len() < MaxKeyLen {
		deep.WriteString("/" + strings.Repeat("d", 100))
	}
	for _, in := range []string{
		".", "..", "/a/./b", "/a/../b", "..", "/a/..", "a\x00b", "/\x00", long, "/a/" + long, deep.String(),
	} {
		_, err := ParseKey(in)
		require.Error(t, err, "ParseKey(%.40q)", in)
		assert.True(t, errors.Is(err, ErrInvalidKey), "ParseKey(%.40q): %v", in, err)
		assert.Equal(t, "invalid_key", Code(err))
	}
	// The limits themselves are allowed.
	_, err := ParseKey(strings.Repeat("x", MaxSegmentLen))
	assert.NoError(t, err)
	var limit strings.Builder
	for limit.Len() < MaxKeyLen-2 {
		limit.WriteString("/y")
	}
	for limit.Len() < MaxKeyLen {
		limit.WriteString("z")
	}
	k, err := ParseKey(limit.String())
	require.NoError(t, err)
	assert.Len(t, k.String(), MaxKeyLen)
	_, err = k.Add("w")
	assert.ErrorIs(t, err, ErrInvalidKey)
}

func TestKeyNavigation(t *testing.T) {
	ab := MustKey("/a/b")
	assert.Equal(t, MustKey("/a"), ab.Parent())
	assert.Equal(t, Root, MustKey("/a").Parent())
	assert.Equal(t, Root, Root.Parent())
	assert.Equal(t, "b", ab.Base())
	assert.Equal(t, "", Root.Base())
	assert.True(t, Root.IsRoot())
	assert.False(t, ab.IsRoot())
	assert.Equal(t, Key{}, Root, "the zero Key is the root")

	abc, err := ab.Add("c")
	require.NoError(t, err)
	assert.Equal(t, "/a/b/c", abc.String())
	top, err := Root.Add("x")
	require.NoError(t, err)
	assert.Equal(t, "/x", top.String())
	for _, bad := range []string{"", ".", "..", "x/y", "x\x00"} {
		_, err := ab.Add(bad)
		assert.ErrorIs(t, err, ErrInvalidKey, "Add(%q)", bad)
	}

	j, err := ab.Join(MustKey("/c/d"))
	require.NoError(t, err)
	assert.Equal(t, "/a/b/c/d", j.String())
	j, err = Root.Join(ab)
	require.NoError(t, err)
	assert.Equal(t, ab, j)
	j, err = ab.Join(Root)
	require.NoError(t, err)
	assert.Equal(t, ab, j)
}

func TestKeyPrefix(t *testing.T) {
	for _, tc := range []struct {
		k, p string
		want bool
		rel  string
	}{
		{"/a/b", "/a", true, "/b"},
		{"/a/b", "/a/b", true, "/"},
		{"/a/b", "/", true, "/a/b"},
		{"/", "/", true, "/"},
		{"/ab", "/a", false, ""},
		{"/a", "/a/b", false, ""},
		{"/", "/a", false, ""},
		{"/a/bc/d", "/a/b", false, ""},
	} {
		k, p := MustKey(tc.k), MustKey(tc.p)
		assert.Equal(t, tc.want, k.HasPrefix(p), "%s.HasPrefix(%s)", k, p)
		rel, ok := k.Rel(p)
		assert.Equal(t, tc.want, ok, "%s.Rel(%s)", k, p)
		if ok {
			assert.Equal(t, tc.rel, rel.String(), "%s.Rel(%s)", k, p)
			back, err := p.Join(rel)
			require.NoError(t, err)
			assert.Equal(t, k, back)
		}
	}
}

func TestKeyCompare(t *testing.T) {
	keys := []string{"/", "/a", "/a/b", "/a-b", "/a0", "/b"}
	for i := range keys {
		for j := range keys {
			got := MustKey(keys[i]).Compare(MustKey(keys[j]))
			want := strings.Compare(keys[i], keys[j])
			assert.Equal(t, want, got, "%s vs %s", keys[i], keys[j])
		}
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"", "/", "//a//b/", "a/../b", "/x\x00", "./a", "/a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ParseKey(%q): error %v is not invalid_key", s, err)
			}
			return
		}
		if len(k.String()) > MaxKeyLen {
			t.Fatalf("ParseKey(%q) gave a key of %d bytes", s, len(k.String()))
		}
		for _, seg := range k.Segments() {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "/\x00") || len(seg) > MaxSegmentLen {
				t.Fatalf("ParseKey(%q) kept bad segment %q", s, seg)
			}
		}
		again, err := ParseKey(k.String())
		if err != nil || again != k {
			t.Fatalf("ParseKey(%q) = %s does not round-trip: %v, %v", s, k, again, err)
		}
	})
}
