package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newcEntry is one entry of a newc archive as readNewc decodes it.
type newcEntry struct {
	Ino, Mode, UID, GID, Nlink, Mtime uint32
	DevMajor, DevMinor                uint32
	RdevMajor, RdevMinor, Check       uint32
	Name                              string
	Data                              []byte
}

// readNewc decodes a newc archive independently of the Writer (cpio(5),
// buffer-format.rst) and checks its framing: the magic, the hex fields, the
// NUL counted in namesize, zero padding to 4 bytes after the header and the
// data, the trailer, and zeros after it up to a multiple of 512 bytes. It
// returns the entries before the trailer.
func readNewc(t testing.TB, archive []byte) []newcEntry {
	t.Helper()
	require.Zero(t, len(archive)%512, "archive length %d is not a multiple of 512", len(archive))
	var entries []newcEntry
	off := 0
	zeros := func(n int, what string) {
		t.Helper()
		for i := range n {
			require.Less(t, off+i, len(archive), "truncated %s", what)
			require.Zero(t, archive[off+i], "non-zero padding byte in %s at %d", what, off+i)
		}
		off += n
	}
	pad := func(n int) int { return (4 - n%4) % 4 }
	for {
		require.LessOrEqual(t, off+110, len(archive), "truncated header at %d", off)
		hdr := archive[off : off+110]
		require.Equal(t, "070701", string(hdr[:6]), "magic at %d", off)
		var f [13]uint32
		for i := range f {
			field := string(hdr[6+8*i : 6+8*i+8])
			v, err := strconv.ParseUint(field, 16, 32)
			require.NoError(t, err, "field %d at %d", i, off)
			require.Equal(t, fmt.Sprintf("%08x", v), field, "field %d is not 8 lower-case hex digits", i)
			f[i] = uint32(v)
		}
		start := off
		off += 110
		namesize, size := int(f[11]), int(f[6])
		require.Greater(t, namesize, 1, "namesize at %d", start)
		require.LessOrEqual(t, off+namesize, len(archive))
		name := archive[off : off+namesize]
		require.Zero(t, name[namesize-1], "namesize must count the NUL")
		require.NotContains(t, string(name[:namesize-1]), "\x00")
		off += namesize
		zeros(pad(110+namesize), "header padding")
		require.Zero(t, off%4)
		require.LessOrEqual(t, off+size, len(archive))
		e := newcEntry{
			Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5],
			DevMajor: f[7], DevMinor: f[8], RdevMajor: f[9], RdevMinor: f[10], Check: f[12],
			Name: string(name[:namesize-1]), Data: archive[off : off+size],
		}
		off += size
		zeros(pad(size), "data padding")
		if e.Name == "TRAILER!!!" {
			require.Zero(t, size)
			zeros(len(archive)-off, "end padding")
			return entries
		}
		entries = append(entries, e)
	}
}

func TestWriterEntries(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	require.NoError(t, w.Dir("dev", 0o755))
	require.NoError(t, w.Dir("tmp", fs.ModeSticky|0o777))
	require.NoError(t, w.CharDevice("dev/console", 0o600, 5, 1))
	require.NoError(t, w.File("init", 0o755, []byte("#!binary")))
	require.NoError(t, w.File("a/b/c.txt", 0o644, []byte("hello"))) // adds a, a/b
	require.NoError(t, w.File("a/b/d.txt", 0o640, nil))             // parents once
	require.NoError(t, w.File("suid", fs.ModeSetuid|fs.ModeSetgid|0o755, []byte("x")))
	require.NoError(t, w.Close())

	type want struct {
		name       string
		mode       uint32
		nlink      uint32
		rmaj, rmin uint32
		data       string
	}
	wants := []want{
		{"dev", 0o040755, 2, 0, 0, ""},
		{"tmp", 0o041777, 2, 0, 0, ""},
		{"dev/console", 0o020600, 1, 5, 1, ""},
		{"init", 0o100755, 1, 0, 0, "#!binary"},
		{"a", 0o040755, 2, 0, 0, ""},
		{"a/b", 0o040755, 2, 0, 0, ""},
		{"a/b/c.txt", 0o100644, 1, 0, 0, "hello"},
		{"a/b/d.txt", 0o100640, 1, 0, 0, ""},
		{"suid", 0o106755, 1, 0, 0, "x"},
	}
	entries := readNewc(t, buf.Bytes())
	require.Len(t, entries, len(wants))
	for i, w := range wants {
		e := entries[i]
		assert.Equal(t, w.name, e.Name, "entry %d", i)
		assert.Equal(t, uint32(i+1), e.Ino, "%s: inode", w.name)
		assert.Equal(t, fmt.Sprintf("%o", w.mode), fmt.Sprintf("%o", e.Mode), "%s: mode", w.name)
		assert.Equal(t, w.nlink, e.Nlink, "%s: nlink", w.name)
		assert.Equal(t, [2]uint32{w.rmaj, w.rmin}, [2]uint32{e.RdevMajor, e.RdevMinor}, "%s: rdev", w.name)
		assert.Equal(t, w.data, string(e.Data), "%s: data", w.name)
		assert.Zero(t, e.UID+e.GID+e.Mtime+e.DevMajor+e.DevMinor+e.Check, "%s: uid, gid, mtime, dev, check", w.name)
	}
}

