package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Defaults of the zero Config: QEMU's user networking.
var (
	defaultAddr    = netip.MustParsePrefix("10.0.2.15/24")
	defaultGateway = netip.MustParseAddr("10.0.2.2")
	loopbackAddr   = netip.MustParsePrefix("127.0.0.1/8")
)

const (
	defaultWait  = 2 * time.Second
	pollInterval = 20 * time.Millisecond
)

// ErrNoLink is the cause of an *Error when a named link does not exist or,
// for Configure, no NIC appeared in time.
var ErrNoLink = errors.New("link not found")

// Error is the error of every function of the package: Op is the step that
// failed ("up", "add address 10.0.2.15/24", "find link", ...), Link the
// interface it concerned ("" if none), and Err the cause: a unix.Errno when
// the kernel refused the request, ErrNoLink, or a description.
type Error struct {
	Op   string
	Link string
	Err  error
}

func (e *Error) Error() string {
	s := "netconf: "
	if e.Link != "" {
		s += e.Link + ": "
	}
	return s + e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// wrap returns nil if err is nil and an *Error otherwise.
func wrap(link, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Link: link, Err: err}
}

// Link is a network interface.
type Link struct {
	Index        int
	Name         string
	Flags        net.Flags // FlagUp once Up has set it
	HardwareAddr net.HardwareAddr
	Loopback     bool
}

// Config says how Configure sets up the NIC. Its zero value is QEMU's user
// networking.
type Config struct {
	Interface string        // the NIC; "" = the first non-loopback link
	Addr      netip.Prefix  // its IPv4 address; zero = 10.0.2.15/24
	Gateway   netip.Addr    // the default route's gateway, in Addr's subnet; zero = 10.0.2.2
	Wait      time.Duration // how long to wait for the NIC to appear; zero = 2 s
}

// withDefaults fills in the zero fields and checks the result.
func (c Config) withDefaults() (Config, error) {
	if !c.Addr.IsValid() {
		c.Addr = defaultAddr
	}
	if !c.Gateway.IsValid() {
		c.Gateway = defaultGateway
	}
	if c.Wait == 0 {
		c.Wait = defaultWait
	}
	switch {
	case !c.Addr.Addr().Is4():
		return c, fmt.Errorf("address %v: only IPv4 is supported", c.Addr)
	case c.Addr.Bits() == 0:
		return c, fmt.Errorf("address %v: prefix length must not be 0", c.Addr)
	case !c.Gateway.Is4():
		return c, fmt.Errorf("gateway %v: only IPv4 is supported", c.Gateway)
	case c.Gateway == c.Addr.Addr():
		return c, fmt.Errorf("gateway %v is the address itself", c.Gateway)
	case !c.Addr.Contains(c.Gateway):
		return c, fmt.Errorf("gateway %v is not in the subnet %v", c.Gateway, c.Addr.Masked())
	case c.Wait < 0:
		return c, fmt.Errorf("negative wait %v", c.Wait)
	}
	return c, nil
}

// ParseConfig parses a kernel-command-line style value: "ADDR/BITS,GATEWAY"
// ("10.0.2.15/24,10.0.2.2"), "ADDR/BITS" (the default gateway, 10.0.2.2) or
// "" (the defaults). The result has the defaults filled in and Interface
// empty.
func ParseConfig(s string) (Config, error) {
	var c Config
	if s = strings.TrimSpace(s); s != "" {
		addr, gw, hasGW := strings.Cut(s, ",")
		p, err := netip.ParsePrefix(strings.TrimSpace(addr))
		if err != nil {
			return Config{}, parseError(s, err)
		}
		c.Addr = p
		if hasGW {
			if c.Gateway, err = netip.ParseAddr(strings.TrimSpace(gw)); err != nil {
				return Config{}, parseError(s, err)
			}
		}
	}
	c, err := c.withDefaults()
	if err != nil {
		return Config{}, parseError(s, err)
	}
	return c, nil
}

