package virtiopci

import (
	"errors"
	"testing"

	"github.com/tarstore/tarstore/hw/internal/dma"
)

// foreignMemory is a dma.Memory that no Transport made.
type foreignMemory struct{ r dma.Region }

func (m foreignMemory) Region() dma.Region { return m.r }
func (m foreignMemory) Close() error       { return nil }

// TestPoolOutlivesTransport: memory from NewPool is the caller's — the
// transport's Close (a device reset) leaves it mapped, a later transport
// of the same device shares it, and only the owner's Close releases it,
// once.
func TestPoolOutlivesTransport(t *testing.T) {
	d := newFakeDevice(t, version1, 8)
	mem := &fakeMemory{}
	first := newTestTransport(t, d, mem, 4)
	p, err := first.NewPool(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if p.Region().Len() < 1<<20 || p.Region().Addr(0) != 0x100000 {
		t.Fatalf("pool of %d bytes at %#x", p.Region().Len(), p.Region().Addr(0))
	}
	if err := first.SetFeatures(version1); err != nil {
		t.Fatal(err)
	}
	if err := first.SharePool(p); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Memory(4096); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mem.releases(); got != 1 {
		t.Fatalf("%d releases after Close, want 1 (the session's memory, not the pool)", got)
	}
	p.Region().B[0] = 1 // still mapped

	second := newTestTransport(t, d, mem, 4)
	if err := second.SetFeatures(version1); err != nil {
		t.Fatal(err)
	}
	if err := second.SharePool(p); err != nil {
		t.Fatalf("the pool in a second transport: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got := mem.releases(); got != 2 {
		t.Fatalf("%d releases after the pool's Close twice, want 2", got)
	}
}

// TestSharePoolRefuses memory NewPool did not make, a pool after Memory,
// and any pool after Close.
func TestSharePoolRefuses(t *testing.T) {
	d := newFakeDevice(t, version1, 8)
	mem := &fakeMemory{}
	tr := newTestTransport(t, d, mem, 4)
	p, err := tr.NewPool(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := tr.NewPool(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewPool(0): %v, want ErrInvalid", err)
	}
	if err := tr.SetFeatures(version1); err != nil {
		t.Fatal(err)
	}
	if err := tr.SharePool(foreignMemory{dma.NewRegion(make([]byte, 4096), 0x1000)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SharePool of foreign memory: %v, want ErrInvalid", err)
	}
	if _, err := tr.Memory(4096); err != nil {
		t.Fatal(err)
	}
	if err := tr.SharePool(p); !errors.Is(err, ErrInvalid) {
		t.Errorf("SharePool after Memory: %v, want ErrInvalid", err)
	}
	tr.Close()
	if err := tr.SharePool(p); !errors.Is(err, ErrClosed) {
		t.Errorf("SharePool after Close: %v, want ErrClosed", err)
	}
}
