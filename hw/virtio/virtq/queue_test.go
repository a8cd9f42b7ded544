package virtq

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
)

type env struct {
	g *guest
	q *Queue
	d *device
}

func newEnv(t testing.TB, n int, f Features) *env {
	t.Helper()
	g := newGuest(1 << 20)
	l, err := Sizes(n)
	if err != nil {
		t.Fatal(err)
	}
	a := g.alloc(t, l.Size, 16)
	desc, avail, used, err := l.Areas(a.Mem, a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	q, err := New(n, desc, avail, used, f)
	if err != nil {
		t.Fatal(err)
	}
	return &env{g: g, q: q, d: newDevice(g, n, q.DescAddr(), q.AvailAddr(), q.UsedAddr(), f.EventIdx)}
}

func (e *env) buf(t testing.TB, size uint32, write bool) Buffer {
	a := e.g.alloc(t, int(size), 16)
	return Buffer{Addr: a.Addr, Len: size, Write: write}
}

func (e *env) mustAdd(t testing.TB, bufs []Buffer, tok any) uint16 {
	t.Helper()
	h, err := e.q.Add(bufs, tok)
	if err != nil {
		t.Fatalf("Add(%d bufs): %v", len(bufs), err)
	}
	return h
}

func (e *env) mustPop(t testing.TB) devReq {
	t.Helper()
	r, ok, err := e.d.pop()
	if err != nil || !ok {
		t.Fatalf("device pop: ok=%v err=%v", ok, err)
	}
	return r
}

func (e *env) mustNext(t testing.TB) Completion {
	t.Helper()
	c, ok, err := e.q.Next()
	if err != nil || !ok {
		t.Fatalf("Next: ok=%v err=%v", ok, err)
	}
	return c
}

func TestSizes(t *testing.T) {
	for _, c := range []struct{ n, avail, used, usedOff, size int }{
		{1, 8, 16, 24, 48},
		{2, 12, 24, 44, 80},
		{256, 520, 2056, 4616, 6672},
		{32768, 65544, 262152, 589832, 851984},
	} {
		l, err := Sizes(c.n)
		if err != nil {
			t.Fatal(err)
		}
		if l.DescOff != 0 || l.DescLen != 16*c.n || l.AvailOff != 16*c.n || l.AvailLen != c.avail ||
			l.UsedLen != c.used || l.UsedOff != c.usedOff || l.Size != c.size {
			t.Errorf("Sizes(%d) = %+v", c.n, l)
		}
		// Spec sizes fit, with at most 2 bytes of padding; alignments hold.
		if l.AvailLen-(6+2*c.n) > 2 || l.UsedLen-(6+8*c.n) > 2 || l.AvailOff%4 != 0 || l.UsedOff%4 != 0 {
			t.Errorf("Sizes(%d): bad padding/alignment %+v", c.n, l)
		}
	}
	for _, n := range []int{0, -1, 3, 6, 65536, 1 << 20} {
		if _, err := Sizes(n); !errors.Is(err, ErrBadSize) {
			t.Errorf("Sizes(%d) err = %v", n, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	l, _ := Sizes(8)
	m := NewAtomicMem(l.Size)
	desc, avail, used, err := l.Areas(m, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(6, desc, avail, used, Features{}); !errors.Is(err, ErrBadSize) {
		t.Errorf("size 6: %v", err)
	}
	if _, err := New(16, desc, avail, used, Features{}); !errors.Is(err, ErrBadArea) {
		t.Errorf("areas too small: %v", err)
	}
	bad := desc
	bad.Addr += 4
	if _, err := New(8, bad, avail, used, Features{}); !errors.Is(err, ErrBadArea) {
		t.Errorf("misaligned desc: %v", err)
	}
	bad = used
	bad.Addr += 2
	if _, err := New(8, desc, avail, bad, Features{}); !errors.Is(err, ErrBadArea) {
		t.Errorf("misaligned used: %v", err)
	}
	if _, err := New(8, desc, Area{}, used, Features{}); !errors.Is(err, ErrBadArea) {
		t.Errorf("nil mem: %v", err)
	}
	if _, _, _, err := l.Areas(NewAtomicMem(l.Size-16), 0x1000); !errors.Is(err, ErrBadArea) {
		t.Errorf("Areas small: %v", err)
	}
	if _, _, _, err := l.Areas(m, 0x1008); !errors.Is(err, ErrBadArea) {
		t.Errorf("Areas misaligned: %v", err)
	}
	if _, err := Sub(m, 2, 4); !errors.Is(err, ErrBadArea) {
		t.Errorf("Sub misaligned: %v", err)
	}
	if _, err := Sub(m, 0, l.Size+4); !errors.Is(err, ErrBadArea) {
		t.Errorf("Sub too long: %v", err)
	}
	q, err := New(8, desc, avail, used, Features{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.UseIndirect(Area{Mem: NewAtomicMem(256)}, 4); !errors.Is(err, ErrNoIndirect) {
		t.Errorf("UseIndirect without feature: %v", err)
	}
}

func TestOneRequest(t *testing.T) {
	e := newEnv(t, 8, Features{})
	hdr := e.buf(t, 16, false)
	e.g.m.Write32(e.g.mustOff(hdr.Addr), 0xfeedbeef)
	data := e.buf(t, 512, true)
	head := e.mustAdd(t, []Buffer{hdr, data}, "req")
	if e.q.NumFree() != 6 || e.q.InFlight() != 1 {
		t.Fatalf("NumFree %d InFlight %d", e.q.NumFree(), e.q.InFlight())
	}
	if _, ok, _ := e.d.pop(); ok {
		t.Fatal("device saw the request before Kick")
	}
	if !e.q.Kick() {
		t.Fatal("Kick = false, want notification")
	}
	if e.q.Kick() {
		t.Fatal("second Kick with nothing new = true")
	}
	r := e.mustPop(t)
	want := []seg{{hdr.Addr, 16, false}, {data.Addr, 512, true}}
	if r.Head != head || r.Indirect || fmt.Sprint(r.Segs) != fmt.Sprint(want) {
		t.Fatalf("device got %+v, want head %d segs %v", r, head, want)
	}
	if got := e.g.m.Read32(e.g.mustOff(r.Segs[0].Addr)); got != 0xfeedbeef {
		t.Fatalf("header word %#x", got)
	}
	if c, ok, err := e.q.Next(); ok || err != nil {
		t.Fatalf("Next before completion: %v %v %v", c, ok, err)
	}
	n := e.d.fill(r, 0x5a5a5a5a)
	e.d.complete(r.Head, n)
	c := e.mustNext(t)
	if c.Token != "req" || c.Len != 512 || c.Head != head {
		t.Fatalf("completion %+v", c)
	}
	if got := e.g.m.Read32(e.g.mustOff(data.Addr) + 508); got != 0x5a5a5a5a {
		t.Fatalf("data word %#x", got)
	}
	if e.q.NumFree() != 8 || e.q.InFlight() != 0 || e.q.Pending() {
		t.Fatalf("after completion NumFree %d InFlight %d", e.q.NumFree(), e.q.InFlight())
	}
}

func TestFullThenFreed(t *testing.T) {
	e := newEnv(t, 4, Features{})
	b := e.buf(t, 64, true)
	for i := 0; i < 4; i++ {
		e.mustAdd(t, []Buffer{b}, i)
	}
	if _, err := e.q.Add([]Buffer{b}, 4); !errors.Is(err, ErrFull) {
		t.Fatalf("Add on full queue: %v", err)
	}
	e.q.Kick()
	r := e.mustPop(t)
	e.d.complete(r.Head, 0)
	if c := e.mustNext(t); c.Token != 0 {
		t.Fatalf("token %v", c.Token)
	}
	// One descriptor free: a 2-buffer chain does not fit, a single does.
	if _, err := e.q.Add([]Buffer{b, b}, "x"); !errors.Is(err, ErrFull) {
		t.Fatalf("2-chain with 1 free: %v", err)
	}
	e.mustAdd(t, []Buffer{b}, 4)
	if e.q.NumFree() != 0 {
		t.Fatalf("NumFree %d", e.q.NumFree())
	}
}

func TestBadChains(t *testing.T) {
	e := newEnv(t, 4, Features{})
	r, w := e.buf(t, 16, false), e.buf(t, 16, true)
	for name, bufs := range map[string][]Buffer{
		"empty":          nil,
		"read after w":   {r, w, r},
		"longer than N":  {r, r, r, r, w},
		"more than 4GiB": {{Addr: r.Addr, Len: 1 << 31}, {Addr: r.Addr, Len: 1 << 31}, {Addr: r.Addr, Len: 1, Write: true}},
	} {
		if _, err := e.q.Add(bufs, nil); !errors.Is(err, ErrBadChain) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if e.q.NumFree() != 4 {
		t.Fatalf("failed Adds leaked descriptors: NumFree %d", e.q.NumFree())
	}
	// Exactly 2^32 bytes is allowed.
	e.mustAdd(t, []Buffer{{Addr: r.Addr, Len: 1 << 31}, {Addr: r.Addr, Len: 1 << 31}}, nil)
}

func TestChain(t *testing.T) {
	e := newEnv(t, 8, Features{})
	var bufs []Buffer
	for i := 0; i < 6; i++ {
		bufs = append(bufs, e.buf(t, uint32(16*(i+1)), i >= 3))
	}
	e.mustAdd(t, bufs, "chain")
	e.q.Kick()
	r := e.mustPop(t)
	if len(r.Segs) != 6 || r.Indirect {
		t.Fatalf("segs %v", r.Segs)
	}
	for i, s := range r.Segs {
		if s != (seg{bufs[i].Addr, bufs[i].Len, bufs[i].Write}) {
			t.Errorf("seg %d = %+v, want %+v", i, s, bufs[i])
		}
	}
	e.d.complete(r.Head, e.d.fill(r, 1))
	if c := e.mustNext(t); c.Len != 64+80+96 {
		t.Fatalf("len %d", c.Len)
	}
	if e.q.NumFree() != 8 {
		t.Fatalf("NumFree %d", e.q.NumFree())
	}
}

func TestOutOfOrder(t *testing.T) {
	const n = 8
	e := newEnv(t, n, Features{})
	rng := rand.New(rand.NewSource(1))
	bufs := make([]Buffer, n)
	for i := range bufs {
		bufs[i] = e.buf(t, 16, true)
	}
	for round := 0; round < 50; round++ {
		added := 0
		for added < n {
			k := 1 + rng.Intn(3)
			if k > e.q.NumFree() {
				k = e.q.NumFree()
			}
			tok := [2]int{round, added}
			if _, err := e.q.Add(bufs[:k], tok); err != nil {
				t.Fatal(err)
			}
			added += k
		}
		e.q.Kick()
		var reqs []devReq
		heads := map[uint16]bool{}
		for {
			r, ok, err := e.d.pop()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if heads[r.Head] {
				t.Fatalf("head %d given twice", r.Head)
			}
			heads[r.Head] = true
			reqs = append(reqs, r)
		}
		rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
		for _, r := range reqs {
			e.d.complete(r.Head, uint32(16*len(r.Segs)))
		}
		cs, err := e.q.Poll(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != len(reqs) {
			t.Fatalf("got %d completions, want %d", len(cs), len(reqs))
		}
		for i, c := range cs {
			if c.Head != reqs[i].Head || c.Len != uint32(16*len(reqs[i].Segs)) || c.Token.([2]int)[0] != round {
				t.Fatalf("completion %d = %+v, want head %d", i, c, reqs[i].Head)
			}
		}
		if e.q.NumFree() != n || e.q.InFlight() != 0 {
			t.Fatalf("round %d: NumFree %d", round, e.q.NumFree())
		}
	}
}

// TestWrapAround runs more than 65536 requests through a small queue so the
// 16-bit avail and used indices wrap, with several requests in flight.
func TestWrapAround(t *testing.T) {
	for _, f := range []Features{{}, {EventIdx: true}} {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			const n, total = 4, 70000
			e := newEnv(t, n, f)
			b := []Buffer{e.buf(t, 8, false), e.buf(t, 8, true)}
			var pending []devReq
			next, done := 0, 0
			for done < total {
				for next < total {
					if _, err := e.q.Add(b, next); errors.Is(err, ErrFull) {
						break
					} else if err != nil {
						t.Fatal(err)
					}
					next++
				}
				e.q.Kick()
				for {
					r, ok, err := e.d.pop()
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					pending = append(pending, r)
				}
				// Complete the older one of the two, keep one in flight.
				e.d.complete(pending[0].Head, 8)
				pending = pending[1:]
				for {
					c, ok, err := e.q.Next()
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					if c.Token != done {
						t.Fatalf("token %v, want %d", c.Token, done)
					}
					done++
				}
			}
			if want := uint16(total % 65536); e.d.usedIdx != want || e.q.lastUsed != want {
				t.Fatalf("used idx %d / %d", e.d.usedIdx, e.q.lastUsed)
			}
		})
	}
}

func TestIndirect(t *testing.T) {
	const n = 4
	e := newEnv(t, n, Features{Indirect: true})
	pool := e.g.alloc(t, 2*4*DescSize, 16) // two tables of 4
	if err := e.q.UseIndirect(pool, 4); err != nil {
		t.Fatal(err)
	}
	if err := e.q.UseIndirect(pool, 4); err == nil {
		t.Fatal("second UseIndirect succeeded")
	}
	r, w := e.buf(t, 16, false), e.buf(t, 32, true)
	chain3 := []Buffer{r, r, w}
	e.mustAdd(t, chain3, "ind1")
	e.mustAdd(t, chain3, "ind2")
	if e.q.NumFree() != 2 {
		t.Fatalf("NumFree %d after two indirect chains", e.q.NumFree())
	}
	// Tables exhausted: a 3-chain needs 3 direct descriptors, only 2 free.
	if _, err := e.q.Add(chain3, "x"); !errors.Is(err, ErrFull) {
		t.Fatalf("err %v", err)
	}
	e.mustAdd(t, []Buffer{r, w}, "direct2")
	if _, err := e.q.Add([]Buffer{r, r, r, r, w}, "x"); !errors.Is(err, ErrBadChain) {
		t.Fatalf("5-chain on size-4 queue: %v", err)
	}
	e.q.Kick()
	var reqs []devReq
	for i := 0; i < 3; i++ {
		reqs = append(reqs, e.mustPop(t))
	}
	for i, want := range []bool{true, true, false} {
		if reqs[i].Indirect != want {
			t.Errorf("req %d indirect=%v", i, reqs[i].Indirect)
		}
	}
	wantSegs := fmt.Sprint([]seg{{r.Addr, 16, false}, {r.Addr, 16, false}, {w.Addr, 32, true}})
	if fmt.Sprint(reqs[0].Segs) != wantSegs {
		t.Fatalf("indirect segs %v, want %v", reqs[0].Segs, wantSegs)
	}
	// Complete the first indirect one: its table is free again.
	e.d.complete(reqs[0].Head, e.d.fill(reqs[0], 7))
	if c := e.mustNext(t); c.Token != "ind1" || c.Len != 32 {
		t.Fatalf("completion %+v", c)
	}
	e.mustAdd(t, chain3, "ind3")
	if e.q.NumFree() != 0 {
		t.Fatalf("NumFree %d", e.q.NumFree())
	}
	e.q.Kick()
	reqs = append(reqs[1:], e.mustPop(t))
	if !reqs[2].Indirect {
		t.Fatal("ind3 not indirect")
	}
	for _, rq := range reqs {
		e.d.complete(rq.Head, 0)
	}
	cs, err := e.q.Poll(nil)
	if err != nil || len(cs) != 3 {
		t.Fatalf("Poll %v %v", cs, err)
	}
	if e.q.NumFree() != n || len(e.q.ind.free) != 2 {
		t.Fatalf("NumFree %d tables %d", e.q.NumFree(), len(e.q.ind.free))
	}
	// Single buffers never go indirect.
	e.mustAdd(t, []Buffer{w}, nil)
	e.q.Kick()
	if rq := e.mustPop(t); rq.Indirect {
		t.Fatal("single buffer went indirect")
	}
}

func TestIndirectOffUsesDirect(t *testing.T) {
	e := newEnv(t, 8, Features{Indirect: true}) // negotiated but no pool
	b := e.buf(t, 16, true)
	e.mustAdd(t, []Buffer{b, b, b}, nil)
	e.q.Kick()
	if r := e.mustPop(t); r.Indirect || len(r.Segs) != 3 || e.q.NumFree() != 5 {
		t.Fatalf("req %+v NumFree %d", r, e.q.NumFree())
	}
}

func TestNeedEvent(t *testing.T) {
	for _, c := range []struct {
		ev, nw, old uint16
		want        bool
	}{
		{0, 1, 0, true},
		{0, 0, 0, false},
		{1, 1, 0, false},
		{1, 2, 0, true},
		{5, 10, 6, false},
		{5, 10, 5, true},
		{9, 10, 5, true},
		{10, 10, 5, false},
		{0xffff, 1, 0xfffe, true},
		{0, 1, 0xfffe, true},
		{2, 1, 0xfffe, false},
		{0xfffd, 1, 0xfffe, false},
	} {
		if got := NeedEvent(c.ev, c.nw, c.old); got != c.want {
			t.Errorf("NeedEvent(%d,%d,%d) = %v", c.ev, c.nw, c.old, got)
		}
	}
}

func TestKickNoEventIdx(t *testing.T) {
	e := newEnv(t, 8, Features{})
	b := e.buf(t, 16, true)
	e.mustAdd(t, []Buffer{b}, nil)
	if !e.q.Kick() {
		t.Fatal("Kick with notifications enabled = false")
	}
	e.d.suppress() // VIRTQ_USED_F_NO_NOTIFY
	e.mustAdd(t, []Buffer{b}, nil)
	if e.q.Kick() {
		t.Fatal("Kick with NO_NOTIFY = true")
	}
	if e.d.availIdx() != 2 {
		t.Fatalf("avail idx %d: Kick must publish even without notifying", e.d.availIdx())
	}
	e.d.setNoNotify(false)
	e.mustAdd(t, []Buffer{b}, nil)
	e.mustAdd(t, []Buffer{b}, nil)
	if !e.q.Kick() || e.d.availIdx() != 4 {
		t.Fatal("Kick after clearing NO_NOTIFY")
	}
}

func TestKickEventIdx(t *testing.T) {
	e := newEnv(t, 8, Features{EventIdx: true})
	b := e.buf(t, 16, true)
	add := func(k int) {
		for i := 0; i < k; i++ {
			e.mustAdd(t, []Buffer{b}, nil)
		}
	}
	steps := []struct {
		availEvent uint16 // written by the device before the Kick
		add        int
		want       bool
	}{
		{0, 1, true},  // idx 0→1 passes event 0
		{0, 1, false}, // 1→2, event 0 already passed: device is still polling
		{2, 2, true},  // 2→4 passes 2
		{5, 1, false}, // 4→5 does not pass 5 (device wants a kick when idx goes past 5)
		{5, 1, true},  // 5→6 passes 5
		{9, 2, false}, // 6→8
	}
	for i, s := range steps {
		e.d.setAvailEvent(s.availEvent)
		add(s.add)
		if got := e.q.Kick(); got != s.want {
			t.Fatalf("step %d: Kick = %v, want %v", i, got, s.want)
		}
		for {
			r, ok, _ := e.d.pop()
			if !ok {
				break
			}
			e.d.complete(r.Head, 0)
		}
		if _, err := e.q.Poll(nil); err != nil {
			t.Fatal(err)
		}
	}
	// The avail flags stay 0 with EVENT_IDX (§2.7.7.1).
	if e.d.availFlags() != 0 {
		t.Fatalf("avail flags %#x", e.d.availFlags())
	}
}

func TestInterruptsNoEventIdx(t *testing.T) {
	e := newEnv(t, 8, Features{})
	b := e.buf(t, 16, true)
	e.mustAdd(t, []Buffer{b}, 1)
	e.q.Kick()
	e.mustAdd(t, []Buffer{b}, 2) // added, not kicked
	e.q.DisableInterrupts()
	if e.d.availFlags() != AvailFNoInterrupt || e.d.availIdx() != 1 {
		t.Fatalf("flags %#x idx %d: Disable must not publish unkicked entries", e.d.availFlags(), e.d.availIdx())
	}
	r := e.mustPop(t)
	if e.d.complete(r.Head, 0) {
		t.Fatal("device interrupts despite NO_INTERRUPT")
	}
	if !e.q.EnableInterrupts() {
		t.Fatal("EnableInterrupts missed a pending completion")
	}
	if e.d.availFlags() != 0 {
		t.Fatal("NO_INTERRUPT still set")
	}
	e.mustNext(t)
	if e.q.EnableInterrupts() {
		t.Fatal("EnableInterrupts reports pending on an empty ring")
	}
	e.q.Kick()
	r = e.mustPop(t)
	if !e.d.complete(r.Head, 0) {
		t.Fatal("device does not interrupt with interrupts enabled")
	}
	if c := e.mustNext(t); c.Token != 2 {
		t.Fatalf("token %v", c.Token)
	}
	// Kick keeps the flag.
	e.q.DisableInterrupts()
	e.mustAdd(t, []Buffer{b}, 3)
	e.q.Kick()
	if e.d.availFlags() != AvailFNoInterrupt {
		t.Fatal("Kick cleared NO_INTERRUPT")
	}
}

func TestInterruptsEventIdx(t *testing.T) {
	for _, n := range []int{1, 2, 8} { // n=1: used_event shares a word with ring[0]
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t, n, Features{EventIdx: true})
			b := e.buf(t, 16, true)
			step := func(tok int) devReq {
				e.mustAdd(t, []Buffer{b}, tok)
				e.q.Kick()
				r := e.mustPop(t)
				if r.Head >= uint16(n) {
					t.Fatalf("head %d", r.Head)
				}
				return r
			}
			// used_event starts at 0: the first entry interrupts.
			if !e.d.complete(step(0).Head, 0) {
				t.Fatal("first completion does not interrupt")
			}
			if n > 1 {
				// Driver has not consumed: used_event still 0, passed.
				if e.d.complete(step(1).Head, 0) {
					t.Fatal("second unconsumed completion interrupts")
				}
			}
			cs, err := e.q.Poll(nil)
			if err != nil || len(cs) != min(n, 2) {
				t.Fatalf("Poll %v %v", cs, err)
			}
			// Poll ended on an empty ring and re-armed used_event.
			if e.d.usedEvent() != e.q.lastUsed {
				t.Fatalf("used_event %d, lastUsed %d", e.d.usedEvent(), e.q.lastUsed)
			}
			if !e.d.complete(step(2).Head, 0) {
				t.Fatal("completion after re-arm does not interrupt")
			}
			e.mustNext(t)
			e.q.DisableInterrupts()
			if e.d.complete(step(3).Head, 0) {
				t.Fatal("interrupt while disabled")
			}
			if !e.q.EnableInterrupts() {
				t.Fatal("EnableInterrupts missed pending completion")
			}
			if c := e.mustNext(t); c.Token != 3 {
				t.Fatalf("token %v", c.Token)
			}
			if e.q.EnableInterrupts() {
				t.Fatal("pending on empty ring")
			}
			if !e.d.complete(step(4).Head, 0) {
				t.Fatal("no interrupt after EnableInterrupts")
			}
			if c := e.mustNext(t); c.Token != 4 {
				t.Fatalf("token %v", c.Token)
			}
			if e.d.availFlags() != 0 {
				t.Fatalf("avail flags %#x with EVENT_IDX", e.d.availFlags())
			}
		})
	}
}

func TestDeviceNeverAnswers(t *testing.T) {
	for _, f := range []Features{{}, {EventIdx: true}} {
		e := newEnv(t, 4, f)
		b := e.buf(t, 16, true)
		for i := 0; i < 4; i++ {
			e.mustAdd(t, []Buffer{b}, i)
		}
		e.q.Kick()
		for i := 0; i < 100; i++ {
			if cs, err := e.q.Poll(nil); len(cs) != 0 || err != nil {
				t.Fatalf("Poll %v %v", cs, err)
			}
		}
		if e.q.EnableInterrupts() || e.q.Pending() {
			t.Fatal("pending with a silent device")
		}
		if _, err := e.q.Add([]Buffer{b}, nil); !errors.Is(err, ErrFull) {
			t.Fatalf("Add: %v", err)
		}
		if e.q.InFlight() != 4 {
			t.Fatalf("InFlight %d", e.q.InFlight())
		}
	}
}

func TestCorruptUsed(t *testing.T) {
	cases := map[string]func(e *env, heads []uint16){
		"id out of range": func(e *env, _ []uint16) { e.d.postRaw(8, 0) },
		"id huge":         func(e *env, _ []uint16) { e.d.postRaw(0xffffffff, 0) },
		"not a head": func(e *env, heads []uint16) {
			// The second descriptor of the 2-chain at heads[0].
			e.d.postRaw(uint32(e.q.next[heads[0]]), 0)
		},
		"free descriptor": func(e *env, _ []uint16) { e.d.postRaw(uint32(e.q.freeHead), 0) },
		"twice": func(e *env, heads []uint16) {
			e.d.postRaw(uint32(heads[1]), 0)
			e.d.postRaw(uint32(heads[1]), 0)
		},
		"len too big": func(e *env, heads []uint16) { e.d.postRaw(uint32(heads[0]), 17) },
		"idx jump": func(e *env, _ []uint16) {
			e.d.usedIdx += 9
			e.d.publishUsed()
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 8, Features{EventIdx: true})
			r, w := e.buf(t, 16, false), e.buf(t, 16, true)
			heads := []uint16{e.mustAdd(t, []Buffer{r, w}, 0), e.mustAdd(t, []Buffer{w}, 1)}
			e.q.Kick()
			corrupt(e, heads)
			cs, err := e.q.Poll(nil)
			var de *DeviceError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &de) {
				t.Fatalf("Poll = %v, %v; want a DeviceError", cs, err)
			}
			t.Log(err)
			if _, err2 := e.q.Add([]Buffer{w}, nil); err2 != err {
				t.Fatalf("Add on broken queue: %v", err2)
			}
			if _, _, err2 := e.q.Next(); err2 != err || e.q.Broken() != err {
				t.Fatalf("Next on broken queue: %v", err2)
			}
		})
	}
}
