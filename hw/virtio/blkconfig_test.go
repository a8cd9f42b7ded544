package virtio

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseBlkConfig(t *testing.T) {
	// capacity 32768, size_max 65536, seg_max 126, geometry 2/4/8,
	// blk_size 4096, topology 3/1/8/16, writeback 1, num_queues 2,
	// discard 100/1/8, write zeroes 200/1/1.
	b := unhex(t, "0080000000000000 00000100 7e000000 0200 04 08 00100000"+
		"03 01 0800 10000000 01 00 0200"+
		"64000000 01000000 08000000 c8000000 01000000 01 000000")
	if len(b) != BlkConfigSize {
		t.Fatalf("test config is %d bytes", len(b))
	}
	got, err := ParseBlkConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	want := BlkConfig{
		Capacity: 32768, SizeMax: 65536, SegMax: 126,
		Cylinders: 2, Heads: 4, Sectors: 8, BlkSize: 4096,
		PhysicalBlockExp: 3, AlignmentOffset: 1, MinIOSize: 8, OptIOSize: 16,
		Writeback: 1, NumQueues: 2,
		MaxDiscardSectors: 100, MaxDiscardSeg: 1, DiscardSectorAlignment: 8,
		MaxWriteZeroesSectors: 200, MaxWriteZeroesSeg: 1, WriteZeroesMayUnmap: 1,
	}
	if got != want {
		t.Errorf("ParseBlkConfig =\n%+v\nwant\n%+v", got, want)
	}
	if n := got.LogicalBlockSize(FeatureBlkBlkSize); n != 4096 {
		t.Errorf("LogicalBlockSize with BLK_SIZE = %d", n)
	}
	if n := got.LogicalBlockSize(0); n != 512 {
		t.Errorf("LogicalBlockSize without BLK_SIZE = %d", n)
	}
	if _, err := ParseBlkConfig(b[:59]); !errors.Is(err, ErrBadDevice) {
		t.Errorf("ParseBlkConfig(59 bytes): %v, want ErrBadDevice", err)
	}
}
