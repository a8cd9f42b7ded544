package tarfmt

import (
	"fmt"
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

// A SparseEntry is one data fragment of a sparse member: Length bytes at
// logical offset Offset. The bytes between fragments read as zeroes.
type SparseEntry struct {
	Offset, Length int64
}

// End returns the logical offset just past the fragment.
func (e SparseEntry) End() int64 { return e.Offset + e.Length }

// appendGNUSparse appends the entries of an old GNU sparse array (in a
// header or an extension block) up to the first unused entry (offset field
// starting with NUL).
func appendGNUSparse(sp []SparseEntry, arr []byte) ([]SparseEntry, error) {
	for i := 0; i < len(arr)/24; i++ {
		offField, lenField := sparseEntry(arr, i)
		if offField[0] == 0 {
			break
		}
		off, err := parseNumeric(offField)
		if err != nil {
			return sp, err
		}
		n, err := parseNumeric(lenField)
		if err != nil {
			return sp, err
		}
		sp = append(sp, SparseEntry{Offset: off, Length: n})
	}
	return sp, nil
}

// parseSparseMap01 parses a PAX 0.1 GNU.sparse.map value.
func parseSparseMap01(s string) ([]SparseEntry, error) {
	sp := []SparseEntry{}
	if s == "" {
		return sp, nil
	}
	nums := strings.Split(s, ",")
	if len(nums)%2 != 0 {
		return nil, errorf(ErrSparse, 0, "odd number of values in %.40q", s)
	}
	for i := 0; i < len(nums); i += 2 {
		off, err := parseDecimal(nums[i])
		if err != nil {
			return nil, &fieldError{err: ErrSparse, reason: err.Error()}
		}
		n, err := parseDecimal(nums[i+1])
		if err != nil {
			return nil, &fieldError{err: ErrSparse, reason: err.Error()}
		}
		sp = append(sp, SparseEntry{Offset: off, Length: n})
	}
	return sp, nil
}

// validateSparse checks a sparse map against the member's logical size and
// stored data size: fragments in increasing order, not overlapping, within
// the file, and adding up to the stored data.
func validateSparse(sp []SparseEntry, size, dataSize int64) error {
	if size < 0 {
		return errorf(ErrSparse, 0, "negative logical size %d", size)
	}
	var pos, sum int64
	for i, e := range sp {
		switch {
		case e.Offset < 0 || e.Length < 0:
			return errorf(ErrSparse, 0, "entry %d: negative offset or length", i)
		case e.Offset < pos:
			return errorf(ErrSparse, 0, "entry %d at %d overlaps or precedes the previous one (ends at %d)", i, e.Offset, pos)
		case e.Length > size-e.Offset || e.Offset > size:
			return errorf(ErrSparse, 0, "entry %d (%d+%d) past the logical size %d", i, e.Offset, e.Length, size)
		}
		pos = e.End()
		sum += e.Length // cannot overflow: each end is within size
	}
	if sum != dataSize {
		return errorf(ErrSparse, 0, "fragments hold %d bytes, the archive %d", sum, dataSize)
	}
	return nil
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
func (m *Member) Extents(off, n int64) []Extent {
	if off < 0 {
		n, off = n+off, 0
	}
	if n <= 0 || off >= m.Size {
		return nil
	}
	end := m.Size
	if n < m.Size-off {
		end = off + n
	}
	if m.Sparse == nil {
		return []Extent{{Logical: off, Physical: m.DataOffset + off, Length: end - off}}
	}
	var out []Extent
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
	pos, phys := int64(0), m.DataOffset
	for _, e := range m.Sparse {
		if pos >= end {
			break
		}
		add(pos, e.Offset, -1)
		add(e.Offset, e.End(), phys)
		phys += e.Length
		pos = e.End()
	}
	add(pos, m.Size, -1)
	return out
}
