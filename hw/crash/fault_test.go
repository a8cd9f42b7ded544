package crash_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/crash"
)

var errMedium = errors.New("unrecoverable read error")

// TestInjectedErrors arms one fault per case on a 16-sector device whose
// sector i holds byte i+1, sends requests and checks each one's outcome:
// success, or an *hw.Error of Kind ErrIO with the op, the LBA of the first
// faulty sector and the fault's cause; and that failed writes changed
// nothing.
func TestInjectedErrors(t *testing.T) {
	const ss = 512
	type request struct {
		op      string // read, write, write-zeroes, discard, flush
		lba, n  uint64
		failLBA uint64 // meaningful when fails
		fails   bool
	}
	cases := []struct {
		name  string
		fault crash.Fault
		cause error // the error errors.Is must find; syscall.EIO by default
		reqs  []request
	}{
		{
			name:  "read range",
			fault: crash.Fault{Op: crash.OpRead, LBA: 5, Sectors: 2},
			reqs: []request{
				{op: "read", lba: 0, n: 5},
				{op: "read", lba: 3, n: 4, fails: true, failLBA: 5},
				{op: "read", lba: 6, n: 3, fails: true, failLBA: 6},
				{op: "read", lba: 7, n: 9},
				{op: "write", lba: 5, n: 2},
				{op: "flush"},
			},
		},
		{
			name:  "single sector by default",
			fault: crash.Fault{Op: crash.OpRead, LBA: 15},
			reqs: []request{
				{op: "read", lba: 14, n: 1},
				{op: "read", lba: 0, n: 16, fails: true, failLBA: 15},
			},
		},
		{
			name:  "write with a cause",
			fault: crash.Fault{Op: crash.OpWrite, LBA: 9, Sectors: 1, Err: errMedium},
			cause: errMedium,
			reqs: []request{
				{op: "write", lba: 8, n: 3, fails: true, failLBA: 9},
				{op: "write", lba: 10, n: 2},
				{op: "write-zeroes", lba: 9, n: 1},
				{op: "read", lba: 9, n: 1},
			},
		},
		{
			name:  "twice, then it works",
			fault: crash.Fault{Op: crash.OpWrite, LBA: 2, Times: 2},
			reqs: []request{
				{op: "write", lba: 2, n: 1, fails: true, failLBA: 2},
				{op: "write", lba: 0, n: 4, fails: true, failLBA: 2},
				{op: "write", lba: 2, n: 1},
			},
		},
		{
			name:  "every modification",
			fault: crash.Fault{Op: crash.OpModify, LBA: 4, Sectors: 4},
			reqs: []request{
				{op: "write", lba: 7, n: 2, fails: true, failLBA: 7},
				{op: "write-zeroes", lba: 0, n: 16, fails: true, failLBA: 4},
				{op: "discard", lba: 6, n: 1, fails: true, failLBA: 6},
				{op: "write-zeroes", lba: 8, n: 8},
				{op: "write-zeroes", lba: 4, n: 0},
				{op: "read", lba: 4, n: 4},
			},
		},
		{
			name:  "discard only",
			fault: crash.Fault{Op: crash.OpDiscard, LBA: 0, Sectors: 16},
			reqs: []request{
				{op: "discard", lba: 3, n: 2, fails: true, failLBA: 3},
				{op: "write-zeroes", lba: 3, n: 2},
			},
		},
		{
			name:  "flush",
			fault: crash.Fault{Op: crash.OpFlush, Times: 1},
			reqs: []request{
				{op: "write", lba: 1, n: 1},
				{op: "flush", fails: true},
				{op: "flush"},
			},
		},
		{
			name:  "range up to the last lba",
			fault: crash.Fault{Op: crash.OpRead, LBA: 12, Sectors: 1<<64 - 1},
			reqs: []request{
				{op: "read", lba: 0, n: 12},
				{op: "read", lba: 11, n: 5, fails: true, failLBA: 12},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			initial := make([]byte, 16*ss)
			for i := range initial {
				initial[i] = byte(i/ss + 1)
			}
			base := newMem(t, ss, 16)
			if err := base.Write(0, initial); err != nil {
				t.Fatal(err)
			}
			d := crash.New(base)
			d.InjectError(c.fault)
			cause := c.cause
			if cause == nil {
				cause = syscall.EIO
			}
			model := append([]byte(nil), initial...)
			for i, r := range c.reqs {
				var err error
				payload := bytes.Repeat([]byte{byte(0x80 + i)}, int(r.n)*ss)
				switch r.op {
				case "read":
					buf := make([]byte, r.n*ss)
					err = d.Read(r.lba, buf)
					if err == nil && !bytes.Equal(buf, model[r.lba*ss:(r.lba+r.n)*ss]) {
						t.Errorf("request %d: read back wrong data", i)
					}
				case "write":
					err = d.Write(r.lba, payload)
				case "write-zeroes":
					err = d.WriteZeroes(r.lba, r.n)
					clear(payload)
				case "discard":
					err = d.Discard(r.lba, r.n)
					clear(payload)
				case "flush":
					err = d.Flush()
				}
				if !r.fails {
					if err != nil {
						t.Fatalf("request %d (%s %d+%d): %v", i, r.op, r.lba, r.n, err)
					}
					if r.op != "read" && r.op != "flush" {
						copy(model[r.lba*ss:], payload)
					}
					continue
				}
				var he *hw.Error
				switch {
				case !errors.As(err, &he):
					t.Errorf("request %d (%s %d+%d): %v, want an *hw.Error", i, r.op, r.lba, r.n, err)
				case !errors.Is(err, hw.ErrIO) || !errors.Is(err, cause):
					t.Errorf("request %d: %v, want Kind ErrIO and cause %v", i, err, cause)
				case he.Op != r.op || he.LBA != r.failLBA:
					t.Errorf("request %d: Op %q LBA %d, want %q %d", i, he.Op, he.LBA, r.op, r.failLBA)
				}
			}
			d.ClearFaults()
			buf := make([]byte, 16*ss)
			if err := d.Read(0, buf); err != nil {
				t.Fatalf("read after ClearFaults: %v", err)
			}
			if !bytes.Equal(buf, model) {
				t.Errorf("device contents differ from the model: a failed write changed the medium")
			}
			if !bytes.Equal(d.Crash(crash.KeepAll, 0).Bytes(), model) {
				t.Errorf("KeepAll image differs from the model: a failed write reached the pending log")
			}
		})
	}
}

