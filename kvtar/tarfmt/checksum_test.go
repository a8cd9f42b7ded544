package tarfmt

import (
	"math/rand/v2"
	"testing"
)

// TestChecksumMatchesDefinition compares the word-at-a-time sum with the
// definition (each byte added, the checksum field counted as spaces) on
// random blocks, all-0xff blocks and zero blocks.
func TestChecksumMatchesDefinition(t *testing.T) {
	naive := func(b *Block) (u, s int64) {
		for i, c := range b {
			if 148 <= i && i < 156 {
				c = ' '
			}
			u += int64(c)
			s += int64(int8(c))
		}
		return u, s
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var blocks []Block
	var ff, zero Block
	for i := range ff {
		ff[i] = 0xff
	}
	blocks = append(blocks, ff, zero)
	for range 1000 {
		var b Block
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		blocks = append(blocks, b)
	}
	for i := range blocks {
		u, s := blocks[i].Checksum()
		nu, ns := naive(&blocks[i])
		if u != nu || s != ns {
			t.Fatalf("block %d: Checksum = %d, %d; want %d, %d", i, u, s, nu, ns)
		}
	}
}
