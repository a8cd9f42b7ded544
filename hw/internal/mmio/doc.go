// Package mmio is access to a device's registers by byte offset: the
// Registers seam between a driver and either a PCI BAR mapped into this
// process (Mapped) or a register file in Go memory that a test programs to
// behave like a device (Fake).
//
// Registers hold little-endian values (PCI, virtio 1.2 §4.1.3 and NVMe are
// little-endian) and are accessed with their natural width: 8-, 16- or
// 32-bit, at an offset that is a multiple of the width. virtio 1.2 §4.1.3.1
// requires this ("32-bit accesses for 32-bit fields, 16-bit accesses for
// 16-bit fields and 8-bit accesses for 8-bit fields"), and a wider access
// could trigger side effects of a neighbouring register. A 64-bit register
// is two 32-bit accesses, low half first (Read64, Write64), which virtio
// allows (§4.1.3.1) and QEMU's NVMe controller accepts.
//
// An offset outside the registers or not aligned to the access width is a
// programming error and panics: drivers validate offsets that come from a
// device (capability structures) with Window before using them.
//
// # Mapped registers
//
// Map maps a sysfs resource<N> file MAP_SHARED. Each access is one load or
// store instruction of the register's width through an unsafe pointer, in a
// function the compiler does not inline, so it is never merged, split,
// elided or moved across another access (Go has no volatile; this is the
// equivalent, as in tamago's internal/reg). Stores are plain MOVs rather
// than sync/atomic stores: on amd64 an atomic store is XCHG, a locked
// access that on uncached memory takes a bus lock (and trips Linux's bus
// lock detection). For ordering with DMA memory, every store is preceded
// and every load followed by a barrier (a sequentially consistent atomic
// on a variable of this package), as in Linux's writel/readl: ring
// entries written before a doorbell store reach the device first, and ring
// entries read after a status load are not read earlier. This package is,
// with hw/internal/dma and hw/internal/dio, one of the few that import
// unsafe.
package mmio
