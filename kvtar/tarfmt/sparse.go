package tarfmt

import (
	"fmt"
	"math"
	"strings"
)

// Sparse members store only the data fragments of a file with holes. Four
// encodings exist (GNU tar manual, "Storing Sparse Files" and "GNU tar
// format"):
//
//   - old GNU (typeflag 'S', GNU magic): up to 4 offset/numbytes pairs in
//     the header at offset 386, more in extension blocks (21 pairs each)
//     that follow the header while isextended is set; realsize holds the
//     logical size. The data follows the last extension block.
//   - PAX 0.0: GNU.sparse.size, GNU.sparse.numblocks and repeated
//     GNU.sparse.offset / GNU.sparse.numbytes records, in order.
//   - PAX 0.1: GNU.sparse.size, GNU.sparse.numblocks and one
//     GNU.sparse.map record "offset,size,offset,size,…".
//   - PAX 1.0: GNU.sparse.major=1, GNU.sparse.minor=0, GNU.sparse.realsize
//     and GNU.sparse.name (the real name; the ustar name is a placeholder
//     such as "GNUSparseFile.123/name"); the map is at the start of the data
//     area: decimal numbers each ending in '\n' (the count, then the pairs),
//     padded with NULs to a block. The member's data follows the map.
//
// In every encoding the stored fragments are concatenated in map order, so
// the sum of the lengths is the data size on the archive.
//
// Readers disagree on two things that GNU tar and bsdtar never write, so
// the decoder refuses them (ErrSparse); measured with GNU tar 1.34, bsdtar
// 3.6.2, Python 3.11 and Go (TestOddHugeSparseMaps):
//
//   - GNU tar reads each data fragment from a new block (it writes
//     fragments of whole blocks, but for the last); the others read them
//     concatenated. A fragment that is not a whole number of blocks must
//     be the last one with data.
//   - GNU tar extracts the file up to the end of the map's last entry (it
//     ends its maps with an empty entry at the file's size); the others
//     extend it to the size. The map must end at the size.
//
// GNU tar and bsdtar accept a map whose declared entry count (PAX 0.x
// GNU.sparse.numblocks) is larger than the map, and maps of any size (a
// PAX 1.0 map in the data, old GNU extension blocks); GNU tar sizes its map
// by the declared count. The decoder allocates by entries actually parsed,
// and keeps only the data fragments: Member.Sparse has no zero-length
// entries, so its length is at most the data size / 512 + 1, whatever the
// map declares or holds.

// A SparseEntry is one data fragment of a sparse member: Length bytes at
// logical offset Offset. The bytes between fragments read as zeroes.
type SparseEntry struct {
	Offset, Length int64
}

// End returns the logical offset just past the fragment.
func (e SparseEntry) End() int64 { return e.Offset + e.Length }

// A sparseBuilder collects the entries of a sparse map as they are parsed
// and checks them: in order, not overlapping, data fragments of whole
// blocks but for the last one, at most limit bytes of data in all. It
// keeps only the data fragments (zero-length entries mark the end of a
// file that ends in a hole, or nothing).
type sparseBuilder struct {
	frags   []SparseEntry
	entries int64 // entries added, zero-length ones included
	end     int64 // logical end of the last entry
	sum     int64 // bytes of data of the fragments
	limit   int64 // the most data the fragments may hold
}

func newSparseBuilder(limit int64) sparseBuilder {
	return sparseBuilder{frags: []SparseEntry{}, limit: limit}
}

// add appends the entry (off, n).
func (b *sparseBuilder) add(off, n int64) error {
	i := b.entries
	switch {
	case off < 0 || n < 0:
		return errorf(ErrSparse, 0, "entry %d: negative offset or length", i)
	case off < b.end:
		return errorf(ErrSparse, 0, "entry %d at %d overlaps or precedes the previous one (ends at %d)", i, off, b.end)
	case n > math.MaxInt64-off:
		return errorf(ErrRange, 0, "entry %d: %d+%d overflows", i, off, n)
	case n > b.limit-b.sum:
		return errorf(ErrSparse, 0, "entry %d: fragments hold more than the %d bytes of data", i, b.limit)
	}
	if n > 0 {
		if k := len(b.frags); k > 0 && b.frags[k-1].Length%BlockSize != 0 {
			return errorf(ErrSparse, 0, "data fragment of %d bytes before entry %d is not a whole number of blocks "+
				"(GNU tar reads each fragment from a new block, other readers do not)", b.frags[k-1].Length, i)
		}
		b.frags = append(b.frags, SparseEntry{Offset: off, Length: n})
	}
	b.entries++
	b.end, b.sum = off+n, b.sum+n
	return nil
}

