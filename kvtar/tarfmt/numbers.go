package tarfmt

import (
	"math"
	"strconv"
	"time"
)

// Numeric header fields are parsed as GNU tar 1.34 parses them (from_header
// in its src/list.c), so that the store sees what GNU tar extracts:
//
//   - One leading NUL is skipped ("a buggy tar of unknown vintage" wrote
//     one when the previous field overflowed), then white space (space,
//     \t, \n, \v, \f, \r). A field blank to its end is ErrNumber: GNU tar
//     reports "Blanks in header where numeric value expected" and fails.
//   - Octal digits are read up to the first other byte. That byte must be a
//     NUL or white space (or the field ends there); what follows it is not
//     looked at. So a second leading NUL ends the field: "\0\0…0016\0"
//     is 0, as GNU tar, bsdtar and Python read it (Go reads 14).
//   - Base-256 (GNU tar, also read by bsdtar, Python and Go): the byte
//     there is 0x80 (positive) or 0xff (negative); the rest of the field is
//     a big-endian two's-complement number in which that byte's top bit
//     stands for a copy of the sign bit. Another byte with its top bit set
//     is ErrNumber, as in GNU tar and Python (bsdtar and Go accept it).
//     Values that do not fit in an int64 are ErrRange.
//   - Nothing else is a number (GNU tar's obsolete base-64, '+' or '-'
//     first, is ErrNumber).
//
// A field made of NULs is 0. The checksum field follows the same rules
// without base-256 (parseOctal), as in GNU tar's tar_checksum.

// parseNumeric decodes an octal or base-256 header field.
func parseNumeric(b []byte) (int64, error) { return parseField(b, true) }

// parseOctal decodes an octal header field (the checksum).
func parseOctal(b []byte) (int64, error) { return parseField(b, false) }

// parseField is GNU tar's from_header; base256 allows base-256.
func parseField(b []byte, base256 bool) (int64, error) {
	i := 0
	if len(b) > 0 && b[0] == 0 {
		i++
	}
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	switch {
	case i == len(b):
		return 0, errorf(ErrNumber, 0, "blank numeric field %q", b)
	case base256 && (b[i] == 0x80 || b[i] == 0xff):
		return parseBase256(b[i:])
	}
	var x int64
	for ; i < len(b) && '0' <= b[i] && b[i] <= '7'; i++ {
		if x > math.MaxInt64>>3 {
			return 0, errorf(ErrRange, 0, "octal value overflows 64 bits")
		}
		x = x<<3 | int64(b[i]-'0')
	}
	if i < len(b) && b[i] != 0 && !isSpace(b[i]) {
		return 0, errorf(ErrNumber, 0, "byte %q in numeric field %q", b[i], b)
	}
	return x, nil
}

// isSpace reports whether c is white space in the C locale (isspace).
func isSpace(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }

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

// parsePAXTime decodes a PAX time as GNU tar 1.34 does (decode_timespec in
// its src/misc.c): an optional '-', decimal seconds (at least one digit)
// and an optional '.' followed by decimal fraction digits (digits beyond
// nanoseconds are dropped). Whatever follows is ignored: "12a4" is 12 s
// and "1234.5x" 1234.5 s, as GNU tar and bsdtar read them silently
// (Python reads 0, Go refuses the header). A value that does not start
// with a digit is ErrNumber (GNU tar: "Malformed extended header").
//
// A negative value counts back from the epoch as a whole, so "-1.5" is
// 1.5 s before 1970 (time.Unix(-2, 5e8)), as GNU tar, Python and Go read
// it; like GNU tar, nonzero digits beyond nanoseconds round a negative
// time down ("-1.0000000001" is time.Unix(-2, 999999999)).
func parsePAXTime(s string) (time.Time, error) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	sec, err := parseDecimal(s[:n])
	if err != nil {
		return time.Time{}, err
	}
	var nsec int64
	dropped := false // nonzero digits beyond nanoseconds
	if n < len(s) && s[n] == '.' {
		digits := 0
		for _, c := range []byte(s[n+1:]) {
			if c < '0' || c > '9' {
				break
			}
			if digits < 9 {
				nsec, digits = nsec*10+int64(c-'0'), digits+1
			} else if c != '0' {
				dropped = true
			}
		}
		for ; digits < 9; digits++ {
			nsec *= 10
		}
	}
	if sec > maxUnix {
		return time.Time{}, errorf(ErrRange, 0, "time %q out of range", s)
	}
	if neg {
		if dropped {
			nsec++
		}
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
