package kvtar

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// Invariant A (SPEC §4) checked with the real readers: after every write
// operation the device, read as a tar stream, lists without error or
// warning in GNU tar, bsdtar, Python's tarfile and Go's archive/tar, and
// extracting it with GNU tar yields exactly the store's values.
//
// The helpers in this file are shared by foreign_test.go, badinput_test.go
// and fuzz_test.go.

// toolPackages names the Debian package of each reader the tests run; a
// missing tool fails the test with that name (no skipping).
var toolPackages = map[string]string{
	"tar":     "tar",
	"bsdtar":  "libarchive-tools",
	"python3": "python3",
}

var (
	toolsOnce sync.Once
	toolsErr  error
	// pythonExe is the interpreter python3 runs (sys.executable): calling
	// it directly skips wrappers such as pyenv's shim (150 ms a call).
	pythonExe string
)

// needTools fails the test unless GNU tar, bsdtar and python3 are
// installed.
func needTools(t testing.TB) {
	t.Helper()
	toolsOnce.Do(func() {
		for _, name := range []string{"tar", "bsdtar", "python3"} {
			if _, err := exec.LookPath(name); err != nil {
				toolsErr = fmt.Errorf("%s is required: install the Debian package %s (apt-get install -y %s)",
					name, toolPackages[name], toolPackages[name])
				return
			}
		}
		out, err := exec.Command("tar", "--version").Output()
		if err != nil || !bytes.Contains(out, []byte("GNU tar")) {
			toolsErr = errors.New("tar is not GNU tar: install the Debian package tar")
			return
		}
		out, err = exec.Command("python3", "-c", "import sys, tarfile; print(sys.executable)").Output()
		if err != nil {
			toolsErr = fmt.Errorf("python3 cannot import tarfile (%v): install the Debian package python3", err)
			return
		}
		pythonExe = strings.TrimSpace(string(out))
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
}

// A toolRun is the outcome of one command.
type toolRun struct {
	cmd            string
	stdout, stderr string
	err            error
}

func (r toolRun) String() string {
	return fmt.Sprintf("%s: %v, stderr %q", r.cmd, r.err, r.stderr)
}

// stderrLines returns the lines of stderr, without GNU tar's closing
// "Exiting with failure status" line.
func (r toolRun) stderrLines() []string {
	var ls []string
	for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		if l != "" && !strings.Contains(l, "Exiting with failure status due to previous errors") {
			ls = append(ls, l)
		}
	}
	return ls
}

// runTool runs a command in the UTF-8 C locale, in UTC. It does not fail
// the test: callers compare the outcome (it may run on another goroutine).
func runTool(name string, args ...string) toolRun {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "TZ=UTC", "PYTHONIOENCODING=utf-8:surrogateescape")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	desc := []string{name}
	for _, a := range args {
		if strings.Contains(a, "\n") {
			a = "<script>"
		}
		desc = append(desc, a)
	}
	return toolRun{cmd: strings.Join(desc, " "), stdout: o.String(), stderr: e.String(), err: err}
}

// pyList lists the members Python's tarfile reads, one line each (type,
// size, name), and fails unless it stopped at a zero block: tarfile ends a
// listing silently at a header it cannot parse past the first member.
const pyList = `
import sys, tarfile
path = sys.argv[1]
with tarfile.open(path, "r:") as tf:
    for ti in tf:
        print(ti.type.decode("latin-1"), ti.size, ti.name)
    end = tf.offset
with open(path, "rb") as f:
    f.seek(end)
    b = f.read(512)
if len(b) == 512 and b != bytes(512):
    sys.exit("tarfile stopped at offset %d, which is not the end of the archive" % end)
`

// imageFile writes the first n bytes of the device's image to a sparse
// temporary file and returns its path. skip lists extents known to hold
// zeroes, which are not read (the data of huge members).
func imageFile(t testing.TB, dev *mem.Device, n int64, skip ...extent) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Truncate(n))
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	zero := make([]byte, chunk)
	r := dev.ReaderAt()
	for off := int64(0); off < n; off += chunk {
		if slices.ContainsFunc(skip, func(e extent) bool { return off >= e.off && off+chunk <= e.end() }) {
			continue
		}
		p := buf[:min(chunk, n-off)]
		_, err := r.ReadAt(p, off)
		require.NoError(t, err)
		if !bytes.Equal(p, zero[:len(p)]) {
			_, err := f.WriteAt(p, off)
			require.NoError(t, err)
		}
	}
	require.NoError(t, f.Close())
	return path
}

