package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
	"github.com/tarstore/tarstore/hw/virtio/virtq"
)

// fakeDevice is an in-process virtio-blk device behind a Transport: it
// runs the device side of the split virtqueue (virtio 1.2 §2.7) on its own
// goroutine over the driver's memory, with EVENT_IDX and indirect
// descriptors when negotiated, and serves requests from a byte slice.
type fakeDevice struct {
	t       testing.TB
	offered uint64
	cfg     []byte
	qmax    int
	reorder bool                                  // hold each completion back until the next one
	polled  bool                                  // report a transport without interrupts (Polled)
	status  func(typ uint32, sector uint64) uint8 // nil: OK
	stall   func(typ uint32, sector uint64) bool  // true: never complete
	disk    []byte

	mu                sync.Mutex
	features          uint64
	mem               dma.Region
	words             dma.Words
	qsize             int
	desc, avail, used uint64
	closed            bool
	kick              chan struct{}
	call              chan struct{}
	gone              chan struct{} // closed to simulate a vanished device
	done              chan struct{}
	requests          int
}

const fakeBase = 0x4000_0000

func newFake(t testing.TB, blockSize int, blocks int, offered uint64) *fakeDevice {
	cfg := make([]byte, BlkConfigSize)
	le := binary.LittleEndian
	le.PutUint64(cfg[0:], uint64(blocks*blockSize/512))
	le.PutUint32(cfg[8:], 64<<10) // size_max
	le.PutUint32(cfg[12:], 8)     // seg_max
	le.PutUint32(cfg[20:], uint32(blockSize))
	le.PutUint32(cfg[36:], 1<<16) // max_discard_sectors
	le.PutUint32(cfg[40:], 1)
	le.PutUint32(cfg[48:], 64) // max_write_zeroes_sectors: small, to split
	le.PutUint32(cfg[52:], 1)
	return &fakeDevice{
		t: t, offered: offered, cfg: cfg, qmax: 128,
		disk: make([]byte, blocks*blockSize),
		kick: make(chan struct{}, 1), call: make(chan struct{}, 1),
		gone: make(chan struct{}), done: make(chan struct{}),
	}
}

const fakeAll = FeatureVersion1 | FeatureBlkSizeMax | FeatureBlkSegMax | FeatureBlkBlkSize |
	FeatureBlkFlush | FeatureBlkDiscard | FeatureBlkWriteZeroes | FeatureIndirectDesc | FeatureEventIdx

func (f *fakeDevice) Name() string           { return "fake" }
func (f *fakeDevice) DeviceFeatures() uint64 { return f.offered }

func (f *fakeDevice) ReadConfig(off, n int) ([]byte, error) {
	if off+n > len(f.cfg) {
		return nil, fmt.Errorf("config range [%d,+%d)", off, n)
	}
	return append([]byte(nil), f.cfg[off:off+n]...), nil
}

func (f *fakeDevice) SetFeatures(features uint64) error {
	if features&^f.offered != 0 {
		return fmt.Errorf("features %#x not offered", features&^f.offered)
	}
	f.features = features
	return nil
}

func (f *fakeDevice) Memory(size int) (dma.Region, error) {
	b, err := unix.Mmap(-1, 0, (size+4095)&^4095, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return dma.Region{}, err
	}
	f.mem = dma.NewRegion(b, fakeBase)
	f.words, err = f.mem.Words()
	return f.mem, err
}

func (f *fakeDevice) QueueMax(i int) (int, error) {
	if i != 0 {
		return 0, nil
	}
	return f.qmax, nil
}

func (f *fakeDevice) SetupQueue(i, size int, desc, avail, used uint64) error {
	f.qsize, f.desc, f.avail, f.used = size, desc, avail, used
	return nil
}

func (f *fakeDevice) Start() error {
	go f.run()
	return nil
}

func (f *fakeDevice) Notify(i int) error {
	select {
	case f.kick <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeDevice) Wait(i int) error {
	select {
	case <-f.call:
		return nil
	case <-f.gone:
		return errors.New("fake device gone")
	case <-f.done:
		return errors.New("fake transport closed")
	}
}

func (f *fakeDevice) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		// The device goroutine stops; the mapping stays (it may still be
		// reading it), as a test process is short-lived.
		f.closed = true
		close(f.done)
	}
	return nil
}

// off converts a device address to an offset in the driver's memory.
func (f *fakeDevice) off(addr uint64, n int) int {
	o := int(addr - fakeBase)
	if addr < fakeBase || o+n > f.mem.Len() {
		f.t.Errorf("fake device: address %#x+%d outside the shared memory", addr, n)
		return -1
	}
	return o
}

type fdesc struct {
	addr  uint64
	n     uint32
	flags uint16
	next  uint16
}

func (f *fakeDevice) readDesc(table uint64, i int) fdesc {
	o := f.off(table+uint64(16*i), 16)
	w := f.words
	return fdesc{
		addr:  uint64(w.Read32(o)) | uint64(w.Read32(o+4))<<32,
		n:     w.Read32(o + 8),
		flags: uint16(w.Read32(o + 12)),
		next:  uint16(w.Read32(o+12) >> 16),
	}
}

// chain returns the buffers of the chain at head, following an indirect
// table when there is one.
func (f *fakeDevice) chain(head uint16) []fdesc {
	d := f.readDesc(f.desc, int(head))
	if d.flags&virtq.DescFIndirect != 0 {
		if f.features&FeatureIndirectDesc == 0 {
			f.t.Error("fake device: indirect descriptor without the feature")
		}
		var out []fdesc
		for i := 0; ; {
			e := f.readDesc(d.addr, i)
			out = append(out, e)
			if e.flags&virtq.DescFNext == 0 {
				return out
			}
			i = int(e.next)
		}
	}
	out := []fdesc{d}
	for d.flags&virtq.DescFNext != 0 {
		d = f.readDesc(f.desc, int(d.next))
		out = append(out, d)
	}
	return out
}

