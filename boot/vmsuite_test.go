package boot_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/boot"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwtest"
)

// TestVMDriverSuite runs the hw driver conformance suite (hw/hwtest) on
// the userspace drivers inside a VM, against QEMU's own devices. The same
// test has two roles:
//
//   - On the host it builds this package's test binary (static), makes it
//     the /init of an initramfs with the appliance's modules, and boots it
//     twice: with huge-page DMA memory (a virtio-blk disk, an NVMe disk
//     with 512-byte and one with 4096-byte LBAs), plus an NVMe disk the
//     kernel's driver keeps, through the passthrough ioctls; and through
//     VFIO behind the emulated Intel IOMMU (virtio-blk and NVMe). It passes when the
//     VM reports that its run passed.
//   - As the VM's PID 1 (inVM), after boot's own steps prepared the
//     machine and kept the kernel's drivers off the disks, it runs
//     hwtest.TestDevice on every device of tarstore.vmtest=KIND:SPEC,...
//     and powers off.
func TestVMDriverSuite(t *testing.T) {
	if os.Getpid() == 1 {
		runSuiteInVM(t)
		return
	}
	initrd := vmSuiteImage(t)
	nvme4k := func(id, addr string) []string {
		return []string{"-device", "nvme,id=" + id + ",serial=" + id + ",addr=" + addr,
			"-device", "nvme-ns,drive=" + id + ",logical_block_size=4096,physical_block_size=4096"}
	}
	for _, c := range []struct {
		name   string
		args   []string // for scripts/qemu/run
		claim  []string
		suites []string
		disks  func(t *testing.T) []string // QEMU arguments for the extra disks
	}{
		{
			name:  "hugepages",
			args:  []string{"--driver", "userspace", "--machine", "pc"},
			claim: []string{"pci:0000:00:07.0", "pci:0000:00:08.0"},
			// 09.0 stays with the kernel's nvme driver: /dev/nvme0n1,
			// through the passthrough ioctls.
			suites: []string{"virtio:pci:0000:00:06.0", "nvme:pci:0000:00:07.0", "nvme:pci:0000:00:08.0",
				"nvme:passthru:/dev/nvme0n1"},
			disks: func(t *testing.T) []string {
				d := append(extraDrive(t, "n512"), "-device", "nvme,drive=n512,serial=n512,addr=0x7")
				d = append(append(d, extraDrive(t, "n4k")...), nvme4k("n4k", "0x8")...)
				return append(append(d, extraDrive(t, "nk")...), "-device", "nvme,drive=nk,serial=nk,addr=0x9")
			},
		},
		{
			name:   "vfio",
			args:   []string{"--driver", "userspace", "--iommu"},
			claim:  []string{"vfio:0000:00:07.0"},
			suites: []string{"virtio:vfio:0000:00:06.0", "nvme:vfio:0000:00:07.0"},
			disks: func(t *testing.T) []string {
				return append(extraDrive(t, "n512"), "-device", "nvme,drive=n512,serial=n512,addr=0x7")
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"--mem", "256M",
				"--append", "tarstore.claim=" + strings.Join(c.claim, ",") + " tarstore.vmtest=" + strings.Join(c.suites, ",")}, c.args...),
				"--")
			args = append(args, c.disks(t)...)
			v := startVMWith(t, t.TempDir(), suiteDisk(t), initrd, args...)
			require.NoError(t, v.wait(10*time.Minute), "the driver suite's VM")
			out := v.console.String()
			for _, s := range c.suites {
				require.Contains(t, out, "--- PASS: TestVMDriverSuite/"+s, "the suite on %s", s)
			}
			require.Contains(t, out, "tarstore-vmtest: exit 0")
			if c.name == "hugepages" {
				require.Contains(t, out, "tarstore-vmtest: nvme:pci:0000:00:08.0: {SectorSize:4096 ", "the 4096-byte LBA format")
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "--- PASS: TestVMDriverSuite/") && strings.Count(line, "/") == 1 ||
					strings.HasPrefix(line, "tarstore-vmtest: ") {
					t.Log(strings.TrimSpace(line))
				}
			}
		})
	}
}

// suiteDisk is the scripts' main disk, a 32 MiB image (the suite's first
// device).
func suiteDisk(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "main.img")
	require.NoError(t, os.WriteFile(p, make([]byte, 32<<20), 0o644))
	return p
}

// extraDrive returns QEMU's -drive arguments for a fresh 32 MiB image
// with the given id.
func extraDrive(t *testing.T, id string) []string {
	p := filepath.Join(t.TempDir(), id+".img")
	require.NoError(t, os.WriteFile(p, make([]byte, 32<<20), 0o644))
	return []string{"-drive", "file=" + p + ",format=raw,if=none,id=" + id + ",cache=writeback"}
}

// vmSuiteImage builds this package's test binary, static, and an
// initramfs with it as /init.
func vmSuiteImage(t *testing.T) string {
	img, err := prebuilt()
	require.NoError(t, err)
	dir := t.TempDir()
	bin := filepath.Join(dir, "boot.test")
	build := exec.Command("go", "test", "-c", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go test -c: %s", out)
	initrd := filepath.Join(dir, "vmtest.gz")
	tarstore := filepath.Join(filepath.Dir(img), "tarstore")
	out, err = exec.Command(tarstore, "image", "--init", bin, "--out", initrd).CombinedOutput()
	require.NoError(t, err, "tarstore image: %s", out)
	return initrd
}

// inVM runs as the VM's PID 1: boot's steps up to the modules, then only
// TestVMDriverSuite, then power off. It does not return.
func inVM(m *testing.M) {
	b := &boot.Booter{Console: os.Stdout}
	var steps []boot.Step
	for _, st := range boot.Steps {
		switch st.Name {
		case "mount /proc", "probe", "mount /sys", "mount /dev", "mount /tmp and /run", "claim devices", "load modules":
			steps = append(steps, st)
		}
	}
	code := 1
	if err := b.Run(steps); err != nil {
		fmt.Printf("tarstore-vmtest: boot: %v\n", err)
	} else {
		os.Args = []string{os.Args[0], "-test.run=^TestVMDriverSuite$", "-test.v", "-test.timeout=8m"}
		code = m.Run()
	}
	fmt.Printf("tarstore-vmtest: exit %d\n", code)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

// runSuiteInVM runs hwtest on each device of tarstore.vmtest=.
func runSuiteInVM(t *testing.T) {
	cmdline, err := os.ReadFile("/proc/cmdline")
	require.NoError(t, err)
	list := config.ParseCmdline(string(cmdline))["tarstore.vmtest"]
	require.NotEmpty(t, list, "tarstore.vmtest= on the kernel command line")
	for _, entry := range strings.Split(list, ",") {
		t.Run(entry, func(t *testing.T) {
			open := func(t *testing.T) hw.Block {
				dev, err := boot.OpenEntry(entry, false)
				require.NoError(t, err)
				return dev
			}
			dev := open(t)
			fmt.Printf("tarstore-vmtest: %s: %+v\n", entry, dev.Info())
			require.NoError(t, dev.Close())
			hwtest.TestDevice(t, hwtest.Harness{
				Open:   open,
				Reopen: func(t *testing.T, _ hw.Block) hw.Block { return open(t) },
			})
		})
	}
}