// Views keep a value whole up to smallValue bytes, as its SHA-256 (read
// as a stream) up to bigValue, and as its size and a few windows above
// (the 9 GiB sparse members of the golden archives). Holding only small
// values keeps the tests fast under -race, where every large buffer costs.
const (
	smallValue = 64 << 10
	bigValue   = 64 << 20
)

// windowLen is the length of a window of a big value.
const windowLen = 4096

// windowOffsets returns where the windows of a big value of size bytes
// start: its head, around 5 GiB (the data of the golden huge.bin), its
// tail.
func windowOffsets(size int64) []int64 {
	offs := []int64{0}
	if far := int64(5<<30) - windowLen/2; far < size {
		offs = append(offs, far)
	}
	if tail := size - windowLen; tail > 0 {
		offs = append(offs, tail)
	}
	return offs
}

// A fileView is a value as a reader sees it.
type fileView struct {
	size    int64
	data    []byte           // the contents, when size <= smallValue
	sum     []byte           // their SHA-256, when smallValue < size <= bigValue
	windows map[int64][]byte // some windows (offset → bytes), when size > bigValue
}

// bytesView is a value held whole.
func bytesView(data []byte) fileView { return fileView{size: int64(len(data)), data: data} }

// closeIfCloser closes r when it can be closed (a store's reader pins the
// value's space until it is closed).
func closeIfCloser(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// readView reads a value of size bytes: whole, as a stream into SHA-256
// (open), or in windows (readAt; errNoWindow skips a window).
func readView(size int64, open func() (io.Reader, error), readAt func(p []byte, off int64) error) (fileView, error) {
	fv := fileView{size: size}
	switch {
	case size <= smallValue:
		r, err := open()
		if err != nil {
			return fv, err
		}
		defer closeIfCloser(r)
		fv.data = make([]byte, size)
		_, err = io.ReadFull(r, fv.data)
		return fv, err
	case size <= bigValue:
		r, err := open()
		if err != nil {
			return fv, err
		}
		defer closeIfCloser(r)
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes of %d", n, size)
		}
		fv.sum = h.Sum(nil)
		return fv, err
	}
	fv.windows = map[int64][]byte{}
	for _, off := range windowOffsets(size) {
		p := make([]byte, min(windowLen, size-off))
		switch err := readAt(p, off); {
		case errors.Is(err, errNoWindow):
		case err != nil:
			return fv, err
		default:
			fv.windows[off] = p
		}
	}
	return fv, nil
}

// errNoWindow tells readView that a window cannot be read.
var errNoWindow = errors.New("window not read")

// digest returns the SHA-256 of a value not held in windows.
func (f fileView) digest() []byte {
	if f.sum != nil {
		return f.sum
	}
	s := sha256.Sum256(f.data)
	return s[:]
}

// sameFile compares two views of a value: sizes, then the contents (or
// their digests), or the windows both have.
func sameFile(a, b fileView) string {
	if a.size != b.size {
		return fmt.Sprintf("size %d, want %d", a.size, b.size)
	}
	if a.size <= bigValue {
		if !bytes.Equal(a.digest(), b.digest()) {
			return fmt.Sprintf("contents differ (%d bytes)", a.size)
		}
		return ""
	}
	for off, wa := range a.windows {
		if wb, ok := b.windows[off]; ok && !bytes.Equal(wa, wb) {
			return fmt.Sprintf("contents differ in the window at %d", off)
		}
	}
	return ""
}

// A view is what a store holds or what extracting an archive yields:
// values (regular files) by key string, dictionaries (directories) other
// than the root, and members not exposed as keys (symlinks, devices, FIFOs,
// unsafe names, dangling hard links) by raw member name.
type view struct {
	files map[string]fileView
	dirs  map[string]bool
	other map[string]string
}

func newView() view {
	return view{files: map[string]fileView{}, dirs: map[string]bool{}, other: map[string]string{}}
}

