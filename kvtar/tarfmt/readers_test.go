package tarfmt

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A want is a member an archive written by the tests must show to every
// reader. Data is its content; nil for a member too large to extract (its
// bytes read as zeroes).
type want struct {
	Header
	Data []byte
}

func (w want) name() string { return strings.TrimLeft(w.Name, "/") }

// archiveFile writes an archive to a temporary file: each member's
// EncodeHeader output, data and padding, with holes (spans of the given
// number of blocks made by fill) where the order says so, then the end of
// archive. A member with nil Data gets Size bytes of zeroes by seeking, so
// the file stays sparse on disk.
type piece struct {
	member *want
	hole   func(t *testing.T, f *os.File, off int64) int64 // writes a hole at off, returns its length
}

func writeArchive(t *testing.T, pieces []piece) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var off int64
	write := func(b []byte) {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		off += int64(len(b))
	}
	for _, p := range pieces {
		if p.hole != nil {
			off += p.hole(t, f, off)
			continue
		}
		hdr, err := EncodeHeader(p.member.Header)
		if err != nil {
			t.Fatalf("EncodeHeader(%.60q): %v", p.member.Name, err)
		}
		write(hdr)
		if p.member.Data != nil {
			write(p.member.Data)
		} else {
			off += p.member.Size
		}
		write(Padding(p.member.Size))
	}
	write(EndOfArchive())
	return path
}

// checkAllReaders checks that Go's archive/tar, the Decoder, GNU tar,
// bsdtar and Python's tarfile read the archive at path as exactly the
// members ws (holes invisible), without warnings or errors. Members are
// extracted (GNU tar) and copied (bsdtar) to compare contents and
// nanosecond mtimes when extract is set.
func checkAllReaders(t *testing.T, path string, ws []want, extract bool) {
	t.Helper()
	t.Run("go", func(t *testing.T) { checkGo(t, path, ws) })
	t.Run("decoder", func(t *testing.T) { checkDecoder(t, path, ws) })
	t.Run("gnutar", func(t *testing.T) { checkGNUTar(t, path, ws, extract) })
	t.Run("bsdtar", func(t *testing.T) { checkBSDTar(t, path, ws, extract) })
	t.Run("python", func(t *testing.T) { checkPython(t, path, ws) })
}

// same reports whether a Go header shows w.
func sameAsWant(t *testing.T, reader string, g *tar.Header, w want) {
	t.Helper()
	wantType := w.Typeflag
	if wantType == TypeRegA {
		wantType = TypeReg
	}
	if g.Name != w.name() || g.Linkname != w.Linkname || g.Typeflag != wantType || g.Size != w.Size ||
		g.Mode != w.Mode || int64(g.Uid) != w.Uid || int64(g.Gid) != w.Gid || g.Uname != w.Uname ||
		g.Gname != w.Gname || !g.ModTime.Equal(w.ModTime) {
		w2 := w.Header
		w2.Name = w.name()
		t.Errorf("%s:\n read %s\n want %s", reader, fmtGo(g), fmtHeader(w2))
	}
}

func checkGo(t *testing.T, path string, ws []want) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	i := 0
	for {
		g, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		if g.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if i >= len(ws) {
			t.Fatalf("archive/tar: extra member %q", g.Name)
		}
		sameAsWant(t, "archive/tar", g, ws[i])
		if ws[i].Data != nil {
			data, err := io.ReadAll(tr)
			if err != nil || !bytes.Equal(data, ws[i].Data) {
				t.Errorf("archive/tar: %s: content differs (%v)", g.Name, err)
			}
		}
		i++
	}
	if i != len(ws) {
		t.Errorf("archive/tar read %d members, want %d", i, len(ws))
	}
}

func checkDecoder(t *testing.T, path string, ws []want) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	res, err := decodeReaderAt(f, fi.Size(), fi.Size())
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(res.members) != len(ws) {
		t.Fatalf("decoded %d members, want %d: %q", len(res.members), len(ws), res.events)
	}
	for i, m := range res.members {
		w := ws[i].Header
		w.Name = ws[i].name()
		if w.Typeflag == TypeRegA {
			w.Typeflag = TypeReg
		}
		w.Format = m.Format
		if m.Header != w || !m.ModTime.Equal(w.ModTime) {
			t.Errorf("decoded\n %s\nwant\n %s", fmtHeader(m.Header), fmtHeader(w))
		}
		if ws[i].Data != nil {
			buf := make([]byte, m.DataSize)
			f.ReadAt(buf, m.DataOffset)
			if !bytes.Equal(buf, ws[i].Data) {
				t.Errorf("%s: content differs", m.Name)
			}
		}
	}
}