// TestWriterHeaderBytes pins the exact bytes of an entry and the trailer.
func TestWriterHeaderBytes(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	require.NoError(t, w.File("init", 0o755, []byte("abcdef")))
	require.NoError(t, w.Close())
	// 110 + len("init\x00") = 115, padded to 116; the data ends at 122,
	// padded to 124; the trailer's header and name end at 124+121 = 245,
	// padded to 248; zeros follow up to 512.
	want := "070701" + "00000001" + "000081ed" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000006" + "00000000" + "00000000" + "00000000" + "00000000" + "00000005" + "00000000" +
		"init\x00" + "\x00" +
		"abcdef" + "\x00\x00" +
		"070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "0000000b" + "00000000" +
		"TRAILER!!!\x00" + "\x00\x00\x00"
	require.Len(t, want, 248)
	require.Equal(t, want, buf.String()[:len(want)])
	require.Equal(t, 512, buf.Len())
	require.Equal(t, strings.Repeat("\x00", 512-len(want)), buf.String()[len(want):])
}

// TestWriterPadding writes names and data of every length modulo 4 (and
// more) and reads them back.
func TestWriterPadding(t *testing.T) {
	for nameLen := 1; nameLen <= 9; nameLen++ {
		for dataLen := 0; dataLen <= 9; dataLen++ {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			name := strings.Repeat("n", nameLen)
			data := bytes.Repeat([]byte{0xff}, dataLen)
			require.NoError(t, w.File(name, 0o644, data))
			require.NoError(t, w.File(name+"2", 0o644, data))
			require.NoError(t, w.Close())
			entries := readNewc(t, buf.Bytes())
			require.Len(t, entries, 2)
			for i, e := range entries {
				assert.Equal(t, name+[]string{"", "2"}[i], e.Name)
				assert.Equal(t, data, e.Data)
			}
		}
	}
}

func TestWriterRejects(t *testing.T) {
	tests := []struct {
		name string
		add  func(w *Writer) error
	}{
		{"empty name", func(w *Writer) error { return w.File("", 0o644, nil) }},
		{"dot", func(w *Writer) error { return w.Dir(".", 0o755) }},
		{"dot-dot", func(w *Writer) error { return w.File("..", 0o644, nil) }},
		{"dot-dot element", func(w *Writer) error { return w.File("a/../b", 0o644, nil) }},
		{"leading dot-dot", func(w *Writer) error { return w.File("../etc/passwd", 0o644, nil) }},
		{"dot element", func(w *Writer) error { return w.File("a/./b", 0o644, nil) }},
		{"NUL", func(w *Writer) error { return w.File("a\x00b", 0o644, nil) }},
		{"absolute", func(w *Writer) error { return w.File("/init", 0o755, nil) }},
		{"trailing slash", func(w *Writer) error { return w.Dir("dev/", 0o755) }},
		{"empty element", func(w *Writer) error { return w.File("a//b", 0o644, nil) }},
		{"trailer name", func(w *Writer) error { return w.File("TRAILER!!!", 0o644, nil) }},
		{"type bits in mode", func(w *Writer) error { return w.File("f", fs.ModeDir|0o755, nil) }},
		{"device bit in mode", func(w *Writer) error { return w.CharDevice("c", fs.ModeCharDevice|0o600, 5, 1) }},
		{"duplicate file", func(w *Writer) error {
			if err := w.File("f", 0o644, nil); err != nil {
				return err
			}
			return w.File("f", 0o644, nil)
		}},
		{"duplicate implicit parent", func(w *Writer) error {
			if err := w.File("d/f", 0o644, nil); err != nil {
				return err
			}
			return w.Dir("d", 0o700)
		}},
		{"parent is a file", func(w *Writer) error {
			if err := w.File("f", 0o644, nil); err != nil {
				return err
			}
			return w.File("f/g", 0o644, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			err := tt.add(w)
			var ee *EntryError
			require.ErrorAs(t, err, &ee)
			assert.Contains(t, err.Error(), "initramfs: cpio entry")
			// A refused entry writes nothing; the archive stays valid.
			require.NoError(t, w.Close())
			readNewc(t, buf.Bytes())
		})
	}
}

func TestWriterRefusedEntryWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	require.NoError(t, w.File("f", 0o644, []byte("x")))
	n := buf.Len()
	require.Error(t, w.File("f", 0o644, []byte("y")))
	require.Error(t, w.File("x/../y", 0o644, nil))
	require.Error(t, w.File("f/g", 0o644, nil))
	require.Equal(t, n, buf.Len())
	require.NoError(t, w.File("g", 0o644, nil))
	require.NoError(t, w.Close())
	entries := readNewc(t, buf.Bytes())
	require.Len(t, entries, 2)
	assert.Equal(t, uint32(2), entries[1].Ino, "inode numbers stay sequential")
}