// implied returns v with the parents of every file and directory added to
// the directories (v is not changed).
func (v view) implied() view {
	dirs := maps.Clone(v.dirs)
	add := func(k string) {
		for i := strings.LastIndexByte(k, '/'); i > 0; i = strings.LastIndexByte(k[:i], '/') {
			dirs[k[:i]] = true
		}
	}
	for k := range v.files {
		add(k)
	}
	for k := range v.dirs {
		add(k)
	}
	return view{files: v.files, dirs: dirs, other: v.other}
}

// diffViews returns the differences between got and want in files and
// directories (not in the members not exposed), at most a few.
func diffViews(got, want view) []string {
	got, want = got.implied(), want.implied()
	var d []string
	for _, k := range sortedKeys(want.files) {
		g, ok := got.files[k]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("value %.120s missing", k))
		case sameFile(g, want.files[k]) != "":
			d = append(d, fmt.Sprintf("value %.120s: %s", k, sameFile(g, want.files[k])))
		}
	}
	for _, k := range sortedKeys(got.files) {
		if _, ok := want.files[k]; !ok {
			d = append(d, fmt.Sprintf("extra value %.120s (%d bytes)", k, got.files[k].size))
		}
	}
	for _, k := range sortedKeys(want.dirs) {
		if !got.dirs[k] {
			d = append(d, fmt.Sprintf("dictionary %.120s missing", k))
		}
	}
	for _, k := range sortedKeys(got.dirs) {
		if !want.dirs[k] {
			d = append(d, fmt.Sprintf("extra dictionary %.120s", k))
		}
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// requireSameView fails the test when got and want differ.
func requireSameView(t testing.TB, what string, got, want view) {
	t.Helper()
	if d := diffViews(got, want); len(d) > 0 {
		if len(d) > 12 {
			d = append(d[:12], fmt.Sprintf("... %d more", len(d)-12))
		}
		t.Fatalf("%s:\n  %s", what, strings.Join(d, "\n  "))
	}
}

// storeView reads every key of the store.
func storeView(t testing.TB, s kv.RO) view {
	t.Helper()
	v := newView()
	var walk func(k kv.Key)
	walk = func(k kv.Key) {
		es, err := s.List(k)
		require.NoError(t, err, "list %s", k)
		for _, e := range es {
			ks := e.Key.String()
			if e.Kind != kv.Value {
				v.dirs[ks] = true
				walk(e.Key)
				continue
			}
			size, err := s.Size(e.Key)
			require.NoError(t, err, "size %s", e.Key)
			fv, err := readView(size, func() (io.Reader, error) {
				r, err := s.Open(e.Key)
				if err != nil {
					return nil, err
				}
				return struct {
					io.Reader
					io.Closer
				}{kv.NewStreamReader(r), r}, nil
			}, func(p []byte, off int64) error {
				got, err := s.GetPartial(e.Key, off, int64(len(p)))
				if err == nil && len(got) != len(p) {
					err = fmt.Errorf("get_partial %d at %d returned %d bytes", len(p), off, len(got))
				}
				copy(p, got)
				return err
			})
			require.NoError(t, err, "reading %s", e.Key)
			v.files[ks] = fv
		}
	}
	walk(kv.Root)
	return v
}

// viewKey normalizes a member name as tar extraction (and the store, SPEC
// §2) does: one leading "./" or "/" stripped, "." and empty segments
// dropped. It reports false for names with a ".." segment.
func viewKey(name string) (string, bool) {
	switch {
	case strings.HasPrefix(name, "./"):
		name = name[2:]
	case strings.HasPrefix(name, "/"):
		name = name[1:]
	}
	var segs []string
	for _, s := range strings.Split(name, "/") {
		switch s {
		case "", ".":
		case "..":
			return "", false
		default:
			segs = append(segs, s)
		}
	}
	return "/" + strings.Join(segs, "/"), true
}

// goView reads an archive with Go's archive/tar and returns what extracting
// it yields (later members replacing earlier ones, hard links holding
// their target's bytes, sparse members expanded), and the number of
// members other readers list (all but g headers). Of a big value only the
// head window is read: archive/tar has no exported way to skip the holes of
// a sparse member, and reading 9 GiB of zeroes under -race takes minutes;
// the other windows are compared with GNU tar's extraction.
func goView(t testing.TB, r io.Reader) (view, int) {
	t.Helper()
	v := newView()
	n := 0
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return v, n
		}
		require.NoError(t, err, "archive/tar after %d members", n)
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		n++
		k, ok := viewKey(h.Name)
		if !ok {
			v.other[h.Name] = "unsafe name"
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg, '\x00', tar.TypeGNUSparse, tar.TypeCont:
			if k == "/" {
				v.other[h.Name] = "regular file named like the root"
				continue
			}
			fv, err := readView(h.Size, func() (io.Reader, error) { return tr, nil }, func(p []byte, off int64) error {
				if off != 0 {
					return errNoWindow // a stream: only the head (see above)
				}
				_, err := io.ReadFull(tr, p)
				return err
			})
			require.NoError(t, err, "archive/tar reading %s", h.Name)
			v.putFile(t, k, fv)
		case tar.TypeDir:
			if k == "/" {
				continue
			}
			for p := range v.files {
				if p == k || strings.HasPrefix(k, p+"/") {
					t.Fatalf("archive/tar: directory %q over the value %s: the store calls this corrupt", h.Name, p)
				}
			}
			v.dirs[k] = true
		case tar.TypeLink:
			tk, ok := viewKey(h.Linkname)
			fv, found := v.files[tk]
			if !ok || !found {
				v.other[h.Name] = "hard link to a missing file"
				continue
			}
			v.putFile(t, k, fv)
		default:
			v.other[h.Name] = fmt.Sprintf("type %q", h.Typeflag)
		}
	}
}

