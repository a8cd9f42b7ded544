//go:build mips || mipsle || mips64 || mips64le || ppc64 || ppc64le

package passthru

// The direction bits of an ioctl request number on MIPS and PowerPC
// (arch/{mips,powerpc}/include/uapi/asm/ioctl.h): _IOC_NONE 1, _IOC_READ 2
// and _IOC_WRITE 4 at bit 29, after 13 size bits.
const (
	iocNone      = 1 << 29
	iocReadWrite = 6 << 29
)
