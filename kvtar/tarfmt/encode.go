package tarfmt

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// EncodeHeader returns the blocks to write before a member's data: one
// ustar header block, preceded by a PAX x header and its records (padded to
// a block) when some field does not fit ustar. The output depends only on
// h (Format is ignored); the data follows, padded with Padding, and the
// archive ends with EndOfArchive.
//
// Fields go into the ustar header when they fit; otherwise into an x
// record:
//
//   - Name: written without its leading '/'s. Up to 100 bytes in the name
//     field, or split at a '/' into prefix (≤ 155) and name (≤ 100); longer
//     names get a "path" record. ustar fields are byte-transparent, so
//     non-ASCII names that fit are stored as they are; all four readers
//     list them unchanged in every locale (measured).
//   - Linkname: up to 100 bytes, else a "linkpath" record.
//   - Size: below 8 GiB (11 octal digits), else a "size" record.
//   - ModTime: whole seconds in [0, 8^11) in the mtime field; a sub-second
//     part or a time outside that range (before 1970) needs an "mtime"
//     record (the field then holds the seconds clamped to its range).
//   - Uid, Gid: up to 0o7777777, else "uid"/"gid" records (at most 2^32-1).
//   - Uname, Gname: up to 31 bytes (the field is NUL-terminated), else
//     "uname"/"gname" records.
//
// A header whose path, linkpath, uname or gname record is not pure ASCII
// starts its records with "hdrcharset=BINARY" (POSIX: the values are bytes,
// not UTF-8), so that every reader takes them as they are. Without it
// bsdtar converts them from UTF-8: it turns a name that is not in Unicode
// normal form C into another name ("e" U+0301 becomes "é" U+00E9), and
// refuses a name that is not valid UTF-8 (and, in the C locale, any
// non-ASCII name). With it, bsdtar 3.6.2, Python 3.11, Go and GNU tar 1.34
// read the exact bytes, in the C and C.UTF-8 locales (measured, see
// TestOddNonNFCKeys); GNU tar 1.34, which does not know the keyword,
// prints "Ignoring unknown extended header keyword 'hdrcharset'" for each
// such member (exit status 0). Names that fit the ustar fields need no
// record: ustar fields are bytes for every reader.
//
// Invalid headers are *HeaderError: an empty name (after removing '/'), a
// NUL in a string, negative numbers, Mode or device numbers over 7 octal
// digits, a typeflag the codec writes itself (x, g, L, K, S), data on a
// type that has none (links, devices, directories, FIFOs), an mtime outside
// ±2^62 seconds, or an x header over MaxExtendedSize.
func EncodeHeader(h Header) ([]byte, error) { return encodeHeader(h, 0) }

// EncodeHeaderBlocks is EncodeHeader with the output padded to exactly
// blocks blocks: when the header needs fewer, its x header (added if need
// be) carries a comment record that fills the difference, which every
// reader ignores (POSIX: comment records have no effect). A store that
// rewrites a member's header in place uses it so that no gap is left
// before the data (a one-block gap could not be a hole: an empty g header
// is refused by current libarchive). It fails with ErrFieldTooLong when
// the header needs more than blocks blocks, or when blocks is 2 and the
// header is not exactly that size (an x header takes at least two blocks,
// so a header of 1 block cannot grow by one).
func EncodeHeaderBlocks(h Header, blocks int64) ([]byte, error) {
	return encodeHeader(h, blocks)
}