func load16(w dma.Words, off int) uint16 { return uint16(w.Load32(off&^3) >> (8 * (off & 2))) }

// run is the device: it consumes the available ring and fills the used
// ring, notifying the driver after each batch.
func (f *fakeDevice) run() {
	n := f.qsize
	availOff, usedOff := f.off(f.avail, 4), f.off(f.used, 4)
	var lastAvail, usedIdx uint16
	eventIdx := f.features&FeatureEventIdx != 0
	type done struct {
		head uint16
		len  uint32
	}
	var held []done // reorder: a completion held back
	publish := func(batch []done) {
		for _, c := range batch {
			o := usedOff + 4 + 8*(int(usedIdx)%n)
			f.words.Write32(o, uint32(c.head))
			f.words.Write32(o+4, c.len)
			usedIdx++
			f.words.Store32(usedOff, uint32(usedIdx)<<16)
		}
		if len(batch) > 0 {
			select {
			case f.call <- struct{}{}:
			default:
			}
		}
	}
	for {
		if eventIdx { // avail_event: tell the driver to kick for the next entry
			f.words.Store32(usedOff+4+8*n, uint32(lastAvail))
		}
		idx := load16(f.words, availOff+2)
		if idx == lastAvail {
			var timeout <-chan time.Time
			if len(held) > 0 {
				timeout = time.After(time.Millisecond)
			}
			select {
			case <-f.kick:
			case <-timeout:
				publish(held)
				held = nil
			case <-f.gone:
				return
			case <-f.done:
				return
			}
			continue
		}
		var batch []done
		for ; lastAvail != idx; lastAvail++ {
			slot := int(lastAvail) % n
			head := load16(f.words, availOff+4+2*slot)
			bufs := f.chain(head)
			l, ok := f.serve(bufs)
			if ok {
				batch = append(batch, done{head, l})
			}
		}
		if f.reorder && len(batch) > 0 {
			// Completions leave in a different order than they came:
			// the held one goes after this batch's, and this batch's
			// last is held back.
			batch, held = append(batch[:len(batch)-1:len(batch)-1], held...), batch[len(batch)-1:]
		}
		publish(batch)
	}
}

// serve executes one request: header, data, status.
//
// It holds mu, so that the test's reads of the disk (diskAt, snapshot) are
// ordered after it for the race detector, which cannot see the ordering
// that the atomics on the shared ring give: that memory is not Go memory.
func (f *fakeDevice) serve(bufs []fdesc) (written uint32, complete bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if len(bufs) < 2 || bufs[0].n != headerSize || bufs[len(bufs)-1].n != 1 || bufs[len(bufs)-1].flags&virtq.DescFWrite == 0 {
		f.t.Errorf("fake device: malformed request %+v", bufs)
		return 0, true
	}
	le := binary.LittleEndian
	h := f.mem.B[f.off(bufs[0].addr, headerSize):]
	typ, sector := le.Uint32(h), le.Uint64(h[8:])
	data := bufs[1 : len(bufs)-1]
	if f.features&FeatureBlkSegMax != 0 && len(data) > int(le.Uint32(f.cfg[12:])) {
		f.t.Errorf("fake device: %d data descriptors, seg_max %d", len(data), le.Uint32(f.cfg[12:]))
	}
	for _, d := range data {
		if f.features&FeatureBlkSizeMax != 0 && d.n > le.Uint32(f.cfg[8:]) {
			f.t.Errorf("fake device: %d-byte descriptor, size_max %d", d.n, le.Uint32(f.cfg[8:]))
		}
	}
	status := uint8(statusOK)
	if f.stall != nil && f.stall(typ, sector) {
		return 0, false
	}
	if f.status != nil {
		status = f.status(typ, sector)
	}
	if status == statusOK {
		pos := int(sector) * 512
		switch typ {
		case typeIn, typeOut:
			for _, d := range data {
				if pos+int(d.n) > len(f.disk) {
					status = statusIOErr
					break
				}
				b := f.mem.B[f.off(d.addr, int(d.n)):][:d.n]
				if typ == typeIn {
					copy(b, f.disk[pos:])
					written += d.n
				} else {
					copy(f.disk[pos:], b)
				}
				pos += int(d.n)
			}
		case typeFlush:
		case typeGetID:
			b := f.mem.B[f.off(data[0].addr, int(data[0].n)):][:data[0].n]
			copy(b, "fake-serial\x00")
			written = data[0].n
		case typeDiscard, typeWriteZeroes:
			s := f.mem.B[f.off(data[0].addr, segmentSize):]
			at, cnt := int(le.Uint64(s))*512, int(le.Uint32(s[8:]))*512
			if at+cnt > len(f.disk) {
				status = statusIOErr
				break
			}
			clear(f.disk[at : at+cnt])
		default:
			status = statusUnsupp
		}
	}
	st := bufs[len(bufs)-1]
	f.mem.B[f.off(st.addr, 1)] = status
	return written + 1, true
}

// count returns how many requests the device has seen.
func (f *fakeDevice) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// isClosed reports whether the driver closed the transport.
func (f *fakeDevice) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// diskAt returns a copy of n bytes of the disk at off.
func (f *fakeDevice) diskAt(off, n int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.disk[off:off+n]...)
}

// snapshot returns a copy of the whole disk.
func (f *fakeDevice) snapshot() []byte { return f.diskAt(0, len(f.disk)) }

// Polled makes the driver reap completions from the requesting goroutine
// too, as it does for virtio-pci, when f.polled is set.
func (f *fakeDevice) Polled() bool { return f.polled }
