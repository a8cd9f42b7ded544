package blockio

import (
	"cmp"
	"container/heap"
	"iter"
	"slices"
	"sort"
	"sync"
	"time"

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

	// Scratch kept from one Issue to the next, so that a batch reused for
	// transaction after transaction allocates little: the request packer
	// (its issue method bound once), the order of the writes for resolve,
	// bounce memory carved request by request (arena[used:]), the buffer
	// lists of the requests of the Issue running, and the one-buffer list
	// of a read-modify-write Read.
	reqs  requests
	order []int
	arena []byte
	used  int
	spent [][]byte // device buffers of this Issue's requests besides the arena: given back once they complete
	bufs  [][]byte
	one   [1][]byte
}

// MaxInFlight is the number of device writes an Issue keeps in flight at
// once. The sectors of its requests are disjoint, so they may complete in
// any order; a device with several queues (or merely a long write latency)
// finishes a transaction's scattered writes in the time of the slowest
// rather than the sum.
const MaxInFlight = 16

// inflight runs device requests concurrently, at most MaxInFlight at a
// time, and keeps the first error. The last request started is held and
// run by wait on the caller's goroutine: a batch of one request (the common
// append) costs no goroutine and no hand-off.
//
// A device that completes a request in less time than handing it to
// another goroutine takes (memory, a page cache) gains nothing from
// concurrency: once a request run on the caller's goroutine completed
// within quickRequest, the following ones run there too, one after the
// other, until one takes longer. The requests of a Batch reused for
// transaction after transaction (kvtar's) thus go straight to a fast
// device, and keep going out concurrently to a slow one.
type inflight struct {
	sem     chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
	once    sync.Once
	held    ioRequest
	holding bool
	quick   bool // the last request run on the caller's goroutine was quick
}

// quickRequest is the completion time under which a device request is run
// on the caller's goroutine rather than handed to another: about what the
// hand-off itself costs.
const quickRequest = 5 * time.Microsecond

// An ioRequest is one device Read or Write.
type ioRequest struct {
	dev   hw.Block
	write bool
	lba   uint64
	bufs  [][]byte
}

func (r ioRequest) do() error {
	if r.write {
		return r.dev.Write(r.lba, r.bufs...)
	}
	return r.dev.Read(r.lba, r.bufs...)
}

func (f *inflight) start(r ioRequest) {
	if f.holding {
		if f.quick {
			f.run(f.held)
		} else {
			f.spawn(f.held)
		}
	}
	f.held, f.holding = r, true
}

// run runs r on the caller's goroutine and notes whether it was quick.
func (f *inflight) run(r ioRequest) {
	t := time.Now()
	err := r.do()
	f.quick = time.Since(t) < quickRequest
	f.keep(err)
}

