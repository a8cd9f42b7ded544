package vhostuser

import "fmt"

// wantProtocol are the protocol features Negotiate enables when offered.
const wantProtocol = ProtocolFeatureConfig | ProtocolFeatureReplyAck | ProtocolFeatureMQ

// Negotiated is the outcome of Negotiate.
type Negotiated struct {
	// Features is the value sent with SET_FEATURES: the offered features
	// among those wanted, plus FeatureVersion1 and
	// FeatureProtocolFeatures.
	Features uint64
	// Offered is what GET_FEATURES returned.
	Offered uint64
	// ProtocolFeatures is the value sent with SET_PROTOCOL_FEATURES:
	// ProtocolFeatureConfig, and ProtocolFeatureReplyAck and
	// ProtocolFeatureMQ when offered.
	ProtocolFeatures uint64
	// QueueNum is GET_QUEUE_NUM's answer with ProtocolFeatureMQ, else 1.
	QueueNum uint64
	// Config is the device config space: the first ConfigSize bytes.
	Config []byte
}

// ConfigSize is how much config space Negotiate reads: struct
// virtio_blk_config up to write_zeroes_may_unmap and its padding (virtio
// 1.2 §5.2.4), what a QEMU 7.2 vhost-user-blk back-end serves.
const ConfigSize = 60

// Handshake runs the start of a session in the order qemu-storage-daemon
// is known to accept: SET_OWNER, GET_FEATURES, GET_PROTOCOL_FEATURES,
// SET_PROTOCOL_FEATURES (ProtocolFeatureConfig, and ProtocolFeatureReplyAck
// and ProtocolFeatureMQ when offered), GET_QUEUE_NUM (with MQ). The back-end
// must offer FeatureVersion1, FeatureProtocolFeatures and
// ProtocolFeatureConfig (ErrUnsupported otherwise). It fills in every field
// of Negotiated but Features and Config.
//
// What follows is the caller's: GetConfig, SetFeatures (with
// FeatureVersion1 and FeatureProtocolFeatures), SetMemTable, then per ring
// SetVringNum, SetVringBase, SetVringAddr, SetVringKick, SetVringCall and
// SetVringEnable(idx, true) — rings start disabled.
func (c *Conn) Handshake() (*Negotiated, error) {
	if err := c.SetOwner(); err != nil {
		return nil, err
	}
	offered, err := c.GetFeatures()
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		bit  uint64
		name string
	}{
		{FeatureVersion1, "VIRTIO_F_VERSION_1"},
		{FeatureProtocolFeatures, "VHOST_USER_F_PROTOCOL_FEATURES"},
	} {
		if offered&f.bit == 0 {
			return nil, &Error{Op: "negotiate", Err: fmt.Errorf("%w: features %#x lack %s", ErrUnsupported, offered, f.name)}
		}
	}
	pOffered, err := c.GetProtocolFeatures()
	if err != nil {
		return nil, err
	}
	if pOffered&ProtocolFeatureConfig == 0 {
		return nil, &Error{Op: "negotiate", Err: fmt.Errorf("%w: protocol features %#x lack VHOST_USER_PROTOCOL_F_CONFIG", ErrUnsupported, pOffered)}
	}
	n := &Negotiated{Offered: offered, ProtocolFeatures: pOffered & wantProtocol, QueueNum: 1}
	if err := c.SetProtocolFeatures(n.ProtocolFeatures); err != nil {
		return nil, err
	}
	if n.ProtocolFeatures&ProtocolFeatureMQ != 0 {
		if n.QueueNum, err = c.GetQueueNum(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Negotiate is Handshake, then GET_CONFIG of ConfigSize bytes, then
// SET_FEATURES with the offered features among want, plus FeatureVersion1
// and FeatureProtocolFeatures.
func (c *Conn) Negotiate(want uint64) (*Negotiated, error) {
	n, err := c.Handshake()
	if err != nil {
		return nil, err
	}
	if n.Config, err = c.GetConfig(0, ConfigSize); err != nil {
		return nil, err
	}
	n.Features = n.Offered & (want | FeatureVersion1 | FeatureProtocolFeatures)
	if err := c.SetFeatures(n.Features); err != nil {
		return nil, err
	}
	return n, nil
}
