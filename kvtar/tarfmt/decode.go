package tarfmt

import (
	"fmt"
	"strings"
	"time"
)

// Type flags (POSIX ustar and pax, GNU tar).
const (
	TypeReg           = '0'    // regular file
	TypeRegA          = '\x00' // regular file (pre-POSIX); the decoder reports TypeReg or TypeDir
	TypeLink          = '1'    // hard link to Linkname
	TypeSymlink       = '2'    // symbolic link to Linkname
	TypeChar          = '3'    // character device
	TypeBlock         = '4'    // block device
	TypeDir           = '5'    // directory
	TypeFifo          = '6'    // FIFO
	TypeCont          = '7'    // contiguous file (read as a regular file)
	TypeXHeader       = 'x'    // PAX extended header for the next member
	TypeXGlobalHeader = 'g'    // PAX global extended header
	TypeGNULongName   = 'L'    // GNU: data is the next member's name
	TypeGNULongLink   = 'K'    // GNU: data is the next member's link name
	TypeGNUSparse     = 'S'    // GNU: old sparse member (map in the header)
)

// A Header is the resolved metadata of a logical member: ustar/GNU/v7
// fields with GNU long names and PAX records (x and applicable g) applied.
type Header struct {
	Name     string // without any change: a leading "./" or "/" is kept
	Linkname string // target of a TypeLink or TypeSymlink member
	Typeflag byte   // TypeRegA is reported as TypeReg, or TypeDir when Name ends in '/'
	// Size is the member's logical size: the bytes a reader extracts. For
	// sparse members it is the expanded size; see Member.DataSize.
	Size               int64
	Mode               int64 // the mode field as stored (permission bits, maybe file type bits)
	Uid, Gid           int64
	Uname, Gname       string
	ModTime            time.Time // PAX mtime gives sub-second precision
	Devmajor, Devminor int64
	// Format is the layout the member was read from (FormatPAX when an x
	// header preceded it). EncodeHeader ignores it.
	Format Format
}

// A Member is a logical member found by the Decoder: its Header and where
// it lies in the archive. The bytes [Start, End) are the whole member:
// its extended headers, header block, sparse extension blocks or map, data
// and padding.
type Member struct {
	Header
	Start        int64 // first block: the first x, L or K header before it, else HeaderOffset
	HeaderOffset int64 // its own ustar/GNU/v7 header block
	DataOffset   int64 // first byte of its data (after a PAX 1.0 sparse map)
	DataSize     int64 // bytes of data stored in the archive (< Size for sparse members)
	End          int64 // end of its padded data: where the next header is
	// Sparse is the sparse map of a sparse member (old GNU 'S', PAX 0.0,
	// 0.1, 1.0), nil otherwise. See Extents.
	Sparse []SparseEntry
}

// A Global is a PAX global extended header (typeflag g) found by the
// Decoder. [Start, End) are its blocks.
type Global struct {
	Start      int64
	DataOffset int64
	DataSize   int64
	End        int64
	// Hole reports that the header carries nothing but comment records
	// (or no records): it is a hole, invisible to readers. The records of a
	// hole are not reported (a hole's data is not read beyond its first
	// block and its last byte).
	Hole    bool
	Records []Record // in archive order; nil for a hole
}

// A StepKind tells the caller what the Decoder needs or found.
type StepKind uint8

const (
	// StepNeedBlock: read the 512-byte block at Step.Next and pass it to
	// Block.
	StepNeedBlock StepKind = iota + 1
	// StepNeedData: read Step.Len bytes at archive offset Step.Offset and
	// pass them to Data.
	StepNeedData
	// StepMember: Step.Member is a complete member; its data is not read
	// by the decoder. The next header block is at Step.Next.
	StepMember
	// StepGlobal: Step.Global is a g header (maybe a hole). The next
	// header block is at Step.Next.
	StepGlobal
	// StepZero: the block at Step.Offset is all zeroes. The caller decides
	// whether the archive ends: two zero blocks, or one zero block followed
	// by the end of the input, are the end of archive for every reader; GNU
	// tar and Python also stop at a lone zero block followed by more data,
	// where Go fails. To go on, pass the block at Step.Next to Block.
	StepZero
)

