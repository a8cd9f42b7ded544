package crash_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/crash"
)

// A scripted workload over a 16-sector device. Every data sector written
// holds a value no other write uses, so a crash image tells which write each
// sector came from.
const (
	wlSS      = 512
	wlSectors = 16
)

type stepKind int

const (
	stepWrite stepKind = iota
	stepZeroes
	stepDiscard
	stepFlush
)

type step struct {
	kind  stepKind
	lba   uint64
	sizes []int  // stepWrite: buffer sizes in sectors
	n     uint64 // stepZeroes, stepDiscard: sectors
	tag   byte   // stepWrite: sector i holds tag+i
}

var workload = []step{
	{kind: stepWrite, lba: 0, sizes: []int{2}, tag: 0x10},
	{kind: stepWrite, lba: 4, sizes: []int{1}, tag: 0x20},
	{kind: stepWrite, lba: 8, sizes: []int{1, 1}, tag: 0x30},
	{kind: stepFlush},
	{kind: stepWrite, lba: 1, sizes: []int{2}, tag: 0x40}, // over a flushed sector
	{kind: stepZeroes, lba: 8, n: 2},
	{kind: stepWrite, lba: 12, sizes: []int{3}, tag: 0x50},
	{kind: stepFlush},
	{kind: stepWrite, lba: 0, sizes: []int{1}, tag: 0x60},
	{kind: stepDiscard, lba: 4, n: 1},
	{kind: stepWrite, lba: 14, sizes: []int{1, 1}, tag: 0x70},
	{kind: stepWrite, lba: 13, sizes: []int{2}, tag: 0x80}, // over a pending sector
	{kind: stepWrite, lba: 2, sizes: []int{3}, tag: 0x90},
}

// model is the reference: durable sectors and the pending writes, each as
// its sectors' contents.
type model struct {
	durable [wlSectors][]byte
	pending []pendingWrite
}

type pendingWrite struct {
	lba  uint64
	data [][]byte // one entry per sector
}

func newModel() *model {
	m := &model{}
	for i := range m.durable {
		m.durable[i] = make([]byte, wlSS)
	}
	return m
}

func (m *model) flush() {
	for _, w := range m.pending {
		for i, s := range w.data {
			m.durable[w.lba+uint64(i)] = s
		}
	}
	m.pending = nil
}

// image is the durable medium with the pending sectors keep selects applied
// in order.
func (m *model) image(keep func(w, i int) bool) []byte {
	secs := m.durable
	for wi, w := range m.pending {
		for i, s := range w.data {
			if keep(wi, i) {
				secs[w.lba+uint64(i)] = s
			}
		}
	}
	return bytes.Join(secs[:], nil)
}

// stepData returns the write's sectors, one per entry.
func (s step) data() [][]byte {
	var secs [][]byte
	switch s.kind {
	case stepWrite:
		for i := range sum(s.sizes) {
			secs = append(secs, sector(wlSS, s.tag+byte(i)))
		}
	case stepZeroes, stepDiscard:
		for range s.n {
			secs = append(secs, make([]byte, wlSS))
		}
	}
	return secs
}

func sum(sizes []int) int {
	n := 0
	for _, s := range sizes {
		n += s
	}
	return n
}

// do runs one step on d.
func (s step) do(d *crash.Device) error {
	switch s.kind {
	case stepWrite:
		flat := bytes.Join(s.data(), nil)
		var bufs [][]byte
		for _, n := range s.sizes {
			bufs = append(bufs, flat[:n*wlSS])
			flat = flat[n*wlSS:]
		}
		return d.Write(s.lba, bufs...)
	case stepZeroes:
		return d.WriteZeroes(s.lba, s.n)
	case stepDiscard:
		return d.Discard(s.lba, s.n)
	}
	return d.Flush()
}

