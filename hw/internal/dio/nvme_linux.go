package dio

import (
	"encoding/binary"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NVMeCmdSize is the size of struct nvme_passthru_cmd (alias struct
// nvme_admin_cmd) of <linux/nvme_ioctl.h>, the argument of
// NVME_IOCTL_ADMIN_CMD and NVME_IOCTL_IO_CMD.
const NVMeCmdSize = 72

// nvmeAddrOffset is the offset of the struct's __u64 addr field, the
// address of the command's data in the caller's memory.
const nvmeAddrOffset = 24

// IoctlNVMe issues an NVMe passthrough ioctl (NVME_IOCTL_ADMIN_CMD or
// NVME_IOCTL_IO_CMD) whose argument is cmd, a struct nvme_passthru_cmd
// that the caller has encoded, data_len included. IoctlNVMe stores the
// address of data's first byte in the struct's addr field (0 when data is
// empty) and keeps data pinned in place while the kernel reads or writes
// it. The kernel writes the command's result (completion DW0) back into
// cmd. IoctlNVMe returns the ioctl's non-negative return value — 0, or the
// NVMe status of a command the controller failed — or the errno of a
// negative one.
func IoctlNVMe(fd int, req uint, cmd *[NVMeCmdSize]byte, data []byte) (int, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	if len(data) > 0 {
		// Pinning also makes data escape: it is never on a stack, which
		// moves when it grows, while the kernel holds its address.
		pin.Pin(unsafe.SliceData(data))
	}
	putNVMeAddr(cmd, data)
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(cmd)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// putNVMeAddr stores the address of data (0 when empty) in cmd's addr field,
// in the host's byte order like every field of the struct.
func putNVMeAddr(cmd *[NVMeCmdSize]byte, data []byte) {
	var addr uintptr
	if len(data) > 0 {
		addr = uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	}
	binary.NativeEndian.PutUint64(cmd[nvmeAddrOffset:], uint64(addr))
}
