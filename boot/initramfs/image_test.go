package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/internal/testenv"
)

const fakeVersion = "6.1.0-99-amd64"

// fakeModules makes a modules directory with a modules.dep in depmod's form
// and a dummy file for each module (its contents name it), and returns it.
func fakeModules(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lib", "modules", fakeVersion)
	dep := `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko
kernel/drivers/scsi/scsi_mod.ko:
`
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644))
	for line := range strings.Lines(dep) {
		mod, _, _ := strings.Cut(line, ":")
		file := filepath.Join(dir, filepath.FromSlash(mod))
		require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
		require.NoError(t, os.WriteFile(file, []byte("ELF module "+mod), 0o644))
	}
	return dir
}

// unpack gunzips an image, checks its gzip header for reproducibility, and
// decodes the cpio archive in it.
func unpack(t *testing.T, image []byte) []newcEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(image))
	require.NoError(t, err)
	assert.Empty(t, zr.Name, "gzip header: no name")
	assert.Empty(t, zr.Comment)
	assert.True(t, zr.ModTime.IsZero() || zr.ModTime.Equal(time.Unix(0, 0)), "gzip header: mtime %v", zr.ModTime)
	zr.Multistream(false)
	archive, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.NoError(t, zr.Close())
	return readNewc(t, archive)
}

func TestBuild(t *testing.T) {
	dir := fakeModules(t)
	spec := Spec{
		Init:          []byte("\x7fELF a static binary"),
		KernelVersion: fakeVersion,
		ModulesDir:    dir,
		Modules:       []string{"virtio-pci", "virtio_blk"},
	}
	var a, b bytes.Buffer
	require.NoError(t, Build(&a, spec))
	require.NoError(t, Build(&b, spec))
	require.Equal(t, a.Bytes(), b.Bytes(), "the same Spec must give the same bytes")

	prefix := "lib/modules/" + fakeVersion + "/kernel/drivers/"
	loadOrder := []string{
		"virtio/virtio_ring.ko",
		"virtio/virtio.ko",
		"virtio/virtio_pci_modern_dev.ko",
		"virtio/virtio_pci_legacy_dev.ko",
		"virtio/virtio_pci.ko",
		"block/virtio_blk.ko",
	}
	var load strings.Builder
	for _, m := range loadOrder {
		fmt.Fprintf(&load, "/%s%s\n", prefix, m)
	}

	type want struct {
		name string
		mode uint32
		data string
	}
	wants := []want{
		{"dev", 0o040755, ""},
		{"proc", 0o040555, ""},
		{"sys", 0o040555, ""},
		{"tmp", 0o041777, ""},
		{"etc", 0o040755, ""},
		{"etc/tarstore", 0o040755, ""},
		{"dev/console", 0o020600, ""},
		{"init", 0o100755, string(spec.Init)},
		{"etc/tarstore/modules.load", 0o100644, load.String()},
		{"lib", 0o040755, ""},
		{"lib/modules", 0o040755, ""},
		{"lib/modules/" + fakeVersion, 0o040755, ""},
		{"lib/modules/" + fakeVersion + "/kernel", 0o040755, ""},
		{"lib/modules/" + fakeVersion + "/kernel/drivers", 0o040755, ""},
		{"lib/modules/" + fakeVersion + "/kernel/drivers/virtio", 0o040755, ""},
	}
	for _, m := range loadOrder[:5] {
		wants = append(wants, want{prefix + m, 0o100644, "ELF module kernel/drivers/" + m})
	}
	wants = append(wants,
		want{"lib/modules/" + fakeVersion + "/kernel/drivers/block", 0o040755, ""},
		want{prefix + loadOrder[5], 0o100644, "ELF module kernel/drivers/" + loadOrder[5]},
	)

	entries := unpack(t, a.Bytes())
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	require.Len(t, entries, len(wants), "entries: %q", names)
	for i, w := range wants {
		e := entries[i]
		assert.Equal(t, w.name, e.Name, "entry %d", i)
		assert.Equal(t, fmt.Sprintf("%o", w.mode), fmt.Sprintf("%o", e.Mode), "%s: mode", w.name)
		assert.Equal(t, w.data, string(e.Data), "%s: data", w.name)
		if e.Name == "dev/console" {
			assert.Equal(t, [2]uint32{5, 1}, [2]uint32{e.RdevMajor, e.RdevMinor})
		}
	}

	// Every path modules.load names is in the image, in load order.
	inImage := make(map[string]bool)
	for _, e := range entries {
		inImage["/"+e.Name] = true
	}
	for line := range strings.Lines(load.String()) {
		assert.True(t, inImage[strings.TrimSuffix(line, "\n")], "%s is not in the image", line)
	}

	// bsdtar reads the compressed image too.
	file := filepath.Join(t.TempDir(), "initramfs.gz")
	require.NoError(t, os.WriteFile(file, a.Bytes(), 0o644))
	list := bsdtarList(t, file)
	assert.Len(t, list, len(wants))
	assert.Regexp(t, `^crw------- .* 5, *1 `, list["dev/console"])
	assert.Equal(t, spec.Init, bsdtarCat(t, file, "init"))
	assert.Equal(t, load.String(), string(bsdtarCat(t, file, ModulesLoadPath)))
}

