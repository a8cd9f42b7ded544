package sg

import (
	"bytes"
	"errors"
	"reflect"
	"sync"
	"testing"
)

func vec(sizes ...int) [][]byte {
	var bufs [][]byte
	for _, s := range sizes {
		bufs = append(bufs, make([]byte, s))
	}
	return bufs
}

func flat(bufs [][]byte) []byte { return bytes.Join(bufs, nil) }

func TestGatherScatter(t *testing.T) {
	for _, sizes := range [][]int{{512}, {512, 512}, {4096, 512, 1024}, {1, 511, 3, 509}} {
		total := 0
		for _, s := range sizes {
			total += s
		}
		src := make([]byte, total)
		for i := range src {
			src[i] = byte(i*7 + i>>8 + 1)
		}
		for off := 0; off <= total; off += 37 {
			for _, n := range []int{0, 1, 100, total} {
				bufs := vec(sizes...)
				want := min(n, total-off)
				if got := Scatter(bufs, off, src[:n]); got != want {
					t.Fatalf("sizes %v: Scatter(off %d, %d bytes) = %d, want %d", sizes, off, n, got, want)
				}
				f := flat(bufs)
				if !bytes.Equal(f[off:off+want], src[:want]) || bytes.ContainsFunc(append(f[:off:off], f[off+want:]...), func(r rune) bool { return r != 0 }) {
					t.Fatalf("sizes %v: Scatter(off %d, %d bytes) wrote the wrong bytes", sizes, off, n)
				}
				dst := make([]byte, n)
				if got := Gather(dst, bufs, off); got != want || !bytes.Equal(dst[:want], src[:want]) {
					t.Fatalf("sizes %v: Gather(off %d, %d bytes) = %d, %x", sizes, off, n, got, dst[:got])
				}
			}
		}
		if Len(vec(sizes...)) != total {
			t.Errorf("Len(%v) != %d", sizes, total)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		total, max int
		want       []Piece
	}{
		{0, 512, nil},
		{512, 0, nil},
		{512, 4096, []Piece{{0, 512}}},
		{8192, 4096, []Piece{{0, 4096}, {4096, 4096}}},
		{9216, 4096, []Piece{{0, 4096}, {4096, 4096}, {8192, 1024}}},
	} {
		if got := Split(c.total, c.max); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%d, %d) = %v, want %v", c.total, c.max, got, c.want)
		}
	}
}

func TestRun(t *testing.T) {
	var mu sync.Mutex
	var seen []Piece
	errAt := map[int]error{8192: errors.New("second"), 16384: errors.New("third")}
	err := Run(20000, 8192, func(p Piece) error {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
		return errAt[p.Off]
	})
	if err == nil || err.Error() != "second" {
		t.Errorf("Run: %v, want the lowest piece's error", err)
	}
	if len(seen) != 3 {
		t.Errorf("ran %d pieces, want all 3 even after a failure", len(seen))
	}
	calls := 0
	if err := Run(512, 4096, func(p Piece) error { calls++; return nil }); err != nil || calls != 1 {
		t.Errorf("single piece: %v, %d calls", err, calls)
	}
}
