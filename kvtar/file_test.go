//go:build linux

package kvtar

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/internal/testenv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// The conformance suite on real devices through hw/file (STYLE 12): an image
// file at its detected sector size, the same kind of image presented as a
// 4096-byte-sector disk, and a loop device with 4096-byte logical sectors
// doing direct I/O to its backing file. Each subtest gets a fresh 256 MiB
// sparse image (or loop device) under $TMPDIR; Reopen closes the store and
// opens the path again. The three run in parallel: they mostly wait for
// the disk.

const conformanceImageSize = 256 << 20

func TestConformanceFile(t *testing.T) {
	t.Parallel()
	d, err := file.Open(newImage(t, conformanceImageSize), file.Options{})
	require.NoError(t, err)
	t.Logf("detected sector size: %d", d.Info().SectorSize)
	require.NoError(t, d.Close())
	kvtest.TestRW(t, fileHarness(func(t *testing.T) string {
		return newImage(t, conformanceImageSize)
	}, file.Options{}, 0))
}

func TestConformanceFile4096(t *testing.T) {
	t.Parallel()
	kvtest.TestRW(t, fileHarness(func(t *testing.T) string {
		return newImage(t, conformanceImageSize)
	}, file.Options{SectorSize: 4096}, 4096))
}

func TestConformanceLoop4096(t *testing.T) {
	t.Parallel()
	testenv.NeedLoop(t)
	kvtest.TestRW(t, fileHarness(func(t *testing.T) string {
		return loopDevice(t, conformanceImageSize, 4096)
	}, file.Options{}, 4096))
}
