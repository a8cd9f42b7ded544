package mmio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestMappedReadsAndWritesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resource0")
	if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Map(path, 100) // not a whole page: the mapping rounds up, Len does not
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 100 {
		t.Errorf("Len = %d", m.Len())
	}
	m.Write32(0, 0x04030201)
	m.Write16(4, 0x0605)
	m.Write8(6, 0x07)
	Write64(m, 8, 0x100f0e0d0c0b0a09)
	if m.Read32(0) != 0x04030201 || m.Read16(4) != 0x0605 || m.Read8(6) != 7 || Read64(m, 8) != 0x100f0e0d0c0b0a09 {
		t.Errorf("read back %#x %#x %#x %#x", m.Read32(0), m.Read16(4), m.Read8(6), Read64(m, 8))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15, 16}; !bytes.Equal(got[:16], want) {
		t.Errorf("file holds % x, want % x (shared, little-endian)", got[:16], want)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("access past Len did not panic")
			}
		}()
		m.Read32(100)
	}()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil || m.Len() != 0 {
		t.Errorf("second Close: %v, Len %d", err, m.Len())
	}
}

func TestMapRejectsBadSizes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resource0")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, -1, 4097} {
		if m, err := Map(path, size); err == nil {
			m.Close()
			t.Errorf("Map(%d) of a 4096-byte file succeeded", size)
		}
	}
	if _, err := Map(filepath.Join(t.TempDir(), "missing"), 4096); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
