package blockio_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// batchShapes are the shapes of write sets of TestBatchShapes, in bytes as
// a function of the sector size ss and the device size.
var batchShapes = []struct {
	name   string
	writes func(ss, size int64) []ext
}{
	{"empty", func(ss, size int64) []ext { return nil }},
	{"zero-length", func(ss, size int64) []ext { return []ext{{5, 0}, {3 * ss, 0}, {size, 0}} }},
	{"zero-length among others", func(ss, size int64) []ext { return []ext{{ss + 1, 0}, {2 * ss, 10}, {2*ss + 3, 0}} }},
	{"inside one sector", func(ss, size int64) []ext { return []ext{{ss + 10, 100}} }},
	{"whole sector", func(ss, size int64) []ext { return []ext{{ss, ss}} }},
	{"head only", func(ss, size int64) []ext { return []ext{{ss + 100, 2*ss - 100}} }},
	{"tail only", func(ss, size int64) []ext { return []ext{{ss, 2*ss + 100}} }},
	{"head and tail", func(ss, size int64) []ext { return []ext{{100, 5 * ss}} }},
	{"head and tail in adjacent sectors", func(ss, size int64) []ext { return []ext{{ss - 7, 14}} }},
	{"many sectors", func(ss, size int64) []ext { return []ext{{2 * ss, 8 * ss}} }},
	{"whole sectors of an unaligned buffer", func(ss, size int64) []ext { return []ext{{ss / 2, 6 * ss}} }},
	{"several writes in one sector", func(ss, size int64) []ext {
		return []ext{{ss + 10, 20}, {ss + 100, 30}, {ss + 300, 5}}
	}},
	{"writes tiling one sector", func(ss, size int64) []ext { return []ext{{ss, 100}, {ss + 100, ss - 100}} }},
	{"writes meeting inside a sector", func(ss, size int64) []ext { return []ext{{0, ss + 100}, {ss + 100, 3 * ss}} }},
	{"adjacent writes", func(ss, size int64) []ext { return []ext{{ss + 3, 100}, {ss + 103, 2 * ss}, {3*ss + 103, 9}} }},
	{"adjacent sectors of different writes", func(ss, size int64) []ext { return []ext{{ss - 10, 10}, {ss, 10}} }},
	{"one sector, gap between writes", func(ss, size int64) []ext { return []ext{{10, 10}, {100, 10}} }},
	{"scattered", func(ss, size int64) []ext {
		return []ext{{0, 1}, {3*ss + 7, 1}, {6 * ss, ss}, {10*ss - 1, 2}, {14*ss + 5, 3*ss - 10}}
	}},
	{"reverse order", func(ss, size int64) []ext { return []ext{{2*ss + 9, ss}, {ss, ss + 9}, {0, ss}} }},
	{"overlap, later inside", func(ss, size int64) []ext { return []ext{{0, 3 * ss}, {ss / 2, ss}} }},
	{"overlap, later around", func(ss, size int64) []ext { return []ext{{ss / 2, ss}, {0, 3 * ss}} }},
	{"overlap inside one sector", func(ss, size int64) []ext { return []ext{{ss + 10, 100}, {ss + 50, 100}} }},
	{"same range twice", func(ss, size int64) []ext { return []ext{{ss + 1, 100}, {ss + 1, 100}} }},
	{"overlap chain", func(ss, size int64) []ext {
		return []ext{{10, 2 * ss}, {ss + 20, 2 * ss}, {2*ss + 30, 2 * ss}, {5, 20}}
	}},
	{"nested", func(ss, size int64) []ext {
		return []ext{{0, 6 * ss}, {ss + 5, 3 * ss}, {2*ss + 7, 10}, {ss + 5, 1}}
	}},
	{"offset 0", func(ss, size int64) []ext { return []ext{{0, 10}} }},
	{"device end", func(ss, size int64) []ext { return []ext{{size - 10, 10}} }},
	{"device end, several sectors", func(ss, size int64) []ext { return []ext{{size - 3*ss - 7, 3*ss + 7}} }},
	{"whole device", func(ss, size int64) []ext { return []ext{{0, size}} }},
	{"whole device, then bits", func(ss, size int64) []ext { return []ext{{0, size}, {ss + 3, 5}, {size - 1, 1}} }},
	{"many tiny adjacent writes", func(ss, size int64) []ext {
		var w []ext
		for i := range int64(300) {
			w = append(w, ext{5 + 37*i, 37})
		}
		return w
	}},
}

