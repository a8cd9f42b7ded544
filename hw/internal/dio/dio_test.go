package dio

import (
	"testing"
)

func TestAllocAligned(t *testing.T) {
	for _, align := range []int{1, 512, 4096, 8192, 1 << 16} {
		for _, n := range []int{0, 512, 4096, 1 << 20} {
			b := Alloc(n, align)
			if len(b) != n {
				t.Fatalf("Alloc(%d, %d): len %d", n, align, len(b))
			}
			if Misaligned(b, align) {
				t.Fatalf("Alloc(%d, %d) is misaligned", n, align)
			}
			for i, c := range b {
				if c != 0 {
					t.Fatalf("Alloc(%d, %d)[%d] = %d, want 0", n, align, i, c)
				}
			}
		}
	}
	if Alloc(-1, 512) != nil {
		t.Fatal("Alloc(-1) != nil")
	}
}

func TestMisaligned(t *testing.T) {
	b := Alloc(8192, 4096)
	cases := []struct {
		off, align int
		want       bool
	}{
		{0, 4096, false},
		{512, 4096, true},
		{512, 512, false},
		{1, 512, true},
		{1, 1, false},
		{4, 4, false},
		{3, 4, true},
	}
	for _, c := range cases {
		if got := Misaligned(b[c.off:], c.align); got != c.want {
			t.Errorf("Misaligned(base+%d, %d) = %v, want %v", c.off, c.align, got, c.want)
		}
	}
	if Misaligned(nil, 4096) {
		t.Error("Misaligned(nil) = true")
	}
}
