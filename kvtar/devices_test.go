//go:build linux

package kvtar

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/internal/testenv"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// Helpers for running the store on real devices through hw/file: image
// files on the disk under $TMPDIR and loop devices (internal/testenv's
// policy when they cannot be set up).

// newImage creates a sparse image of size bytes in a fresh temporary
// directory and returns its path.
func newImage(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	require.NoError(t, file.Create(path, size))
	return path
}

// loopDevice attaches a new sparse image of size bytes to a loop device
// with the given logical sector size and returns the device's path.
func loopDevice(t testing.TB, size int64, sectorSize int) string {
	t.Helper()
	testenv.NeedLoop(t)
	return testenv.LoopDevice(t, newImage(t, size), sectorSize)
}

// fileHarness runs the conformance suite on stores on hw/file devices:
// fresh makes a new device (an image file or a loop device) and returns its
// path, which is opened with opts; if wantSS is not zero the device must
// present that sector size. Reopen closes the store (which closes the
// device) and opens the same path again. Check runs checkStore with the
// device read through an *os.File by archive/tar.
func fileHarness(fresh func(t *testing.T) string, opts file.Options, wantSS int) kvtest.Harness {
	return deviceHarness(fresh, func(t *testing.T, path string) (hw.Block, error) {
		return file.Open(path, opts)
	}, wantSS)
}

// deviceHarness is fileHarness with any driver: openDev opens the device
// whose storage is the image file at path.
func deviceHarness(fresh func(t *testing.T) string, openDev func(t *testing.T, path string) (hw.Block, error), wantSS int) kvtest.Harness {
	var mu sync.Mutex
	paths := map[kv.RW]string{}
	open := func(t *testing.T, path string, clk clock.PClock, format bool) kv.RW {
		t.Helper()
		dev, err := openDev(t, path)
		require.NoError(t, err)
		if wantSS != 0 {
			require.Equal(t, wantSS, dev.Info().SectorSize, "sector size of %s", path)
		}
		if format {
			if err := Format(dev); err != nil {
				dev.Close()
				require.NoError(t, err, "Format")
			}
		}
		// No end-of-test check (checkWhenDone cannot read a closed hw/file
		// device): the harness's Check runs on every subtest's open store
		// through the file, and memHarness runs the suite with the check.
		s, err := New(clk, dev)
		if err != nil {
			dev.Close()
			require.NoError(t, err, "New")
		}
		mu.Lock()
		paths[s] = path
		mu.Unlock()
		return s
	}
	pathOf := func(s kv.RW) string {
		mu.Lock()
		defer mu.Unlock()
		return paths[s]
	}
	return kvtest.Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW {
			return open(t, fresh(t), clk, true)
		},
		Reopen: func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW {
			path := pathOf(s)
			require.NoError(t, s.Close())
			return open(t, path, clk, false)
		},
		MtimeResolution: time.Second,
		LargeSize:       8 << 20,
		Check: func(t *testing.T, s kv.RW) {
			f, err := os.Open(pathOf(s))
			require.NoError(t, err)
			defer f.Close()
			checkStore(t, s.(*Store), f)
		},
	}
}
