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
	"github.com/tarstore/tarstore/hw/crash"
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
// bytes and ss-byte sectors. When the test ends, the store is closed (if
// the test left it open) and whatever state the test left the device in is
// checked (checkWhenDone).
func newMemStore(t testing.TB, ss int, size uint64) (*Store, *mem.Device) {
	t.Helper()
	dev, err := mem.New(ss, size/uint64(ss))
	require.NoError(t, err)
	require.NoError(t, Format(dev))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	return s, dev
}

// checkWhenDone registers with t.Cleanup the end-of-test check of the
// image on dev, as bbolt checks every test's database: when the test ends
// (cleanups run last registered first, so those the test registers later
// run before it), s is closed if the test left it open (Close is
// idempotent; a store the test closed is not touched, and nil is allowed),
// then the final image of dev is checked by checkDevice: opened read-only,
// on a copy, Check finds nothing fatal and archive/tar reads what the
// store holds.
//
// dev is what the final image is read from, after s is closed: a
// *mem.Device (its medium, which the handles of Reopen and ReadOnlyView
// share: one registration covers the reopened stores of a test) or a
// *crash.Device (what reads see: its durable medium with the pending
// writes applied, Crash(KeepAll)). Register it only where the test leaves
// a healthy image: a test that damages its image on purpose says where it
// does not register it and why.
func checkWhenDone(t testing.TB, s *Store, dev hw.Block) {
	t.Helper()
	var image func() *mem.Device
	switch d := dev.(type) {
	case *mem.Device:
		image = func() *mem.Device { return d }
	case *crash.Device:
		image = func() *mem.Device { return d.Crash(crash.KeepAll, 0) }
	default:
		t.Fatalf("checkWhenDone: cannot read the final image of a %T", dev)
	}
	t.Cleanup(func() {
		t.Helper()
		if s != nil {
			assert.NoError(t, s.Close(), "closing the store at the end of the test")
		}
		checkDevice(t, image())
	})
}

// checkDevice opens a read-only copy of dev as a store and checks it:
// Check finds nothing fatal and archive/tar reads what the store holds.
// An archive of regular files under plain names only (what the store
// writes) is compared value by value (checkStore); one with other members
// (a foreign archive's directories, links, symbolic links, unsafe or
// unnormalized names) as tar extraction sees it (checkStoreInvariants).
func checkDevice(t testing.TB, dev *mem.Device) {
	t.Helper()
	img := dev.Clone()
	s, err := New(clock.NewFake(time.Unix(3e9, 0)), img.ReadOnlyView())
	require.NoError(t, err, "open of the test's final image")
	defer s.Close()
	if plainArchive(img.ReaderAt()) {
		checkStore(t, s, img.ReaderAt())
	} else {
		checkStoreInvariants(t, s, img)
	}
	require.NoError(t, s.Close())
}

// plainArchive reports whether archive/tar reads r as regular files (and
// g headers) whose names are keys as they are, none sparse and none over
// bigValue bytes: the members goTarContents and contents read whole. It
// reads the headers only; an archive it cannot read counts as plain
// (checkStore then reports the error).
func plainArchive(r io.Reader) bool {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return true
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		k, ok := viewKey(h.Name)
		if h.Typeflag != tar.TypeReg || !ok || k != "/"+strings.TrimPrefix(h.Name, "/") || h.Size > bigValue {
			return false
		}
		for rec := range h.PAXRecords {
			if strings.HasPrefix(rec, "GNU.sparse.") {
				return false
			}
		}
	}
}