// A Step is the Decoder's answer to one Block or Data call.
type Step struct {
	Kind   StepKind
	Offset int64   // StepNeedData: where the bytes are; StepZero: the zero block
	Len    int     // StepNeedData: how many bytes
	Next   int64   // all kinds but StepNeedData: the next block to pass to Block
	Member *Member // StepMember
	Global *Global // StepGlobal
}

type decState uint8

const (
	stHeader     decState = iota // a header block is expected
	stMetaData                   // the data of an x, L or K header
	stGlobalHead                 // the first block (or all) of a g header's data
	stGlobalTail                 // the last byte of a hole's data
	stGlobalRest                 // the rest of a g header's data
	stSparseExt                  // an old GNU sparse extension block
	stSparseMap                  // a block of a PAX 1.0 sparse map
	stFailed
)

// A Decoder turns the blocks of a tar archive into logical members. It does
// no I/O: the caller reads what each Step asks for and passes it in.
//
// Contract, step by step:
//
//  1. d := NewDecoder(end), with end the size of the archive's medium
//     (math.MaxInt64 when unknown). Anything that would extend past end is
//     ErrTruncated, so with a known end no Member ever has data beyond it.
//  2. Call d.Block(off, &b) with the header block at off (the archive start
//     for the first call).
//  3. Act on the returned Step: StepNeedData → read Step.Len bytes at
//     Step.Offset and call d.Data(p); StepNeedBlock → read the block at
//     Step.Next and call d.Block(Step.Next, &b); StepMember, StepGlobal →
//     use the result, then continue with the block at Step.Next;
//     StepZero → decide whether the archive ends there, else go on with
//     the block at Step.Next.
//  4. Any error is a *FormatError (wrapping a sentinel) with the archive
//     offset at fault; the Decoder is then spent and returns the same
//     error from every call.
//
// A Block call must pass the offset the previous Step named (any offset
// for the first call). Data must receive exactly Len bytes; fewer is
// ErrTruncated. The decoder keeps PAX global records across members (POSIX:
// path, linkpath, size, mtime, uid, gid, uname and gname in a g header apply
// to every later member until an x header overrides them; an empty value
// cancels). A Decoder is not safe for concurrent use.
type Decoder struct {
	end   int64
	next  int64 // the offset Block expects; -1 before the first call
	state decState
	err   error

	wantOff int64 // the data asked for by the last StepNeedData
	wantLen int

	// extended headers seen since the last member
	pending     bool
	start       int64
	pax         []Record
	hasPAX      bool
	longName    string
	hasLongName bool
	longLink    string
	hasLongLink bool
	globals     map[string]string

	// the x, g, L or K header being read
	metaType byte
	metaOff  int64
	metaSize int64
	metaBuf  []byte

	// the member being completed by sparse extension blocks or a sparse map
	cur        *Member
	extBytes   int64
	rawDataOff int64   // PAX 1.0: start of the data area (the map)
	rawSize    int64   // PAX 1.0: size of the data area
	mapBuf     []byte  // PAX 1.0: the map blocks read so far
	mapPos     int     // PAX 1.0: bytes of mapBuf parsed
	mapNums    []int64 // PAX 1.0: numbers parsed: count, then offset/length pairs
}

// NewDecoder returns a Decoder for an archive whose medium is end bytes
// long.
func NewDecoder(end int64) *Decoder {
	if end < 0 {
		end = 0
	}
	return &Decoder{end: end, next: -1}
}

func (d *Decoder) fail(err *FormatError) (Step, error) {
	d.state, d.err = stFailed, err
	return Step{}, err
}

func (d *Decoder) usage(off int64, format string, args ...any) (Step, error) {
	return d.fail(&FormatError{Offset: off, Reason: fmt.Sprintf(format, args...), Err: ErrUsage})
}

func (d *Decoder) needData(off int64, n int64) (Step, error) {
	d.wantOff, d.wantLen = off, int(n)
	return Step{Kind: StepNeedData, Offset: off, Len: int(n)}, nil
}

// padded returns n rounded up to a whole number of blocks; n must be at
// most end-off for some off >= 0, so that this cannot overflow once checked
// with fits.
func padLen(n int64) int64 { return -n & (BlockSize - 1) }

