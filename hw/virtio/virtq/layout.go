package virtq

import "fmt"

// Field offsets and flag values from §2.7.5, §2.7.6 and §2.7.8.
const (
	// DescSize is the size of one descriptor (struct virtq_desc).
	DescSize = 16

	// Descriptor flags (§2.7.5).
	DescFNext     = 1 // VIRTQ_DESC_F_NEXT: the next field is valid
	DescFWrite    = 2 // VIRTQ_DESC_F_WRITE: the buffer is device-writable
	DescFIndirect = 4 // VIRTQ_DESC_F_INDIRECT: the buffer is a descriptor table

	// AvailFNoInterrupt is VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7).
	AvailFNoInterrupt = 1
	// UsedFNoNotify is VIRTQ_USED_F_NO_NOTIFY (§2.7.10).
	UsedFNoNotify = 1

	// MaxSize is the largest queue size (§2.7: "Queue Size ... maximum 32768").
	MaxSize = 32768
)

// Offsets within the rings for a queue of size n.
func availRingOff(slot int) int { return 4 + 2*slot }
func usedEventOff(n int) int    { return 4 + 2*n }
func usedRingOff(slot int) int  { return 4 + 8*slot }
func availEventOff(n int) int   { return 4 + 8*n }

func align(x, a int) int { return (x + a - 1) &^ (a - 1) }

func checkSize(n int) error {
	if n < 1 || n > MaxSize || n&(n-1) != 0 {
		return fmt.Errorf("%w: %d (want a power of 2 in 1..%d)", ErrBadSize, n, MaxSize)
	}
	return nil
}

// DescTableSize returns the size in bytes of the descriptor table of a queue
// of size n: 16·n.
func DescTableSize(n int) int { return DescSize * n }

// AvailSize returns the number of bytes this package needs for the available
// ring of a queue of size n: the specification's 6+2n rounded up to a
// multiple of 4 (see the package documentation).
func AvailSize(n int) int { return align(6+2*n, 4) }

// UsedSize returns the number of bytes this package needs for the used ring
// of a queue of size n: the specification's 6+8n rounded up to a multiple of 4.
func UsedSize(n int) int { return align(6+8*n, 4) }

// Layout places the three areas of a queue in one allocation.
type Layout struct {
	N                  int // queue size
	DescOff, DescLen   int // descriptor table: offset 0, 16·N bytes
	AvailOff, AvailLen int // available ring, 4-aligned, AvailSize(N) bytes
	UsedOff, UsedLen   int // used ring, 4-aligned, UsedSize(N) bytes
	Size               int // total, rounded up to a multiple of 16
}

// Sizes returns the layout of a queue of size n in one allocation whose start
// is 16-byte aligned.
func Sizes(n int) (Layout, error) {
	if err := checkSize(n); err != nil {
		return Layout{}, err
	}
	l := Layout{N: n, DescLen: DescTableSize(n), AvailLen: AvailSize(n), UsedLen: UsedSize(n)}
	l.AvailOff = l.DescOff + l.DescLen
	l.UsedOff = align(l.AvailOff+l.AvailLen, 4)
	l.Size = align(l.UsedOff+l.UsedLen, 16)
	return l, nil
}

// Areas carves the three areas out of m, whose first byte the device sees at
// addr (which must be 16-byte aligned). m must be at least l.Size bytes.
func (l Layout) Areas(m Mem, addr uint64) (desc, avail, used Area, err error) {
	if addr%16 != 0 {
		return desc, avail, used, fmt.Errorf("%w: address %#x not 16-byte aligned", ErrBadArea, addr)
	}
	if m.Len() < l.Size {
		return desc, avail, used, fmt.Errorf("%w: %d bytes, layout needs %d", ErrBadArea, m.Len(), l.Size)
	}
	part := func(off, n int) Area {
		s, e := Sub(m, off, n)
		if e != nil && err == nil {
			err = e
		}
		return Area{Mem: s, Addr: addr + uint64(off)}
	}
	desc = part(l.DescOff, l.DescLen)
	avail = part(l.AvailOff, l.AvailLen)
	used = part(l.UsedOff, l.UsedLen)
	return desc, avail, used, err
}
