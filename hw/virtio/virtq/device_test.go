package virtq

import (
	"fmt"
	"testing"
)

// guest is the memory both sides share: one AtomicMem that the device sees at
// addresses base..base+size. Everything the device touches (rings, indirect
// tables, data buffers) is found through addresses, as a real device would.
type guest struct {
	m    *AtomicMem
	base uint64
	top  int // bump allocator
}

const guestBase = 0x1_2340_0000 // above 4 GiB, to exercise the high address word

func newGuest(size int) *guest { return &guest{m: NewAtomicMem(size), base: guestBase} }

func (g *guest) alloc(t testing.TB, size, alignment int) Area {
	t.Helper()
	off := align(g.top, alignment)
	if off+size > g.m.Len() {
		t.Fatalf("guest memory exhausted")
	}
	g.top = off + size
	s, err := Sub(g.m, off, size)
	if err != nil {
		t.Fatal(err)
	}
	return Area{Mem: s, Addr: g.base + uint64(off)}
}

// off translates a device address range to an offset in g.m.
func (g *guest) off(addr uint64, n uint32) (int, error) {
	if addr < g.base || addr-g.base+uint64(n) > uint64(g.m.Len()) {
		return 0, fmt.Errorf("address %#x+%d outside guest memory", addr, n)
	}
	return int(addr - g.base), nil
}

func (g *guest) mustOff(addr uint64) int {
	o, err := g.off(addr, 0)
	if err != nil {
		panic(err)
	}
	return o
}

// Device-side field access, written independently of the driver's helpers.
func (g *guest) get16(off int) uint16 {
	w := g.m.Load32(off &^ 3)
	if off&2 != 0 {
		return uint16(w >> 16)
	}
	return uint16(w)
}

type seg struct {
	Addr  uint64
	Len   uint32
	Write bool
}

type devReq struct {
	Head     uint16
	Segs     []seg
	Indirect bool
}

// device is a fake virtio device operating on the rings through guest memory
// only. It implements the device side of §2.7 including notification
// suppression.
type device struct {
	g                 *guest
	n                 int
	desc, avail, used int // offsets in g.m
	eventIdx          bool

	lastAvail uint16 // next avail index to take
	usedIdx   uint16 // used.idx as published
	usedFlags uint16
	signalled uint16 // used.idx at the last interrupt decision
}

func newDevice(g *guest, n int, descAddr, availAddr, usedAddr uint64, eventIdx bool) *device {
	return &device{g: g, n: n, desc: g.mustOff(descAddr), avail: g.mustOff(availAddr), used: g.mustOff(usedAddr), eventIdx: eventIdx}
}

func (d *device) availIdx() uint16   { return uint16(d.g.m.Load32(d.avail) >> 16) }
func (d *device) availFlags() uint16 { return uint16(d.g.m.Load32(d.avail)) }
func (d *device) usedEvent() uint16  { return d.g.get16(d.avail + 4 + 2*d.n) }

// pop takes the next available chain, if any.
func (d *device) pop() (devReq, bool, error) {
	if d.availIdx() == d.lastAvail {
		return devReq{}, false, nil
	}
	head := d.g.get16(d.avail + 4 + 2*int(d.lastAvail%uint16(d.n)))
	d.lastAvail++
	r, err := d.walk(head)
	return r, err == nil, err
}

func (d *device) walk(head uint16) (devReq, error) {
	r := devReq{Head: head}
	if int(head) >= d.n {
		return r, fmt.Errorf("head %d out of range", head)
	}
	table, tableN, i := d.desc, d.n, int(head)
	seenWrite := false
	for count := 0; ; count++ {
		if count > d.n+tableN {
			return r, fmt.Errorf("descriptor loop")
		}
		o := table + 16*i
		addr := uint64(d.g.m.Read32(o)) | uint64(d.g.m.Read32(o+4))<<32
		ln := d.g.m.Read32(o + 8)
		w := d.g.m.Read32(o + 12)
		flags, next := uint16(w), uint16(w>>16)
		if flags&DescFIndirect != 0 {
			if r.Indirect || flags&DescFNext != 0 || ln%16 != 0 || ln == 0 || table != d.desc {
				return r, fmt.Errorf("bad indirect descriptor flags %#x len %d", flags, ln)
			}
			to, err := d.g.off(addr, ln)
			if err != nil {
				return r, err
			}
			table, tableN, i, r.Indirect = to, int(ln/16), 0, true
			continue
		}
		if _, err := d.g.off(addr, ln); err != nil {
			return r, err
		}
		wr := flags&DescFWrite != 0
		if seenWrite && !wr {
			return r, fmt.Errorf("readable descriptor after writable one")
		}
		seenWrite = seenWrite || wr
		r.Segs = append(r.Segs, seg{addr, ln, wr})
		if flags&DescFNext == 0 {
			return r, nil
		}
		i = int(next)
		if i >= tableN {
			return r, fmt.Errorf("next %d out of range", i)
		}
	}
}

// fill writes v into every word of the request's writable buffers and
// returns the number of bytes written.
func (d *device) fill(r devReq, v uint32) uint32 {
	var n uint32
	for _, s := range r.Segs {
		if !s.Write {
			continue
		}
		o := d.g.mustOff(s.Addr)
		for k := 0; k+4 <= int(s.Len); k += 4 {
			d.g.m.Write32(o+k, v)
		}
		n += s.Len
	}
	return n
}

// postRaw writes a used entry and publishes used.idx.
func (d *device) postRaw(id, ln uint32) {
	o := d.used + 4 + 8*int(d.usedIdx%uint16(d.n))
	d.g.m.Write32(o, id)
	d.g.m.Write32(o+4, ln)
	d.usedIdx++
	d.publishUsed()
}

func (d *device) publishUsed() {
	d.g.m.Store32(d.used, uint32(d.usedFlags)|uint32(d.usedIdx)<<16)
}

// complete posts a used entry and reports whether the driver must be
// interrupted (§2.7.7 device side, like vhost's vhost_notify).
func (d *device) complete(head uint16, ln uint32) bool {
	d.postRaw(uint32(head), ln)
	return d.shouldInterrupt()
}

func (d *device) shouldInterrupt() bool {
	// publishUsed's Store32 is sequentially consistent: the loads below are
	// ordered after it.
	oldIdx, newIdx := d.signalled, d.usedIdx
	d.signalled = newIdx
	if d.eventIdx {
		return NeedEvent(d.usedEvent(), newIdx, oldIdx)
	}
	return d.availFlags()&AvailFNoInterrupt == 0
}

func (d *device) setNoNotify(on bool) {
	if on {
		d.usedFlags |= UsedFNoNotify
	} else {
		d.usedFlags &^= UsedFNoNotify
	}
	d.publishUsed()
}

func (d *device) setAvailEvent(v uint16) { d.g.m.Store32(d.used+4+8*d.n, uint32(v)) }

// suppress asks the driver not to kick (while the device is busy polling).
func (d *device) suppress() {
	if !d.eventIdx {
		d.setNoNotify(true)
	}
	// With EVENT_IDX, simply leaving avail_event behind suppresses kicks.
}

// arm asks for a kick on the next available entry and re-checks, returning
// true if entries arrived meanwhile (the device must then not sleep).
func (d *device) arm() bool {
	if d.eventIdx {
		d.setAvailEvent(d.lastAvail)
	} else {
		d.setNoNotify(false)
	}
	return d.availIdx() != d.lastAvail
}
