//go:build !(mips || mipsle || mips64 || mips64le || ppc64 || ppc64le)

package passthru

// The direction bits of an ioctl request number as <asm-generic/ioctl.h>
// defines them (x86, arm, arm64, riscv64, loong64, s390x): _IOC_NONE 0,
// _IOC_WRITE 1 and _IOC_READ 2 at bit 30 (_IOC_DIRSHIFT), after 14 size
// bits.
const (
	iocNone      = 0
	iocReadWrite = 3 << 30
)
