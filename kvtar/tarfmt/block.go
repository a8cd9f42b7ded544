package tarfmt

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// BlockSize is the size of a tar block: headers occupy one block each and
// member data is padded to a multiple of it.
const BlockSize = 512

// A Block is one 512-byte tar block. The unexported accessors return the
// byte ranges of the header fields; the layouts are those of POSIX.1-1988
// ustar (and its v7 subset), GNU tar and star:
//
//	offset  v7/ustar           GNU (oldgnu, gnu)       star
//	     0  name[100]
//	   100  mode[8]
//	   108  uid[8]
//	   116  gid[8]
//	   124  size[12]
//	   136  mtime[12]
//	   148  chksum[8]
//	   156  typeflag[1]
//	   157  linkname[100]
//	   257  magic[6]  "ustar\0"  "ustar " (8 bytes with version)
//	   263  version[2] "00"      " \0"
//	   265  uname[32]
//	   297  gname[32]
//	   329  devmajor[8]
//	   337  devminor[8]
//	   345  prefix[155]         atime[12] ctime[12]     prefix[131]
//	                            offset[12] longnames[4] atime[12] ctime[12]
//	                            unused[1] sparse[4*24]
//	                            isextended[1] realsize[12]
//	   508                                              trailer "tar\0"
//
// A GNU sparse extension block holds 21 sparse entries (offset[12],
// numbytes[12]) followed by isextended[1] at offset 504.
type Block [BlockSize]byte

func (b *Block) name() []byte     { return b[0:100] }
func (b *Block) mode() []byte     { return b[100:108] }
func (b *Block) uid() []byte      { return b[108:116] }
func (b *Block) gid() []byte      { return b[116:124] }
func (b *Block) size() []byte     { return b[124:136] }
func (b *Block) mtime() []byte    { return b[136:148] }
func (b *Block) chksum() []byte   { return b[148:156] }
func (b *Block) typeflag() []byte { return b[156:157] }
func (b *Block) linkname() []byte { return b[157:257] }

// Common to ustar, GNU and star.
func (b *Block) magic() []byte    { return b[257:263] }
func (b *Block) version() []byte  { return b[263:265] }
func (b *Block) uname() []byte    { return b[265:297] }
func (b *Block) gname() []byte    { return b[297:329] }
func (b *Block) devmajor() []byte { return b[329:337] }
func (b *Block) devminor() []byte { return b[337:345] }

// ustar.
func (b *Block) prefix() []byte { return b[345:500] }

// star.
func (b *Block) starPrefix() []byte  { return b[345:476] }
func (b *Block) starTrailer() []byte { return b[508:512] }

// GNU. The atime, ctime, offset and longnames fields (bytes 345 to 385)
// are not interpreted: GNU tar writes them only for incremental and
// multi-volume archives.
func (b *Block) gnuSparse() []byte   { return b[386:482] }
func (b *Block) gnuIsExtended() byte { return b[482] }
func (b *Block) gnuRealSize() []byte { return b[483:495] }

// GNU sparse extension block.
func (b *Block) extSparse() []byte   { return b[0:504] }
func (b *Block) extIsExtended() byte { return b[504] }

// sparseEntry returns the offset and numbytes fields of entry i of a GNU
// sparse array (24 bytes per entry).
func sparseEntry(arr []byte, i int) (offset, numbytes []byte) {
	e := arr[i*24 : i*24+24]
	return e[0:12], e[12:24]
}

const (
	magicUSTAR   = "ustar\x00"
	versionUSTAR = "00"
	magicGNU     = "ustar "
	versionGNU   = " \x00"
	trailerSTAR  = "tar\x00"
)

// IsZero reports whether every byte of the block is zero. Two zero blocks
// (or one followed by the end of the input) end an archive.
func (b *Block) IsZero() bool {
	var z Block
	return *b == z
}

