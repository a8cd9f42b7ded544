// Package boot is the appliance's PID 1 (SPEC §7): the Linux kernel runs
// the tarstore binary as /init from the initramfs that package
// boot/initramfs builds, and Main does what an init system would, then
// serves the store until it is told to stop, and powers the machine off.
// It never returns: PID 1 exiting would panic the kernel.
//
// The steps, in order (Steps; a test checks this list against it). A
// fatal step that fails prints one line on the console — "tarstore: boot:
// STEP: ERROR; powering off" — and powers off; a step that is not fatal
// prints a warning and the boot goes on:
//
//  1. "mount /proc" (fatal): procfs, for /proc/cmdline and the rest.
//  2. "probe" (fatal): with tarstore.probe on the kernel command line,
//     print "tarstore: probe boot ok" and power off (scripts/qemu/run
//     boots so to see whether KVM works).
//  3. "mount /sys" (fatal): sysfs.
//  4. "mount /dev" (fatal): devtmpfs, where the kernel creates the nodes of
//     the devices its drivers find (/dev/vda, /dev/nvme0n1, /dev/rtc0),
//     with no udev.
//  5. "mount /tmp and /run" (fatal): tmpfs.
//  6. "signals" (fatal): Ctrl-Alt-Del sends SIGINT to PID 1 instead of
//     rebooting at once (reboot(LINUX_REBOOT_CMD_CAD_OFF)); SIGINT and
//     SIGTERM start a graceful shutdown from then on.
//  7. "reap children" (fatal): PID 1 adopts orphaned processes and must
//     wait for them, or they stay zombies.
//  8. "claim devices" (fatal): with tarstore.virtio= or tarstore.nvme=
//     pci:BDF or vfio:BDF, the PCI function is kept from the kernel's
//     drivers before they load (driver_override: a name no driver has, or
//     vfio-pci, which then binds it), and for pci: eight 2 MiB huge pages
//     are reserved for the userspace driver's DMA memory.
//     tarstore.claim=SPEC[,SPEC...] claims more functions the same way
//     (tests that drive several devices).
//  9. "load modules" (not fatal): the kernel modules listed in
//     /etc/tarstore/modules.load, in that order (dependencies first; the
//     image builder resolved it from modules.dep), with finit_module. A
//     module that does not load is reported; a driver missing for the
//     disk then shows in the "disk" step.
//  10. "network" (fatal): lo up, and the first NIC up with the address of
//     tarstore.ip=ADDR/PREFIX[,GATEWAY] or, without it, QEMU user
//     networking's 10.0.2.15/24 via 10.0.2.2 (boot/netconf).
//  11. "token" (not fatal): a bearer token passed by QEMU as fw_cfg file
//     opt/tarstore/token (-fw_cfg name=opt/tarstore/token,file=F, which
//     keeps it off the host's process list) is copied to
//     /run/tarstore/token, mode 0600, and used as tarstore.token-file.
//  12. "tls" (fatal): HTTPS's PEM certificate (chain) and private key
//     passed by QEMU as fw_cfg files opt/tarstore/tls-cert and
//     opt/tarstore/tls-key (scripts/qemu/run --tls-cert F --tls-key F,
//     which keeps the key off the kernel command line and the host's
//     process list) are copied to /run/tarstore/tls-cert.pem and
//     /run/tarstore/tls-key.pem (the key mode 0600) and used as
//     tarstore.tls-cert and tarstore.tls-key: the appliance then serves
//     HTTPS only. One without the other (ErrHalfTLS), or one that
//     cannot be read, powers off rather than serve plain HTTP; a pair
//     that does not load fails in "serve". Without them it serves HTTP.
//  13. "disk" (fatal): the disk the kernel command line names
//     (tarstore.disk=, or tarstore.virtio= / tarstore.nvme= for
//     tarstore's drivers), waited for up to DiskWait when it is a /dev
//     node (also tarstore.nvme=passthru:/dev/NODE); with none named, the first of /dev/vda and /dev/nvme0n1 that
//     appears within DiskWait.
//  14. "device benchmark" (fatal): with tarstore.devbench=KIND:SPEC[,...]
//     (disk:/dev/vda, virtio:pci:BDF, nvme:vfio:BDF, ...), 4 KiB random
//     reads at queue depths 1 and 32 on each device, interleaved
//     (hw/hwbench), one console line per figure ("tarstore: devbench qd1
//     4KiB random read: KIND:SPEC 20.1 us/read, ... ratio 0.32", the ratio
//     to the first device), then power off without serving.
//  15. "serve" (fatal): appliance.Serve with the configuration of the kernel
//     command line (tarstore.*=, appliance/config), listening on
//     0.0.0.0:7070 unless tarstore.listen= says otherwise, with POST
//     /v1/shutdown enabled. It returns after a graceful shutdown (the
//     API, SIGINT, SIGTERM), which closes the store and so flushes the
//     disk.
//
// Then Main syncs and powers off (reboot(LINUX_REBOOT_CMD_POWER_OFF)). A
// panic in Main's goroutine is a fatal error like any other.
package boot
