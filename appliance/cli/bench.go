package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar"
)

// Bench defaults.
const (
	benchSize   = 64 << 20
	benchOps    = 256
	benchRounds = 3
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
	Ratio float64 `json:"ratio"` // store / raw
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
	fresh    atomic.Int64 // numbers the new keys of the 4 KiB tests

	// With --http: the store side goes through the API, served over
	// loopback in process.
	base string         // http://127.0.0.1:PORT
	hc   *http.Client   // shared by cl and the plain GETs
	cl   *client.Client // over base
}

// accum sums one side of a measurement over the rounds.
type accum struct {
	amount float64 // bytes or operations
	took   time.Duration
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
		return err
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
	// the journal. The store writes only below it: past its end of
	// archive, its test values need at most twice the sequential value
	// (a replacement is written before the old one is freed), the new 4 KiB
	// values (8 KiB each at most, with header and alignment) and slack.
	tail := info.End + 1024
	b.rawStart = (info.Size - size) / b.ss * b.ss
	values := 2*size + int64(ops)*int64(rounds)*(8<<10) + benchSlack
	if need := values + size; b.rawStart < tail+values {
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
	}

	type workload struct {
		name, unit string
		raw, store func() (float64, error)
	}
	works := []workload{
		{"seq-write", "MiB/s", b.rawSeqWrite, b.storeSeqWrite},
		{"seq-read", "MiB/s", b.rawSeqRead, b.storeSeqRead},
		{"rand-read", "IOPS", b.rawRandRead, b.storeRandRead},
		{"write-flush", "IOPS", b.rawWriteFlush, b.storeWriteFlush(false)},
		{"overwrite-flush", "IOPS", b.rawWriteFlush, b.storeWriteFlush(true)},
	}
	if b.cl != nil {
		works = []workload{
			{"http-put-seq", "MiB/s", b.rawSeqWrite, b.httpPutSeq},
			{"http-get-seq", "MiB/s", b.rawSeqRead, b.httpGetSeq},
			{"http-loopback-put", "MiB/s", b.rawSeqWrite, b.loopbackPut},
			{"http-loopback-get", "MiB/s", b.rawSeqRead, b.loopbackGet},
			{"http-put-4k-16", "IOPS", b.rawWriteFlush, b.httpPut4k(false)},
			{"http-overwrite-4k-16", "IOPS", b.rawWriteFlush, b.httpPut4k(true)},
		}
	}
	raw := make([]accum, len(works))
	st := make([]accum, len(works))
	measure := func(f func() (float64, error), a *accum) error {
		start := time.Now()
		n, err := f()
		a.took += time.Since(start)
		a.amount += n
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
		}
	}

	rep := benchReport{Disk: disk, Driver: info.Device.Driver, SectorSize: info.Device.SectorSize,
		Size: size, Ops: ops, Rounds: rounds, HTTP: b.cl != nil, RawRegion: [2]int64{b.rawStart, b.rawStart + size}}
	for i, w := range works {
		res := benchResult{Name: w.name, Unit: w.unit, Raw: raw[i].rate(w.unit), Store: st[i].rate(w.unit)}
		if res.Raw > 0 {
			res.Ratio = res.Store / res.Raw
		}
		rep.Results = append(rep.Results, res)
	}
	if c.a.on("json") {
		return writeJSON(c.env.Stdout, rep)
	}
	printBench(c.env.Stdout, rep)
	return nil
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

func (b *bench) storeSeqWrite() (float64, error) {
	return float64(b.size), b.store.SetFrom(b.seqKey(), &patternReader{p: b.pattern, left: b.size}, b.size)
}

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

// startHTTP serves the API over b.store on a loopback port, in process and
// with serve's limits, and connects b.cl to it. stop shuts the server down;
// the store stays open.
func (b *bench) startHTTP() (stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := httpapi.New(b.store, httpapi.Options{Version: appliance.Version})
	// The loopback endpoint moves bytes without the store: the HTTP
	// stack's own ceiling, measured in the same run.
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == loopbackPath {
			b.loopback(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:           route,
		ReadHeaderTimeout: appliance.ReadHeaderTimeout,
		IdleTimeout:       appliance.IdleTimeout,
		MaxHeaderBytes:    appliance.MaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	b.base = "http://" + ln.Addr().String()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 2 * benchClients
	b.hc = &http.Client{Transport: t}
	if b.cl, err = client.New(b.base, client.Options{HTTPClient: b.hc}); err != nil {
		srv.Close()
		return nil, err
	}
	return func() error {
		b.cl.Close()
		b.hc.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), appliance.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		if err != nil {
			srv.Close()
		}
		h.Close()
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}, nil
}

// loopbackPath is where the bench's server answers without the store.
const loopbackPath = "/.bench-loopback"

// loopback discards a PUT body, or answers a GET with b.size bytes from
// memory.
func (b *bench) loopback(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		buf := make([]byte, b.chunk)
		io.CopyBuffer(io.Discard, r.Body, buf)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
	for left := b.size; left > 0; {
		n := min(left, int64(len(b.pattern)))
		if _, err := w.Write(b.pattern[:n]); err != nil {
			return
		}
		left -= n
	}
}

// loopbackPut PUTs --size bytes to the loopback endpoint.
func (b *bench) loopbackPut() (float64, error) {
	req, err := http.NewRequest(http.MethodPut, b.base+loopbackPath, &patternReader{p: b.pattern, left: b.size})
	if err != nil {
		return 0, err
	}
	req.ContentLength = b.size
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return 0, fmt.Errorf("loopback PUT: server answered %s", resp.Status)
	}
	return float64(b.size), nil
}

// loopbackGet GETs --size bytes from the loopback endpoint.
func (b *bench) loopbackGet() (float64, error) {
	return float64(b.size), b.getAll(b.base + loopbackPath)
}

// getAll GETs url and reads the whole answer into io.Discard: b.size
// bytes with 200 OK.
func (b *bench) getAll(url string) error {
	resp, err := b.hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && n != b.size {
		err = fmt.Errorf("%w: %d of %d bytes", errShort, n, b.size)
	}
	return err
}

// httpPutSeq PUTs the sequential value, streamed from memory.
func (b *bench) httpPutSeq() (float64, error) {
	return float64(b.size), b.cl.SetFrom(b.seqKey(), &patternReader{p: b.pattern, left: b.size}, b.size)
}

// httpGetSeq GETs the sequential value in one streamed response, into
// io.Discard.
func (b *bench) httpGetSeq() (float64, error) {
	k := b.seqKey()
	if err := b.getAll(b.base + httpapi.KeyPath(k) + "?no-digest"); err != nil {
		return 0, kv.Storage("get", k, err)
	}
	return float64(b.size), nil
}

// httpPut4k makes b.ops durable 4 KiB PUTs from benchClients concurrent
// clients, of new keys or each over benchKeys keys of its own (independent
// clients: no two write the same key).
func (b *bench) httpPut4k(overwrite bool) func() (float64, error) {
	return func() (float64, error) {
		v := b.pattern[:4096]
		var (
			next atomic.Int64
			wg   sync.WaitGroup
			errs = make([]error, benchClients)
		)
		for g := range benchClients {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(b.ops) {
						return
					}
					if err := b.cl.Set(b.smallKey(g, i, overwrite), v); err != nil {
						errs[g] = err
						next.Store(int64(b.ops)) // stop the others
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		return float64(b.ops), nil
	}
}
