package crash

import (
	"fmt"
	"math/rand/v2"

	"github.com/tarstore/tarstore/hw/mem"
)

// Mode says which pending writes survive in a crash image.
type Mode int

const (
	// KeepAll keeps every pending write, the interrupted one included: the
	// write cache reached the medium just before the power went.
	KeepAll Mode = iota
	// DropAll keeps none: only what was flushed survives.
	DropAll
	// Tear keeps each sector of each pending write independently with
	// probability 1/2, chosen by the seed; the kept sectors are applied in
	// write order.
	Tear
)

func (m Mode) String() string {
	switch m {
	case KeepAll:
		return "KeepAll"
	case DropAll:
		return "DropAll"
	case Tear:
		return "Tear"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// tearStream is the second PCG seed word of Tear, fixed so that images
// depend on the seed alone.
const tearStream = 0x7461727374726368 // "tarstrch"

// Crash returns a fresh, open, writable mem device holding the medium as it
// would be found after a power failure now: the durable contents plus the
// pending writes mode keeps. seed drives Tear and is ignored by the other
// modes; a mode outside the three above behaves as DropAll. The Device is
// not changed: it keeps running (or keeps failing, after a power loss) and
// Crash may be called again.
func (d *Device) Crash(mode Mode, seed int64) *mem.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.durable.Clone()
	// out is a fresh writable device of the same geometry and every entry
	// of the log passed validation against that geometry, so apply cannot
	// fail below.
	switch mode {
	case KeepAll:
		for _, w := range d.pending {
			_ = apply(out, w, 0, w.sectors)
		}
	case Tear:
		rng := rand.New(rand.NewPCG(uint64(seed), tearStream))
		for _, w := range d.pending {
			// Apply each run of kept sectors with one request.
			run := uint64(0)
			for i := range w.sectors {
				if rng.IntN(2) == 1 {
					continue
				}
				if run < i {
					_ = apply(out, w, run, i)
				}
				run = i + 1
			}
			if run < w.sectors {
				_ = apply(out, w, run, w.sectors)
			}
		}
	}
	return out
}

// apply writes sectors [from, to) of the logged write w to dev.
func apply(dev *mem.Device, w write, from, to uint64) error {
	if from >= to {
		return nil
	}
	if w.data == nil {
		return dev.WriteZeroes(w.lba+from, to-from)
	}
	ss := uint64(dev.Info().SectorSize)
	return dev.Write(w.lba+from, w.data[from*ss:to*ss])
}
