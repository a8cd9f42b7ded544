package faulty_test

import (
	"bytes"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/faulty"
)

// unsupported has a Zeroer and a Discarder that report ErrUnsupported, as
// hw/file does on a file system without fallocate.
type unsupported struct{ hw.Block }

func (unsupported) WriteZeroes(lba, n uint64) error {
	return &hw.Error{Op: "write-zeroes", LBA: lba, Sectors: n, Kind: hw.ErrUnsupported}
}

func (unsupported) Discard(lba, n uint64) error {
	return &hw.Error{Op: "discard", LBA: lba, Sectors: n, Kind: hw.ErrUnsupported}
}

// allocator counts the buffers it hands out and takes back.
type allocator struct {
	hw.Block
	calls, releases *int
}

func (a allocator) AllocBuffer(n int) []byte {
	*a.calls++
	return make([]byte, n)
}

func (a allocator) ReleaseBuffer([]byte) { *a.releases++ }

// TestCapabilities wraps devices with and without a Zeroer and a Discarder:
// the wrapper forwards to them, or fails with ErrUnsupported (counting
// nothing) without them, and hw.WriteZeroes over the wrapper falls back to
// writes in both unsupported cases.
func TestCapabilities(t *testing.T) {
	const ss = 512
	for _, c := range []struct {
		name     string
		wrap     func(hw.Block) hw.Block
		native   bool         // WriteZeroes and Discard work
		reached  faulty.Stats // by the wrapper's WriteZeroes and Discard
		fallback faulty.Stats // by hw.WriteZeroes over the wrapper
	}{
		{"mem", func(b hw.Block) hw.Block { return b }, true,
			faulty.Stats{Zeroes: 1, Discards: 1}, faulty.Stats{Zeroes: 1}},
		{"without", func(b hw.Block) hw.Block { return plain{b} }, false,
			faulty.Stats{}, faulty.Stats{Writes: 1}},
		{"reporting unsupported", func(b hw.Block) hw.Block { return unsupported{b} }, false,
			faulty.Stats{Zeroes: 1, Discards: 1}, faulty.Stats{Zeroes: 1, Writes: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, initial := numbered(t, 8)
			d := faulty.New(c.wrap(m))
			errZ, errD := d.WriteZeroes(1, 2), d.Discard(4, 1)
			if c.native {
				if errZ != nil || errD != nil {
					t.Fatalf("WriteZeroes, Discard: %v, %v", errZ, errD)
				}
				want := append([]byte(nil), initial...)
				clear(want[1*ss : 3*ss])
				clear(want[4*ss : 5*ss])
				if !bytes.Equal(m.Bytes(), want) {
					t.Errorf("WriteZeroes and Discard did not reach the device")
				}
			} else {
				wantErr(t, "WriteZeroes", errZ, "write-zeroes", 1, hw.ErrUnsupported, nil)
				wantErr(t, "Discard", errD, "discard", 4, hw.ErrUnsupported, nil)
			}
			if got := d.Stats(); got != c.reached {
				t.Errorf("Stats() = %+v after WriteZeroes and Discard, want %+v", got, c.reached)
			}

			m2, initial := numbered(t, 8)
			d = faulty.New(c.wrap(m2))
			if err := hw.WriteZeroes(d, 5, 2); err != nil {
				t.Fatalf("hw.WriteZeroes: %v", err)
			}
			clear(initial[5*ss : 7*ss])
			if !bytes.Equal(m2.Bytes(), initial) {
				t.Errorf("hw.WriteZeroes over the wrapper did not zero the range")
			}
			if got := d.Stats(); got != c.fallback {
				t.Errorf("Stats() = %+v after hw.WriteZeroes, want %+v", got, c.fallback)
			}
			wantErr(t, "hw.WriteZeroes out of range", hw.WriteZeroes(d, 7, 2), "write-zeroes", 7, hw.ErrOutOfRange, nil)
		})
	}
}

// TestAllocBuffer checks that AllocBuffer comes from the wrapped device's
// Allocator when it has one, and is ordinary memory otherwise, and that
// ReleaseBuffer reaches the wrapped device's Releaser.
func TestAllocBuffer(t *testing.T) {
	calls, releases := 0, 0
	d := faulty.New(allocator{newMem(t, 512, 8), &calls, &releases})
	b := hw.AllocBuffer(d, 1024)
	if len(b) != 1024 || calls != 1 {
		t.Errorf("AllocBuffer over an Allocator: %d bytes, %d calls; want 1024, 1", len(b), calls)
	}
	if hw.ReleaseBuffer(d, b); releases != 1 {
		t.Errorf("ReleaseBuffer over a Releaser: %d releases, want 1", releases)
	}
	hw.ReleaseBuffer(faulty.New(plain{newMem(t, 512, 8)}), make([]byte, 512)) // nothing to release to
	if b := faulty.New(plain{newMem(t, 512, 8)}).AllocBuffer(512); len(b) != 512 || !bytes.Equal(b, make([]byte, 512)) {
		t.Errorf("AllocBuffer without an Allocator: %d bytes, want 512 zeroes", len(b))
	}
}

// TestBuffers checks the buffer counters: a buffer is out from AllocBuffer
// until ReleaseBuffer, and a release of a buffer that is not out is
// stray.
func TestBuffers(t *testing.T) {
	d := faulty.New(newMem(t, 512, 8))
	a, b := d.AllocBuffer(1024), d.AllocBuffer(512)
	if got, want := d.Buffers(), (faulty.BufferStats{Allocated: 2, Out: 2, OutBytes: 1536}); got != want {
		t.Errorf("after two AllocBuffers: %+v, want %+v", got, want)
	}
	d.ReleaseBuffer(a)
	d.ReleaseBuffer(a)
	d.ReleaseBuffer(make([]byte, 512))
	if got, want := d.Buffers(), (faulty.BufferStats{Allocated: 2, Out: 1, OutBytes: 512, Stray: 2}); got != want {
		t.Errorf("after a release, a second one and a foreign one: %+v, want %+v", got, want)
	}
	d.ReleaseBuffer(b)
	if got := d.Buffers(); got.Out != 0 || got.OutBytes != 0 {
		t.Errorf("after every release: %+v, want none out", got)
	}
}

// TestUnwrap walks a stack of two wrappers down to the medium; the outer
// one forwards WriteZeroes through the inner one, and Close reaches the
// bottom.
func TestUnwrap(t *testing.T) {
	m := newMem(t, 512, 8)
	inner := faulty.New(m)
	outer := faulty.New(inner)
	if inner.Unwrap() != m || hw.Unwrap(outer) != inner || hw.Unwrap(hw.Unwrap(outer)) != m || hw.Unwrap(m) != nil {
		t.Fatalf("Unwrap does not walk outer -> inner -> mem -> nil")
	}
	if outer.Info() != m.Info() {
		t.Errorf("Info() = %+v, want the medium's %+v", outer.Info(), m.Info())
	}
	if err := outer.WriteZeroes(0, 8); err != nil {
		t.Fatal(err)
	}
	if got := inner.Stats(); got != (faulty.Stats{Zeroes: 1}) {
		t.Errorf("inner Stats() = %+v, want one WriteZeroes", got)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "the medium after Close", m.Flush(), "flush", 0, hw.ErrClosed, nil)
}
