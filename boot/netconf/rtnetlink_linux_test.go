package netconf

import (
	"encoding/binary"
	"github.com/tarstore/tarstore/internal/testenv"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The golden bytes are little-endian, as the kernel's on amd64 and arm64.
func needLittleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		testenv.Need(t, "a little-endian machine (the golden bytes are little-endian)")
	}
}

func TestGoldenRequests(t *testing.T) {
	needLittleEndian(t)
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{{
		name: "NEWADDR 10.0.2.15/24 to index 2",
		got:  addrRequest(2, netip.MustParsePrefix("10.0.2.15/24")).marshal(1),
		want: []byte{
			0x30, 0, 0, 0, 20, 0, 0x05, 0x06, 1, 0, 0, 0, 0, 0, 0, 0, // len 48, RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE, seq 1, pid 0
			unix.AF_INET, 24, 0, unix.RT_SCOPE_UNIVERSE, 2, 0, 0, 0, // ifaddrmsg
			8, 0, unix.IFA_LOCAL, 0, 10, 0, 2, 15,
			8, 0, unix.IFA_ADDRESS, 0, 10, 0, 2, 15,
			8, 0, unix.IFA_BROADCAST, 0, 10, 0, 2, 255,
		},
	}, {
		name: "NEWADDR 127.0.0.1/8 to index 1 (host scope)",
		got:  addrRequest(1, netip.MustParsePrefix("127.0.0.1/8")).marshal(2),
		want: []byte{
			0x30, 0, 0, 0, 20, 0, 0x05, 0x06, 2, 0, 0, 0, 0, 0, 0, 0,
			unix.AF_INET, 8, 0, unix.RT_SCOPE_HOST, 1, 0, 0, 0,
			8, 0, unix.IFA_LOCAL, 0, 127, 0, 0, 1,
			8, 0, unix.IFA_ADDRESS, 0, 127, 0, 0, 1,
			8, 0, unix.IFA_BROADCAST, 0, 127, 255, 255, 255,
		},
	}, {
		name: "NEWADDR 10.0.0.1/31 (no broadcast)",
		got:  addrRequest(3, netip.MustParsePrefix("10.0.0.1/31")).marshal(3),
		want: []byte{
			0x28, 0, 0, 0, 20, 0, 0x05, 0x06, 3, 0, 0, 0, 0, 0, 0, 0,
			unix.AF_INET, 31, 0, unix.RT_SCOPE_UNIVERSE, 3, 0, 0, 0,
			8, 0, unix.IFA_LOCAL, 0, 10, 0, 0, 1,
			8, 0, unix.IFA_ADDRESS, 0, 10, 0, 0, 1,
		},
	}, {
		name: "NEWROUTE default via 10.0.2.2 out of index 2",
		got:  routeRequest(netip.MustParseAddr("10.0.2.2"), 2).marshal(7),
		want: []byte{
			0x2c, 0, 0, 0, 24, 0, 0x05, 0x06, 7, 0, 0, 0, 0, 0, 0, 0, // len 44, RTM_NEWROUTE
			// rtmsg: family, dst_len 0, src_len, tos, table main (254), RTPROT_BOOT (3), scope universe, RTN_UNICAST; flags
			unix.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0,
			8, 0, unix.RTA_GATEWAY, 0, 10, 0, 2, 2,
			8, 0, unix.RTA_OIF, 0, 2, 0, 0, 0,
		},
	}, {
		name: "NEWROUTE default via 10.0.2.2, any link",
		got:  routeRequest(netip.MustParseAddr("10.0.2.2"), 0).marshal(8),
		want: []byte{
			0x24, 0, 0, 0, 24, 0, 0x05, 0x06, 8, 0, 0, 0, 0, 0, 0, 0,
			unix.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0,
			8, 0, unix.RTA_GATEWAY, 0, 10, 0, 2, 2,
		},
	}, {
		name: "NEWLINK index 1 up",
		got:  upRequest(1).marshal(9),
		want: []byte{
			0x20, 0, 0, 0, 16, 0, 0x05, 0, 9, 0, 0, 0, 0, 0, 0, 0, // len 32, RTM_NEWLINK, REQUEST|ACK
			unix.AF_UNSPEC, 0, 0, 0, 1, 0, 0, 0, // family, pad, type; index 1
			unix.IFF_UP, 0, 0, 0, unix.IFF_UP, 0, 0, 0, // flags, change
		},
	}, {
		name: "GETLINK dump",
		got:  dumpRequest(unix.RTM_GETLINK, ifinfomsg(0, 0, 0)).marshal(10),
		want: []byte{
			0x20, 0, 0, 0, 18, 0, 0x01, 0x03, 10, 0, 0, 0, 0, 0, 0, 0, // RTM_GETLINK, REQUEST|DUMP
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		},
	}} {
		assert.Equal(t, tc.want, tc.got, tc.name)
	}
}

