package pci

import (
	"errors"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Address
		str  string
	}{
		{"0000:00:04.0", Address{0, 0, 4, 0}, "0000:00:04.0"},
		{"00:04.0", Address{0, 0, 4, 0}, "0000:00:04.0"},
		{"0001:3A:1f.7", Address{1, 0x3a, 0x1f, 7}, "0001:3a:1f.7"},
		{"10000:e1:00.1", Address{0x10000, 0xe1, 0, 1}, "10000:e1:00.1"},
	} {
		got, err := ParseAddress(c.in)
		if err != nil || got != c.want || got.String() != c.str {
			t.Errorf("ParseAddress(%q) = %+v %q, %v; want %+v %q", c.in, got, got.String(), err, c.want, c.str)
		}
	}
	for _, in := range []string{
		"", "04.0", "0:00:04.0", "000:00:04.0", "0000:0:04.0", "0000:00:4.0", "0000:00:20.0",
		"0000:00:04.8", "0000:00:04", "0000:00:04.00", "0000:00:04.x", "x000:00:04.0",
		"0000:00:00:04.0", "123456789:00:04.0", "0000:+1:04.0",
	} {
		if a, err := ParseAddress(in); !errors.Is(err, ErrAddress) {
			t.Errorf("ParseAddress(%q) = %v, %v; want ErrAddress", in, a, err)
		}
	}
}
