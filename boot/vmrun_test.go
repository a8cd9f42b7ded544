package boot_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// rtcBase is the date the VMs' hardware clock starts from (-rtc base=):
// values written in a VM carry it, not the host's time.
var rtcBase = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// TestVMServes boots the appliance with its disk as virtio-blk and as
// NVMe, runs kvtest's model-based stress test through the HTTP API from the
// host (4 writers, 2 readers; Reopen is a graceful shutdown and a new boot
// on the same image), checks that a value's last-modified time comes from
// the VM's RTC, shuts down, and reads the image on the host: kvtar's check,
// GNU tar, bsdtar and archive/tar, GNU tar's extraction equal to the store.
func TestVMServes(t *testing.T) {
	for _, bus := range []string{"virtio", "nvme"} {
		t.Run(bus, func(t *testing.T) {
			state := t.TempDir()
			img := newImage(t, 64<<20)
			var v *vm
			boot := func() *vm {
				v = bootVM(t, state, img, "--disk-bus", bus, "--mem", "128M", "--rtc", rtcBase.Format("2006-01-02T15:04:05"))
				t.Logf("%s: boot to serving (QEMU start to /healthz): %v", bus, v.booted.Round(10*time.Millisecond))
				return v
			}
			kvtest.StressSeeds(t, 1, func(t *testing.T, seed uint64) {
				kvtest.Stress(t, kvtest.StressConfig{
					Open: func(testing.TB) kv.RW { return boot().client() },
					Reopen: func(_ testing.TB, s kv.RW) kv.RW {
						require.NoError(t, s.Close())
						v.stop()
						return boot().client()
					},
					Writers: 4,
					Ops:     60,
					Seed:    seed,
				})
			})
			c := v.client()
			k := kv.MustKey("/rtc")
			require.NoError(t, c.Set(k, []byte("when?")))
			mt, err := c.LastModified(k)
			require.NoError(t, err)
			require.WithinRange(t, mt, rtcBase, rtcBase.Add(time.Hour), "the mtime comes from the VM's RTC")
			require.NoError(t, c.Close())
			v.stop()
			checkWithTools(t, img, storeContents(t, img))
		})
	}
}

// TestVMBadConfig: a configuration the appliance cannot serve with ends
// the boot with one console line saying why, and a clean power-off.
func TestVMBadConfig(t *testing.T) {
	garbage := func(t *testing.T) string {
		img := newImage(t, 1<<20)
		b := make([]byte, 1<<20)
		rand.Read(b)
		require.NoError(t, os.WriteFile(img, b, 0o644))
		return img
	}
	for _, c := range []struct {
		name   string
		disk   func(t *testing.T) string
		append string
		want   string
	}{
		{"missing disk", nil, "tarstore.disk=/dev/vdz", "disk: /dev/vdz did not appear"},
		{"bad listen address", nil, "tarstore.listen=nowhere", "serve: "},
		{"unknown driver", nil, "tarstore.virtio=pci:0000:00:09.0", "no driver for it yet"},
		{"bad max-conns", nil, "tarstore.max-conns=many", "tarstore.max-conns"},
		{"not an archive", garbage, "", "serve: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := newImage(t, 8<<20)
			if c.disk != nil {
				img = c.disk(t)
			}
			v := startVM(t, t.TempDir(), img, "--append", c.append)
			require.NoError(t, v.wait(bootTimeout), "the VM powers off by itself")
			out := v.console.String()
			var fatal []string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "tarstore: boot: ") && strings.HasSuffix(strings.TrimSpace(l), "powering off") {
					fatal = append(fatal, l)
				}
			}
			require.Len(t, fatal, 1, "one line says why:\n%s", out)
			require.Contains(t, fatal[0], c.want)
			require.Contains(t, out, "reboot: Power down")
			t.Logf("%s: %s", c.name, strings.TrimSpace(fatal[0]))
		})
	}
}

// TestVMForeignArchive: an archive GNU tar made on the host, attached as
// the disk, is served by the VM.
func TestVMForeignArchive(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(dir+"/src/docs", 0o755))
	require.NoError(t, os.WriteFile(dir+"/src/docs/readme.txt", []byte("made by GNU tar\n"), 0o644))
	big := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	require.NoError(t, os.WriteFile(dir+"/src/big.bin", big, 0o644))
	img := dir + "/foreign.tar"
	out, err := runCmd("tar", "-C", dir+"/src", "-cf", img, "docs", "big.bin")
	require.NoError(t, err, out)
	require.NoError(t, os.Truncate(img, 16<<20)) // room for the journal and writes
	v := bootVM(t, t.TempDir(), img)
	c := v.client()
	got, err := c.Get(kv.MustKey("/docs/readme.txt"))
	require.NoError(t, err)
	require.Equal(t, "made by GNU tar\n", string(got))
	got, err = c.Get(kv.MustKey("/big.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(big, got))
	require.NoError(t, c.Set(kv.MustKey("/docs/new.txt"), []byte("written in the VM")))
	require.NoError(t, c.Close())
	v.stop()
	want := storeContents(t, img)
	require.Equal(t, "written in the VM", string(want["/docs/new.txt"]))
	checkWithTools(t, img, want)
}
