package nvme

import (
	"errors"
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// TestSharedCommands: the exported encoders are the driver's own commands.
func TestSharedCommands(t *testing.T) {
	for _, c := range []struct {
		name string
		got  Command
		want *command
	}{
		{"identify controller", IdentifyControllerCommand(), identifyCmd(cnsController, 0)},
		{"identify namespace", IdentifyNamespaceCommand(5), identifyCmd(cnsNamespace, 5)},
		{"read", ReadCommand(1, 0x1_0000_0003, 8), blocksCmd(opRead, 1, 0x1_0000_0003, 8)},
		{"write", WriteCommand(2, 9, MaxBlocks), blocksCmd(opWrite, 2, 9, maxBlocks)},
		{"write zeroes", WriteZeroesCommand(1, 7, 3), blocksCmd(opWriteZeroes, 1, 7, 3)},
		{"flush", FlushCommand(1), flushCmd(1)},
		{"deallocate", DeallocateCommand(1, 256), dsmCmd(1, 256)},
	} {
		w := c.want
		want := Command{Opcode: w.opcode(), NSID: w.nsid(), CDW: [6]uint32{w.cdw(10), w.cdw(11), w.cdw(12), w.cdw(13), w.cdw(14), w.cdw(15)}}
		if c.got != want {
			t.Errorf("%s: %+v, want %+v", c.name, c.got, want)
		}
	}
	if r := ReadCommand(1, 0x1_2345_6789, 8); r.Opcode != 0x02 || r.CDW != [6]uint32{0x23456789, 1, 7} {
		t.Errorf("read: %+v", r)
	}
	if IdentifySize != 4096 || DSMRangeSize != 16 || MaxBlocks != 65536 {
		t.Errorf("sizes %d %d %d", IdentifySize, DSMRangeSize, MaxBlocks)
	}
}

func TestDeallocateRanges(t *testing.T) {
	const gib = 1 << 30
	list, n := DeallocateRanges(7, 3*gib/512+5, 512, 256)
	if n != 3*gib/512+5 || len(list) != 4*DSMRangeSize {
		t.Fatalf("%d blocks in %d bytes of ranges", n, len(list))
	}
	for i, want := range [][2]uint64{{7, gib / 512}, {7 + gib/512, gib / 512}, {7 + 2*gib/512, gib / 512}, {7 + 3*gib/512, 5}} {
		r := list[i*DSMRangeSize:]
		if le.Uint32(r[0:]) != 0 || uint64(le.Uint32(r[4:])) != want[1] || le.Uint64(r[8:]) != want[0] {
			t.Errorf("range %d: % x, want %v", i, r[:DSMRangeSize], want)
		}
	}
	if _, n := DeallocateRanges(0, 3*gib/4096, 4096, 2); n != 2*gib/4096 {
		t.Errorf("two ranges cover %d blocks", n)
	}
	if list, n := DeallocateRanges(0, 1000*gib/4096, 4096, 1000); n != 256*gib/4096 || len(list) != 256*DSMRangeSize {
		t.Errorf("at most 256 ranges: %d blocks, %d bytes", n, len(list))
	}
	if list, n := DeallocateRanges(0, 10, 512, 0); n != 10 || len(list) != DSMRangeSize {
		t.Errorf("at least one range: %d blocks, %d bytes", n, len(list))
	}
}

// TestDecodeIdentify: the bring-up's checks and geometry, from the data
// alone, with MDTS in 4 KiB pages.
func TestDecodeIdentify(t *testing.T) {
	f := newFake(t, 4096, 1000)
	f.mdts, f.oncs, f.vwc = 4, 1<<2, false
	ns, err := DecodeIdentify(f.identifyController(), f.identifyNamespace(), 1, 200<<10)
	if err != nil {
		t.Fatal(err)
	}
	want := Namespace{
		Identity: Identity{
			VendorID: 0x1b36, Serial: "fake-serial", Model: "fake nvme", Firmware: "1.0", Version: fakeVS,
			Namespace: 1, LBAFormat: 2, Deallocate: true, MaxTransfer: 64 << 10,
		},
		BlockSize: 4096, Blocks: 1000,
	}
	if ns != want {
		t.Errorf("got %+v\nwant %+v", ns, want)
	}
	f.mdts, f.nsattr = 0, 1
	if ns, err := DecodeIdentify(f.identifyController(), f.identifyNamespace(), 1, 200<<10); err != nil || ns.MaxTransfer != 200<<10 || !ns.WriteProtected {
		t.Errorf("no MDTS, write protected: %+v, %v", ns, err)
	}
	for name, c := range map[string]struct {
		ns   []byte
		xfer int
	}{
		"inactive":         {make([]byte, 4096), 1 << 20},
		"short data":       {nil, 1 << 20},
		"metadata":         {func() []byte { b := f.identifyNamespace(); le.PutUint32(b[128+8:], 12<<16|8); return b }(), 1 << 20},
		"transfer < block": {f.identifyNamespace(), 2048},
	} {
		if _, err := DecodeIdentify(f.identifyController(), c.ns, 1, c.xfer); !errors.Is(err, ErrBadController) {
			t.Errorf("%s: %v, want ErrBadController", name, err)
		}
	}
}

func TestSharedStatus(t *testing.T) {
	e := NewStatusError("write-zeroes", 9, stInvalidField)
	if e.Kind() != hw.ErrUnsupported || e.LBA != 9 || e.Op != "write-zeroes" || e.SC != scInvalidField {
		t.Errorf("%+v: kind %v", e, e.Kind())
	}
	if e := NewStatusError("read", 9, Status(sctMedia<<8|0x81)); e.Kind() != hw.ErrIO {
		t.Errorf("%+v: kind %v", e, e.Kind())
	}
}
