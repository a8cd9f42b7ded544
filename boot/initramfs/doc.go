// Package initramfs builds the appliance's initramfs: the gzip-compressed
// cpio archive that the Linux kernel unpacks as its root file system before
// running /init, here the appliance's static Go binary, as PID 1.
//
// # The format
//
// The archive is a cpio archive in the "new ASCII" format (newc, magic
// "070701"), the one format the kernel's initramfs unpacker reads: see
// cpio(5) and the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst. Writer writes
// it: a 110-byte header of the magic and 13 fields of 8 hexadecimal digits
// (namesize counts the name's NUL), the name, the data, each padded to 4
// bytes, and a last entry named "TRAILER!!!". The whole is compressed with
// gzip, which Debian's kernel decompresses.
//
// # The layout
//
// Build writes, in this order (names are relative, as in the archive):
//
//	dev/                          0755
//	proc/                         0555
//	sys/                          0555
//	tmp/                          1777
//	etc/                          0755
//	etc/tarstore/                 0755
//	dev/console                   character device 5,1, 0600
//	init                          0755, Spec.Init
//	etc/tarstore/modules.load     0644, the modules to load, in order
//	lib/modules/<version>/<path>  0644, each module, in load order
//
// The kernel opens /dev/console for PID 1's standard input, output and
// error before running /init, so the node must be in the image: without it
// /init runs with no console. modules.load has one line per module, the
// absolute path in the image (such as
// /lib/modules/6.1.0-28-amd64/kernel/drivers/virtio/virtio.ko), in the
// order to load them; PID 1 loads each with finit_module(2), as there is no
// modprobe. The parent directories of the modules are written before them
// with mode 0755.
//
// # Reproducibility
//
// The same Spec (and module files) gives the same bytes: every entry has
// mtime 0, uid and gid 0, and inode numbers in the order written; modules
// are in load order, which is deterministic (see Resolve); the gzip stream
// has no file name, modification time 0 and is written at
// gzip.BestCompression. (The compressed bytes depend on Go's compress/flate,
// so a different Go release may produce different, equally valid, bytes.)
//
// # Kernel modules
//
// Facts measured on Debian 12 with its kernel (linux-image-amd64, 6.1):
//
//   - Modules are uncompressed .ko files under /lib/modules/<version>/ and
//     their signatures are not enforced, so PID 1 can finit_module them
//     from the image as they are. Compressed modules (.ko.xz, .ko.zst,
//     .ko.gz) are refused with ErrCompressedModule.
//   - virtio loads in the order virtio_ring, virtio, virtio_pci_legacy_dev,
//     virtio_pci_modern_dev, virtio_pci, then virtio_blk and virtio_net
//     (with failover and net_failover before it). The two _dev modules
//     depend on nothing, so they may come before or after virtio.
//   - NVMe loads in the order crct10dif_common, crct10dif_generic,
//     crc-t10dif, crc64, crc64_rocksoft_generic, crc64-rocksoft, t10-pi,
//     nvme-core, nvme (or another order with the same precedences). The two
//     _generic crypto modules are not dependencies in modules.dep, yet
//     crc-t10dif and crc64-rocksoft need them loaded first, so
//     DefaultModules names them explicitly, before nvme.
//   - qemu_fw_cfg (no dependencies) shows QEMU's fw_cfg files under
//     /sys/firmware/qemu_fw_cfg, which is how the VM receives its bearer
//     token.
//   - Without modprobe the order comes from modules.dep, which lists every
//     module's dependencies (all of them, not only the direct ones) but not
//     in load order; Resolve computes a topological order from it.
package initramfs
