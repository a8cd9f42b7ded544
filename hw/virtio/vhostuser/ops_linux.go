package vhostuser

import (
	"fmt"
)

// SetOwner (VHOST_USER_SET_OWNER) claims the back-end session; it is the
// first message of a connection.
func (c *Conn) SetOwner() error {
	_, err := c.exchange(reqSetOwner, nil, nil, false)
	return err
}

// GetFeatures (VHOST_USER_GET_FEATURES) returns the virtio features the
// back-end offers, plus FeatureProtocolFeatures when it speaks protocol
// features.
func (c *Conn) GetFeatures() (uint64, error) {
	return c.getU64(reqGetFeatures)
}

// SetFeatures (VHOST_USER_SET_FEATURES) acks features, a subset of
// GetFeatures. Include FeatureProtocolFeatures when protocol features are
// used (rings then start disabled, see SetVringEnable).
func (c *Conn) SetFeatures(features uint64) error {
	_, err := c.exchange(reqSetFeatures, u64Payload(features), nil, false)
	return err
}

// GetProtocolFeatures (VHOST_USER_GET_PROTOCOL_FEATURES) returns the
// protocol features the back-end offers; valid only when GetFeatures
// offered FeatureProtocolFeatures.
func (c *Conn) GetProtocolFeatures() (uint64, error) {
	return c.getU64(reqGetProtocolFeatures)
}

// SetProtocolFeatures (VHOST_USER_SET_PROTOCOL_FEATURES) enables protocol
// features, a subset of GetProtocolFeatures. Once it succeeds with
// ProtocolFeatureReplyAck, every later message without a reply of its own
// is sent with NEED_REPLY and waits for the back-end's ack.
func (c *Conn) SetProtocolFeatures(features uint64) error {
	if _, err := c.exchange(reqSetProtocolFeatures, u64Payload(features), nil, false); err != nil {
		return err
	}
	c.mu.Lock()
	c.protocol = features
	c.mu.Unlock()
	return nil
}

// GetQueueNum (VHOST_USER_GET_QUEUE_NUM) returns the number of queues the
// back-end supports; valid only with ProtocolFeatureMQ.
func (c *Conn) GetQueueNum() (uint64, error) {
	return c.getU64(reqGetQueueNum)
}

// GetConfig (VHOST_USER_GET_CONFIG) reads size bytes of the device config
// space at offset; it needs ProtocolFeatureConfig. size is at most
// MaxConfigSize.
func (c *Conn) GetConfig(offset, size uint32) ([]byte, error) {
	op := reqGetConfig.String()
	if size == 0 || size > MaxConfigSize {
		return nil, &Error{Op: op, Err: fmt.Errorf("%w: config size %d not in 1..%d", ErrInvalid, size, MaxConfigSize)}
	}
	p, err := c.exchange(reqGetConfig, configPayload(offset, 0, make([]byte, size)), nil, true)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(reqGetConfig, p, offset, size)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	return cfg, nil
}

// SetMemTable (VHOST_USER_SET_MEM_TABLE) tells the back-end which memory
// it may access: 1 to MaxRegions regions, whose fds are passed with
// SCM_RIGHTS in the same sendmsg as the header. The back-end maps them; the
// caller keeps its fds (they may be closed once this returns).
func (c *Conn) SetMemTable(regions []Region) error {
	op := reqSetMemTable.String()
	if len(regions) == 0 || len(regions) > MaxRegions {
		return &Error{Op: op, Err: fmt.Errorf("%w: %d memory regions, want 1..%d", ErrInvalid, len(regions), MaxRegions)}
	}
	fds := make([]int, len(regions))
	for i, r := range regions {
		if r.FD < 0 || r.Size == 0 {
			return &Error{Op: op, Err: fmt.Errorf("%w: region %d has fd %d, size %d", ErrInvalid, i, r.FD, r.Size)}
		}
		fds[i] = r.FD
	}
	_, err := c.exchange(reqSetMemTable, memTablePayload(regions), fds, false)
	return err
}

