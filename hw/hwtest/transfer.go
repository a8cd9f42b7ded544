package hwtest

import (
	"strconv"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// testRoundTrip writes single buffers at the edges and in the middle of the
// device and reads them back; the neighbouring sectors must not change.
func testRoundTrip(t *testing.T, dev hw.Block, info hw.Info) {
	ss, last := info.SectorSize, info.Sectors
	cases := []struct {
		name   string
		lba, n uint64
	}{
		{"first sector", 0, 1},
		{"second sector", 1, 1},
		{"last sector", last - 1, 1},
		{"first 8 sectors", 0, 8},
		{"last 8 sectors", last - 8, 8},
		{"13 in the middle", last/2 - 6, 13},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The area with one neighbour on each side where there is one.
			lo, hi := c.lba, c.lba+c.n
			if lo > 0 {
				lo--
			}
			if hi < last {
				hi++
			}
			tag := 100 + uint64(i)
			want := pattern(ss, tag+1000, lo, hi-lo)
			mustWrite(t, dev, lo, want)
			data := pattern(ss, tag, c.lba, c.n)
			mustWrite(t, dev, c.lba, data)
			copy(want[int(c.lba-lo)*ss:], data)
			expect(t, dev, "written sectors", c.lba, data)
			expect(t, dev, "written sectors and neighbours", lo, want)
		})
	}
}

// testVectored writes and reads with several buffers of different sizes,
// split differently on the way in and out.
func testVectored(t *testing.T, dev hw.Block, info hw.Info) {
	ss := info.SectorSize
	cases := []struct {
		name        string
		lba         uint64
		write, read []int // buffer sizes in sectors
	}{
		{"uneven write, single read", 3, []int{1, 3, 2, 5, 1}, []int{12}},
		{"single write, uneven read", 3, []int{12}, []int{2, 4, 6}},
		{"uneven both ways", 5, []int{5, 1, 6}, []int{1, 1, 1, 9}},
		{"200 one-sector writes", 7, ones(200), []int{200}},
		{"200 one-sector reads", 9, []int{200}, ones(200)},
		{"ending at the last sector", info.Sectors - 10, []int{4, 6}, []int{7, 3}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := uint64(sum(c.write))
			want := pattern(ss, 200+uint64(i), c.lba, n)
			mustWrite(t, dev, c.lba, split(want, ss, c.write)...)
			bufs := buffers(ss, c.read)
			if err := dev.Read(c.lba, bufs...); err != nil {
				t.Fatalf("Read(%d, %s): %v", c.lba, describe(bufs), err)
			}
			var got []byte
			for _, b := range bufs {
				got = append(got, b...)
			}
			if d := diffSectors(got, want, ss, c.lba); d != "" {
				t.Errorf("vectored read: %s", d)
			}
			expect(t, dev, "single read", c.lba, want)
		})
	}
}

// guard is the byte that fills memory around odd-aligned buffers; a driver
// that writes outside a buffer changes it.
const guard = 0xa5

// oddBuffer returns an n-byte buffer starting off bytes into a larger
// allocation filled with guard bytes. The buffer's capacity reaches past its
// length, so a driver that writes up to cap is caught too.
func oddBuffer(n, off int) (buf, backing []byte) {
	backing = make([]byte, off+n+64)
	for i := range backing {
		backing[i] = guard
	}
	return backing[off : off+n], backing
}

// guarded reports whether the bytes around buf in backing are all guard
// bytes.
func guarded(backing []byte, off, n int) bool {
	for i, b := range backing {
		if (i < off || i >= off+n) && b != guard {
			return false
		}
	}
	return true
}

