package virtq

import "fmt"

// Features are the negotiated feature bits that change the ring protocol.
type Features struct {
	EventIdx bool // VIRTIO_F_EVENT_IDX (§2.7.7, §2.7.10)
	Indirect bool // VIRTIO_F_INDIRECT_DESC (§2.7.5.3)
}

// Buffer is one element of a request: Len bytes at device address Addr.
// Write marks a device-writable buffer (VIRTQ_DESC_F_WRITE).
type Buffer struct {
	Addr  uint64
	Len   uint32
	Write bool
}

// Completion is a request returned by the device.
type Completion struct {
	Token any    // the token given to Add
	Head  uint16 // the head descriptor Add returned
	Len   uint32 // bytes the device wrote into the device-writable buffers
}

// Queue is the driver side of a split virtqueue. See the package
// documentation for the protocol and memory-ordering rules.
type Queue struct {
	n               int
	mask            uint16
	desc, avail, us Area
	eventIdx        bool
	indirectOK      bool

	// Free list of descriptors, linked through next (a private copy of the
	// descriptors' next fields).
	next     []uint16
	freeHead uint16
	numFree  int

	// Per head descriptor.
	inflight []bool
	token    []any
	chainLen []uint16 // descriptors of the ring used by the chain
	table    []int32  // indirect table index, or -1
	wcap     []uint64 // total device-writable bytes

	availIdx   uint16 // next avail index to fill (shadow)
	published  uint16 // avail.idx as last stored
	availFlags uint16 // avail.flags shadow
	lastUsed   uint16 // next used index to consume
	usedEvent  uint16 // used_event shadow (EventIdx)
	intrOff    bool   // DisableInterrupts in effect

	ind    *indirectPool
	broken error
}

type indirectPool struct {
	area   Area
	max    int // descriptors per table
	stride int // bytes per table
	free   []int32
}

// New returns a queue of size n over the given areas and zeroes them. The
// device must not be using the queue yet. desc must hold DescTableSize(n)
// bytes at a 16-byte aligned address; avail AvailSize(n) bytes and used
// UsedSize(n) bytes, each at a 4-byte aligned address (see Sizes).
func New(n int, desc, avail, used Area, f Features) (*Queue, error) {
	if err := checkSize(n); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name  string
		a     Area
		size  int
		align uint64
	}{
		{"descriptor table", desc, DescTableSize(n), 16},
		{"available ring", avail, AvailSize(n), 4},
		{"used ring", used, UsedSize(n), 4},
	} {
		if c.a.Mem == nil || c.a.Mem.Len() < c.size {
			l := 0
			if c.a.Mem != nil {
				l = c.a.Mem.Len()
			}
			return nil, fmt.Errorf("%w: %s has %d bytes, need %d", ErrBadArea, c.name, l, c.size)
		}
		if c.a.Addr%c.align != 0 {
			return nil, fmt.Errorf("%w: %s address %#x not %d-byte aligned", ErrBadArea, c.name, c.a.Addr, c.align)
		}
	}
	q := &Queue{
		n: n, mask: uint16(n - 1),
		desc: desc, avail: avail, us: used,
		eventIdx: f.EventIdx, indirectOK: f.Indirect,
		next:     make([]uint16, n),
		numFree:  n,
		inflight: make([]bool, n),
		token:    make([]any, n),
		chainLen: make([]uint16, n),
		table:    make([]int32, n),
		wcap:     make([]uint64, n),
	}
	for i := range q.next {
		q.next[i] = uint16(i + 1) // the last link is never followed
		q.table[i] = -1
	}
	for _, a := range []struct {
		m    Mem
		size int
	}{{desc.Mem, DescTableSize(n)}, {avail.Mem, AvailSize(n)}, {used.Mem, UsedSize(n)}} {
		for off := 0; off < a.size; off += 4 {
			a.m.Write32(off, 0)
		}
	}
	// Publish the zeroed avail flags/idx word with a release store.
	q.avail.Mem.Store32(0, 0)
	return q, nil
}