// run plays the workload on a fresh device with the power failing at write
// failAt (0: never) and returns the device and the model of what it holds.
func run(t *testing.T, failAt int) (*crash.Device, *model) {
	t.Helper()
	d := crash.New(newMem(t, wlSS, wlSectors))
	d.FailAtWrite(failAt)
	m := newModel()
	writes := 0
	for i, s := range workload {
		err := s.do(d)
		if s.kind == stepFlush {
			if err != nil {
				t.Fatalf("step %d: Flush: %v", i, err)
			}
			m.flush()
			continue
		}
		writes++
		m.pending = append(m.pending, pendingWrite{s.lba, s.data()})
		if writes == failAt {
			if !errors.Is(err, hw.ErrIO) || !errors.Is(err, crash.ErrPowerLost) {
				t.Fatalf("step %d, the write the power fails at: %v, want ErrIO/ErrPowerLost", i, err)
			}
			return d, m
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return d, m
}

// countWrites plays the workload once to count its crash points.
func countWrites(t *testing.T) int {
	d, _ := run(t, 0)
	return d.Writes()
}

// TestCrashEveryWrite cuts the power at every write of the workload (and
// after the last one) and checks each crash image against the model.
func TestCrashEveryWrite(t *testing.T) {
	w := countWrites(t)
	if w != 11 {
		t.Fatalf("the workload issued %d writes, want 11", w)
	}
	var reordered, torn bool
	for n := 1; n <= w+1; n++ {
		t.Run(fmt.Sprintf("write %d", n), func(t *testing.T) {
			d, m := run(t, n)
			if n > w {
				d.PowerOff()
			}
			checkDead(t, d, min(n, w))

			if got := d.Crash(crash.KeepAll, 0).Bytes(); !bytes.Equal(got, m.image(func(int, int) bool { return true })) {
				t.Errorf("KeepAll: image differs from durable + every pending write")
			}
			if got := d.Crash(crash.DropAll, 0).Bytes(); !bytes.Equal(got, m.image(func(int, int) bool { return false })) {
				t.Errorf("DropAll: image differs from the flushed contents")
			}

			again, _ := run(t, n) // a second run of the same crash point
			if n > w {
				again.PowerOff()
			}
			distinct := map[string]bool{}
			for seed := range int64(16) {
				img := d.Crash(crash.Tear, seed).Bytes()
				if !bytes.Equal(img, d.Crash(crash.Tear, seed).Bytes()) ||
					!bytes.Equal(img, again.Crash(crash.Tear, seed).Bytes()) {
					t.Errorf("Tear seed %d: not reproducible", seed)
				}
				checkTear(t, m, img, seed)
				reordered = reordered || isReordered(m, img)
				torn = torn || isTorn(m, img)
				distinct[string(img)] = true
			}
			if len(distinct) < 2 {
				t.Errorf("16 Tear seeds gave one image for %d pending writes", len(m.pending))
			}
		})
	}
	if !reordered {
		t.Errorf("no Tear image kept a later write while losing an earlier one")
	}
	if !torn {
		t.Errorf("no Tear image kept part of a multi-sector write")
	}
}

// checkDead checks that every request fails after the power loss and that
// no more writes are counted.
func checkDead(t *testing.T, d *crash.Device, writes int) {
	t.Helper()
	buf := sector(wlSS, 1)
	for _, c := range []struct {
		op  string
		err error
	}{
		{"read", d.Read(0, buf)},
		{"write", d.Write(0, buf)},
		{"flush", d.Flush()},
		{"write-zeroes", d.WriteZeroes(0, 1)},
		{"discard", d.Discard(0, 1)},
	} {
		var he *hw.Error
		if !errors.As(c.err, &he) || he.Op != c.op || !errors.Is(c.err, hw.ErrIO) || !errors.Is(c.err, crash.ErrPowerLost) {
			t.Errorf("%s after power loss: %v, want an *hw.Error of Kind ErrIO and Err ErrPowerLost", c.op, c.err)
		}
	}
	if !d.PowerLost() {
		t.Errorf("PowerLost() = false")
	}
	if d.Writes() != writes {
		t.Errorf("Writes() = %d after the power loss, want %d", d.Writes(), writes)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close after power loss: %v", err)
	}
}

// checkTear checks that each sector of a Tear image holds its durable value
// or the value of a pending write to it: flushed data survives unless a
// pending write replaced it, and no sector mixes two versions.
func checkTear(t *testing.T, m *model, img []byte, seed int64) {
	t.Helper()
	for s := range uint64(wlSectors) {
		got := img[s*wlSS : (s+1)*wlSS]
		ok := bytes.Equal(got, m.durable[s])
		for _, w := range m.pending {
			if s >= w.lba && s < w.lba+uint64(len(w.data)) {
				ok = ok || bytes.Equal(got, w.data[s-w.lba])
			}
		}
		if !ok {
			t.Errorf("Tear seed %d: sector %d holds a version no write produced (first byte %#02x)", seed, s, got[0])
		}
	}
}

// lastWriter reports whether pending write wi is the last pending write to
// sector s.
func lastWriter(m *model, wi int, s uint64) bool {
	for _, w := range m.pending[wi+1:] {
		if s >= w.lba && s < w.lba+uint64(len(w.data)) {
			return false
		}
	}
	return true
}

// survived tells whether sector i of pending write wi is visible in img as
// its own value; only meaningful when wi is the sector's last writer and its
// value differs from the durable one.
func survived(m *model, img []byte, wi, i int) (kept, known bool) {
	w := m.pending[wi]
	s := w.lba + uint64(i)
	if !lastWriter(m, wi, s) || bytes.Equal(w.data[i], m.durable[s]) {
		return false, false
	}
	return bytes.Equal(img[s*wlSS:(s+1)*wlSS], w.data[i]), true
}

// isReordered reports whether img kept a sector of a later pending write
// but lost a sector of an earlier one.
func isReordered(m *model, img []byte) bool {
	for early := range m.pending {
		for late := early + 1; late < len(m.pending); late++ {
			var lost, kept bool
			for i := range m.pending[early].data {
				if k, known := survived(m, img, early, i); known && !k {
					lost = true
				}
			}
			for i := range m.pending[late].data {
				if k, known := survived(m, img, late, i); known && k {
					kept = true
				}
			}
			if lost && kept {
				return true
			}
		}
	}
	return false
}

// isTorn reports whether img kept some but not all sectors of a pending
// write.
func isTorn(m *model, img []byte) bool {
	for wi, w := range m.pending {
		var lost, kept bool
		for i := range w.data {
			if k, known := survived(m, img, wi, i); known {
				lost, kept = lost || !k, kept || k
			}
		}
		if lost && kept {
			return true
		}
	}
	return false
}

// TestPowerOffNow cuts the power between requests with PowerOff.
func TestPowerOffNow(t *testing.T) {
	const ss = 512
	d := crash.New(newMem(t, ss, 4))
	if err := d.Write(0, sector(ss, 1)); err != nil {
		t.Fatal(err)
	}
	d.PowerOff()
	if err := d.Read(0, make([]byte, ss)); !errors.Is(err, crash.ErrPowerLost) {
		t.Errorf("Read after PowerOff: %v", err)
	}
	// Invalid requests are still rejected as such.
	if err := d.Read(9, make([]byte, ss)); !errors.Is(err, hw.ErrOutOfRange) {
		t.Errorf("out-of-range Read after PowerOff: %v", err)
	}
	if got := d.Crash(crash.KeepAll, 0).Bytes()[0]; got != 1 {
		t.Errorf("KeepAll after PowerOff lost the pending write")
	}
}

// TestFailAtWriteRearm checks that FailAtWrite counts from the call and
// that n <= 0 disarms.
func TestFailAtWriteRearm(t *testing.T) {
	const ss = 512
	d := crash.New(newMem(t, ss, 8))
	for i := range 3 {
		if err := d.Write(uint64(i), sector(ss, 1)); err != nil {
			t.Fatal(err)
		}
	}
	d.FailAtWrite(1)
	d.FailAtWrite(0)
	if err := d.Write(3, sector(ss, 1)); err != nil {
		t.Fatalf("write after disarming: %v", err)
	}
	d.FailAtWrite(2)
	if err := d.Write(4, sector(ss, 1)); err != nil {
		t.Fatalf("first write after FailAtWrite(2): %v", err)
	}
	if err := d.WriteZeroes(5, 1); !errors.Is(err, crash.ErrPowerLost) {
		t.Fatalf("second write after FailAtWrite(2): %v, want ErrPowerLost", err)
	}
	if d.Writes() != 6 {
		t.Errorf("Writes() = %d, want 6", d.Writes())
	}
}

// TestConcurrentPowerLoss cuts the power while several goroutines write:
// exactly the writes before the crash point are acknowledged, every one of
// them is in the KeepAll image, and nothing unflushed is in the DropAll one.
func TestConcurrentPowerLoss(t *testing.T) {
	const (
		ss      = 512
		workers = 4
		each    = 25
		failAt  = 57
	)
	d := crash.New(newMem(t, ss, workers*each))
	d.FailAtWrite(failAt)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []uint64
	)
	for w := range uint64(workers) {
		wg.Go(func() {
			for i := range uint64(each) {
				lba := w*each + i
				err := d.Write(lba, sector(ss, byte(lba+1)))
				if err != nil {
					if !errors.Is(err, crash.ErrPowerLost) {
						t.Errorf("write %d: %v", lba, err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, lba)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(acked) != failAt-1 {
		t.Fatalf("%d writes acknowledged, want %d", len(acked), failAt-1)
	}
	keep := d.Crash(crash.KeepAll, 0).Bytes()
	for _, lba := range acked {
		if keep[lba*ss] != byte(lba+1) {
			t.Errorf("acknowledged write %d missing from the KeepAll image", lba)
		}
	}
	written := 0
	for lba := range uint64(workers * each) {
		if keep[lba*ss] != 0 {
			written++
		}
	}
	if written != failAt {
		t.Errorf("KeepAll image holds %d written sectors, want %d (acknowledged + interrupted)", written, failAt)
	}
	if !bytes.Equal(d.Crash(crash.DropAll, 0).Bytes(), make([]byte, workers*each*ss)) {
		t.Errorf("DropAll image holds unflushed data")
	}
}