func TestBuildWithoutModules(t *testing.T) {
	var a, b bytes.Buffer
	require.NoError(t, Build(&a, Spec{Init: []byte("init")}))
	require.NoError(t, Build(&b, Spec{Init: []byte("init"), KernelVersion: fakeVersion}))
	require.Equal(t, a.Bytes(), b.Bytes(), "without ModulesDir, KernelVersion does not matter")
	var names []string
	for _, e := range unpack(t, a.Bytes()) {
		names = append(names, e.Name)
		if e.Name == ModulesLoadPath {
			assert.Empty(t, e.Data)
		}
	}
	assert.Equal(t, []string{"dev", "proc", "sys", "tmp", "etc", "etc/tarstore", "dev/console", "init", ModulesLoadPath}, names)

	// A modules directory and no modules: the same image.
	var c bytes.Buffer
	require.NoError(t, Build(&c, Spec{Init: []byte("init"), KernelVersion: fakeVersion, ModulesDir: fakeModules(t)}))
	require.Equal(t, a.Bytes(), c.Bytes())
}

func TestBuildChangesWithSpec(t *testing.T) {
	dir := fakeModules(t)
	build := func(spec Spec) []byte {
		var buf bytes.Buffer
		require.NoError(t, Build(&buf, spec))
		return buf.Bytes()
	}
	base := Spec{Init: []byte("init"), KernelVersion: fakeVersion, ModulesDir: dir, Modules: []string{"virtio_blk"}}
	other := base
	other.Init = []byte("tini")
	assert.NotEqual(t, build(base), build(other))
	other = base
	other.Modules = []string{"sd_mod"}
	assert.NotEqual(t, build(base), build(other))
}

func TestBuildErrors(t *testing.T) {
	dir := fakeModules(t)
	noFile := fakeModules(t)
	require.NoError(t, os.Remove(filepath.Join(noFile, "kernel/drivers/virtio/virtio.ko")))
	noDep := t.TempDir()
	tests := []struct {
		name  string
		spec  Spec
		check func(t *testing.T, err error)
	}{
		{"no init", Spec{ModulesDir: dir, KernelVersion: fakeVersion}, specError("Init")},
		{"modules without a directory", Spec{Init: []byte("x"), Modules: []string{"virtio"}}, specError("ModulesDir")},
		{"no kernel version", Spec{Init: []byte("x"), ModulesDir: dir, Modules: []string{"virtio"}}, specError("KernelVersion")},
		{"kernel version with a slash", Spec{Init: []byte("x"), KernelVersion: "../6.1", ModulesDir: dir}, specError("KernelVersion")},
		{"kernel version dot-dot", Spec{Init: []byte("x"), KernelVersion: "..", ModulesDir: dir}, specError("KernelVersion")},
		{"missing module", Spec{Init: []byte("x"), KernelVersion: fakeVersion, ModulesDir: dir, Modules: []string{"virtio", "nvme"}}, func(t *testing.T, err error) {
			var me *ModuleError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, "nvme", me.Name)
			assert.ErrorIs(t, err, ErrModuleNotFound)
		}},
		{"missing module file", Spec{Init: []byte("x"), KernelVersion: fakeVersion, ModulesDir: noFile, Modules: []string{"virtio_blk"}}, func(t *testing.T, err error) {
			var me *ModuleError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, "virtio", me.Name)
			assert.ErrorIs(t, err, fs.ErrNotExist)
		}},
		{"no modules.dep", Spec{Init: []byte("x"), KernelVersion: fakeVersion, ModulesDir: noDep, Modules: []string{"virtio"}}, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, fs.ErrNotExist)
			assert.Contains(t, err.Error(), "modules.dep")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Build(&buf, tt.spec)
			require.Error(t, err)
			tt.check(t, err)
			assert.Zero(t, buf.Len(), "a failed Build writes nothing")
		})
	}
}