// fits reports whether n bytes at off, padded to a block, end at or before
// d.end.
func (d *Decoder) fits(off, n int64) bool {
	if off < 0 || n < 0 || off > d.end || n > d.end-off {
		return false
	}
	return padLen(n) <= d.end-off-n
}

// Block consumes the block at archive offset off.
func (d *Decoder) Block(off int64, b *Block) (Step, error) {
	switch {
	case d.state == stFailed:
		return Step{}, d.err
	case d.state != stHeader && d.state != stSparseExt:
		return d.usage(off, "Block called while data at offset %d is expected", d.wantOff)
	case d.next >= 0 && off != d.next:
		return d.usage(off, "Block called for offset %d, expected %d", off, d.next)
	case off < 0:
		return d.usage(off, "negative offset")
	case !d.fits(off, BlockSize):
		return d.fail(&FormatError{Offset: off, Reason: "header block past the end of the archive", Err: ErrTruncated})
	}
	if d.state == stSparseExt {
		return d.sparseExt(off, b)
	}
	return d.header(off, b)
}

// Data consumes the bytes asked for by the last StepNeedData.
func (d *Decoder) Data(p []byte) (Step, error) {
	switch d.state {
	case stFailed:
		return Step{}, d.err
	case stMetaData, stGlobalHead, stGlobalTail, stGlobalRest, stSparseMap:
	default:
		return d.usage(d.next, "Data called while no data is expected")
	}
	if len(p) < d.wantLen {
		return d.fail(&FormatError{Offset: d.wantOff + int64(len(p)),
			Reason: fmt.Sprintf("%d bytes of %d", len(p), d.wantLen), Err: ErrTruncated})
	}
	if len(p) > d.wantLen {
		return d.usage(d.wantOff, "Data got %d bytes, %d were asked for", len(p), d.wantLen)
	}
	dataOff := d.metaOff + BlockSize
	switch d.state {
	case stMetaData:
		return d.finishMeta(p)
	case stGlobalHead:
		if d.metaSize <= BlockSize {
			return d.finishGlobal(p, false)
		}
		if isHolePrefix(p, d.metaSize) {
			d.state = stGlobalTail
			return d.needData(dataOff+d.metaSize-1, 1)
		}
		d.metaBuf = append(d.metaBuf[:0], p...)
		d.state = stGlobalRest
		return d.needData(dataOff+BlockSize, d.metaSize-BlockSize)
	case stGlobalTail:
		if p[0] != '\n' {
			return d.fail(&FormatError{Offset: d.wantOff, Reason: "comment record does not end with a newline", Err: ErrPAXRecord})
		}
		return d.finishGlobal(nil, true)
	case stGlobalRest:
		return d.finishGlobal(append(d.metaBuf, p...), false)
	}
	return d.sparseMapData(p)
}

func (d *Decoder) header(off int64, b *Block) (Step, error) {
	if b.IsZero() {
		if d.pending {
			return d.fail(&FormatError{Offset: off, Reason: "zero block after an extended header", Err: ErrMisplaced})
		}
		d.next = off + BlockSize
		return Step{Kind: StepZero, Offset: off, Next: d.next}, nil
	}
	if !b.ChecksumOK() {
		u, s := b.Checksum()
		return d.fail(&FormatError{Offset: off,
			Reason: fmt.Sprintf("chksum field %q, computed %o (signed %o)", b.chksum(), u, s), Err: ErrChecksum})
	}
	tf := b.typeflag()[0]
	switch tf {
	case TypeXHeader, TypeXGlobalHeader, TypeGNULongName, TypeGNULongLink:
	default:
		return d.member(off, b)
	}
	size, err := parseNumeric(b.size())
	if err != nil {
		return d.fail(formatErr(off, "size field", err))
	}
	switch {
	case size < 0:
		return d.fail(&FormatError{Offset: off, Reason: fmt.Sprintf("negative size %d", size), Err: ErrRange})
	case size > MaxExtendedSize:
		return d.fail(&FormatError{Offset: off,
			Reason: fmt.Sprintf("%c header of %d bytes (limit %d)", tf, size, MaxExtendedSize), Err: ErrFieldTooLong})
	case !d.fits(off+BlockSize, size):
		return d.fail(&FormatError{Offset: off, Reason: fmt.Sprintf("%c header data runs past the end", tf), Err: ErrTruncated})
	}
	var dup bool
	switch tf {
	case TypeXGlobalHeader:
		if d.pending {
			return d.fail(&FormatError{Offset: off, Reason: "g header between an extended header and its member", Err: ErrMisplaced})
		}
	case TypeXHeader:
		dup = d.hasPAX
	case TypeGNULongName:
		dup = d.hasLongName
	case TypeGNULongLink:
		dup = d.hasLongLink
	}
	if dup {
		return d.fail(&FormatError{Offset: off, Reason: fmt.Sprintf("two %c headers for one member", tf), Err: ErrMisplaced})
	}
	if tf != TypeXGlobalHeader && !d.pending {
		d.pending, d.start = true, off
	}
	d.metaType, d.metaOff, d.metaSize = tf, off, size
	if tf == TypeXGlobalHeader {
		if size == 0 {
			return d.finishGlobal(nil, true)
		}
		d.state = stGlobalHead
		return d.needData(off+BlockSize, min(size, BlockSize))
	}
	if size == 0 {
		return d.finishMeta(nil)
	}
	d.state = stMetaData
	return d.needData(off+BlockSize, size)
}

