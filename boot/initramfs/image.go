package initramfs

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ModulesLoadPath is where the image lists the modules PID 1 loads, one
// absolute path a line, in load order.
const ModulesLoadPath = "etc/tarstore/modules.load"

// DefaultModules are the modules the appliance needs, for Spec.Modules:
// virtio PCI transport, virtio block and network devices, NVMe, QEMU's
// fw_cfg and VFIO. The two generic crypto modules come first: crc-t10dif and
// crc64-rocksoft need them loaded before themselves, yet modules.dep does
// not list them as dependencies (measured on Debian 12, kernel 6.1).
var DefaultModules = []string{
	"crct10dif_generic",
	"crc64_rocksoft_generic",
	"virtio_pci",
	"virtio_blk",
	"virtio_net",
	"nvme",
	"qemu_fw_cfg", // QEMU's fw_cfg files in sysfs: how the bearer token reaches the VM
	// VFIO, for the userspace drivers behind an IOMMU (tarstore.virtio=vfio:).
	// vfio_iommu_type1 is requested by name at VFIO_SET_IOMMU, which needs
	// modprobe; modules.dep does not list it, so it is named here.
	"vfio_iommu_type1",
	"vfio_pci",
}

// Spec describes an initramfs image.
type Spec struct {
	// Init is the static binary the kernel runs as PID 1 (/init).
	Init []byte
	// KernelVersion is the kernel's release (uname -r), such as
	// "6.1.0-28-amd64": the image holds its modules under
	// lib/modules/<KernelVersion>. Required with ModulesDir.
	KernelVersion string
	// ModulesDir is the directory holding modules.dep and the modules,
	// usually /lib/modules/<KernelVersion>; "" for an image without
	// modules.
	ModulesDir string
	// Modules are the names of the modules to load (see Resolve), such as
	// DefaultModules. Their dependencies are added.
	Modules []string
}

// SpecError reports a Spec that Build cannot use.
type SpecError struct {
	Field string // the Spec field at fault
	Msg   string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("initramfs: Spec.%s: %s", e.Field, e.Msg)
}

// Build writes the initramfs that spec describes to w: a newc cpio archive
// (see Writer) compressed with gzip. The same spec and module files give
// the same bytes (see the package documentation for the layout).
//
// Build resolves and reads every module before writing anything, so an
// error about a module leaves w untouched.
func Build(w io.Writer, spec Spec) error {
	if len(spec.Init) == 0 {
		return &SpecError{Field: "Init", Msg: "empty"}
	}
	mods, err := readModules(spec)
	if err != nil {
		return err
	}

	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	// The zero gzip.Header: no name, no comment, modification time 0.
	cw := NewWriter(zw)
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{
		{"dev", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"tmp", fs.ModeSticky | 0o777},
		{"etc", 0o755}, {"etc/tarstore", 0o755},
	} {
		if err := cw.Dir(d.name, d.mode); err != nil {
			return err
		}
	}
	if err := cw.CharDevice("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := cw.File("init", 0o755, spec.Init); err != nil {
		return err
	}
	var load strings.Builder
	for _, m := range mods {
		fmt.Fprintf(&load, "/%s\n", m.name)
	}
	if err := cw.File(ModulesLoadPath, 0o644, []byte(load.String())); err != nil {
		return err
	}
	for _, m := range mods {
		if err := cw.File(m.name, 0o644, m.data); err != nil {
			return err
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// imageModule is a module file and its path in the image.
type imageModule struct {
	name string // lib/modules/<version>/<path in modules.dep>
	data []byte
}

// readModules resolves spec.Modules in spec.ModulesDir and reads them, in
// load order.
func readModules(spec Spec) ([]imageModule, error) {
	if spec.ModulesDir == "" {
		if len(spec.Modules) > 0 {
			return nil, &SpecError{Field: "ModulesDir", Msg: fmt.Sprintf("empty, but %d modules are requested", len(spec.Modules))}
		}
		return nil, nil
	}
	if err := checkVersion(spec.KernelVersion); err != nil {
		return nil, &SpecError{Field: "KernelVersion", Msg: err.Error()}
	}
	dep, err := os.ReadFile(filepath.Join(spec.ModulesDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	paths, err := Resolve(bytes.NewReader(dep), spec.Modules)
	if err != nil {
		return nil, err
	}
	mods := make([]imageModule, len(paths))
	for i, p := range paths {
		data, err := os.ReadFile(filepath.Join(spec.ModulesDir, filepath.FromSlash(p)))
		if err != nil {
			return nil, &ModuleError{Name: moduleName(p), Err: err}
		}
		mods[i] = imageModule{name: path.Join("lib/modules", spec.KernelVersion, p), data: data}
	}
	return mods, nil
}

// checkVersion reports whether v can be a kernel release, a single path
// element.
func checkVersion(v string) error {
	if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\x00") {
		return fmt.Errorf("%q is not a kernel release such as 6.1.0-28-amd64", v)
	}
	return nil
}

// KernelVersions lists the kernel releases that have modules under
// modulesRoot (usually /lib/modules): its subdirectories, in version order
// (runs of digits compare as numbers, so 6.1.0-9 comes before 6.1.0-28).
func KernelVersions(modulesRoot string) ([]string, error) {
	entries, err := os.ReadDir(modulesRoot)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	var versions []string
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(modulesRoot, e.Name())); err == nil && fi.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	slices.SortFunc(versions, compareVersions)
	return versions, nil
}

// FindKernel returns the path of the kernel image of the given release in
// bootDir (usually /boot): bootDir/vmlinuz-<version>, which must be a
// regular file.
func FindKernel(bootDir, version string) (string, error) {
	if err := checkVersion(version); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	p := filepath.Join(bootDir, "vmlinuz-"+version)
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("initramfs: kernel %s: %w", version, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("initramfs: kernel %s: %s is not a regular file", version, p)
	}
	return p, nil
}

// compareVersions compares a and b with runs of decimal digits compared as
// numbers and everything else byte by byte; ties (such as 01 and 1) are
// broken byte by byte.
func compareVersions(a, b string) int {
	return cmp.Or(compareNatural(a, b), strings.Compare(a, b))
}

func compareNatural(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na := strings.TrimLeft(a[:da], "0")
			nb := strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	return n
}