func specError(field string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		var se *SpecError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, field, se.Field)
		assert.Contains(t, err.Error(), "initramfs: Spec."+field)
	}
}

func TestKernelVersions(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-28-amd64", "5.10.0-33-amd64", "6.1.0-28-rt-amd64", "6.10.0-1-amd64"} {
		require.NoError(t, os.Mkdir(filepath.Join(root, v), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "not-a-dir"), nil, 0o644))
	require.NoError(t, os.Symlink("6.1.0-9-amd64", filepath.Join(root, "7.0.0-linked")))
	require.NoError(t, os.Symlink("nowhere", filepath.Join(root, "8.0.0-dangling")))
	got, err := KernelVersions(root)
	require.NoError(t, err)
	assert.Equal(t, []string{"5.10.0-33-amd64", "6.1.0-9-amd64", "6.1.0-28-amd64", "6.1.0-28-rt-amd64", "6.10.0-1-amd64", "7.0.0-linked"}, got)

	empty, err := KernelVersions(t.TempDir())
	require.NoError(t, err)
	assert.Empty(t, empty)

	_, err = KernelVersions(filepath.Join(root, "missing"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestCompareVersions(t *testing.T) {
	sorted := []string{"", "1", "2", "6.1.0-2-amd64", "6.1.0-10-amd64", "6.1.0-10-cloud-amd64", "6.1.01", "6.1.1", "6.1.1-0", "6.2", "10", "a"}
	for i := range sorted {
		for j := range sorted {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			assert.Equal(t, want, compareVersions(sorted[i], sorted[j]), "compare(%q, %q)", sorted[i], sorted[j])
		}
	}
}

func TestFindKernel(t *testing.T) {
	boot := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(boot, "vmlinuz-"+fakeVersion), []byte("kernel"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(boot, "vmlinuz-dir"), 0o755))

	p, err := FindKernel(boot, fakeVersion)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(boot, "vmlinuz-"+fakeVersion), p)

	_, err = FindKernel(boot, "6.1.0-1-amd64")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = FindKernel(boot, "dir")
	assert.ErrorContains(t, err, "not a regular file")
	for _, bad := range []string{"", "..", "a/b"} {
		_, err = FindKernel(boot, bad)
		assert.ErrorContains(t, err, "not a kernel release", "version %q", bad)
	}
}

// debianKernel matches the releases of Debian 12's kernel packages for
// amd64 (linux-image-amd64 depends on linux-image-6.1.0-N-amd64).
var debianKernel = regexp.MustCompile(`^6\.1\.0-[0-9]+-amd64$`)

// TestDefaultModulesDebianKernel resolves DefaultModules against every
// installed Debian 12 kernel and checks the load order measured on it. In
// CI a machine without such a kernel fails the test.
func TestDefaultModulesDebianKernel(t *testing.T) {
	versions, _ := KernelVersions("/lib/modules")
	versions = slices.DeleteFunc(versions, func(v string) bool {
		_, err := os.Stat(filepath.Join("/lib/modules", v, "modules.dep"))
		return !debianKernel.MatchString(v) || err != nil
	})
	if len(versions) == 0 {
		testenv.Need(t, "a Debian 12 kernel with its modules in /lib/modules/6.1.0-*-amd64 (apt-get install linux-image-amd64)")
	}
	for _, v := range versions {
		t.Run(v, func(t *testing.T) { checkDebianKernel(t, v) })
	}
}