func (d *Decoder) finishMeta(p []byte) (Step, error) {
	dataOff := d.metaOff + BlockSize
	switch d.metaType {
	case TypeXHeader:
		recs, err := ParseRecords(p)
		if err != nil {
			return d.fail(formatErr(dataOff, "x header", err))
		}
		d.pax, d.hasPAX = recs, true
	case TypeGNULongName:
		d.longName, d.hasLongName = string(cString(p)), true
	case TypeGNULongLink:
		d.longLink, d.hasLongLink = string(cString(p)), true
	}
	d.state = stHeader
	d.next = dataOff + d.metaSize + padLen(d.metaSize)
	return Step{Kind: StepNeedBlock, Next: d.next}, nil
}

func (d *Decoder) finishGlobal(p []byte, hole bool) (Step, error) {
	dataOff := d.metaOff + BlockSize
	g := &Global{Start: d.metaOff, DataOffset: dataOff, DataSize: d.metaSize,
		End: dataOff + d.metaSize + padLen(d.metaSize)}
	if !hole {
		recs, err := ParseRecords(p)
		if err != nil {
			return d.fail(formatErr(dataOff, "g header", err))
		}
		hole = true
		for _, r := range recs {
			if r.Key != paxComment {
				hole = false
			}
		}
		if !hole {
			g.Records = recs
			for _, r := range recs {
				if !globalKeys[r.Key] {
					continue
				}
				if r.Value == "" {
					delete(d.globals, r.Key)
					continue
				}
				if d.globals == nil {
					d.globals = make(map[string]string)
				}
				d.globals[r.Key] = r.Value
			}
		}
	}
	g.Hole = hole
	d.state, d.next = stHeader, g.End
	return Step{Kind: StepGlobal, Next: g.End, Global: g}, nil
}

