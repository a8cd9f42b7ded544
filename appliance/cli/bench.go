package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// Bench defaults.
const (
	benchSize   = 64 << 20
	benchOps    = 256
	benchRounds = 5
	// benchKeys is how many 4 KiB values overwrite-flush (and each client
	// of http-overwrite-4k-16) rotates through.
	benchKeys = 8
	// benchSlack is room for the store's headers, alignment and small
	// values beyond its sequential test value.
	benchSlack = 8 << 20
	// benchClients is how many clients http-put-4k-16 runs at once.
	benchClients = 16
)

// benchPrefix holds the store's test values during a run.
var benchPrefix = kv.MustKey("/.tarstore-bench")

// benchResult is one measurement, raw and through the store.
type benchResult struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"` // "MiB/s" or "IOPS"
	Raw   float64 `json:"raw"`
	Store float64 `json:"store"`
	Ratio float64 `json:"ratio"` // the median of Rounds
	// Rounds are the rounds' own ratios store/raw, in order (the two
	// sides of a round run back to back).
	Rounds []float64 `json:"rounds"`
}

// benchReport is what bench --json prints.
type benchReport struct {
	Disk       string        `json:"disk"`
	Driver     string        `json:"driver"`
	SectorSize int           `json:"sector_size"`
	Size       int64         `json:"size"` // bytes per sequential round
	Ops        int           `json:"ops"`
	Rounds     int           `json:"rounds"`
	HTTP       bool          `json:"http,omitempty"` // the store side went through the HTTP API
	RawRegion  [2]int64      `json:"raw_region"`     // [start, end) of the raw I/O on the device
	Results    []benchResult `json:"results"`
}

// bench is one run: the store and, on the same device, the region raw I/O
// may use.
type bench struct {
	dev      hw.Block
	store    *kvtar.Store
	ss       int64
	chunk    int64 // sequential request size: 1 MiB rounded down to sectors
	small    int64 // random request size: 4 KiB rounded up to sectors
	rawStart int64 // the raw region [rawStart, rawStart+size)
	size     int64
	ops      int
	buf      []byte // aligned, chunk bytes
	pattern  []byte // what is written, chunk bytes
	rng      *rand.Rand
	fresh    atomic.Int64 // numbers the new keys
	lastNew  kv.Key       // the last new sequential value

	// With --http: the store side goes through the API, served over
	// loopback in process.
	base string         // http://127.0.0.1:PORT
	hc   *http.Client   // shared by cl and the plain GETs
	cl   *client.Client // over base
	// source is the file cliPutSeq reads (bench_http.go).
	source string
}

// accum sums one side of a measurement over the rounds and keeps each
// round's rate.
type accum struct {
	amount float64 // bytes or operations
	took   time.Duration
	rates  []float64 // amount per second, by round
}

func (a accum) rate(unit string) float64 {
	if a.took <= 0 {
		return 0
	}
	r := a.amount / a.took.Seconds()
	if unit == "MiB/s" {
		r /= 1 << 20
	}
	return r
}

