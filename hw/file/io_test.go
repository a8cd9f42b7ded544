//go:build linux

package file

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// TestBounceAndZeroCopy writes and reads the same data through aligned
// buffers (zero-copy) and misaligned ones (bounced), singly and vectored
// with both kinds mixed, and checks every path sees identical bytes.
func TestBounceAndZeroCopy(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			d := mustOpen(t, tg.storage(t, 8<<20), tg.opts)
			ss := d.Info().SectorSize
			// 3 MiB + 2 sectors: more than one bounce chunk.
			n := 3<<20 + 2*ss
			data := randomBytes(1, n)

			// Zero-copy write, bounced read at odd addresses.
			aligned := d.AllocBuffer(n)
			copy(aligned, data)
			if err := d.Write(0, aligned); err != nil {
				t.Fatal(err)
			}
			// Offsets 512 and 2048 are aligned enough for the kernel
			// (memory alignment 512 here) and go zero-copy although
			// not page-aligned; the others bounce.
			for _, off := range []int{1, 8, 100, 511, 512, 2048} {
				b := misaligned(n, off)
				if err := d.Read(0, b); err != nil {
					t.Fatalf("read at +%d: %v", off, err)
				}
				if !bytes.Equal(b, data) {
					t.Fatalf("read at +%d differs from the zero-copy write", off)
				}
			}

			// Bounced write, zero-copy read.
			data2 := randomBytes(2, n)
			b := misaligned(n, 3)
			copy(b, data2)
			if err := d.Write(1, b); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, d, 1, n/ss); !bytes.Equal(got, data2) {
				t.Fatal("zero-copy read differs from the bounced write")
			}
			if got := readAll(t, d, 0, 1); !bytes.Equal(got, data[:ss]) {
				t.Fatal("sector before the bounced write changed")
			}

			// Vectored, mixing aligned and misaligned buffers of
			// various sizes, against a plain aligned read.
			sizes := []int{1, 2, 1, 300, 1, 1, 4, 1}
			var want []byte
			var bufs [][]byte
			for i, k := range sizes {
				chunk := randomBytes(uint64(10+i), k*ss)
				want = append(want, chunk...)
				var buf []byte
				if i%3 == 0 {
					buf = d.AllocBuffer(k * ss)
				} else {
					buf = misaligned(k*ss, 7*i)
				}
				copy(buf, chunk)
				bufs = append(bufs, buf)
			}
			if err := d.Write(5, bufs...); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, d, 5, len(want)/ss); !bytes.Equal(got, want) {
				t.Fatal("vectored mixed write read back differently")
			}
			for i := range bufs {
				clear(bufs[i])
			}
			if err := d.Read(5, bufs...); err != nil {
				t.Fatal(err)
			}
			if got := bytes.Join(bufs, nil); !bytes.Equal(got, want) {
				t.Fatal("vectored mixed read differs")
			}
		})
	}
}

