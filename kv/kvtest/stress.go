package kvtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// Stress is a model-based, randomized, concurrent stress test for any
// kv.RW (configured by StressConfig; StressSeeds runs it over several
// seeds).
//
// Writer goroutines share one store. Writer w owns the keys below /w<w>: 25
// value keys over two levels of dictionaries (/w3/v0../w3/v6,
// /w3/d0/v0../w3/d2/v3, /w3/d0/e/v0../w3/d2/e/v1), so that its own model (a
// NewModel holding only its keys) is exact whatever the other writers do.
// Each writer draws operations from its own seeded source: sets of new keys
// and overwrites, SetFrom, new versions of existing values of about their
// size (StressConfig.Rewrites), SetPartial (inside a value, at its end, past it,
// on a missing key), Allocate (new or already present), removes of values
// and of whole dictionaries, renames of a value to a missing key or over a
// value and of a dictionary to a missing one, and the occasional set over a
// dictionary. Values are 0–256 KiB, mostly small, some of exactly 64 KiB ± 1;
// their bytes are 16-byte records "w03o00127@0001f\n" naming the writer, the
// operation that wrote them and their offset, so a wrong value shows where
// its bytes came from.
//
// Every operation runs on the store, then on the model, and both must
// return the same error code; a store's no_space leaves the model
// unchanged (it is allowed at any write, and makes the writer remove things
// next, so that freed space is reused). After every acknowledged operation
// the writer reads back the keys it touched and their parents (Exists, Get,
// Size, List, sometimes GetPartial and Open) and compares them with the
// model; every few operations it compares all its keys, which is what
// catches an older value damaged by a later write of another writer. Reader
// goroutines read the other writers' keys meanwhile, for errors only.
//
// When the writers are done, the whole store must equal the writers'
// models together; then it is reopened (StressConfig.Reopen) and compared
// again, and StressConfig.AfterReopen runs (a store's own checks).
//
// Every failure message starts with "seed=N; rerun with
// TARSTORE_STRESS_SEED=N" and ends with the failing writer's last
// operations. A rerun draws the same operations; under concurrency their
// interleaving, and so which writes meet no_space, may differ.
func Stress(t testing.TB, cfg StressConfig) StressStats {
	t.Helper()
	if cfg.Open == nil || cfg.Reopen == nil {
		t.Fatal("kvtest: StressConfig.Open and Reopen are required")
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 8
	}
	if cfg.Readers == 0 {
		cfg.Readers = 2
	}
	if cfg.Ops <= 0 && cfg.Duration <= 0 {
		cfg.Ops = 200
	}
	if cfg.MaxValue <= 0 {
		cfg.MaxValue = 256 << 10
	}
	if cfg.Rewrites <= 0 {
		cfg.Rewrites = 3
	}
	t.Logf("stress: seed=%d (rerun with %s=%d), %d writers", cfg.Seed, SeedEnv, cfg.Seed, cfg.Writers)
	h := &stress{t: t, cfg: cfg, s: cfg.Open(t), tick: make(chan struct{}, 64)}
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = time.Now().Add(cfg.Duration)
	}
	ws := make([]*stressWriter, cfg.Writers)
	for i := range ws {
		ws[i] = &stressWriter{h: h, id: i, prefix: kv.MustKey(fmt.Sprintf("/w%d", i)),
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i))), model: NewModel(clock.System{})}
	}
	var writers, readers sync.WaitGroup
	done := make(chan struct{})
	for r := range max(cfg.Readers, 0) {
		readers.Go(func() { h.read(rand.New(rand.NewPCG(cfg.Seed, 1000+uint64(r))), done) })
	}
	for _, w := range ws {
		writers.Go(func() { w.run(deadline) })
	}
	writers.Wait()
	close(done)
	readers.Wait()

	var st StressStats
	inDoubt := false
	for _, w := range ws {
		st.Ops += w.ops
		st.NoSpace += w.noSpace
		inDoubt = inDoubt || w.stopped
	}
	t.Logf("stress: seed=%d: %d operations, %d no_space", cfg.Seed, st.Ops, st.NoSpace)
	if h.failed.Load() {
		h.s.Close()
		return st
	}
	if !inDoubt { // a store that lost its device is not compared until reopened
		h.compareAll(ws, false)
	}
	h.s = cfg.Reopen(t, h.s)
	h.compareAll(ws, true)
	if cfg.AfterReopen != nil && !t.Failed() {
		cfg.AfterReopen(t, h.s)
	}
	if err := h.s.Close(); err != nil {
		t.Errorf("%s: Close after reopen: %v", h.rerun(), err)
	}
	return st
}

