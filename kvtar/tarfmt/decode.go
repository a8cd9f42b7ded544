package tarfmt

import (
	"errors"
	"fmt"
	"math"
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
	// 0.1, 1.0), nil otherwise: its data fragments in order, without the
	// map's zero-length entries (empty, not nil, when there is no data).
	// See Extents.
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
	sb         sparseBuilder // its map so far
	rawDataOff int64         // PAX 1.0: start of the data area (the map)
	rawSize    int64         // PAX 1.0: size of the data area
	mapRead    int64         // PAX 1.0: bytes of the map read (whole blocks)
	mapVal     int64         // PAX 1.0: the number being read
	mapDigits  int           // PAX 1.0: its digits so far
	mapCount   int64         // PAX 1.0: the entry count, -1 before it is read
	mapOff     int64         // PAX 1.0: the offset of the entry being read
	mapHalf    bool          // PAX 1.0: mapOff is read, its length is not
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
	// A second L (or K) header for one member replaces the first, as GNU
	// tar, bsdtar and Go read it (Python keeps the first): finishMeta
	// overwrites. A second x header is refused: bsdtar rejects x x.
	switch {
	case tf == TypeXGlobalHeader && d.pending:
		return d.fail(&FormatError{Offset: off, Reason: "g header between an extended header and its member", Err: ErrMisplaced})
	case tf == TypeXHeader && d.hasPAX:
		return d.fail(&FormatError{Offset: off, Reason: "two x headers for one member", Err: ErrMisplaced})
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
				v := recordValue(r.Value)
				if v == "" {
					delete(d.globals, r.Key)
					continue
				}
				if d.globals == nil {
					d.globals = make(map[string]string)
				}
				d.globals[r.Key] = v
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
				if tf != TypeChar && tf != TypeBlock {
					// GNU tar reads the device numbers of devices
					// only: a blank field elsewhere is no error.
					continue
				}
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
	// the header block's field. Values are read up to their first NUL
	// (recordValue). The PAX 0.x sparse records are taken in order.
	eff := make(map[string]string, len(d.globals)+len(d.pax))
	for k, v := range d.globals {
		eff[k] = v
	}
	sp0, ferr := d.readSparse0(start)
	if ferr != nil {
		return d.fail(ferr)
	}
	for _, r := range d.pax {
		if r.Key == sparseOffset || r.Key == sparseNumBytes || r.Key == sparseNumBlocks {
			continue // readSparse0
		}
		if v := recordValue(r.Value); v == "" {
			delete(eff, r.Key)
		} else {
			eff[r.Key] = v
		}
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
		return d.oldGNUSparse(m, b)
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
			return d.startMap1(m)
		case hasMap || sp0.entries > 0:
			if err := d.sparseSize(h, eff); err != nil {
				return d.fail(formatErr(start, "sparse size", err))
			}
			sb := &sp0.sb
			if hasMap {
				// The map replaces offset/numbytes pairs before it, as
				// in GNU tar (which empties its map for it).
				map01 := newSparseBuilder(math.MaxInt64)
				if err := map01.addMap01(spMap); err != nil {
					return d.fail(formatErr(start, "GNU.sparse.map record", err))
				}
				sb = &map01
			}
			if err := sp0.checkDeclared(sb.entries); err != nil {
				return d.fail(formatErr(start, "GNU.sparse.numblocks record", err))
			}
			var err error
			if m.Sparse, err = sb.finish(h.Size, m.DataSize); err != nil {
				return d.fail(formatErr(start, "sparse map", err))
			}
		}
	}
	return d.finishMember(m)
}

// A paxSparse0 is what the x header's PAX 0.x sparse records say: the
// map of GNU.sparse.offset/numbytes pairs (0.0), and GNU.sparse.numblocks.
type paxSparse0 struct {
	sb       sparseBuilder
	entries  int64 // offset/numbytes pairs
	declared int64 // GNU.sparse.numblocks, -1 when absent
	late     bool  // a numblocks record follows an offset or map record
}

