package tarfmt

import (
	"encoding/binary"
	"hash/crc32"
)

// A Tag is what a writer may keep in the last 12 bytes of a ustar header
// block, which POSIX leaves unused (after prefix[155]) and GNU tar, bsdtar,
// Python's tarfile and Go's archive/tar ignore:
//
//	offset  size
//	   500     4  CRC-32C (Castagnoli) of the member's data, little-endian
//	   504     4  Chain, little-endian
//	   508     4  magic "tsc1"
//
// The magic is not star's "tar\0" trailer, so the block stays ustar for
// every reader. A writer uses Chain to link a member to the one written
// before it; the codec gives it no meaning.
type Tag struct {
	DataCRC uint32
	Chain   uint32
}

const tagMagic = "tsc1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DataCRC returns the CRC-32C of data, as Tag.DataCRC holds it.
func DataCRC(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// SetTag stores t in the ustar header block b and recomputes its checksum.
// It reports false, changing nothing, when b is not a ustar header (a
// GNU, star or v7 header uses those bytes, or the magic is absent).
func SetTag(b *Block, t Tag) bool {
	if b.Format() != FormatUSTAR {
		return false
	}
	binary.LittleEndian.PutUint32(b[500:], t.DataCRC)
	binary.LittleEndian.PutUint32(b[504:], t.Chain)
	copy(b[508:512], tagMagic)
	b.SetChecksum()
	return true
}

// GetTag returns the tag of the ustar header block b, if it has one.
func GetTag(b *Block) (Tag, bool) {
	if b.Format() != FormatUSTAR || string(b[508:512]) != tagMagic {
		return Tag{}, false
	}
	return Tag{DataCRC: binary.LittleEndian.Uint32(b[500:]), Chain: binary.LittleEndian.Uint32(b[504:])}, true
}