// spawn runs r on a goroutine.
func (f *inflight) spawn(r ioRequest) {
	f.once.Do(func() { f.sem = make(chan struct{}, MaxInFlight) })
	f.sem <- struct{}{}
	f.wg.Add(1)
	go func() {
		defer func() { <-f.sem; f.wg.Done() }()
		f.keep(r.do())
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
	if f.holding {
		r := f.held
		f.held, f.holding = ioRequest{}, false
		f.run(r)
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
	b := &Batch{dev: dev, info: info, g: newGeometry(info), resolved: true}
	b.reqs = requests{maxBytes: b.g.maxBytes, issue: b.writeRequest}
	return b
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
	// Every request completed: its bounce memory and buffer list are
	// free again, and device buffers go back to the device — unless one
	// failed: a request that timed out may complete later, so none of
	// its memory is reused or given back (the garbage collector, or the
	// device's pool as lost room, takes it).
	if err == nil {
		for _, p := range b.spent {
			hw.ReleaseBuffer(b.dev, p)
		}
	} else {
		b.arena = nil
	}
	clear(b.spent)
	b.spent = b.spent[:0]
	b.used = 0
	clear(b.bufs)
	b.bufs = b.bufs[:0]
	return err
}

// Release gives the batch's bounce memory back to the device (a device
// with buffers of its own: hw.Releaser). Call it once the batch is no
// longer used; a batch used again afterwards takes new memory.
func (b *Batch) Release() {
	if b.arena != nil {
		hw.ReleaseBuffer(b.dev, b.arena)
	}
	b.arena, b.used = nil, 0
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
	g, r := b.g, &b.reqs
	r.segs, r.n = r.segs[:0], 0
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
	arena := b.bounce(int(bounce))
	if len(segs) > cap(b.bufs)-len(b.bufs) {
		b.bufs = make([][]byte, 0, max(len(segs), 2*cap(b.bufs), 8))
	}
	bufs := b.bufs[len(b.bufs) : len(b.bufs)+len(segs) : len(b.bufs)+len(segs)]
	b.bufs = b.bufs[:len(b.bufs)+len(segs)]
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
	b.inflight.start(ioRequest{dev: b.dev, write: true, lba: lba, bufs: bufs})
	return nil
}

// arenaSize is the most bounce memory a batch keeps for reuse; a request
// needing more gets its own.
const arenaSize = 64 << 10

// bounce returns n bytes of bounce memory for one request, owned by the
// request until Issue's writes complete: carved from the batch's arena.
// An arena too small for n is replaced by one twice as large (up to
// arenaSize), or n bytes for the first: a batch used once takes what it
// needs, one reused grows to what its Issues need.
func (b *Batch) bounce(n int) []byte {
	if n == 0 {
		return nil
	}
	if n > arenaSize {
		p := hw.AllocBuffer(b.dev, n)
		b.spent = append(b.spent, p)
		return p
	}
	if n > len(b.arena)-b.used {
		// The requests issued keep the memory they were given; it goes
		// back to the device once they complete (Issue).
		if b.arena != nil {
			b.spent = append(b.spent, b.arena)
		}
		b.arena, b.used = hw.AllocBuffer(b.dev, max(n, min(2*len(b.arena), int(b.g.down(arenaSize))))), 0
	}
	p := b.arena[b.used : b.used+n : b.used+n]
	b.used += n
	return p
}

// assemble fills buf, whole sectors at byte offset off, with their new
// contents: it reads those of them that the pieces do not cover entirely
// (consecutive ones in one Read), then copies the pieces over them.
func (b *Batch) assemble(off int64, buf []byte) error {
	end := off + int64(len(buf))
	first := sort.Search(len(b.pieces), func(i int) bool { return b.pieces[i].end() > off })
	r := rmwReads{b: b, off: off, buf: buf}
	at := off
	for _, p := range b.pieces[first:] {
		if p.off >= end {
			break
		}
		if p.off > at {
			if err := r.gap(at, p.off); err != nil {
				return err
			}
		}
		at = min(p.end(), end)
	}
	if at < end {
		if err := r.gap(at, end); err != nil {
			return err
		}
	}
	if err := r.read(); err != nil {
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

// rmwReads reads the sectors of a bounce buffer (buf, at byte offset off)
// that the pieces do not cover entirely, merging consecutive ones into one
// Read.
type rmwReads struct {
	b        *Batch
	off      int64
	buf      []byte
	from, to int64 // sectors still to read, as a byte range; empty when equal
}

// read reads the sectors pending, if any.
func (r *rmwReads) read() error {
	if r.from == r.to {
		return nil
	}
	one := &r.b.one // a one-buffer list without an allocation per Read
	one[0] = r.buf[r.from-r.off : r.to-r.off]
	err := r.b.dev.Read(r.b.g.lba(r.from), one[:]...)
	one[0] = nil
	r.from, r.to = 0, 0
	return err
}

// gap notes that the bytes [lo, hi) are not written: their sectors are to
// be read.
func (r *rmwReads) gap(lo, hi int64) error {
	lo, hi = r.b.g.down(lo), r.b.g.up(hi)
	if r.from != r.to && lo <= r.to {
		r.to = max(r.to, hi)
		return nil
	}
	if err := r.read(); err != nil {
		return err
	}
	r.from, r.to = lo, hi
	return nil
}

// resolve computes the pieces from the writes, once per change.
func (b *Batch) resolve() []piece {
	if !b.resolved {
		b.pieces, b.order = resolve(b.pieces[:0], b.writes, b.order)
		b.resolved = true
	}
	return b.pieces
}

// resolve appends to dst the pieces of ws (non-empty writes, later ones
// winning), sorted by offset. Disjoint writes are their own pieces;
// otherwise a sweep over the writes' boundaries keeps, between each two
// boundaries, the latest write that covers them: O(n log n). order is
// scratch memory, returned for reuse.
func resolve(dst []piece, ws []write, order []int) ([]piece, []int) {
	if len(ws) == 1 {
		return append(dst, piece{off: ws[0].off, p: ws[0].p}), order
	}
	order = order[:0]
	for i := range ws {
		order = append(order, i)
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
		return dst, order
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
	return dst, order
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
