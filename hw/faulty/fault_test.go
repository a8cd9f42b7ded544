package faulty_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/faulty"
)

// TestFaultsCountDown fires overlapping faults with counts: only the one
// that fires counts down, it disarms at zero, a fault without a count stays,
// and Clear disarms everything.
func TestFaultsCountDown(t *testing.T) {
	var fs faulty.Faults
	errA, errB := errors.New("a"), errors.New("b")
	fs.Inject(faulty.Fault{Op: faulty.OpRead, LBA: 8, Sectors: 4, Times: 1, Err: errA})
	fs.Inject(faulty.Fault{Op: faulty.OpRead, LBA: 6, Times: 2, Err: errB})
	fs.Inject(faulty.Fault{Op: faulty.OpFlush, Times: -1})
	for i, w := range []struct {
		lba   uint64
		cause error
	}{{6, errB}, {6, errB}, {8, errA}} {
		err := fs.Fire(faulty.OpRead, "dev", 0, 16)
		var he *hw.Error
		if !errors.As(err, &he) || he.LBA != w.lba || he.Sectors != 1 || he.Op != "read" || he.Device != "dev" ||
			!errors.Is(err, hw.ErrIO) || !errors.Is(err, w.cause) {
			t.Fatalf("read %d: %v, want read dev lba %d+1, ErrIO, cause %v", i, err, w.lba, w.cause)
		}
	}
	if err := fs.Fire(faulty.OpRead, "dev", 0, 16); err != nil {
		t.Errorf("read after both faults fired: %v", err)
	}
	for range 3 {
		err := fs.Fire(faulty.OpFlush, "dev", 0, 0)
		var he *hw.Error
		if !errors.As(err, &he) || he.Op != "flush" || he.LBA != 0 || he.Sectors != 0 || !errors.Is(err, syscall.EIO) {
			t.Fatalf("flush: %v, want flush lba 0+0 with cause EIO", err)
		}
	}
	fs.Clear()
	if err := fs.Fire(faulty.OpFlush, "dev", 0, 0); err != nil {
		t.Errorf("flush after Clear: %v", err)
	}
}

// TestInjectedErrors arms one fault per case on a wrapped 16-sector mem
// device whose sector i holds byte i+1 and sends one request that the fault
// fails: the error is right, the request did not reach the device (Stats,
// contents), and after ClearFaults the same request does.
func TestInjectedErrors(t *testing.T) {
	const ss = 512
	errMedium := errors.New("unrecoverable read error")
	cases := []struct {
		name  string
		fault faulty.Fault
		req   func(d *faulty.Device) error
		op    string
		lba   uint64 // of the error
		cause error
		after faulty.Stats // once passed down
	}{
		{"read", faulty.Fault{Op: faulty.OpRead, LBA: 5, Sectors: 2, Err: errMedium},
			func(d *faulty.Device) error { return d.Read(3, make([]byte, 4*ss)) },
			"read", 5, errMedium, faulty.Stats{Reads: 1}},
		{"vectored write", faulty.Fault{Op: faulty.OpWrite, LBA: 9},
			func(d *faulty.Device) error { return d.Write(8, sector(ss, 0xee), sector(ss, 0xee)) },
			"write", 9, syscall.EIO, faulty.Stats{Writes: 1}},
		{"write-zeroes", faulty.Fault{Op: faulty.OpModify, LBA: 4, Sectors: 4},
			func(d *faulty.Device) error { return d.WriteZeroes(6, 10) },
			"write-zeroes", 6, syscall.EIO, faulty.Stats{Zeroes: 1}},
		{"discard", faulty.Fault{Op: faulty.OpDiscard, LBA: 15},
			func(d *faulty.Device) error { return d.Discard(0, 16) },
			"discard", 15, syscall.EIO, faulty.Stats{Discards: 1}},
		{"flush", faulty.Fault{Op: faulty.OpFlush, LBA: 3},
			func(d *faulty.Device) error { return d.Flush() },
			"flush", 0, syscall.EIO, faulty.Stats{Flushes: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, initial := numbered(t, 16)
			d := faulty.New(m)
			d.InjectError(c.fault)
			wantErr(t, "with the fault", c.req(d), c.op, c.lba, hw.ErrIO, c.cause)
			if got := d.Stats(); got != (faulty.Stats{}) {
				t.Errorf("Stats() = %+v after the failed request, want none passed down", got)
			}
			if !bytes.Equal(m.Bytes(), initial) {
				t.Errorf("the failed request changed the device")
			}
			d.ClearFaults()
			if err := c.req(d); err != nil {
				t.Fatalf("after ClearFaults: %v", err)
			}
			if got := d.Stats(); got != c.after {
				t.Errorf("Stats() = %+v after ClearFaults, want %+v", got, c.after)
			}
		})
	}
}

// TestFaultsSkipRefusedRequests checks that requests refused by the checks
// are refused as such and do not use up a fault.
func TestFaultsSkipRefusedRequests(t *testing.T) {
	const ss = 512
	d := faulty.New(plain{newMem(t, ss, 4)})
	d.InjectError(faulty.Fault{Op: faulty.OpModify, LBA: 3, Times: 1})
	wantErr(t, "out of range", d.Write(3, sector(ss, 1), sector(ss, 1)), "write", 3, hw.ErrOutOfRange, nil)
	wantErr(t, "misaligned", d.Write(3, make([]byte, ss+1)), "write", 3, hw.ErrMisaligned, nil)
	wantErr(t, "unsupported", d.WriteZeroes(3, 1), "write-zeroes", 3, hw.ErrUnsupported, nil)
	wantErr(t, "with the fault armed", d.Write(3, sector(ss, 1)), "write", 3, hw.ErrIO, syscall.EIO)
	if err := d.Write(3, sector(ss, 1)); err != nil {
		t.Errorf("write after the fault fired once: %v", err)
	}
}
