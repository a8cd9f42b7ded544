package netconf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

var (
	ne  = binary.NativeEndian
	seq atomic.Uint32 // the last sequence number used
)

const (
	nlaTypeMask  = 0x3fff // an attribute's type without NLA_F_NESTED and NLA_F_NET_BYTEORDER
	recvBufSize  = 1 << 16
	replyTimeout = 5 // seconds to wait for each part of a reply
	// createFlags is the flags of a request that adds something.
	createFlags = unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL
)

// request is a netlink request: the message type, its flags, and the body
// after the netlink header (a fixed header and attributes).
type request struct {
	typ, flags uint16
	body       []byte
}

// marshal returns the message with its netlink header (nlmsghdr).
func (r request) marshal(seq uint32) []byte {
	b := make([]byte, 0, unix.NLMSG_HDRLEN+len(r.body))
	b = ne.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+len(r.body)))
	b = ne.AppendUint16(b, r.typ)
	b = ne.AppendUint16(b, r.flags)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0) // the port ID: the kernel fills it in
	return append(b, r.body...)
}

func align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// appendAttr appends a route attribute (rtattr) with its padding.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := unix.SizeofRtAttr + len(data)
	b = ne.AppendUint16(b, uint16(n))
	b = ne.AppendUint16(b, typ)
	b = append(b, data...)
	return append(b, make([]byte, align(n)-n)...)
}

// parseAttrs splits b into route attributes, by type.
func parseAttrs(b []byte) (map[uint16][]byte, error) {
	m := make(map[uint16][]byte)
	for len(b) >= unix.SizeofRtAttr {
		n := int(ne.Uint16(b))
		if n < unix.SizeofRtAttr || n > len(b) {
			return nil, fmt.Errorf("malformed attribute: length %d of %d bytes", n, len(b))
		}
		m[ne.Uint16(b[2:])&nlaTypeMask] = b[unix.SizeofRtAttr:n]
		b = b[min(align(n), len(b)):]
	}
	return m, nil
}

// ifinfomsg returns the fixed header of a link message.
func ifinfomsg(index int, flags, change uint32) []byte {
	b := make([]byte, 4, unix.SizeofIfInfomsg) // family AF_UNSPEC, pad, type 0
	b = ne.AppendUint32(b, uint32(index))
	b = ne.AppendUint32(b, flags)
	return ne.AppendUint32(b, change)
}

// ifaddrmsg returns the fixed header of an address message.
func ifaddrmsg(bits, scope uint8, index int) []byte {
	b := []byte{unix.AF_INET, bits, 0, scope}
	return ne.AppendUint32(b, uint32(index))
}

// rtmsg returns the fixed header of an IPv4 route message.
func rtmsg(table, protocol, scope, typ uint8) []byte {
	b := []byte{unix.AF_INET, 0, 0, 0, table, protocol, scope, typ}
	return ne.AppendUint32(b, 0)
}

// dumpRequest asks for every object of a kind; hdr is its fixed header, whose
// family selects IPv4 for addresses and routes.
func dumpRequest(typ uint16, hdr []byte) request {
	return request{typ, unix.NLM_F_REQUEST | unix.NLM_F_DUMP, hdr}
}

// upRequest sets IFF_UP on the link with the given index; ifi_change limits
// the change to that flag.
func upRequest(index int) request {
	return request{unix.RTM_NEWLINK, unix.NLM_F_REQUEST | unix.NLM_F_ACK, ifinfomsg(index, unix.IFF_UP, unix.IFF_UP)}
}

// addrRequest adds the IPv4 address p to the link with the given index.
// IFA_LOCAL and IFA_ADDRESS are both the address (the link is not
// point-to-point); a loopback address gets host scope, as the kernel's own
// 127.0.0.1 does.
func addrRequest(index int, p netip.Prefix) request {
	scope := uint8(unix.RT_SCOPE_UNIVERSE)
	if p.Addr().IsLoopback() {
		scope = unix.RT_SCOPE_HOST
	}
	a := p.Addr().As4()
	b := ifaddrmsg(uint8(p.Bits()), scope, index)
	b = appendAttr(b, unix.IFA_LOCAL, a[:])
	b = appendAttr(b, unix.IFA_ADDRESS, a[:])
	if p.Bits() < 31 { // /31 and /32 have no broadcast address
		bcast := binary.BigEndian.Uint32(a[:]) | ^uint32(0)>>p.Bits() // addresses are in network order
		b = appendAttr(b, unix.IFA_BROADCAST, binary.BigEndian.AppendUint32(nil, bcast))
	}
	return request{unix.RTM_NEWADDR, createFlags, b}
}

// routeRequest returns the request for the default route via gw, out of the
// link with index oif (0: the kernel chooses).
func routeRequest(gw netip.Addr, oif int) request {
	a := gw.As4()
	b := rtmsg(unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST)
	b = appendAttr(b, unix.RTA_GATEWAY, a[:])
	if oif > 0 {
		b = appendAttr(b, unix.RTA_OIF, ne.AppendUint32(nil, uint32(oif)))
	}
	return request{unix.RTM_NEWROUTE, createFlags, b}
}

// message is a received netlink message.
type message struct {
	typ, flags uint16
	seq        uint32
	data       []byte // after the netlink header
}

