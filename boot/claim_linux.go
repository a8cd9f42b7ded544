package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Where the claim step finds PCI functions and the huge page pool.
var (
	PCIDevices     = "/sys/bus/pci/devices"
	NrHugepages    = "/proc/sys/vm/nr_hugepages"
	MeminfoPath    = "/proc/meminfo"
	claimHugepages = 8 // 16 MiB: a driver's default slots and rings, with room
	// poolHugepages more (a driver's 16 MiB buffer pool) are reserved on
	// a machine with poolMinMemory or more; on a smaller one the drivers
	// open without a pool and bounce every request.
	poolHugepages = 8
	poolMinMemory = 192 << 20
)

// claim keeps the kernel's drivers off the PCI functions the userspace
// drivers will drive (tarstore.virtio= and tarstore.nvme= with pci:BDF or
// vfio:BDF), before the modules load: a function's driver_override names a
// driver that does not exist (pci:) or vfio-pci (vfio:, which then binds
// it). For pci: it also reserves the 2 MiB huge pages the drivers take
// their DMA memory from, and those of their buffer pools when the machine
// has the memory to spare.
//
// tarstore.claim=pci:BDF[,vfio:BDF...] claims more functions the same way,
// for tests that drive several devices.
func (b *Booter) claim() error {
	p := b.params()
	for _, key := range []string{"tarstore.virtio", "tarstore.nvme"} {
		if err := b.claimOne(key, p[key]); err != nil {
			return err
		}
	}
	if more := p["tarstore.claim"]; more != "" {
		for _, spec := range strings.Split(more, ",") {
			if err := b.claimOne("tarstore.claim", spec); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Booter) claimOne(key, spec string) error {
	kind, addr, ok := strings.Cut(spec, ":")
	if !ok || (kind != "pci" && kind != "vfio") {
		return nil
	}
	if strings.Count(addr, ":") == 1 {
		addr = "0000:" + addr // bus:device.function in domain 0
	}
	override := "tarstore-userspace"
	if kind == "vfio" {
		override = "vfio-pci"
	}
	dir := filepath.Join(PCIDevices, addr)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s=%s: no such PCI function (is the disk attached at that address?): %w", key, spec, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "driver_override"), []byte(override), 0); err != nil {
		return err
	}
	if kind == "pci" {
		pages := claimHugepages
		if kB, err := meminfo("MemTotal"); err == nil && kB<<10 >= poolMinMemory {
			pages += poolHugepages
		}
		if err := reserveHugepages(pages); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.Console, "tarstore: PCI function %s kept for the userspace driver (driver_override %s)\n", addr, override)
	return nil
}

// reserveHugepages makes the pool hold at least n free 2 MiB pages.
func reserveHugepages(n int) error {
	free, err := meminfo("HugePages_Free")
	if err != nil || free >= n {
		return err
	}
	cur, err := os.ReadFile(NrHugepages)
	if err != nil {
		return err
	}
	total, err := strconv.Atoi(strings.TrimSpace(string(cur)))
	if err != nil {
		return fmt.Errorf("%s: %w", NrHugepages, err)
	}
	if err := os.WriteFile(NrHugepages, []byte(strconv.Itoa(total+n-free)), 0); err != nil {
		return err
	}
	if free, err = meminfo("HugePages_Free"); err == nil && free < n {
		err = fmt.Errorf("only %d free 2 MiB huge pages after asking for %d (give the VM more memory)", free, n)
	}
	return err
}

// meminfo returns a count field of /proc/meminfo.
func meminfo(field string) (int, error) {
	b, err := os.ReadFile(MeminfoPath)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, fmt.Errorf("%s: no %s", MeminfoPath, field)
}