func runBench(c *cmdCtx) (err error) {
	size, ops, rounds := int64(benchSize), benchOps, benchRounds
	if c.a.has("size") {
		if size, err = parseSize("--size", c.a.get("size")); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"ops", &ops}, {"rounds", &rounds}} {
		if c.a.has(f.name) {
			n, err := strconv.Atoi(c.a.get(f.name))
			if err != nil || n < 1 {
				return usagef("--%s: %q is not a positive number", f.name, c.a.get(f.name))
			}
			*f.v = n
		}
	}
	dev, err := appliance.OpenDevice(c.cfg, false)
	if err != nil {
		return openError(c.cfg, err)
	}
	store, err := kvtar.New(appliance.Clock(), dev)
	if err != nil {
		dev.Close()
		return openError(c.cfg, err)
	}
	defer closeInto(store, &err)
	disk := appliance.Describe(c.cfg)

	info, err := store.Stat()
	if err != nil {
		return err
	}
	b := &bench{dev: dev, store: store, ss: int64(info.Device.SectorSize), ops: ops,
		rng: rand.New(rand.NewPCG(1, 2))}
	b.chunk = max(b.ss, (1<<20)/b.ss*b.ss)
	b.small = (4096 + b.ss - 1) / b.ss * b.ss
	size = max(size/b.chunk*b.chunk, b.chunk)
	b.size = size

	// The raw region is the last size bytes of the archive area, before
	// the journal. The store writes below it: past its end of archive, its
	// test values need the sequential value, a new one each round (removed
	// after the round), the replacements of the value (the store appends a
	// replacement while the free tail is large, so the archive may grow by
	// one value per round), the new 4 KiB values (8 KiB each at most, with
	// header and alignment; with --http, ops more for http-get-4k) and
	// slack. Each round checks that the archive
	// still ends below the raw region.
	tail := info.End + 1024
	b.rawStart = (info.Size - size) / b.ss * b.ss
	values := satAdd(satAdd(satMul(satAdd(int64(rounds), 2), size), satMul(satMul(int64(ops), satAdd(int64(rounds), 1)), 8<<10)), benchSlack)
	if need := satAdd(values, size); size > info.Size || b.rawStart < satAdd(tail, values) {
		return &opError{"bench", disk, fmt.Sprintf(
			"not enough free space at the end of the archive: the run needs %s (%s for the store's test values, then %s for raw I/O), the free tail has %s; try a smaller --size or fewer --ops",
			human(need), human(values), human(size), human(max(0, info.Size-tail))), kv.ErrNoSpace.Error()}
	}
	if k, err := store.Exists(benchPrefix); err != nil {
		return err
	} else if k != kv.None {
		return &opError{"bench", benchPrefix.String(), "the store already holds this key (left by an interrupted bench?); remove it with 'tarstore rm " +
			benchPrefix.String() + "' if it is not yours", kv.ErrAlreadyPresent.Error()}
	}
	defer func() {
		if rerr := store.Remove(benchPrefix); err == nil {
			err = rerr
		}
		// Give the raw region back to a sparse image (best effort: the
		// region is free space, invisible to tar readers either way).
		if d, ok := dev.(hw.Discarder); ok {
			d.Discard(uint64(b.rawStart/b.ss), uint64(size/b.ss))
		}
	}()
	b.buf = hw.AllocBuffer(dev, int(b.chunk))
	b.pattern = make([]byte, b.chunk)
	for i := range b.pattern {
		b.pattern[i] = byte(b.rng.Uint32())
	}
	// Write the free space both sides will use once before measuring: on
	// a sparse image the first write of a block costs the file system an
	// allocation, which the device itself does not pay (and a block device
	// never does). The store's part is past its end-of-archive marker,
	// invisible to tar readers.
	first := (tail + b.ss - 1) / b.ss * b.ss
	if err := b.touch(first, min(first+values, b.rawStart)); err != nil {
		return err
	}
	if err := b.touch(b.rawStart, b.rawStart+size); err != nil {
		return err
	}
	// The value the reads and overwrites use.
	if _, err := b.storeOverwriteSeq(); err != nil {
		return err
	}
	if c.a.on("http") {
		stop, err := b.startHTTP()
		if err != nil {
			return err
		}
		// Runs before the test values are removed and the store closed.
		defer func() {
			if serr := stop(); err == nil {
				err = serr
			}
		}()
		remove, err := b.writeSource()
		if err != nil {
			return err
		}
		defer remove()
		if err := b.smallValues(); err != nil {
			return err
		}
	}

	type workload struct {
		name, unit string
		raw, store func() (float64, error)
		after      func() error // untimed, after each round
	}
	works := []workload{
		{"seq-write", "MiB/s", b.rawSeqWrite, b.storeSeqWrite, b.removeNew},
		{"overwrite-seq", "MiB/s", b.rawSeqWrite, b.storeOverwriteSeq, nil},
		{"seq-read", "MiB/s", b.rawSeqRead, b.storeSeqRead, nil},
		{"rand-read", "IOPS", b.rawRandRead, b.storeRandRead, nil},
		{"write-flush", "IOPS", b.rawWriteFlush, b.storeWriteFlush(false), nil},
		{"overwrite-flush", "IOPS", b.rawWriteFlush, b.storeWriteFlush(true), nil},
	}
	if b.cl != nil {
		works = []workload{
			{"http-put-seq", "MiB/s", b.rawSeqWrite, b.httpPutSeq, b.removeNew},
			{"http-overwrite-seq", "MiB/s", b.rawSeqWrite, b.httpOverwriteSeq, nil},
			{"http-get-seq", "MiB/s", b.rawSeqRead, b.httpGetSeq, nil},
			{"http-device-put", "MiB/s", b.rawSeqWrite, b.devicePut, nil},
			{"http-device-get", "MiB/s", b.rawSeqRead, b.deviceGet, nil},
			{"http-loopback-put", "MiB/s", b.rawSeqWrite, b.loopbackPut, nil},
			{"http-loopback-get", "MiB/s", b.rawSeqRead, b.loopbackGet, nil},
			{"http-put-4k-16", "IOPS", b.rawWriteFlush, b.httpPut4k(false), nil},
			{"http-overwrite-4k-16", "IOPS", b.rawWriteFlush, b.httpPut4k(true), nil},
			{"http-get-4k", "IOPS", b.rawRandRead, b.httpGet4k, nil},
			{"http-loopback-4k", "IOPS", b.rawRandRead, b.loopbackGet4k, nil},
			{"http-device-4k", "IOPS", b.rawRandRead, b.deviceGet4k, nil},
			{"cli-get-seq", "MiB/s", b.rawSeqRead, b.cliGetSeq, nil},
			{"cli-put-seq", "MiB/s", b.rawSeqWrite, b.cliPutSeq, b.removeNew},
		}
	}
	raw := make([]accum, len(works))
	st := make([]accum, len(works))
	measure := func(f func() (float64, error), a *accum) error {
		start := time.Now()
		n, err := f()
		took := time.Since(start)
		a.took += took
		a.amount += n
		a.rates = append(a.rates, n/took.Seconds())
		return err
	}
	for r := 0; r < rounds; r++ {
		for i, w := range works {
			// Alternate which side goes first, so that neither always
			// runs on a device warmed (or tired) by the other.
			first, second := measure, measure
			fa, sa := &raw[i], &st[i]
			ff, sf := w.raw, w.store
			if r%2 == 1 {
				fa, sa, ff, sf = sa, fa, sf, ff
			}
			if err := first(ff, fa); err != nil {
				return err
			}
			if err := second(sf, sa); err != nil {
				return err
			}
			if w.after != nil {
				if err := w.after(); err != nil {
					return err
				}
			}
			if err := b.belowRaw(disk); err != nil {
				return err
			}
		}
	}

	rep := benchReport{Disk: disk, Driver: info.Device.Driver, SectorSize: info.Device.SectorSize,
		Size: size, Ops: ops, Rounds: rounds, HTTP: b.cl != nil, RawRegion: [2]int64{b.rawStart, b.rawStart + size}}
	for i, w := range works {
		res := benchResult{Name: w.name, Unit: w.unit, Raw: raw[i].rate(w.unit), Store: st[i].rate(w.unit)}
		for r := range rounds {
			res.Rounds = append(res.Rounds, st[i].rates[r]/raw[i].rates[r])
		}
		res.Ratio = median(res.Rounds)
		rep.Results = append(rep.Results, res)
	}
	if c.a.on("json") {
		return writeJSON(c.env.Stdout, rep)
	}
	printBench(c.env.Stdout, rep)
	return nil
}

