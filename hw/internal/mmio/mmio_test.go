package mmio

import (
	"errors"
	"fmt"
	"testing"
)

func TestFakeIsLittleEndianMemory(t *testing.T) {
	f := NewFake(16)
	f.Write32(0, 0x04030201)
	f.Write16(4, 0x0605)
	f.Write8(6, 0x07)
	Write64(f, 8, 0x100f0e0d0c0b0a09)
	for off := range 16 {
		if got, want := f.Peek(off, 1), uint32(off+1); off != 7 && got != want {
			t.Errorf("byte %d = %#x, want %#x", off, got, want)
		}
	}
	if f.Read32(0) != 0x04030201 || f.Read16(4) != 0x0605 || f.Read8(6) != 7 || f.Read16(0) != 0x0201 {
		t.Errorf("reads %#x %#x %#x", f.Read32(0), f.Read16(4), f.Read8(6))
	}
	if got := Read64(f, 8); got != 0x100f0e0d0c0b0a09 {
		t.Errorf("Read64 = %#x", got)
	}
}

func TestFakeHooks(t *testing.T) {
	f := NewFake(16)
	var log []string
	f.OnRead = func(off, width int, v uint32) uint32 {
		log = append(log, fmt.Sprintf("r%d@%d", width*8, off))
		if off == 4 { // reads back inverted
			return ^v & 0xffff
		}
		return v
	}
	f.OnWrite = func(off, width int, v uint32) {
		log = append(log, fmt.Sprintf("w%d@%d=%#x", width*8, off, v))
		if off == 0 { // writing 0 sets the register at 4
			f.Poke(4, 2, 0x00ff)
			return
		}
		f.Poke(off, width, v)
	}
	f.Write32(0, 0)
	if got := f.Read16(4); got != 0xff00 {
		t.Errorf("Read16(4) = %#x, want 0xff00", got)
	}
	if got := f.Peek(0, 4); got != 0 {
		t.Errorf("write of register 0 stored %#x", got)
	}
	Write64(f, 8, 0x2222222211111111)
	want := "[w32@0=0x0 r16@4 w32@8=0x11111111 w32@12=0x22222222]"
	if got := fmt.Sprint(log); got != want {
		t.Errorf("accesses %s, want %s (64-bit writes are low then high)", got, want)
	}
}

func TestWindow(t *testing.T) {
	f := NewFake(0x100)
	w, err := Window(f, 0x40, 0x20)
	if err != nil {
		t.Fatal(err)
	}
	w.Write32(4, 0xdeadbeef)
	if f.Read32(0x44) != 0xdeadbeef || w.Len() != 0x20 {
		t.Errorf("window write landed elsewhere: %#x, Len %d", f.Read32(0x44), w.Len())
	}
	ww, err := Window(w, 0x10, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	ww.Write16(2, 0xabcd)
	if f.Read16(0x52) != 0xabcd || w.Read16(0x12) != 0xabcd || ww.Read8(3) != 0xab {
		t.Errorf("nested window: %#x", f.Read16(0x52))
	}
	for _, c := range []struct {
		r      Registers
		off, n int
	}{
		{f, -1, 4}, {f, 0, -1}, {f, 0xfc, 8}, {f, 0x101, 0}, {w, 0x10, 0x11}, {f, 1, 1<<63 - 1},
	} {
		if _, err := Window(c.r, c.off, c.n); !errors.Is(err, ErrRange) {
			t.Errorf("Window(%#x, %#x) error %v, want ErrRange", c.off, c.n, err)
		}
	}
	if _, err := Window(f, 0x100, 0); err != nil {
		t.Errorf("empty window at the end: %v", err)
	}
}

func TestBadAccessesPanic(t *testing.T) {
	f := NewFake(16)
	w, _ := Window(f, 8, 8)
	for name, access := range map[string]func(){
		"misaligned 32":     func() { f.Read32(2) },
		"misaligned 16":     func() { f.Write16(1, 0) },
		"past the end":      func() { f.Read32(16) },
		"negative":          func() { f.Read8(-1) },
		"straddles the end": func() { w.Read32(6) },
		"past the window":   func() { w.Write8(8, 0) },
		"peek width 3":      func() { f.Peek(0, 3) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			access()
		}()
	}
}
