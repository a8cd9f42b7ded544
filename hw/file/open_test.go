//go:build linux

package file

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/internal/testenv"
)

// target is a kind of storage the driver-specific tests run on.
type target struct {
	name string
	loop int     // 0: an image file; else a loop device with this sector size
	opts Options // options for Open
	ss   int     // expected sector size
}

func targets() []target {
	return []target{
		{name: "file", ss: fileAlign()},
		{name: "file4096", opts: Options{SectorSize: 4096}, ss: 4096},
		{name: "loop512", loop: 512, ss: 512},
		{name: "loop4096", loop: 4096, ss: 4096},
	}
}

// fileAlign is the direct-I/O offset alignment statx reports for a file in
// the temporary directory (at least 512), the sector size Open must detect.
func fileAlign() int {
	f, err := os.CreateTemp("", "align")
	if err != nil {
		return 512
	}
	defer os.Remove(f.Name())
	defer f.Close()
	var stx unix.Statx_t
	err = unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx)
	if err != nil || stx.Mask&unix.STATX_DIOALIGN == 0 || stx.Dio_offset_align <= 512 {
		return 512
	}
	return int(stx.Dio_offset_align)
}

// storage returns the path of fresh storage of size bytes for tg.
func (tg target) storage(t testing.TB, size int64) string {
	t.Helper()
	img := newImage(t, size)
	if tg.loop == 0 {
		return img
	}
	return loopDevice(t, img, tg.loop)
}

func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	if err := Create(path, 1<<30); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
		t.Errorf("size %d, %d blocks allocated: want a sparse 1 GiB file", st.Size, st.Blocks)
	}

	// Refuses to overwrite, and leaves the file alone.
	err := Create(path, 4096)
	wantErr(t, err, "create", hw.ErrIO, -1)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file: %v, want fs.ErrExist", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 1<<30 {
		t.Errorf("existing file changed: %v %v", fi, err)
	}

	for _, size := range []int64{0, -512, 1000, 4097} {
		p := filepath.Join(t.TempDir(), "b.img")
		err := Create(p, size)
		wantErr(t, err, "create", hw.ErrMisaligned, -1)
		if !errors.Is(err, ErrImageSize) {
			t.Errorf("Create(%d): %v, want ErrImageSize", size, err)
		}
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Create(%d) left a file behind: %v", size, err)
		}
	}

	err = Create(filepath.Join(t.TempDir(), "no", "such", "dir.img"), 4096)
	wantErr(t, err, "create", hw.ErrIO, -1)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Create in a missing directory: %v, want fs.ErrNotExist", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	err := open1(filepath.Join(dir, "missing.img"), Options{})
	wantErr(t, err, "open", hw.ErrIO, -1)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing image: %v, want fs.ErrNotExist", err)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, fifo, "/dev/null"} {
		for _, ro := range []bool{false, true} {
			err := open1(p, Options{ReadOnly: ro})
			wantErr(t, err, "open", hw.ErrUnsupported, -1)
			if !errors.Is(err, ErrFileType) {
				t.Errorf("Open(%s, ro=%v): %v, want ErrFileType", p, ro, err)
			}
		}
	}
}

// open1 opens and immediately closes path, returning Open's error.
func open1(path string, opts Options) error {
	d, err := Open(path, opts)
	if err == nil {
		d.Close()
	}
	return err
}

func TestSectorSizeOption(t *testing.T) {
	const size = 64<<10 + 512 // a trailing partial sector at every size but 512
	for _, tg := range targets() {
		if tg.opts.SectorSize != 0 {
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			path := tg.storage(t, size)
			for _, ss := range []int{tg.ss, 1024, 1536, 4096, 8192, 65536} {
				if ss%tg.ss != 0 {
					continue
				}
				d, err := Open(path, Options{SectorSize: ss})
				if err != nil {
					t.Fatalf("SectorSize %d: %v", ss, err)
				}
				info := d.Info()
				d.Close()
				if info.SectorSize != ss || info.Sectors != uint64(size/ss) {
					t.Errorf("SectorSize %d: got %d x %d, want %d x %d",
						ss, info.Sectors, info.SectorSize, size/ss, ss)
				}
			}
			bad := []int{-512, 1, 100, 513, 1000, MaxSectorSize + 512, 2 * MaxSectorSize}
			if tg.ss > 512 {
				bad = append(bad, 512, tg.ss+512, tg.ss*3/2)
			}
			for _, ss := range bad {
				err := open1(path, Options{SectorSize: ss})
				wantErr(t, err, "open", hw.ErrMisaligned, -1)
				if !errors.Is(err, ErrSectorSize) {
					t.Errorf("SectorSize %d: %v, want ErrSectorSize", ss, err)
				}
			}
		})
	}
}

