package httpapi

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tarstore/tarstore/kv"
)

// ParseSize parses a size in bytes as the CLI and the API accept it
// (SPEC §5): a decimal number of bytes with an optional suffix K, M, G or T
// (either case, optionally followed by "iB"), in powers of 1024: "4096",
// "64K", "1M", "2GiB". Negative, fractional and overflowing sizes are
// refused with an error that wraps kv.ErrInvalidArgument.
func ParseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	trimmed := strings.TrimSuffix(s, "iB")
	if n := len(trimmed); n > 0 {
		shift := strings.IndexByte("KMGT", trimmed[n-1]&^0x20) // upper-case ASCII letters
		if shift >= 0 && trimmed[n-1] >= 'A' {
			num, mult = trimmed[:n-1], int64(1)<<(10*(shift+1))
		} else if trimmed != s {
			return 0, &sizeError{s, "\"iB\" must follow K, M, G or T"}
		}
	}
	if num == "" {
		return 0, &sizeError{s, "no number"}
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, &sizeError{s, "want a decimal number of bytes with an optional K, M, G or T suffix"}
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, &sizeError{s, "too large"}
	}
	return n * mult, nil
}

// sizeError is ParseSize's error: it wraps kv.ErrInvalidArgument.
type sizeError struct{ s, why string }

func (e *sizeError) Error() string { return fmt.Sprintf("invalid size %q: %s", e.s, e.why) }
func (e *sizeError) Unwrap() error { return kv.ErrInvalidArgument }