// StressConfig configures Stress.
type StressConfig struct {
	// Open returns the fresh, empty store under test.
	Open func(t testing.TB) kv.RW
	// Reopen closes s (or abandons it, after a simulated crash) and opens
	// the same storage again.
	Reopen func(t testing.TB, s kv.RW) kv.RW
	// AfterReopen, if set, runs on the reopened store once it has been
	// compared with the models: the store's own checks (kvtar: Check, the
	// tar readers). Stress closes the store afterwards.
	AfterReopen func(t testing.TB, s kv.RW)
	// Writers is the number of concurrent writers; 0 means 8. Readers is
	// the number of reader goroutines; 0 means 2, negative none.
	Writers, Readers int
	// Ops is the number of operations of each writer; Duration, if set,
	// bounds the run in time instead (or as well). With neither, 200 each.
	Ops      int
	Duration time.Duration
	// MaxValue is the largest value written; 0 means 256 KiB.
	MaxValue int
	// Rewrites is the percentage of operations that write a new version
	// of an existing value, of about its size, with SetFrom (a file
	// edited and saved again); 0 means 3.
	Rewrites int
	// Seed seeds every random choice.
	Seed uint64
	// InDoubt, if set, tells the errors after which the store cannot go on
	// (a device that lost power): the writer that gets one stops, and the
	// operation it was doing may be applied or not, all or nothing, when
	// the store is reopened. Stress still requires every acknowledged
	// operation after Reopen.
	InDoubt func(err error) bool
}

// StressStats counts what a Stress run did.
type StressStats struct {
	Ops     int // operations acknowledged, no_space included
	NoSpace int // writes that failed with no_space
}

// Environment variables of StressSeeds.
const (
	SeedEnv = "TARSTORE_STRESS_SEED" // run this one seed
	SoakEnv = "TARSTORE_STRESS_SOAK" // run seeds back to back for this long (a time.Duration)
)

// StressSeeds calls run in a subtest "seed=N" for each seed to test: the
// seed in $TARSTORE_STRESS_SEED when it is set; seeds back to back for the
// duration in $TARSTORE_STRESS_SOAK (e.g. 10m; give go test a -timeout to
// match), stopping at the first failure; otherwise n seeds from the clock.
func StressSeeds(t *testing.T, n int, run func(t *testing.T, seed uint64)) {
	t.Helper()
	sub := func(seed uint64) bool {
		return t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { run(t, seed) })
	}
	if s := os.Getenv(SeedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
		sub(seed)
		return
	}
	var soak time.Duration
	if s := os.Getenv(SoakEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", SoakEnv, s, err)
		}
		soak = d
	}
	start := time.Now()
	first := uint64(start.UnixNano()/1000) % 1e9
	i := 0
	for ; soak > 0 && time.Since(start) < soak || soak == 0 && i < n; i++ {
		if !sub(first+uint64(i)) && soak > 0 {
			break
		}
	}
	t.Logf("stress: %d seeds from %d in %v", i, first, time.Since(start).Round(time.Millisecond))
}

// stress is one run: the store and what its goroutines share.
type stress struct {
	t      testing.TB
	cfg    StressConfig
	s      kv.RW
	failed atomic.Bool   // a failure was reported: every goroutine stops
	tick   chan struct{} // a write was done: the readers may read once
}

func (h *stress) rerun() string {
	return fmt.Sprintf("seed=%d; rerun with %s=%d", h.cfg.Seed, SeedEnv, h.cfg.Seed)
}

