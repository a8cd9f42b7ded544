package boot_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/internal/qsd"
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
	for _, c := range []struct {
		name, bus, driver, machine string
		more                       []string
	}{
		{"virtio", "virtio", "kernel", "q35", nil},
		{"nvme", "nvme", "kernel", "q35", nil},
		// The appliance's own virtio-blk driver on the modern virtio-pci
		// function, DMA memory from huge pages (no IOMMU, i440FX)...
		{"virtio-userspace", "virtio", "userspace", "pc", nil},
		// ...and through VFIO behind QEMU's emulated Intel IOMMU.
		{"virtio-vfio", "virtio", "userspace", "q35", []string{"--iommu"}},
		// The appliance's own NVMe driver, both ways.
		{"nvme-userspace", "nvme", "userspace", "pc", nil},
		{"nvme-vfio", "nvme", "userspace", "q35", []string{"--iommu"}},
		// Its NVMe commands through the kernel's driver.
		{"nvme-passthru", "nvme", "kernel", "q35", []string{"--append", "tarstore.nvme=passthru:/dev/nvme0n1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			state := t.TempDir()
			img := newImage(t, 64<<20)
			var v *vm
			boot := func() *vm {
				v = bootVM(t, state, img, append([]string{"--disk-bus", c.bus, "--driver", c.driver, "--machine", c.machine,
					"--mem", "256M", "--rtc", rtcBase.Format("2006-01-02T15:04:05")}, c.more...)...)
				t.Logf("%s: boot to serving (QEMU start to /healthz): %v", c.name, v.booted.Round(10*time.Millisecond))
				if c.driver == "userspace" {
					spec := "pci:0000:00:06.0"
					if c.more != nil {
						spec = "vfio:0000:00:06.0"
					}
					require.Contains(t, v.console.String(), "tarstore: serving "+c.bus+" "+spec)
				}
				if c.name == "nvme-passthru" {
					require.Contains(t, v.console.String(), "tarstore: serving nvme passthru:/dev/nvme0n1")
				}
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
		{"bad device spec", nil, "tarstore.nvme=0000:00:09.0", "bad device spec"},
		{"no such PCI function", nil, "tarstore.virtio=pci:0000:00:09.0", "claim devices: tarstore.virtio=pci:0000:00:09.0: no such PCI function"},
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
// the disk, is served by the VM; Ctrl-Alt-Del shuts it down gracefully.
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
	// Ctrl-Alt-Del (what scripts/qemu/stop falls back to): SIGINT to PID
	// 1, the same graceful shutdown as the API's.
	v.monitor("sendkey ctrl-alt-delete")
	require.NoError(t, v.wait(time.Minute), "the VM powers off after Ctrl-Alt-Del")
	require.Contains(t, v.console.String(), "tarstore: shutdown requested by a signal")
	require.Contains(t, v.console.String(), "tarstore: powering off")
	want := storeContents(t, img)
	require.Equal(t, "written in the VM", string(want["/docs/new.txt"]))
	checkWithTools(t, img, want)
}

// TestVMPowerCut cuts the power of the appliance (SIGKILL to QEMU, whose
// disk is opened with O_DIRECT: what the guest flushed is in the image)
// while 4 clients write through HTTP, boots it again on the same image,
// and checks with kvtest's models that every acknowledged write is there
// and each write in flight is there whole or not at all; then the archive
// is sound. Three cycles on a 16 MiB image, each starting by removing
// everything, so that freed space is reused.
func TestVMPowerCut(t *testing.T) {
	state := t.TempDir()
	img := newImage(t, 16<<20)
	var v *vm
	kvtest.StressSeeds(t, 3, func(t *testing.T, seed uint64) {
		kvtest.Stress(t, kvtest.StressConfig{
			Open: func(testing.TB) kv.RW {
				v = bootVM(t, state, img)
				c := v.client()
				require.NoError(t, c.Remove(kv.Root))
				cut, victim := time.Duration(2000+seed*7919%6000)*time.Millisecond, v
				time.AfterFunc(cut, func() { t.Logf("power cut after %v", cut); victim.kill() })
				return c
			},
			Reopen: func(_ testing.TB, s kv.RW) kv.RW {
				s.Close()
				require.NotErrorIs(t, v.wait(time.Minute), errRunning, "the VM is off")
				v = bootVM(t, state, img)
				return v.client()
			},
			InDoubt:  func(err error) bool { return errors.Is(err, kv.ErrStorage) },
			Writers:  4,
			Duration: time.Minute, // until the power cut
			Seed:     seed,
		})
		v.stop()
		checkWithTools(t, img, storeContents(t, img))
	})
}

// TestVMOverNBD serves a disk that qemu-storage-daemon exports over NBD on
// the host: the appliance's disk is nbd://127.0.0.1:PORT/disk, which QEMU
// attaches itself (scripts/qemu/run passes it through). kvtest's stress
// test runs through HTTP, with a reboot; then the image is checked.
func TestVMOverNBD(t *testing.T) {
	if _, err := exec.LookPath("qemu-storage-daemon"); err != nil {
		t.Fatalf("qemu-storage-daemon is required (apt-get install qemu-system-common): %v", err)
	}
	img := newImage(t, 64<<20)
	port := freePort(t)
	daemon := exec.Command("qemu-storage-daemon",
		"--blockdev", "driver=file,node-name=file0,filename="+img,
		"--blockdev", "driver=raw,node-name=disk0,file=file0",
		"--nbd-server", fmt.Sprintf("addr.type=inet,addr.host=127.0.0.1,addr.port=%d", port),
		"--export", "type=nbd,id=exp0,node-name=disk0,name=disk,writable=on")
	var out lines
	out.start, out.seen = time.Now(), map[string]time.Duration{}
	daemon.Stdout, daemon.Stderr = &out, &out
	require.NoError(t, daemon.Start())
	t.Cleanup(func() {
		daemon.Process.Signal(os.Interrupt)
		daemon.Wait()
		if t.Failed() {
			t.Logf("qemu-storage-daemon:\n%s", out.String())
		}
	})
	url := fmt.Sprintf("nbd://127.0.0.1:%d/disk", port)
	state := t.TempDir()
	kvtest.StressSeeds(t, 1, func(t *testing.T, seed uint64) {
		var v *vm
		kvtest.Stress(t, kvtest.StressConfig{
			Open: func(testing.TB) kv.RW { v = bootVM(t, state, url); return v.client() },
			Reopen: func(_ testing.TB, s kv.RW) kv.RW {
				require.NoError(t, s.Close())
				v.stop()
				v = bootVM(t, state, url)
				return v.client()
			},
			Writers: 4,
			Ops:     40,
			Seed:    seed,
		})
		v.stop()
	})
	daemon.Process.Signal(os.Interrupt)
	daemon.Wait()
	checkWithTools(t, img, storeContents(t, img))
}

// TestVMDeviceBench boots with two disks of the same kind on the same host
// file system — one driven by the kernel's driver (read with O_DIRECT),
// one by the appliance's own (at 00:06.0, DMA memory from huge pages) —
// for virtio-blk and for NVMe, and runs the device benchmark step on both,
// with one and with two virtual CPUs (under TCG the second CPU competes
// with QEMU's I/O thread for the host's cores, which changes the picture),
// and 1 MiB sequential reads and writes on the appliance's driver with
// buffers from its pool (zero-copy) and without (bounce).
// It checks that every figure is reported; the figures are logged (the
// comparison the issue notes quote), not asserted.
func TestVMDeviceBench(t *testing.T) {
	dir := t.TempDir()
	imgs := make([]string, 2)
	for i := range imgs {
		imgs[i] = filepath.Join(dir, fmt.Sprintf("bench%d.img", i))
		b := make([]byte, 64<<20)
		rand.Read(b)
		require.NoError(t, os.WriteFile(imgs[i], b, 0o644))
	}
	cache := "none"
	if !qsd.DirectIOWorks(imgs[1]) {
		cache = "writeback"
	}
	for _, c := range []struct {
		bus, kernel, device, param string
	}{
		{"virtio", "/dev/vda", "virtio-blk-pci,drive=disk1,disable-legacy=on,addr=0x6", "tarstore.virtio"},
		{"nvme", "/dev/nvme0n1", "nvme,drive=disk1,serial=bench1,addr=0x6", "tarstore.nvme"},
	} {
		for _, smp := range []string{"1", "2"} {
			t.Run(c.bus+"/smp"+smp, func(t *testing.T) {
				devs := []string{"disk:" + c.kernel, c.bus + ":pci:0000:00:06.0"}
				if c.bus == "nvme" { // and the same commands through the kernel's driver
					devs = append(devs, "nvme:passthru:"+c.kernel)
				}
				v := startVM(t, t.TempDir(), imgs[0], "--disk-bus", c.bus, "--mem", "256M", "--smp", smp,
					"--append", c.param+"=pci:0000:00:06.0 tarstore.devbench="+strings.Join(devs, ","),
					"--", "-drive", "file="+imgs[1]+",format=raw,if=none,id=disk1,cache="+cache, "-device", c.device)
				require.NoError(t, v.wait(3*time.Minute), "the benchmark boot")
				out := v.console.String()
				require.Contains(t, out, "tarstore: powering off")
				for _, qd := range []string{"qd1", "qd32"} {
					for _, dev := range devs {
						require.Contains(t, out, "tarstore: devbench "+qd+" 4KiB random read: "+dev+" ")
					}
				}
				for _, what := range []string{"read", "write"} {
					for _, how := range []string{"zero-copy", "bounce"} {
						require.Contains(t, out, "tarstore: devbench qd1 1MiB sequential "+what+": "+devs[1]+" "+how+" ")
					}
				}
				for _, line := range strings.Split(out, "\n") {
					if strings.Contains(line, "devbench") {
						t.Logf("smp %s: %s", smp, strings.TrimSpace(line))
					}
				}
			})
		}
	}
}