func encodeHeader(h Header, blocks int64) ([]byte, error) {
	name := strings.TrimLeft(h.Name, "/")
	tf := h.Typeflag
	if tf == TypeRegA {
		tf = TypeReg
	}
	if err := checkHeader(h, name, tf); err != nil {
		return nil, err
	}

	var blk Block
	var recs []byte
	binary := false // a string record is not pure ASCII
	addRec := func(key, value string) {
		recs = appendRecord(recs, key, value)
		binary = binary || !isASCII(value)
	}

	if prefix, base, ok := splitUSTARName(name); ok {
		copy(blk.prefix(), prefix)
		copy(blk.name(), base)
	} else {
		addRec(paxPath, name)
		copy(blk.name(), name) // truncated: readers use the path record
	}
	if len(h.Linkname) <= len(blk.linkname()) {
		copy(blk.linkname(), h.Linkname)
	} else {
		addRec(paxLinkpath, h.Linkname)
		copy(blk.linkname(), h.Linkname)
	}
	if !formatOctal(blk.size(), h.Size) {
		recs = appendRecord(recs, paxSize, itoa(h.Size))
		formatOctal(blk.size(), 0)
	}
	sec := h.ModTime.Unix()
	if h.ModTime.Nanosecond() != 0 || !fitsOctal(sec, len(blk.mtime())) {
		recs = appendRecord(recs, paxMtime, formatPAXTime(h.ModTime))
	}
	formatOctal(blk.mtime(), min(max(sec, 0), maxOctal11))
	for _, f := range []struct {
		key   string
		v     int64
		field []byte
	}{{paxUid, h.Uid, blk.uid()}, {paxGid, h.Gid, blk.gid()}} {
		if !formatOctal(f.field, f.v) {
			recs = appendRecord(recs, f.key, itoa(f.v))
			formatOctal(f.field, 0)
		}
	}
	for _, f := range []struct {
		key, v string
		dst    []byte
	}{{paxUname, h.Uname, blk.uname()}, {paxGname, h.Gname, blk.gname()}} {
		if len(f.v) < len(f.dst) {
			copy(f.dst, f.v)
		} else {
			addRec(f.key, f.v)
		}
	}
	if binary {
		recs = append(appendRecord(nil, paxCharset, charsetBinary), recs...)
	}
	formatOctal(blk.mode(), h.Mode)
	formatOctal(blk.devmajor(), h.Devmajor)
	formatOctal(blk.devminor(), h.Devminor)
	blk.typeflag()[0] = tf
	copy(blk.magic(), magicUSTAR)
	copy(blk.version(), versionUSTAR)
	blk.SetChecksum()

	natural := int64(1)
	if len(recs) > 0 {
		natural = 2 + (int64(len(recs))+BlockSize-1)/BlockSize
	}
	if blocks > 0 && blocks != natural {
		if blocks < natural || blocks < 3 {
			return nil, &HeaderError{Field: "blocks", Reason: fmt.Sprintf("the header takes %d blocks, cannot be padded to %d", natural, blocks), Err: ErrFieldTooLong}
		}
		recs = appendComment(recs, (blocks-2)*BlockSize-int64(len(recs)))
	}
	if len(recs) == 0 {
		return blk[:], nil
	}
	if len(recs) > MaxExtendedSize {
		return nil, &HeaderError{Field: "Name", Reason: "PAX records over MaxExtendedSize", Err: ErrFieldTooLong}
	}
	var x Block
	copy(x.name(), paxHeaderName(name))
	formatOctal(x.mode(), 0o644)
	formatOctal(x.uid(), 0)
	formatOctal(x.gid(), 0)
	formatOctal(x.size(), int64(len(recs)))
	formatOctal(x.mtime(), min(max(sec, 0), maxOctal11))
	x.typeflag()[0] = TypeXHeader
	copy(x.magic(), magicUSTAR)
	copy(x.version(), versionUSTAR)
	x.SetChecksum()
	out := make([]byte, 0, 2*BlockSize+len(recs)+int(padLen(int64(len(recs)))))
	out = append(out, x[:]...)
	out = append(out, recs...)
	out = append(out, make([]byte, padLen(int64(len(recs))))...)
	return append(out, blk[:]...), nil
}

// charsetBinary is the hdrcharset value that makes the header's string
// values bytes (POSIX.1-2001 pax, "hdrcharset").
const charsetBinary = "BINARY"

