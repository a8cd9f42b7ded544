// Package hwbench measures small random reads on block devices — the
// latency of one request at a time and the throughput of many in flight —
// and compares devices in one run. The machines this project runs on are
// shared and noisy, so Compare interleaves the devices in short rounds,
// rotating which goes first, and reports medians: each device's rate, and
// the median over rounds of its rate divided by the first device's in the
// same round (see also internal/benchcmp, the Go-benchmark counterpart).
package hwbench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/tarstore/tarstore/hw"
)

// Config describes a run. Zero fields take the defaults in brackets.
type Config struct {
	Size   int    // bytes per read, a multiple of every device's sector size [4096]
	QD     int    // reads in flight [1]
	Ops    int    // reads per device per round [1000]
	Rounds int    // rounds [5]
	Span   uint64 // read within the first Span bytes of each device; 0: the smallest device
	Seed   uint64 // of the offsets; the same for every device

	// Sequential takes consecutive blocks from the start of the span
	// (wrapping around), each worker its own, instead of random ones.
	Sequential bool
	// Write writes the blocks instead of reading them: their old
	// contents are lost. The devices must be writable.
	Write bool
}

// Device is a device under test and its name in the report.
type Device struct {
	Name string
	Dev  hw.Block
}

// Figure is one device's result.
type Figure struct {
	Name    string
	IOPS    float64       // median over rounds
	Latency time.Duration // QD / IOPS: the mean time of one read
	Ratio   float64       // median over rounds of IOPS / the first device's IOPS
}

func (f Figure) String() string {
	return fmt.Sprintf("%s %.1f us/read, %.0f IOPS, ratio %.2f", f.Name, float64(f.Latency.Nanoseconds())/1e3, f.IOPS, f.Ratio)
}

func (c *Config) defaults(devs []Device) error {
	if c.Size == 0 {
		c.Size = 4096
	}
	c.QD, c.Ops, c.Rounds = max(c.QD, 1), orDefault(c.Ops, 1000), orDefault(c.Rounds, 5)
	if len(devs) == 0 {
		return fmt.Errorf("hwbench: no device")
	}
	smallest := uint64(math.MaxUint64)
	for _, d := range devs {
		info := d.Dev.Info()
		if c.Size%info.SectorSize != 0 {
			return fmt.Errorf("hwbench: %s: %d-byte reads are not whole %d-byte sectors", d.Name, c.Size, info.SectorSize)
		}
		smallest = min(smallest, uint64(info.Size()))
	}
	if c.Span == 0 {
		c.Span = smallest
	}
	if c.Span > smallest || c.Span < uint64(c.Size) {
		return fmt.Errorf("hwbench: span of %d bytes: want one %d-byte read at least, and at most the smallest device, %d bytes", c.Span, c.Size, smallest)
	}
	return nil
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Compare reads from (or writes to) each device Rounds times Ops
// Size-byte blocks, random or sequential, at queue depth QD and returns one
// Figure per device, in order.
func Compare(devs []Device, cfg Config) ([]Figure, error) {
	if err := cfg.defaults(devs); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x7461727374))
	offs := make([]uint64, cfg.Ops*cfg.Rounds)
	blocks := cfg.Span / uint64(cfg.Size)
	for i := range offs {
		b := r.Uint64N(blocks)
		if cfg.Sequential {
			b = uint64(i) % blocks
		}
		offs[i] = b * uint64(cfg.Size)
	}
	rates := make([][]float64, len(devs))
	ratios := make([][]float64, len(devs))
	for round := range cfg.Rounds {
		now := make([]float64, len(devs))
		for k := range devs {
			i := (k + round) % len(devs)
			rate, err := run(devs[i].Dev, offs[round*cfg.Ops:(round+1)*cfg.Ops], &cfg)
			if err != nil {
				return nil, fmt.Errorf("hwbench: %s: %w", devs[i].Name, err)
			}
			now[i] = rate
			rates[i] = append(rates[i], rate)
		}
		for i := range devs {
			ratios[i] = append(ratios[i], now[i]/now[0])
		}
	}
	figs := make([]Figure, len(devs))
	for i, d := range devs {
		iops := median(rates[i])
		figs[i] = Figure{Name: d.Name, IOPS: iops, Latency: time.Duration(float64(cfg.QD) / iops * 1e9), Ratio: median(ratios[i])}
	}
	return figs, nil
}

// run reads (or writes) cfg.Size bytes at each of offs with cfg.QD
// goroutines, each with a buffer from hw.AllocBuffer, and returns the
// requests per second.
func run(dev hw.Block, offs []uint64, cfg *Config) (float64, error) {
	ss := uint64(dev.Info().SectorSize)
	qd := cfg.QD
	do := dev.Read
	if cfg.Write {
		do = dev.Write
	}
	errs := make([]error, qd)
	bufs := make([][]byte, qd)
	for w := range bufs {
		bufs[w] = hw.AllocBuffer(dev, cfg.Size)
	}
	defer func() {
		for _, b := range bufs {
			hw.ReleaseBuffer(dev, b)
		}
	}()
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range qd {
		buf := bufs[w]
		wg.Go(func() {
			for i := w; i < len(offs); i += qd {
				if err := do(offs[i]/ss, buf); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(t0)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(len(offs)) / d.Seconds(), nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