// TestManySegments sends more segments than one preadv/pwritev takes, with
// the aligned and bounced kinds alternating.
func TestManySegments(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		d := mustOpen(t, newImage(t, 4<<20), Options{})
		ss := d.Info().SectorSize
		const segs = 2*iovMax + 100
		data := randomBytes(3, segs*ss)
		bufs := make([][]byte, segs)
		for i := range bufs {
			if mixed && i%2 == 1 {
				bufs[i] = misaligned(ss, 1)
			} else {
				bufs[i] = d.AllocBuffer(ss)
			}
			copy(bufs[i], data[i*ss:])
		}
		if err := d.Write(3, bufs...); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, d, 3, segs); !bytes.Equal(got, data) {
			t.Fatalf("mixed=%v: write of %d segments read back differently", mixed, segs)
		}
		for i := range bufs {
			clear(bufs[i])
		}
		if err := d.Read(3, bufs...); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.Join(bufs, nil), data) {
			t.Fatalf("mixed=%v: read of %d segments differs", mixed, segs)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			path := tg.storage(t, 1<<20)
			d := mustOpen(t, path, tg.opts)
			info := d.Info()
			ss := info.SectorSize
			end := info.Sectors
			buf := d.AllocBuffer(2 * ss)

			for _, op := range []string{"read", "write"} {
				do := d.Read
				if op == "write" {
					do = d.Write
				}
				wantErr(t, do(0), op, hw.ErrMisaligned, 0)
				wantErr(t, do(0, buf[:ss-1]), op, hw.ErrMisaligned, 0)
				wantErr(t, do(1, buf, buf[:0]), op, hw.ErrMisaligned, 1)
				wantErr(t, do(1, buf[:ss+ss/2]), op, hw.ErrMisaligned, 1)
				wantErr(t, do(end-1, buf), op, hw.ErrOutOfRange, int64(end-1))
				wantErr(t, do(end, buf[:ss]), op, hw.ErrOutOfRange, int64(end))
				wantErr(t, do(1<<62, buf[:ss]), op, hw.ErrOutOfRange, 1<<62)
				if err := do(end-2, buf); err != nil {
					t.Errorf("%s of the last two sectors: %v", op, err)
				}
			}
			wantErr(t, d.WriteZeroes(end, 1), "write-zeroes", hw.ErrOutOfRange, int64(end))
			wantErr(t, d.Discard(end-1, 2), "discard", hw.ErrOutOfRange, int64(end-1))

			// Read-only opens refuse writes of every kind.
			d.Close()
			r := mustOpen(t, path, Options{ReadOnly: true, SectorSize: tg.opts.SectorSize})
			if !r.Info().ReadOnly {
				t.Fatal("ReadOnly open is not read-only")
			}
			wantErr(t, r.Write(0, buf), "write", hw.ErrReadOnly, 0)
			wantErr(t, r.WriteZeroes(2, 1), "write-zeroes", hw.ErrReadOnly, 2)
			wantErr(t, r.Discard(3, 1), "discard", hw.ErrReadOnly, 3)
			if err := r.Read(0, buf); err != nil {
				t.Errorf("read-only Read: %v", err)
			}

			// Closed: every request fails with ErrClosed.
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			wantErr(t, r.Read(4, buf), "read", hw.ErrClosed, 4)
			wantErr(t, r.Write(4, buf), "write", hw.ErrClosed, 4)
			wantErr(t, r.Flush(), "flush", hw.ErrClosed, 0)
			wantErr(t, r.WriteZeroes(5, 1), "write-zeroes", hw.ErrClosed, 5)
			wantErr(t, r.Discard(6, 1), "discard", hw.ErrClosed, 6)
		})
	}
}

// TestIOError truncates the image behind the driver's back: reads that run
// into the new end of file fail with ErrIO at the first missing sector,
// through the single, vectored and bounced paths.
func TestIOError(t *testing.T) {
	path := newImage(t, 64*4096)
	d := mustOpen(t, path, Options{SectorSize: 4096})
	if err := d.Write(0, d.AllocBuffer(64*4096)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 32*4096); err != nil {
		t.Fatal(err)
	}
	a := func(n int) []byte { return d.AllocBuffer(n * 4096) }
	for name, bufs := range map[string][][]byte{
		"single":   {a(4)},
		"vectored": {a(1), a(2), a(1)},
		"bounced":  {a(1), misaligned(2*4096, 1), a(1)},
	} {
		err := d.Read(31, bufs...)
		he := wantErr(t, err, "read", hw.ErrIO, 32)
		if he.Sectors != 3 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v (sectors %d), want 3 sectors from 32 and io.ErrUnexpectedEOF", name, err, he.Sectors)
		}
	}
	if err := d.Read(28, a(4)); err != nil {
		t.Errorf("read before the new end: %v", err)
	}
}

// TestCloseDuringIO closes the device while goroutines keep issuing
// requests: each request either completes or fails with ErrClosed.
func TestCloseDuringIO(t *testing.T) {
	d, err := Open(newImage(t, 1<<20), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := d.Info().SectorSize
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := d.AllocBuffer(ss)
			if g%2 == 1 {
				buf = misaligned(ss, g)
			}
			lba := uint64(g)
			signaled := false
			signal := func() {
				if !signaled {
					signaled = true
					started <- struct{}{}
				}
			}
			defer signal() // also when failing early
			for i := 0; ; i++ {
				var err error
				if i%2 == 0 {
					err = d.Write(lba, buf)
				} else {
					err = d.Read(lba, buf)
				}
				if i == 10 {
					signal()
				}
				if err != nil {
					if !errors.Is(err, hw.ErrClosed) {
						t.Errorf("request during Close: %v", err)
					}
					return
				}
			}
		}()
	}
	for range 8 {
		<-started
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
}

func TestAllocBuffer(t *testing.T) {
	d := mustOpen(t, newImage(t, 1<<20), Options{})
	for _, n := range []int{0, 512, 4096, 1 << 20} {
		b := d.AllocBuffer(n)
		if len(b) != n || !isZero(b) {
			t.Errorf("AllocBuffer(%d): len %d, zero %v", n, len(b), isZero(b))
		}
	}
	if d.AllocBuffer(-1) != nil {
		t.Error("AllocBuffer(-1) != nil")
	}
}
