// Package netconf brings up the appliance's network when it runs as PID 1:
// the loopback interface and one Ethernet NIC (virtio-net under QEMU), with
// a static IPv4 address and a default route. The VM has no userspace tools
// (no ip, no udev, no DHCP client), so the package speaks rtnetlink itself
// over a NETLINK_ROUTE socket, with golang.org/x/sys/unix only.
//
// Configure does the whole job; Links, Addrs, Up, AddAddr and
// AddDefaultRoute are its steps, usable on their own. ParseConfig reads a
// kernel-command-line style value, "ADDR/BITS[,GATEWAY]".
//
// # Messages
//
// Every call opens its own socket, sends one request with a fresh sequence
// number and reads the reply (netlink(7), rtnetlink(7)):
//
//   - RTM_GETLINK and RTM_GETADDR dumps (NLM_F_DUMP), read as multi-part
//     replies until NLMSG_DONE: the links and the IPv4 addresses.
//   - RTM_NEWLINK with ifi_flags = ifi_change = IFF_UP: set a link up.
//   - RTM_NEWADDR with IFA_LOCAL, IFA_ADDRESS and IFA_BROADCAST.
//   - RTM_NEWROUTE in the main table, protocol RTPROT_BOOT, scope universe,
//     with RTA_GATEWAY (and RTA_OIF from Configure): the default route.
//
// Changes carry NLM_F_ACK and wait for the kernel's answer; those that
// create carry NLM_F_CREATE|NLM_F_EXCL and treat EEXIST as success, so every
// step may be repeated. A kernel refusal (NLMSG_ERROR with a negative errno)
// comes back as an *Error whose Err is the unix.Errno, so errors.Is(err,
// unix.EPERM) works. Messages are built and parsed as byte slices with
// encoding/binary in native byte order; there is no unsafe.
//
// # Defaults
//
// The zero Config is QEMU's user networking ("slirp", -netdev user): guest
// address 10.0.2.15/24 and gateway 10.0.2.2 (slirp's DNS server, 10.0.2.3,
// is not needed by the appliance and not configured). Configure waits up to
// 2 s for the NIC to appear, since its driver may have just been loaded.
// Bringing lo up makes the kernel add 127.0.0.1/8 itself; Configure adds it
// too if it is missing, which it never is on Linux.
//
// # Not supported
//
// IPv6 (the kernel may still autoconfigure link-local addresses), DHCP,
// DNS (resolv.conf), more than one NIC, and removing anything.
package netconf