// stressWriter is one writer goroutine and its model.
type stressWriter struct {
	h       *stress
	id      int
	prefix  kv.Key
	rng     *rand.Rand
	model   kv.RW
	ops     int       // operations done; the op counter in value records
	noSpace int       // of which no_space
	full    bool      // the last write met no_space: remove something next
	log     []string  // the last operations, for failure messages
	stopped bool      // stopped by an InDoubt error
	pending *stressOp // the write in flight when it stopped, if any
	cur     string    // the operation being checked
}

// A stressOp is one write, applied alike to the store and to a model.
type stressOp struct {
	desc  string
	keys  []kv.Key // to read back afterwards, with their parents
	apply func(s kv.RW) error
}

// fail reports a failure of w's current operation and stops the run.
func (w *stressWriter) fail(format string, args ...any) {
	w.h.failed.Store(true)
	w.h.t.Errorf("%s: writer %d, op %d (%s): %s\n\tlast operations of writer %d:\n\t\t%s", w.h.rerun(), w.id, w.ops,
		w.cur, fmt.Sprintf(format, args...), w.id, strings.Join(w.log, "\n\t\t"))
}

// storeErr handles an unexpected error of the store: a failure, or, for an
// InDoubt error, the end of this writer. It returns false either way.
func (w *stressWriter) storeErr(call string, err error) bool {
	if w.h.cfg.InDoubt != nil && w.h.cfg.InDoubt(err) {
		w.stopped = true
		return false
	}
	w.fail("%s: %v", call, err)
	return false
}