func TestGeometry(t *testing.T) {
	const size = 1<<20 + 3*512 // a trailing partial 4096-byte sector
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			path := tg.storage(t, size)
			d := mustOpen(t, path, tg.opts)
			info := d.Info()
			want := hw.Info{
				SectorSize: tg.ss,
				Sectors:    uint64(size / tg.ss),
				Driver:     "file",
				Model:      path,
			}
			if tg.loop != 0 {
				// The kernel's view: blockdev(8) asks the same ioctls
				// from another program.
				want.SectorSize = int(blockdev(t, "--getss", path))
				want.Sectors = uint64(blockdev(t, "--getsize64", path)) / uint64(want.SectorSize)
				if want.SectorSize != tg.loop {
					t.Fatalf("blockdev --getss %s = %d, losetup was asked for %d", path, want.SectorSize, tg.loop)
				}
			}
			if info != want {
				t.Errorf("Info() = %+v, want %+v", info, want)
			}
			if d.memAlign <= 0 || info.SectorSize%d.memAlign != 0 {
				t.Errorf("memory alignment %d does not divide the sector size %d", d.memAlign, info.SectorSize)
			}
		})
	}
}

// TestProbeAlign checks the fallback detection against what statx reports,
// on a file with data and on 512- and 4096-byte loop devices.
func TestProbeAlign(t *testing.T) {
	img := newImage(t, 1<<20)
	d := mustOpen(t, img, Options{})
	if err := d.Write(0, d.AllocBuffer(4096)); err != nil {
		t.Fatal(err)
	}
	check := func(path string, want int) {
		t.Helper()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		got, err := probeAlign(fd)
		if err != nil || got != want {
			t.Errorf("probeAlign(%s) = %d, %v; want %d", path, got, err, want)
		}
	}
	check(img, fileAlign())
	for _, ss := range []int{512, 4096} {
		check(loopDevice(t, newImage(t, 1<<20), ss), ss)
	}
}

