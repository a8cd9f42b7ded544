package kvtar

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// Odd foreign archives (testdata/odd, made by the generators of
// tarfmt/odd_test.go, which say what each reader does with them): the
// store opens each as GNU tar extracts it, or refuses it where GNU tar
// fails or extracts other bytes than bsdtar, Python and Go.

// oddStore says, for each archive of testdata/odd, whether the store
// opens it (nil) or refuses it with kv.ErrCorrupt wrapping that tarfmt
// sentinel. Measured with GNU tar 1.34, bsdtar 3.6.2, Python 3.11 and Go
// (details next to each generator in tarfmt/odd_test.go).
var oddStore = map[string]error{
	// Numeric fields, read by GNU tar's rules: one leading NUL skipped, a
	// second one ends the field.
	"num-size-leading-nuls.tar":  nil,                // size 0 (GNU tar, bsdtar, Python; Go reads 14)
	"num-size-one-nul.tar":       nil,                // size 14 (GNU tar, Go; bsdtar and Python read 0)
	"num-mtime-leading-nuls.tar": nil,                // mtime 0 (GNU tar, bsdtar, Python; Go 2739128)
	"num-ids-leading-nuls.tar":   nil,                // mode, uid, gid 0
	"num-size-trailing-junk.tar": nil,                // "00000000003 x": 3 for all
	"num-size-nul-junk.tar":      nil,                // "3\0zzz…": 3 (bsdtar refuses)
	"num-devmajor-blank.tar":     nil,                // GNU tar reads device numbers of devices only
	"num-chksum-one-nul.tar":     nil,                // GNU tar and Go accept; bsdtar and Python refuse
	"num-mtime-blank.tar":        tarfmt.ErrNumber,   // GNU tar: "Blanks in header", exit 2
	"num-size-blank.tar":         tarfmt.ErrNumber,   // GNU tar: skips the header, exit 2
	"num-chksum-two-nuls.tar":    tarfmt.ErrChecksum, // GNU tar: bad header, exit 2 (Go accepts)
	// Two GNU long names (links) for one member: the last one wins (GNU
	// tar, bsdtar, Go; Python keeps the first).
	"long-two-L.tar":          nil,
	"long-two-K-symlink.tar":  nil,
	"long-two-K-hardlink.tar": nil,
	// Sparse maps declaring or holding many entries.
	"sparse-pax01-numblocks-huge.tar":   nil,
	"sparse-pax00-numblocks-huge.tar":   nil,
	"sparse-pax10-big-map.tar.gz":       nil,
	"sparse-oldgnu-big-map.tar.gz":      nil,
	"sparse-pax10-count-huge-short.tar": tarfmt.ErrSparse, // every reader fails
	"sparse-pax01-numblocks-small.tar":  tarfmt.ErrSparse, // GNU tar: "excess GNU.sparse.map", exit 2
	"sparse-pax01-no-numblocks.tar":     tarfmt.ErrSparse, // the same
	"sparse-pax01-numblocks-late.tar":   tarfmt.ErrSparse, // the same
	"sparse-oldgnu-unaligned.tar":       tarfmt.ErrSparse, // GNU tar extracts other bytes (exit 0)
	"sparse-oldgnu-short-map.tar":       tarfmt.ErrSparse, // GNU tar extracts 1027 bytes of 1100 (exit 0)
	// PAX mtime with letters: read up to them (GNU tar, bsdtar).
	"mtime-letters.tar":          nil,
	"mtime-letters-fraction.tar": nil,
	"mtime-no-digits.tar":        tarfmt.ErrNumber, // GNU tar: "Malformed extended header", exit 2
	// A NUL in a PAX value: read up to it (GNU tar, bsdtar).
	"nul-path.tar":     nil,
	"nul-linkpath.tar": nil,
	"nul-size.tar":     nil,
	// Names that are not NFC or not UTF-8 (GNU tar warns about
	// hdrcharset, and reads the bytes).
	"nfc-store-nfd-key.tar":   nil,
	"nfc-store-raw-key.tar":   nil,
	"nfc-store-nfd-link.tar":  nil,
	"nfc-nfd-path-utf8.tar":   nil,
	"nfc-nfd-path-binary.tar": nil,
}

// oddHdrcharsetWarning is the message GNU tar 1.34 prints for a header
// with a hdrcharset record; it reads the names right.
const oddHdrcharsetWarning = "tar: Ignoring unknown extended header keyword 'hdrcharset'"