// nlmsg builds a received netlink message, little-endian.
func nlmsg(typ, flags uint16, seq uint32, payload ...byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(16+len(payload)))
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint32(b, 4242) // our port ID
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestCollect(t *testing.T) {
	needLittleEndian(t)
	request := upRequest(1).marshal(5)

	t.Run("ack", func(t *testing.T) {
		ack := nlmsg(unix.NLMSG_ERROR, 0x100, 5, append([]byte{0, 0, 0, 0}, request[:16]...)...) // error 0, NLM_F_CAPPED
		out, done, err := collect(ack, 5, nil)
		assert.NoError(t, err)
		assert.True(t, done)
		assert.Empty(t, out)
	})

	t.Run("error", func(t *testing.T) {
		eexist := nlmsg(unix.NLMSG_ERROR, 0, 5, append([]byte{0xef, 0xff, 0xff, 0xff}, request...)...) // -17
		_, done, err := collect(eexist, 5, nil)
		assert.True(t, done)
		assert.ErrorIs(t, err, unix.EEXIST)
		assert.Equal(t, unix.EEXIST, err)
		assert.NoError(t, ignoreExist(err))

		wrapped := wrap("eth0", "add address 10.0.2.15/24", err)
		assert.ErrorIs(t, wrapped, unix.EEXIST)
		assert.Equal(t, "netconf: eth0: add address 10.0.2.15/24: file exists", wrapped.Error())
		var errno unix.Errno
		require.ErrorAs(t, wrapped, &errno)
		assert.Equal(t, unix.EEXIST, errno)
	})

	t.Run("stale", func(t *testing.T) {
		old := nlmsg(unix.NLMSG_ERROR, 0, 4, 0xef, 0xff, 0xff, 0xff)
		_, done, err := collect(old, 5, nil)
		assert.NoError(t, err)
		assert.False(t, done, "a reply to another request is ignored")
	})

	t.Run("multi-part dump", func(t *testing.T) {
		first := concat(
			nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 9, 'l', 'o'),
			nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 8, 'x'), // another request's
			nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 9, 'e', 't', 'h', '0', '!'),
		)
		out, done, err := collect(first, 9, nil)
		require.NoError(t, err)
		assert.False(t, done)
		second := concat(
			nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 9, 'v', 'e', 't', 'h'),
			nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 9, 0, 0, 0, 0),
		)
		out, done, err = collect(second, 9, out)
		require.NoError(t, err)
		assert.True(t, done)
		assert.Equal(t, [][]byte{[]byte("lo"), []byte("eth0!"), []byte("veth")}, out)
	})

	t.Run("dump error", func(t *testing.T) {
		_, done, err := collect(nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 9, 0xfc, 0xff, 0xff, 0xff), 9, nil) // -EINTR
		assert.True(t, done)
		assert.ErrorIs(t, err, unix.EINTR)
	})

	t.Run("malformed", func(t *testing.T) {
		for _, b := range [][]byte{
			nlmsg(unix.RTM_NEWLINK, 0, 9, 1, 2, 3, 4)[:12],       // short header
			append(nlmsg(unix.RTM_NEWLINK, 0, 9), 1, 2, 3),       // trailing bytes
			{0xff, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0}, // length past the end
			{8, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0},    // length under the header
			nlmsg(unix.NLMSG_ERROR, 0, 9, 1, 2),                  // short error
		} {
			_, done, err := collect(b, 9, nil)
			assert.ErrorContains(t, err, "malformed", "%x", b)
			assert.True(t, done)
		}
	})
}

func TestParseLink(t *testing.T) {
	needLittleEndian(t)
	body := concat(
		[]byte{unix.AF_UNSPEC, 0, 1, 0, 2, 0, 0, 0}, // ARPHRD_ETHER, index 2
		binary.LittleEndian.AppendUint32(nil, unix.IFF_UP|unix.IFF_BROADCAST|unix.IFF_MULTICAST|unix.IFF_RUNNING),
		[]byte{0xff, 0xff, 0xff, 0xff},                                             // change
		[]byte{9, 0, unix.IFLA_IFNAME, 0, 'e', 't', 'h', '0', 0, 0, 0, 0},          // padded
		[]byte{8, 0, unix.IFLA_MTU, 0, 0xdc, 0x05, 0, 0},                           // ignored
		[]byte{10, 0, unix.IFLA_ADDRESS, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0}, // padded
		[]byte{4, 0, unix.IFLA_LINKINFO, 0x80},                                     // empty, NLA_F_NESTED
	)
	l, err := parseLink(body)
	require.NoError(t, err)
	assert.Equal(t, Link{
		Index:        2,
		Name:         "eth0",
		Flags:        net.FlagUp | net.FlagBroadcast | net.FlagMulticast | net.FlagRunning,
		HardwareAddr: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
	}, l)

	attrs, err := parseAttrs(body[unix.SizeofIfInfomsg:])
	require.NoError(t, err)
	assert.Contains(t, attrs, uint16(unix.IFLA_LINKINFO), "NLA_F_NESTED is not part of the type")
	assert.Equal(t, []byte("eth0\x00"), attrs[unix.IFLA_IFNAME], "without the padding")

	_, err = parseLink(body[:10])
	assert.ErrorContains(t, err, "malformed link message")
	_, err = parseLink(append(body[:16:16], 200, 0, unix.IFLA_IFNAME, 0))
	assert.ErrorContains(t, err, "malformed attribute")
}