// readSparse0 reads the PAX 0.x sparse records of the x header in order.
func (d *Decoder) readSparse0(start int64) (*paxSparse0, *FormatError) {
	sp := &paxSparse0{sb: newSparseBuilder(math.MaxInt64), declared: -1}
	halfPair, mapSeen := false, false
	var pairOff int64
	for _, r := range d.pax {
		v := recordValue(r.Value)
		switch r.Key {
		case sparseMap:
			mapSeen = true
		case sparseNumBlocks:
			n, err := parseDecimal(v)
			if err != nil {
				return nil, formatErr(start, "GNU.sparse.numblocks record", err)
			}
			sp.declared = n
			sp.late = sp.late || mapSeen || sp.entries > 0 || halfPair
		case sparseOffset:
			if halfPair {
				return nil, &FormatError{Offset: start, Reason: "GNU.sparse.offset without numbytes", Err: ErrSparse}
			}
			n, err := parseDecimal(v)
			if err != nil {
				return nil, formatErr(start, "GNU.sparse.offset record", err)
			}
			pairOff, halfPair = n, true
		case sparseNumBytes:
			if !halfPair {
				return nil, &FormatError{Offset: start, Reason: "GNU.sparse.numbytes without offset", Err: ErrSparse}
			}
			n, err := parseDecimal(v)
			if err != nil {
				return nil, formatErr(start, "GNU.sparse.numbytes record", err)
			}
			if err := sp.sb.add(pairOff, n); err != nil {
				return nil, formatErr(start, "GNU.sparse.numbytes record", err)
			}
			halfPair = false
			sp.entries++
		}
	}
	if halfPair {
		return nil, &FormatError{Offset: start, Reason: "GNU.sparse.offset without numbytes", Err: ErrSparse}
	}
	return sp, nil
}

