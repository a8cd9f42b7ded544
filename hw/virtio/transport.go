package virtio

import "github.com/tarstore/tarstore/hw/internal/dma"

// Transport is how the driver reaches one virtio device: its feature bits,
// its configuration space, the memory it can access, its queues and the
// notifications in both directions (virtio 1.2 §4, "Virtio Transport
// Options"). vhost-user (a unix socket to a back-end process) and modern
// virtio-pci (a PCI function whose BAR this process maps) implement it.
//
// The driver calls the methods in this order, from one goroutine, except
// Notify, Wait and Close (see each):
//
//	DeviceFeatures, ReadConfig     any number of times
//	SetFeatures                    once: the device accepts or refuses
//	Memory                         once: rings, request headers and buffers
//	QueueMax, SetupQueue           per queue, queue 0 first
//	Start                          the device may now use the queues
//	Notify, Wait                   while requests run
//	Close                          once; unblocks Wait
//
// Errors are the transport's own (a closed socket, a device that set
// DEVICE_NEEDS_RESET); the driver wraps them in *hw.Error.
type Transport interface {
	// Name identifies the device for humans: "vhost-user:/run/blk.sock",
	// "pci:0000:00:04.0".
	Name() string

	// DeviceFeatures returns the feature bits the device offers
	// (§2.2), all 64 of them.
	DeviceFeatures() uint64

	// ReadConfig reads n bytes of the device-specific configuration
	// space at off (§2.5; for virtio-blk §5.2.4), little-endian as the
	// device holds it.
	ReadConfig(off, n int) ([]byte, error)

	// SetFeatures acknowledges features, a subset of DeviceFeatures that
	// includes VIRTIO_F_VERSION_1 (§3.1.1 steps 4-6). An error means the
	// device refused them (FEATURES_OK did not stick) or is gone.
	SetFeatures(features uint64) error

	// Memory returns size bytes of zeroed memory the device can read and
	// write, with device addresses (a shared memfd for vhost-user, DMA
	// memory for PCI). It is called once, after SetFeatures; the region
	// lives until Close.
	Memory(size int) (dma.Region, error)

	// QueueMax returns the largest size queue i may have; 0 means the
	// device has no queue i.
	QueueMax(i int) (int, error)

	// SetupQueue tells the device the size and ring addresses (device
	// addresses inside Memory's region) of queue i (§4.1.5.1.3 for PCI;
	// SET_VRING_* for vhost-user).
	SetupQueue(i, size int, desc, avail, used uint64) error

	// Start makes the device live (DRIVER_OK, §3.1.1 step 8; or enabling
	// the vrings): from now on it may process the queues.
	Start() error

	// Notify tells the device that queue i has new available buffers
	// (§2.7.13.4). It may be called from several goroutines at once.
	Notify(i int) error

	// Wait blocks until the device may have used buffers of queue i: it
	// returns nil after a used-buffer notification (§2.7.14), spuriously
	// at times, or — for a transport without interrupts — after a short
	// pause, so the caller polls the used ring after every return. It
	// returns an error once Close was called (the caller knows it closed)
	// and when the device is gone. Only one goroutine waits on a queue.
	Wait(i int) error

	// Close stops the device (reset, or closing the socket), unblocks
	// Wait and releases the memory. It is idempotent.
	Close() error
}

// PoolTransport is a Transport that can give the device memory which
// outlives the transport, so that buffers handed out from it are
// reachable by the device again after a reconnect (vhost-user: a second
// memfd in every SET_MEM_TABLE). A Device over a transport without it
// bounces every request through its slots.
type PoolTransport interface {
	Transport

	// NewPool returns size bytes of zeroed memory that any transport
	// reaching the same device can share with it. The caller owns it:
	// Close of a transport does not release it.
	NewPool(size int) (dma.Memory, error)

	// SharePool makes p, from NewPool of this transport or an earlier
	// one, reachable by the device in this session. It is called at most
	// once, before Memory.
	SharePool(p dma.Memory) error
}