// TestBatchShapes issues each shape on a crash device over random contents
// and checks the device against a []byte model, the batch's description of
// itself against the written ranges, that each sector was written once and
// only partly covered sectors were read, and that a torn Issue leaves every
// sector old or new.
func TestBatchShapes(t *testing.T) {
	const sectors = 24
	for _, ss := range sectorSizes {
		for ci, c := range batchShapes {
			t.Run(fmt.Sprintf("%d/%s", ss, c.name), func(t *testing.T) {
				size := ss * sectors
				base := newDevice(t, ss, sectors)
				old := base.Bytes()
				model := bytes.Clone(old)
				covered := make([]bool, size)
				dev := crash.New(base)
				b := blockio.NewBatch(dev)
				for wi, e := range c.writes(ss, size) {
					p := random(uint64(ci)<<16|uint64(wi), e.n)
					b.Write(e.off, p)
					copy(model[e.off:], p)
					for i := e.off; i < e.off+e.n; i++ {
						covered[i] = true
					}
				}
				require.NoError(t, b.Err())
				wantSectors, partial := sectorsOf(covered, ss)
				requireDescribes(t, b, model, extentsOf(covered), wantSectors)

				require.NoError(t, b.Issue())
				requireImage(t, model, dev.Crash(crash.KeepAll, 0).Bytes())
				var n uint64
				for _, r := range wantSectors {
					n += r.Sectors
				}
				st := dev.Stats()
				require.Equal(t, int64(n)*ss, st.BytesWritten, "each sector written once")
				require.Equal(t, partial*ss, st.BytesRead, "only partly covered sectors read")
				require.Zero(t, st.Flushes)
				require.Nil(t, b.Extents(), "batch emptied by Issue")
				require.Zero(t, b.SectorCount())

				for seed := range int64(8) {
					requireOldOrNew(t, ss, old, model, dev.Crash(crash.Tear, seed).Bytes())
				}
			})
		}
	}
}

// requireDescribes checks Extents, Sectors, SectorCount and All of b
// against the model.
func requireDescribes(t *testing.T, b *blockio.Batch, model []byte, extents []blockio.Extent, sectors []blockio.SectorRange) {
	t.Helper()
	require.Equal(t, extents, b.Extents())
	require.Equal(t, sectors, b.Sectors())
	var n uint64
	for _, r := range sectors {
		n += r.Sectors
	}
	require.Equal(t, n, b.SectorCount())
	// All yields the final bytes of the extents, in order, without
	// overlaps.
	var all []blockio.Extent
	for off, p := range b.All() {
		require.Equal(t, model[off:off+int64(len(p))], p, "All at %d", off)
		if k := len(all); k > 0 {
			require.LessOrEqual(t, all[k-1].End(), off)
			if all[k-1].End() == off {
				all[k-1].Len += int64(len(p))
				continue
			}
		}
		all = append(all, blockio.Extent{Off: off, Len: int64(len(p))})
	}
	require.Equal(t, extents, all)
}

// extentsOf returns the runs of covered bytes.
func extentsOf(covered []bool) []blockio.Extent {
	var out []blockio.Extent
	for i, c := range covered {
		if !c {
			continue
		}
		if k := len(out); k > 0 && out[k-1].End() == int64(i) {
			out[k-1].Len++
			continue
		}
		out = append(out, blockio.Extent{Off: int64(i), Len: 1})
	}
	return out
}

// sectorsOf returns the runs of sectors with a covered byte, and how many of
// those sectors have an uncovered byte too.
func sectorsOf(covered []bool, ss int64) (runs []blockio.SectorRange, partial int64) {
	for s := int64(0); s*ss < int64(len(covered)); s++ {
		some, all := false, true
		for _, c := range covered[s*ss : (s+1)*ss] {
			some = some || c
			all = all && c
		}
		if !some {
			continue
		}
		if !all {
			partial++
		}
		if k := len(runs); k > 0 && runs[k-1].LBA+runs[k-1].Sectors == uint64(s) {
			runs[k-1].Sectors++
			continue
		}
		runs = append(runs, blockio.SectorRange{LBA: uint64(s), Sectors: 1})
	}
	return runs, partial
}

// requireImage checks a device image against the model, reporting the
// first difference rather than the whole image.
func requireImage(t *testing.T, want, got []byte) {
	t.Helper()
	require.Equal(t, len(want), len(got), "image size")
	if bytes.Equal(want, got) {
		return
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("image differs from the model at byte %d: %#02x, want %#02x", i, got[i], want[i])
		}
	}
}

// requireOldOrNew checks that each sector of img holds its old or its new
// contents as a whole.
func requireOldOrNew(t *testing.T, ss int64, old, new, img []byte) {
	t.Helper()
	for off := int64(0); off < int64(len(img)); off += ss {
		s := img[off : off+ss]
		if !bytes.Equal(s, old[off:off+ss]) && !bytes.Equal(s, new[off:off+ss]) {
			t.Fatalf("sector %d mixes old and new contents", off/ss)
		}
	}
}

// TestBatchReuse issues several batches, one after another, through one
// Batch, and discards one with Reset.
func TestBatchReuse(t *testing.T) {
	const ss, sectors = 512, 16
	dev := newDevice(t, ss, sectors)
	model := dev.Bytes()
	b := blockio.NewBatch(dev)
	for i := range int64(5) {
		p := random(uint64(i), 3*ss)
		b.Write(i*100, p)
		copy(model[i*100:], p)
		require.NoError(t, b.Issue())
		requireImage(t, model, dev.Bytes())
	}
	b.Write(0, make([]byte, 10))
	b.Reset()
	require.Zero(t, b.SectorCount())
	require.NoError(t, b.Issue())
	requireImage(t, model, dev.Bytes())
}
