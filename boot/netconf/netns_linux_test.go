package netconf

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/internal/testenv"
)

// inNewNetns runs f on a goroutine whose thread is in a new, empty network
// namespace, so that the host's network is never touched. The thread stays
// locked to the goroutine and ends with it. f runs off the test goroutine:
// it must use assert, not require or t.Fatal.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Need(t, "root (CAP_NET_ADMIN) to create a network namespace")
	}
	unshared := make(chan error)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread is discarded when the goroutine exits
		err := unix.Unshare(unix.CLONE_NEWNET)
		unshared <- err
		if err == nil {
			f()
		}
	}()
	err := <-unshared
	<-done
	if err != nil {
		testenv.Need(t, fmt.Sprintf("unshare(CLONE_NEWNET) (%v)", err))
	}
}

// createLink creates a link of the given kind (RTM_NEWLINK with
// IFLA_LINKINFO), with data as its IFLA_INFO_DATA if not nil.
func createLink(name, kind string, data []byte) error {
	info := appendAttr(nil, unix.IFLA_INFO_KIND, []byte(kind))
	if data != nil {
		info = appendAttr(info, unix.IFLA_INFO_DATA, data)
	}
	b := appendAttr(ifinfomsg(0, 0, 0), unix.IFLA_IFNAME, append([]byte(name), 0))
	b = appendAttr(b, unix.IFLA_LINKINFO, info)
	_, err := roundTrip(request{unix.RTM_NEWLINK, createFlags, b})
	return err
}

// createNIC creates a link called name to play the NIC: a dummy link or, if
// the kernel has no dummy driver, one end of a veth pair whose other end,
// name+"p", is up too.
func createNIC(t *testing.T, name string) error {
	err := createLink(name, "dummy", nil)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENODEV) {
		return err
	}
	t.Logf("no dummy links (%v): using a veth pair", err)
	const vethInfoPeer = 1 // VETH_INFO_PEER: the peer's ifinfomsg and attributes
	peer := appendAttr(ifinfomsg(0, 0, 0), unix.IFLA_IFNAME, append([]byte(name+"p"), 0))
	if err := createLink(name, "veth", appendAttr(nil, vethInfoPeer, peer)); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	return Up(name + "p")
}

type route struct {
	dst      netip.Prefix
	gw       netip.Addr
	oif      int
	protocol uint8
	scope    uint8
}

