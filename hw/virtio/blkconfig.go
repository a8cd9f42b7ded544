package virtio

import (
	"encoding/binary"
	"fmt"
)

// BlkConfigSize is the size of struct virtio_blk_config up to and including
// write_zeroes_may_unmap and its padding (virtio 1.2 §5.2.4), the config a
// QEMU 7.2 vhost-user-blk back-end serves.
const BlkConfigSize = 60

// BlkConfig is the virtio-blk device configuration layout (virtio 1.2
// §5.2.4 "Device configuration layout"). Config space is little-endian.
// A field is meaningful only when its feature was negotiated (noted per
// field); Capacity always is.
type BlkConfig struct {
	Capacity  uint64 // offset 0: size in 512-byte sectors
	SizeMax   uint32 // offset 8: max bytes in one segment (FeatureBlkSizeMax)
	SegMax    uint32 // offset 12: max segments per request (FeatureBlkSegMax)
	Cylinders uint16 // offset 16 (FeatureBlkGeometry)
	Heads     uint8  // offset 18
	Sectors   uint8  // offset 19
	BlkSize   uint32 // offset 20: logical block size in bytes (FeatureBlkBlkSize)

	PhysicalBlockExp uint8  // offset 24: log2(physical/logical) (FeatureBlkTopology)
	AlignmentOffset  uint8  // offset 25
	MinIOSize        uint16 // offset 26, in logical blocks
	OptIOSize        uint32 // offset 28, in logical blocks

	Writeback uint8  // offset 32 (FeatureBlkConfigWCE)
	NumQueues uint16 // offset 34 (FeatureBlkMQ)

	MaxDiscardSectors      uint32 // offset 36 (FeatureBlkDiscard)
	MaxDiscardSeg          uint32 // offset 40
	DiscardSectorAlignment uint32 // offset 44

	MaxWriteZeroesSectors uint32 // offset 48 (FeatureBlkWriteZeroes)
	MaxWriteZeroesSeg     uint32 // offset 52
	WriteZeroesMayUnmap   uint8  // offset 56
}

// ParseBlkConfig decodes the first BlkConfigSize bytes of a virtio-blk
// config space.
func ParseBlkConfig(b []byte) (BlkConfig, error) {
	if len(b) < BlkConfigSize {
		return BlkConfig{}, fmt.Errorf("%w: virtio-blk config is %d bytes, want %d", ErrBadDevice, len(b), BlkConfigSize)
	}
	le := binary.LittleEndian
	return BlkConfig{
		Capacity:               le.Uint64(b[0:]),
		SizeMax:                le.Uint32(b[8:]),
		SegMax:                 le.Uint32(b[12:]),
		Cylinders:              le.Uint16(b[16:]),
		Heads:                  b[18],
		Sectors:                b[19],
		BlkSize:                le.Uint32(b[20:]),
		PhysicalBlockExp:       b[24],
		AlignmentOffset:        b[25],
		MinIOSize:              le.Uint16(b[26:]),
		OptIOSize:              le.Uint32(b[28:]),
		Writeback:              b[32],
		NumQueues:              le.Uint16(b[34:]),
		MaxDiscardSectors:      le.Uint32(b[36:]),
		MaxDiscardSeg:          le.Uint32(b[40:]),
		DiscardSectorAlignment: le.Uint32(b[44:]),
		MaxWriteZeroesSectors:  le.Uint32(b[48:]),
		MaxWriteZeroesSeg:      le.Uint32(b[52:]),
		WriteZeroesMayUnmap:    b[56],
	}, nil
}

// LogicalBlockSize returns BlkSize when features include FeatureBlkBlkSize
// and it is non-zero, else 512 (the unit of Capacity and of request
// sectors, whatever the block size).
func (c BlkConfig) LogicalBlockSize(features uint64) uint32 {
	if features&FeatureBlkBlkSize != 0 && c.BlkSize != 0 {
		return c.BlkSize
	}
	return 512
}