// parseMessages splits a datagram into netlink messages.
func parseMessages(b []byte) ([]message, error) {
	var ms []message
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return nil, fmt.Errorf("malformed netlink message: %d trailing bytes", len(b))
		}
		n := int(ne.Uint32(b))
		if n < unix.NLMSG_HDRLEN || n > len(b) {
			return nil, fmt.Errorf("malformed netlink message: length %d of %d bytes", n, len(b))
		}
		ms = append(ms, message{typ: ne.Uint16(b[4:]), flags: ne.Uint16(b[6:]), seq: ne.Uint32(b[8:]), data: b[unix.NLMSG_HDRLEN:n]})
		b = b[min(align(n), len(b)):]
	}
	return ms, nil
}

// collect appends to out the bodies of the data messages of one datagram
// of the reply to request seq; done reports the end of the reply: an ACK,
// an error (a unix.Errno) or NLMSG_DONE. Messages of other requests are
// ignored.
func collect(b []byte, seq uint32, out [][]byte) (_ [][]byte, done bool, _ error) {
	ms, err := parseMessages(b)
	if err != nil {
		return out, true, err
	}
	for _, m := range ms {
		if m.seq != seq {
			continue
		}
		switch m.typ {
		case unix.NLMSG_NOOP:
		case unix.NLMSG_ERROR, unix.NLMSG_DONE:
			if len(m.data) < 4 {
				if m.typ == unix.NLMSG_DONE {
					return out, true, nil
				}
				return out, true, errors.New("malformed netlink message: short NLMSG_ERROR")
			}
			if e := int32(ne.Uint32(m.data)); e < 0 {
				return out, true, unix.Errno(-e)
			}
			return out, true, nil
		default:
			out = append(out, m.data)
		}
	}
	return out, false, nil
}

// roundTrip sends r on a new socket and returns the bodies of the reply's
// data messages.
func roundTrip(r request) ([][]byte, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: replyTimeout}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	s := seq.Add(1)
	if err := unix.Sendto(fd, r.marshal(s), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("sendto", err)
	}
	var out [][]byte
	for {
		buf := make([]byte, recvBufSize) // a new one each time: out keeps slices of it
		n, _, flags, _, err := unix.Recvmsg(fd, buf, nil, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, os.NewSyscallError("recvmsg", err)
		case flags&unix.MSG_TRUNC != 0:
			return nil, errors.New("netlink reply truncated")
		}
		var done bool
		if out, done, err = collect(buf[:n], s, out); done || err != nil {
			return out, err
		}
	}
}

func links() ([]Link, error) {
	bodies, err := roundTrip(dumpRequest(unix.RTM_GETLINK, ifinfomsg(0, 0, 0)))
	if err != nil {
		return nil, err
	}
	ls := make([]Link, 0, len(bodies))
	for _, b := range bodies {
		l, err := parseLink(b)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b Link) int { return a.Index - b.Index })
	return ls, nil
}

// parseLink decodes the body of an RTM_NEWLINK message.
func parseLink(b []byte) (Link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return Link{}, fmt.Errorf("malformed link message: %d bytes", len(b))
	}
	attrs, err := parseAttrs(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return Link{}, err
	}
	flags := ne.Uint32(b[8:])
	name, _, _ := bytes.Cut(attrs[unix.IFLA_IFNAME], []byte{0})
	l := Link{Index: int(int32(ne.Uint32(b[4:]))), Name: string(name), Flags: netFlags(flags), Loopback: flags&unix.IFF_LOOPBACK != 0}
	if a := attrs[unix.IFLA_ADDRESS]; len(a) > 0 {
		l.HardwareAddr = net.HardwareAddr(bytes.Clone(a))
	}
	return l, nil
}

// netFlags converts IFF_* flags to net.Flags.
func netFlags(f uint32) net.Flags {
	var nf net.Flags
	for _, m := range []struct {
		iff uint32
		nf  net.Flags
	}{
		{unix.IFF_UP, net.FlagUp},
		{unix.IFF_BROADCAST, net.FlagBroadcast},
		{unix.IFF_LOOPBACK, net.FlagLoopback},
		{unix.IFF_POINTOPOINT, net.FlagPointToPoint},
		{unix.IFF_MULTICAST, net.FlagMulticast},
		{unix.IFF_RUNNING, net.FlagRunning},
	} {
		if f&m.iff != 0 {
			nf |= m.nf
		}
	}
	return nf
}

func addrs(index int) ([]netip.Prefix, error) {
	bodies, err := roundTrip(dumpRequest(unix.RTM_GETADDR, ifaddrmsg(0, 0, 0)))
	if err != nil {
		return nil, err
	}
	var ps []netip.Prefix
	for _, b := range bodies {
		if len(b) < unix.SizeofIfAddrmsg {
			return nil, fmt.Errorf("malformed address message: %d bytes", len(b))
		}
		if b[0] != unix.AF_INET || int(ne.Uint32(b[4:])) != index {
			continue
		}
		attrs, err := parseAttrs(b[unix.SizeofIfAddrmsg:])
		if err != nil {
			return nil, err
		}
		a, ok := attrs[unix.IFA_LOCAL]
		if !ok {
			a = attrs[unix.IFA_ADDRESS]
		}
		if ip, ok := netip.AddrFromSlice(a); ok && ip.Is4() {
			ps = append(ps, netip.PrefixFrom(ip, int(b[1])))
		}
	}
	return ps, nil
}

func setUp(index int) error {
	_, err := roundTrip(upRequest(index))
	return err
}

// ignoreExist returns err unless it is EEXIST.
func ignoreExist(err error) error {
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func addAddr(index int, p netip.Prefix) error {
	_, err := roundTrip(addrRequest(index, p))
	return ignoreExist(err)
}

func addRoute(gw netip.Addr, oif int) error {
	_, err := roundTrip(routeRequest(gw, oif))
	return ignoreExist(err)
}