// isASCII reports whether s is pure ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// maxID is the largest uid or gid GNU tar accepts (its uid_t and gid_t are
// 32-bit unsigned; measured: "Extended header gid=1099511627776 is out of
// range 0..4294967295").
const maxID = 1<<32 - 1

func checkHeader(h Header, name string, tf byte) error {
	bad := func(field, reason string) error {
		return &HeaderError{Field: field, Reason: reason, Err: ErrUnencodable}
	}
	switch {
	case name == "":
		return bad("Name", "empty")
	case strings.IndexByte(name, 0) >= 0:
		return bad("Name", "contains NUL")
	case strings.IndexByte(h.Linkname, 0) >= 0:
		return bad("Linkname", "contains NUL")
	case strings.IndexByte(h.Uname, 0) >= 0:
		return bad("Uname", "contains NUL")
	case strings.IndexByte(h.Gname, 0) >= 0:
		return bad("Gname", "contains NUL")
	case h.Size < 0:
		return bad("Size", "negative")
	case h.Mode < 0 || h.Mode > maxOctal7:
		return bad("Mode", "outside [0, 0o7777777]")
	case h.Uid < 0 || h.Uid > maxID:
		return bad("Uid", "outside [0, 2^32-1] (GNU tar refuses larger ids)")
	case h.Gid < 0 || h.Gid > maxID:
		return bad("Gid", "outside [0, 2^32-1] (GNU tar refuses larger ids)")
	case h.Devmajor < 0 || h.Devmajor > maxOctal7:
		return bad("Devmajor", "outside [0, 0o7777777]")
	case h.Devminor < 0 || h.Devminor > maxOctal7:
		return bad("Devminor", "outside [0, 0o7777777]")
	}
	switch tf {
	case TypeXHeader, TypeXGlobalHeader, TypeGNULongName, TypeGNULongLink, TypeGNUSparse:
		return bad("Typeflag", "the codec writes "+string(rune(tf))+" headers itself")
	case TypeLink, TypeSymlink, TypeChar, TypeBlock, TypeDir, TypeFifo:
		if h.Size != 0 {
			return bad("Size", "a "+string(rune(tf))+" member has no data")
		}
	}
	if sec := h.ModTime.Unix(); sec < minUnix || sec > maxUnix {
		return &HeaderError{Field: "ModTime", Reason: "outside ±2^62 seconds", Err: ErrRange}
	}
	return nil
}

// splitUSTARName splits name into ustar prefix and name fields: the whole
// name when it fits the 100-byte name field, else at the first '/' that
// leaves at most 155 bytes of prefix and 1 to 100 bytes of name.
func splitUSTARName(name string) (prefix, base string, ok bool) {
	if len(name) <= 100 {
		return "", name, true
	}
	if len(name) > 100+1+155 {
		return "", "", false
	}
	for i := max(1, len(name)-101); i <= 155 && i < len(name)-1; i++ {
		if name[i] == '/' {
			return name[:i], name[i+1:], true
		}
	}
	return "", "", false
}

// paxHeaderName is the name of the x header before member name:
// "PaxHeaders/<base>" with non-printable or non-ASCII bytes as '_', cut to
// the 100-byte name field. Readers do not use it.
func paxHeaderName(name string) string {
	base := strings.TrimRight(name, "/")
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	b := []byte("PaxHeaders/" + base)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

// PadLen returns the number of zero bytes that follow n bytes of member
// data to fill its last block.
func PadLen(n int64) int64 { return padLen(n) }

// Padding returns the zero bytes that follow n bytes of member data.
func Padding(n int64) []byte { return make([]byte, padLen(n)) }

// EndOfArchiveSize is the size of the end-of-archive marker.
const EndOfArchiveSize = 2 * BlockSize

// EndOfArchive returns the end-of-archive marker: two zero blocks.
func EndOfArchive() []byte { return make([]byte, EndOfArchiveSize) }