// UseIndirect gives the queue memory for indirect descriptor tables of
// maxChain descriptors each (§2.7.5.3); the area holds
// area.Mem.Len()/(16·maxChain) tables. It requires Features.Indirect and must
// be called before the first Add. maxChain must be in 2..Size().
func (q *Queue) UseIndirect(area Area, maxChain int) error {
	if !q.indirectOK {
		return ErrNoIndirect
	}
	if maxChain < 2 || maxChain > q.n {
		return fmt.Errorf("%w: indirect table of %d descriptors (queue size %d)", ErrBadArea, maxChain, q.n)
	}
	if area.Addr%16 != 0 {
		return fmt.Errorf("%w: indirect area address %#x not 16-byte aligned", ErrBadArea, area.Addr)
	}
	stride := DescSize * maxChain
	cnt := 0
	if area.Mem != nil {
		cnt = area.Mem.Len() / stride
	}
	if cnt == 0 {
		return fmt.Errorf("%w: indirect area smaller than one %d-byte table", ErrBadArea, stride)
	}
	if q.numFree != q.n || q.ind != nil {
		return fmt.Errorf("%w: UseIndirect after Add or twice", ErrBadArea)
	}
	p := &indirectPool{area: area, max: maxChain, stride: stride, free: make([]int32, cnt)}
	for i := range p.free {
		p.free[i] = int32(cnt - 1 - i)
	}
	q.ind = p
	return nil
}

// Size returns the queue size N.
func (q *Queue) Size() int { return q.n }

// NumFree returns the number of free descriptors in the descriptor table.
func (q *Queue) NumFree() int { return q.numFree }

// InFlight returns the number of requests added and not yet completed.
func (q *Queue) InFlight() int {
	c := 0
	for _, b := range q.inflight {
		if b {
			c++
		}
	}
	return c
}

// DescAddr, AvailAddr and UsedAddr return the device addresses of the three
// areas, for the transport to program.
func (q *Queue) DescAddr() uint64 { return q.desc.Addr }

// AvailAddr returns the device address of the available ring.
func (q *Queue) AvailAddr() uint64 { return q.avail.Addr }

// UsedAddr returns the device address of the used ring.
func (q *Queue) UsedAddr() uint64 { return q.us.Addr }

// Broken returns the error that broke the queue, or nil.
func (q *Queue) Broken() error { return q.broken }

func writeDesc(m Mem, i int, b Buffer, flags, next uint16) {
	off := DescSize * i
	m.Write32(off, uint32(b.Addr))
	m.Write32(off+4, uint32(b.Addr>>32))
	m.Write32(off+8, b.Len)
	m.Write32(off+12, uint32(flags)|uint32(next)<<16)
}

// Add places a request made of bufs (device-readable buffers first, then
// device-writable ones, §2.7.4) in the descriptor table and the available
// ring (§2.7.13.1, §2.7.13.2). The device does not see it until Kick. It
// returns the chain's head descriptor; token comes back in the Completion.
//
// With indirect tables (UseIndirect) a chain of 2..maxChain buffers takes one
// descriptor; otherwise it takes len(bufs). ErrFull means not enough are
// free; a chain that could never fit fails with ErrBadChain.
func (q *Queue) Add(bufs []Buffer, token any) (head uint16, err error) {
	if q.broken != nil {
		return 0, q.broken
	}
	if len(bufs) == 0 {
		return 0, fmt.Errorf("%w: no buffers", ErrBadChain)
	}
	var total, wcap uint64
	for i, b := range bufs {
		if i > 0 && bufs[i-1].Write && !b.Write {
			return 0, fmt.Errorf("%w: device-readable buffer %d after a device-writable one", ErrBadChain, i)
		}
		total += uint64(b.Len)
		if b.Write {
			wcap += uint64(b.Len)
		}
	}
	if total > 1<<32 {
		return 0, fmt.Errorf("%w: %d bytes in total (max 2^32)", ErrBadChain, total)
	}
	useInd := q.ind != nil && len(bufs) > 1 && len(bufs) <= q.ind.max
	if len(bufs) > q.n && !useInd {
		return 0, fmt.Errorf("%w: %d buffers, queue size %d", ErrBadChain, len(bufs), q.n)
	}
	if useInd && len(q.ind.free) == 0 {
		useInd = false // no table free: fall back to direct descriptors
	}
	need := len(bufs)
	if useInd {
		need = 1
	}
	if need > q.numFree {
		return 0, ErrFull
	}

	head = q.freeHead
	tab := int32(-1)
	if useInd {
		p := q.ind
		tab = p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		tm, err := Sub(p.area.Mem, int(tab)*p.stride, p.stride)
		if err != nil {
			panic(err) // cannot happen: checked in UseIndirect
		}
		for i, b := range bufs {
			writeDesc(tm, i, b, chainFlags(b, i < len(bufs)-1), uint16(i+1))
		}
		tb := Buffer{Addr: p.area.Addr + uint64(int(tab)*p.stride), Len: uint32(DescSize * len(bufs))}
		writeDesc(q.desc.Mem, int(head), tb, DescFIndirect, 0)
		q.freeHead = q.next[head]
	} else {
		d := head
		for i, b := range bufs {
			writeDesc(q.desc.Mem, int(d), b, chainFlags(b, i < len(bufs)-1), q.next[d])
			d = q.next[d]
		}
		q.freeHead = d
	}
	q.numFree -= need
	q.inflight[head] = true
	q.token[head] = token
	q.chainLen[head] = uint16(need)
	q.table[head] = tab
	q.wcap[head] = wcap

	write16(q.avail.Mem, availRingOff(int(q.availIdx&q.mask)), head)
	q.availIdx++
	return head, nil
}

