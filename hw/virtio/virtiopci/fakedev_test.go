package virtiopci

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// The fake device's BAR, laid out as QEMU lays out BAR 4 of a modern
// virtio-pci device.
const (
	barN      = 4
	barSize   = 0x4000
	atCommon  = 0x0000
	atISR     = 0x1000
	atDevice  = 0x2000
	deviceLen = 0x40
	atNotify  = 0x3000
	notifyLen = 0x1000
)

// fakeCaps locates the fake device's structures, with notify multiplier
// mult.
func fakeCaps(mult uint32) Caps {
	return Caps{
		Common:           Structure{BAR: barN, Offset: atCommon, Length: 0x3c},
		Notify:           Structure{BAR: barN, Offset: atNotify, Length: notifyLen},
		ISR:              Structure{BAR: barN, Offset: atISR, Length: 1},
		Device:           Structure{BAR: barN, Offset: atDevice, Length: deviceLen},
		NotifyMultiplier: mult,
	}
}

type fakeQueue struct {
	max, size, vector, notifyOff int
	enabled                      bool
	desc, driver, device         uint64
}

type notifyWrite struct{ off, queue int }

// fakeDevice models the common configuration of a modern virtio-pci device
// (§4.1.4.3) on an mmio.Fake, and checks that the driver accesses each
// register with its width and keeps to the order of §3.1.1.
type fakeDevice struct {
	t    *testing.T
	regs *mmio.Fake

	mu             sync.Mutex
	features       uint64
	featureSel     uint32
	driverSel      uint32
	driverFeatures uint64
	status         uint8
	statusReads    int
	resetReads     int  // reads of device_status a reset takes; -1: forever
	resetLeft      int  // of the reset in progress
	refuse         bool // FEATURES_OK does not stick
	needsResetAt   uint8
	generation     uint8
	bumps          int // device configuration reads that change the generation
	genReads       int
	queueSel       int
	queues         []fakeQueue
	notifies       []notifyWrite
}

// newFakeDevice returns a device offering features with queues of the
// given maximum sizes, and its BAR.
func newFakeDevice(t *testing.T, features uint64, maxSizes ...int) *fakeDevice {
	d := &fakeDevice{t: t, regs: mmio.NewFake(barSize), features: features}
	for i, m := range maxSizes {
		d.queues = append(d.queues, fakeQueue{max: m, size: m, vector: 0, notifyOff: i})
	}
	d.regs.OnRead = d.read
	d.regs.OnWrite = d.write
	return d
}

func (d *fakeDevice) bars() []mmio.Registers {
	bars := make([]mmio.Registers, 6)
	bars[barN] = d.regs
	return bars
}

// commonWidth is the width of each common configuration field; the 64-bit
// ones are accessed as 32-bit halves.
var commonWidth = map[int]int{
	offDeviceFeatureSelect: 4, offDeviceFeature: 4, offDriverFeatureSelect: 4, offDriverFeature: 4,
	offConfigMSIXVector: 2, offNumQueues: 2, offDeviceStatus: 1, offConfigGeneration: 1,
	offQueueSelect: 2, offQueueSize: 2, offQueueMSIXVector: 2, offQueueEnable: 2, offQueueNotifyOff: 2,
	offQueueDesc: 4, offQueueDesc + 4: 4, offQueueDriver: 4, offQueueDriver + 4: 4, offQueueDevice: 4, offQueueDevice + 4: 4,
}

func (d *fakeDevice) checkWidth(off, width int) bool {
	if w, ok := commonWidth[off]; !ok || w != width {
		d.t.Errorf("%d-bit access at common configuration offset %#x", 8*width, off)
		return false
	}
	return true
}

func (d *fakeDevice) queue() *fakeQueue {
	if d.queueSel < len(d.queues) {
		return &d.queues[d.queueSel]
	}
	return nil
}

func (d *fakeDevice) read(off, width int, v uint32) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case off >= atDevice && off < atDevice+deviceLen:
		if d.bumps > 0 {
			d.bumps--
			d.generation++
		}
		return v
	case off < atCommon || off >= atCommon+0x3c || !d.checkWidth(off-atCommon, width):
		return v
	}
	q := d.queue()
	switch off - atCommon {
	case offDeviceFeature:
		if d.featureSel < 2 {
			return uint32(d.features >> (32 * d.featureSel))
		}
		return 0
	case offNumQueues:
		return uint32(len(d.queues))
	case offDeviceStatus:
		d.statusReads++
		if d.resetLeft > 0 {
			d.resetLeft--
			if d.resetLeft == 0 {
				d.status = 0
			}
		}
		return uint32(d.status)
	case offConfigGeneration:
		d.genReads++
		return uint32(d.generation)
	case offQueueSize:
		if q != nil {
			return uint32(q.size)
		}
		return 0
	case offQueueNotifyOff:
		if q != nil {
			return uint32(q.notifyOff)
		}
		return 0
	}
	return v
}