// median returns the median of xs (the mean of the middle two when their
// number is even).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func printBench(out io.Writer, rep benchReport) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	via := ""
	if rep.HTTP {
		via = ", store through HTTP over loopback"
	}
	fmt.Fprintf(w, "bench %s (%s driver, %d-byte sectors): %s per sequential round, %d ops per random round, %d rounds%s\n",
		rep.Disk, rep.Driver, rep.SectorSize, human(rep.Size), rep.Ops, rep.Rounds, via)
	width := 12
	for _, r := range rep.Results {
		width = max(width, len(r.Name))
	}
	fmt.Fprintf(w, "%-*s %16s %16s %9s\n", width, "test", "raw", "store", "store/raw")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%-*s %16s %16s %9.2f\n", width, r.Name, fmt.Sprintf("%.1f %s", r.Raw, r.Unit),
			fmt.Sprintf("%.1f %s", r.Store, r.Unit), r.Ratio)
	}
	fmt.Fprintf(w, "raw and store: over all rounds; store/raw: the median of the rounds' own ratios\n")
}

// errShort: a store read returned less than asked.
var errShort = errors.New("short read")

func (b *bench) rawSeqWrite() (float64, error) {
	copy(b.buf, b.pattern)
	for off := int64(0); off < b.size; off += b.chunk {
		if err := b.dev.Write(uint64((b.rawStart+off)/b.ss), b.buf); err != nil {
			return 0, err
		}
	}
	return float64(b.size), b.dev.Flush()
}

// patternReader yields size bytes of the pattern.
type patternReader struct {
	p    []byte
	left int64
	off  int
}

func (r *patternReader) Read(b []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(int64(len(b)), r.left)], r.p[r.off:])
	r.off = (r.off + n) % len(r.p)
	r.left -= int64(n)
	return n, nil
}

func (b *bench) seqKey() kv.Key {
	k, _ := benchPrefix.Add("seq")
	return k
}

// newSeqKey names a new sequential value, remembered for removeNew.
func (b *bench) newSeqKey() kv.Key {
	k, _ := benchPrefix.Add(fmt.Sprintf("put-%d", b.fresh.Add(1)))
	b.lastNew = k
	return k
}

// removeNew removes the last new sequential value.
func (b *bench) removeNew() error { return b.store.Remove(b.lastNew) }

