package virtiopci

import (
	"fmt"
	"sync"

	"github.com/tarstore/tarstore/hw/internal/dma"
)

// poolMemory is memory from a MemorySource that a driver's buffer pool
// owns (dma.Memory): Close releases it once.
type poolMemory struct {
	r       dma.Region
	once    sync.Once
	release func() error // nil if nothing needs releasing
}

func (m *poolMemory) Region() dma.Region { return m.r }

func (m *poolMemory) Close() error {
	var err error
	m.once.Do(func() {
		if m.release != nil {
			err = m.release()
		}
	})
	return err
}

// NewPool returns size bytes or more of zeroed memory from
// Options.Memory for a driver's buffer pool (hw/virtio's PoolTransport).
// The caller owns it: Close of the transport neither resets nor releases
// it, so it outlives the transport, and a later transport of the same
// device reaches it at the same device addresses. That holds for physical
// addresses (dma.Hugepages, Open's default); a MemorySource whose
// addresses belong to one transport, such as a VFIO device's MapDMA, must
// not be pooled (hw/virtio's OpenVFIO does not).
func (t *Transport) NewPool(size int) (dma.Memory, error) {
	if size <= 0 {
		return nil, t.err("new pool", fmt.Errorf("%w: %d bytes", ErrInvalid, size))
	}
	r, release, err := t.mem(size)
	if err != nil {
		return nil, t.err("new pool", err)
	}
	m := &poolMemory{r: r, release: release}
	if r.Len() < size {
		m.Close()
		return nil, t.err("new pool", fmt.Errorf("%w: memory source gave %d bytes for %d", ErrInvalid, r.Len(), size))
	}
	return m, nil
}

// SharePool lets the device reach p, memory from NewPool of this
// transport or of an earlier one of the same device, in this session. A
// PCI device reaches memory by the addresses it is given: there is
// nothing to register, only p to check. It is called before Memory.
func (t *Transport) SharePool(p dma.Memory) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := p.(*poolMemory)
	switch {
	case t.closed.Load():
		return t.err("share pool", ErrClosed)
	case !ok:
		return t.err("share pool", fmt.Errorf("%w: pool %T is not from NewPool", ErrInvalid, p))
	case t.gotMem:
		return t.err("share pool", fmt.Errorf("%w: pool shared after Memory", ErrInvalid))
	}
	return nil
}