// gnuLine matches a line of tar -tv --full-time --numeric-owner.
// The time has a fraction when it is not whole, and the name is padded.
var gnuLine = regexp.MustCompile(`^(\S{10}) (\d+)/(\d+) +(\d+) (-?\d+-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) +(.*)$`)

// listedName is how tar -tv lists a member: name, then " -> target" for a
// symlink or " link to target" for a hard link.
func listedName(w want, hardlink string) string {
	switch w.Typeflag {
	case TypeSymlink:
		return w.name() + " -> " + w.Linkname
	case TypeLink:
		return w.name() + hardlink + w.Linkname
	}
	return w.name()
}

// charsetWarning is what GNU tar 1.34 prints for each member whose x
// header has a hdrcharset record (EncodeHeader writes one when a PAX
// string is not pure ASCII): it does not know the keyword, and reads the
// names right.
const charsetWarning = "tar: Ignoring unknown extended header keyword 'hdrcharset'\n"

// gnuTarWarnings returns what GNU tar prints on stderr reading the members
// ws: a charsetWarning for each member with a hdrcharset record.
func gnuTarWarnings(ws []want) string {
	var out string
	for _, w := range ws {
		if hdr, err := EncodeHeader(w.Header); err == nil && bytes.Contains(hdr, []byte(" hdrcharset=BINARY\n")) {
			out += charsetWarning
		}
	}
	return out
}

func checkGNUTar(t *testing.T, path string, ws []want, extract bool) {
	checkGNUTarWarnings(t, path, ws, extract, gnuTarWarnings(ws))
}

