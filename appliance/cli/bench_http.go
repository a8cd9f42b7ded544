package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/kv"
)

// The bench's server answers paths of its own besides the API, to tell
// the machine's share of the HTTP figures from the store's:
//   - loopbackPath moves the bytes without any device: a PUT body is
//     discarded, a GET answered from memory (the HTTP stack alone);
//   - loopback4kPath answers a GET with 4 KiB from memory and an ETag, as
//     the API answers a small value: the HTTP stack's own cost of one
//     http-get-4k request (http-loopback-4k);
//   - devicePath moves them between the connection and the raw region,
//     pipelined as the store streams a value (the HTTP stack and the
//     device together, without the store);
//   - device4kPath answers a GET with 4 KiB read from a random place of
//     the raw region, one device read, as the API answers a small value
//     (http-device-4k): the HTTP stack and the device together, without
//     the store.
const (
	loopbackPath   = "/.bench-loopback"
	loopback4kPath = "/.bench-loopback-4k"
	devicePath     = "/.bench-device"
	device4kPath   = "/.bench-device-4k"
)

// startHTTP serves the API over b.store on a loopback port, in process and
// with serve's limits, and connects b.cl to it. stop shuts the server down;
// the store stays open.
func (b *bench) startHTTP() (stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := httpapi.New(b.store, httpapi.Options{Version: appliance.Version})
	loopback4k, device4k := b.loopback4k(), b.device4k()
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case loopbackPath:
			b.loopback(w, r)
		case loopback4kPath:
			loopback4k(w, r)
		case device4kPath:
			device4k(w, r)
		case devicePath:
			b.device(w, r)
		default:
			h.ServeHTTP(w, r)
		}
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

// loopback4k returns the handler of loopback4kPath: it answers every
// request with the first 4 KiB of the pattern, its Content-Length and its
// ETag (the API's tag of those bytes, computed once here as the store
// keeps it in its index), and does nothing else.
func (b *bench) loopback4k() http.HandlerFunc {
	v := b.pattern[:4096]
	etag := []string{httpapi.ETag(kv.ValueDigest(v))}
	length := []string{strconv.Itoa(len(v))}
	return func(w http.ResponseWriter, _ *http.Request) {
		hdr := w.Header()
		hdr["Etag"] = etag
		hdr["Content-Length"] = length
		w.Write(v)
	}
}

// device4k returns the handler of device4kPath: each request reads b.small
// bytes (4 KiB, or a sector when sectors are larger) at the next of b.ops
// random places of the raw region, one device read into a device buffer,
// and answers with the first 4 KiB, their Content-Length and an ETag
// (made once, as the store keeps its in the index; the bytes vary).
func (b *bench) device4k() http.HandlerFunc {
	var mu sync.Mutex
	buf := hw.AllocBuffer(b.dev, int(b.small))
	offs := b.randOffsets()
	next := 0
	etag := []string{httpapi.ETag(kv.ValueDigest(b.pattern[:4096]))}
	length := []string{"4096"}
	return func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		off := offs[next%len(offs)]
		next++
		if err := b.dev.Read(uint64((b.rawStart+off)/b.ss), buf); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		hdr := w.Header()
		hdr["Etag"] = etag
		hdr["Content-Length"] = length
		w.Write(buf[:4096])
	}
}

// device writes a PUT body of b.size bytes to the raw region and flushes,
// or answers a GET with the raw region, the way the store streams a value:
// the next chunk is read (from the connection or the device) while the
// last is written, up to two device writes at once.
func (b *bench) device(w http.ResponseWriter, r *http.Request) {
	lba := func(off int64) uint64 { return uint64((b.rawStart + off) / b.ss) }
	if r.Method == http.MethodPut {
		if r.ContentLength != b.size {
			http.Error(w, "the body must be --size bytes", http.StatusBadRequest)
			return
		}
		err := relay(b.dev, b.size, b.chunk, 2,
			func(p []byte, _ int64) error { _, err := io.ReadFull(r.Body, p); return err },
			func(p []byte, off int64) error { return b.dev.Write(lba(off), p) })
		if err == nil {
			err = b.dev.Flush()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
	relay(b.dev, b.size, b.chunk, 1,
		func(p []byte, off int64) error { return b.dev.Read(lba(off), p) },
		func(p []byte, _ int64) error { _, err := w.Write(p); return err })
}

// relay moves n bytes (a multiple of chunk) in chunks: read fills a chunk
// with the bytes at an offset, write takes them on. Reading runs on its own
// goroutine, up to four chunks ahead of the writes; up to depth writes run
// at once (depth 1 keeps them in order). It returns the first error, once
// every chunk it started is done.
func relay(dev hw.Block, n, chunk int64, depth int, read, write func(p []byte, off int64) error) error {
	const buffers = 4
	type part struct {
		off int64
		p   []byte
		err error
	}
	free := make(chan []byte, buffers)
	for range buffers {
		free <- hw.AllocBuffer(dev, int(chunk))
	}
	parts := make(chan part, buffers)
	var stopped atomic.Bool
	go func() {
		defer close(parts)
		for off := int64(0); off < n && !stopped.Load(); off += chunk {
			p := <-free
			err := read(p, off)
			parts <- part{off, p, err}
			if err != nil {
				return
			}
		}
	}()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	keep := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil && err != nil {
			first = err
			stopped.Store(true)
		}
	}
	slots := make(chan struct{}, depth)
	for pt := range parts {
		keep(pt.err)
		if stopped.Load() {
			free <- pt.p
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			keep(write(pt.p, pt.off))
			<-slots
			free <- pt.p
		})
	}
	wg.Wait()
	return first
}