// SetVringNum (VHOST_USER_SET_VRING_NUM) sets the size of ring idx.
func (c *Conn) SetVringNum(idx, num uint32) error {
	_, err := c.exchange(reqSetVringNum, vringStatePayload(idx, num), nil, false)
	return err
}

// SetVringBase (VHOST_USER_SET_VRING_BASE) sets the next available ring
// index the back-end will read for ring idx (0 for a fresh ring).
func (c *Conn) SetVringBase(idx, base uint32) error {
	_, err := c.exchange(reqSetVringBase, vringStatePayload(idx, base), nil, false)
	return err
}

// SetVringAddr (VHOST_USER_SET_VRING_ADDR) sets the addresses of ring
// idx's descriptor table, used ring and available ring. They are
// front-end virtual addresses (UserAddr in a Region), which the back-end
// translates through the memory table set before. flags is 0 or VringFLog.
func (c *Conn) SetVringAddr(idx uint32, desc, used, avail uint64, flags uint32) error {
	_, err := c.exchange(reqSetVringAddr, vringAddrPayload(idx, flags, desc, used, avail, 0), nil, false)
	return err
}

// SetVringKick (VHOST_USER_SET_VRING_KICK) passes the eventfd the
// front-end writes to notify the back-end of new buffers in ring idx
// (idx < 256). fd < 0 sends no fd (the "invalid FD" flag: the back-end
// polls). The back-end starts the ring when it gets its kick fd.
func (c *Conn) SetVringKick(idx uint32, fd int) error {
	return c.setVringFile(reqSetVringKick, idx, fd)
}

// SetVringCall (VHOST_USER_SET_VRING_CALL) passes the eventfd the back-end
// writes when it has put buffers in ring idx's used ring (idx < 256);
// fd < 0 sends no fd.
func (c *Conn) SetVringCall(idx uint32, fd int) error {
	return c.setVringFile(reqSetVringCall, idx, fd)
}

func (c *Conn) setVringFile(req request, idx uint32, fd int) error {
	if idx > vringIdxMask {
		return &Error{Op: req.String(), Err: fmt.Errorf("%w: vring index %d > %d", ErrInvalid, idx, vringIdxMask)}
	}
	var fds []int
	if fd >= 0 {
		fds = []int{fd}
	}
	_, err := c.exchange(req, vringFilePayload(idx, fd), fds, false)
	return err
}

// SetVringEnable (VHOST_USER_SET_VRING_ENABLE) enables or disables ring
// idx. With protocol features negotiated rings start disabled, and the
// back-end ignores the requests of a disabled ring.
func (c *Conn) SetVringEnable(idx uint32, enable bool) error {
	var v uint32
	if enable {
		v = 1
	}
	_, err := c.exchange(reqSetVringEnable, vringStatePayload(idx, v), nil, false)
	return err
}

// GetVringBase (VHOST_USER_GET_VRING_BASE) stops ring idx and returns the
// next available ring index the back-end would have read, to resume from
// with SetVringBase.
func (c *Conn) GetVringBase(idx uint32) (uint32, error) {
	p, err := c.exchange(reqGetVringBase, vringStatePayload(idx, 0), nil, true)
	if err != nil {
		return 0, err
	}
	gotIdx, base, err := parseVringState(reqGetVringBase, p)
	if err == nil && gotIdx != idx {
		err = fmt.Errorf("%w: %v reply is for vring %d, asked %d", ErrProtocol, reqGetVringBase, gotIdx, idx)
	}
	if err != nil {
		return 0, &Error{Op: reqGetVringBase.String(), Err: err}
	}
	return base, nil
}

func (c *Conn) getU64(req request) (uint64, error) {
	p, err := c.exchange(req, nil, nil, true)
	if err != nil {
		return 0, err
	}
	v, err := parseU64(req, p)
	if err != nil {
		return 0, &Error{Op: req.String(), Err: err}
	}
	return v, nil
}
