package vhostuser

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// request is a vhost-user message type ("Front-end message types" in the
// vhost-user document).
type request uint32

const (
	reqGetFeatures         request = 1
	reqSetFeatures         request = 2
	reqSetOwner            request = 3
	reqResetOwner          request = 4
	reqSetMemTable         request = 5
	reqSetVringNum         request = 8
	reqSetVringAddr        request = 9
	reqSetVringBase        request = 10
	reqGetVringBase        request = 11
	reqSetVringKick        request = 12
	reqSetVringCall        request = 13
	reqGetProtocolFeatures request = 15
	reqSetProtocolFeatures request = 16
	reqGetQueueNum         request = 17
	reqSetVringEnable      request = 18
	reqGetConfig           request = 24
)

var requestNames = map[request]string{
	reqGetFeatures:         "GET_FEATURES",
	reqSetFeatures:         "SET_FEATURES",
	reqSetOwner:            "SET_OWNER",
	reqResetOwner:          "RESET_OWNER",
	reqSetMemTable:         "SET_MEM_TABLE",
	reqSetVringNum:         "SET_VRING_NUM",
	reqSetVringAddr:        "SET_VRING_ADDR",
	reqSetVringBase:        "SET_VRING_BASE",
	reqGetVringBase:        "GET_VRING_BASE",
	reqSetVringKick:        "SET_VRING_KICK",
	reqSetVringCall:        "SET_VRING_CALL",
	reqGetProtocolFeatures: "GET_PROTOCOL_FEATURES",
	reqSetProtocolFeatures: "SET_PROTOCOL_FEATURES",
	reqGetQueueNum:         "GET_QUEUE_NUM",
	reqSetVringEnable:      "SET_VRING_ENABLE",
	reqGetConfig:           "GET_CONFIG",
}

func (r request) String() string {
	if s, ok := requestNames[r]; ok {
		return s
	}
	return "request(" + strconv.FormatUint(uint64(r), 10) + ")"
}

// Header flags ("Header" in the vhost-user document).
const (
	flagVersion     = 0x1 // protocol version, bits 0-1
	flagVersionMask = 0x3
	flagReply       = 0x4 // set on every back-end reply
	flagNeedReply   = 0x8 // ask for a u64 ack (REPLY_ACK)
)

const (
	hdrSize = 12 // request u32, flags u32, size u32

	// maxPayload bounds the payload size accepted in a reply. The largest
	// payloads of the messages this package handles are a memory table of
	// maxRegions regions (8+8*32 bytes) and a config reply (12+256 bytes).
	maxPayload = 4096

	// MaxRegions is the number of memory regions SET_MEM_TABLE can carry
	// without VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS
	// (VHOST_MEMORY_BASELINE_NREGIONS).
	MaxRegions = 8

	// MaxConfigSize is the largest config space GET_CONFIG can read
	// (VHOST_USER_MAX_CONFIG_SIZE).
	MaxConfigSize = 256

	regionSize     = 32 // guest addr, size, user addr, mmap offset: u64 each
	vringStateSize = 8  // index u32, num u32
	vringAddrSize  = 40 // index u32, flags u32, desc, used, avail, log u64
	configHdrSize  = 12 // offset u32, size u32, flags u32

	vringIdxMask = 0xff   // vring index in a KICK/CALL u64 payload
	vringNoFD    = 1 << 8 // "invalid FD" flag in a KICK/CALL u64 payload
)

// VringFLog is the SET_VRING_ADDR flag asking the back-end to log used ring
// writes (VHOST_VRING_F_LOG); it needs a log set with SET_LOG_BASE, which
// this package does not implement.
const VringFLog = 1 << 0

// Numbers in vhost-user messages are in the machine's native byte order
// ("Message Specification": "all numbers are in the machine native byte
// order"). Device config space is little-endian (virtio 1.x) and decoded
// separately.
var ne = binary.NativeEndian

func put32(b []byte, off int, v uint32) { ne.PutUint32(b[off:off+4], v) }
func put64(b []byte, off int, v uint64) { ne.PutUint64(b[off:off+8], v) }
func get32(b []byte, off int) uint32    { return ne.Uint32(b[off : off+4]) }
func get64(b []byte, off int) uint64    { return ne.Uint64(b[off : off+8]) }

// Region is one entry of SET_MEM_TABLE ("Memory region description"):
// Size bytes of the file FD starting at MmapOffset, which the back-end
// maps; GuestAddr is the "guest physical" address of its first byte, as
// used in descriptors, and UserAddr the front-end's virtual address of it,
// as used in SET_VRING_ADDR.
type Region struct {
	GuestAddr  uint64
	Size       uint64
	UserAddr   uint64
	MmapOffset uint64
	FD         int
}

// header is the 12-byte message header.
type header struct {
	req   request
	flags uint32
	size  uint32 // payload bytes that follow the header
}