// TestFailedFlushKeepsPending checks that a failed flush makes nothing
// durable, and that a later successful one does.
func TestFailedFlushKeepsPending(t *testing.T) {
	const ss = 512
	d := crash.New(newMem(t, ss, 4))
	if err := d.Write(0, sector(ss, 5)); err != nil {
		t.Fatal(err)
	}
	d.InjectError(crash.Fault{Op: crash.OpFlush})
	for range 2 {
		if err := d.Flush(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Flush with a flush fault: %v", err)
		}
	}
	if d.Crash(crash.DropAll, 0).Bytes()[0] != 0 || d.Pending() != 1 {
		t.Fatalf("a failed Flush made the write durable")
	}
	d.ClearFaults()
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if d.Crash(crash.DropAll, 0).Bytes()[0] != 5 {
		t.Errorf("Flush after ClearFaults did not make the write durable")
	}
}

// TestFaultPriority arms overlapping faults: the lowest failing sector
// wins and only its count goes down.
func TestFaultPriority(t *testing.T) {
	const ss = 512
	d := crash.New(newMem(t, ss, 16))
	errA, errB := errors.New("a"), errors.New("b")
	d.InjectError(crash.Fault{Op: crash.OpRead, LBA: 8, Sectors: 4, Times: 1, Err: errA})
	d.InjectError(crash.Fault{Op: crash.OpRead, LBA: 6, Sectors: 1, Times: 1, Err: errB})
	buf := make([]byte, 16*ss)
	want := []struct {
		lba   uint64
		cause error
	}{{6, errB}, {8, errA}}
	for i, w := range want {
		err := d.Read(0, buf)
		var he *hw.Error
		if !errors.As(err, &he) || he.LBA != w.lba || !errors.Is(err, w.cause) {
			t.Fatalf("read %d: %v, want lba %d cause %v", i, err, w.lba, w.cause)
		}
	}
	if err := d.Read(0, buf); err != nil {
		t.Errorf("read after both faults fired: %v", err)
	}
}

// TestFaultsSkipInvalidRequests checks that an invalid request is rejected
// as such and does not use up a fault.
func TestFaultsSkipInvalidRequests(t *testing.T) {
	const ss = 512
	d := crash.New(newMem(t, ss, 4))
	d.InjectError(crash.Fault{Op: crash.OpWrite, LBA: 3, Times: 1})
	if err := d.Write(3, sector(ss, 1), sector(ss, 1)); !errors.Is(err, hw.ErrOutOfRange) {
		t.Fatalf("out-of-range write: %v", err)
	}
	if err := d.Write(3, sector(ss, 1)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write with the fault still armed: %v", err)
	}
	if err := d.Write(3, sector(ss, 1)); err != nil {
		t.Fatalf("write after the fault fired once: %v", err)
	}
}
