package dma

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tarstore/tarstore/internal/testenv"
)

func TestPhysAddr(t *testing.T) {
	entry := func(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }
	for _, c := range []struct {
		name  string
		entry []byte
		virt  uint64
		page  int
		want  uint64 // 0: an error matching ErrNoPhysAddr
	}{
		{"present", entry(1<<63 | 0x12345), 0x7f0000000000, 4096, 0x12345000},
		{"offset in page", entry(1<<63 | 0x12345), 0x7f0000000abc, 4096, 0x12345abc},
		{"64 KiB pages", entry(1<<63 | 0x12), 0x7f0000001234, 65536, 0x121234},
		{"soft-dirty, exclusive, file bits", entry(1<<63 | 1<<61 | 1<<56 | 1<<55 | 0x400), 0x200000, 4096, 0x400000},
		{"PFN is bits 0-54", entry(1<<63 | 1<<62 | 0xff<<55 | (1<<55 - 1)), 0, 1, 1<<55 - 1},
		{"not present", entry(0x12345), 0x1000, 4096, 0},
		{"swapped", entry(1<<62 | 0x12345), 0x1000, 4096, 0},
		{"PFN hidden", entry(1 << 63), 0x1000, 4096, 0},
		{"short entry", entry(1 << 63)[:7], 0x1000, 4096, 0},
	} {
		got, err := physAddr(c.entry, c.virt, c.page)
		if c.want == 0 {
			var pe *PagemapError
			if !errors.Is(err, ErrNoPhysAddr) || !errors.As(err, &pe) || pe.Virt != c.virt {
				t.Errorf("%s: %#x, %v; want a *PagemapError", c.name, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %#x, %v; want %#x", c.name, got, err, c.want)
		}
	}
}

// freeHugepages returns HugePages_Free from /proc/meminfo.
func freeHugepages(t *testing.T) int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "HugePages_Free:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

func TestHugepages(t *testing.T) {
	switch {
	case os.Geteuid() != 0:
		testenv.Need(t, "root (CAP_SYS_ADMIN, for physical addresses in /proc/self/pagemap)")
	case freeHugepages(t) < 2:
		testenv.Need(t, "2 free 2 MiB huge pages (echo 8 > /proc/sys/vm/nr_hugepages)")
	}
	r, release, err := Hugepages(HugepageSize + 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2*HugepageSize {
		t.Errorf("Len = %d, want two pages", r.Len())
	}
	for _, off := range []int{0, HugepageSize} {
		if a := r.Addr(off); a == 0 || a%HugepageSize != 0 {
			t.Errorf("page at %#x has physical address %#x", off, a)
		}
	}
	if r.Addr(0) == r.Addr(HugepageSize) {
		t.Errorf("both pages at %#x", r.Addr(0))
	}
	if r.Contiguous(HugepageSize-1, 2) || !r.Contiguous(0, HugepageSize) {
		t.Error("contiguity does not follow the pages")
	}
	for i, v := range r.B {
		if v != 0 {
			t.Fatalf("byte %d is %#x, not zeroed", i, v)
		}
	}
	r.B[len(r.B)-1] = 1
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Errorf("second release: %v", err)
	}
}

func TestHugepagesRejectsBadSizes(t *testing.T) {
	for _, size := range []int{0, -1} {
		if _, _, err := Hugepages(size); err == nil {
			t.Errorf("Hugepages(%d) succeeded", size)
		}
	}
}