// NeedEvent is vring_need_event from §2.7.10 (and §2.7.7): whether moving an
// index from old to new crosses event, i.e. event is in [old, new) modulo
// 2^16.
func NeedEvent(event, newIdx, oldIdx uint16) bool {
	return newIdx-event-1 < newIdx-oldIdx
}

// Kick publishes the requests added since the last Kick by storing avail.idx
// (§2.7.13.3) and reports whether the device must be notified (§2.7.13.4):
// with EVENT_IDX, whether the new index passed avail_event
// (vring_need_event, §2.7.10); otherwise whether VIRTQ_USED_F_NO_NOTIFY is
// clear. It returns false when nothing was added since the last Kick. The
// caller notifies the device through its transport.
func (q *Queue) Kick() bool {
	oldIdx, newIdx := q.published, q.availIdx
	if oldIdx == newIdx {
		return false
	}
	q.storeAvailWord(newIdx)
	// Store32 above is sequentially consistent: the loads below cannot be
	// satisfied before it is visible.
	if q.eventIdx {
		return NeedEvent(load16(q.us.Mem, availEventOff(q.n)), newIdx, oldIdx)
	}
	return q.us.Mem.Load32(0)&UsedFNoNotify == 0
}

func (q *Queue) storeAvailWord(idx uint16) {
	q.avail.Mem.Store32(0, uint32(q.availFlags)|uint32(idx)<<16)
	q.published = idx
}

func (q *Queue) usedWord() (flags, idx uint16) {
	w := q.us.Mem.Load32(0)
	return uint16(w), uint16(w >> 16)
}

func (q *Queue) setUsedEvent(v uint16) {
	q.usedEvent = v
	store16(q.avail.Mem, usedEventOff(q.n), v)
}

// Pending reports whether the device has returned requests that Next has
// not consumed yet.
func (q *Queue) Pending() bool {
	_, idx := q.usedWord()
	return idx != q.lastUsed
}

