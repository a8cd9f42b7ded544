package passthru

// kernel is the seam between a Device and the system calls it makes on
// its descriptors: sysKernel (kernel_linux.go) makes them, tests give a
// fake kernel that answers from memory.
type kernel interface {
	// passthru issues req (ioctlAdminCmd or ioctlIOCmd) with c on fd;
	// data, when not empty, is the buffer of c.dataLen() bytes whose
	// address the call sets in c. It returns the ioctl's non-negative
	// result — 0, or the NVMe status of a command the controller failed —
	// or the errno of a negative one.
	passthru(fd int, req uint, c *cmd, data []byte) (int, error)
	// namespaceID issues NVME_IOCTL_ID on fd: the namespace ID of the
	// namespace node fd is open on.
	namespaceID(fd int) (uint32, error)
	// close closes fd.
	close(fd int) error
}
