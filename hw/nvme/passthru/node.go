package passthru

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// node is the name of a namespace node: nvme<ctrl>n<nsid> (the block
// device) or ng<ctrl>n<nsid> (the generic character device, which exists
// also for namespaces the block layer cannot use). For a namespace
// without multipath, ctrl is the controller's instance; for the shared
// namespace head of native multipath (CONFIG_NVME_MULTIPATH), it is the
// subsystem's, which need not be a controller's number.
type node struct {
	ctrl, nsid int
}

// parseNode parses the base name of a namespace node. Partitions
// (nvme0n1p1) and the hidden per-path nodes of multipath (nvme0c0n1)
// do not parse.
func parseNode(name string) (node, bool) {
	rest, ok := strings.CutPrefix(name, "nvme")
	if !ok {
		if rest, ok = strings.CutPrefix(name, "ng"); !ok {
			return node{}, false
		}
	}
	c, n, ok := strings.Cut(rest, "n")
	if !ok {
		return node{}, false
	}
	ctrl, err1 := number(c)
	nsid, err2 := number(n)
	if err1 != nil || err2 != nil || nsid == 0 {
		return node{}, false
	}
	return node{ctrl, nsid}, true
}

// number parses a decimal number of digits only.
func number(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

func (n node) block() string      { return fmt.Sprintf("nvme%dn%d", n.ctrl, n.nsid) }
func (n node) char() string       { return fmt.Sprintf("ng%dn%d", n.ctrl, n.nsid) }
func (n node) controller() string { return fmt.Sprintf("nvme%d", n.ctrl) }

// controllerName returns the name of the controller node (nvme<N>) that
// serves namespace n. sysfs knows it: the device link of
// class/block/nvmeXnY (or class/nvme-generic/ngXnY) leads to the
// controller, or, for a multipath head, to its subsystem, whose nvme<N>
// entries are its controllers (the first live one is taken). Without
// sysfs, the name says it: nvme<X> for nvmeXnY and ngXnY.
func controllerName(sysfs string, n node) string {
	for _, link := range []string{
		filepath.Join(sysfs, "class", "block", n.block(), "device"),
		filepath.Join(sysfs, "class", "nvme-generic", n.char(), "device"),
	} {
		dir, err := filepath.EvalSymlinks(link)
		if err != nil {
			continue
		}
		base := filepath.Base(dir)
		if isController(base) {
			return base
		}
		if strings.HasPrefix(base, "nvme-subsys") {
			if name := subsystemController(dir); name != "" {
				return name
			}
		}
	}
	return n.controller()
}

// isController reports whether name is a controller's: nvme<N>.
func isController(name string) bool {
	rest, ok := strings.CutPrefix(name, "nvme")
	_, err := number(rest)
	return ok && err == nil
}

// subsystemController returns the first controller of the subsystem at
// dir whose state is "live", else its first controller, else "".
func subsystemController(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var names []string
	for _, e := range entries {
		if isController(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		x, _ := number(a[len("nvme"):])
		y, _ := number(b[len("nvme"):])
		return cmp.Compare(x, y)
	})
	for _, name := range names {
		state, err := os.ReadFile(filepath.Join(dir, name, "state"))
		if err == nil && strings.TrimSpace(string(state)) == "live" {
			return name
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return ""
}

// kernelLimit returns the most data the kernel maps for one command of
// namespace n (queue/max_hw_sectors_kb of its block device, in bytes), or
// 0 when sysfs does not say.
func kernelLimit(sysfs string, n node) int {
	b, err := os.ReadFile(filepath.Join(sysfs, "class", "block", n.block(), "queue", "max_hw_sectors_kb"))
	if err != nil {
		return 0
	}
	kb, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || kb <= 0 {
		return 0
	}
	return kb << 10
}
