package hwtest

import (
	"errors"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// testReadOnlyGeometry checks that Info reports a read-only device.
func testReadOnlyGeometry(t *testing.T, dev hw.Block, info hw.Info) {
	if !info.ReadOnly {
		t.Errorf("Info().ReadOnly is false: %+v", info)
	}
	if again := dev.Info(); again != info {
		t.Errorf("Info changed between two calls: %+v then %+v", info, again)
	}
}

// readOnlyArea is how many sectors at the start of the device the read-only
// tests read.
func readOnlyArea(info hw.Info) uint64 { return min(info.Sectors, 64) }

// testReadOnlyRead reads the same sectors in several ways; all must agree.
func testReadOnlyRead(t *testing.T, dev hw.Block, info hw.Info) {
	ss, n := info.SectorSize, readOnlyArea(info)
	whole := mustRead(t, dev, 0, int(n)*ss)
	bufs := buffers(ss, []int{1, 2, int(n) - 3})
	if err := dev.Read(0, bufs...); err != nil {
		t.Fatalf("vectored Read: %v", err)
	}
	var vectored []byte
	for _, b := range bufs {
		vectored = append(vectored, b...)
	}
	if d := diffSectors(vectored, whole, ss, 0); d != "" {
		t.Errorf("vectored read differs from a single read: %s", d)
	}
	odd, _ := oddBuffer(2*ss, 3)
	if err := dev.Read(1, odd); err != nil {
		t.Fatalf("Read into an odd-aligned buffer: %v", err)
	}
	if d := diffSectors(odd, whole[ss:3*ss], ss, 1); d != "" {
		t.Errorf("odd-aligned read differs from a single read: %s", d)
	}
	mustRead(t, dev, info.Sectors-1, ss)
	wantErrAt(t, "Read past the end", dev.Read(info.Sectors, make([]byte, ss)), hw.ErrOutOfRange, "read", info.Sectors)
}

// testReadOnlyWrite tries every way of changing the device: each must fail
// with ErrReadOnly and the data must stay as it was.
func testReadOnlyWrite(t *testing.T, dev hw.Block, info hw.Info) {
	ss, n, last := info.SectorSize, readOnlyArea(info), info.Sectors
	head := mustRead(t, dev, 0, int(n)*ss)
	tail := mustRead(t, dev, last-1, ss)
	data := pattern(ss, 3000, 0, 3)
	wantErrAt(t, "Write", dev.Write(0, data[:ss]), hw.ErrReadOnly, "write", 0)
	wantErrAt(t, "Write of the last sector", dev.Write(last-1, data[:ss]), hw.ErrReadOnly, "write", last-1)
	wantErrAt(t, "vectored Write", dev.Write(2, data[:ss], data[ss:]), hw.ErrReadOnly, "write", 2)
	if z, ok := dev.(hw.Zeroer); ok {
		wantErrAt(t, "WriteZeroes", z.WriteZeroes(1, 2), hw.ErrReadOnly, "write-zeroes", 1)
	}
	if d, ok := dev.(hw.Discarder); ok {
		wantErrAt(t, "Discard", d.Discard(1, 2), hw.ErrReadOnly, "discard", 1)
	}
	wantErrAt(t, "hw.WriteZeroes", hw.WriteZeroes(dev, 3, 1), hw.ErrReadOnly, "write-zeroes", 3)
	wantErrAt(t, "hw.WriteZeroes fallback", hw.WriteZeroes(plain{dev}, 3, 1), hw.ErrReadOnly, "write-zeroes", 3)
	expect(t, dev, "first sectors after refused writes", 0, head)
	expect(t, dev, "last sector after refused writes", last-1, tail)
}

// testReadOnlyClose checks Flush (which may succeed or fail, but with an
// *hw.Error), then that Close is idempotent and reads fail afterwards.
func testReadOnlyClose(t *testing.T, dev hw.Block, info hw.Info) {
	if err := dev.Flush(); err != nil {
		wantErr(t, "Flush of a read-only device", err, errKind(err), "flush")
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantErrAt(t, "Read after Close", dev.Read(0, make([]byte, info.SectorSize)), hw.ErrClosed, "read", 0)
}

// errKind returns the Kind of an *hw.Error, for checks that accept any kind.
func errKind(err error) error {
	var he *hw.Error
	if errors.As(err, &he) && he.Kind != nil {
		return he.Kind
	}
	return hw.ErrIO
}
