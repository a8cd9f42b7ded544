package kvtar

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
	"github.com/tarstore/tarstore/kvtar/internal/blockio"
)

// contents returns every value of the store, by key string.
func contents(t testing.TB, s kv.RO) map[string][]byte {
	t.Helper()
	return kvtest.Values(t, s)
}

// goTarContents reads an archive image with Go's archive/tar and returns
// what extracting it yields: regular files by "/"+name, later members
// replacing earlier ones.
func goTarContents(t testing.TB, r io.Reader) map[string][]byte {
	t.Helper()
	tr := tar.NewReader(r)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err, "archive/tar")
		switch h.Typeflag {
		case tar.TypeXGlobalHeader:
			continue
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			require.NoError(t, err, "archive/tar reading %s", h.Name)
			name := "/" + strings.TrimPrefix(h.Name, "/")
			for k := range out { // a value replaces what was below it
				if strings.HasPrefix(k, name+"/") {
					delete(out, k)
				}
			}
			out[name] = b
		default:
			t.Fatalf("archive/tar: unexpected member %q of type %q", h.Name, h.Typeflag)
		}
	}
}

// checkStore runs Check and compares the device, read by archive/tar, with
// the store.
func checkStore(t testing.TB, s *Store, image io.Reader) {
	t.Helper()
	probs, err := s.Check()
	require.NoError(t, err)
	for _, p := range probs {
		assert.False(t, p.Fatal, "Check: %s", p)
	}
	want := contents(t, s)
	got := goTarContents(t, image)
	if !assert.Equal(t, len(want), len(got), "number of values") {
		return
	}
	for k, v := range want {
		if !bytes.Equal(v, got[k]) {
			t.Errorf("archive/tar extracts %s as %d bytes, the store has %d", k, len(got[k]), len(v))
		}
	}
}

// deviceReader reads dev from its first byte as a stream: what a tar
// reader sees of a device, through any cache the device keeps (a
// crash.Device holds its unflushed writes).
func deviceReader(dev hw.Block) io.Reader {
	info := dev.Info()
	return io.NewSectionReader(readerAt{dev}, 0, int64(info.SectorSize)*int64(info.Sectors))
}

type readerAt struct{ dev hw.Block }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if err := blockio.ReadAt(r.dev, p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// holesFirst makes s reuse holes before it appends, whatever the free tail
// (space.reserve): tests of small workloads on roomy devices use it so that
// members still land in holes.
func holesFirst(s *Store) *Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sp.reserve = s.limit
	return s
}

// newMemStore opens a store on a new formatted in-memory device of size
// bytes and ss-byte sectors. When the test ends, whatever state the test
// left the device in is opened again (read-only, on a copy) and checked:
// Check finds nothing fatal and archive/tar extracts what the store holds
// (as bbolt checks every test's database in t.Cleanup).
func newMemStore(t testing.TB, ss int, size uint64) (*Store, *mem.Device) {
	t.Helper()
	dev, err := mem.New(ss, size/uint64(ss))
	require.NoError(t, err)
	require.NoError(t, Format(dev))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	t.Cleanup(func() { checkDevice(t, dev) })
	return s, dev
}

// checkDevice opens a read-only copy of dev as a store and checks it
// (checkStore).
func checkDevice(t testing.TB, dev *mem.Device) {
	t.Helper()
	img := dev.Clone()
	s, err := New(clock.NewFake(time.Unix(3e9, 0)), img.ReadOnlyView())
	require.NoError(t, err, "open of the test's final image")
	checkStore(t, s, img.ReaderAt())
	require.NoError(t, s.Close())
}
