package httpapi

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/tarstore/tarstore/kv"
)

// Keys that are not UTF-8. A key is any bytes but NUL and '/' (SPEC §2), so
// a foreign archive can hold names in Latin-1 or other non-UTF-8 bytes.
// JSON strings are Unicode: encoding/json writes such a key with U+FFFD in
// place of the bad bytes, which names another key. So every JSON field that
// carries a key ("key", "dest") is joined by a "<field>_pct" field (key_pct,
// dest_pct) when the key is not valid UTF-8: the key in percent-encoded
// form (PctKey), which names it exactly and is also its path under /v1/kv.
//
// Writing: kvtar stores a name longer than the 255 bytes of a ustar header
// in a PAX "path" record, which must be UTF-8 (tar readers refuse others),
// so it could store a short non-UTF-8 key but not a long one. One rule
// instead, at every length: a key written through the API or the CLI (set,
// set_partial, allocate, the destination of rename) must be valid UTF-8
// (CheckNewKey); other keys are 400 invalid_key. Keys already in the store
// that are not UTF-8 (from a foreign archive) can be read, listed, renamed
// to a UTF-8 key and removed.

// PctKey is k with each segment percent-encoded as in a URL path
// (url.PathEscape): "/nu/%FF%FE", "/" for the root. It is ASCII, names k
// exactly, and "/v1/kv"+PctKey(k) is KeyPath(k). ParsePctKey reverses it.
func PctKey(k kv.Key) string { return strings.TrimPrefix(KeyPath(k), "/v1/kv") }

// ParsePctKey parses a key in the form PctKey gives (any percent-encoding
// of its segments is accepted); a bad escape or key is invalid_key.
func ParsePctKey(s string) (kv.Key, error) {
	var segs []string
	for _, seg := range strings.Split(s, "/") {
		if seg == "" {
			continue
		}
		d, err := url.PathUnescape(seg)
		if err != nil || strings.Contains(d, "/") {
			return kv.Root, &kv.Error{Op: "parse", Err: kv.ErrInvalidKey, Detail: fmt.Sprintf("bad percent-encoded segment %q", seg)}
		}
		segs = append(segs, d)
	}
	return kv.ParseKey("/" + strings.Join(segs, "/"))
}

// keyPct is the key_pct of k: PctKey(k) when k is not valid UTF-8, else "".
func keyPct(k kv.Key) string {
	if utf8.ValidString(k.String()) {
		return ""
	}
	return PctKey(k)
}

// CheckNewKey returns nil when op may write k through tarstore's API or
// command line: when k is valid UTF-8. Otherwise it is an invalid_key
// *kv.Error of op on k naming the first bad segment (see "Keys that are
// not UTF-8" above).
func CheckNewKey(op string, k kv.Key) error {
	for seg := range k.All() {
		if !utf8.ValidString(seg) {
			return &kv.Error{Op: op, Key: k, Err: kv.ErrInvalidKey,
				Detail: fmt.Sprintf("segment %+q is not valid UTF-8 (keys written through tarstore must be UTF-8)", seg)}
		}
	}
	return nil
}
