package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ETag is the entity tag of a digest: its lowercase hex, quoted. Tags are
// strong: equal tags mean equal bytes (SHA-256).
func ETag(digest []byte) string {
	// Built in a buffer on the stack: one allocation, the string's.
	var buf [2 + 2*sha256.Size]byte
	b := buf[:0]
	if n := 2 + hex.EncodedLen(len(digest)); n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = append(b, '"')
	b = hex.AppendEncode(b, digest)
	b = append(b, '"')
	return string(b)
}

// entityTag is one tag of an If-Match / If-None-Match list.
type entityTag struct {
	weak   bool
	opaque string // with its quotes
}

// parseETags parses a comma-separated list of entity tags. Malformed
// elements are skipped (they match nothing).
func parseETags(s string) []entityTag {
	var tags []entityTag
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return tags
		}
		weak := false
		if strings.HasPrefix(s, "W/") {
			weak, s = true, s[2:]
		}
		if s == "" || s[0] != '"' {
			// Not a tag: skip to the next comma.
			_, s, _ = strings.Cut(s, ",")
			continue
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return tags
		}
		tags = append(tags, entityTag{weak: weak, opaque: s[:end+2]})
		s = s[end+2:]
	}
}

// matchETag reports whether the list header (not "*") holds etag, with the
// strong comparison (weak tags never match) or the weak one.
func matchETag(header, etag string, strong bool) bool {
	for _, t := range parseETags(header) {
		if t.opaque == etag && !(strong && t.weak) {
			return true
		}
	}
	return false
}

// needsETag reports whether evaluating r's preconditions needs the current
// entity tag.
func needsETag(r *http.Request) bool {
	for _, name := range []string{"If-Match", "If-None-Match", "If-Range"} {
		if v := strings.TrimSpace(r.Header.Get(name)); v != "" && v != "*" {
			return true
		}
	}
	return false
}

// hasPreconditions reports whether r carries any precondition header.
func hasPreconditions(r *http.Request) bool {
	for _, name := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(name) != "" {
			return true
		}
	}
	return false
}

// validators describe the current state of a key for precondition checks.
type validators struct {
	exists bool
	etag   string    // quoted; "" when not computed
	mtime  time.Time // zero when unknown
}

// preconditions evaluates r's conditional headers in the order of RFC 9110
// §13.2.2. It returns 0 to go on, 304 Not Modified (only for safe methods,
// GET and HEAD) or 412 Precondition Failed, and for 412 the reason.
func preconditions(r *http.Request, v validators) (int, string) {
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead
	lm := v.mtime.Truncate(time.Second)
	if im := strings.TrimSpace(r.Header.Get("If-Match")); im != "" {
		switch {
		case !v.exists:
			return http.StatusPreconditionFailed, "If-Match: the key does not exist"
		case im != "*" && !matchETag(im, v.etag, true):
			return http.StatusPreconditionFailed, "If-Match: the current entity tag is " + v.etag
		}
	} else if ius := r.Header.Get("If-Unmodified-Since"); ius != "" && v.exists && !v.mtime.IsZero() {
		if t, err := http.ParseTime(ius); err == nil && lm.After(t) {
			return http.StatusPreconditionFailed, "If-Unmodified-Since: modified at " + lm.UTC().Format(http.TimeFormat)
		}
	}
	if inm := strings.TrimSpace(r.Header.Get("If-None-Match")); inm != "" {
		if v.exists && (inm == "*" || matchETag(inm, v.etag, false)) {
			if safe {
				return http.StatusNotModified, ""
			}
			if inm == "*" {
				return http.StatusPreconditionFailed, "If-None-Match: the key exists"
			}
			return http.StatusPreconditionFailed, "If-None-Match: the current entity tag is " + v.etag
		}
	} else if ims := r.Header.Get("If-Modified-Since"); ims != "" && safe && v.exists && !v.mtime.IsZero() {
		if t, err := http.ParseTime(ims); err == nil && !lm.After(t) {
			return http.StatusNotModified, ""
		}
	}
	return 0, ""
}

// byteRange is a satisfiable range of a value.
type byteRange struct{ start, length int64 }

// rangeKind is what a Range header asks for.
type rangeKind int

const (
	rangeWhole         rangeKind = iota // no usable Range: send the whole value (200)
	rangeOne                            // one satisfiable range (206)
	rangeUnsatisfiable                  // 416
)

// parseRange interprets the Range header h for a value of size bytes
// (RFC 9110 §14). One range "a-b", "a-" or "-n" gives rangeOne, clamped to
// the value, or rangeUnsatisfiable when it starts at or past the end (every
// range of an empty value is unsatisfiable, as is "-0"). A malformed header,
// a unit other than bytes, a range with b < a, and several ranges give
// rangeWhole: the server may ignore Range, and serving the value whole is
// simpler and safer than multipart/byteranges.
func parseRange(h string, size int64) (byteRange, rangeKind) {
	unit, spec, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return byteRange{}, rangeWhole
	}
	var one string
	n := 0
	for _, p := range strings.Split(spec, ",") {
		if p = strings.TrimSpace(p); p != "" {
			one = p
			n++
		}
	}
	if n != 1 {
		return byteRange{}, rangeWhole
	}
	first, last, ok := strings.Cut(one, "-")
	if !ok {
		return byteRange{}, rangeWhole
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix range: the last n bytes
		n, ok := parseDecimal(last)
		switch {
		case !ok:
			return byteRange{}, rangeWhole
		case n == 0 || size == 0:
			return byteRange{}, rangeUnsatisfiable
		}
		n = min(n, size)
		return byteRange{size - n, n}, rangeOne
	}
	a, ok := parseDecimal(first)
	if !ok {
		return byteRange{}, rangeWhole
	}
	b := int64(-1)
	if last != "" {
		if b, ok = parseDecimal(last); !ok || b < a {
			return byteRange{}, rangeWhole
		}
	}
	if a >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	if b < 0 || b >= size {
		b = size - 1
	}
	return byteRange{a, b - a + 1}, rangeOne
}

// parseDecimal parses a non-empty string of ASCII digits.
func parseDecimal(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ifRange reports whether the Range header applies given If-Range
// (RFC 9110 §13.1.5): always without If-Range; with an entity tag only if it
// is strong and current; with a date only if it is exactly the
// Last-Modified time.
func ifRange(r *http.Request, v validators) bool {
	ir := strings.TrimSpace(r.Header.Get("If-Range"))
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		return !strings.HasPrefix(ir, "W/") && ir == v.etag
	}
	t, err := http.ParseTime(ir)
	return err == nil && !v.mtime.IsZero() && v.mtime.Truncate(time.Second).Equal(t)
}
