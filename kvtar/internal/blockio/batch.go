package blockio

import (
	"cmp"
	"container/heap"
	"iter"
	"slices"
	"sort"
	"sync"

	"github.com/tarstore/tarstore/hw"
)

// Extent is a byte range of the device.
type Extent struct{ Off, Len int64 }

// End is the offset just past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// SectorRange is a run of consecutive device sectors.
type SectorRange struct{ LBA, Sectors uint64 }

// A Batch collects the byte-range writes of one step of a transaction and
// issues them as few, large, sector-aligned device writes, each sector
// written once (see the package documentation for the steps and the crash
// behaviour). Write records, Issue writes; Extents, Sectors and All
// describe what Issue will write. The zero Batch is not usable: make one
// with NewBatch.
type Batch struct {
	dev  hw.Block
	info hw.Info
	g    geometry

	writes   []write // valid, non-empty writes in the order they were made
	err      error   // the first invalid write, reported by Issue
	pieces   []piece // writes resolved: disjoint, sorted; valid when resolved
	resolved bool

	inflight inflight // the writes issued and not yet complete
}

// MaxInFlight is the number of device writes an Issue keeps in flight at
// once. The sectors of its requests are disjoint, so they may complete in
// any order; a device with several queues (or merely a long write latency)
// finishes a transaction's scattered writes in the time of the slowest
// rather than the sum.
const MaxInFlight = 16

// inflight runs device writes concurrently, at most MaxInFlight at a
// time, and keeps the first error. The last write started is held and run
// by wait on the caller's goroutine: a batch of one request (the common
// append) costs no goroutine.
type inflight struct {
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	once sync.Once
	held func() error
}

func (f *inflight) start(write func() error) {
	if f.held != nil {
		f.spawn(f.held)
	}
	f.held = write
}

// spawn runs write on a goroutine.
func (f *inflight) spawn(write func() error) {
	f.once.Do(func() { f.sem = make(chan struct{}, MaxInFlight) })
	f.sem <- struct{}{}
	f.wg.Add(1)
	go func() {
		defer func() { <-f.sem; f.wg.Done() }()
		f.keep(write())
	}()
}

