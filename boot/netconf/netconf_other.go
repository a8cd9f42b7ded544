//go:build !linux

package netconf

import (
	"errors"
	"net/netip"
)

// rtnetlink is Linux's: elsewhere every step fails.

func links() ([]Link, error)            { return nil, errors.ErrUnsupported }
func addrs(int) ([]netip.Prefix, error) { return nil, errors.ErrUnsupported }
func setUp(int) error                   { return errors.ErrUnsupported }
func addAddr(int, netip.Prefix) error   { return errors.ErrUnsupported }
func addRoute(netip.Addr, int) error    { return errors.ErrUnsupported }
