package pci

import (
	"fmt"
	"strconv"
	"strings"
)

// Address is a PCI function's location: domain (segment), bus, device and
// function.
type Address struct {
	Domain   uint32
	Bus      uint8
	Device   uint8 // 0..31
	Function uint8 // 0..7
}

// ParseAddress parses "0000:00:04.0" (domain:bus:device.function, in
// hexadecimal, as sysfs names functions) or "00:04.0", which means domain 0.
func ParseAddress(s string) (Address, error) {
	bad := func(why string) (Address, error) {
		return Address{}, fmt.Errorf("%w %q: %s", ErrAddress, s, why)
	}
	fields := strings.Split(s, ":")
	var a Address
	switch len(fields) {
	case 2:
	case 3:
		d, err := parseHex(fields[0], 8)
		if err != nil || len(fields[0]) < 4 {
			return bad("domain is not 4 to 8 hex digits")
		}
		a.Domain = uint32(d)
		fields = fields[1:]
	default:
		return bad("want [domain:]bus:device.function")
	}
	bus, err := parseHex(fields[0], 2)
	if err != nil || len(fields[0]) != 2 {
		return bad("bus is not 2 hex digits")
	}
	dev, fn, ok := strings.Cut(fields[1], ".")
	d, err1 := parseHex(dev, 2)
	f, err2 := parseHex(fn, 1)
	if !ok || err1 != nil || err2 != nil || len(dev) != 2 || d > 31 || f > 7 {
		return bad("device.function is not 00-1f.0-7")
	}
	a.Bus, a.Device, a.Function = uint8(bus), uint8(d), uint8(f)
	return a, nil
}

func parseHex(s string, digits int) (uint64, error) {
	if s == "" || len(s) > digits {
		return 0, ErrAddress
	}
	return strconv.ParseUint(s, 16, 32)
}

// String returns the address as sysfs names it, "0000:00:04.0".
func (a Address) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.Domain, a.Bus, a.Device, a.Function)
}