// testAlignment transfers buffers at odd memory addresses and buffers from
// hw.AllocBuffer (testAllocated).
func testAlignment(t *testing.T, dev hw.Block, info hw.Info) {
	ss := info.SectorSize
	for i, off := range []int{1, 2, 7, 33} {
		t.Run("offset "+strconv.Itoa(off), func(t *testing.T) {
			lba := uint64(4 + 8*i)
			want := pattern(ss, 300+uint64(i), lba, 3)
			w, wBacking := oddBuffer(len(want), off)
			copy(w, want)
			mustWrite(t, dev, lba, w)
			if !guarded(wBacking, off, len(want)) {
				t.Errorf("Write changed memory around its buffer")
			}
			r, rBacking := oddBuffer(len(want), off)
			if err := dev.Read(lba, r); err != nil {
				t.Fatalf("Read into a buffer at offset %d: %v", off, err)
			}
			if d := diffSectors(r, want, ss, lba); d != "" {
				t.Errorf("read back: %s", d)
			}
			if !guarded(rBacking, off, len(want)) {
				t.Errorf("Read changed memory outside its buffer")
			}
		})
	}
	t.Run("vectored odd offsets", func(t *testing.T) {
		const lba = 40
		want := pattern(ss, 310, lba, 3)
		w1, _ := oddBuffer(ss, 1)
		w2, _ := oddBuffer(2*ss, 5)
		copy(w1, want)
		copy(w2, want[ss:])
		mustWrite(t, dev, lba, w1, w2)
		r1, b1 := oddBuffer(2*ss, 3)
		r2, b2 := oddBuffer(ss, 9)
		if err := dev.Read(lba, r1, r2); err != nil {
			t.Fatalf("vectored Read into odd buffers: %v", err)
		}
		if d := diffSectors(append(append([]byte(nil), r1...), r2...), want, ss, lba); d != "" {
			t.Errorf("read back: %s", d)
		}
		if !guarded(b1, 3, 2*ss) || !guarded(b2, 9, ss) {
			t.Errorf("vectored Read changed memory outside its buffers")
		}
	})
	t.Run("AllocBuffer", func(t *testing.T) {
		const lba = 50
		n := 4 * ss
		w := hw.AllocBuffer(dev, n)
		// Released, so that a driver can unmap its pool at Close.
		defer hw.ReleaseBuffer(dev, w)
		if len(w) != n {
			t.Fatalf("AllocBuffer(%d) returned %d bytes", n, len(w))
		}
		for i, b := range w {
			if b != 0 {
				t.Fatalf("AllocBuffer(%d) is not zeroed: byte %d is %#02x", n, i, b)
			}
		}
		want := pattern(ss, 320, lba, 4)
		copy(w, want)
		mustWrite(t, dev, lba, w[:ss], w[ss:])
		r := hw.AllocBuffer(dev, n)
		defer hw.ReleaseBuffer(dev, r)
		if err := dev.Read(lba, r); err != nil {
			t.Fatalf("Read into an AllocBuffer buffer: %v", err)
		}
		if d := diffSectors(r, want, ss, lba); d != "" {
			t.Errorf("read back: %s", d)
		}
	})
	t.Run("AllocBuffer large and released", func(t *testing.T) {
		testAllocated(t, dev, info)
	})
}

// testAllocated moves up to 1 MiB through buffers from hw.AllocBuffer:
// vectored over several of them, over parts of one, mixed with ordinary
// memory; then releases them (hw.ReleaseBuffer) and checks that buffers
// allocated again are zeroed and work.
func testAllocated(t *testing.T, dev hw.Block, info hw.Info) {
	ss := info.SectorSize
	const lba = 64
	n := min(info.Sectors-lba, uint64((1<<20)/ss)) // sectors
	want := pattern(ss, 330, lba, n)
	head := int(n/4) * ss
	a, b := hw.AllocBuffer(dev, head), hw.AllocBuffer(dev, len(want)-head)
	copy(a, want)
	copy(b, want[head:])
	mustWrite(t, dev, lba, a, b)
	r := hw.AllocBuffer(dev, len(want))
	// Read into two parts of one allocated buffer.
	if err := dev.Read(lba, r[:ss], r[ss:]); err != nil {
		t.Fatalf("Read into an allocated buffer: %v", err)
	}
	if d := diffSectors(r, want, ss, lba); d != "" {
		t.Errorf("read back: %s", d)
	}
	// An allocated buffer and ordinary memory in one request.
	plain := make([]byte, 2*ss)
	if err := dev.Read(lba, a[:ss], plain); err != nil {
		t.Fatalf("Read into allocated and ordinary memory: %v", err)
	}
	if d := diffSectors(append(append([]byte(nil), a[:ss]...), plain...), want[:3*ss], ss, lba); d != "" {
		t.Errorf("read back: %s", d)
	}
	for _, x := range [][]byte{a, b, r} {
		hw.ReleaseBuffer(dev, x)
	}
	again := hw.AllocBuffer(dev, len(want))
	for i, x := range again {
		if x != 0 {
			t.Fatalf("AllocBuffer after ReleaseBuffer is not zeroed: byte %d is %#02x", i, x)
		}
	}
	if err := dev.Read(lba, again); err != nil {
		t.Fatalf("Read into a buffer allocated again: %v", err)
	}
	if d := diffSectors(again, want, ss, lba); d != "" {
		t.Errorf("read back: %s", d)
	}
	hw.ReleaseBuffer(dev, again)
}

// testLarge moves 1 MiB and more in one request (the whole device when it is
// smaller), including sizes that are not a power of two.
func testLarge(t *testing.T, dev hw.Block, info hw.Info) {
	ss, last := info.SectorSize, info.Sectors
	big := min(last, uint64((2<<20)/ss))
	odd := min(last, uint64((1<<20)/ss+3))
	if isPow2(odd * uint64(ss)) {
		odd--
	}
	cases := []struct {
		name   string
		lba, n uint64
		sizes  []int // vectoring; nil for one buffer
	}{
		{"up to 2 MiB at the start", 0, big, nil},
		{"odd size at the end", last - odd, odd, nil},
		{"odd size vectored", 0, odd, []int{int(odd / 3), int(odd / 2), int(odd - odd/3 - odd/2)}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := pattern(ss, 400+uint64(i), c.lba, c.n)
			bufs := [][]byte{want}
			if c.sizes != nil {
				bufs = split(want, ss, c.sizes)
			}
			mustWrite(t, dev, c.lba, bufs...)
			expect(t, dev, "read back", c.lba, want)
		})
	}
}

func isPow2(x uint64) bool { return x&(x-1) == 0 }