func (w *stressWriter) run(deadline time.Time) {
	for w.h.cfg.Ops <= 0 || w.ops < w.h.cfg.Ops {
		if w.h.failed.Load() {
			return
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		w.ops++
		if !w.step() {
			return
		}
		select {
		case w.h.tick <- struct{}{}:
		default:
		}
		if w.rng.IntN(24) == 0 && !w.compareTree(w.h.s, w.model, "periodic check of all keys") {
			return
		}
	}
	w.compareTree(w.h.s, w.model, "final check of all keys")
}

// step does one write on the store and the model and reads back what it
// touched.
func (w *stressWriter) step() bool {
	op := w.pick()
	w.cur = op.desc
	err := op.apply(w.h.s)
	res := "ok"
	switch {
	case errors.Is(err, kv.ErrNoSpace):
		res, w.full = "no_space", true
		w.noSpace++
	case err != nil && w.h.cfg.InDoubt != nil && w.h.cfg.InDoubt(err):
		w.stopped, w.pending = true, op
		w.log = append(w.log, fmt.Sprintf("op %d: %s: in doubt (%v)", w.ops, op.desc, err))
		return false
	default:
		merr := op.apply(w.model)
		if kv.Code(err) != kv.Code(merr) {
			w.fail("the store returned %v, the model %v", err, merr)
			return false
		}
		if err != nil {
			res = kv.Code(err)
		}
		w.full = false
	}
	w.log = append(w.log, fmt.Sprintf("op %d: %s: %s", w.ops, op.desc, res))
	if len(w.log) > 12 {
		w.log = w.log[1:]
	}
	for _, k := range op.keys {
		for p := k; ; p = p.Parent() {
			if !w.checkKey(p, p == k) {
				return false
			}
			if p == w.prefix || p.IsRoot() {
				break
			}
		}
	}
	return true
}

// Key universe of a writer, below its prefix.
var (
	stressDicts  = []string{"d0", "d1", "d2", "d0/e", "d1/e", "d2/e"}
	stressValues = func() []string {
		var vs []string
		for i := range 7 {
			vs = append(vs, fmt.Sprintf("v%d", i))
		}
		for _, d := range stressDicts {
			n := 4
			if strings.HasSuffix(d, "/e") {
				n = 2
			}
			for i := range n {
				vs = append(vs, fmt.Sprintf("%s/v%d", d, i))
			}
		}
		return vs
	}()
)

func (w *stressWriter) key(rel string) kv.Key {
	k, err := w.prefix.Join(kv.MustKey(rel))
	if err != nil {
		panic(err)
	}
	return k
}

// values returns w's values and their sizes, from its model.
func (w *stressWriter) values() ([]kv.Key, []int) {
	var ks []kv.Key
	var ns []int
	for _, rel := range stressValues {
		k := w.key(rel)
		if n, err := w.model.Size(k); err == nil {
			ks, ns = append(ks, k), append(ns, int(n))
		}
	}
	return ks, ns
}

// pick draws w's next write.
func (w *stressWriter) pick() *stressOp {
	r := w.rng
	vals, sizes := w.values()
	anyKey := func() kv.Key { return w.key(stressValues[r.IntN(len(stressValues))]) }
	existing := func() (kv.Key, int) {
		if len(vals) == 0 {
			return anyKey(), 0
		}
		i := r.IntN(len(vals))
		return vals[i], sizes[i]
	}
	// Rewrites percent of the operations are new versions (set_from);
	// the others are drawn by the percentile of choice: set 30, set_from 6,
	// set_partial 15, allocate 7, set over a dictionary 1, remove a value
	// 15, remove a dictionary 6, rename a value 15, rename a dictionary 5.
	choice := r.IntN(100)
	rewrite := r.IntN(100) < w.h.cfg.Rewrites
	if rewrite {
		choice = 30 // set_from
	}
	if w.full && len(vals) > 0 {
		choice = 59 + r.IntN(21) // remove something: a value, or a dictionary
	}
	switch {
	case choice < 30: // set: a new key or an overwrite
		k := anyKey()
		v := w.data(w.size())
		return &stressOp{fmt.Sprintf("set %s (%d bytes)", k, len(v)), []kv.Key{k}, func(s kv.RW) error { return s.Set(k, v) }}
	case choice < 36:
		k, size := anyKey(), w.size()
		if rewrite && len(vals) > 0 {
			// A new version of about the same size: a store may
			// reuse the old one's place.
			k, size = existing()
			size = min(max(0, size+r.IntN(8193)-4096), w.h.cfg.MaxValue)
		}
		v := w.data(size)
		return &stressOp{fmt.Sprintf("set_from %s (%d bytes)", k, len(v)), []kv.Key{k},
			func(s kv.RW) error { return s.SetFrom(k, bytes.NewReader(v), int64(len(v))) }}
	case choice < 51:
		k, n := existing()
		off := 0
		switch r.IntN(4) {
		case 0: // inside
			off = r.IntN(n + 1)
		case 1: // at the end
			off = n
		case 2: // past the end: appends
			off = n + 1 + r.IntN(1000)
		}
		v := w.data(min(w.size(), max(0, 2*w.h.cfg.MaxValue-n)))
		return &stressOp{fmt.Sprintf("set_partial %s at %d (%d bytes onto %d)", k, off, len(v), n), []kv.Key{k},
			func(s kv.RW) error { return s.SetPartial(k, int64(off), v) }}
	case choice < 58:
		k, n := anyKey(), int64(w.size())
		return &stressOp{fmt.Sprintf("allocate %s (%d bytes)", k, n), []kv.Key{k},
			func(s kv.RW) error { return s.Allocate(k, n, time.Time{}) }}
	case choice < 59:
		k := w.key(stressDicts[r.IntN(len(stressDicts))])
		v := w.data(r.IntN(2000))
		return &stressOp{fmt.Sprintf("set %s over a dictionary (%d bytes)", k, len(v)), []kv.Key{k},
			func(s kv.RW) error { return s.Set(k, v) }}
	case choice < 74:
		k, _ := existing()
		if w.full && len(vals) > 0 { // the largest value
			k = vals[slices.Index(sizes, slices.Max(sizes))]
		}
		return &stressOp{fmt.Sprintf("remove %s", k), []kv.Key{k}, func(s kv.RW) error { return s.Remove(k) }}
	case choice < 80: // remove a dictionary (or the whole prefix, rarely)
		k := w.key(w.dict(5))
		if r.IntN(20) == 0 {
			k = w.prefix
		}
		return &stressOp{fmt.Sprintf("remove %s", k), []kv.Key{k}, func(s kv.RW) error { return s.Remove(k) }}
	case choice < 95: // rename a value to a missing key or over a value
		src, _ := existing()
		dst := anyKey()
		return &stressOp{fmt.Sprintf("rename %s to %s", src, dst), []kv.Key{src, dst},
			func(s kv.RW) error { return s.Rename(src, dst) }}
	default: // rename a dictionary, mostly to a missing key
		src := w.key(w.dict(3))
		dst := w.key(w.dict(5))
		for range 8 {
			if kind, _ := w.model.Exists(dst); kind == kv.None || r.IntN(4) == 0 {
				break
			}
			dst = w.key(w.dict(5))
		}
		return &stressOp{fmt.Sprintf("rename %s to %s", src, dst), []kv.Key{src, dst},
			func(s kv.RW) error { return s.Rename(src, dst) }}
	}
}

// dict draws a dictionary of the first level (d0..d<n-1>) or of the second
// (d0/e..). d3 and d4 are only made by renames.
func (w *stressWriter) dict(n int) string {
	d := fmt.Sprintf("d%d", w.rng.IntN(n))
	if w.rng.IntN(3) == 0 {
		d += "/e"
	}
	return d
}

// size draws a value size: mostly small, some of exactly 64 KiB ± 1 (where
// a store may change how it lays values out), some up to MaxValue.
func (w *stressWriter) size() int {
	n := 0
	switch r := w.rng.IntN(100); {
	case r < 35:
		n = w.rng.IntN(513)
	case r < 60:
		n = 513 + w.rng.IntN(8<<10)
	case r < 75:
		n = w.rng.IntN(64 << 10)
	case r < 85:
		n = 64<<10 - 1 + w.rng.IntN(3)
	default:
		n = 64<<10 + w.rng.IntN(max(1, w.h.cfg.MaxValue-64<<10+1))
	}
	return min(n, w.h.cfg.MaxValue)
}

// data returns n bytes of 16-byte records "w03o00127@0001f\n": the writer,
// the operation (modulo 100000) and the record's offset / 16 in hex.
func (w *stressWriter) data(n int) []byte {
	b := make([]byte, n+16)
	const hexd = "0123456789abcdef"
	rec := fmt.Appendf(nil, "w%02do%05d@", w.id%100, w.ops%100000)
	for i := 0; i < n; i += 16 {
		r := b[i : i+16]
		copy(r, rec)
		for j, x := 14, i/16; j >= 10; j, x = j-1, x>>4 {
			r[j] = hexd[x&15]
		}
		r[15] = '\n'
	}
	return b[:n:n]
}

// checkKey compares what the store and the model say of k; sometimes their
// digests too, when k is the key an operation named (a parent's digest
// reads the whole tree below it).
func (w *stressWriter) checkKey(k kv.Key, named bool) bool {
	s, m := w.h.s, w.model
	want, _ := m.Exists(k)
	got, err := s.Exists(k)
	if err != nil {
		return w.storeErr("Exists("+k.String()+")", err)
	}
	if got != want {
		w.fail("Exists(%s) = %v, the model says %v", k, got, want)
		return false
	}
	switch want {
	case kv.Value:
		mv, _ := m.Get(k)
		sv, err := s.Get(k)
		if err != nil {
			return w.storeErr("Get("+k.String()+")", err)
		}
		if d := diffBytes(mv, sv); d != "" {
			w.fail("Get(%s): %s", k, d)
			return false
		}
		if n, err := s.Size(k); err != nil || n != int64(len(mv)) {
			if err != nil {
				return w.storeErr("Size("+k.String()+")", err)
			}
			w.fail("Size(%s) = %d, want %d", k, n, len(mv))
			return false
		}
		if w.rng.IntN(4) == 0 {
			off, n := int64(w.rng.IntN(len(mv)+2)), int64(w.rng.IntN(70<<10))
			sv, err := s.GetPartial(k, off, n)
			if err != nil {
				return w.storeErr(fmt.Sprintf("GetPartial(%s, %d, %d)", k, off, n), err)
			}
			if d := diffBytes(mv[min(off, int64(len(mv))):min(off+n, int64(len(mv)))], sv); d != "" {
				w.fail("GetPartial(%s, %d, %d): %s", k, off, n, d)
				return false
			}
		}
		if w.rng.IntN(8) == 0 && !w.checkOpen(k, mv) {
			return false
		}
	case kv.Dictionary:
		me, _ := m.List(k)
		se, err := s.List(k)
		if err != nil {
			return w.storeErr("List("+k.String()+")", err)
		}
		if !slices.Equal(me, se) {
			w.fail("List(%s) = %v, the model says %v", k, describe(se), describe(me))
			return false
		}
	default:
		_, merr := m.Get(k)
		if _, err := s.Get(k); kv.Code(err) != kv.Code(merr) {
			if err != nil && !errors.Is(err, kv.ErrNotFound) {
				return w.storeErr("Get("+k.String()+")", err)
			}
			w.fail("Get(%s) of a missing key: %v, want %v", k, err, merr)
			return false
		}
	}
	if named && want != kv.None && w.rng.IntN(4) == 0 { // after the contents, which say more when they differ
		md, _ := m.Digest(k)
		sd, err := s.Digest(k)
		if err != nil {
			return w.storeErr("Digest("+k.String()+")", err)
		}
		if !bytes.Equal(md, sd) {
			if want == kv.Dictionary && !w.compareTree(s, m, w.cur) {
				return false // it names the key that differs
			}
			w.fail("Digest(%s) = %x, the model says %x", k, sd, md)
			return false
		}
	}
	return true
}

// checkOpen reads the value k through Open and ReadAt.
func (w *stressWriter) checkOpen(k kv.Key, want []byte) bool {
	r, err := w.h.s.Open(k)
	if err != nil {
		return w.storeErr("Open("+k.String()+")", err)
	}
	defer r.Close()
	got, err := io.ReadAll(kv.NewStreamReader(r))
	if err != nil {
		return w.storeErr("reading "+k.String()+" through Open", err)
	}
	if d := diffBytes(want, got); d != "" {
		w.fail("Open(%s): %s", k, d)
		return false
	}
	return true
}

// compareTree compares everything below w's prefix in s with the model m.
func (w *stressWriter) compareTree(s kv.RO, m kv.RO, what string) bool {
	w.cur = what
	want, err := tree(m, w.prefix)
	if err != nil {
		w.fail("the model: %v", err)
		return false
	}
	got, err := tree(s, w.prefix)
	if err != nil {
		return w.storeErr(what, err)
	}
	if d := diffTrees(want, got); d != "" {
		w.fail("the store's keys differ from the model's:%s", d)
		return false
	}
	return true
}

// compareAll compares the store with every writer's model: each writer's
// tree (after reopen, the tree with its pending write applied is good too),
// and the root holds nothing else.
func (h *stress) compareAll(ws []*stressWriter, reopened bool) {
	h.cfg.InDoubt = nil // the writers are done: any error of the store is a failure now
	roots, err := h.s.List(kv.Root)
	if err != nil {
		h.t.Errorf("%s: List(/): %v", h.rerun(), err)
		return
	}
	for _, e := range roots { // each writer's tree is compared below
		if i := slices.IndexFunc(ws, func(w *stressWriter) bool { return w.prefix == e.Key }); i < 0 || e.Kind != kv.Dictionary {
			h.t.Errorf("%s: List(/) has %s %s, which no writer made", h.rerun(), e.Kind, e.Key)
		}
	}
	for _, w := range ws {
		w.cur = "comparing the store with the model after the run"
		if reopened {
			w.cur = "comparing the reopened store with the model"
		}
		if w.pending == nil || !reopened {
			w.compareTree(h.s, w.model, w.cur)
			continue
		}
		// Either the model, or the model with the pending write.
		before, err := tree(w.model, w.prefix)
		got, err2 := tree(h.s, w.prefix)
		if err != nil || err2 != nil {
			h.t.Errorf("%s: writer %d: %v %v", h.rerun(), w.id, err, err2)
			continue
		}
		after := NewModel(clock.System{})
		for k, v := range before {
			if v != nil {
				after.Set(kv.MustKey(k), v)
			}
		}
		w.pending.apply(after)
		want, _ := tree(after, w.prefix)
		if d1, d2 := diffTrees(before, got), diffTrees(want, got); d1 != "" && d2 != "" {
			w.fail("the write in flight at the crash (%s) is neither absent nor whole; against the state before it:%s\n\tagainst the state after it:%s",
				w.pending.desc, d1, d2)
		}
	}
}

// tree reads every key below k (none when k is missing): values as their
// bytes, dictionaries as nil, by key string.
func tree(s kv.RO, k kv.Key) (map[string][]byte, error) {
	out := map[string][]byte{}
	if kind, err := s.Exists(k); err != nil || kind == kv.None {
		return out, err
	}
	var visit func(k kv.Key) error
	visit = func(k kv.Key) error {
		es, err := s.List(k)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Kind == kv.Dictionary {
				out[e.Key.String()] = nil
				if err := visit(e.Key); err != nil {
					return err
				}
				continue
			}
			v, err := s.Get(e.Key)
			if err != nil {
				return err
			}
			if v == nil {
				v = []byte{} // non-nil: a value
			}
			out[e.Key.String()] = v
		}
		return nil
	}
	return out, visit(k)
}

