package tarfmt

import (
	"math"
	"strconv"
	"time"
)

// Numeric header fields come in two encodings:
//
//   - Octal (POSIX ustar): ASCII digits 0-7, conventionally zero-padded and
//     terminated by a NUL or a space. Like GNU tar and Go, parseOctal is
//     tolerant: leading spaces and NULs are skipped, the digits may be
//     followed by any mix of spaces and NULs, and a field holding nothing
//     else is zero. Any other byte is ErrNumber.
//   - Base-256 (GNU tar, also read by bsdtar, Python and Go): the first byte
//     has its top bit set; the field is then a big-endian two's-complement
//     number in which the top bit stands for a copy of the sign bit (bit 6
//     of the first byte). 0x80 0x00… is positive, 0xff 0xff… negative.
//     Values that do not fit in an int64 are ErrRange.

// parseNumeric decodes an octal or base-256 header field.
func parseNumeric(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		return parseBase256(b)
	}
	return parseOctal(b)
}

func parseBase256(b []byte) (int64, error) {
	neg := b[0]&0x40 != 0
	var ext byte // sign extension byte
	if neg {
		ext = 0xff
	}
	var x uint64
	for i, c := range b {
		if i == 0 {
			c = c&0x7f | ext&0x80
		}
		if i < len(b)-8 {
			if c != ext {
				return 0, errorf(ErrRange, 0, "base-256 value overflows 64 bits")
			}
			continue
		}
		x = x<<8 | uint64(c)
	}
	v := int64(x)
	if len(b) < 8 {
		if neg {
			v |= -1 << (8 * len(b))
		}
	} else if (v < 0) != neg {
		return 0, errorf(ErrRange, 0, "base-256 value overflows 64 bits")
	}
	return v, nil
}

func parseOctal(b []byte) (int64, error) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	var x int64
	for ; i < len(b) && '0' <= b[i] && b[i] <= '7'; i++ {
		if x > math.MaxInt64>>3 {
			return 0, errorf(ErrRange, 0, "octal value overflows 64 bits")
		}
		x = x<<3 | int64(b[i]-'0')
	}
	for ; i < len(b); i++ {
		if b[i] != ' ' && b[i] != 0 {
			return 0, errorf(ErrNumber, 0, "byte %q in octal field %q", b[i], b)
		}
	}
	return x, nil
}

// formatOctal writes v into dst as zero-padded octal digits followed by a
// NUL, and reports whether it fits (v >= 0 and len(dst)-1 digits suffice).
func formatOctal(dst []byte, v int64) bool {
	if v < 0 || !fitsOctal(v, len(dst)) {
		return false
	}
	dst[len(dst)-1] = 0
	for i := len(dst) - 2; i >= 0; i-- {
		dst[i] = byte('0' + v&7)
		v >>= 3
	}
	return true
}

// fitsOctal reports whether v fits a NUL-terminated octal field of n bytes.
func fitsOctal(v int64, n int) bool {
	if v < 0 {
		return false
	}
	digits := n - 1
	if digits < 0 {
		return false
	}
	if digits >= 21 {
		return true
	}
	return v < int64(1)<<(3*digits)
}

// maxOctal11 is the largest value an 11-digit octal field (size, mtime)
// holds: 8 GiB - 1.
const maxOctal11 = 1<<33 - 1

// maxOctal7 is the largest value a 7-digit octal field (mode, uid, gid,
// devmajor, devminor) holds.
const maxOctal7 = 1<<21 - 1

// Times are limited to seconds in [minUnix, maxUnix] so that every decoded
// time is represented exactly by time.Time (whose internal seconds count
// starts at year 1) and round-trips through Unix().
const (
	minUnix = -(1 << 62)
	maxUnix = 1 << 62
)

// parseDecimal decodes a PAX decimal value: one or more ASCII digits, no
// sign, no spaces.
func parseDecimal(s string) (int64, error) {
	if s == "" {
		return 0, errorf(ErrNumber, 0, "empty number")
	}
	var x int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errorf(ErrNumber, 0, "byte %q in decimal number %q", c, s)
		}
		if x > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, errorf(ErrRange, 0, "decimal number %q overflows 64 bits", s)
		}
		x = x*10 + int64(c-'0')
	}
	return x, nil
}

// parsePAXTime decodes a PAX time: an optional '-', decimal seconds and an
// optional '.' followed by decimal fraction digits (digits beyond
// nanoseconds are dropped). A negative value counts back from the epoch as
// a whole, so "-1.5" is 1.5 s before 1970 (time.Unix(-2, 5e8)), as GNU tar,
// Python and Go read it.
func parsePAXTime(s string) (time.Time, error) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	whole, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			whole, frac = s[:i], s[i+1:]
			break
		}
	}
	sec, err := parseDecimal(whole)
	if err != nil {
		return time.Time{}, err
	}
	var nsec int64
	for i := 0; i < 9; i++ {
		nsec *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return time.Time{}, errorf(ErrNumber, 0, "byte %q in time fraction %q", c, frac)
			}
			nsec += int64(c - '0')
		}
	}
	for i := 9; i < len(frac); i++ {
		if frac[i] < '0' || frac[i] > '9' {
			return time.Time{}, errorf(ErrNumber, 0, "byte %q in time fraction %q", frac[i], frac)
		}
	}
	if sec > maxUnix {
		return time.Time{}, errorf(ErrRange, 0, "time %q out of range", s)
	}
	if neg {
		sec = -sec
		if nsec != 0 {
			sec, nsec = sec-1, 1e9-nsec
		}
	}
	if sec < minUnix {
		return time.Time{}, errorf(ErrRange, 0, "time %q out of range", s)
	}
	return time.Unix(sec, nsec), nil
}

// formatPAXTime is the inverse of parsePAXTime: seconds, and the fraction
// without trailing zeros when there is one.
func formatPAXTime(t time.Time) string {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	if nsec == 0 {
		return itoa(sec)
	}
	sign := ""
	if sec < 0 {
		sign, sec, nsec = "-", -(sec + 1), 1e9-nsec
	}
	frac := []byte{'0', '0', '0', '0', '0', '0', '0', '0', '0'}
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + nsec%10)
		nsec /= 10
	}
	n := len(frac)
	for n > 0 && frac[n-1] == '0' {
		n--
	}
	return sign + itoa(sec) + "." + string(frac[:n])
}

// itoa formats v in decimal.
func itoa(v int64) string { return strconv.FormatInt(v, 10) }
