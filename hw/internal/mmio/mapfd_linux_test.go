package mmio

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMapFDAtOffset maps a window of a file that does not start at 0, as
// a VFIO region does (BAR n at n<<40 of the device file).
func TestMapFDAtOffset(t *testing.T) {
	page := os.Getpagesize()
	path := filepath.Join(t.TempDir(), "device")
	if err := os.WriteFile(path, make([]byte, 4*page), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := MapFD(int(f.Fd()), int64(2*page), 0x40)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // the mapping outlives the descriptor
		t.Fatal(err)
	}
	m.Write32(0x3c, 0xcafef00d)
	if m.Len() != 0x40 || m.Read32(0x3c) != 0xcafef00d {
		t.Errorf("Len %d, read back %#x", m.Len(), m.Read32(0x3c))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(b[2*page+0x3c:]); got != 0xcafef00d {
		t.Errorf("file at %#x holds %#x: the write did not land at the offset", 2*page+0x3c, got)
	}
}

func TestMapFDRejectsBadArguments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device")
	if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		off  int64
		size int
	}{{0, 0}, {0, -1}, {-4096, 4096}, {100, 4096}} {
		var se *os.SyscallError
		if m, err := MapFD(int(f.Fd()), c.off, c.size); !errors.Is(err, unix.EINVAL) || !errors.As(err, &se) {
			if m != nil {
				m.Close()
			}
			t.Errorf("MapFD(%#x, %d) = %v, want an *os.SyscallError matching EINVAL", c.off, c.size, err)
		}
	}
	if _, err := MapFD(-1, 0, 4096); !errors.Is(err, unix.EBADF) {
		t.Errorf("MapFD of fd -1: %v, want EBADF", err)
	}
}