// diffTrees describes how got differs from want (trees as tree returns
// them), at most 8 keys; "" when they are equal.
func diffTrees(want, got map[string][]byte) string {
	var out []string
	kind := func(v []byte) string {
		if v == nil {
			return "a dictionary"
		}
		return fmt.Sprintf("a value of %d bytes", len(v))
	}
	for _, k := range sortedKeys(want) {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: missing, want %s", k, kind(want[k])))
		case (g == nil) != (want[k] == nil):
			out = append(out, fmt.Sprintf("%s: %s, want %s", k, kind(g), kind(want[k])))
		case g != nil:
			if d := diffBytes(want[k], g); d != "" {
				out = append(out, k+": "+d)
			}
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: %s, want nothing", k, kind(got[k])))
		}
	}
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("... and %d more", len(out)-8))
	}
	if len(out) == 0 {
		return ""
	}
	return "\n\t" + strings.Join(out, "\n\t")
}

// diffBytes describes how got differs from want: the lengths, the first
// differing offset and 32 bytes around it on both sides; "" when equal.
func diffBytes(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-8)
	around := func(b []byte) []byte { return b[min(from, len(b)):min(from+32, len(b))] }
	return fmt.Sprintf("%d bytes, want %d; first difference at offset %d; bytes %d..:\n\t\tgot  %q\n\t\twant %q",
		len(got), len(want), i, from, around(got), around(want))
}

