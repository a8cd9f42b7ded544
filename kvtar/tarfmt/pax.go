package tarfmt

import (
	"bytes"
	"strings"
)

// MaxExtendedSize bounds the data of one extended header (PAX x or g, GNU
// L or K) that the decoder accepts, and of the x header EncodeHeader
// writes. Go's reader refuses PAX headers over 1 MiB and bsdtar attributes
// over about 1 MB; the store never needs more, and the bound keeps the
// decoder's memory small. Sparse maps in the data area (PAX 1.0) or in
// extension blocks (old GNU) are not bounded by it: GNU tar and bsdtar read
// them whatever their size, and the decoder keeps only their data
// fragments (sparse.go).
const MaxExtendedSize = 1 << 20

// A Record is one PAX extended header record, "<len> <Key>=<Value>\n".
type Record struct {
	Key, Value string
}

// PAX keywords the decoder interprets (POSIX.1-2001 pax, "pax Extended
// Header"), and the GNU sparse keywords (GNU tar manual, "Storing Sparse
// Files"). Other keywords (atime, ctime, comment, charset, hdrcharset,
// SCHILY.*, LIBARCHIVE.*) are accepted and ignored: the decoder keeps names
// as bytes, so hdrcharset=BINARY (which EncodeHeader writes, see there)
// changes nothing for it.
const (
	paxPath     = "path"
	paxLinkpath = "linkpath"
	paxSize     = "size"
	paxMtime    = "mtime"
	paxUid      = "uid"
	paxGid      = "gid"
	paxUname    = "uname"
	paxGname    = "gname"
	paxComment  = "comment"
	paxCharset  = "hdrcharset"

	sparseMajor     = "GNU.sparse.major"
	sparseMinor     = "GNU.sparse.minor"
	sparseName      = "GNU.sparse.name"
	sparseRealSize  = "GNU.sparse.realsize"
	sparseSize      = "GNU.sparse.size"
	sparseNumBlocks = "GNU.sparse.numblocks"
	sparseOffset    = "GNU.sparse.offset"
	sparseNumBytes  = "GNU.sparse.numbytes"
	sparseMap       = "GNU.sparse.map"
)

// globalKeys are the keywords whose values in a g header apply to every
// following member until overridden (POSIX: "global extended header").
var globalKeys = map[string]bool{
	paxPath: true, paxLinkpath: true, paxSize: true, paxMtime: true,
	paxUid: true, paxGid: true, paxUname: true, paxGname: true,
}

// ParseRecords splits PAX extended header data into its records, strictly:
// each record is a decimal length (ASCII digits) counting the whole record,
// a space, a non-empty keyword without '=' or NUL, '=', the value, and a
// newline which must be the record's last byte; the records must cover the
// data exactly. Values may hold any bytes (a comment can be binary, a path
// can hold a NUL: the Decoder reads the values it interprets up to their
// first NUL, see recordValue). On error it returns a *FormatError whose
// Offset is relative to data.
func ParseRecords(data []byte) ([]Record, error) {
	var recs []Record
	for pos := 0; pos < len(data); {
		r, n, err := parseRecord(data[pos:])
		if err != nil {
			return nil, formatErr(int64(pos), "PAX record", err)
		}
		recs = append(recs, r)
		pos += n
	}
	return recs, nil
}

// parseRecord parses the record at the start of s and returns it and its
// length.
func parseRecord(s []byte) (Record, int, error) {
	i := 0
	for i < len(s) && i < 20 && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ' ' {
		return Record{}, 0, errorf(ErrPAXRecord, 0, "no length prefix")
	}
	n, err := parseDecimal(string(s[:i]))
	if err != nil {
		return Record{}, 0, errorf(ErrPAXRecord, 0, "length: %v", err)
	}
	if n > int64(len(s)) {
		return Record{}, 0, errorf(ErrPAXRecord, 0, "length %d runs past the data (%d bytes left)", n, len(s))
	}
	if n < int64(i)+4 { // digits, space, one-byte key, '=', '\n'
		return Record{}, 0, errorf(ErrPAXRecord, 0, "length %d too small", n)
	}
	rec := s[i+1 : n]
	if rec[len(rec)-1] != '\n' {
		return Record{}, 0, errorf(ErrPAXRecord, int(n)-1, "record does not end with a newline")
	}
	rec = rec[:len(rec)-1]
	eq := bytes.IndexByte(rec, '=')
	if eq <= 0 {
		return Record{}, 0, errorf(ErrPAXRecord, i+1, "record has no keyword")
	}
	key, value := string(rec[:eq]), string(rec[eq+1:])
	if strings.IndexByte(key, 0) >= 0 {
		// GNU tar looks for the '=' in a C string: it reports a missing
		// equal sign.
		return Record{}, 0, errorf(ErrPAXRecord, i+1, "keyword %q contains NUL", key)
	}
	return Record{Key: key, Value: value}, int(n), nil
}

// recordValue returns the value of a record as the Decoder interprets it:
// up to its first NUL. GNU tar hands every value to its keyword's decoder
// as a C string, and bsdtar copies path, linkpath, uname and gname as C
// strings: a PAX path "dir/name\x00tail" is dir/name in both (measured,
// GNU tar 1.34 and bsdtar 3.6.2). Python keeps the NUL, Go refuses the
// header.
func recordValue(v string) string {
	if i := strings.IndexByte(v, 0); i >= 0 {
		return v[:i]
	}
	return v
}

// appendRecord appends the record "<len> key=value\n" to dst. The length
// counts its own digits: with n the length of everything else, the record
// is n+d bytes where d is the number of digits of n+d.
func appendRecord(dst []byte, key, value string) []byte {
	n := len(key) + len(value) + 3 // ' ', '=', '\n'
	total := n + len(itoa(int64(n)))
	if len(itoa(int64(total))) != total-n {
		total = n + len(itoa(int64(total)))
	}
	dst = append(dst, itoa(int64(total))...)
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, '\n')
}

// holeRecordPrefix is the start of the comment record that fills a hole
// chunk's data area of n bytes exactly: "<n> comment=". The record's value
// is the following n-len(prefix)-1 bytes, whatever they are, and its last
// byte is '\n'. Because the record is the whole data area, its length is n
// itself: no self-referential digit count to solve.
func holeRecordPrefix(n int64) []byte {
	return []byte(itoa(n) + " " + paxComment + "=")
}

// isHolePrefix reports whether data, the first bytes of the n-byte data
// area of a g header, starts with holeRecordPrefix(n).
func isHolePrefix(data []byte, n int64) bool {
	return bytes.HasPrefix(data, holeRecordPrefix(n))
}

// appendComment appends a comment record of exactly n bytes (n >= 12:
// "12 comment=\n" is the shortest), its value spaces.
func appendComment(dst []byte, n int64) []byte {
	for digits := int64(1); ; digits++ {
		v := n - digits - int64(len(" comment=\n"))
		if v >= 0 && int64(len(itoa(n))) == digits {
			dst = append(dst, itoa(n)...)
			dst = append(dst, " comment="...)
			for range v {
				dst = append(dst, ' ')
			}
			return append(dst, '\n')
		}
		if digits > 20 {
			panic("tarfmt: comment record length")
		}
	}
}