// loopbackPut PUTs --size bytes to the loopback endpoint.
func (b *bench) loopbackPut() (float64, error) { return b.putTo(loopbackPath) }

// devicePut PUTs --size bytes to the device endpoint.
func (b *bench) devicePut() (float64, error) { return b.putTo(devicePath) }

// putTo PUTs --size bytes of the pattern to one of the bench's own paths.
func (b *bench) putTo(path string) (float64, error) {
	req, err := http.NewRequest(http.MethodPut, b.base+path, &patternReader{p: b.pattern, left: b.size})
	if err != nil {
		return 0, err
	}
	req.ContentLength = b.size
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("PUT %s: server answered %s: %s", path, resp.Status, msg)
	}
	return float64(b.size), nil
}

// loopbackGet GETs --size bytes from the loopback endpoint.
func (b *bench) loopbackGet() (float64, error) {
	return float64(b.size), b.getAll(b.base + loopbackPath)
}

// deviceGet GETs the raw region from the device endpoint.
func (b *bench) deviceGet() (float64, error) {
	return float64(b.size), b.getAll(b.base + devicePath)
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

// httpPutSeq PUTs a new sequential value; the round removes it afterwards.
func (b *bench) httpPutSeq() (float64, error) { return b.setSeq(b.cl.SetFrom, b.newSeqKey()) }

// httpOverwriteSeq PUTs the sequential value over the one there.
func (b *bench) httpOverwriteSeq() (float64, error) { return b.setSeq(b.cl.SetFrom, b.seqKey()) }

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

// The paths users take, measured with --http beside the raw figures:
// 'tarstore get' and 'tarstore put' of a large value as the commands move
// it (cliGetSeq, cliPutSeq), and GETs of small values, ETag included, one
// after the other on one keep-alive connection (httpGet4k).

// cliGetSeq streams the sequential value to the null device the way
// 'tarstore get' streams a value to its standard output: io.CopyBuffer
// from a section reader over the store's reader into a file, which takes
// it in pieces of its own choosing (32 KiB).
func (b *bench) cliGetSeq() (float64, error) {
	r, err := b.store.Open(b.seqKey())
	if err != nil {
		return 0, err
	}
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	n, err := io.CopyBuffer(null, io.NewSectionReader(r, 0, r.Size()), make([]byte, copyChunk))
	if err == nil && n != b.size {
		err = fmt.Errorf("%w: %d of %d bytes", errShort, n, b.size)
	}
	return float64(n), err
}

// cliPutSeq sets a new sequential value from a file of --size bytes (in
// the page cache: written just before the first round), as 'tarstore put
// KEY FILE' does; the round removes the value afterwards.
func (b *bench) cliPutSeq() (float64, error) {
	f, err := os.Open(b.source)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return b.setSeq(func(k kv.Key, _ io.Reader, size int64) error { return b.store.SetFrom(k, f, size) }, b.newSeqKey())
}

// writeSource writes --size bytes of the pattern to a new temporary file
// for cliPutSeq and returns its removal.
func (b *bench) writeSource() (remove func(), err error) {
	f, err := os.CreateTemp("", "tarstore-bench-*")
	if err != nil {
		return nil, err
	}
	remove = func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, &patternReader{p: b.pattern, left: b.size})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		remove()
		return nil, err
	}
	b.source = f.Name()
	return remove, nil
}

// smallValues stores b.ops values of 4 KiB for httpGet4k.
func (b *bench) smallValues() error {
	v := b.pattern[:4096]
	for i := range b.ops {
		if err := b.store.Set(b.smallGetKey(i), v); err != nil {
			return err
		}
	}
	return nil
}

// smallGetKey names the i-th value of httpGet4k.
func (b *bench) smallGetKey(i int) kv.Key {
	k, _ := benchPrefix.Add(fmt.Sprintf("get-%d", i))
	return k
}

// httpGet4k makes b.ops GETs of the 4 KiB values, in random order, one
// after the other on one keep-alive connection, each answered with its
// ETag.
func (b *bench) httpGet4k() (float64, error) {
	return b.get4k(func() (string, string) {
		k := b.smallGetKey(b.rng.IntN(b.ops))
		return httpapi.KeyPath(k), k.String()
	})
}

// loopbackGet4k makes b.ops GETs of loopback4kPath as httpGet4k makes
// its GETs: the HTTP stack's share of each (http-loopback-4k).
func (b *bench) loopbackGet4k() (float64, error) {
	return b.get4k(func() (string, string) { return loopback4kPath, loopback4kPath })
}

// deviceGet4k makes b.ops GETs of device4kPath as httpGet4k makes its
// GETs: the HTTP stack's and the device's share of each (http-device-4k).
func (b *bench) deviceGet4k() (float64, error) {
	return b.get4k(func() (string, string) { return device4kPath, device4kPath })
}

// get4k makes b.ops GETs of the paths next gives (with the names errors
// call them by), one after the other with b.hc (one keep-alive
// connection), each to be answered with 4096 bytes and an ETag.
func (b *bench) get4k(next func() (path, name string)) (float64, error) {
	buf := make([]byte, 8192)
	for range b.ops {
		path, name := next()
		resp, err := b.hc.Get(b.base + path)
		if err != nil {
			return 0, err
		}
		n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		resp.Body.Close()
		switch {
		case err != nil:
			return 0, err
		case resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "":
			return 0, fmt.Errorf("GET %s: server answered %s without an ETag", name, resp.Status)
		case n != 4096:
			return 0, fmt.Errorf("%w: GET %s: %d of 4096 bytes", errShort, name, n)
		}
	}
	return float64(b.ops), nil
}