func parseError(s string, err error) error {
	return &Error{Op: "parse config", Err: fmt.Errorf("%q (want ADDR/BITS[,GATEWAY], such as 10.0.2.15/24,10.0.2.2): %w", s, err)}
}

// Configure brings up lo and the NIC and gives the NIC its address and the
// default route, waiting up to cfg.Wait for the NIC to appear. It can be
// repeated: what is already in place is left alone. The error is an *Error
// naming the step and the link.
func Configure(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return &Error{Op: "configure", Link: cfg.Interface, Err: err}
	}
	if err := Up("lo"); err != nil {
		return err
	}
	// The kernel has just added 127.0.0.1/8 to lo; this only makes sure.
	if err := AddAddr("lo", loopbackAddr); err != nil {
		return err
	}
	nic, err := waitLink(cfg.Interface, cfg.Wait, links)
	if err != nil {
		return &Error{Op: "find link", Link: cfg.Interface, Err: err}
	}
	if err := Up(nic.Name); err != nil {
		return err
	}
	if err := AddAddr(nic.Name, cfg.Addr); err != nil {
		return err
	}
	return wrap(nic.Name, "add default route via "+cfg.Gateway.String(), addRoute(cfg.Gateway, nic.Index))
}

// waitLink polls list until it shows the link called name or, if name is
// "", a non-loopback link (the one with the lowest index), for up to wait.
func waitLink(name string, wait time.Duration, list func() ([]Link, error)) (Link, error) {
	deadline := time.Now().Add(wait)
	for {
		ls, err := list()
		if err != nil {
			return Link{}, err
		}
		for _, l := range ls {
			if l.Name == name || name == "" && !l.Loopback {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			if name == "" {
				return Link{}, fmt.Errorf("no non-loopback link after %v: %w", wait, ErrNoLink)
			}
			return Link{}, fmt.Errorf("%w after %v", ErrNoLink, wait)
		}
		time.Sleep(pollInterval)
	}
}

// Links returns the network interfaces, in index order.
func Links() ([]Link, error) {
	ls, err := links()
	return ls, wrap("", "list links", err)
}

// linkByName returns the link called name, or an error wrapping ErrNoLink.
func linkByName(name string) (Link, error) {
	ls, err := links()
	if err != nil {
		return Link{}, err
	}
	i := slices.IndexFunc(ls, func(l Link) bool { return l.Name == name })
	if i < 0 {
		return Link{}, ErrNoLink
	}
	return ls[i], nil
}

// Addrs returns the IPv4 addresses of the link called name.
func Addrs(name string) ([]netip.Prefix, error) {
	l, err := linkByName(name)
	if err != nil {
		return nil, wrap(name, "list addresses", err)
	}
	ps, err := addrs(l.Index)
	return ps, wrap(name, "list addresses", err)
}

// Up sets the link called name up (IFF_UP). It is not an error if it is up
// already.
func Up(name string) error {
	l, err := linkByName(name)
	if err == nil {
		err = setUp(l.Index)
	}
	return wrap(name, "up", err)
}

// AddAddr adds the IPv4 address addr (with its prefix length, such as
// 10.0.2.15/24) to the link called name. It is not an error if the link has
// it already.
func AddAddr(name string, addr netip.Prefix) error {
	op := "add address " + addr.String()
	if !addr.Addr().Is4() {
		return wrap(name, op, errors.New("only IPv4 is supported"))
	}
	l, err := linkByName(name)
	if err == nil {
		err = addAddr(l.Index, addr)
	}
	return wrap(name, op, err)
}

// AddDefaultRoute adds the IPv4 default route via gw to the main table; the
// kernel picks the link from gw, which must be in the subnet of an address
// already added. It is not an error if a default route exists already.
func AddDefaultRoute(gw netip.Addr) error {
	op := "add default route via " + gw.String()
	if !gw.Is4() {
		return wrap("", op, errors.New("only IPv4 is supported"))
	}
	return wrap("", op, addRoute(gw, 0))
}
