package vfio

import (
	"errors"
	"testing"
)

func TestIOVAAllocator(t *testing.T) {
	a := newIOVAAllocator(4096)
	for _, c := range []struct {
		size    int
		iova, n uint64
		why     string
	}{
		{1, 0x1_0000_0000, 0x1000, "a byte takes a page, at the base"},
		{0x3000, 0x1_0000_4000, 0x3000, "three pages aligned to four"},
		{0x1000, 0x1_0000_7000, 0x1000, "a page fills the gap before nothing: allocation only goes up"},
		{0x20_0000, 0x1_0020_0000, 0x20_0000, "2 MiB aligned to 2 MiB"},
		{0x20_0001, 0x1_0040_0000, 0x20_1000, "2 MiB and a byte: aligned to 4 MiB"},
		{3 << 30, 0x1_4000_0000, 3 << 30, "3 GiB: alignment capped at 1 GiB"},
		{100, 0x2_0000_0000, 0x1000, "after the 3 GiB"},
	} {
		iova, n, err := a.alloc(c.size)
		if err != nil || iova != c.iova || n != c.n {
			t.Errorf("alloc(%#x) = %#x, %#x, %v; want %#x, %#x (%s)", c.size, iova, n, err, c.iova, c.n, c.why)
		}
	}
	for _, size := range []int{0, -1} {
		if _, _, err := a.alloc(size); !errors.Is(err, ErrInvalid) {
			t.Errorf("alloc(%d): %v, want ErrInvalid", size, err)
		}
	}
}

func TestIOVAAllocatorNeverReuses(t *testing.T) {
	a := newIOVAAllocator(4096)
	var last uint64
	for i := range 1000 {
		iova, n, err := a.alloc(4096 * (1 + i%7))
		if err != nil {
			t.Fatal(err)
		}
		if iova < last || iova%4096 != 0 || iova < IOVABase {
			t.Fatalf("allocation %d at %#x, after one ending at %#x", i, iova, last)
		}
		last = iova + n
	}
}

func TestIOVAAllocatorExhaustion(t *testing.T) {
	a := newIOVAAllocator(4096)
	if _, _, err := a.alloc(IOVALimit - IOVABase + 1); !errors.Is(err, ErrIOVAExhausted) {
		t.Errorf("more than the space: %v, want ErrIOVAExhausted", err)
	}
	a.next = IOVALimit - 0x3000
	if iova, _, err := a.alloc(0x2000); err != nil || iova != IOVALimit-0x2000 {
		t.Errorf("last two pages: %#x, %v", iova, err)
	}
	if _, _, err := a.alloc(1); !errors.Is(err, ErrIOVAExhausted) {
		t.Errorf("a page past the limit: %v, want ErrIOVAExhausted", err)
	}
	if _, _, err := a.alloc(int(^uint(0) >> 1)); !errors.Is(err, ErrIOVAExhausted) {
		t.Errorf("MaxInt bytes: %v, want ErrIOVAExhausted", err)
	}
}
