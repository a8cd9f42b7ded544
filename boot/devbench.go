package boot

import (
	"fmt"
	"strings"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/hw/hwbench"
)

// devbench compares the devices of tarstore.devbench=SPEC[,SPEC...] — /dev
// nodes through hw/file (O_DIRECT), pci:BDF and vfio:BDF through the
// userspace virtio-blk driver — with 4 KiB random reads at queue depths 1
// and 32 (package hwbench, interleaved rounds, ratios to the first device),
// prints one console line per figure, and ends the boot: the machine
// powers off without serving. Without the parameter it does nothing.
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
	for _, spec := range strings.Split(list, ",") {
		cfg := config.Config{Virtio: spec}
		if strings.HasPrefix(spec, "/") {
			if waitFor(DiskWait, spec) == "" {
				return fmt.Errorf("%s did not appear within %v", spec, DiskWait)
			}
			cfg = config.Config{Disk: spec}
		}
		dev, err := appliance.OpenDevice(cfg, true)
		if err != nil {
			return err
		}
		devs = append(devs, hwbench.Device{Name: spec, Dev: dev})
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