// finish checks the map against the member's logical size and stored data
// size and returns its data fragments (never nil).
func (b *sparseBuilder) finish(size, dataSize int64) ([]SparseEntry, error) {
	switch {
	case size < 0:
		return nil, errorf(ErrSparse, 0, "negative logical size %d", size)
	case b.end != size:
		return nil, errorf(ErrSparse, 0, "the map ends at %d, the size is %d "+
			"(GNU tar extracts up to the end of the map, other readers up to the size)", b.end, size)
	case b.sum != dataSize:
		return nil, errorf(ErrSparse, 0, "fragments hold %d bytes, the archive %d", b.sum, dataSize)
	}
	return b.frags, nil
}

// addGNUSparse adds the entries of an old GNU sparse array (in a header or
// an extension block) up to the first unused entry (offset field starting
// with NUL).
func (b *sparseBuilder) addGNUSparse(arr []byte) error {
	for i := 0; i < len(arr)/24; i++ {
		offField, lenField := sparseEntry(arr, i)
		if offField[0] == 0 {
			break
		}
		off, err := parseNumeric(offField)
		if err != nil {
			return err
		}
		n, err := parseNumeric(lenField)
		if err != nil {
			return err
		}
		if err := b.add(off, n); err != nil {
			return err
		}
	}
	return nil
}

// addMap01 adds the entries of a PAX 0.1 GNU.sparse.map value:
// "offset,size,offset,size,…".
func (b *sparseBuilder) addMap01(s string) error {
	if s == "" {
		return nil
	}
	var off int64
	for i := 0; ; i++ {
		field, rest, more := strings.Cut(s, ",")
		v, err := parseDecimal(field)
		if err != nil {
			return &fieldError{err: ErrSparse, reason: err.Error()}
		}
		if i%2 == 0 {
			off = v
		} else if err := b.add(off, v); err != nil {
			return err
		}
		if !more {
			if i%2 == 0 {
				return errorf(ErrSparse, 0, "odd number of values in GNU.sparse.map")
			}
			return nil
		}
		s = rest
	}
}

// An Extent maps Length bytes of a member's content, starting at logical
// offset Logical, to the archive: Physical is the archive offset of those
// bytes, or -1 when they are a hole (zeroes).
type Extent struct {
	Logical, Physical, Length int64
}

func (e Extent) String() string {
	if e.Physical < 0 {
		return fmt.Sprintf("[%d,+%d) hole", e.Logical, e.Length)
	}
	return fmt.Sprintf("[%d,+%d) at %d", e.Logical, e.Length, e.Physical)
}

// Extents maps the logical byte range [off, off+n) of the member's content,
// clipped to [0, Size), to the archive, in order. A member without a sparse
// map is one extent at DataOffset+off; a sparse member alternates data
// extents and holes. The result is empty when nothing of the range is
// within the content.
func (m *Member) Extents(off, n int64) []Extent { return m.AppendExtents(nil, off, n) }

// AppendExtents appends the extents of Extents(off, n) to dst and returns
// the result: a caller's buffer saves an allocation per range.
func (m *Member) AppendExtents(dst []Extent, off, n int64) []Extent {
	return AppendExtents(dst, m.Size, m.DataOffset, m.Sparse, off, n)
}

// AppendExtents is Member.AppendExtents for a member of content size
// bytes whose data starts at dataOffset, with the sparse map sparse (nil
// when it has none), for callers that keep those fields rather than a
// Member.
func AppendExtents(dst []Extent, size, dataOffset int64, sparse []SparseEntry, off, n int64) []Extent {
	if off < 0 {
		n, off = n+off, 0
	}
	if n <= 0 || off >= size {
		return dst
	}
	end := size
	if n < size-off {
		end = off + n
	}
	if sparse == nil {
		return append(dst, Extent{Logical: off, Physical: dataOffset + off, Length: end - off})
	}
	out := dst
	add := func(lo, hi, phys int64) { // logical [lo, hi); phys is -1 or the archive offset of lo
		lo2, hi2 := max(lo, off), min(hi, end)
		if lo2 >= hi2 {
			return
		}
		if phys >= 0 {
			phys += lo2 - lo
		}
		out = append(out, Extent{Logical: lo2, Physical: phys, Length: hi2 - lo2})
	}
	pos, phys := int64(0), dataOffset
	for _, e := range sparse {
		if pos >= end {
			break
		}
		add(pos, e.Offset, -1)
		add(e.Offset, e.End(), phys)
		phys += e.Length
		pos = e.End()
	}
	add(pos, size, -1)
	return out
}
