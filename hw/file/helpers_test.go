//go:build linux

package file

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/internal/testenv"
)

// newImage creates a sparse image of size bytes in a fresh temporary
// directory and returns its path.
func newImage(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := Create(path, size); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return path
}

// loopDevice attaches file to a loop device (testenv.LoopDevice).
func loopDevice(t testing.TB, file string, sectorSize int, extra ...string) string {
	t.Helper()
	return testenv.LoopDevice(t, file, sectorSize, extra...)
}

// blockdev runs blockdev(8) with one query flag and returns the number.
func blockdev(t testing.TB, flag, dev string) int64 {
	t.Helper()
	out, err := exec.Command("blockdev", flag, dev).CombinedOutput()
	if err != nil {
		t.Fatalf("blockdev %s %s: %v: %s", flag, dev, err, out)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("blockdev %s %s: %v", flag, dev, err)
	}
	return n
}

// mustOpen opens path and closes the device when the test ends.
func mustOpen(t testing.TB, path string, opts Options) *Device {
	t.Helper()
	d, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s, %+v): %v", path, opts, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(n))
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// misaligned returns a zeroed n-byte buffer whose address is off bytes past
// a page boundary (so with off not a multiple of 512 it always bounces).
func misaligned(n, off int) []byte {
	return make([]byte, n+4096)[off : off+n : off+n]
}

// wantErr checks that err is an *hw.Error with the given Op and Kind (and
// LBA, unless lba is negative).
func wantErr(t testing.TB, err error, op string, kind error, lba int64) *hw.Error {
	t.Helper()
	var he *hw.Error
	if !errors.As(err, &he) {
		t.Fatalf("got %v (%T), want *hw.Error %s %v", err, err, op, kind)
	}
	if he.Op != op || !errors.Is(err, kind) || (lba >= 0 && he.LBA != uint64(lba)) {
		t.Fatalf("got %v (op %q lba %d), want op %q kind %v lba %d", err, he.Op, he.LBA, op, kind, lba)
	}
	return he
}

// readAll reads sectors sectors at lba into an aligned buffer.
func readAll(t testing.TB, d *Device, lba uint64, sectors int) []byte {
	t.Helper()
	b := d.AllocBuffer(sectors * d.Info().SectorSize)
	if err := d.Read(lba, b); err != nil {
		t.Fatalf("Read(%d, %d sectors): %v", lba, sectors, err)
	}
	return b
}

// isZero reports whether b is all zeroes.
func isZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }
