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
		dev, err := OpenEntry(entry, true)
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
	return errDone
}

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