func TestWriterClosed(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	require.NoError(t, w.Close())
	n := buf.Len()
	require.ErrorIs(t, w.File("f", 0o644, nil), ErrWriterClosed)
	require.ErrorIs(t, w.Dir("d", 0o755), ErrWriterClosed)
	require.ErrorIs(t, w.CharDevice("c", 0o600, 1, 3), ErrWriterClosed)
	require.NoError(t, w.Close())
	require.Equal(t, n, buf.Len())
	require.Empty(t, readNewc(t, buf.Bytes()))
}

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

var errDiskFull = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return len(p), nil
	}
	n := f.n
	f.n = 0
	return n, errDiskFull
}

func TestWriterWriteError(t *testing.T) {
	for _, limit := range []int{0, 50, 110, 116, 200, 400} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			w := NewWriter(&failAfter{n: limit})
			err := w.File("init", 0o755, make([]byte, 100))
			if err == nil {
				err = w.Dir("dev", 0o755)
			}
			if err == nil {
				err = w.Close()
			}
			require.ErrorIs(t, err, errDiskFull)
			require.ErrorIs(t, w.Dir("later", 0o755), errDiskFull, "the error sticks")
			require.ErrorIs(t, w.Close(), errDiskFull)
		})
	}
}

func TestWriterDeterministic(t *testing.T) {
	write := func() []byte {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		require.NoError(t, w.Dir("dev", 0o755))
		require.NoError(t, w.CharDevice("dev/console", 0o600, 5, 1))
		require.NoError(t, w.File("lib/modules/x/a.ko", 0o644, []byte("module")))
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	require.Equal(t, write(), write())
}

// needBsdtar returns bsdtar's path; a machine without it fails the test:
// bsdtar is how the archives are checked against an independent reader.
func needBsdtar(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("bsdtar")
	if err != nil {
		t.Fatalf("bsdtar is needed to check the archives with an independent reader: apt-get install libarchive-tools (%v)", err)
	}
	return p
}

// bsdtarList runs bsdtar -tvf on file and returns its listing, one line an
// entry, keyed by name (the last field).
func bsdtarList(t testing.TB, file string) map[string]string {
	t.Helper()
	out, err := exec.Command(needBsdtar(t), "-tvf", file).CombinedOutput()
	require.NoError(t, err, "bsdtar -tvf: %s", out)
	list := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		require.NotEmpty(t, fields)
		list[fields[len(fields)-1]] = strings.TrimSpace(line)
	}
	return list
}

// bsdtarCat returns the contents of the archive's file name (bsdtar -xOf).
func bsdtarCat(t testing.TB, file, name string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(needBsdtar(t), "-xOf", file, name)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "bsdtar -xOf %s: %s", name, stderr.String())
	return stdout.Bytes()
}

func TestWriterBsdtar(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	require.NoError(t, w.Dir("dev", 0o755))
	require.NoError(t, w.Dir("tmp", fs.ModeSticky|0o777))
	require.NoError(t, w.CharDevice("dev/console", 0o600, 5, 1))
	require.NoError(t, w.File("init", 0o755, []byte("the init binary")))
	require.NoError(t, w.File("etc/tarstore/modules.load", 0o644, []byte("/lib/modules/v/a.ko\n")))
	odd := bytes.Repeat([]byte("0123456789"), 1001) // 10010 bytes, not a multiple of 4
	require.NoError(t, w.File("lib/modules/v/kernel/a.ko", 0o644, odd))
	require.NoError(t, w.Close())
	file := filepath.Join(t.TempDir(), "archive.cpio")
	require.NoError(t, os.WriteFile(file, buf.Bytes(), 0o644))

	list := bsdtarList(t, file)
	wantModes := map[string]string{
		"dev":                       "drwxr-xr-x",
		"tmp":                       "drwxrwxrwt",
		"dev/console":               "crw-------",
		"init":                      "-rwxr-xr-x",
		"etc":                       "drwxr-xr-x",
		"etc/tarstore":              "drwxr-xr-x",
		"etc/tarstore/modules.load": "-rw-r--r--",
		"lib":                       "drwxr-xr-x",
		"lib/modules":               "drwxr-xr-x",
		"lib/modules/v":             "drwxr-xr-x",
		"lib/modules/v/kernel":      "drwxr-xr-x",
		"lib/modules/v/kernel/a.ko": "-rw-r--r--",
	}
	require.Len(t, list, len(wantModes), "bsdtar -tv:\n%v", list)
	for name, mode := range wantModes {
		line, ok := list[name]
		require.True(t, ok, "bsdtar does not list %s", name)
		assert.True(t, strings.HasPrefix(line, mode+" "), "%s: want mode %s, bsdtar says %q", name, mode, line)
	}
	assert.Regexp(t, `^crw------- +1 +0 +0 +5, *1 `, list["dev/console"])
	assert.Regexp(t, ` 10010 `, list["lib/modules/v/kernel/a.ko"])

	assert.Equal(t, "the init binary", string(bsdtarCat(t, file, "init")))
	assert.Equal(t, "/lib/modules/v/a.ko\n", string(bsdtarCat(t, file, "etc/tarstore/modules.load")))
	assert.Equal(t, odd, bsdtarCat(t, file, "lib/modules/v/kernel/a.ko"))
}
