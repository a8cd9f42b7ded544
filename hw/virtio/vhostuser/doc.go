// Package vhostuser is the front-end (driver) side of the vhost-user
// protocol over a unix socket, as specified by QEMU's
// docs/interop/vhost-user.rst ("Vhost-user Protocol"), for a userspace
// virtio-blk driver talking to a vhost-user-blk back-end such as
// qemu-storage-daemon. It is the control plane only: messages, feature
// negotiation, config space, the shared memory table, vring setup and the
// kick/call eventfds. The virtqueue itself is another package's job.
// Linux only.
//
// # Messages
//
// Every message is a 12-byte header — request u32, flags u32, size u32 —
// followed by size bytes of payload, all numbers in native byte order
// ("Message Specification"). Requests carry version 1 in the flags (0x1);
// replies come back with the reply bit too (0x5), and a reply with another
// request type, version or no reply bit is a protocol error. Payloads are
// encoded with explicit offsets (message.go), never by casting structs:
// u64, vring state (index u32, num u32), vring address (index, flags,
// desc, used, avail, log), the memory table (nregions u32, padding u32, then
// guest address, size, user address and mmap offset per region, at most
// MaxRegions without CONFIGURE_MEM_SLOTS) and device config (offset, size,
// flags u32, then the bytes). File descriptors (memory regions, kick and
// call eventfds) travel as SCM_RIGHTS in the same sendmsg as the header.
//
// When VHOST_USER_PROTOCOL_F_REPLY_ACK is negotiated ("REPLY_ACK"), every
// message that has no reply of its own is sent with NEED_REPLY (0x8) and
// the back-end answers with a u64: 0 is success, anything else a
// *NackError. Without it such messages are fire-and-forget.
//
// Each exchange is bounded by a socket deadline (DefaultTimeout, see
// SetTimeout): a dead or stuck back-end yields ErrTimeout or ErrClosed,
// wrapped in an *Error naming the message, never a hang. A transport
// failure breaks the connection for good, since a late reply would
// desynchronise it.
//
// # Session
//
// The order qemu-storage-daemon (QEMU 7.2) accepts, run by Negotiate up to
// SET_FEATURES:
//
//	SET_OWNER
//	GET_FEATURES                      VIRTIO_F_VERSION_1 (bit 32) must be acked,
//	                                  or the daemon disconnects
//	GET_PROTOCOL_FEATURES
//	SET_PROTOCOL_FEATURES             CONFIG | REPLY_ACK | MQ
//	GET_QUEUE_NUM                     with MQ
//	GET_CONFIG                        60 bytes of struct virtio_blk_config
//	SET_FEATURES                      with VHOST_USER_F_PROTOCOL_FEATURES (bit 30)
//	SET_MEM_TABLE                     memfd regions (Arena)
//	SET_VRING_NUM/BASE/ADDR/KICK/CALL per ring
//	SET_VRING_ENABLE(idx, 1)          per ring
//
// Once protocol features are negotiated the rings start disabled: without
// SET_VRING_ENABLE the back-end silently ignores the requests of a ring
// ("Ring states"). GET_VRING_BASE stops a ring and returns where to resume.
//
// # Memory
//
// SET_VRING_ADDR takes front-end virtual addresses, descriptors carry
// guest physical ones ("Memory region description"). Arena registers its
// memfd mapping with guest physical address = virtual address, so
// Arena.Addr serves for both. Every ring and I/O buffer must lie in
// registered memory. Transport.Memory registers the session's Arena and,
// after SharePool, a second one the caller owns (NewPool) and registers
// again in every session: a buffer pool whose addresses survive
// reconnects.
//
// # virtio-blk
//
// Negotiate reads ConfigSize bytes of config space, the part of struct
// virtio_blk_config (virtio 1.2 §5.2.4) a QEMU 7.2 back-end serves; package
// hw/virtio decodes it. qemu-storage-daemon exports a read-only device
// (VIRTIO_BLK_F_RO, bit 5) unless started with writable=on, and without
// VIRTIO_F_EVENT_IDX it signals the call eventfd on every completion.
package vhostuser
