package virtio

import (
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/internal/benchcmp"
	"github.com/tarstore/tarstore/internal/qsd"
)

// The benchmarks compare the driver, on a qemu-storage-daemon export of an
// image file (O_DIRECT, native AIO), with hw/file on the same image (the
// raw side), in the same run, interleaved in small blocks (see
// internal/benchcmp; "ratio" is driver rate / hw/file rate):
//
//	go test -run XXX -bench . -benchtime 3x ./hw/virtio
//
// QD1 is one request at a time (the ratio of rates is the inverse ratio
// of latencies); QD32 is 32 goroutines issuing requests at once.

const benchSize = 256 << 20

// benchPair writes a full 256 MiB image and opens it through hw/file and
// through the driver.
func benchPair(b *testing.B) (raw *file.Device, dev *Device) {
	b.Helper()
	img := filepath.Join(b.TempDir(), "bench.img")
	if err := file.Create(img, benchSize); err != nil {
		b.Fatal(err)
	}
	raw, err := file.Open(img, file.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	buf := raw.AllocBuffer(1 << 20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	ss := uint64(raw.Info().SectorSize)
	for off := uint64(0); off < benchSize; off += 1 << 20 {
		if err := raw.Write(off/ss, buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		b.Fatal(err)
	}
	d := qsd.Start(b, img, int(ss))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if dev, err = OpenVhostUser(d.Sock, Options{}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dev.Close() })
	return raw, dev
}

// randOffsets returns n random 4 KiB-aligned block numbers of the image.
func randOffsets(n int, ss int) []uint64 {
	r := rand.New(rand.NewPCG(1, 2))
	lbas := make([]uint64, n)
	for i := range lbas {
		lbas[i] = r.Uint64N(benchSize/4096) * uint64(4096/ss)
	}
	return lbas
}

// readSide reads 4 KiB at lbas[i] for requests [lo, hi) with qd
// goroutines, each with its own buffer from dev.
func readSide(dev hw.Block, lbas []uint64, qd int) benchcmp.Side {
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = hw.AllocBuffer(dev, 4096)
	}
	if qd == 1 {
		return benchcmp.Each(func(i int) error { return dev.Read(lbas[i%len(lbas)], bufs[0]) })
	}
	return func(lo, hi int) (time.Duration, error) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		t0 := time.Now()
		for w := range qd {
			wg.Go(func() {
				for i := lo + w; i < hi; i += qd {
					if err := dev.Read(lbas[i%len(lbas)], bufs[w]); err != nil {
						mu.Lock()
						first = err
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(t0), first
	}
}

func BenchmarkRandRead4KQD1(b *testing.B) {
	raw, dev := benchPair(b)
	lbas := randOffsets(8192, raw.Info().SectorSize)
	benchcmp.Compare(b, "IOPS", "virtio", 4096, len(lbas), 64,
		readSide(raw, lbas, 1), readSide(dev, lbas, 1))
}

func BenchmarkRandRead4KQD32(b *testing.B) {
	raw, dev := benchPair(b)
	lbas := randOffsets(32768, raw.Info().SectorSize)
	benchcmp.Compare(b, "IOPS", "virtio", 4096, len(lbas), 2048,
		readSide(raw, lbas, 32), readSide(dev, lbas, 32))
}

// BenchmarkSeqRead1M reads the image in 1 MiB requests, each split into
// MaxTransfer-sized device requests that run concurrently, into ordinary
// memory: each is copied out of its slot (bounced).
func BenchmarkSeqRead1M(b *testing.B) { benchSeq(b, false, false) }

// BenchmarkSeqRead1MPool reads as BenchmarkSeqRead1M into a buffer from
// AllocBuffer, which the device fills in place (zero-copy).
func BenchmarkSeqRead1MPool(b *testing.B) { benchSeq(b, false, true) }

// BenchmarkSeqWrite1M writes the image in 1 MiB requests from ordinary
// memory (bounced).
func BenchmarkSeqWrite1M(b *testing.B) { benchSeq(b, true, false) }

// BenchmarkSeqWrite1MPool writes as BenchmarkSeqWrite1M from a buffer from
// AllocBuffer (zero-copy).
func BenchmarkSeqWrite1MPool(b *testing.B) { benchSeq(b, true, true) }

func benchSeq(b *testing.B, write, pool bool) {
	raw, dev := benchPair(b)
	ss := uint64(raw.Info().SectorSize)
	rawBuf, devBuf := raw.AllocBuffer(1<<20), make([]byte, 1<<20)
	if pool {
		devBuf = dev.AllocBuffer(1 << 20)
		if _, ok := dev.pool.Addr(devBuf); !ok {
			b.Fatal("AllocBuffer did not come from the pool")
		}
	}
	for i := range rawBuf {
		rawBuf[i], devBuf[i] = byte(i*13), byte(i*13)
	}
	at := func(i int) uint64 { return uint64(i%(benchSize>>20)) << 20 / ss }
	op := func(d hw.Block) func(uint64, ...[]byte) error {
		if write {
			return d.Write
		}
		return d.Read
	}
	rawOp, devOp := op(raw), op(dev)
	benchcmp.Compare(b, "MB/s", "virtio", 1<<20, benchSize>>20, 8,
		benchcmp.Each(func(i int) error { return rawOp(at(i), rawBuf) }),
		benchcmp.Each(func(i int) error { return devOp(at(i), devBuf) }))
}