func checkDebianKernel(t *testing.T, version string) {
	dir := filepath.Join("/lib/modules", version)
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	require.NoError(t, err)
	order, err := Resolve(bytes.NewReader(dep), DefaultModules)
	require.NoError(t, err)

	pos := make(map[string]int)
	for i, p := range order {
		pos[normalizeName(moduleName(p))] = i
	}
	names := make([]string, len(order))
	for i, p := range order {
		names[i] = moduleName(p)
	}
	t.Logf("load order: %s", strings.Join(names, " "))

	// Exactly these modules (measured on Debian 12's kernel 6.1)...
	want := []string{
		"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
		"virtio_blk", "failover", "net_failover", "virtio_net",
		"crct10dif_common", "crct10dif_generic", "crc-t10dif", "crc64", "crc64_rocksoft_generic",
		"crc64-rocksoft", "t10-pi", "nvme-core", "nvme",
		"qemu_fw_cfg",
		"irqbypass", "vfio", "vfio_iommu_type1", "vfio_virqfd", "vfio-pci-core", "vfio-pci",
	}
	wantSet := make([]string, len(want))
	for i, m := range want {
		wantSet[i] = normalizeName(m)
	}
	gotSet := make([]string, 0, len(pos))
	for m := range pos {
		gotSet = append(gotSet, m)
	}
	assert.ElementsMatch(t, wantSet, gotSet, "the modules DefaultModules resolves to")

	// ...in an order that keeps these precedences: modules.dep's, and the
	// ones it does not record (the crypto modules before the CRC libraries
	// that use them, virtio_pci before the virtio device drivers).
	before := [][2]string{
		{"virtio_ring", "virtio"},
		{"virtio", "virtio_pci"},
		{"virtio_pci_legacy_dev", "virtio_pci"},
		{"virtio_pci_modern_dev", "virtio_pci"},
		{"virtio_pci", "virtio_blk"},
		{"virtio_pci", "virtio_net"},
		{"failover", "net_failover"},
		{"net_failover", "virtio_net"},
		{"crct10dif_common", "crct10dif_generic"},
		{"crct10dif_generic", "crc-t10dif"},
		{"crc64", "crc64_rocksoft_generic"},
		{"crc64_rocksoft_generic", "crc64-rocksoft"},
		{"crc-t10dif", "t10-pi"},
		{"crc64-rocksoft", "t10-pi"},
		{"t10-pi", "nvme-core"},
		{"nvme-core", "nvme"},
		{"vfio", "vfio_iommu_type1"},
		{"irqbypass", "vfio-pci-core"},
		{"vfio_virqfd", "vfio-pci-core"},
		{"vfio-pci-core", "vfio-pci"},
	}
	for _, b := range before {
		first, ok1 := pos[normalizeName(b[0])]
		then, ok2 := pos[normalizeName(b[1])]
		if assert.True(t, ok1 && ok2, "%s and %s", b[0], b[1]) {
			assert.Less(t, first, then, "%s must load before %s", b[0], b[1])
		}
	}

	// Every module after all of its dependencies in modules.dep.
	md, err := parseModulesDep(bytes.NewReader(dep))
	require.NoError(t, err)
	at := make(map[string]int)
	for i, p := range order {
		at[p] = i
	}
	for i, p := range order {
		for _, d := range md.byPath[p].deps {
			j, ok := at[d]
			require.True(t, ok, "%s needs %s", p, d)
			assert.Less(t, j, i, "%s before %s", d, p)
		}
	}

	// The image holds the kernel's module files and lists them in order.
	var buf bytes.Buffer
	require.NoError(t, Build(&buf, Spec{Init: []byte("init"), KernelVersion: version, ModulesDir: dir, Modules: DefaultModules}))
	var load string
	files := make(map[string][]byte)
	for _, e := range unpack(t, buf.Bytes()) {
		files[e.Name] = e.Data
		if e.Name == ModulesLoadPath {
			load = string(e.Data)
		}
	}
	var wantLoad strings.Builder
	for _, p := range order {
		name := path.Join("lib/modules", version, p)
		fmt.Fprintf(&wantLoad, "/%s\n", name)
		onDisk, err := os.ReadFile(filepath.Join(dir, p))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(onDisk, files[name]), "%s differs from %s", name, p)
	}
	assert.Equal(t, wantLoad.String(), load)
}
