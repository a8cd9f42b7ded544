package boot

import (
	"fmt"
	"strings"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwbench"
)

// devbench compares the devices of tarstore.devbench=KIND:SPEC[,...] —
// disk:/dev/NODE through hw/file (O_DIRECT), virtio:pci:BDF or
// virtio:vfio:BDF through the userspace virtio-blk driver, nvme:pci:BDF or
// nvme:vfio:BDF through the userspace NVMe driver — with 4 KiB random
// reads at queue depths 1 and 32 (package hwbench, interleaved rounds,
// ratios to the first device), prints one console line per figure, and
// ends the boot: the machine powers off without serving. Without the
// parameter it does nothing.
//
// A device with a buffer pool (hw.Releaser: the userspace drivers) is
// also measured against itself without it, for 1 MiB sequential reads and
// writes at queue depth 1 ("zero-copy" with buffers from the pool, which
// the driver hands to the device in place, vs "bounce" with ordinary
// memory, which it copies through its own DMA memory). The writes
// overwrite the device's first 16 MiB: the userspace drivers' devices are
// opened writable, and must be scratch disks; the others read-only.
func (b *Booter) devbench() error {
	list := b.params()["tarstore.devbench"]
	if list == "" {
		return nil
	}
	var devs []hwbench.Device
	defer func() {
		for _, d := range devs {
			d.Dev.Close()
		}
	}()
	for _, entry := range strings.Split(list, ",") {
		kind, spec, _ := strings.Cut(entry, ":")
		userspace := (kind == "virtio" || kind == "nvme") && !strings.HasPrefix(spec, "passthru:")
		dev, err := OpenEntry(entry, !userspace)
		if err != nil {
			return fmt.Errorf("tarstore.devbench: %w", err)
		}
		devs = append(devs, hwbench.Device{Name: entry, Dev: dev})
	}
	for _, qd := range []int{1, 32} {
		figs, err := hwbench.Compare(devs, hwbench.Config{QD: qd, Ops: 500 * min(qd, 4), Rounds: 5, Seed: 1})
		if err != nil {
			return err
		}
		for _, f := range figs {
			fmt.Fprintf(b.Console, "tarstore: devbench qd%d 4KiB random read: %v\n", qd, f)
		}
	}
	for _, d := range devs {
		if _, ok := d.Dev.(hw.Releaser); !ok {
			continue
		}
		pair := []hwbench.Device{{Name: d.Name + " zero-copy", Dev: d.Dev}, {Name: d.Name + " bounce", Dev: unpooled{d.Dev}}}
		for _, write := range []bool{false, true} {
			figs, err := hwbench.Compare(pair, hwbench.Config{Size: 1 << 20, Ops: 16, Rounds: 5, Span: 16 << 20, Sequential: true, Write: write})
			if err != nil {
				return err
			}
			what := "read"
			if write {
				what = "write"
			}
			for _, f := range figs {
				fmt.Fprintf(b.Console, "tarstore: devbench qd1 1MiB sequential %s: %v\n", what, f)
			}
		}
	}
	return errDone
}

// unpooled is a device without its buffer pool: hw.AllocBuffer gives
// ordinary memory for it, which its driver bounces.
type unpooled struct{ hw.Block }

// OpenEntry opens the device a KIND:SPEC entry names, as the appliance
// would: disk:/dev/NODE through hw/file, virtio:SPEC and nvme:SPEC through
// tarstore's drivers (a /dev node is waited for up to DiskWait).
func OpenEntry(entry string, readOnly bool) (hw.Block, error) {
	kind, spec, _ := strings.Cut(entry, ":")
	var cfg config.Config
	switch kind {
	case "disk":
		if waitFor(DiskWait, spec) == "" {
			return nil, fmt.Errorf("%s did not appear within %v", spec, DiskWait)
		}
		cfg.Disk = spec
	case "virtio":
		cfg.Virtio = spec
	case "nvme":
		cfg.NVMe = spec
		if node, ok := strings.CutPrefix(spec, "passthru:"); ok && waitFor(DiskWait, node) == "" {
			return nil, fmt.Errorf("%s did not appear within %v", node, DiskWait)
		}
	default:
		return nil, fmt.Errorf("%q: want disk:/dev/NODE, virtio:SPEC or nvme:SPEC", entry)
	}
	return appliance.OpenDevice(cfg, readOnly)
}