// putFile binds k to fv, replacing what was below k (a value replaces a
// directory, as tar extraction and the store's scan do).
func (v view) putFile(t testing.TB, k string, fv fileView) {
	t.Helper()
	for p := range v.files {
		if strings.HasPrefix(k, p+"/") {
			t.Fatalf("view: value %s below the value %s", k, p)
		}
	}
	for p := range v.files {
		if strings.HasPrefix(p, k+"/") {
			delete(v.files, p)
		}
	}
	for p := range v.dirs {
		if p == k || strings.HasPrefix(p, k+"/") {
			delete(v.dirs, p)
		}
	}
	v.files[k] = fv
}

// extractedView walks a directory tar extracted into.
func extractedView(t testing.TB, dir string) view {
	t.Helper()
	v := newView()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		k := "/" + filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			v.dirs[k] = true
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			fv, err := readView(fi.Size(), func() (io.Reader, error) { return f, nil }, func(p []byte, off int64) error {
				_, err := f.ReadAt(p, off)
				return err
			})
			v.files[k] = fv
			return err
		default:
			v.other[k] = d.Type().String()
		}
		return nil
	})
	require.NoError(t, err)
	return v
}

// A baseline is what the readers said about a foreign archive before the
// store wrote to it: writes must not add errors or warnings (SPEC §4,
// Invariant C: "writing to such an archive keeps Invariant A"). The zero
// baseline allows nothing.
type baseline struct {
	failed   map[string]bool            // tool → it exited non-zero
	allowed  map[string]map[string]bool // tool → stderr lines it printed
	foreign  bool                       // extract with --warning=no-timestamp (foreign mtimes before 1970)
	listOnly bool                       // do not extract (members of 9 GiB)
}