// member resolves the member whose header block b is at off.
func (d *Decoder) member(off int64, b *Block) (Step, error) {
	format := b.Format()
	tf := b.typeflag()[0]
	start := off
	if d.pending {
		start = d.start
	}
	m := &Member{Start: start, HeaderOffset: off}
	h := &m.Header
	h.Typeflag, h.Format = tf, format

	name := cString(b.name())
	var prefix []byte
	switch format {
	case FormatUSTAR:
		prefix = cString(b.prefix())
	case FormatSTAR:
		prefix = cString(b.starPrefix())
	}
	if len(prefix) > 0 {
		h.Name = string(prefix) + "/" + string(name)
	} else {
		h.Name = string(name)
	}
	h.Linkname = string(cString(b.linkname()))
	if d.hasLongName {
		h.Name = d.longName
	}
	if d.hasLongLink {
		h.Linkname = d.longLink
	}

	var size, mtime int64
	for _, f := range []struct {
		name  string
		field []byte
		dst   *int64
	}{
		{"mode", b.mode(), &h.Mode}, {"uid", b.uid(), &h.Uid}, {"gid", b.gid(), &h.Gid},
		{"size", b.size(), &size}, {"mtime", b.mtime(), &mtime},
	} {
		v, err := parseNumeric(f.field)
		if err != nil {
			return d.fail(formatErr(off, f.name+" field", err))
		}
		*f.dst = v
	}
	if format != FormatV7 {
		h.Uname, h.Gname = string(cString(b.uname())), string(cString(b.gname()))
		for _, f := range []struct {
			name  string
			field []byte
			dst   *int64
		}{{"devmajor", b.devmajor(), &h.Devmajor}, {"devminor", b.devminor(), &h.Devminor}} {
			v, err := parseNumeric(f.field)
			if err != nil {
				return d.fail(formatErr(off, f.name+" field", err))
			}
			*f.dst = v
		}
	}
	if mtime < minUnix || mtime > maxUnix {
		return d.fail(&FormatError{Offset: off, Reason: fmt.Sprintf("mtime %d out of range", mtime), Err: ErrRange})
	}
	h.ModTime = time.Unix(mtime, 0)

	// PAX records: the applicable globals, overridden by this member's x
	// header; an empty value in the x header cancels a global and leaves
	// the header block's field.
	eff := make(map[string]string, len(d.globals)+len(d.pax))
	for k, v := range d.globals {
		eff[k] = v
	}
	var sp0 []SparseEntry // PAX 0.0 offset/numbytes pairs, in order
	halfPair := false
	for _, r := range d.pax {
		switch r.Key {
		case sparseOffset:
			if halfPair {
				return d.fail(&FormatError{Offset: start, Reason: "GNU.sparse.offset without numbytes", Err: ErrSparse})
			}
			v, err := parseDecimal(r.Value)
			if err != nil {
				return d.fail(formatErr(start, "GNU.sparse.offset record", err))
			}
			sp0, halfPair = append(sp0, SparseEntry{Offset: v}), true
			continue
		case sparseNumBytes:
			if !halfPair {
				return d.fail(&FormatError{Offset: start, Reason: "GNU.sparse.numbytes without offset", Err: ErrSparse})
			}
			v, err := parseDecimal(r.Value)
			if err != nil {
				return d.fail(formatErr(start, "GNU.sparse.numbytes record", err))
			}
			sp0[len(sp0)-1].Length, halfPair = v, false
			continue
		}
		if r.Value == "" {
			delete(eff, r.Key)
		} else {
			eff[r.Key] = r.Value
		}
	}
	if halfPair {
		return d.fail(&FormatError{Offset: start, Reason: "GNU.sparse.offset without numbytes", Err: ErrSparse})
	}
	if v, ok := eff[paxPath]; ok {
		h.Name = v
	}
	if v, ok := eff[paxLinkpath]; ok {
		h.Linkname = v
	}
	if v, ok := eff[paxUname]; ok {
		h.Uname = v
	}
	if v, ok := eff[paxGname]; ok {
		h.Gname = v
	}
	for _, f := range []struct {
		key string
		dst *int64
	}{{paxSize, &size}, {paxUid, &h.Uid}, {paxGid, &h.Gid}} {
		if v, ok := eff[f.key]; ok {
			n, err := parseDecimal(v)
			if err != nil {
				return d.fail(formatErr(off, "PAX "+f.key+" record", err))
			}
			*f.dst = n
		}
	}
	if v, ok := eff[paxMtime]; ok {
		t, err := parsePAXTime(v)
		if err != nil {
			return d.fail(formatErr(off, "PAX mtime record", err))
		}
		h.ModTime = t
	}
	if d.hasPAX {
		h.Format = FormatPAX
	}
	if size < 0 {
		return d.fail(&FormatError{Offset: off, Reason: fmt.Sprintf("negative size %d", size), Err: ErrRange})
	}

	// What follows the header block.
	dataOff := off + BlockSize
	m.DataOffset, m.DataSize, h.Size = dataOff, size, size
	switch tf {
	case TypeLink, TypeSymlink, TypeChar, TypeBlock, TypeDir, TypeFifo:
		// GNU tar skips the data of these types (except directories),
		// Go, Python and bsdtar do not: only an empty member reads the same
		// everywhere.
		if size != 0 {
			return d.fail(&FormatError{Offset: off,
				Reason: fmt.Sprintf("size %d on a %q member (readers disagree on its data)", size, tf), Err: ErrHeader})
		}
	case TypeGNUSparse:
		if format != FormatGNU {
			return d.fail(&FormatError{Offset: off, Reason: "old GNU sparse member without the GNU magic", Err: ErrHeader})
		}
		real, err := parseNumeric(b.gnuRealSize())
		if err != nil {
			return d.fail(formatErr(off, "realsize field", err))
		}
		h.Size = real
		m.Sparse = []SparseEntry{}
		if m.Sparse, err = appendGNUSparse(m.Sparse, b.gnuSparse()); err != nil {
			return d.fail(formatErr(off, "sparse entry", err))
		}
		if b.gnuIsExtended() != 0 {
			d.cur, d.extBytes, d.state, d.next = m, 0, stSparseExt, dataOff
			return Step{Kind: StepNeedBlock, Next: dataOff}, nil
		}
	default:
		major, hasMajor := eff[sparseMajor]
		minor, hasMinor := eff[sparseMinor]
		spMap, hasMap := eff[sparseMap]
		switch {
		case hasMajor || hasMinor:
			if major != "1" || minor != "0" {
				return d.fail(&FormatError{Offset: start,
					Reason: fmt.Sprintf("unsupported GNU sparse version %q.%q", major, minor), Err: ErrSparse})
			}
			if err := d.sparseSize(h, eff); err != nil {
				return d.fail(formatErr(start, "sparse size", err))
			}
			if size < BlockSize {
				return d.fail(&FormatError{Offset: off, Reason: "sparse 1.0 member too small for its map", Err: ErrSparse})
			}
			if !d.fits(dataOff, BlockSize) {
				return d.fail(&FormatError{Offset: dataOff, Reason: "sparse map past the end", Err: ErrTruncated})
			}
			d.cur, d.rawDataOff, d.rawSize = m, dataOff, size
			d.mapBuf, d.mapPos, d.mapNums = d.mapBuf[:0], 0, d.mapNums[:0]
			d.state = stSparseMap
			return d.needData(dataOff, BlockSize)
		case hasMap:
			sp, err := parseSparseMap01(spMap)
			if err != nil {
				return d.fail(formatErr(start, "GNU.sparse.map record", err))
			}
			if err := d.sparseSize(h, eff); err != nil {
				return d.fail(formatErr(start, "sparse size", err))
			}
			m.Sparse = sp
		case sp0 != nil:
			if err := d.sparseSize(h, eff); err != nil {
				return d.fail(formatErr(start, "sparse size", err))
			}
			m.Sparse = sp0
		}
		if m.Sparse != nil {
			if v, ok := eff[sparseNumBlocks]; ok {
				n, err := parseDecimal(v)
				if err != nil {
					return d.fail(formatErr(start, "GNU.sparse.numblocks record", err))
				}
				if n != int64(len(m.Sparse)) {
					return d.fail(&FormatError{Offset: start,
						Reason: fmt.Sprintf("GNU.sparse.numblocks %d for %d entries", n, len(m.Sparse)), Err: ErrSparse})
				}
			}
		}
	}
	return d.finishMember(m)
}

