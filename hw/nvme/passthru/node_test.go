package passthru

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseNode(t *testing.T) {
	for _, c := range []struct {
		name string
		want node
		ok   bool
	}{
		{"nvme0n1", node{0, 1}, true},
		{"ng0n1", node{0, 1}, true},
		{"nvme12n34", node{12, 34}, true},
		{"ng3n2", node{3, 2}, true},
		{"nvme0", node{}, false},
		{"nvme0n1p1", node{}, false},
		{"nvme0c0n1", node{}, false},
		{"ng0c1n1", node{}, false},
		{"nvme0n0", node{}, false},
		{"nvmen1", node{}, false},
		{"nvme0n", node{}, false},
		{"nvme+1n1", node{}, false},
		{"sda", node{}, false},
		{"null", node{}, false},
	} {
		got, ok := parseNode(c.name)
		if got != c.want || ok != c.ok {
			t.Errorf("parseNode(%q) = %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
	n := node{2, 5}
	if n.block() != "nvme2n5" || n.char() != "ng2n5" || n.controller() != "nvme2" {
		t.Errorf("names of %v: %s %s %s", n, n.block(), n.char(), n.controller())
	}
}

// fakeSysfs builds the parts of sysfs the driver reads: device directories
// and class links as relative symbolic links, as the kernel makes them.
type fakeSysfs struct {
	t    *testing.T
	root string
}

func (s fakeSysfs) dir(rel string) {
	if err := os.MkdirAll(filepath.Join(s.root, rel), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

func (s fakeSysfs) link(rel, target string) {
	p := filepath.Join(s.root, rel)
	s.dir(filepath.Dir(rel))
	if err := os.Symlink(target, p); err != nil {
		s.t.Fatal(err)
	}
}

func (s fakeSysfs) file(rel, content string) {
	s.dir(filepath.Dir(rel))
	if err := os.WriteFile(filepath.Join(s.root, rel), []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func TestControllerName(t *testing.T) {
	t.Run("no sysfs: the name", func(t *testing.T) {
		root := t.TempDir()
		if got := controllerName(root, node{3, 1}); got != "nvme3" {
			t.Errorf("got %s, want nvme3", got)
		}
	})
	t.Run("controller", func(t *testing.T) {
		s := fakeSysfs{t, t.TempDir()}
		s.dir("devices/pci0000:00/0000:00:04.0/nvme/nvme2/nvme2n1")
		s.link("class/block/nvme2n1", "../../devices/pci0000:00/0000:00:04.0/nvme/nvme2/nvme2n1")
		s.link("devices/pci0000:00/0000:00:04.0/nvme/nvme2/nvme2n1/device", "../../nvme2")
		// A namespace without multipath whose name matches its
		// controller, reached through the char node's class too.
		if got := controllerName(s.root, node{2, 1}); got != "nvme2" {
			t.Errorf("got %s, want nvme2", got)
		}
	})
	t.Run("multipath head", func(t *testing.T) {
		s := fakeSysfs{t, t.TempDir()}
		sub := "devices/virtual/nvme-subsystem/nvme-subsys0"
		s.dir(sub + "/nvme0n1")
		s.link("class/block/nvme0n1", "../../"+sub+"/nvme0n1")
		s.link(sub+"/nvme0n1/device", "../../nvme-subsys0")
		for name, state := range map[string]string{"nvme1": "resetting\n", "nvme4": "live\n", "nvme10": "live\n"} {
			s.file("devices/pci0000:00/0000:00:0"+name[4:]+".0/nvme/"+name+"/state", state)
			s.link(sub+"/"+name, "../../../pci0000:00/0000:00:0"+name[4:]+".0/nvme/"+name)
		}
		s.file(sub+"/model", "QEMU NVMe Ctrl\n")
		if got := controllerName(s.root, node{0, 1}); got != "nvme4" {
			t.Errorf("got %s, want the first live controller nvme4", got)
		}
		if err := os.WriteFile(filepath.Join(s.root, "devices/pci0000:00/0000:00:04.0/nvme/nvme4/state"), []byte("dead\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := controllerName(s.root, node{0, 1}); got != "nvme10" {
			t.Errorf("got %s, want nvme10", got)
		}
		for _, name := range []string{"nvme4", "nvme10"} {
			os.WriteFile(filepath.Join(s.root, "devices/pci0000:00/0000:00:0"+name[4:]+".0/nvme/"+name+"/state"), []byte("connecting\n"), 0o644)
		}
		if got := controllerName(s.root, node{0, 1}); got != "nvme1" {
			t.Errorf("got %s, want the lowest-numbered controller nvme1 when none is live", got)
		}
	})
	t.Run("generic node only", func(t *testing.T) {
		s := fakeSysfs{t, t.TempDir()}
		s.dir("devices/pci0000:00/0000:00:05.0/nvme/nvme7/ng5n2")
		s.link("class/nvme-generic/ng5n2", "../../devices/pci0000:00/0000:00:05.0/nvme/nvme7/ng5n2")
		s.link("devices/pci0000:00/0000:00:05.0/nvme/nvme7/ng5n2/device", "../../nvme7")
		if got := controllerName(s.root, node{5, 2}); got != "nvme7" {
			t.Errorf("got %s, want nvme7", got)
		}
	})
}

func TestKernelLimit(t *testing.T) {
	s := fakeSysfs{t, t.TempDir()}
	s.file("class/block/nvme0n1/queue/max_hw_sectors_kb", "512\n")
	s.file("class/block/nvme0n2/queue/max_hw_sectors_kb", "lots\n")
	for _, c := range []struct {
		n    node
		want int
	}{
		{node{0, 1}, 512 << 10},
		{node{0, 2}, 0},
		{node{0, 3}, 0},
	} {
		if got := kernelLimit(s.root, c.n); got != c.want {
			t.Errorf("kernelLimit(%v) = %d, want %d", c.n, got, c.want)
		}
	}
}