// toolRuns runs the three listers and GNU tar's extraction (unless dir is
// "") concurrently on the archive at path; the extraction goes to dir.
func toolRuns(path, dir string, foreign bool) map[string]toolRun {
	xargs := []string{"-x", "-C", dir, "-f", path}
	if foreign {
		xargs = append([]string{"--warning=no-timestamp"}, xargs...)
	}
	cmds := map[string][]string{
		"tar -t":    {"tar", "--quoting-style=literal", "-tvf", path},
		"bsdtar -t": {"bsdtar", "-tvf", path},
		"python":    {pythonExe, "-W", "error", "-c", pyList, path},
		"tar -x":    append([]string{"tar"}, xargs...),
	}
	if dir == "" {
		delete(cmds, "tar -x")
	}
	out := map[string]toolRun{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runTool(c[0], c[1:]...)
			mu.Lock()
			out[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// newBaseline records what the readers said about an archive.
func newBaseline(runs map[string]toolRun) baseline {
	b := baseline{failed: map[string]bool{}, allowed: map[string]map[string]bool{}, foreign: true}
	for name, r := range runs {
		b.failed[name] = r.err != nil
		b.allowed[name] = map[string]bool{}
		for _, l := range r.stderrLines() {
			b.allowed[name][l] = true
		}
	}
	return b
}

// checkReaders checks Invariant A on the archive image at path: GNU tar,
// bsdtar and Python list the members archive/tar lists, with no error or warning (beyond
// the baseline), and GNU tar extracts exactly want.
func checkReaders(t testing.TB, path string, members int, want view, base baseline) {
	t.Helper()
	needTools(t)
	dir := ""
	if !base.listOnly {
		dir = t.TempDir()
	}
	runs := toolRuns(path, dir, base.foreign)
	for _, name := range []string{"tar -t", "bsdtar -t", "python", "tar -x"} {
		r, ok := runs[name]
		if !ok {
			continue
		}
		if r.err != nil && !base.failed[name] {
			t.Errorf("%s", r)
		}
		for _, l := range r.stderrLines() {
			if !base.allowed[name][l] {
				t.Errorf("%s: new message %q", r.cmd, l)
			}
		}
		if name == "tar -x" {
			continue
		}
		if n := strings.Count(r.stdout, "\n"); n != members {
			t.Errorf("%s listed %d members, archive/tar %d:\n%s", r.cmd, n, members, r.stdout)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if dir == "" {
		return
	}
	got := extractedView(t, dir)
	for k, what := range got.other {
		if what != fs.ModeSymlink.String() {
			t.Errorf("tar -x made %s, a %s", k, what)
		}
	}
	requireSameView(t, "tar -x yields", got, want)
}

// checkStoreInvariants runs Check (no fatal problem) and compares the
// store with what archive/tar reads on its device. It returns the store's
// view and the number of members archive/tar listed.
func checkStoreInvariants(t testing.TB, s *Store, dev *mem.Device) (view, int) {
	t.Helper()
	probs, err := s.Check()
	require.NoError(t, err, "check")
	for _, p := range probs {
		if p.Fatal {
			t.Errorf("Check: %s", p)
		}
	}
	want := storeView(t, s)
	got, n := goView(t, dev.ReaderAt())
	requireSameView(t, "archive/tar reads", got, want)
	if t.Failed() {
		t.FailNow()
	}
	return want, n
}

// archiveEnd returns how much of the image the readers need: up to the end
// of the archive area.
func archiveEnd(s *Store) int64 { return s.limit }

// An interopOp is one step of the interop workload.
type interopOp struct {
	name string
	do   func(s *Store) error
}

// interopWorkload covers every write operation, and keys that need PAX
// path records, 255-byte segments, non-ASCII and spaces.
func interopWorkload() []interopOp {
	k := kv.MustKey
	seg := func(c string, n int) string { return strings.Repeat(c, n) }
	long100 := "/" + seg("a", 60) + "/" + seg("b", 60)                                  // 122 bytes: ustar prefix + name
	long256 := "/" + seg("c", 100) + "/" + seg("d", 100) + "/" + seg("e", 100)          // 303 bytes
	seg255 := "/" + seg("f", 255) + "/v"                                                // a 255-byte segment
	key1000 := "/" + strings.Join([]string{seg("g", 198), seg("h", 198), seg("i", 198), // about 1000 bytes
		seg("j", 198), seg("k", 198)}, "/") + "/end"
	nonASCII := "/héllo/wörld-日本語.txt"
	spaces := "/with space/a b c"
	return []interopOp{
		{"set small", func(s *Store) error { return s.Set(k("/small"), pattern(1, 100)) }},
		{"set large", func(s *Store) error { return s.Set(k("/large"), pattern(2, 300000)) }},
		{"set empty", func(s *Store) error { return s.Set(k("/empty"), nil) }},
		{"set dir/a", func(s *Store) error { return s.Set(k("/dir/a"), pattern(3, 700)) }},
		{"set dir/sub/b", func(s *Store) error { return s.Set(k("/dir/sub/b"), pattern(4, 5000)) }},
		{"set d2/x", func(s *Store) error { return s.Set(k("/d2/x"), pattern(5, 1000)) }},
		{"set d2/y streamed", func(s *Store) error {
			return s.SetFrom(k("/d2/y"), bytes.NewReader(pattern(6, 20000)), 20000)
		}},
		{"overwrite small", func(s *Store) error { return s.Set(k("/small"), pattern(7, 3000)) }},
		{"set over a dictionary", func(s *Store) error { return s.Set(k("/dir"), pattern(8, 1234)) }},
		{"set_partial in place", func(s *Store) error { return s.SetPartial(k("/large"), 1000, pattern(9, 5000)) }},
		{"set_partial append", func(s *Store) error { return s.SetPartial(k("/small"), 1<<20, pattern(10, 600)) }},
		{"set_partial creating", func(s *Store) error { return s.SetPartial(k("/new/p"), 0, pattern(11, 50)) }},
		{"allocate with mtime", func(s *Store) error {
			return s.Allocate(k("/alloc"), 10000, time.Date(2005, 6, 7, 8, 9, 10, 0, time.UTC))
		}},
		{"set key > 100 bytes", func(s *Store) error { return s.Set(k(long100), pattern(12, 2000)) }},
		{"set key > 256 bytes", func(s *Store) error { return s.Set(k(long256), pattern(13, 600)) }},
		{"set 255-byte segment", func(s *Store) error { return s.Set(k(seg255), pattern(14, 10)) }},
		{"set 1000-byte key", func(s *Store) error { return s.Set(k(key1000), pattern(15, 5000)) }},
		{"set non-ASCII key", func(s *Store) error { return s.Set(k(nonASCII), []byte("ü\n")) }},
		{"set key with spaces", func(s *Store) error { return s.Set(k(spaces), pattern(16, 513)) }},
		{"set_partial in place, long key", func(s *Store) error { return s.SetPartial(k(long256), 10, []byte("patched")) }},
		{"remove value", func(s *Store) error { return s.Remove(k("/empty")) }},
		{"rename value", func(s *Store) error { return s.Rename(k("/small"), k("/moved/small")) }},
		{"rename dictionary", func(s *Store) error { return s.Rename(k("/d2"), k("/d3/inner")) }},
		{"rename into dictionary", func(s *Store) error { return s.Rename(k("/alloc"), k("/d3")) }},
		{"rename replacing a value", func(s *Store) error { return s.Rename(k("/moved/small"), k("/dir")) }},
		{"rename long key to short", func(s *Store) error { return s.Rename(k(key1000), k("/from-long")) }},
		{"rename short key to long", func(s *Store) error { return s.Rename(k("/dir"), k(long256+"-renamed")) }},
		{"rename non-ASCII dictionary", func(s *Store) error { return s.Rename(k("/héllo"), k("/with space/ünïcode")) }},
		{"remove dictionary", func(s *Store) error { return s.Remove(k("/d3")) }},
		{"remove root", func(s *Store) error { return s.Remove(kv.Root) }},
		{"set after emptying", func(s *Store) error { return s.Set(k("/after"), pattern(17, 4097)) }},
	}
}

// TestInteropEveryWrite runs the workload on memory devices of 512- and
// 4096-byte sectors and checks Invariant A after every operation: Check,
// archive/tar, and (at 512) GNU tar, bsdtar, Python and GNU tar's
// extraction; at 4096 the real readers run on the final state and after
// every fourth operation.
func TestInteropEveryWrite(t *testing.T) {
	needTools(t)
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			t.Parallel()
			dev, err := mem.New(ss, (4<<20)/uint64(ss))
			require.NoError(t, err)
			require.NoError(t, Format(dev))
			clk := clock.NewFake(time.Unix(1e9, 0))
			s, err := New(clk, dev)
			require.NoError(t, err)
			checkWhenDone(t, s, dev)
			holesFirst(s) // so that the workload's values land in holes
			ops := interopWorkload()
			for i, op := range ops {
				clk.Advance(time.Second)
				require.NoError(t, op.do(s), "op %d %q", i, op.name)
				want, members := checkStoreInvariants(t, s, dev)
				if ss == 512 || i%4 == 3 || i == len(ops)-1 {
					path := imageFile(t, dev, archiveEnd(s))
					checkReaders(t, path, members, want, baseline{})
				}
				if t.Failed() {
					t.Fatalf("after op %d %q", i, op.name)
				}
			}
			// The state survives a reopen.
			want := storeView(t, s)
			require.NoError(t, s.Close())
			s, err = New(clk, dev.Reopen())
			require.NoError(t, err)
			requireSameView(t, "after reopen", storeView(t, s), want)
			checkStoreInvariants(t, s, dev)
			require.NoError(t, s.Close())
		})
	}
}
