package virtio

import (
	"encoding/binary"
	"fmt"
)

// Feature bits (virtio 1.2 §5.2.3 "Feature bits" of the block device and
// §6 "Reserved Feature Bits").
const (
	FeatureBlkSizeMax     = 1 << 1  // VIRTIO_BLK_F_SIZE_MAX: size_max valid
	FeatureBlkSegMax      = 1 << 2  // VIRTIO_BLK_F_SEG_MAX: seg_max valid
	FeatureBlkGeometry    = 1 << 4  // VIRTIO_BLK_F_GEOMETRY
	FeatureBlkRO          = 1 << 5  // VIRTIO_BLK_F_RO: read-only device
	FeatureBlkBlkSize     = 1 << 6  // VIRTIO_BLK_F_BLK_SIZE: blk_size valid
	FeatureBlkFlush       = 1 << 9  // VIRTIO_BLK_F_FLUSH
	FeatureBlkTopology    = 1 << 10 // VIRTIO_BLK_F_TOPOLOGY
	FeatureBlkConfigWCE   = 1 << 11 // VIRTIO_BLK_F_CONFIG_WCE
	FeatureBlkMQ          = 1 << 12 // VIRTIO_BLK_F_MQ: num_queues valid
	FeatureBlkDiscard     = 1 << 13 // VIRTIO_BLK_F_DISCARD
	FeatureBlkWriteZeroes = 1 << 14 // VIRTIO_BLK_F_WRITE_ZEROES

	FeatureIndirectDesc = 1 << 28 // VIRTIO_F_INDIRECT_DESC (§2.7.5.3)
	FeatureEventIdx     = 1 << 29 // VIRTIO_F_EVENT_IDX (§2.7.7, §2.7.10)
	FeatureVersion1     = 1 << 32 // VIRTIO_F_VERSION_1: required
	// FeatureAccessPlatform is VIRTIO_F_ACCESS_PLATFORM (§6): the device
	// reaches memory through the platform's IOMMU, so the addresses the
	// driver gives are IOVAs. A device behind an IOMMU offers it and may
	// refuse a driver that does not accept it.
	FeatureAccessPlatform = 1 << 33
)

// wantFeatures are the features the driver uses when offered.
const wantFeatures = FeatureBlkSizeMax | FeatureBlkSegMax | FeatureBlkRO | FeatureBlkBlkSize |
	FeatureBlkFlush | FeatureBlkDiscard | FeatureBlkWriteZeroes |
	FeatureIndirectDesc | FeatureEventIdx | FeatureVersion1 | FeatureAccessPlatform

// Request types (§5.2.6 "Device Operation").
const (
	typeIn          = 0  // VIRTIO_BLK_T_IN: read
	typeOut         = 1  // VIRTIO_BLK_T_OUT: write
	typeFlush       = 4  // VIRTIO_BLK_T_FLUSH
	typeGetID       = 8  // VIRTIO_BLK_T_GET_ID: 20-byte serial
	typeDiscard     = 11 // VIRTIO_BLK_T_DISCARD
	typeWriteZeroes = 13 // VIRTIO_BLK_T_WRITE_ZEROES
)

// Status values in the request's last byte (§5.2.6).
const (
	statusOK     = 0 // VIRTIO_BLK_S_OK
	statusIOErr  = 1 // VIRTIO_BLK_S_IOERR
	statusUnsupp = 2 // VIRTIO_BLK_S_UNSUPP
)

// Layout sizes (§5.2.6): the device-readable header is le32 type, le32
// reserved, le64 sector (always in 512-byte units); discard and
// write-zeroes carry segments of le64 sector, le32 num_sectors, le32 flags;
// GET_ID answers 20 bytes.
const (
	headerSize  = 16
	segmentSize = 16
	idSize      = 20
)

// putHeader writes a request header into b.
func putHeader(b []byte, typ uint32, sector uint64) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], typ)
	le.PutUint32(b[4:], 0)
	le.PutUint64(b[8:], sector)
}

// putSegment writes a discard / write-zeroes segment into b.
func putSegment(b []byte, sector uint64, sectors, flags uint32) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], sector)
	le.PutUint32(b[8:], sectors)
	le.PutUint32(b[12:], flags)
}

// opName is the hw.Error Op of a request type.
func opName(typ uint32) string {
	switch typ {
	case typeIn:
		return "read"
	case typeOut:
		return "write"
	case typeFlush:
		return "flush"
	case typeGetID:
		return "get-id"
	case typeDiscard:
		return "discard"
	case typeWriteZeroes:
		return "write-zeroes"
	}
	return fmt.Sprintf("request(%d)", typ)
}