// checkGNUTarWarnings is checkGNUTar for an archive on which GNU tar
// prints warnings (and exits 0).
func checkGNUTarWarnings(t *testing.T, path string, ws []want, extract bool, warnings string) {
	out, stderr, err := run(t, nil, "tar", "-tv", "--full-time", "--numeric-owner", "--quoting-style=literal", "-f", path)
	if err != nil || stderr != warnings {
		t.Fatalf("tar -tv: %v, stderr %q", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(ws) {
		t.Fatalf("tar -tv listed %d members, want %d:\n%s", len(lines), len(ws), out)
	}
	for i, line := range lines {
		w := ws[i]
		m := gnuLine.FindStringSubmatch(line)
		wantTime := w.ModTime.UTC().Format("2006-01-02 15:04:05.999999999")
		if sec, ns := w.ModTime.Unix(), w.ModTime.Nanosecond(); sec < 0 && ns != 0 {
			// GNU tar 1.34 lists -1.5 s as 23:59:59.5 (it prints the
			// fraction after rounding the seconds towards zero); it reads
			// and extracts the time right (checked below, and by hand:
			// its own archive of a file touched to @-1.5 lists the same).
			wantTime = time.Unix(sec+1, int64(ns)).UTC().Format("2006-01-02 15:04:05.999999999")
		}
		if m == nil || m[2] != itoa(w.Uid) || m[3] != itoa(w.Gid) || m[4] != itoa(w.Size) ||
			m[5] != wantTime || m[6] != listedName(w, " link to ") {
			t.Errorf("tar -tv line %q; want %s %d/%d size %d %s", line, listedName(w, " link to "),
				w.Uid, w.Gid, w.Size, wantTime)
		}
	}
	if !extract {
		return
	}
	// Extraction warns about times before 1970 or in the future: those are
	// about the clock, not the archive.
	dir := t.TempDir()
	if _, stderr, err := run(t, nil, "tar", "-x", "--warning=no-timestamp", "-C", dir, "-f", path); err != nil || stderr != warnings {
		t.Fatalf("tar -x: %v, stderr %q", err, stderr)
	}
	// os.Root opens names relative to dir, so the 4095-byte names work.
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, w := range ws {
		if w.Typeflag != TypeReg && w.Typeflag != TypeRegA && w.Typeflag != TypeGNUSparse {
			continue
		}
		f, err := root.Open(w.name())
		if err != nil {
			t.Errorf("tar -x: %.80s: %v", w.name(), err)
			continue
		}
		data, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(data, w.Data) {
			t.Errorf("tar -x: %.80s: content differs (%v)", w.name(), err)
		}
		if fi, err := f.Stat(); err != nil || !fi.ModTime().Equal(w.ModTime) {
			t.Errorf("tar -x: %.80s: mtime %v, want %v (%v)", w.name(), fi.ModTime(), w.ModTime, err)
		}
		f.Close()
	}
}

// bsdLine matches a line of bsdtar -tv --numeric-owner.
var bsdLine = regexp.MustCompile(`^(\S{10})\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+\w{3}\s+\d+\s+[\d:]+\s(.*)$`)

func checkBSDTar(t *testing.T, path string, ws []want, convert bool) {
	out, stderr, err := run(t, nil, "bsdtar", "-tv", "--numeric-owner", "-f", path)
	if err != nil || stderr != "" {
		t.Fatalf("bsdtar -tv: %v, stderr %q", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(ws) {
		t.Fatalf("bsdtar -tv listed %d members, want %d:\n%s", len(lines), len(ws), out)
	}
	for i, line := range lines {
		w := ws[i]
		m := bsdLine.FindStringSubmatch(line)
		if m == nil || m[2] != itoa(w.Uid) || m[3] != itoa(w.Gid) || m[4] != itoa(w.Size) || m[5] != listedName(w, " link to ") {
			t.Errorf("bsdtar -tv line %q; want %s %d/%d size %d", line, listedName(w, " link to "), w.Uid, w.Gid, w.Size)
		}
	}
	if !convert {
		return
	}
	// bsdtar copies the members into a new pax archive: that shows every
	// field and the contents as bsdtar read them, with nanosecond mtimes.
	copied, stderr, err := run(t, nil, "bsdtar", "-c", "-f", "-", "--format", "pax", "@"+path)
	if err != nil || stderr != "" {
		t.Fatalf("bsdtar -c @archive: %v, stderr %q", err, stderr)
	}
	tr := tar.NewReader(strings.NewReader(copied))
	for i := 0; ; i++ {
		g, err := tr.Next()
		if err == io.EOF {
			if i != len(ws) {
				t.Errorf("bsdtar copied %d members, want %d", i, len(ws))
			}
			return
		}
		if err != nil {
			t.Fatalf("reading bsdtar's copy: %v", err)
		}
		if i >= len(ws) {
			t.Fatalf("bsdtar copied an extra member %q", g.Name)
		}
		sameAsWant(t, "bsdtar", g, ws[i])
		if data, err := io.ReadAll(tr); err != nil || !bytes.Equal(data, ws[i].Data) && ws[i].Data != nil {
			t.Errorf("bsdtar: %.80s: content differs (%v)", g.Name, err)
		}
	}
}

// pyList prints the members Python's tarfile reads, as JSON.
const pyList = `
import hashlib, json, sys, tarfile
out = []
with tarfile.open(sys.argv[1]) as tf:
    for ti in tf:
        h = ""
        if ti.isreg() and ti.size < (64 << 20):
            h = hashlib.sha256(tf.extractfile(ti).read()).hexdigest()
        out.append(dict(name=ti.name.encode("utf-8", "surrogateescape").hex(), size=ti.size,
                        mtime=repr(ti.mtime), uid=ti.uid, gid=ti.gid, uname=ti.uname, gname=ti.gname,
                        linkname=ti.linkname, type=ti.type.decode("latin-1"), sha256=h))
print(json.dumps(out))
`

func checkPython(t *testing.T, path string, ws []want) {
	out, stderr, err := run(t, nil, "python3", "-W", "error", "-c", pyList, path)
	if err != nil || stderr != "" {
		t.Fatalf("python3 tarfile: %v, stderr %q", err, stderr)
	}
	var got []struct {
		Name, Mtime, Uname, Gname, Linkname, Type, Sha256 string
		Size, Uid, Gid                                    int64
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ws) {
		t.Fatalf("python read %d members, want %d", len(got), len(ws))
	}
	for i, g := range got {
		w := ws[i]
		name, _ := hex.DecodeString(g.Name)
		// Python drops a directory's trailing '/'.
		wname := w.name()
		if w.Typeflag == TypeDir {
			wname = strings.TrimSuffix(wname, "/")
		}
		mtime, err := strconv.ParseFloat(g.Mtime, 64)
		wantMtime := float64(w.ModTime.Unix()) + float64(w.ModTime.Nanosecond())/1e9
		if err != nil || math.Abs(mtime-wantMtime) > 2e-6+math.Abs(wantMtime)*1e-15 {
			t.Errorf("python: %.80s: mtime %s, want %v", name, g.Mtime, wantMtime)
		}
		wantHash := ""
		if w.Data != nil && (w.Typeflag == TypeReg || w.Typeflag == TypeRegA) {
			sum := sha256.Sum256(w.Data)
			wantHash = hex.EncodeToString(sum[:])
		}
		if string(name) != wname || g.Size != w.Size || g.Uid != w.Uid || g.Gid != w.Gid || g.Uname != w.Uname ||
			g.Gname != w.Gname || g.Linkname != w.Linkname || g.Sha256 != wantHash {
			t.Errorf("python: %s; want %.80q size %d ids %d/%d %q/%q link %q", fmt.Sprint(g), wname, w.Size,
				w.Uid, w.Gid, w.Uname, w.Gname, w.Linkname)
		}
	}
}
