//go:build linux

package file

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tarstore/tarstore/internal/benchcmp"
	"golang.org/x/sys/unix"
)

// The benchmarks compare the driver with the same I/O issued directly with
// unix.Pread/unix.Pwrite on an O_DIRECT descriptor of the same 256 MiB file,
// in the same run, from the same buffer (the physical pages behind a buffer,
// huge or not, change direct-I/O speed). The machines are shared and noisy,
// so each round interleaves the two in small blocks of identical requests,
// alternating which goes first, and the benchmark reports both rates and
// the median per-block ratio driver/raw (1.0 means no overhead; see
// internal/benchcmp):
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

func BenchmarkSeqRead1M(b *testing.B) {
	d, fd := benchPair(b)
	buf := d.AllocBuffer(mib)
	ss := uint64(d.Info().SectorSize)
	benchcmp.Compare(b, "MB/s", "file", mib, benchSize/mib, 4,
		benchcmp.Each(func(i int) error { return pread(fd, buf, seqOff(i)) }),
		benchcmp.Each(func(i int) error { return d.Read(uint64(seqOff(i))/ss, buf) }))
}

func BenchmarkSeqWrite1M(b *testing.B) {
	d, fd := benchPair(b)
	buf := d.AllocBuffer(mib)
	for i := range buf {
		buf[i] = byte(i * 13)
	}
	ss := uint64(d.Info().SectorSize)
	benchcmp.Compare(b, "MB/s", "file", mib, benchSize/mib, 4,
		benchcmp.Each(func(i int) error { return pwrite(fd, buf, seqOff(i)) }),
		benchcmp.Each(func(i int) error { return d.Write(uint64(seqOff(i))/ss, buf) }))
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
	benchcmp.Compare(b, "IOPS", "file", 4096, ops, 32,
		benchcmp.Each(func(i int) error { return pread(fd, buf, offs[i%ops]) }),
		benchcmp.Each(func(i int) error { return d.Read(uint64(offs[i%ops]/ss), buf) }))
}

// BenchmarkSeqRead1MBounce is SeqRead1M with a misaligned caller buffer: the
// driver pays a 1 MiB copy per request that the raw side does not. It shows
// the price of not using AllocBuffer; it is not expected to reach 1.0.
func BenchmarkSeqRead1MBounce(b *testing.B) {
	d, fd := benchPair(b)
	rawBuf, drvBuf := d.AllocBuffer(mib), misaligned(mib, 1)
	ss := uint64(d.Info().SectorSize)
	benchcmp.Compare(b, "MB/s", "file", mib, benchSize/mib, 4,
		benchcmp.Each(func(i int) error { return pread(fd, rawBuf, seqOff(i)) }),
		benchcmp.Each(func(i int) error { return d.Read(uint64(seqOff(i))/ss, drvBuf) }))
}

// seqOff is where the i-th 1 MiB request of a sequential benchmark goes:
// each round covers the image once.
func seqOff(i int) int64 { return int64(i%(benchSize/mib)) * mib }

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
