package hwtest_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/hwtest"
	"github.com/tarstore/tarstore/hw/mem"
)

// TestMem runs the suite in-process on a correct driver.
func TestMem(t *testing.T) {
	hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return d }))
	t.Run("ReadOnly", func(t *testing.T) {
		hwtest.TestReadOnly(t, func(t *testing.T) hw.Block { return newMem(t).ReadOnlyView() })
	})
}

func newMem(t *testing.T) *mem.Device {
	t.Helper()
	d, err := mem.New(512, 256)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// memHarness opens mem devices wrapped by wrap; Reopen opens the same medium
// again, wrapped again.
func memHarness(wrap func(*mem.Device) hw.Block) hwtest.Harness {
	media := map[hw.Block]*mem.Device{}
	return hwtest.Harness{
		Open: func(t *testing.T) hw.Block {
			d := newMem(t)
			b := wrap(d)
			media[b] = d
			return b
		},
		Reopen: func(t *testing.T, dev hw.Block) hw.Block { return wrap(media[dev].Reopen()) },
	}
}

// childEnv names the broken driver a child process runs the suite on.
const childEnv = "HWTEST_BROKEN_DRIVER"

// brokenDrivers are mutations of a correct driver, each breaking one part of
// the contract, with the subtest of the suite that must catch it.
var brokenDrivers = []struct {
	name string
	want string // the subtest that must fail; "" means the suite must pass
	run  func(t *testing.T)
}{
	{"correct", "", func(t *testing.T) {
		hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return d }))
	}},
	{"write drops all but the first buffer", "Vectored", func(t *testing.T) {
		hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return firstBufferOnly{d} }))
	}},
	{"write applies buffers one by one", "Misaligned", func(t *testing.T) {
		hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return bufferByBuffer{d} }))
	}},
	{"requests after Close succeed", "Close", func(t *testing.T) {
		hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return neverClosed{d} }))
	}},
	{"errors are not *hw.Error", "OutOfRange", func(t *testing.T) {
		hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return untypedErrors{d} }))
	}},
	{"errors carry LBA 0", "OutOfRange", func(t *testing.T) {
		hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return lbaZeroErrors{d} }))
	}},
	{"write-zeroes does nothing", "WriteZeroes", func(t *testing.T) {
		hwtest.TestDevice(t, memHarness(func(d *mem.Device) hw.Block { return lazyZeroes{d} }))
	}},
	{"reopen loses the data", "Persistence", func(t *testing.T) {
		h := memHarness(func(d *mem.Device) hw.Block { return d })
		h.Reopen = func(t *testing.T, dev hw.Block) hw.Block { return newMem(t) }
		hwtest.TestDevice(t, h)
	}},
	{"read-only flag not enforced", "Write", func(t *testing.T) {
		hwtest.TestReadOnly(t, func(t *testing.T) hw.Block { return claimsReadOnly{newMem(t)} })
	}},
}

// TestBrokenDrivers shows that the suite catches drivers that break the
// contract: it runs the suite on each broken driver in a child process (so
// that the expected failures do not fail this test) and checks that the
// right subtest failed, and that the suite passes on the correct driver.
// In the child (childEnv set) it runs the suite itself.
func TestBrokenDrivers(t *testing.T) {
	if name := os.Getenv(childEnv); name != "" {
		for _, b := range brokenDrivers {
			if b.name == name {
				b.run(t)
				return
			}
		}
		t.Fatalf("unknown broken driver %q", name)
	}
	for _, b := range brokenDrivers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenDrivers$", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+b.name)
			out, err := cmd.CombinedOutput()
			if b.want == "" {
				if err != nil {
					t.Fatalf("the suite fails on the correct driver: %v\n%s", err, out)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite did not fail (err %v):\n%s", err, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestBrokenDrivers/"+b.want+" ") {
				t.Errorf("subtest %s did not fail:\n%s", b.want, out)
			}
		})
	}
}

// firstBufferOnly writes only the first buffer of a vectored write.
type firstBufferOnly struct{ *mem.Device }

func (d firstBufferOnly) Write(lba uint64, bufs ...[]byte) error {
	if _, err := hw.CheckRequest(d.Info(), "write", lba, bufs); err != nil {
		return err
	}
	return d.Device.Write(lba, bufs[0])
}

// bufferByBuffer sends each buffer as its own write, so a bad buffer fails
// only after the ones before it were written.
type bufferByBuffer struct{ *mem.Device }

func (d bufferByBuffer) Write(lba uint64, bufs ...[]byte) error {
	if len(bufs) == 0 {
		return d.Device.Write(lba)
	}
	for _, b := range bufs {
		if err := d.Device.Write(lba, b); err != nil {
			return err
		}
		lba += uint64(len(b) / d.Info().SectorSize)
	}
	return nil
}

// neverClosed ignores Close.
type neverClosed struct{ *mem.Device }

func (neverClosed) Close() error { return nil }

// untypedErrors flattens errors into strings.
type untypedErrors struct{ *mem.Device }

func flatten(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(err.Error())
}

func (d untypedErrors) Read(lba uint64, bufs ...[]byte) error {
	return flatten(d.Device.Read(lba, bufs...))
}

func (d untypedErrors) Write(lba uint64, bufs ...[]byte) error {
	return flatten(d.Device.Write(lba, bufs...))
}

// lbaZeroErrors reports every failure at LBA 0.
type lbaZeroErrors struct{ *mem.Device }

func atZero(err error) error {
	var he *hw.Error
	if errors.As(err, &he) {
		c := *he
		c.LBA = 0
		return &c
	}
	return err
}

func (d lbaZeroErrors) Read(lba uint64, bufs ...[]byte) error {
	return atZero(d.Device.Read(lba, bufs...))
}

func (d lbaZeroErrors) Write(lba uint64, bufs ...[]byte) error {
	return atZero(d.Device.Write(lba, bufs...))
}

// lazyZeroes checks the range of WriteZeroes but zeroes nothing.
type lazyZeroes struct{ *mem.Device }

func (d lazyZeroes) WriteZeroes(lba, sectors uint64) error {
	return hw.CheckRange(d.Info(), "write-zeroes", lba, sectors)
}

// claimsReadOnly says it is read-only but accepts writes.
type claimsReadOnly struct{ *mem.Device }

func (d claimsReadOnly) Info() hw.Info {
	info := d.Device.Info()
	info.ReadOnly = true
	return info
}
