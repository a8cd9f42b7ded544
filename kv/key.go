package kv

import (
	"fmt"
	"iter"
	"strings"
)

// Limits on keys (SPEC §2). They match what tar extraction can recreate on a
// POSIX file system: NAME_MAX per segment and PATH_MAX per key.
const (
	MaxSegmentLen = 255
	MaxKeyLen     = 4095
)

// Key is a key of the store: a list of segments, Mirage_kv.Key in Go.
//
// The zero Key is the root. A Key is immutable and comparable with ==, so it
// can be used as a map key. Every Key that exists has passed validation:
// segments are non-empty, contain no '/' or NUL, are not "." or "..", and are
// at most MaxSegmentLen bytes; the key's String form is at most MaxKeyLen
// bytes.
type Key struct {
	s string // canonical form without the leading '/': "a/b"; "" is the root
}

// Root is the empty key, "/".
var Root = Key{}

// ParseKey parses s: it splits on '/' and drops empty segments, so "", "/"
// and "//" are the root and "//a//b/" is /a/b. It fails with ErrInvalidKey
// for keys tarstore cannot store or extract safely.
func ParseKey(s string) (Key, error) {
	// One pass over the segments; a canonical input ("a/b", no empty
	// segments) is used as it is, without building a new string.
	canonical := true
	n := 0
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "" {
			canonical = false
			continue
		}
		if err := checkSegment(seg); err != nil {
			return Root, &Error{Op: "parse", Err: ErrInvalidKey, Detail: fmt.Sprintf("%q: %v", s, err)}
		}
		n++
	}
	if canonical || n == 0 {
		if n == 0 {
			s = ""
		}
	} else {
		var b strings.Builder
		b.Grow(len(s))
		for seg := range strings.SplitSeq(s, "/") {
			if seg == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('/')
			}
			b.WriteString(seg)
		}
		s = b.String()
	}
	if len(s)+1 > MaxKeyLen {
		return Root, &Error{Op: "parse", Err: ErrInvalidKey, Detail: fmt.Sprintf("key of %d bytes is longer than %d", len(s)+1, MaxKeyLen)}
	}
	return Key{s: s}, nil
}

// MustKey is ParseKey for keys known to be valid; it panics otherwise. It is
// meant for tests and constants.
func MustKey(s string) Key {
	k, err := ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("empty segment")
	case seg == "." || seg == "..":
		return fmt.Errorf("segment %q is not allowed", seg)
	case strings.IndexByte(seg, 0) >= 0:
		return fmt.Errorf("NUL byte in segment")
	case strings.IndexByte(seg, '/') >= 0:
		return fmt.Errorf("segment %q contains '/'", seg)
	case len(seg) > MaxSegmentLen:
		return fmt.Errorf("segment of %d bytes is longer than %d", len(seg), MaxSegmentLen)
	}
	return nil
}

// Add returns k with seg appended. seg must be a valid segment: non-empty,
// without '/' or NUL, not "." or "..".
func (k Key) Add(seg string) (Key, error) {
	if err := checkSegment(seg); err != nil {
		return k, &Error{Op: "add", Key: k, Err: ErrInvalidKey, Detail: err.Error()}
	}
	s := seg
	if k.s != "" {
		s = k.s + "/" + seg
	}
	if len(s)+1 > MaxKeyLen {
		return k, &Error{Op: "add", Key: k, Err: ErrInvalidKey, Detail: fmt.Sprintf("key of %d bytes is longer than %d", len(s)+1, MaxKeyLen)}
	}
	return Key{s: s}, nil
}

// Join returns k followed by the segments of rel (k.Join(/b/c) is k/b/c).
func (k Key) Join(rel Key) (Key, error) {
	switch {
	case rel.s == "":
		return k, nil
	case k.s == "":
		return rel, nil
	}
	s := k.s + "/" + rel.s
	if len(s)+1 > MaxKeyLen {
		return k, &Error{Op: "join", Key: k, Err: ErrInvalidKey, Detail: fmt.Sprintf("key of %d bytes is longer than %d", len(s)+1, MaxKeyLen)}
	}
	return Key{s: s}, nil
}

// Parent returns k without its last segment; the parent of the root is the
// root.
func (k Key) Parent() Key {
	i := strings.LastIndexByte(k.s, '/')
	if i < 0 {
		return Root
	}
	return Key{s: k.s[:i]}
}

// Base returns the last segment of k; the base of the root is "".
func (k Key) Base() string {
	return k.s[strings.LastIndexByte(k.s, '/')+1:]
}

// Segments returns a fresh slice of k's segments; nil for the root.
func (k Key) Segments() []string {
	if k.s == "" {
		return nil
	}
	return strings.Split(k.s, "/")
}

// All returns the segments of k in order, without allocating.
func (k Key) All() iter.Seq[string] {
	return func(yield func(string) bool) {
		if k.s == "" {
			return
		}
		for seg := range strings.SplitSeq(k.s, "/") {
			if !yield(seg) {
				return
			}
		}
	}
}

// Depth is the number of segments.
func (k Key) Depth() int {
	if k.s == "" {
		return 0
	}
	return strings.Count(k.s, "/") + 1
}

// String is "/" followed by the segments joined with "/".
func (k Key) String() string { return "/" + k.s }

// Path is the key as a relative path without the leading '/': "a/b", and ""
// for the root. It is the member name a key has in a tar archive.
func (k Key) Path() string { return k.s }

// IsRoot reports whether k is the root.
func (k Key) IsRoot() bool { return k.s == "" }

// HasPrefix reports whether p is a segment-wise prefix of k, k itself
// included: /a is a prefix of /a and /a/b but not of /ab. The root is a
// prefix of every key.
func (k Key) HasPrefix(p Key) bool {
	if p.s == "" || p.s == k.s {
		return true
	}
	return len(k.s) > len(p.s) && k.s[len(p.s)] == '/' && k.s[:len(p.s)] == p.s
}

// Rel returns k with the prefix p removed (k = p.Join(k.Rel(p))). It reports
// false when p is not a prefix of k.
func (k Key) Rel(p Key) (Key, bool) {
	switch {
	case !k.HasPrefix(p):
		return Root, false
	case p.s == "":
		return k, true
	case p.s == k.s:
		return Root, true
	}
	return Key{s: k.s[len(p.s)+1:]}, true
}

// Compare orders keys by their String form, the order List returns.
func (k Key) Compare(o Key) int { return strings.Compare(k.s, o.s) }
