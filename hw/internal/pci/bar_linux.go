package pci

import (
	"fmt"
	"path/filepath"

	"github.com/tarstore/tarstore/hw/internal/mmio"
)

// MapBAR maps memory BAR n (0-5), all of it, through sysfs resource<n>. The
// function's memory space must be enabled (EnableMemoryAndMaster) before
// the registers are accessed. Close the result to unmap it.
func (f *Function) MapBAR(n int) (*mmio.Mapped, error) {
	size, err := f.BARSize(n)
	if err != nil {
		return nil, err
	}
	m, err := mmio.Map(filepath.Join(f.dir, fmt.Sprintf("resource%d", n)), size)
	if err != nil {
		return nil, f.err(fmt.Sprintf("map BAR %d", n), err)
	}
	return m, nil
}
