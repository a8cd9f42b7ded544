//go:build linux

package file

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// TestZeroesAndDiscard: WriteZeroes (BLKZEROOUT / FALLOC_FL_ZERO_RANGE) and
// Discard (BLKDISCARD / FALLOC_FL_PUNCH_HOLE) zero exactly their range on
// files and loop devices; both support them, so neither may report
// ErrUnsupported here.
func TestZeroesAndDiscard(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			path := tg.storage(t, 1<<20)
			d := mustOpen(t, path, tg.opts)
			ss := d.Info().SectorSize
			const n = 64
			data := randomBytes(7, n*ss)
			fill := func() {
				t.Helper()
				b := d.AllocBuffer(n * ss)
				copy(b, data)
				if err := d.Write(0, b); err != nil {
					t.Fatal(err)
				}
			}
			check := func(op string, lo, hi int) {
				t.Helper()
				got := readAll(t, d, 0, n)
				if !bytes.Equal(got[:lo*ss], data[:lo*ss]) || !bytes.Equal(got[hi*ss:], data[hi*ss:]) {
					t.Errorf("%s [%d,%d) changed sectors outside its range", op, lo, hi)
				}
				if !isZero(got[lo*ss : hi*ss]) {
					t.Errorf("%s [%d,%d) does not read back as zeroes", op, lo, hi)
				}
			}

			fill()
			if err := d.WriteZeroes(3, 10); err != nil {
				t.Fatalf("WriteZeroes: %v", err)
			}
			check("WriteZeroes", 3, 13)
			if err := d.WriteZeroes(20, 0); err != nil {
				t.Errorf("empty WriteZeroes: %v", err)
			}

			fill()
			var before unix.Stat_t
			unix.Stat(path, &before)
			if err := d.Discard(16, 32); err != nil {
				t.Fatalf("Discard: %v", err)
			}
			// A punched file, and a loop device over one, read zeroes.
			check("Discard", 16, 48)
			if tg.loop == 0 {
				var after unix.Stat_t
				unix.Stat(path, &after)
				if after.Size != before.Size || after.Blocks >= before.Blocks {
					t.Errorf("Discard on a file: size %d→%d, blocks %d→%d; want same size, fewer blocks",
						before.Size, after.Size, before.Blocks, after.Blocks)
				}
			}
			if err := d.Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
		})
	}
}
