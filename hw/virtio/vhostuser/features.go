package vhostuser

// Virtio feature bits (virtio 1.2 §6 "Reserved Feature Bits" and §5.2.3
// "Feature bits" of the block device), plus the vhost-user bit 30.
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

	FeatureRingIndirectDesc = 1 << 28 // VIRTIO_F_INDIRECT_DESC
	FeatureRingEventIdx     = 1 << 29 // VIRTIO_F_EVENT_IDX

	// FeatureProtocolFeatures is VHOST_USER_F_PROTOCOL_FEATURES: offered
	// in GET_FEATURES by back-ends that support GET/SET_PROTOCOL_FEATURES.
	FeatureProtocolFeatures = 1 << 30

	FeatureVersion1 = 1 << 32 // VIRTIO_F_VERSION_1: required by the back-end
)

// Vhost-user protocol feature bits ("Protocol features" in the vhost-user
// document).
const (
	ProtocolFeatureMQ                = 1 << 0
	ProtocolFeatureLogShmfd          = 1 << 1
	ProtocolFeatureReplyAck          = 1 << 3
	ProtocolFeatureBackendReq        = 1 << 5
	ProtocolFeatureConfig            = 1 << 9
	ProtocolFeatureInflightShmfd     = 1 << 12
	ProtocolFeatureConfigureMemSlots = 1 << 15
)