// read is a reader goroutine: it reads random keys of every writer, once
// per write (h.tick), until done, and fails only on errors a concurrent
// write cannot explain.
func (h *stress) read(r *rand.Rand, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-h.tick:
		}
		if h.failed.Load() {
			return
		}
		w := kv.MustKey(fmt.Sprintf("/w%d", r.IntN(h.cfg.Writers)))
		k, _ := w.Join(kv.MustKey(stressValues[r.IntN(len(stressValues))]))
		if r.IntN(4) == 0 {
			k = k.Parent()
		}
		var err error
		switch r.IntN(6) {
		case 0:
			_, err = h.s.Get(k)
		case 1:
			_, err = h.s.GetPartial(k, int64(r.IntN(70<<10)), int64(r.IntN(10<<10)))
		case 2:
			_, err = h.s.List(k)
		case 3:
			_, err = h.s.Size(k)
		case 4:
			var rd kv.Reader
			if rd, err = h.s.Open(k); err == nil {
				p := make([]byte, min(rd.Size(), 4096))
				if _, err = rd.ReadAt(p, max(0, rd.Size()-int64(len(p)))); err == io.EOF {
					err = nil
				}
				rd.Close()
			}
		default:
			_, err = h.s.Free()
		}
		if err == nil || errors.Is(err, kv.ErrNotFound) || errors.Is(err, kv.ErrValueExpected) || errors.Is(err, kv.ErrDictionaryExpected) {
			continue
		}
		if h.cfg.InDoubt != nil && h.cfg.InDoubt(err) {
			return
		}
		h.failed.Store(true)
		h.t.Errorf("%s: reader of %s: %v", h.rerun(), k, err)
		return
	}
}