// sparseSize sets the logical size and name of a PAX sparse member.
// The logical size is GNU.sparse.size (0.x) or GNU.sparse.realsize (1.0);
// either is accepted in every version.
func (d *Decoder) sparseSize(h *Header, eff map[string]string) error {
	v, ok := eff[sparseSize]
	if !ok {
		v, ok = eff[sparseRealSize]
	}
	if !ok {
		return errorf(ErrSparse, 0, "no GNU.sparse.size or GNU.sparse.realsize record")
	}
	n, err := parseDecimal(v)
	if err != nil {
		return err
	}
	h.Size = n
	if name, ok := eff[sparseName]; ok {
		h.Name = name
	}
	return nil
}

func (d *Decoder) sparseExt(off int64, b *Block) (Step, error) {
	m := d.cur
	d.extBytes += BlockSize
	if d.extBytes > MaxExtendedSize {
		return d.fail(&FormatError{Offset: off, Reason: "sparse extension blocks over the limit", Err: ErrFieldTooLong})
	}
	var err error
	if m.Sparse, err = appendGNUSparse(m.Sparse, b.extSparse()); err != nil {
		return d.fail(formatErr(off, "sparse extension entry", err))
	}
	if b.extIsExtended() != 0 {
		d.next = off + BlockSize
		return Step{Kind: StepNeedBlock, Next: d.next}, nil
	}
	m.DataOffset = off + BlockSize
	return d.finishMember(m)
}

