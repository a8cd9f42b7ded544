package passthru

import (
	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dio"
)

// sysKernel makes the system calls.
type sysKernel struct{}

func (sysKernel) passthru(fd int, req uint, c *cmd, data []byte) (int, error) {
	return dio.IoctlNVMe(fd, req, (*[dio.NVMeCmdSize]byte)(c), data)
}

func (sysKernel) namespaceID(fd int) (uint32, error) {
	for {
		id, err := unix.IoctlRetInt(fd, ioctlID)
		if err != unix.EINTR {
			return uint32(id), err
		}
	}
}

func (sysKernel) close(fd int) error { return unix.Close(fd) }
