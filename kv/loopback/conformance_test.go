package loopback_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
	"github.com/tarstore/tarstore/kv/loopback"
)

// TestConformance runs the shared suite over stores in fresh directories;
// Reopen opens the same directory again.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dirs := map[kv.RW]string{}
	open := func(t *testing.T, dir string, clk clock.PClock) kv.RW {
		s, err := loopback.New(dir, clk)
		if err != nil {
			t.Fatalf("New(%s): %v", dir, err)
		}
		mu.Lock()
		dirs[s] = dir
		mu.Unlock()
		return s
	}
	kvtest.TestRW(t, kvtest.Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW { return open(t, t.TempDir(), clk) },
		Reopen: func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW {
			mu.Lock()
			dir := dirs[s]
			delete(dirs, s)
			mu.Unlock()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, dir, clk)
		},
		MtimeResolution: time.Nanosecond,
	})
}