func (d *fakeDevice) write(off, width int, v uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case off >= atNotify && off < atNotify+notifyLen:
		if width != 2 {
			d.t.Errorf("%d-bit notify", 8*width)
		}
		d.notifies = append(d.notifies, notifyWrite{off - atNotify, int(v)})
		return
	case off < atCommon || off >= atCommon+0x3c:
		d.t.Errorf("write of %#x outside the common configuration at %#x", v, off)
		return
	case !d.checkWidth(off-atCommon, width):
		return
	}
	if d.resetLeft != 0 && off-atCommon != offDeviceStatus {
		d.t.Errorf("write at %#x during a reset", off)
	}
	q := d.queue()
	switch reg := off - atCommon; reg {
	case offDeviceFeatureSelect:
		d.featureSel = v
	case offDriverFeatureSelect:
		d.driverSel = v
	case offDriverFeature:
		if d.status&statusFeaturesOK != 0 || d.driverSel > 1 {
			d.t.Errorf("driver_feature written with status %#x, select %d", d.status, d.driverSel)
		}
		shift := 32 * (d.driverSel & 1)
		d.driverFeatures = d.driverFeatures&^(0xffffffff<<shift) | uint64(v)<<shift
	case offDeviceStatus:
		d.writeStatus(uint8(v))
	case offQueueSelect:
		d.queueSel = int(v)
	case offQueueSize, offQueueMSIXVector, offQueueEnable, offQueueDesc, offQueueDesc + 4, offQueueDriver, offQueueDriver + 4, offQueueDevice, offQueueDevice + 4:
		if q == nil || q.enabled || d.status&statusFeaturesOK == 0 || d.status&statusDriverOK != 0 {
			d.t.Errorf("queue %d register %#x written with status %#x", d.queueSel, reg, d.status)
			return
		}
		switch reg {
		case offQueueSize:
			q.size = int(v)
		case offQueueMSIXVector:
			q.vector = int(v)
		case offQueueEnable:
			if v != 1 {
				d.t.Errorf("queue_enable written %d", v)
			}
			q.enabled = true
		default:
			field := map[int]*uint64{offQueueDesc: &q.desc, offQueueDriver: &q.driver, offQueueDevice: &q.device}[reg&^7]
			shift := 8 * (reg & 4)
			*field = *field&^(0xffffffff<<shift) | uint64(v)<<shift
		}
	default:
		d.t.Errorf("write of read-only common configuration field %#x", reg)
	}
}

func (d *fakeDevice) writeStatus(s uint8) {
	if s == 0 {
		d.resetLeft = d.resetReads
		if d.resetReads == 0 {
			d.status = 0
		}
		d.driverFeatures, d.featureSel, d.driverSel, d.queueSel = 0, 0, 0, 0
		for i := range d.queues {
			q := &d.queues[i]
			*q = fakeQueue{max: q.max, size: q.max, notifyOff: q.notifyOff}
		}
		return
	}
	if d.resetLeft != 0 {
		d.t.Errorf("status %#x written during a reset", s)
	}
	if d.status&^statusNeedsReset&^s != 0 {
		d.t.Errorf("status %#x clears bits of %#x", s, d.status)
	}
	if s&statusFeaturesOK != 0 && d.status&statusFeaturesOK == 0 &&
		(d.refuse || d.driverFeatures&^d.features != 0) {
		s &^= statusFeaturesOK
	}
	d.status = s | d.status&statusNeedsReset
	if d.needsResetAt != 0 && s&d.needsResetAt != 0 {
		d.status |= statusNeedsReset
	}
}

func (d *fakeDevice) set(f func(d *fakeDevice)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// snapshot is what a test checks of the device's state.
type snapshot struct {
	status         uint8
	driverFeatures uint64
	statusReads    int
	genReads       int
	queues         []fakeQueue
	notifies       []notifyWrite
}

func (d *fakeDevice) get() snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return snapshot{
		status:         d.status,
		driverFeatures: d.driverFeatures,
		statusReads:    d.statusReads,
		genReads:       d.genReads,
		queues:         append([]fakeQueue(nil), d.queues...),
		notifies:       append([]notifyWrite(nil), d.notifies...),
	}
}

// fakeMemory is a MemorySource of Go memory at device address 0x100000
// that counts releases.
type fakeMemory struct {
	mu       sync.Mutex
	released int
}

func (m *fakeMemory) source(size int) (dma.Region, func() error, error) {
	return dma.NewRegion(make([]byte, size), 0x100000), func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.released++
		return nil
	}, nil
}

func (m *fakeMemory) releases() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.released
}

const version1 = 1 << 32

// newTestTransport returns a transport over d, whose memory is mem.
func newTestTransport(t *testing.T, d *fakeDevice, mem *fakeMemory, mult uint32) *Transport {
	t.Helper()
	tr, err := New(d.bars(), fakeCaps(mult), Options{Name: "fake", Memory: mem.source})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func (q fakeQueue) String() string {
	return fmt.Sprintf("{size %d/%d vector %#x enabled %v rings %#x %#x %#x}", q.size, q.max, q.vector, q.enabled, q.desc, q.driver, q.device)
}
