package nvme

import (
	"fmt"

	"github.com/tarstore/tarstore/hw/internal/dma"
)

// maxSlotData bounds a slot's data buffer, so that one PRP list page (512
// entries) always describes it.
const maxSlotData = (pageSize / 8) * pageSize

// prps describes the first n bytes of data to the controller as Physical
// Region Page entries (NVMe Base 2.0 §4.1.1), with 4 KiB memory pages:
// PRP1 is the address of the first page; PRP2 is unused (0) when the
// transfer fits in that page, the address of the second page when it fits
// in two, and otherwise the address of list, a page that this function
// fills with the addresses of the second and later pages. data must start
// on a page boundary with each page contiguous in device addresses (true of
// every dma.Region chunk), and list must be one page-aligned page.
func prps(data, list dma.Region, n int) (prp1, prp2 uint64) {
	pages := (n + pageSize - 1) / pageSize
	if n <= 0 || n > data.Len() || pages-1 > list.Len()/8 {
		panic(fmt.Sprintf("nvme: PRPs for %d bytes of a %d-byte buffer", n, data.Len()))
	}
	prp1 = data.Addr(0)
	switch {
	case pages == 2:
		prp2 = data.Addr(pageSize)
	case pages > 2:
		for i := 1; i < pages; i++ {
			le.PutUint64(list.B[8*(i-1):], data.Addr(i*pageSize))
		}
		prp2 = list.Addr(0)
	}
	return prp1, prp2
}
