package faulty_test

import (
	"fmt"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/faulty"
	"github.com/tarstore/tarstore/hw/hwtest"
	"github.com/tarstore/tarstore/hw/mem"
)

// TestConformance runs the driver suite on the wrapper over hw/mem with
// nothing armed; Reopen wraps a new handle on the same medium.
func TestConformance(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			hwtest.TestDevice(t, hwtest.Harness{
				Open: func(t *testing.T) hw.Block { return faulty.New(newMem(t, ss, 512)) },
				Reopen: func(t *testing.T, dev hw.Block) hw.Block {
					return faulty.New(hw.Unwrap(dev).(*mem.Device).Reopen())
				},
			})
		})
	}
	t.Run("ReadOnly", func(t *testing.T) {
		hwtest.TestReadOnly(t, func(t *testing.T) hw.Block {
			return faulty.New(newMem(t, 512, 16).ReadOnlyView())
		})
	})
}
