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
// fit (see EncodeHeader), and holes (see EncodeHole): spans of PAX g
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
// The decoder is strict where readers disagree, so that what it accepts
// reads the same in GNU tar, bsdtar, Python and Go: an x, L or K header must
// be directly followed by its member (not by a second one of its kind, a g
// header or a zero block — bsdtar rejects x g x), links, devices,
// directories and FIFOs must have size 0 (GNU tar skips their data, the
// others do not), extended data is limited to MaxExtendedSize (1 MiB, Go's
// limit). Numeric fields are parsed as tolerantly as GNU tar does (leading
// spaces, NUL or space terminators). Checksums are accepted in their
// unsigned and historic signed forms.
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