// belowRaw checks that the archive still ends below the raw region.
func (b *bench) belowRaw(disk string) error {
	info, err := b.store.Stat()
	if err != nil {
		return err
	}
	if info.End+1024 > b.rawStart {
		return &opError{"bench", disk, fmt.Sprintf("the store's test values reached the region of the raw I/O (%s from the start); try a smaller --size or fewer --rounds",
			human(b.rawStart)), kv.ErrNoSpace.Error()}
	}
	return nil
}

// setSeq streams --size bytes of the pattern to k with setFrom (the
// store's or the HTTP client's).
func (b *bench) setSeq(setFrom func(kv.Key, io.Reader, int64) error, k kv.Key) (float64, error) {
	return float64(b.size), setFrom(k, &patternReader{p: b.pattern, left: b.size}, b.size)
}

// storeSeqWrite sets a new sequential value; the round removes it
// afterwards.
func (b *bench) storeSeqWrite() (float64, error) { return b.setSeq(b.store.SetFrom, b.newSeqKey()) }

// storeOverwriteSeq sets the sequential value over the one there.
func (b *bench) storeOverwriteSeq() (float64, error) { return b.setSeq(b.store.SetFrom, b.seqKey()) }

func (b *bench) rawSeqRead() (float64, error) {
	for off := int64(0); off < b.size; off += b.chunk {
		if err := b.dev.Read(uint64((b.rawStart+off)/b.ss), b.buf); err != nil {
			return 0, err
		}
	}
	return float64(b.size), nil
}

func (b *bench) storeSeqRead() (float64, error) {
	r, err := b.store.Open(b.seqKey())
	if err != nil {
		return 0, err
	}
	defer r.Close()
	for off := int64(0); off < b.size; off += b.chunk {
		if n, err := r.ReadAt(b.buf, off); n < len(b.buf) {
			return 0, errors.Join(errShort, err)
		}
	}
	return float64(b.size), nil
}

// randOffsets returns ops random offsets of small requests in [0, size).
func (b *bench) randOffsets() []int64 {
	offs := make([]int64, b.ops)
	n := b.size / b.small
	for i := range offs {
		offs[i] = b.rng.Int64N(n) * b.small
	}
	return offs
}

func (b *bench) rawRandRead() (float64, error) {
	buf := b.buf[:b.small]
	for _, off := range b.randOffsets() {
		if err := b.dev.Read(uint64((b.rawStart+off)/b.ss), buf); err != nil {
			return 0, err
		}
	}
	return float64(b.ops), nil
}

func (b *bench) storeRandRead() (float64, error) {
	r, err := b.store.Open(b.seqKey())
	if err != nil {
		return 0, err
	}
	defer r.Close()
	buf := b.buf[:b.small]
	for _, off := range b.randOffsets() {
		if n, err := r.ReadAt(buf, off); n < len(buf) {
			return 0, errors.Join(errShort, err)
		}
	}
	return float64(b.ops), nil
}

func (b *bench) rawWriteFlush() (float64, error) {
	buf := b.buf[:b.small]
	copy(buf, b.pattern)
	slots := b.size / b.small
	for i := 0; i < b.ops; i++ {
		off := int64(i) % slots * b.small
		if err := b.dev.Write(uint64((b.rawStart+off)/b.ss), buf); err != nil {
			return 0, err
		}
		if err := b.dev.Flush(); err != nil {
			return 0, err
		}
	}
	return float64(b.ops), nil
}

// touch writes zeroes over [from, to) (sector-aligned), in chunks, and
// flushes.
func (b *bench) touch(from, to int64) error {
	buf := hw.AllocBuffer(b.dev, int(b.chunk))
	for off := from; off < to; off += b.chunk {
		n := min(b.chunk, to-off)
		if err := b.dev.Write(uint64(off/b.ss), buf[:n]); err != nil {
			return err
		}
	}
	return b.dev.Flush()
}

// smallKey names the i-th 4 KiB value of client g: a new key each time,
// or, to overwrite, one of benchKeys keys of the client's own.
func (b *bench) smallKey(g int, i int64, overwrite bool) kv.Key {
	name := fmt.Sprintf("c%d-n%d", g, b.fresh.Add(1))
	if overwrite {
		name = fmt.Sprintf("c%d-w%d", g, i%benchKeys)
	}
	k, _ := benchPrefix.Add(name)
	return k
}

// storeWriteFlush makes b.ops durable 4 KiB Sets, one after the other: of
// new keys (appends), or over benchKeys keys (each Set replaces a value).
func (b *bench) storeWriteFlush(overwrite bool) func() (float64, error) {
	return func() (float64, error) {
		v := b.pattern[:4096]
		for i := 0; i < b.ops; i++ {
			if err := b.store.Set(b.smallKey(0, int64(i), overwrite), v); err != nil {
				return 0, err
			}
		}
		return float64(b.ops), nil
	}
}
