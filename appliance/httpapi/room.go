package httpapi

import (
	"github.com/tarstore/tarstore/kv"
)

// MaxValueSize bounds every size and offset taken from a request (a PUT's
// Content-Length, ?allocate=SIZE, ?offset=N) before any arithmetic: 2^62
// bytes (4 EiB), beyond any device, so that a size plus its headers, an
// offset plus a length, or a size rounded up to sectors cannot overflow an
// int64 in the handler or in the store. A larger size is no_space (507),
// like any value larger than the device; a larger PATCH offset is past the
// end of every value, so it is passed to the store as MaxValueSize, which
// appends the same way.
const MaxValueSize = 1 << 62

// RoomError returns the error op ("set" or "allocate") of k gets when the
// value cannot fit, in the order the store checks (SPEC §3), without
// writing: for set, value_expected for the root and dictionary_expected
// for a prefix bound to a value; for allocate, already_present for the
// root or an existing k and dictionary_expected for a prefix value; then
// no_space. It reads s to tell which. The handler and the command line use
// it to refuse a value larger than the device (or the free space) without
// handing the size to the store.
func RoomError(s kv.RO, op string, k kv.Key) error {
	if k.IsRoot() {
		if op == "allocate" {
			return kv.AlreadyPresent(op, k)
		}
		return kv.ValueExpected(op, k)
	}
	p := kv.Root
	for seg := range k.Parent().All() {
		p, _ = p.Add(seg)
		if kind, err := s.Exists(p); err != nil {
			return kv.WithOp(err, op)
		} else if kind == kv.Value {
			return kv.DictionaryExpected(op, p)
		}
	}
	if op == "allocate" {
		if kind, err := s.Exists(k); err != nil {
			return kv.WithOp(err, op)
		} else if kind != kv.None {
			return kv.AlreadyPresent(op, k)
		}
	}
	return kv.NoSpace(op, k)
}
