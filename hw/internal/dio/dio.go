// Package dio holds the operations of the drivers that need package unsafe
// for O_DIRECT and block-device ioctls: the memory address of a buffer (for
// O_DIRECT alignment) and the ioctls whose argument is a pointer
// (BLKGETSIZE64, BLKZEROOUT, BLKDISCARD). hw/file uses it today, and any
// driver that opens a /dev node shares it; the drivers themselves stay free
// of unsafe.
package dio

import (
	"unsafe"

	"github.com/ncw/directio"
)

// Misaligned reports whether the address of b's first byte is not a multiple
// of align, which must be a power of two. An empty slice is never misaligned.
func Misaligned(b []byte, align int) bool {
	if len(b) == 0 || align <= 1 {
		return false
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&uintptr(align-1) != 0
}

// Alloc returns a zeroed buffer of n bytes whose address is a multiple of
// align (a power of two). Alignments up to directio.AlignSize (a page) come
// from directio.AlignedBlock, so buffers are page-aligned; larger ones are
// carved out of an over-allocation. n < 0 yields nil.
func Alloc(n, align int) []byte {
	if n < 0 {
		return nil
	}
	if align <= directio.AlignSize {
		return directio.AlignedBlock(n)
	}
	raw := make([]byte, n+align)
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & uintptr(align-1)); r != 0 {
		off = align - r
	}
	return raw[off : off+n : off+n]
}