// Checksum returns the block's checksum computed as POSIX specifies (the
// sum of all bytes, with the chksum field taken as eight spaces) over
// unsigned bytes, and the historic sum over signed bytes that some old
// writers (Sun tar) produced. Readers accept either.
func (b *Block) Checksum() (unsigned, signed int64) {
	return b.unsignedSum(), b.signedSum()
}

// unsignedSum is the POSIX checksum: the sum of the bytes as unsigned
// values, the checksum field counted as spaces. It is on the path of every
// header the store scans, so it sums eight bytes at a time: the bytes of a
// uint64 added lane by lane (no lane can overflow: at most 64 bytes of 255
// reach a lane before it is folded).
func (b *Block) unsignedSum() int64 {
	const lanes = 0x00ff00ff00ff00ff
	var sum int64
	for i := 0; i < BlockSize; i += 64 {
		var acc uint64
		for j := i; j < i+64; j += 8 {
			w := binary.LittleEndian.Uint64(b[j:])
			acc += w&lanes + (w>>8)&lanes
		}
		// Fold the four 16-bit lanes.
		acc = acc&0x0000ffff0000ffff + (acc>>16)&0x0000ffff0000ffff
		sum += int64(acc&0xffffffff + acc>>32)
	}
	// The checksum field counts as eight spaces.
	for _, c := range b[148:156] {
		sum += int64(' ') - int64(c)
	}
	return sum
}

// signedSum is the historic checksum of some old tars: bytes as signed
// values.
// A byte of 128 or more counts 256 less than in the unsigned sum.
func (b *Block) signedSum() int64 {
	high := 0
	for i := 0; i < BlockSize; i += 8 {
		high += bits.OnesCount64(binary.LittleEndian.Uint64(b[i:]) & 0x8080808080808080)
	}
	for _, c := range b[148:156] { // the checksum field counts as spaces
		high -= int(c >> 7)
	}
	return b.unsignedSum() - 256*int64(high)
}

// SetChecksum computes the checksum and stores it in the chksum field as
// six octal digits, a NUL and a space (the form GNU tar and POSIX use).
func (b *Block) SetChecksum() {
	formatOctal(b.chksum()[:7], b.unsignedSum())
	b.chksum()[7] = ' '
}

// ChecksumOK reports whether the chksum field holds the unsigned or the
// signed checksum of the block.
func (b *Block) ChecksumOK() bool {
	v, err := parseOctal(b.chksum())
	if err != nil {
		return false
	}
	return v == b.unsignedSum() || v == b.signedSum()
}

// Format returns the header layout the block's magic announces: FormatUSTAR
// ("ustar\0" "00"), FormatSTAR (the same plus the "tar\0" trailer),
// FormatGNU ("ustar  \0") or FormatV7 (anything else).
func (b *Block) Format() Format {
	switch {
	case string(b.magic()) == magicUSTAR && string(b.starTrailer()) == trailerSTAR:
		return FormatSTAR
	case string(b.magic()) == magicUSTAR:
		return FormatUSTAR
	case string(b.magic()) == magicGNU && string(b.version()) == versionGNU:
		return FormatGNU
	}
	return FormatV7
}

// A Format names a tar header layout.
type Format uint8

const (
	FormatUnknown Format = iota
	FormatV7             // Unix V7: name, numbers, linkname; no magic
	FormatUSTAR          // POSIX.1-1988 ustar
	FormatPAX            // POSIX.1-2001 pax: ustar plus an x header
	FormatGNU            // GNU tar (oldgnu and gnu): L/K long names, base-256, old sparse
	FormatSTAR           // Jörg Schilling's star: ustar with a 131-byte prefix
)

func (f Format) String() string {
	switch f {
	case FormatV7:
		return "v7"
	case FormatUSTAR:
		return "ustar"
	case FormatPAX:
		return "pax"
	case FormatGNU:
		return "gnu"
	case FormatSTAR:
		return "star"
	}
	return "unknown"
}

// cString returns b up to its first NUL.
func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
