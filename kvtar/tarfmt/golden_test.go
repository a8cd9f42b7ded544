package tarfmt

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenFiles returns the archives made by real tools (testdata/gen.sh).
func goldenFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/*.tar")
	if err != nil || len(files) < 20 {
		t.Fatalf("testdata archives: %v (%d found)", err, len(files))
	}
	return files
}

// TestGolden decodes every archive written by GNU tar, bsdtar, Python and
// Go and compares each member, header and content, with archive/tar.
func TestGolden(t *testing.T) {
	for _, f := range goldenFiles(t) {
		if strings.HasPrefix(filepath.Base(f), "go-huge-") {
			continue // header only: TestGoldenHuge
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res := compareWithGo(t, data)
			if len(res.members) == 0 {
				t.Fatal("no members")
			}
			for _, m := range res.members {
				if m.Start > m.HeaderOffset || m.HeaderOffset >= m.DataOffset || m.End < m.DataOffset+m.DataSize ||
					m.End%BlockSize != 0 || m.Start%BlockSize != 0 {
					t.Errorf("%s: inconsistent layout %+v", m.Name, m)
				}
			}
		})
	}
}

// TestGoldenSpecifics checks what each tool was asked to produce, so that
// a regenerated archive that lost a feature is noticed.
func TestGoldenSpecifics(t *testing.T) {
	find := func(t *testing.T, file, suffix string) *Member {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		res, err := decodeArchive(data, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for i := len(res.members) - 1; i >= 0; i-- { // the last match: appended members come last
			if m := res.members[i]; strings.HasSuffix(m.Name, suffix) {
				return m
			}
		}
		t.Fatalf("%s: no member ending in %q", file, suffix)
		return nil
	}
	for _, f := range []string{"gnutar-gnu.tar", "gnutar-oldgnu.tar", "gnutar-posix.tar", "python-pax.tar",
		"python-gnu.tar", "bsdtar-pax.tar", "go-pax.tar", "go-gnu.tar"} {
		m := find(t, f, "/deep.txt")
		if len(m.Name) <= 256 || m.Start == m.HeaderOffset {
			t.Errorf("%s: long name %d bytes, start %d header %d", f, len(m.Name), m.Start, m.HeaderOffset)
		}
		if l := find(t, f, "longlink"); len(l.Linkname) <= 100 || l.Typeflag != TypeSymlink {
			t.Errorf("%s: longlink %q", f, l.Linkname)
		}
	}
	for _, f := range []string{"gnutar-posix.tar", "python-pax.tar", "bsdtar-pax.tar", "go-pax.tar"} {
		// Python stores the float st_mtime: 1600000000.1234567
		if m := find(t, f, "subsec.txt"); m.ModTime.Nanosecond()/100 != 1234567 || m.Format != FormatPAX {
			t.Errorf("%s: subsec mtime %v format %v", f, m.ModTime, m.Format)
		}
		if m := find(t, f, "old.txt"); m.ModTime.Unix() != -86400 {
			t.Errorf("%s: old mtime %v", f, m.ModTime)
		}
	}
	for _, c := range []struct{ file, name string }{{"gnutar-gnu.tar", "hello.txt"}, {"gnutar-posix.tar", "hello.txt"},
		{"python-gnu.tar", "big-ids.txt"}, {"python-pax.tar", "big-ids.txt"}} {
		m := find(t, c.file, c.name)
		if m.Name == "./hello.txt" || m.Uid != 3000000 || m.Gid != 4000000 {
			t.Errorf("%s: %s ids %d/%d", c.file, m.Name, m.Uid, m.Gid)
		}
	}
	// 41 entries in the archives: 40 fragments and the empty entry that
	// marks the size, which Member.Sparse leaves out.
	for _, c := range []struct {
		file    string
		entries int
	}{{"gnutar-gnu-sparse.tar", 40}, {"gnutar-oldgnu-sparse.tar", 40}, {"gnutar-posix-sparse-0.0.tar", 40},
		{"gnutar-posix-sparse-0.1.tar", 40}, {"gnutar-posix-sparse-1.0.tar", 40}} {
		m := find(t, c.file, "frag.bin")
		if len(m.Sparse) != c.entries || m.Size != 1<<20 || m.DataSize != 40*512 {
			t.Errorf("%s: frag.bin: %d entries, size %d, data %d", c.file, len(m.Sparse), m.Size, m.DataSize)
		}
	}
	for _, f := range []string{"gnutar-gnu-sparse.tar", "gnutar-posix-sparse-0.0.tar", "gnutar-posix-sparse-0.1.tar",
		"gnutar-posix-sparse-1.0.tar"} {
		if m := find(t, f, "huge.bin"); m.Size != 9<<30 || m.Sparse == nil {
			t.Errorf("%s: huge.bin size %d", f, m.Size)
		}
	}
	if m := find(t, "bsdtar-pax-sparse.tar", "sparse.bin"); m.Sparse == nil || m.Name != "sparse.bin" {
		t.Errorf("bsdtar sparse: %+v", m)
	}
	if m := find(t, "go-base256.tar", "b256-0.txt"); m.Uid != 1000 || m.Size != 14 {
		t.Errorf("base-256: %+v", m)
	}
	if m := find(t, "gnutar-v7.tar", "hello.txt"); m.Format != FormatV7 || m.Uname != "" {
		t.Errorf("v7: %+v", m)
	}
}

// TestGoldenHuge: the go-huge-* archives hold one 9 GiB member, header only
// (base-256 size in GNU, a PAX size record in pax). With an unknown end the
// header decodes as archive/tar reads it; with the real end it is
// ErrTruncated, never a member whose data runs past the input.
func TestGoldenHuge(t *testing.T) {
	for _, f := range []string{"go-huge-gnu.tar", "go-huge-pax.tar"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		g, err := tar.NewReader(bytes.NewReader(data)).Next()
		if err != nil {
			t.Fatal(err)
		}
		d := NewDecoder(math.MaxInt64)
		st, err := d.Block(0, block(data, 0))
		for err == nil && st.Kind == StepNeedData {
			st, err = d.Data(bytesAt(data, st.Offset, st.Len))
		}
		for err == nil && st.Kind == StepNeedBlock {
			st, err = d.Block(st.Next, block(data, st.Next))
			for err == nil && st.Kind == StepNeedData {
				st, err = d.Data(bytesAt(data, st.Offset, st.Len))
			}
		}
		if err != nil || st.Kind != StepMember {
			t.Fatalf("%s: %v %+v", f, err, st)
		}
		sameHeader(t, f, st.Member.Header, g)
		if st.Member.Size != 9<<30 || st.Member.DataSize != 9<<30 {
			t.Errorf("%s: size %d", f, st.Member.Size)
		}
		_, err = decodeArchive(data, int64(len(data)))
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("%s with its real end: %v, want ErrTruncated", f, err)
		}
		checkFormatError(t, err)
	}
}

// pySparse prints, as JSON, the sparse maps Python's tarfile reads from
// the archives named in argv: [[file, name, size, [[offset, length]…]]…].
const pySparse = `
import json, sys, tarfile
out = []
for f in sys.argv[1:]:
    with tarfile.open(f) as tf:
        for ti in tf:
            if ti.sparse is not None:
                out.append([f, ti.name, ti.size, [[o, n] for o, n in ti.sparse]])
print(json.dumps(out))
`

// TestGoldenSparseMaps compares the decoded sparse maps with those Python's
// tarfile reads (zero-length fragments left out: Python drops some), for
// every sparse member, including the 9 GiB ones whose content
// compareWithGo does not stream; and checks those members' data.
func TestGoldenSparseMaps(t *testing.T) {
	var files []string
	for _, f := range goldenFiles(t) {
		if strings.Contains(f, "sparse") {
			files = append(files, f)
		}
	}
	out, stderr, err := run(t, nil, "python3", append([]string{"-c", pySparse}, files...)...)
	if err != nil {
		t.Fatalf("python3: %v: %s", err, stderr)
	}
	var py [][]any
	if err := json.Unmarshal([]byte(out), &py); err != nil {
		t.Fatal(err)
	}
	ours := map[string]*Member{}
	datas := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := decodeArchive(data, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.members {
			ours[f+":"+m.Name] = m
			datas[f+":"+m.Name] = data
		}
	}
	if len(py) < 14 {
		t.Fatalf("python found %d sparse members", len(py))
	}
	for _, p := range py {
		key := p[0].(string) + ":" + p[1].(string)
		m := ours[key]
		if m == nil {
			t.Errorf("%s: not decoded", key)
			continue
		}
		var want, got []SparseEntry
		for _, e := range p[3].([]any) {
			e := e.([]any)
			if n := int64(e[1].(float64)); n != 0 {
				want = append(want, SparseEntry{Offset: int64(e[0].(float64)), Length: n})
			}
		}
		for _, e := range m.Sparse {
			if e.Length != 0 {
				got = append(got, e)
			}
		}
		if int64(p[2].(float64)) != m.Size || fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("%s: size %d map %v; python: size %v map %v", key, m.Size, got, p[2], want)
		}
		if m.Name == "huge.bin" {
			buf := make([]byte, 16)
			readExpected(datas[key], m, 5<<30-4, buf)
			if string(buf) != "\x00\x00\x00\x00far away\x00\x00\x00\x00" {
				t.Errorf("%s: content around 5 GiB: %q", key, buf)
			}
		}
	}
}
