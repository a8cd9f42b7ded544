package kvtar

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// fuzzDevSize is the device FuzzOpen opens: the input, truncated or
// padded with zeroes.
const fuzzDevSize = 256 << 10

// FuzzOpen opens arbitrary bytes as a device image (512-byte sectors, or
// 4096 with big). New must not panic. When it fails, the error is a
// *kv.Error of kind kv.ErrCorrupt (the device itself is fine and large
// enough) and the device is unchanged. When it succeeds, Check finds no
// fatal problem, every listed key is readable, a new key can be set (or
// the store is full), and the store reopens clean.
//
//	go test -run '^$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 5s ./kvtar/
//
// (each new input is otherwise minimized for up to a minute, which with
// inputs of tens of KiB looks like a hang).
func FuzzOpen(f *testing.F) {
	files, err := filepath.Glob("tarfmt/testdata/*.tar")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed archives: %v", err)
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, false)
		f.Add(raw[:len(raw)/2], true)
	}
	f.Add([]byte{}, false)
	f.Fuzz(fuzzOpen)
}

// fuzzOpen is one FuzzOpen input: data as the start of the device.
func fuzzOpen(t *testing.T, data []byte, big bool) {
	ss := 512
	if big {
		ss = 4096
	}
	img := make([]byte, fuzzDevSize)
	copy(img, data)
	dev, err := mem.FromBytes(ss, img)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Unix(1.7e9, 0))
	// No end-of-test check: a fuzz input is any bytes, which archive/tar
	// need not read as the store does, and fuzzCheck runs Check after the
	// reopen below; fuzzing runs this thousands of times a second.
	s, err := New(clk, dev)
	if err != nil {
		var ke *kv.Error
		if !errors.As(err, &ke) || !errors.Is(err, kv.ErrCorrupt) {
			t.Fatalf("New: %v (%T), want a *kv.Error of kind corrupt", err, err)
		}
		if !bytes.Equal(dev.Bytes(), img) {
			t.Fatalf("New failed (%v) and wrote to the device", err)
		}
		return
	}
	fuzzCheck(t, s, "after open")
	err = s.Set(kv.MustKey("/fuzz-new"), []byte("fuzz"))
	switch {
	case err == nil:
		fuzzCheck(t, s, "after set")
		if v, err := s.Get(kv.MustKey("/fuzz-new")); err != nil || string(v) != "fuzz" {
			t.Fatalf("get after set: %q, %v", v, err)
		}
	case !errors.Is(err, kv.ErrNoSpace):
		t.Fatalf("set: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s, err = New(clk, dev.Reopen())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	fuzzCheck(t, s, "after reopen")
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// fuzzCheck runs Check and reads every key: the whole value when small, a
// head and a tail window when big (sparse members may claim gigabytes).
func fuzzCheck(t *testing.T, s *Store, when string) {
	t.Helper()
	probs, err := s.Check()
	if err != nil {
		t.Fatalf("%s: check: %v", when, err)
	}
	for _, p := range probs {
		if p.Fatal {
			t.Fatalf("%s: check: %s", when, p)
		}
	}
	var walk func(k kv.Key)
	walk = func(k kv.Key) {
		es, err := s.List(k)
		if err != nil {
			t.Fatalf("%s: list %s: %v", when, k, err)
		}
		for _, e := range es {
			if kind, err := s.Exists(e.Key); err != nil || kind != e.Kind {
				t.Fatalf("%s: exists %s: %v, %v; listed as %v", when, e.Key, kind, err, e.Kind)
			}
			if e.Kind == kv.Dictionary {
				walk(e.Key)
				continue
			}
			size, err := s.Size(e.Key)
			if err != nil || size < 0 {
				t.Fatalf("%s: size %s: %d, %v", when, e.Key, size, err)
			}
			for _, off := range []int64{0, max(0, size-windowLen)} {
				p, err := s.GetPartial(e.Key, off, windowLen)
				if err != nil || int64(len(p)) != min(windowLen, size-off) {
					t.Fatalf("%s: get_partial %s at %d: %d bytes, %v", when, e.Key, off, len(p), err)
				}
			}
		}
	}
	walk(kv.Root)
}