// Next returns the next used request (§2.7.14) and frees its descriptors.
// Requests come back in the device's order, which need not be the order of
// Add. ok is false when there is none. A used entry that violates the
// specification yields a *DeviceError (errors.Is(err, ErrCorrupt)) and
// breaks the queue.
//
// With EVENT_IDX and interrupts enabled, when Next finds the ring empty it
// advances used_event to the consumed index (so the device notifies for the
// next entry) and re-checks, so a caller that waits for an interrupt after
// ok == false cannot miss one.
func (q *Queue) Next() (c Completion, ok bool, err error) {
	if q.broken != nil {
		return c, false, q.broken
	}
	_, idx := q.usedWord()
	if idx == q.lastUsed {
		if !q.eventIdx || q.intrOff || q.usedEvent == q.lastUsed {
			return c, false, nil
		}
		q.setUsedEvent(q.lastUsed)
		if _, idx = q.usedWord(); idx == q.lastUsed {
			return c, false, nil
		}
	}
	if ahead := idx - q.lastUsed; int(ahead) > q.n {
		return c, false, q.fail(&DeviceError{UsedIdx: idx, Reason: fmt.Sprintf("used.idx %d ahead of consumed index %d by more than queue size %d", idx, q.lastUsed, q.n)})
	}
	off := usedRingOff(int(q.lastUsed & q.mask))
	id, ln := q.us.Mem.Read32(off), q.us.Mem.Read32(off+4)
	de := &DeviceError{UsedIdx: q.lastUsed, ID: id, Len: ln}
	switch {
	case id >= uint32(q.n):
		de.Reason = "id out of range"
	case !q.inflight[id]:
		de.Reason = "id is not the head of a chain in flight"
	case uint64(ln) > q.wcap[id]:
		de.Reason = fmt.Sprintf("len exceeds the chain's %d device-writable bytes", q.wcap[id])
	}
	if de.Reason != "" {
		return c, false, q.fail(de)
	}
	q.lastUsed++
	h := uint16(id)
	c = Completion{Token: q.token[h], Head: h, Len: ln}
	q.free(h)
	return c, true, nil
}

func (q *Queue) fail(err error) error {
	q.broken = err
	return err
}

func (q *Queue) free(h uint16) {
	if t := q.table[h]; t >= 0 {
		q.ind.free = append(q.ind.free, t)
		q.table[h] = -1
	}
	k := int(q.chainLen[h])
	last := h
	for i := 1; i < k; i++ {
		last = q.next[last]
	}
	q.next[last] = q.freeHead
	q.freeHead = h
	q.numFree += k
	q.inflight[h] = false
	q.token[h] = nil
}

// Poll appends every used request available now to dst (see Next). On error
// it returns the completions gathered so far and the error.
func (q *Queue) Poll(dst []Completion) ([]Completion, error) {
	for {
		c, ok, err := q.Next()
		if err != nil || !ok {
			return dst, err
		}
		dst = append(dst, c)
	}
}

// DisableInterrupts asks the device not to send used-buffer notifications
// (§2.7.7): it sets VIRTQ_AVAIL_F_NO_INTERRUPT, or with EVENT_IDX moves
// used_event half the index space away from the consumed index. It is only a
// hint; the device may still notify.
func (q *Queue) DisableInterrupts() {
	if q.intrOff {
		return
	}
	q.intrOff = true
	if q.eventIdx {
		// The device's used.idx is at most N ≤ 0x8000 ahead of lastUsed,
		// so it cannot reach lastUsed+0x8000+1 while the driver is not
		// consuming.
		q.setUsedEvent(q.lastUsed + 0x8000)
		return
	}
	q.availFlags |= AvailFNoInterrupt
	q.storeAvailWord(q.published)
}

// EnableInterrupts asks the device to notify when it uses a buffer (§2.7.7):
// it clears VIRTQ_AVAIL_F_NO_INTERRUPT, or with EVENT_IDX sets used_event to
// the consumed index. It then re-reads used.idx and returns true if requests
// are already pending: the device may have used them before it saw the
// change and not notified, so the caller must call Next instead of waiting.
func (q *Queue) EnableInterrupts() (pending bool) {
	q.intrOff = false
	if q.eventIdx {
		q.setUsedEvent(q.lastUsed)
	} else if q.availFlags&AvailFNoInterrupt != 0 {
		q.availFlags &^= AvailFNoInterrupt
		q.storeAvailWord(q.published)
	}
	// The stores above are sequentially consistent, so this load is
	// ordered after them.
	return q.Pending()
}

// chainFlags are the descriptor flags of buffer b in a chain: WRITE when
// the device writes it, NEXT when more follow.
func chainFlags(b Buffer, more bool) uint16 {
	var fl uint16
	if b.Write {
		fl |= DescFWrite
	}
	if more {
		fl |= DescFNext
	}
	return fl
}
