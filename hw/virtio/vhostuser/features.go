package vhostuser

// Virtio feature bits that concern the transport (virtio 1.2 §6 "Reserved
// Feature Bits"), plus the vhost-user bit 30. The device-type bits (such as
// virtio-blk's) are the driver's business: package hw/virtio.
const (
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
