//go:build linux

package file

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmarks compare the driver with the same I/O issued directly with
// unix.Pread/unix.Pwrite on an O_DIRECT descriptor of the same 256 MiB file,
// in the same run, from the same buffer (the physical pages behind a buffer,
// huge or not, change direct-I/O speed). The machines are shared and noisy,
// so each round interleaves the two in small blocks of identical requests,
// alternating which goes first, and the benchmark reports both rates and
// the median per-block ratio driver/raw (1.0 means no overhead; see
// compare):
//
//	go test -run XXX -bench . -benchtime 3x ./hw/file

const (
	benchSize = 256 << 20
	mib       = 1 << 20
)

var benchImage struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// benchFile returns the shared benchmark image, written full of data once
// (so that reads hit allocated blocks, not holes).
func benchFile(b *testing.B) string {
	b.Helper()
	benchImage.once.Do(func() {
		dir, err := os.MkdirTemp("", "hwfile-bench")
		if err != nil {
			benchImage.err = err
			return
		}
		benchImage.dir = dir
		path := filepath.Join(dir, "bench.img")
		if err := Create(path, benchSize); err != nil {
			benchImage.err = err
			return
		}
		d, err := Open(path, Options{})
		if err != nil {
			benchImage.err = err
			return
		}
		defer d.Close()
		buf := d.AllocBuffer(mib)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for off := uint64(0); off < benchSize; off += mib {
			if err := d.Write(off/uint64(d.Info().SectorSize), buf); err != nil {
				benchImage.err = err
				return
			}
		}
		if err := d.Flush(); err != nil {
			benchImage.err = err
			return
		}
		benchImage.path = path
	})
	if benchImage.err != nil {
		b.Fatal(benchImage.err)
	}
	return benchImage.path
}

// removeBenchFile deletes the benchmark image; TestMain calls it.
func removeBenchFile() {
	if benchImage.dir != "" {
		os.RemoveAll(benchImage.dir)
	}
}

// benchPair opens the benchmark image twice: through the driver and as a raw
// O_DIRECT descriptor.
func benchPair(b *testing.B) (*Device, int) {
	path := benchFile(b)
	d, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return d, fd
}

// compare runs ops requests per round (b.N rounds) on both sides, in blocks
// of block requests: each block is issued by both sides back to back, the
// side going first alternating. It reports both overall rates (unit "MB/s",
// with opBytes per request, or "IOPS") and, as "ratio", the median over the
// blocks of the driver's rate divided by the raw rate: the two halves of a
// block run milliseconds apart, so drift in the machine's speed cancels, and
// the median ignores the blocks a noisy neighbour disturbed.
func compare(b *testing.B, unit string, opBytes, ops, block int, raw, drv func(i int) error) {
	var tRaw, tDrv time.Duration
	var ratios []float64
	run := func(f func(int) error, lo, hi int) time.Duration {
		t0 := time.Now()
		for i := lo; i < hi; i++ {
			if err := f(i); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	b.ResetTimer()
	for round := range b.N {
		for lo := 0; lo < ops; lo += block {
			hi := min(lo+block, ops)
			var r, d time.Duration
			if (round+lo/block)%2 == 0 {
				r = run(raw, lo, hi)
				d = run(drv, lo, hi)
			} else {
				d = run(drv, lo, hi)
				r = run(raw, lo, hi)
			}
			tRaw += r
			tDrv += d
			ratios = append(ratios, r.Seconds()/d.Seconds())
		}
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 {
		n := float64(b.N) * float64(ops)
		if unit == "MB/s" {
			n *= float64(opBytes) / 1e6
		}
		return n / d.Seconds()
	}
	slices.Sort(ratios)
	b.ReportMetric(rate(tRaw), "raw-"+unit)
	b.ReportMetric(rate(tDrv), "file-"+unit)
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}

func BenchmarkSeqRead1M(b *testing.B) {
	d, fd := benchPair(b)
	buf := d.AllocBuffer(mib)
	ss := uint64(d.Info().SectorSize)
	compare(b, "MB/s", mib, benchSize/mib, 4,
		func(i int) error { return pread(fd, buf, int64(i)*mib) },
		func(i int) error { return d.Read(uint64(i)*mib/ss, buf) })
}

func BenchmarkSeqWrite1M(b *testing.B) {
	d, fd := benchPair(b)
	buf := d.AllocBuffer(mib)
	for i := range buf {
		buf[i] = byte(i * 13)
	}
	ss := uint64(d.Info().SectorSize)
	compare(b, "MB/s", mib, benchSize/mib, 4,
		func(i int) error { return pwrite(fd, buf, int64(i)*mib) },
		func(i int) error { return d.Write(uint64(i)*mib/ss, buf) })
}

func BenchmarkRandRead4K(b *testing.B) {
	d, fd := benchPair(b)
	const ops = 8192
	r := rand.New(rand.NewPCG(1, 2))
	offs := make([]int64, ops)
	for i := range offs {
		offs[i] = r.Int64N(benchSize/4096) * 4096
	}
	buf := d.AllocBuffer(4096)
	ss := int64(d.Info().SectorSize)
	compare(b, "IOPS", 4096, ops, 32,
		func(i int) error { return pread(fd, buf, offs[i]) },
		func(i int) error { return d.Read(uint64(offs[i]/ss), buf) })
}

// BenchmarkSeqRead1MBounce is SeqRead1M with a misaligned caller buffer: the
// driver pays a 1 MiB copy per request that the raw side does not. It shows
// the price of not using AllocBuffer; it is not expected to reach 1.0.
func BenchmarkSeqRead1MBounce(b *testing.B) {
	d, fd := benchPair(b)
	rawBuf, drvBuf := d.AllocBuffer(mib), misaligned(mib, 1)
	ss := uint64(d.Info().SectorSize)
	compare(b, "MB/s", mib, benchSize/mib, 4,
		func(i int) error { return pread(fd, rawBuf, int64(i)*mib) },
		func(i int) error { return d.Read(uint64(i)*mib/ss, drvBuf) })
}

// pread and pwrite are the raw side: one system call, as a program using
// O_DIRECT by hand would do (a short transfer is an error here).
func pread(fd int, b []byte, off int64) error {
	n, err := unix.Pread(fd, b, off)
	if err == nil && n != len(b) {
		err = unix.EIO
	}
	return err
}

func pwrite(fd int, b []byte, off int64) error {
	n, err := unix.Pwrite(fd, b, off)
	if err == nil && n != len(b) {
		err = unix.EIO
	}
	return err
}