// checkDeclared checks GNU.sparse.numblocks against the n entries of a
// PAX 0.x map. GNU tar 1.34 sizes its map by numblocks when it reads the
// record, and fails with "excess GNU.sparse.map" (or offset, numbytes) on
// entries past it: numblocks must come first and count at least the
// entries. A larger count is no error (bsdtar and Python ignore it).
func (sp *paxSparse0) checkDeclared(n int64) error {
	switch {
	case sp.declared < 0:
		return errorf(ErrSparse, 0, "no GNU.sparse.numblocks record (GNU tar refuses the map)")
	case sp.late:
		return errorf(ErrSparse, 0, "GNU.sparse.numblocks after the map (GNU tar drops the entries before it)")
	case sp.declared < n:
		return errorf(ErrSparse, 0, "GNU.sparse.numblocks %d for %d entries", sp.declared, n)
	}
	return nil
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

// oldGNUSparse goes on with an old GNU sparse member ('S') whose header
// block is b: its map is in the header and in the extension blocks that
// follow while isextended is set. Their number is bounded by the archive
// only (GNU tar and bsdtar read any number); the builder keeps the data
// fragments, at most one per block of the member's data.
func (d *Decoder) oldGNUSparse(m *Member, b *Block) (Step, error) {
	off := m.HeaderOffset
	if b.Format() != FormatGNU {
		return d.fail(&FormatError{Offset: off, Reason: "old GNU sparse member without the GNU magic", Err: ErrHeader})
	}
	real, err := parseNumeric(b.gnuRealSize())
	if err != nil {
		return d.fail(formatErr(off, "realsize field", err))
	}
	m.Size = real
	d.cur, d.sb = m, newSparseBuilder(m.DataSize)
	if err := d.sb.addGNUSparse(b.gnuSparse()); err != nil {
		return d.fail(formatErr(off, "sparse entry", err))
	}
	if b.gnuIsExtended() != 0 {
		d.state, d.next = stSparseExt, m.DataOffset
		return Step{Kind: StepNeedBlock, Next: d.next}, nil
	}
	return d.finishSparse()
}

func (d *Decoder) sparseExt(off int64, b *Block) (Step, error) {
	if err := d.sb.addGNUSparse(b.extSparse()); err != nil {
		return d.fail(formatErr(off, "sparse extension entry", err))
	}
	if b.extIsExtended() != 0 {
		d.next = off + BlockSize
		return Step{Kind: StepNeedBlock, Next: d.next}, nil
	}
	d.cur.DataOffset = off + BlockSize
	return d.finishSparse()
}

// finishSparse checks the map of d.cur, an old GNU or PAX 1.0 sparse
// member whose data is located, and reports the member.
func (d *Decoder) finishSparse() (Step, error) {
	m := d.cur
	var err error
	if m.Sparse, err = d.sb.finish(m.Size, m.DataSize); err != nil {
		return d.fail(formatErr(m.HeaderOffset, "sparse map", err))
	}
	d.sb = sparseBuilder{}
	return d.finishMember(m)
}

// startMap1 starts reading the map of m, a PAX 1.0 sparse member, at the
// start of its data area. The map is read a block at a time and parsed as
// it comes (its size is bounded by the member's data only: GNU tar and
// bsdtar read maps of any size); only the data fragments are kept.
func (d *Decoder) startMap1(m *Member) (Step, error) {
	dataOff := m.DataOffset
	if m.DataSize < BlockSize {
		return d.fail(&FormatError{Offset: m.HeaderOffset, Reason: "sparse 1.0 member too small for its map", Err: ErrSparse})
	}
	if !d.fits(dataOff, BlockSize) {
		return d.fail(&FormatError{Offset: dataOff, Reason: "sparse map past the end", Err: ErrTruncated})
	}
	d.cur, d.sb = m, newSparseBuilder(m.DataSize)
	d.rawDataOff, d.rawSize, d.mapRead = dataOff, m.DataSize, 0
	d.mapVal, d.mapDigits, d.mapCount, d.mapHalf = 0, 0, -1, false
	d.state = stSparseMap
	return d.needData(dataOff, BlockSize)
}

// sparseMapData consumes a block of a PAX 1.0 map.
func (d *Decoder) sparseMapData(p []byte) (Step, error) {
	done, err := d.parseMap1(p)
	if err != nil {
		return d.fail(formatErr(d.rawDataOff, "sparse 1.0 map", err))
	}
	d.mapRead += int64(len(p))
	if !done {
		next := d.rawDataOff + d.mapRead
		switch {
		case d.mapRead+BlockSize > d.rawSize:
			return d.fail(&FormatError{Offset: d.rawDataOff, Reason: "sparse map longer than the member", Err: ErrSparse})
		case !d.fits(next, BlockSize):
			return d.fail(&FormatError{Offset: next, Reason: "sparse map past the end", Err: ErrTruncated})
		}
		return d.needData(next, BlockSize)
	}
	d.cur.DataOffset, d.cur.DataSize = d.rawDataOff+d.mapRead, d.rawSize-d.mapRead
	return d.finishSparse()
}

// parseMap1 parses a block of a PAX 1.0 map (decimal numbers each ending
// in '\n': the count, then offset/length pairs) and reports whether the map
// is complete; the rest of the block is padding. Numbers are parsed as
// their digits come, without allocating. Error positions are relative to
// the start of the map.
func (d *Decoder) parseMap1(p []byte) (bool, error) {
	for i, c := range p {
		if d.mapComplete() {
			return true, nil
		}
		at := int(d.mapRead) + i
		switch {
		case c >= '0' && c <= '9':
			if d.mapVal > (math.MaxInt64-int64(c-'0'))/10 {
				return false, errorf(ErrSparse, at, "number in sparse map overflows 64 bits")
			}
			d.mapVal, d.mapDigits = d.mapVal*10+int64(c-'0'), d.mapDigits+1
			continue
		case c != '\n':
			return false, errorf(ErrSparse, at, "byte %q in sparse map", c)
		case d.mapDigits == 0:
			return false, errorf(ErrSparse, at, "empty line in sparse map")
		}
		v := d.mapVal
		d.mapVal, d.mapDigits = 0, 0
		if err := d.mapNumber(v, d.mapRead+int64(i)+1); err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				fe.at = at
			}
			return false, err
		}
	}
	return d.mapComplete(), nil
}

// mapComplete reports whether the PAX 1.0 map has all its entries.
func (d *Decoder) mapComplete() bool {
	return d.mapCount >= 0 && !d.mapHalf && d.sb.entries == d.mapCount
}

// mapNumber takes the next number v of a PAX 1.0 map, read up to byte pos
// of the map.
func (d *Decoder) mapNumber(v, pos int64) error {
	switch {
	case d.mapCount < 0:
		// An entry takes at least four bytes ("0\n0\n"): a count the
		// member's data cannot hold is refused before anything is read
		// for it (GNU tar would allocate it, then fail).
		if most := (d.rawSize - pos) / 4; v > most {
			return errorf(ErrSparse, 0, "%d sparse entries: the member's data holds at most %d", v, most)
		}
		d.mapCount = v
	case !d.mapHalf:
		d.mapOff, d.mapHalf = v, true
	default:
		d.mapHalf = false
		return d.sb.add(d.mapOff, v)
	}
	return nil
}

// finishMember checks that m's data fits, ends the member and reports it.
func (d *Decoder) finishMember(m *Member) (Step, error) {
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