func TestArith(t *testing.T) {
	for _, c := range []struct{ n, want int }{{1, 1}, {2, 2}, {3, 4}, {511, 512}, {512, 512}, {513, 1024}} {
		if got := pow2Ceil(c.n); got != c.want {
			t.Errorf("pow2Ceil(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for _, c := range []struct{ a, b, want int }{{512, 512, 512}, {512, 4096, 4096}, {512, 1, 512}, {1536, 512, 1536}, {512, 768, 1536}} {
		if got := lcm(c.a, c.b); got != c.want {
			t.Errorf("lcm(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestReadOnlyBlockDevice opens a loop device set up read-only (BLKROGET)
// without asking for read-only: the driver must notice.
func TestReadOnlyBlockDevice(t *testing.T) {
	dev := loopDevice(t, newImage(t, 1<<20), 512, "--read-only")
	d := mustOpen(t, dev, Options{})
	if !d.Info().ReadOnly {
		t.Fatalf("Info().ReadOnly = false on a read-only loop device")
	}
	buf := d.AllocBuffer(512)
	wantErr(t, d.Write(0, buf), "write", hw.ErrReadOnly, 0)
	wantErr(t, d.WriteZeroes(0, 1), "write-zeroes", hw.ErrReadOnly, 0)
	if err := d.Read(0, buf); err != nil {
		t.Errorf("Read: %v", err)
	}
	if err := d.Flush(); err != nil {
		t.Errorf("Flush: %v", err)
	}
	// Read-only, so it only took a shared lock: another reader gets in.
	if err := open1(dev, Options{ReadOnly: true}); err != nil {
		t.Errorf("second reader: %v", err)
	}
}

func TestLock(t *testing.T) {
	for _, tg := range targets() {
		if tg.opts.SectorSize != 0 {
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			path := tg.storage(t, 1<<20)
			rw, ro := Options{}, Options{ReadOnly: true}
			busy := func(first, second Options) {
				t.Helper()
				d := mustOpen(t, path, first)
				err := open1(path, second)
				wantErr(t, err, "open", hw.ErrBusy, -1)
				if tg.loop == 0 && !errors.Is(err, unix.EWOULDBLOCK) {
					t.Errorf("%v, want EWOULDBLOCK", err)
				}
				d.Close()
				if err := open1(path, second); err != nil {
					t.Errorf("Open after the holder closed: %v", err)
				}
			}
			busy(rw, rw)
			busy(rw, ro)
			busy(ro, rw)

			if tg.loop != 0 {
				// A writable block device is claimed with O_EXCL:
				// another exclusive claim (a mount, or here a plain
				// O_EXCL open) keeps Open out with EBUSY.
				fd, err := unix.Open(path, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				err = open1(path, rw)
				wantErr(t, err, "open", hw.ErrBusy, -1)
				if !errors.Is(err, unix.EBUSY) {
					t.Errorf("%v, want EBUSY", err)
				}
				if err := open1(path, ro); err != nil {
					t.Errorf("read-only Open beside an exclusive claim: %v", err)
				}
				unix.Close(fd)
			}

			// Readers share.
			a := mustOpen(t, path, ro)
			b := mustOpen(t, path, ro)
			a.Close()
			b.Close()
		})
	}
}

// TestLockOtherProcess: the lock also holds against another process.
func TestLockOtherProcess(t *testing.T) {
	path := newImage(t, 1<<20)
	t.Run("writer", func(t *testing.T) {
		holdInOtherProcess(t, path, false)
		wantErr(t, open1(path, Options{}), "open", hw.ErrBusy, -1)
		wantErr(t, open1(path, Options{ReadOnly: true}), "open", hw.ErrBusy, -1)
	})
	t.Run("reader", func(t *testing.T) {
		holdInOtherProcess(t, path, true)
		wantErr(t, open1(path, Options{}), "open", hw.ErrBusy, -1)
		if err := open1(path, Options{ReadOnly: true}); err != nil {
			t.Errorf("second reader: %v", err)
		}
	})
	if err := open1(path, Options{}); err != nil {
		t.Errorf("Open after the other process exited: %v", err)
	}
}

// TestProbeFallback opens an image on tmpfs, which does not report
// STATX_DIOALIGN: the driver must probe, and either work at 512 bytes (tmpfs
// accepts direct I/O since Linux 6.6) or refuse with ErrNoDirectIO.
func TestProbeFallback(t *testing.T) {
	dir := tmpfsDir(t)
	path := filepath.Join(dir, "disk.img")
	if err := Create(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path, Options{})
	if err != nil {
		wantErr(t, err, "open", hw.ErrUnsupported, -1)
		if !errors.Is(err, ErrNoDirectIO) {
			t.Fatalf("Open on tmpfs: %v, want success or ErrNoDirectIO", err)
		}
		t.Logf("tmpfs refuses direct I/O on this kernel: %v", err)
		return
	}
	defer d.Close()
	if _, _, ok, _ := statxDIO(d.fd); ok {
		t.Logf("this kernel reports STATX_DIOALIGN on tmpfs: the probe was not used")
	} else {
		t.Logf("probed: %+v", d.Info())
	}
	if ss := d.Info().SectorSize; ss != 512 {
		t.Errorf("SectorSize %d on tmpfs, want 512", ss)
	}
	data := randomBytes(5, 3*512)
	b := misaligned(len(data), 1)
	copy(b, data)
	if err := d.Write(7, b); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, d, 7, 3); !bytes.Equal(got, data) {
		t.Error("tmpfs image read back differently")
	}
}

// tmpfsDir returns a directory on tmpfs: under /dev/shm when that is one,
// else a tmpfs mounted for the test (root only; skipped elsewhere unless
// CI=true).
func tmpfsDir(t *testing.T) string {
	t.Helper()
	var fs unix.Statfs_t
	if unix.Statfs("/dev/shm", &fs) == nil && fs.Type == unix.TMPFS_MAGIC {
		dir, err := os.MkdirTemp("/dev/shm", "hwfile")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	if os.Geteuid() != 0 {
		testenv.Need(t, "a tmpfs at /dev/shm, or root to mount one")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	return dir
}

// TestBlockSerial reads serials the way Info does, for every disk in
// /sys/block that has one, and checks loop devices have none.
func TestBlockSerial(t *testing.T) {
	disks, _ := filepath.Glob("/sys/block/*")
	for _, disk := range disks {
		want := ""
		for _, name := range []string{"serial", "device/serial"} {
			if b, err := os.ReadFile(filepath.Join(disk, name)); err == nil && want == "" {
				want = strings.TrimSpace(string(b))
			}
		}
		dev, err := os.ReadFile(filepath.Join(disk, "dev"))
		if err != nil {
			continue
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(string(dev), "%d:%d", &major, &minor); err != nil {
			t.Fatalf("%s/dev: %q", disk, dev)
		}
		if got := blockSerial(unix.Mkdev(major, minor)); got != want {
			t.Errorf("blockSerial(%s) = %q, want %q", disk, got, want)
		}
	}
	loop := loopDevice(t, newImage(t, 1<<20), 512)
	if s := mustOpen(t, loop, Options{}).Info().Serial; s != "" {
		t.Errorf("loop device serial %q, want none", s)
	}
}
