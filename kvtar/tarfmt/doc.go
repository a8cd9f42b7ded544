// Package tarfmt is a sans-I/O tar codec: it encodes and decodes tar
// headers on byte slices and 512-byte blocks and never touches a file or a
// device. The kvtar store drives it over a block device; tests drive it
// over byte slices.
//
// # Formats
//
// It reads the formats written by GNU tar, bsdtar (libarchive), Python's
// tarfile and Go's archive/tar:
//
//   - Unix V7 headers and POSIX.1-1988 ustar (IEEE Std 1003.1, "pax —
//     ustar Interchange Format"): octal numbers, 100-byte name plus
//     155-byte prefix, uname/gname, device numbers; star's 131-byte prefix.
//   - POSIX.1-2001 pax (IEEE Std 1003.1-2001, "pax Interchange Format"):
//     x headers for the next member and g global headers, records
//     "%d %s=%s\n" with path, linkpath, size, mtime (fractional and
//     negative), uid, gid, uname, gname.
//   - GNU tar (GNU tar manual, "Basic Tar Format" and "GNU Extensions"):
//     base-256 numbers, L/K long names and link names, old GNU sparse
//     members ('S' with extension blocks), and the PAX sparse formats 0.0,
//     0.1 and 1.0 (GNU.sparse.* records, "Storing Sparse Files").
//
// Precedence for names: PAX path/linkpath (x, else applicable g) over GNU
// L/K over ustar prefix+name; GNU.sparse.name over all for PAX sparse
// members.
//
// It writes ustar headers, preceded by a pax x header when a field does not
// fit (see EncodeHeader; with hdrcharset=BINARY when a name in it is not
// ASCII), and holes (see EncodeHole): spans of PAX g
// headers whose only record is a comment, which make deleted space
// invisible to every reader.
//
// # Reading
//
// The Decoder is a state machine fed one header block at a time (the
// block's archive offset and its bytes). Each call returns a Step that says
// what it found or what it needs: the next header block, the data of an
// extended header (x, g, L, K), a sparse extension block or sparse map, or
// a result — a Member (fully resolved Header, where its first block, header,
// data and end are, its stored data size and its sparse map), a Global (g
// header, recognised as a hole when it holds only comments), or a zero
// block. Member data is never read: the caller reads it at DataOffset, and
// Member.Extents maps logical ranges of sparse members to the archive. See
// Decoder for the contract step by step.
//
// The decoder reads what GNU tar extracts; it is strict where readers
// disagree and GNU tar reports an error, so that what it accepts reads the
// same in GNU tar, bsdtar, Python and Go as far as they agree: an x, L or K
// header must be directly followed by its member (not by a g header or a
// zero block — bsdtar rejects x g x — nor an x header by a second one),
// links, devices, directories and FIFOs must have size 0 (GNU tar skips
// their data, the others do not), extended data is limited to
// MaxExtendedSize (1 MiB, Go's limit), sparse maps must read the same
// (sparse.go).
//
// Where readers disagree and GNU tar reads silently, the decoder follows
// GNU tar 1.34 (measured on crafted archives, TestOdd*; the other readers'
// behaviour is noted there):
//
//   - numeric fields are parsed by GNU tar's rules (numbers.go): one
//     leading NUL skipped, then spaces; a second NUL ends the field (a
//     size "\0\0\0\0\0\0\0" "0016" "\0" is 0, Go reads 14); a field with
//     one leading NUL is read on ("\0" "0000000016" "\0" is 14, bsdtar and
//     Python read 0). The checksum too: "\0\0" before its digits makes it
//     0, which fails (Go accepts it);
//   - a second L (or K) header for one member replaces the first (Python
//     keeps the first);
//   - a PAX mtime is read up to the first byte that is not part of the
//     number: "12a4" is 12 s (bsdtar too; Python reads 0, Go refuses);
//   - a PAX value is read up to its first NUL: a path "a\0b" is "a"
//     (bsdtar too; Python keeps the NUL, Go refuses);
//   - a PAX 0.x sparse map may declare more entries than it holds, and
//     PAX 1.0 maps and old GNU extension blocks may be of any size (GNU
//     tar and bsdtar read them; Go refuses them); the decoder allocates
//     by the data fragments present only.
//
// Checksums are accepted in their unsigned and historic signed forms.
//
// Errors are *FormatError values carrying the archive offset at fault and
// wrapping a sentinel (ErrChecksum, ErrTruncated, ErrFieldTooLong,
// ErrNumber, ErrRange, ErrPAXRecord, ErrSparse, ErrHeader, ErrMisplaced,
// ErrUsage) for errors.Is. No input makes the package panic (fuzzed).
//
// # Writing
//
// EncodeHeader returns the header blocks of one member; Padding and
// EndOfArchive complete an archive. HoleWrites, HoleChunks, HoleHeader and
// EncodeHole build holes; hole.go documents the construction, the measured
// reader behaviour it relies on, and the invariants the store must keep:
// never an x header in a hole, an x header only directly before its member,
// chunks of at most 512 KiB of data, and no g or x header directly before
// the end of archive.
//
// Go's archive/tar is used only as a test oracle; this package does not
// import it.
package tarfmt