// keep records err when it is the first.
func (f *inflight) keep(err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

// wait runs the held write, waits for every write started and returns the
// first error.
func (f *inflight) wait() error {
	if w := f.held; w != nil {
		f.held = nil
		f.keep(w())
	}
	f.wg.Wait()
	err := f.err
	f.err = nil
	return err
}

// write is one recorded Write; its index in Batch.writes is its rank.
type write struct {
	off int64
	p   []byte
}

func (w write) end() int64 { return w.off + int64(len(w.p)) }

// piece is a part of a write that no later write overwrites: p is a
// sub-slice of the caller's buffer of writes[src].
type piece struct {
	off int64
	p   []byte
	src int
}

func (p piece) end() int64 { return p.off + int64(len(p.p)) }

// NewBatch returns an empty batch for dev. It takes dev's geometry once:
// Info does not change while a device is open.
func NewBatch(dev hw.Block) *Batch {
	info := dev.Info()
	return &Batch{dev: dev, info: info, g: newGeometry(info), resolved: true}
}

// Write records the write of p at byte offset off: any offset, any length.
// Where writes of a batch overlap, the later one wins.
//
// The batch keeps a reference to p, not a copy: p must not change until
// Issue or Reset returns. A zero-length write is ignored. A write that does
// not lie within the device is not recorded; it makes Err, and so Issue,
// fail with an *hw.Error of Kind hw.ErrOutOfRange (Err ErrNegativeOffset
// for off < 0). Once Err is set later writes are ignored too.
func (b *Batch) Write(off int64, p []byte) {
	if b.err != nil {
		return
	}
	if err := checkRange(b.info, "write", off, int64(len(p))); err != nil {
		b.err = err
		return
	}
	if len(p) == 0 {
		return
	}
	b.writes = append(b.writes, write{off: off, p: p})
	b.resolved = false
}

// Err returns the error of the first invalid Write since the batch was
// last emptied, or nil. When it is not nil Issue writes nothing.
func (b *Batch) Err() error { return b.err }

// Reset empties the batch without writing anything and drops its
// references to the caller's buffers.
func (b *Batch) Reset() {
	clear(b.writes)
	clear(b.pieces)
	b.writes, b.pieces = b.writes[:0], b.pieces[:0]
	b.err = nil
	b.resolved = true
}

// Extents returns the byte ranges the batch writes: sorted, disjoint, and
// coalesced (no two of them touch). For a batch with no writes it is nil.
func (b *Batch) Extents() []Extent {
	var out []Extent
	for _, p := range b.resolve() {
		if n := len(out); n > 0 && out[n-1].End() == p.off {
			out[n-1].Len += int64(len(p.p))
			continue
		}
		out = append(out, Extent{Off: p.off, Len: int64(len(p.p))})
	}
	return out
}

// Sectors returns the device sectors the batch writes, as sorted runs of
// consecutive sectors with gaps between them: the sectors Issue writes, each
// once, and no others. For a batch with no writes it is nil.
func (b *Batch) Sectors() []SectorRange {
	var out []SectorRange
	for _, p := range b.resolve() {
		first, end := b.g.lba(p.off), b.g.lba(b.g.up(p.end()))
		if n := len(out); n > 0 && out[n-1].LBA+out[n-1].Sectors >= first {
			out[n-1].Sectors = max(out[n-1].Sectors, end-out[n-1].LBA)
			continue
		}
		out = append(out, SectorRange{LBA: first, Sectors: end - first})
	}
	return out
}

// SectorCount returns the number of sectors the batch writes. When it is 1,
// Issue is a single one-sector Write, which the hw contract makes atomic.
func (b *Batch) SectorCount() uint64 {
	var n uint64
	for _, r := range b.Sectors() {
		n += r.Sectors
	}
	return n
}

// All yields what the batch writes, as (offset, bytes) pairs in offset
// order that do not overlap, with the later write's bytes wherever writes
// overlapped: the contents of Extents, for a journal record. The bytes are
// sub-slices of the caller's buffers and must not be modified. The batch
// must not change while All runs.
func (b *Batch) All() iter.Seq2[int64, []byte] {
	return func(yield func(int64, []byte) bool) {
		for _, p := range b.resolve() {
			if !yield(p.off, p.p) {
				return
			}
		}
	}
}

// Issue writes the batch to the device and empties it, whether it fails or
// not; it does not Flush. It writes every sector of Sectors once, whole,
// with vectored Writes of at most MaxIO bytes: straight from the caller's
// buffers where one covers a whole sector, else from a bounce buffer,
// filled first with the sector's current contents from the device when the
// batch covers it only in part (RMW). The read of a request's sectors
// comes right before its write.
//
// When Err is not nil Issue returns it and does no I/O; on a read-only
// device it fails with Kind hw.ErrReadOnly and does no I/O. A device error
// is returned as it is: the requests issued before it may have been
// written, and every sector then holds its old or its new contents.
func (b *Batch) Issue() error {
	defer b.Reset()
	if b.err != nil {
		return b.err
	}
	err := b.issue()
	if werr := b.inflight.wait(); err == nil {
		err = werr
	}
	return err
}

// issue assembles the requests and starts their writes.
func (b *Batch) issue() error {
	pieces := b.resolve()
	if len(pieces) == 0 {
		return nil
	}
	if b.info.ReadOnly {
		r := b.Sectors()[0]
		return &hw.Error{Op: "write", Device: b.info.Model, LBA: r.LBA, Sectors: r.Sectors, Kind: hw.ErrReadOnly}
	}
	g := b.g
	r := requests{maxBytes: g.maxBytes, issue: b.writeRequest}
	for i := 0; i < len(pieces); {
		// The run of consecutive sectors that starts with pieces[i]:
		// pieces join it while their first sector is at most one past
		// its last.
		runEnd, j := g.up(pieces[i].end()), i+1
		for j < len(pieces) && g.down(pieces[j].off) <= runEnd {
			runEnd = g.up(pieces[j].end())
			j++
		}
		// Sectors inside one piece go straight from its buffer; the
		// others, between them, are bounced.
		at := g.down(pieces[i].off)
		for _, p := range pieces[i:j] {
			lo, hi := g.up(p.off), g.down(p.end())
			if lo >= hi {
				continue
			}
			if at < lo {
				if err := r.add(seg{off: at, n: lo - at}); err != nil {
					return err
				}
			}
			if err := r.add(seg{off: lo, n: hi - lo, data: p.p[lo-p.off : hi-p.off]}); err != nil {
				return err
			}
			at = hi
		}
		if at < runEnd {
			if err := r.add(seg{off: at, n: runEnd - at}); err != nil {
				return err
			}
		}
		if err := r.flush(); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// writeRequest assembles the bounce segments of one request and starts
// its write. The request owns its bounce memory and buffer list until the
// write completes.
func (b *Batch) writeRequest(segs []seg) error {
	var bounce int64
	for _, s := range segs {
		if s.data == nil {
			bounce += s.n
		}
	}
	var arena []byte
	if bounce > 0 {
		arena = hw.AllocBuffer(b.dev, int(bounce))
	}
	bufs := make([][]byte, len(segs))
	for i := range segs {
		if segs[i].data == nil {
			segs[i].data, arena = arena[:segs[i].n], arena[segs[i].n:]
			if err := b.assemble(segs[i].off, segs[i].data); err != nil {
				return err
			}
		}
		bufs[i] = segs[i].data
	}
	lba := b.g.lba(segs[0].off)
	b.inflight.start(func() error { return b.dev.Write(lba, bufs...) })
	return nil
}

// assemble fills buf, whole sectors at byte offset off, with their new
// contents: it reads those of them that the pieces do not cover entirely
// (consecutive ones in one Read), then copies the pieces over them.
func (b *Batch) assemble(off int64, buf []byte) error {
	g, end := b.g, off+int64(len(buf))
	first := sort.Search(len(b.pieces), func(i int) bool { return b.pieces[i].end() > off })
	var from, to int64 // sectors still to read, as a byte range; empty when equal
	read := func() error {
		if from == to {
			return nil
		}
		err := b.dev.Read(g.lba(from), buf[from-off:to-off])
		from, to = 0, 0
		return err
	}
	gap := func(lo, hi int64) error {
		lo, hi = g.down(lo), g.up(hi)
		if from != to && lo <= to {
			to = max(to, hi)
			return nil
		}
		if err := read(); err != nil {
			return err
		}
		from, to = lo, hi
		return nil
	}
	at := off
	for _, p := range b.pieces[first:] {
		if p.off >= end {
			break
		}
		if p.off > at {
			if err := gap(at, p.off); err != nil {
				return err
			}
		}
		at = min(p.end(), end)
	}
	if at < end {
		if err := gap(at, end); err != nil {
			return err
		}
	}
	if err := read(); err != nil {
		return err
	}
	for _, p := range b.pieces[first:] {
		if p.off >= end {
			break
		}
		lo, hi := max(p.off, off), min(p.end(), end)
		copy(buf[lo-off:hi-off], p.p[lo-p.off:hi-p.off])
	}
	return nil
}

// resolve computes the pieces from the writes, once per change.
func (b *Batch) resolve() []piece {
	if !b.resolved {
		b.pieces = resolve(b.pieces[:0], b.writes)
		b.resolved = true
	}
	return b.pieces
}

// resolve appends to dst the pieces of ws (non-empty writes, later ones
// winning), sorted by offset. Disjoint writes are their own pieces;
// otherwise a sweep over the writes' boundaries keeps, between each two
// boundaries, the latest write that covers them: O(n log n).
func resolve(dst []piece, ws []write) []piece {
	order := make([]int, len(ws))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		return cmp.Or(cmp.Compare(ws[i].off, ws[j].off), cmp.Compare(i, j))
	})
	disjoint := true
	for k := 1; k < len(order) && disjoint; k++ {
		disjoint = ws[order[k-1]].end() <= ws[order[k]].off
	}
	if disjoint {
		for _, i := range order {
			dst = append(dst, piece{off: ws[i].off, p: ws[i].p, src: i})
		}
		return dst
	}
	points := make([]int64, 0, 2*len(ws))
	for _, w := range ws {
		points = append(points, w.off, w.end())
	}
	slices.Sort(points)
	points = slices.Compact(points)
	var live latest // the writes covering the current point, plus some that ended
	next := 0
	for k := 0; k+1 < len(points); k++ {
		x, y := points[k], points[k+1]
		for next < len(order) && ws[order[next]].off == x {
			heap.Push(&live, order[next])
			next++
		}
		for live.Len() > 0 && ws[live[0]].end() <= x {
			heap.Pop(&live)
		}
		if live.Len() == 0 {
			continue
		}
		// The latest write covering x covers [x, y): it ends at a
		// boundary after x, and no write starts in between.
		i := live[0]
		w := ws[i]
		if n := len(dst); n > 0 && dst[n-1].src == i && dst[n-1].end() == x {
			dst[n-1].p = w.p[dst[n-1].off-w.off : y-w.off]
			continue
		}
		dst = append(dst, piece{off: x, p: w.p[x-w.off : y-w.off], src: i})
	}
	return dst
}

// latest is a max-heap of write indices: the top is the latest write.
type latest []int

func (h latest) Len() int           { return len(h) }
func (h latest) Less(i, j int) bool { return h[i] > h[j] }
func (h latest) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *latest) Push(x any)        { *h = append(*h, x.(int)) }
func (h *latest) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