func (d *Decoder) sparseMapData(p []byte) (Step, error) {
	d.mapBuf = append(d.mapBuf, p...)
	done, err := d.parseMap1()
	if err != nil {
		return d.fail(formatErr(d.rawDataOff, "sparse 1.0 map", err))
	}
	m := d.cur
	if !done {
		n := int64(len(d.mapBuf))
		switch {
		case n+BlockSize > MaxExtendedSize:
			return d.fail(&FormatError{Offset: d.rawDataOff, Reason: "sparse map over the limit", Err: ErrFieldTooLong})
		case n+BlockSize > d.rawSize:
			return d.fail(&FormatError{Offset: d.rawDataOff, Reason: "sparse map longer than the member", Err: ErrSparse})
		}
		return d.needData(d.rawDataOff+n, BlockSize)
	}
	nums := d.mapNums[1:]
	m.Sparse = make([]SparseEntry, len(nums)/2)
	for i := range m.Sparse {
		m.Sparse[i] = SparseEntry{Offset: nums[2*i], Length: nums[2*i+1]}
	}
	mapLen := int64(len(d.mapBuf))
	m.DataOffset, m.DataSize = d.rawDataOff+mapLen, d.rawSize-mapLen
	return d.finishMember(m)
}

// parseMap1 parses the complete lines of d.mapBuf into d.mapNums and
// reports whether the map is complete: a count n, then n offset/length
// pairs, each a decimal number ending in '\n'.
func (d *Decoder) parseMap1() (bool, error) {
	for {
		if len(d.mapNums) > 0 && int64(len(d.mapNums)-1) == 2*d.mapNums[0] {
			return true, nil
		}
		rest := d.mapBuf[d.mapPos:]
		i := 0
		for i < len(rest) && rest[i] != '\n' {
			if rest[i] < '0' || rest[i] > '9' {
				return false, errorf(ErrSparse, d.mapPos+i, "byte %q in sparse map", rest[i])
			}
			i++
		}
		if i == len(rest) {
			return false, nil
		}
		v, err := parseDecimal(string(rest[:i]))
		if err != nil {
			return false, &fieldError{err: ErrSparse, reason: err.Error(), at: d.mapPos}
		}
		if len(d.mapNums) == 0 && v > MaxExtendedSize {
			return false, errorf(ErrSparse, d.mapPos, "%d sparse entries", v)
		}
		d.mapNums = append(d.mapNums, v)
		d.mapPos += i + 1
	}
}

// finishMember validates m's layout, ends the member and reports it.
func (d *Decoder) finishMember(m *Member) (Step, error) {
	if m.Sparse != nil {
		if err := validateSparse(m.Sparse, m.Size, m.DataSize); err != nil {
			return d.fail(formatErr(m.HeaderOffset, "sparse map", err))
		}
	}
	switch m.Typeflag {
	case TypeRegA:
		m.Typeflag = TypeReg
		if strings.HasSuffix(m.Name, "/") {
			m.Typeflag = TypeDir
		}
	}
	if !d.fits(m.DataOffset, m.DataSize) {
		return d.fail(&FormatError{Offset: m.HeaderOffset,
			Reason: fmt.Sprintf("%d bytes of data at offset %d run past the end (%d)", m.DataSize, m.DataOffset, d.end),
			Err:    ErrTruncated})
	}
	m.End = m.DataOffset + m.DataSize + padLen(m.DataSize)
	d.pending, d.pax, d.hasPAX = false, nil, false
	d.longName, d.hasLongName, d.longLink, d.hasLongLink = "", false, "", false
	d.cur = nil
	d.state, d.next = stHeader, m.End
	return Step{Kind: StepMember, Next: m.End, Member: m}, nil
}
