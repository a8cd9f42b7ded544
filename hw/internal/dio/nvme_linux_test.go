package dio

import (
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPutNVMeAddr: the address lands in bytes 24-31 (offsetof(struct
// nvme_passthru_cmd, addr)) in host order, and nothing else changes.
func TestPutNVMeAddr(t *testing.T) {
	data := make([]byte, 4096)
	var cmd [NVMeCmdSize]byte
	for i := range cmd {
		cmd[i] = 0xa5
	}
	putNVMeAddr(&cmd, data[512:])
	want := uint64(uintptr(unsafe.Pointer(&data[512])))
	if got := binary.NativeEndian.Uint64(cmd[24:]); got != want {
		t.Errorf("addr %#x, want %#x", got, want)
	}
	for i, b := range cmd {
		if (i < 24 || i >= 32) && b != 0xa5 {
			t.Fatalf("byte %d changed to %#x", i, b)
		}
	}
	putNVMeAddr(&cmd, nil)
	if got := binary.NativeEndian.Uint64(cmd[24:]); got != 0 {
		t.Errorf("addr of no data %#x, want 0", got)
	}
}

// TestIoctlNVMeErrno: an ioctl the file does not know returns its errno
// (ENOTTY on /dev/null), and the address is set all the same.
func TestIoctlNVMeErrno(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var cmd [NVMeCmdSize]byte
	data := make([]byte, 512)
	n, err := IoctlNVMe(fd, 0xc0484e43, &cmd, data)
	if n != 0 || !errors.Is(err, unix.ENOTTY) {
		t.Errorf("IoctlNVMe on /dev/null: %d, %v; want ENOTTY", n, err)
	}
	if binary.NativeEndian.Uint64(cmd[24:]) != uint64(uintptr(unsafe.Pointer(&data[0]))) {
		t.Error("addr not set")
	}
}
