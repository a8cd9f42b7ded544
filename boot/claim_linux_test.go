package boot

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClaimRoot points the claim step at a fake sysfs function and
// /proc files in a temporary directory.
func fakeClaimRoot(t *testing.T, hugeFree int) (fn string) {
	dir := t.TempDir()
	old := [3]string{PCIDevices, NrHugepages, MeminfoPath}
	t.Cleanup(func() { PCIDevices, NrHugepages, MeminfoPath = old[0], old[1], old[2] })
	PCIDevices = filepath.Join(dir, "devices")
	NrHugepages = filepath.Join(dir, "nr_hugepages")
	MeminfoPath = filepath.Join(dir, "meminfo")
	fn = filepath.Join(PCIDevices, "0000:00:06.0")
	require.NoError(t, os.MkdirAll(fn, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(fn, "driver_override"), []byte("(null)\n"), 0o644))
	require.NoError(t, os.WriteFile(NrHugepages, []byte("2\n"), 0o644))
	writeMeminfo(t, hugeFree)
	return fn
}

func writeMeminfo(t *testing.T, free int) {
	writeMeminfoTotal(t, 131072, free)
}

func writeMeminfoTotal(t *testing.T, totalKB, free int) {
	require.NoError(t, os.WriteFile(MeminfoPath, fmt.Appendf(nil, "MemTotal:  %d kB\nHugePages_Total:  2\nHugePages_Free:  %d\nHugepagesize: 2048 kB\n", totalKB, free), 0o644))
}

func TestClaim(t *testing.T) {
	for _, c := range []struct {
		cmdline, override, pages string
	}{
		{"tarstore.virtio=pci:0000:00:06.0", "tarstore-userspace", "8"},
		{"tarstore.virtio=pci:00:06.0", "tarstore-userspace", "8"},
		{"tarstore.virtio=vfio:0000:00:06.0", "vfio-pci", "2\n"},
	} {
		t.Run(c.cmdline, func(t *testing.T) {
			fn := fakeClaimRoot(t, 2)
			var console bytes.Buffer
			b := &Booter{Console: &console, Cmdline: c.cmdline}
			err := b.claim()
			if c.override == "tarstore-userspace" {
				// Asked for 8 - 2 = 6 more on top of 2, but the fake
				// pool still shows 2 free.
				require.ErrorContains(t, err, "only 2 free 2 MiB huge pages after asking for 8")
			} else {
				require.NoError(t, err)
			}
			got, _ := os.ReadFile(filepath.Join(fn, "driver_override"))
			assert.Equal(t, c.override, string(got))
			pages, _ := os.ReadFile(NrHugepages)
			assert.Equal(t, c.pages, string(pages))
		})
	}
	t.Run("enough pages", func(t *testing.T) {
		fakeClaimRoot(t, 8)
		var console bytes.Buffer
		require.NoError(t, (&Booter{Console: &console, Cmdline: "tarstore.virtio=pci:0000:00:06.0"}).claim())
		pages, _ := os.ReadFile(NrHugepages)
		assert.Equal(t, "2\n", string(pages), "nothing to reserve")
		assert.Contains(t, console.String(), "PCI function 0000:00:06.0 kept for the userspace driver")
	})
	t.Run("pool pages with memory to spare", func(t *testing.T) {
		fakeClaimRoot(t, 8)
		writeMeminfoTotal(t, 256<<10, 8)
		err := (&Booter{Console: &bytes.Buffer{}, Cmdline: "tarstore.virtio=pci:0000:00:06.0"}).claim()
		// Asked for 16 - 8 = 8 more on top of 2; the fake pool still
		// shows 8 free.
		require.ErrorContains(t, err, "only 8 free 2 MiB huge pages after asking for 16")
		pages, _ := os.ReadFile(NrHugepages)
		assert.Equal(t, "10", string(pages))
	})
	t.Run("not ours", func(t *testing.T) {
		fn := fakeClaimRoot(t, 0)
		for _, cmdline := range []string{"", "tarstore.disk=/dev/vda", "tarstore.virtio=vhost-user:/run/x.sock"} {
			require.NoError(t, (&Booter{Console: &bytes.Buffer{}, Cmdline: cmdline}).claim(), cmdline)
		}
		got, _ := os.ReadFile(filepath.Join(fn, "driver_override"))
		assert.Equal(t, "(null)\n", string(got))
	})
	t.Run("no such function", func(t *testing.T) {
		fakeClaimRoot(t, 8)
		err := (&Booter{Console: &bytes.Buffer{}, Cmdline: "tarstore.virtio=pci:0000:00:09.0"}).claim()
		require.ErrorContains(t, err, "no such PCI function")
	})
}