// readOddArchive reads an archive of testdata/odd, uncompressed.
func readOddArchive(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	if !strings.HasSuffix(path, ".gz") {
		return raw
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	require.NoError(t, err)
	data, err := io.ReadAll(zr)
	require.NoError(t, err)
	return data
}

// TestOddArchives opens each odd archive on a memory device, read-only and
// writable. An archive the store opens holds what GNU tar extracts from
// it: the same values (contents and mtimes) and dictionaries; one it
// refuses fails New with kv.ErrCorrupt and the codec's sentinel, and New
// writes nothing.
func TestOddArchives(t *testing.T) {
	needTools(t)
	files, err := filepath.Glob("testdata/odd/*.tar*")
	require.NoError(t, err)
	require.Len(t, files, len(oddStore), "testdata/odd and oddStore list other archives")
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sentinel, ok := oddStore[name]
			require.True(t, ok, "%s is not in oddStore", name)
			raw := readOddArchive(t, f)
			size := (len(raw)+511)/512*512 + 1<<20
			for _, ro := range []bool{true, false} {
				dev, img := deviceOf(t, raw, 512, size)
				open := dev
				if ro {
					open = dev.ReadOnlyView()
				}
				s, err := newNoPanic(t, clock.NewFake(time.Unix(1.7e9, 0)), open)
				if sentinel != nil {
					require.Nil(t, s)
					requireCorrupt(t, err, -1)
					require.ErrorIs(t, err, sentinel)
					sameImage(t, dev, img, "New refusing an odd archive")
					continue
				}
				require.NoError(t, err, "read-only %v", ro)
				checkOddStore(t, s, raw)
				require.NoError(t, s.Close())
				if ro {
					sameImage(t, dev, img, "read-only open")
				}
			}
		})
	}
}

// checkOddStore compares the store with GNU tar's extraction of raw.
func checkOddStore(t *testing.T, s *Store, raw []byte) {
	t.Helper()
	dir := t.TempDir()
	r := runTool("tar", "-x", "--warning=no-timestamp", "-C", dir, "-f", writeTemp(t, raw))
	require.NoError(t, r.err, "%s", r)
	for _, l := range r.stderrLines() {
		require.Equal(t, oddHdrcharsetWarning, l, "%s", r)
	}
	want := extractedView(t, dir)
	requireSameView(t, "store vs tar -x", storeView(t, s), want)
	for k := range want.files {
		got, err := s.LastModified(kv.MustKey(k))
		require.NoError(t, err, "last_modified %q", k)
		fi, err := os.Lstat(filepath.Join(dir, k))
		require.NoError(t, err)
		require.True(t, got.Equal(fi.ModTime()), "%q: store mtime %v, tar -x %v", k, got, fi.ModTime())
	}
}

// TestOddStoreNonNFCKeys: the store writes keys too long for ustar that
// are not in Unicode normal form C, or not UTF-8, with hdrcharset=BINARY
// (tarfmt.EncodeHeader), so that bsdtar extracts them under their exact
// bytes (without the record, bsdtar 3.6.2 extracts an NFD name as NFC and
// refuses a name that is not UTF-8), and GNU tar and Python list them as
// they are. GNU tar 1.34 warns about the keyword (exit 0).
func TestOddStoreNonNFCKeys(t *testing.T) {
	needTools(t)
	s, dev := newMemStore(t, 512, 2<<20)
	seg := func(p string) string { return strings.Repeat(p, 40) }
	values := map[string][]byte{
		"/" + seg("cafe\u0301/") + "nfd":   []byte("nfd\n"),
		"/" + seg("raw-\xff\xfe/") + "raw": []byte("raw\n"),
		"/short-cafe\u0301":                []byte("ustar\n"), // fits ustar: no record
	}
	for k, v := range values {
		require.NoError(t, s.Set(kv.MustKey(k), v))
	}
	want := storeView(t, s)
	require.Len(t, want.files, len(values))
	path := imageFile(t, dev, archiveEnd(s))

	dir := t.TempDir()
	r := runTool("tar", "-x", "-C", dir, "-f", path)
	require.NoError(t, r.err, "%s", r)
	require.Equal(t, []string{oddHdrcharsetWarning, oddHdrcharsetWarning}, r.stderrLines(), "%s", r)
	requireSameView(t, "tar -x yields", extractedView(t, dir), want)

	for _, locale := range []string{"C.UTF-8", "C"} {
		dir := t.TempDir()
		cmd := exec.Command("bsdtar", "-x", "-C", dir, "-f", path)
		cmd.Env = append(os.Environ(), "LC_ALL="+locale)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "bsdtar -x in %s: %s", locale, out)
		require.Empty(t, out, "bsdtar -x in %s", locale)
		requireSameView(t, "bsdtar -x in "+locale+" yields", extractedView(t, dir), want)
	}

	r = runTool(pythonExe, "-W", "error", "-c", pyList, path)
	require.NoError(t, r.err, "%s", r)
	for k := range values {
		require.Contains(t, r.stdout, " "+k[1:]+"\n", "python lists %q", k)
	}
}
