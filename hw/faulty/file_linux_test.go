package faulty_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/faulty"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/hw/hwtest"
)

// TestConformanceFile runs the driver suite on the wrapper over hw/file on
// a temporary image, at the detected sector size and at 4096 bytes; Reopen
// opens the same image again.
func TestConformanceFile(t *testing.T) {
	for _, opts := range []file.Options{{}, {SectorSize: 4096}} {
		name := "detected"
		if opts.SectorSize != 0 {
			name = fmt.Sprint(opts.SectorSize)
		}
		t.Run(name, func(t *testing.T) {
			open := func(t *testing.T, path string) hw.Block {
				d, err := file.Open(path, opts)
				if err != nil {
					t.Fatalf("Open(%s): %v", path, err)
				}
				return faulty.New(d)
			}
			hwtest.TestDevice(t, hwtest.Harness{
				Open: func(t *testing.T) hw.Block {
					path := filepath.Join(t.TempDir(), "disk.img")
					if err := file.Create(path, 4<<20); err != nil {
						t.Fatal(err)
					}
					return open(t, path)
				},
				Reopen: func(t *testing.T, dev hw.Block) hw.Block { return open(t, dev.Info().Model) },
			})
		})
	}
}
