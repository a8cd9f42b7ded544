package kvtar

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// The in-memory benchmarks measure the CPU cost of each operation of the
// store on hw/mem, where the device costs next to nothing: the same
// workload as tar-mirage's on its in-memory block device (1 KiB values).
// Compare builds with interleaved rounds and allocations per op:
//
//	go test -run '^$' -bench Mem -benchmem -count 6 ./kvtar
//
// Timing is never asserted.

// memBenchValue is the size of the values of the in-memory benchmarks.
const memBenchValue = 1 << 10

// newMemBench returns a store on a fresh 1 GiB in-memory device of ss-byte
// sectors, closed when the benchmark ends (not checked: the benchmarks
// write thousands of members). The device's memory for the first
// touch bytes is allocated (written) beforehand, as a RAM disk's is: the
// benchmarks measure the store, not the host faulting pages in.
func newMemBench(b *testing.B, ss int, touch int64) *Store {
	b.Helper()
	dev, err := mem.New(ss, (1<<30)/uint64(ss))
	require.NoError(b, err)
	fill := bytes.Repeat([]byte{0xa5}, 1<<20)
	for off := int64(0); off < min(touch+16<<20, 1<<30); off += int64(len(fill)) {
		require.NoError(b, dev.Write(uint64(off/int64(ss)), fill))
	}
	require.NoError(b, Format(dev))
	s, err := New(clock.NewFake(time.Unix(1e9, 0)), dev)
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	return s
}

// memKeys returns n distinct keys.
func memKeys(n int) []kv.Key {
	ks := make([]kv.Key, n)
	for i := range ks {
		ks[i] = kv.MustKey(fmt.Sprintf("/bench/k%08d", i))
	}
	return ks
}

// memBenchMember is the space a member of the benchmarks takes at most.
const memBenchMember = 2 << 10

func BenchmarkMemSet(b *testing.B) {
	s := newMemBench(b, 512, int64(b.N)*memBenchMember)
	v := make([]byte, memBenchValue)
	ks := memKeys(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Set(ks[i], v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemGet(b *testing.B) {
	for _, ss := range []int{512, 4096} {
		b.Run(fmt.Sprintf("ss=%d", ss), func(b *testing.B) {
			s := newMemBench(b, ss, 0)
			k := kv.MustKey("/bench/v")
			require.NoError(b, s.Set(k, make([]byte, memBenchValue)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := s.Get(k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMemAllocate(b *testing.B) {
	s := newMemBench(b, 512, int64(b.N)*memBenchMember)
	ks := memKeys(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Allocate(ks[i], memBenchValue, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemSetPartial(b *testing.B) {
	s := newMemBench(b, 512, 0)
	k := kv.MustKey("/bench/v")
	require.NoError(b, s.Set(k, make([]byte, memBenchValue)))
	patch := []byte("sixteen bytes...")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.SetPartial(k, 100, patch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemRename(b *testing.B) {
	s := newMemBench(b, 512, 0)
	ks := [2]kv.Key{kv.MustKey("/bench/a"), kv.MustKey("/bench/b")}
	require.NoError(b, s.Set(ks[0], make([]byte, memBenchValue)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Rename(ks[i%2], ks[(i+1)%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemRemove removes the last member of the archive (what
// tar-mirage can remove): b.N values are set first, untimed, and removed
// from the last.
func BenchmarkMemRemove(b *testing.B) {
	s := newMemBench(b, 512, int64(b.N)*memBenchMember)
	ks := memKeys(b.N)
	v := make([]byte, memBenchValue)
	for _, k := range ks {
		require.NoError(b, s.Set(k, v))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Remove(ks[b.N-1-i]); err != nil {
			b.Fatal(err)
		}
	}
}
