package tarfmt

import "fmt"

// Holes make a span of blocks invisible to readers without moving anything
// after it. A hole of B blocks (B >= 1) is a chain of chunks; each chunk is
// a PAX global header (typeflag g) whose data area, of D = 512*(blocks-1)
// bytes, is exactly one record
//
//	"<D> comment=<filler>\n"
//
// Because the record fills the whole data area, its length is D itself and
// needs no self-referential digit count; the filler is D - len("<D>
// comment=") - 1 bytes of anything. A one-block chunk is a g header with no
// data (size 0). Facts measured with GNU tar 1.34, bsdtar 3.6.2, Python
// 3.11 and Go 1.26 (SPEC §4), on which this relies:
//
//   - such a g header is skipped silently by all four readers, whatever the
//     filler bytes (binary included); Go returns it to callers as a
//     TypeXGlobalHeader entry;
//   - Go refuses a PAX header over 1 MiB and bsdtar an attribute over about
//     1 MB, so a chunk carries at most MaxHoleChunkData (512 KiB) of data;
//   - the comment keyword has no effect on following members (POSIX).
//
// Chains of g headers are NOT safe, although the four readers above accept
// short ones: libarchive counts every special header (g, x, L, K) before a
// member and refuses a 32nd; since 3.7.5 (fatal since 3.8.0) it refuses a
// second g header before an entry ("Redundant 'g' header"), and 3.8.9 an
// empty one (size 0); Python's tarfile recurses once per special header.
// So a writer keeps at most one chunk, of at least two blocks, between two
// members: HoleChunks splits a span as it is asked to, and a span longer
// than one chunk (or of one block) must not stay in an archive (the store
// compacts it, kvtar/compact.go).
//
// Invariants the store relies on:
//
//   - holes never use x headers (two x headers in a row, or x g x, make
//     bsdtar fail); EncodeHeader writes an x header only directly before
//     its member, so removing a member together with its x header leaves
//     no x header behind;
//   - a g hole directly before an x header is fine, but a g (or x) header
//     directly before the end-of-archive blocks makes Python fail: a hole
//     at the tail of the archive must become the new end of archive
//     instead (write EndOfArchive at its start);
//   - every chunk is at most 1 + MaxHoleChunkData/512 blocks.

// MaxHoleChunkData is the most data one hole chunk carries.
const MaxHoleChunkData = 512 << 10

// maxChunkBlocks is the size of the largest chunk in blocks.
const maxChunkBlocks = 1 + MaxHoleChunkData/BlockSize

// A HoleChunk is one g header of a hole: Blocks blocks at Offset.
type HoleChunk struct {
	Offset int64
	Blocks int64
}

// DataSize returns the size of the chunk's data area.
func (c HoleChunk) DataSize() int64 { return (c.Blocks - 1) * BlockSize }

// HoleChunks splits the span of blocks blocks at archive offset off (a
// multiple of 512) into chunks: full chunks of 1025 blocks (512 KiB of
// data), then the remainder.
func HoleChunks(off, blocks int64) ([]HoleChunk, error) {
	if err := checkSpan(off, blocks); err != nil {
		return nil, err
	}
	chunks := make([]HoleChunk, 0, (blocks+maxChunkBlocks-1)/maxChunkBlocks)
	for blocks > 0 {
		n := min(blocks, maxChunkBlocks)
		chunks = append(chunks, HoleChunk{Offset: off, Blocks: n})
		off += n * BlockSize
		blocks -= n
	}
	return chunks, nil
}

func checkSpan(off, blocks int64) error {
	switch {
	case blocks < 1:
		return &HeaderError{Field: "blocks", Reason: fmt.Sprintf("%d blocks (need at least 1)", blocks), Err: ErrRange}
	case off < 0 || off%BlockSize != 0:
		return &HeaderError{Field: "offset", Reason: fmt.Sprintf("%d is not a block offset", off), Err: ErrRange}
	case blocks > (1<<63-1-off)/BlockSize:
		return &HeaderError{Field: "blocks", Reason: "span overflows int64", Err: ErrRange}
	}
	return nil
}

// HoleHeader returns the g header block of a hole chunk with dataSize
// bytes of data (a multiple of 512, at most MaxHoleChunkData).
func HoleHeader(dataSize int64) (Block, error) {
	var b Block
	if dataSize < 0 || dataSize%BlockSize != 0 || dataSize > MaxHoleChunkData {
		return b, &HeaderError{Field: "dataSize", Reason: fmt.Sprintf("%d is not a hole chunk size", dataSize), Err: ErrRange}
	}
	copy(b.name(), "PaxHeaders/hole")
	formatOctal(b.mode(), 0o644)
	formatOctal(b.uid(), 0)
	formatOctal(b.gid(), 0)
	formatOctal(b.size(), dataSize)
	formatOctal(b.mtime(), 0)
	b.typeflag()[0] = TypeXGlobalHeader
	copy(b.magic(), magicUSTAR)
	copy(b.version(), versionUSTAR)
	b.SetChecksum()
	return b, nil
}

// A HoleWrite is bytes to write at an archive offset.
type HoleWrite struct {
	Offset int64
	Data   []byte
	Part   HolePart
}

// A HolePart says which part of a chunk a HoleWrite is.
type HolePart uint8

const (
	HoleHeaderPart  HolePart = iota + 1 // the chunk's g header block (512 bytes)
	HolePrefixPart                      // "<D> comment=" at the start of its data
	HoleNewlinePart                     // the final "\n", the last byte of its data
)

// HoleWrites returns the small writes that turn the span of blocks blocks
// at off into a hole, leaving the filler bytes in between as they are:
// for each chunk its header block, then (for chunks with data) the record
// prefix at the start of its data area and the newline at its end. The
// writes are in increasing offset order and do not overlap; a header and
// the prefix that follows it are adjacent and may be merged. Which order
// to apply them in, and when to flush, is the store's crash-consistency
// decision: until the first chunk's header is written, readers still see
// whatever the span held before.
func HoleWrites(off, blocks int64) ([]HoleWrite, error) {
	chunks, err := HoleChunks(off, blocks)
	if err != nil {
		return nil, err
	}
	writes := make([]HoleWrite, 0, 3*len(chunks))
	for _, c := range chunks {
		d := c.DataSize()
		hdr, err := HoleHeader(d)
		if err != nil {
			return nil, err
		}
		writes = append(writes, HoleWrite{Offset: c.Offset, Data: hdr[:], Part: HoleHeaderPart})
		if d == 0 {
			continue
		}
		writes = append(writes,
			HoleWrite{Offset: c.Offset + BlockSize, Data: holeRecordPrefix(d), Part: HolePrefixPart},
			HoleWrite{Offset: c.Offset + BlockSize + d - 1, Data: []byte{'\n'}, Part: HoleNewlinePart})
	}
	return writes, nil
}

// EncodeHole returns a complete hole of blocks blocks, the filler bytes set
// to filler (0 or ' ' are usual; any byte works). It allocates
// blocks*512 bytes: for small spans; use HoleWrites for large ones.
func EncodeHole(blocks int64, filler byte) ([]byte, error) {
	writes, err := HoleWrites(0, blocks)
	if err != nil {
		return nil, err
	}
	out := make([]byte, blocks*BlockSize)
	if filler != 0 {
		for i := range out {
			out[i] = filler
		}
	}
	for _, w := range writes {
		copy(out[w.Offset:], w.Data)
	}
	return out, nil
}
