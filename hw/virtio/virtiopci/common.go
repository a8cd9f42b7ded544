package virtiopci

import "github.com/tarstore/tarstore/hw/internal/mmio"

// The common configuration structure, struct virtio_pci_common_cfg
// (§4.1.4.3): offsets from the start of the structure, all little-endian.
const (
	offDeviceFeatureSelect = 0x00 // le32 rw
	offDeviceFeature       = 0x04 // le32 ro: 32 bits of the window selected
	offDriverFeatureSelect = 0x08 // le32 rw
	offDriverFeature       = 0x0c // le32 rw
	offConfigMSIXVector    = 0x10 // le16 rw
	offNumQueues           = 0x12 // le16 ro
	offDeviceStatus        = 0x14 // u8 rw: writing 0 resets the device
	offConfigGeneration    = 0x15 // u8 ro
	offQueueSelect         = 0x16 // le16 rw: the queue the fields below are about
	offQueueSize           = 0x18 // le16 rw: the maximum until written
	offQueueMSIXVector     = 0x1a // le16 rw
	offQueueEnable         = 0x1c // le16 rw: write 1 only
	offQueueNotifyOff      = 0x1e // le16 ro
	offQueueDesc           = 0x20 // le64 rw: descriptor table
	offQueueDriver         = 0x28 // le64 rw: available ring
	offQueueDevice         = 0x30 // le64 rw: used ring

	// commonLen is the part of the structure this package uses; virtio
	// 1.2 devices have 0x3c bytes (queue_notify_data, queue_reset).
	commonLen = 0x38

	noVector = 0xffff // VIRTIO_MSI_NO_VECTOR: no interrupt, we poll
)

// Device status bits (§2.1).
const (
	statusAcknowledge = 1
	statusDriver      = 2
	statusDriverOK    = 4
	statusFeaturesOK  = 8
	statusNeedsReset  = 0x40
	statusFailed      = 0x80
)

// common accesses the common configuration structure.
type common struct{ r mmio.Registers }

func (c common) status() uint8       { return c.r.Read8(offDeviceStatus) }
func (c common) setStatus(s uint8)   { c.r.Write8(offDeviceStatus, s) }
func (c common) generation() uint8   { return c.r.Read8(offConfigGeneration) }
func (c common) numQueues() int      { return int(c.r.Read16(offNumQueues)) }
func (c common) selectQueue(i int)   { c.r.Write16(offQueueSelect, uint16(i)) }
func (c common) queueSize() int      { return int(c.r.Read16(offQueueSize)) }
func (c common) setQueueSize(n int)  { c.r.Write16(offQueueSize, uint16(n)) }
func (c common) queueNotifyOff() int { return int(c.r.Read16(offQueueNotifyOff)) }
func (c common) enableQueue()        { c.r.Write16(offQueueEnable, 1) }

// deviceFeatures reads the 64 feature bits the device offers, through
// windows 0 (bits 0-31) and 1 (bits 32-63).
func (c common) deviceFeatures() uint64 {
	c.r.Write32(offDeviceFeatureSelect, 0)
	lo := c.r.Read32(offDeviceFeature)
	c.r.Write32(offDeviceFeatureSelect, 1)
	hi := c.r.Read32(offDeviceFeature)
	return uint64(hi)<<32 | uint64(lo)
}

// setDriverFeatures writes the 64 feature bits the driver acknowledges.
func (c common) setDriverFeatures(f uint64) {
	c.r.Write32(offDriverFeatureSelect, 0)
	c.r.Write32(offDriverFeature, uint32(f))
	c.r.Write32(offDriverFeatureSelect, 1)
	c.r.Write32(offDriverFeature, uint32(f>>32))
}

// setQueue programs the selected queue: no MSI-X vector, the three ring
// addresses (§4.1.5.1.3 steps 5 and 6).
func (c common) setQueue(desc, driver, device uint64) {
	c.r.Write16(offQueueMSIXVector, noVector)
	mmio.Write64(c.r, offQueueDesc, desc)
	mmio.Write64(c.r, offQueueDriver, driver)
	mmio.Write64(c.r, offQueueDevice, device)
}
