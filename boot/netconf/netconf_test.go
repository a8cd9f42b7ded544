package netconf

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	slirp := Config{Addr: netip.MustParsePrefix("10.0.2.15/24"), Gateway: netip.MustParseAddr("10.0.2.2"), Wait: 2 * time.Second}
	for _, tc := range []struct {
		in   string
		want Config
		err  string // a part of the error message; "" = no error
	}{
		{in: "", want: slirp},
		{in: "  ", want: slirp},
		{in: "10.0.2.15/24,10.0.2.2", want: slirp},
		{in: " 10.0.2.15/24 , 10.0.2.2 ", want: slirp},
		{in: "10.0.2.15/24", want: slirp},
		{in: "10.0.2.99/16", want: Config{Addr: netip.MustParsePrefix("10.0.2.99/16"), Gateway: slirp.Gateway, Wait: slirp.Wait}},
		{in: "192.168.1.5/24,192.168.1.1", want: Config{Addr: netip.MustParsePrefix("192.168.1.5/24"), Gateway: netip.MustParseAddr("192.168.1.1"), Wait: slirp.Wait}},
		{in: "192.168.1.5/24", err: "gateway 10.0.2.2 is not in the subnet 192.168.1.0/24"},
		{in: "10.0.2.15", err: "no '/'"},
		{in: "10.0.2.15/33", err: "prefix length out of range"},
		{in: "10.0.2.15/0", err: "prefix length must not be 0"},
		{in: "10.0.2.15/24,", err: "unable to parse IP"},
		{in: "10.0.2.15/24,10.0.2.2,10.0.2.3", err: "unexpected character"},
		{in: "10.0.2.15/24,10.0.3.2", err: "not in the subnet 10.0.2.0/24"},
		{in: "10.0.2.15/24,10.0.2.15", err: "is the address itself"},
		{in: "fd00::15/64,fd00::2", err: "only IPv4"},
		{in: "10.0.2.15/24,fd00::2", err: "only IPv4"},
		{in: "eth0", err: "want ADDR/BITS[,GATEWAY]"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := ParseConfig(tc.in)
			if tc.err == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, c)
				return
			}
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.err)
			assert.ErrorContains(t, err, "netconf: parse config: ")
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "parse config", e.Op)
			assert.Zero(t, c)
		})
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	err := Configure(Config{Interface: "eth0", Addr: netip.MustParsePrefix("192.168.1.5/24")})
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "configure", e.Op)
	assert.Equal(t, "netconf: eth0: configure: gateway 10.0.2.2 is not in the subnet 192.168.1.0/24", err.Error())
}

func TestError(t *testing.T) {
	cause := errors.New("boom")
	err := wrap("eth0", "up", cause)
	assert.Equal(t, "netconf: eth0: up: boom", err.Error())
	assert.ErrorIs(t, err, cause)
	assert.Equal(t, "netconf: list links: boom", wrap("", "list links", cause).Error())
	assert.NoError(t, wrap("eth0", "up", nil))
}

func TestWaitLink(t *testing.T) {
	lo := Link{Index: 1, Name: "lo", Loopback: true}
	eth0 := Link{Index: 2, Name: "eth0"}
	eth1 := Link{Index: 3, Name: "eth1"}
	calls := 0
	appearing := func() ([]Link, error) { // eth0 shows up at the fourth look
		calls++
		if calls < 4 {
			return []Link{lo}, nil
		}
		return []Link{lo, eth0, eth1}, nil
	}

	l, err := waitLink("", time.Second, appearing)
	require.NoError(t, err)
	assert.Equal(t, eth0, l, "the first non-loopback link")
	assert.Equal(t, 4, calls)

	l, err = waitLink("eth1", time.Second, func() ([]Link, error) { return []Link{lo, eth0, eth1}, nil })
	require.NoError(t, err)
	assert.Equal(t, eth1, l)

	start := time.Now()
	_, err = waitLink("", 100*time.Millisecond, func() ([]Link, error) { return []Link{lo}, nil })
	assert.ErrorIs(t, err, ErrNoLink)
	assert.ErrorContains(t, err, "no non-loopback link after 100ms")
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	_, err = waitLink("eth9", 0, func() ([]Link, error) { return []Link{lo, eth0}, nil })
	assert.ErrorIs(t, err, ErrNoLink)

	cause := errors.New("socket: boom")
	_, err = waitLink("", time.Second, func() ([]Link, error) { return nil, cause })
	assert.ErrorIs(t, err, cause)
}