func (h header) put(b []byte) {
	put32(b, 0, uint32(h.req))
	put32(b, 4, h.flags)
	put32(b, 8, h.size)
}

func parseHeader(b []byte) header {
	return header{req: request(get32(b, 0)), flags: get32(b, 4), size: get32(b, 8)}
}

// encodeMessage returns header and payload as one byte slice, ready for a
// single sendmsg.
func encodeMessage(req request, flags uint32, payload []byte) []byte {
	b := make([]byte, hdrSize+len(payload))
	header{req: req, flags: flags, size: uint32(len(payload))}.put(b)
	copy(b[hdrSize:], payload)
	return b
}

// checkReply validates the header of a reply to req: same request type,
// version 1, the reply flag set, a bounded size.
func (h header) checkReply(req request) error {
	if h.req != req {
		return fmt.Errorf("%w: reply to %v has request type %v", ErrProtocol, req, h.req)
	}
	if h.flags&flagVersionMask != flagVersion {
		return fmt.Errorf("%w: reply to %v has version %d, want 1 (flags %#x)", ErrProtocol, req, h.flags&flagVersionMask, h.flags)
	}
	if h.flags&flagReply == 0 {
		return fmt.Errorf("%w: reply to %v lacks the reply flag (flags %#x)", ErrProtocol, req, h.flags)
	}
	if h.size > maxPayload {
		return fmt.Errorf("%w: reply to %v has payload size %d > %d", ErrProtocol, req, h.size, maxPayload)
	}
	return nil
}

func u64Payload(v uint64) []byte {
	b := make([]byte, 8)
	put64(b, 0, v)
	return b
}

func parseU64(req request, p []byte) (uint64, error) {
	if len(p) != 8 {
		return 0, shortReply(req, len(p), 8)
	}
	return get64(p, 0), nil
}

func vringStatePayload(idx, num uint32) []byte {
	b := make([]byte, vringStateSize)
	put32(b, 0, idx)
	put32(b, 4, num)
	return b
}

func parseVringState(req request, p []byte) (idx, num uint32, err error) {
	if len(p) != vringStateSize {
		return 0, 0, shortReply(req, len(p), vringStateSize)
	}
	return get32(p, 0), get32(p, 4), nil
}

// vringAddrPayload encodes struct vhost_vring_addr. desc, used and avail
// are front-end virtual addresses; log is a guest physical address.
func vringAddrPayload(idx, flags uint32, desc, used, avail, log uint64) []byte {
	b := make([]byte, vringAddrSize)
	put32(b, 0, idx)
	put32(b, 4, flags)
	put64(b, 8, desc)
	put64(b, 16, used)
	put64(b, 24, avail)
	put64(b, 32, log)
	return b
}

// memTablePayload encodes the "Multiple Memory regions description":
// nregions u32, padding u32, then one 32-byte region per entry.
func memTablePayload(regions []Region) []byte {
	b := make([]byte, 8+regionSize*len(regions))
	put32(b, 0, uint32(len(regions)))
	for i, r := range regions {
		off := 8 + regionSize*i
		put64(b, off, r.GuestAddr)
		put64(b, off+8, r.Size)
		put64(b, off+16, r.UserAddr)
		put64(b, off+24, r.MmapOffset)
	}
	return b
}

// vringFilePayload encodes the u64 of SET_VRING_KICK/CALL: the index in
// bits 0-7 and, when no fd is passed, the invalid-FD flag in bit 8.
func vringFilePayload(idx uint32, fd int) []byte {
	v := uint64(idx & vringIdxMask)
	if fd < 0 {
		v |= vringNoFD
	}
	return u64Payload(v)
}

// configPayload encodes the "Device config space" payload: offset u32,
// size u32, flags u32, then size bytes of config.
func configPayload(offset, flags uint32, data []byte) []byte {
	b := make([]byte, configHdrSize+len(data))
	put32(b, 0, offset)
	put32(b, 4, uint32(len(data)))
	put32(b, 8, flags)
	copy(b[configHdrSize:], data)
	return b
}

func parseConfig(req request, p []byte, offset, size uint32) ([]byte, error) {
	if len(p) == 0 {
		// libvhost-user answers a failed GET_CONFIG with an empty payload.
		return nil, fmt.Errorf("%w: empty %v reply: the back-end could not read its config", ErrProtocol, req)
	}
	if len(p) != configHdrSize+int(size) {
		return nil, shortReply(req, len(p), configHdrSize+int(size))
	}
	if o, s := get32(p, 0), get32(p, 4); o != offset || s != size {
		return nil, fmt.Errorf("%w: %v reply is for offset %d size %d, asked offset %d size %d", ErrProtocol, req, o, s, offset, size)
	}
	return p[configHdrSize:], nil
}

func shortReply(req request, got, want int) error {
	return fmt.Errorf("%w: %v reply payload is %d bytes, want %d", ErrProtocol, req, got, want)
}
