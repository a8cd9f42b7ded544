package hwtest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// testConcurrent runs writers, readers and a flusher at once. Each writer
// owns a region and checks every write by reading it back; the readers
// check a region written before they start; at the end each region must hold
// what its writer last wrote. Under -race this also checks the driver's own
// synchronization.
func testConcurrent(t *testing.T, dev hw.Block, info hw.Info) {
	const (
		writers = 4
		readers = 2
		rounds  = 16
	)
	ss := info.SectorSize
	region := min(info.Sectors/(writers+1), 48) // sectors per region
	shared := uint64(writers) * region          // the readers' region
	sharedData := pattern(ss, 1000, shared, region)
	mustWrite(t, dev, shared, sharedData)

	var wg sync.WaitGroup
	models := make([][]byte, writers) // what each writer's region holds
	for w := range writers {
		base := uint64(w) * region
		models[w] = pattern(ss, 1100+uint64(w), base, region)
		mustWrite(t, dev, base, models[w])
		wg.Go(func() {
			if err := writeRounds(dev, ss, uint64(w), base, region, rounds, models[w]); err != nil {
				t.Errorf("writer %d: %v", w, err)
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for i := range 2 * rounds {
				// Alternate whole-region reads with vectored partial ones.
				bufs := [][]byte{make([]byte, int(region)*ss)}
				if i%2 == 1 {
					bufs = buffers(ss, []int{1, int(region) - 3, 2})
				}
				if err := dev.Read(shared, bufs...); err != nil {
					t.Errorf("reader %d: Read(%d): %v", r, shared, err)
					return
				}
				var got []byte
				for _, b := range bufs {
					got = append(got, b...)
				}
				if d := diffSectors(got, sharedData, ss, shared); d != "" {
					t.Errorf("reader %d, round %d: %s", r, i, d)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 4 {
			if err := dev.Flush(); err != nil {
				t.Errorf("concurrent Flush: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range writers {
		expect(t, dev, fmt.Sprintf("region of writer %d at the end", w), uint64(w)*region, models[w])
	}
}

// writeRounds is one writer of testConcurrent: rounds writes of varying
// size, position and vectoring inside its region, each read back at once.
// model is the region's contents and is kept up to date.
func writeRounds(dev hw.Block, ss int, w, base, region uint64, rounds int, model []byte) error {
	for r := range uint64(rounds) {
		n := 1 + (r*7+w)%region
		lba := base + (r*5)%(region-n+1)
		data := pattern(ss, 2000+w*100+r, lba, n)
		bufs := [][]byte{data}
		if r%2 == 1 && n >= 2 {
			bufs = split(data, ss, []int{1, int(n) - 1})
		}
		if err := dev.Write(lba, bufs...); err != nil {
			return fmt.Errorf("Write(%d, %d sectors): %w", lba, n, err)
		}
		copy(model[int(lba-base)*ss:], data)
		got := make([]byte, len(data))
		if err := dev.Read(lba, got); err != nil {
			return fmt.Errorf("Read(%d, %d sectors): %w", lba, n, err)
		}
		if d := diffSectors(got, data, ss, lba); d != "" {
			return fmt.Errorf("round %d: %s", r, d)
		}
	}
	return nil
}