// mainRoutes dumps the IPv4 routes of the main table (RTM_GETROUTE).
func mainRoutes() ([]route, error) {
	bodies, err := roundTrip(dumpRequest(unix.RTM_GETROUTE, rtmsg(0, 0, 0, 0)))
	if err != nil {
		return nil, err
	}
	var rs []route
	for _, b := range bodies {
		if len(b) < unix.SizeofRtMsg {
			return nil, fmt.Errorf("malformed route message: %d bytes", len(b))
		}
		attrs, err := parseAttrs(b[unix.SizeofRtMsg:])
		if err != nil {
			return nil, err
		}
		table := uint32(b[4])
		if a := attrs[unix.RTA_TABLE]; len(a) == 4 {
			table = ne.Uint32(a)
		}
		if b[0] != unix.AF_INET || table != unix.RT_TABLE_MAIN {
			continue
		}
		dst := netip.IPv4Unspecified()
		if a, ok := netip.AddrFromSlice(attrs[unix.RTA_DST]); ok {
			dst = a
		}
		r := route{dst: netip.PrefixFrom(dst, int(b[1])), protocol: b[5], scope: b[6]}
		r.gw, _ = netip.AddrFromSlice(attrs[unix.RTA_GATEWAY])
		if a := attrs[unix.RTA_OIF]; len(a) == 4 {
			r.oif = int(ne.Uint32(a))
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func TestNetnsLoopback(t *testing.T) {
	inNewNetns(t, func() {
		ls, err := Links()
		if !assert.NoError(t, err) {
			return
		}
		i := slices.IndexFunc(ls, func(l Link) bool { return l.Name == "lo" })
		if !assert.GreaterOrEqual(t, i, 0, "lo in %v", ls) {
			return
		}
		lo := ls[i]
		assert.True(t, lo.Loopback)
		assert.Equal(t, net.FlagLoopback, lo.Flags&(net.FlagLoopback|net.FlagUp), "lo starts down")
		assert.Equal(t, net.HardwareAddr{0, 0, 0, 0, 0, 0}, lo.HardwareAddr)
		_, err = net.Dial("tcp", "127.0.0.1:7")
		assert.ErrorIs(t, err, unix.ENETUNREACH, "127.0.0.1 before lo is up")

		assert.NoError(t, Up("lo"))
		assert.NoError(t, Up("lo"), "again")
		ls, err = Links()
		if !assert.NoError(t, err) {
			return
		}
		assert.Equal(t, net.FlagLoopback|net.FlagUp, ls[i].Flags&(net.FlagLoopback|net.FlagUp), "lo is up")
		addrs, err := Addrs("lo")
		assert.NoError(t, err)
		assert.Equal(t, []netip.Prefix{loopbackAddr}, addrs, "the kernel adds 127.0.0.1/8")

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if !assert.NoError(t, err) {
			return
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if !assert.NoError(t, err) {
			return
		}
		defer c.Close()
		s, err := ln.Accept() // the connection is already established
		if !assert.NoError(t, err) {
			return
		}
		_, err = s.Write([]byte("ping"))
		assert.NoError(t, err)
		assert.NoError(t, s.Close())
		got, err := io.ReadAll(c)
		assert.NoError(t, err)
		assert.Equal(t, "ping", string(got))
	})
}

// checkConfigured checks that the link called name is up with addr and
// the default route via gw goes out of it.
func checkConfigured(t *testing.T, name string, addr netip.Prefix, gw netip.Addr) {
	ls, err := Links()
	if !assert.NoError(t, err) {
		return
	}
	i := slices.IndexFunc(ls, func(l Link) bool { return l.Name == name })
	if !assert.GreaterOrEqual(t, i, 0, "link %s in %v", name, ls) {
		return
	}
	nic := ls[i]
	assert.NotZero(t, nic.Flags&net.FlagUp, "%s is up", name)
	for _, l := range ls {
		if l.Loopback {
			assert.NotZero(t, l.Flags&net.FlagUp, "lo is up")
		}
	}
	addrs, err := Addrs(name)
	assert.NoError(t, err)
	assert.Equal(t, []netip.Prefix{addr}, addrs)
	addrs, err = Addrs("lo")
	assert.NoError(t, err)
	assert.Equal(t, []netip.Prefix{loopbackAddr}, addrs)

	rs, err := mainRoutes()
	assert.NoError(t, err)
	assert.Contains(t, rs, route{dst: netip.MustParsePrefix("0.0.0.0/0"), gw: gw, oif: nic.Index, protocol: unix.RTPROT_BOOT, scope: unix.RT_SCOPE_UNIVERSE}, "the default route")
	assert.Contains(t, rs, route{dst: addr.Masked(), oif: nic.Index, protocol: unix.RTPROT_KERNEL, scope: unix.RT_SCOPE_LINK}, "the subnet's route")
	assert.Len(t, rs, 2, "%+v", rs)
}

func TestNetnsConfigure(t *testing.T) {
	inNewNetns(t, func() {
		if !assert.NoError(t, createNIC(t, "nic0")) {
			return
		}
		gw := netip.MustParseAddr("10.0.2.2")
		addr := netip.MustParsePrefix("10.0.2.15/24")

		// Before any address, the kernel refuses the gateway, and says why.
		err := AddDefaultRoute(gw)
		assert.ErrorIs(t, err, unix.ENETUNREACH)
		var e *Error
		if assert.ErrorAs(t, err, &e) {
			assert.Equal(t, "add default route via 10.0.2.2", e.Op)
			assert.Equal(t, unix.ENETUNREACH, e.Err)
		}

		cfg := Config{Interface: "nic0", Addr: addr, Gateway: gw}
		assert.NoError(t, Configure(cfg))
		checkConfigured(t, "nic0", addr, gw)

		// Every step may be repeated.
		assert.NoError(t, Configure(cfg), "again")
		assert.NoError(t, AddAddr("nic0", addr))
		assert.NoError(t, AddDefaultRoute(gw))
		checkConfigured(t, "nic0", addr, gw)

		err = Up("nosuch0")
		assert.ErrorIs(t, err, ErrNoLink)
		assert.EqualError(t, err, "netconf: nosuch0: up: link not found")
		err = AddAddr("nic0", netip.MustParsePrefix("fd00::15/64"))
		assert.EqualError(t, err, "netconf: nic0: add address fd00::15/64: only IPv4 is supported")

		start := time.Now()
		err = Configure(Config{Interface: "nosuch0", Wait: 100 * time.Millisecond})
		assert.ErrorIs(t, err, ErrNoLink)
		assert.EqualError(t, err, "netconf: nosuch0: find link: link not found after 100ms")
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	})
}

func TestNetnsConfigureDefaults(t *testing.T) {
	inNewNetns(t, func() {
		if !assert.NoError(t, createNIC(t, "nic0")) {
			return
		}
		ls, err := Links()
		if !assert.NoError(t, err) {
			return
		}
		first := slices.IndexFunc(ls, func(l Link) bool { return !l.Loopback })
		if !assert.GreaterOrEqual(t, first, 0) {
			return
		}
		assert.NoError(t, Configure(Config{}))
		checkConfigured(t, ls[first].Name, defaultAddr, defaultGateway)
	})
}

func TestNetnsNoNIC(t *testing.T) {
	inNewNetns(t, func() {
		err := Configure(Config{Wait: 50 * time.Millisecond})
		assert.ErrorIs(t, err, ErrNoLink)
		assert.EqualError(t, err, "netconf: find link: no non-loopback link after 50ms: link not found")
		addrs, err := Addrs("lo")
		assert.NoError(t, err)
		assert.Equal(t, []netip.Prefix{loopbackAddr}, addrs, "lo is configured first")
	})
}
