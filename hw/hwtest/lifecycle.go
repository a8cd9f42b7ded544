package hwtest

import (
	"errors"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// testGeometry checks Info: a sane geometry that stays the same across calls
// and I/O.
func testGeometry(t *testing.T, dev hw.Block, info hw.Info) {
	if info.Driver == "" {
		t.Errorf("Info().Driver is empty: %+v", info)
	}
	if got := info.Size(); got != int64(info.Sectors)*int64(info.SectorSize) || got <= 0 {
		t.Errorf("Info().Size() = %d for %d sectors of %d bytes", got, info.Sectors, info.SectorSize)
	}
	if again := dev.Info(); again != info {
		t.Errorf("Info changed between two calls: %+v then %+v", info, again)
	}
	ss := info.SectorSize
	mustWrite(t, dev, 0, pattern(ss, 1, 0, 1))
	mustRead(t, dev, info.Sectors-1, ss)
	if err := dev.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if again := dev.Info(); again != info {
		t.Errorf("Info changed after I/O: %+v then %+v", info, again)
	}
}

// testFlush checks that Flush succeeds, with and without writes before it,
// and that data written before it reads back.
func testFlush(t *testing.T, dev hw.Block, info hw.Info) {
	ss := info.SectorSize
	if err := dev.Flush(); err != nil {
		t.Fatalf("Flush on a fresh device: %v", err)
	}
	want := pattern(ss, 2, 10, 6)
	mustWrite(t, dev, 10, want)
	if err := dev.Flush(); err != nil {
		t.Fatalf("Flush after a write: %v", err)
	}
	if err := dev.Flush(); err != nil {
		t.Fatalf("second Flush in a row: %v", err)
	}
	expect(t, dev, "after Flush", 10, want)
}

// testClose checks that Close is idempotent and that every request after it
// fails with ErrClosed.
func testClose(t *testing.T, dev hw.Block, info hw.Info) {
	ss := info.SectorSize
	mustWrite(t, dev, 0, pattern(ss, 3, 0, 4))
	if err := dev.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	buf := make([]byte, ss)
	wantErrAt(t, "Read after Close", dev.Read(0, buf), hw.ErrClosed, "read", 0)
	wantErrAt(t, "Write after Close", dev.Write(1, buf), hw.ErrClosed, "write", 1)
	wantErr(t, "Flush after Close", dev.Flush(), hw.ErrClosed, "flush")
	if z, ok := dev.(hw.Zeroer); ok {
		wantErrAt(t, "WriteZeroes after Close", z.WriteZeroes(2, 1), hw.ErrClosed, "write-zeroes", 2)
	}
	if d, ok := dev.(hw.Discarder); ok {
		wantErrAt(t, "Discard after Close", d.Discard(3, 1), hw.ErrClosed, "discard", 3)
	}
	if err := hw.WriteZeroes(dev, 2, 1); err == nil {
		t.Errorf("hw.WriteZeroes after Close succeeded")
	} else {
		wantErr(t, "hw.WriteZeroes after Close", err, hw.ErrClosed, errOp(err))
	}
}

// errOp returns the Op of an *hw.Error, for checks that accept any op.
func errOp(err error) string {
	var he *hw.Error
	if errors.As(err, &he) {
		return he.Op
	}
	return ""
}

// testPersistence checks that flushed data survives Close and Reopen.
func testPersistence(t *testing.T, h Harness) {
	dev, info := openDevice(t, h.Open, minSectors)
	ss, last := info.SectorSize, info.Sectors
	areas := []struct {
		name   string
		lba, n uint64
	}{
		{"first sectors", 0, 4},
		{"middle", last / 2, 3},
		{"last sectors", last - 4, 4},
	}
	for i, a := range areas {
		mustWrite(t, dev, a.lba, pattern(ss, 40+uint64(i), a.lba, a.n))
	}
	if err := dev.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again := h.Reopen(t, dev)
	if again == nil {
		t.Fatal("Reopen returned a nil device")
	}
	t.Cleanup(func() {
		if err := again.Close(); err != nil {
			t.Errorf("Close of the reopened device: %v", err)
		}
	})
	if got := again.Info(); got.SectorSize != ss || got.Sectors != last {
		t.Fatalf("reopened geometry %d sectors of %d bytes, want %d of %d", got.Sectors, got.SectorSize, last, ss)
	}
	for i, a := range areas {
		expect(t, again, a.name+" after Reopen", a.lba, pattern(ss, 40+uint64(i), a.lba, a.n))
	}
}
