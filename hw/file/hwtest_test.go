//go:build linux

package file

import (
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwtest"
)

// conformanceSize is the size of each device the shared suite gets: room for
// its 2 MiB transfers at 4096-byte sectors.
const conformanceSize = 4 << 20

// TestConformance runs the shared driver suite (hw/hwtest) on an image file
// at its detected sector size and at 4096 bytes, and on loop devices with
// 512- and 4096-byte sectors; Reopen opens the same path again.
func TestConformance(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			hwtest.TestDevice(t, hwtest.Harness{
				Open: func(t *testing.T) hw.Block {
					return openConformance(t, tg.storage(t, conformanceSize), tg.opts)
				},
				Reopen: func(t *testing.T, dev hw.Block) hw.Block {
					return openConformance(t, dev.Info().Model, tg.opts)
				},
			})
		})
	}
}

// TestConformanceReadOnly runs the suite's read-only checks on read-only
// opens of each target, holding data, and on a loop device that is itself
// read-only (BLKROGET) opened without Options.ReadOnly.
func TestConformanceReadOnly(t *testing.T) {
	type roTarget struct {
		target
		roLoop bool // losetup --read-only
	}
	var cases []roTarget
	for _, tg := range targets() {
		tg.opts.ReadOnly = true
		cases = append(cases, roTarget{target: tg})
	}
	cases = append(cases, roTarget{target: target{name: "loop-read-only", loop: 512, ss: 512}, roLoop: true})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
				img := newImage(t, 1<<20)
				// Put data in, so that reads see more than holes.
				w := mustOpen(t, img, Options{SectorSize: c.opts.SectorSize})
				buf := w.AllocBuffer(1 << 20)
				copy(buf, randomBytes(9, len(buf)))
				if err := w.Write(0, buf); err != nil {
					t.Fatal(err)
				}
				w.Close()
				path := img
				switch {
				case c.roLoop:
					path = loopDevice(t, img, c.loop, "--read-only")
				case c.loop != 0:
					path = loopDevice(t, img, c.loop)
				}
				return openConformance(t, path, c.opts)
			})
		})
	}
}

// openConformance opens path for the suite, which closes it.
func openConformance(t *testing.T, path string, opts Options) hw.Block {
	t.Helper()
	d, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s, %+v): %v", path, opts, err)
	}
	return d
}
