package blockio_test

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// FuzzBatch runs random sequences of writes, issues and reads on a mem
// device against a []byte model; see runOps for the encoding.
func FuzzBatch(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0x10, 0, 0x30, 0, 0x40, 0x11, 0x11, 0x22, 0x22, 2, 0, 0, 0, 0, 3, 0x10, 0, 0x40, 0})
	f.Add([]byte{2, 0x40, 0x80, 0x01, 0x00, 0x20, 0x41, 0x80, 0x10, 0x00, 0x30, 2, 0, 0, 0, 0})
	f.Add([]byte{3, 0x80, 0x00, 0x05, 0x00, 0x10, 0x00, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0})
	f.Fuzz(runOps)
}

// TestRandomOps runs runOps on pseudo-random inputs, so that plain go test
// covers more than the fuzz seeds.
func TestRandomOps(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		data := make([]byte, 1+5*(1+r.IntN(40)))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		// Issue at the end, so that every batch is checked.
		data = append(data, 2, 0, 0, 0, 0)
		runOps(t, data)
	}
}

// fuzzPool is random data for runOps: the device's initial contents and the
// bytes of writes, computed once so that an execution of the fuzz target
// costs little.
var fuzzPool = sync.OnceValue(func() []byte { return random(0x706f6f6c, 2*8192*8) })

// runOps decodes data as a sector size selector byte and then up to 256
// operations of five bytes each: op, a uint16 offset and a uint16 length (big-endian),
// scaled to the device. op%4 is 0 or 1 for Write, 2 for Issue, 3 for
// ReadAt; op&0x80 negates the offset; op&0x40 makes the length small.
// Offsets reach a sector past the device end, so some operations are out
// of range. After each Issue the device must equal the model, the batch's
// Extents and Sectors must have matched the writes, and the device must
// have been sent SectorCount sectors.
func runOps(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	const sectors, maxOps = 8, 256
	if len(data) > 1+5*maxOps {
		data = data[:1+5*maxOps]
	}
	ss := sectorSizes[int(data[0])%len(sectorSizes)]
	size := ss * sectors
	pool := fuzzPool()
	mdev, err := mem.FromBytes(int(ss), pool[len(pool)-int(size):])
	require.NoError(t, err)
	dev := &spy{Block: mdev}
	model := mdev.Bytes()
	b := blockio.NewBatch(dev)
	type write struct {
		off int64
		p   []byte
	}
	var (
		pending []write
		invalid bool // an invalid write since the last Issue
		seq     uint64
	)
	for data = data[1:]; len(data) >= 5; data = data[5:] {
		op := data[0]
		off := int64(binary.BigEndian.Uint16(data[1:])) * (size + ss) >> 16
		n := int64(binary.BigEndian.Uint16(data[3:])) * size >> 16
		if op&0x80 != 0 {
			off = -off - 1
		}
		if op&0x40 != 0 {
			n %= 64
		}
		valid := off >= 0 && off <= size && n <= size-off
		switch op % 4 {
		case 0, 1:
			// Consecutive writes take their bytes from different
			// places of the pool.
			seq++
			p := pool[seq*4099%uint64(len(pool)/2):][:n]
			b.Write(off, p)
			if !invalid && valid && n > 0 {
				pending = append(pending, write{off, p})
			}
			invalid = invalid || !valid
			require.Equal(t, invalid, b.Err() != nil, "Err after write at %d+%d", off, n)
		case 2:
			covered := make([]bool, size)
			next := append([]byte(nil), model...)
			for _, w := range pending {
				copy(next[w.off:], w.p)
				for i := w.off; i < w.off+int64(len(w.p)); i++ {
					covered[i] = true
				}
			}
			count := b.SectorCount()
			if !invalid {
				wantSectors, _ := sectorsOf(covered, ss)
				requireDescribes(t, b, next, extentsOf(covered), wantSectors)
			}
			err := b.Issue()
			reqs := dev.requests()
			requireBounded(t, ss, reqs)
			if invalid {
				require.ErrorIs(t, err, hw.ErrOutOfRange)
				require.Empty(t, reqs, "I/O by a batch with an invalid write")
			} else {
				require.NoError(t, err)
				model = next
				var written int64
				for _, r := range reqs {
					if r.write {
						written += r.bytes()
					}
				}
				require.Equal(t, int64(count)*ss, written, "bytes written")
			}
			requireImage(t, model, mdev.Bytes())
			pending, invalid = nil, false
		case 3:
			p := make([]byte, n)
			err := blockio.ReadAt(dev, p, off)
			dev.requests()
			if !valid {
				require.ErrorIs(t, err, hw.ErrOutOfRange)
				continue
			}
			require.NoError(t, err)
			require.Equal(t, model[off:off+n], p, "ReadAt %d+%d", off, n)
		}
	}
}
