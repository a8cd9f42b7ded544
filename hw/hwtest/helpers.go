package hwtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// openDevice opens a device with fn, checks its geometry enough for the
// tests to run, and closes it when the test ends.
func openDevice(t *testing.T, fn func(t *testing.T) hw.Block, min uint64) (hw.Block, hw.Info) {
	t.Helper()
	dev := fn(t)
	if dev == nil {
		t.Fatal("open returned a nil device")
	}
	t.Cleanup(func() {
		if err := dev.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	info := dev.Info()
	if info.SectorSize <= 0 || info.SectorSize%512 != 0 {
		t.Fatalf("SectorSize %d is not a positive multiple of 512", info.SectorSize)
	}
	if info.Sectors < min {
		t.Fatalf("device has %d sectors, the suite needs at least %d", info.Sectors, min)
	}
	return dev, info
}

// pattern returns sectors sectors of test data for the area starting at
// lba. Each sector is a pseudo-random function of tag and of its own LBA.
func pattern(ss int, tag, lba, sectors uint64) []byte {
	b := make([]byte, int(sectors)*ss)
	fill(b, ss, tag, lba)
	return b
}

// fill writes into b (whole sectors) the pattern of tag for the area
// starting at lba.
func fill(b []byte, ss int, tag, lba uint64) {
	for i := 0; i+ss <= len(b); i += ss {
		r := rand.NewPCG(tag, lba+uint64(i/ss))
		for j := i; j < i+ss; j += 8 {
			binary.LittleEndian.PutUint64(b[j:], r.Uint64())
		}
	}
}

// split copies b into freshly allocated buffers of the given sizes in
// sectors, which must add up to len(b).
func split(b []byte, ss int, sizes []int) [][]byte {
	bufs := make([][]byte, 0, len(sizes))
	for _, n := range sizes {
		bufs = append(bufs, append([]byte(nil), b[:n*ss]...))
		b = b[n*ss:]
	}
	return bufs
}

// buffers returns zeroed buffers of the given sizes in sectors.
func buffers(ss int, sizes []int) [][]byte {
	bufs := make([][]byte, len(sizes))
	for i, n := range sizes {
		bufs[i] = make([]byte, n*ss)
	}
	return bufs
}

// ones returns n sizes of one sector.
func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// sum adds sizes.
func sum(sizes []int) int {
	n := 0
	for _, s := range sizes {
		n += s
	}
	return n
}

// diffSectors describes the first sector in which got differs from want
// (both starting at lba), or returns "" when they are equal.
func diffSectors(got, want []byte, ss int, lba uint64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d bytes, want %d", len(got), len(want))
	}
	for i := 0; i < len(got); i += ss {
		g, w := got[i:min(i+ss, len(got))], want[i:min(i+ss, len(want))]
		if bytes.Equal(g, w) {
			continue
		}
		j := 0
		for g[j] == w[j] {
			j++
		}
		return fmt.Sprintf("sector %d differs from byte %d: got %#02x, want %#02x", lba+uint64(i/ss), j, g[j], w[j])
	}
	return ""
}

// mustWrite writes bufs at lba and stops the test on error.
func mustWrite(t *testing.T, dev hw.Block, lba uint64, bufs ...[]byte) {
	t.Helper()
	if err := dev.Write(lba, bufs...); err != nil {
		t.Fatalf("Write(%d, %s): %v", lba, describe(bufs), err)
	}
}

// mustRead reads n bytes at lba and stops the test on error.
func mustRead(t *testing.T, dev hw.Block, lba uint64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := dev.Read(lba, b); err != nil {
		t.Fatalf("Read(%d, %d bytes): %v", lba, n, err)
	}
	return b
}

// expect reads len(want) bytes at lba and reports any difference.
func expect(t *testing.T, dev hw.Block, what string, lba uint64, want []byte) {
	t.Helper()
	got := mustRead(t, dev, lba, len(want))
	if d := diffSectors(got, want, dev.Info().SectorSize, lba); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

// describe prints buffer lengths for messages.
func describe(bufs [][]byte) string {
	if len(bufs) > 8 {
		return fmt.Sprintf("%d buffers of %d bytes in all", len(bufs), total(bufs))
	}
	s := "["
	for i, b := range bufs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprint(len(b))
	}
	return s + "] bytes"
}

func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// wantErr checks that err is an *hw.Error of the given kind and op, and
// returns it (nil after reporting a mismatch).
func wantErr(t *testing.T, what string, err, kind error, op string) *hw.Error {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %v", what, kind)
		return nil
	}
	var he *hw.Error
	if !errors.As(err, &he) {
		t.Errorf("%s: error %q (%T) is not an *hw.Error", what, err, err)
		return nil
	}
	if !errors.Is(err, kind) {
		t.Errorf("%s: error %q is not %v", what, err, kind)
		return nil
	}
	if he.Op != op {
		t.Errorf("%s: error %q has Op %q, want %q", what, err, he.Op, op)
		return nil
	}
	return he
}

// wantErrAt is wantErr plus a check of the error's LBA.
func wantErrAt(t *testing.T, what string, err, kind error, op string, lba uint64) {
	t.Helper()
	if he := wantErr(t, what, err, kind, op); he != nil && he.LBA != lba {
		t.Errorf("%s: error %q has LBA %d, want %d", what, err, he.LBA, lba)
	}
}

// plain hides a device's optional interfaces, to exercise the fallbacks of
// hw.WriteZeroes and hw.AllocBuffer.
type plain struct{ hw.Block }
