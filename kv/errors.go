package kv

import (
	"errors"
	"fmt"
)

// Sentinel errors, one per Mirage_kv error constructor plus tarstore's own.
// Every error a store returns is an *Error wrapping exactly one of them, so
// callers test with errors.Is(err, kv.ErrNotFound) and read the operation
// and key with errors.As.
var (
	ErrNotFound           = errors.New("not_found")
	ErrValueExpected      = errors.New("value_expected")
	ErrDictionaryExpected = errors.New("dictionary_expected")
	ErrNoSpace            = errors.New("no_space")
	ErrAlreadyPresent     = errors.New("already_present")
	ErrRenameSourcePrefix = errors.New("rename_source_prefix")
	ErrStorage            = errors.New("storage_error")
	ErrInvalidKey         = errors.New("invalid_key")
	ErrInvalidArgument    = errors.New("invalid_argument")
	ErrReadOnly           = errors.New("read_only")
	ErrClosed             = errors.New("closed")
	ErrCorrupt            = errors.New("corrupt")
)

var sentinels = []error{ErrNotFound, ErrValueExpected, ErrDictionaryExpected, ErrNoSpace, ErrAlreadyPresent,
	ErrRenameSourcePrefix, ErrStorage, ErrInvalidKey, ErrInvalidArgument, ErrReadOnly, ErrClosed, ErrCorrupt}

// Error is the typed error of every store operation, in the manner of
// fs.PathError: the operation, the key(s) involved, the kind (one of the
// sentinels) and, for storage and corruption errors, the cause.
type Error struct {
	Op     string // "get", "set", "rename", ...
	Key    Key    // the key the error is about (for dictionary_expected on a prefix value: that prefix)
	Dest   Key    // rename_source_prefix only: the destination
	Err    error  // one of the sentinels
	Detail string // extra words for invalid_key, invalid_argument, corrupt
	Cause  error  // the underlying failure (device error, errno), may be nil
}

// Code is the stable snake_case code of the error kind, as used by the CLI
// and the HTTP API: "not_found", "value_expected", ...
func (e *Error) Code() string { return e.Err.Error() }

// Message is the human message in the Mirage wording, without the operation:
// "Cannot find the key /a/b".
func (e *Error) Message() string {
	var m string
	switch e.Err {
	case ErrNotFound:
		m = fmt.Sprintf("Cannot find the key %s", e.Key)
	case ErrValueExpected:
		m = fmt.Sprintf("Expected a value; %s is a dictionary", e.Key)
	case ErrDictionaryExpected:
		m = fmt.Sprintf("Expected a dictionary; %s is a value", e.Key)
	case ErrNoSpace:
		m = "No space left on device"
	case ErrAlreadyPresent:
		m = fmt.Sprintf("The key %s is already present", e.Key)
	case ErrRenameSourcePrefix:
		m = fmt.Sprintf("Rename: source %s is prefix of destination %s", e.Key, e.Dest)
	case ErrStorage:
		m = fmt.Sprintf("Storage error on %s", e.Key)
	case ErrInvalidKey:
		m = "Invalid key"
	case ErrInvalidArgument:
		m = "Invalid argument"
	case ErrReadOnly:
		m = "The store is read-only"
	case ErrClosed:
		m = "The store is closed"
	case ErrCorrupt:
		m = "The archive is corrupt"
	default:
		m = e.Err.Error()
	}
	if e.Detail != "" {
		m += ": " + e.Detail
	}
	if e.Cause != nil {
		m += ": " + e.Cause.Error()
	}
	return m
}

// Error is "<op> <key>: <message>", the form the CLI prints after "tarstore: ".
func (e *Error) Error() string {
	return e.Op + " " + e.Key.String() + ": " + e.Message()
}

// Unwrap exposes the sentinel and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// Code returns the stable code of err: the code of the kv sentinel it wraps,
// or "internal" for errors that wrap none. It returns "" for a nil error.
func Code(err error) string {
	if err == nil {
		return ""
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "internal"
}

// Constructors for the common cases, so that every store words errors alike.

// NotFound is the not_found error of op on k.
func NotFound(op string, k Key) error { return &Error{Op: op, Key: k, Err: ErrNotFound} }

// ValueExpected is the value_expected error: k is a dictionary.
func ValueExpected(op string, k Key) error { return &Error{Op: op, Key: k, Err: ErrValueExpected} }

// DictionaryExpected is the dictionary_expected error: k is a value.
func DictionaryExpected(op string, k Key) error {
	return &Error{Op: op, Key: k, Err: ErrDictionaryExpected}
}

// NoSpace is the no_space error of op on k.
func NoSpace(op string, k Key) error { return &Error{Op: op, Key: k, Err: ErrNoSpace} }

// AlreadyPresent is the already_present error: k exists.
func AlreadyPresent(op string, k Key) error { return &Error{Op: op, Key: k, Err: ErrAlreadyPresent} }

// RenameSourcePrefix is the rename_source_prefix error of rename src dst.
func RenameSourcePrefix(src, dst Key) error {
	return &Error{Op: "rename", Key: src, Dest: dst, Err: ErrRenameSourcePrefix}
}

// InvalidArgument is the invalid_argument error with a description.
func InvalidArgument(op string, k Key, detail string) error {
	return &Error{Op: op, Key: k, Err: ErrInvalidArgument, Detail: detail}
}

// Storage wraps a device or file-system failure of op on k.
func Storage(op string, k Key, cause error) error {
	return &Error{Op: op, Key: k, Err: ErrStorage, Cause: cause}
}

// ReadOnly is the read_only error of op on k.
func ReadOnly(op string, k Key) error { return &Error{Op: op, Key: k, Err: ErrReadOnly} }

// Closed is the closed error of op on k.
func Closed(op string, k Key) error { return &Error{Op: op, Key: k, Err: ErrClosed} }

// WithOp returns err with its Op replaced when it is an *Error (a copy; err
// is not modified), and err unchanged otherwise. Stores use it to report an
// error found by a shared helper under the caller's operation.
func WithOp(err error, op string) error {
	var e *Error
	if errors.As(err, &e) && e.Op != op {
		c := *e
		c.Op = op
		return &c
	}
	return err
}
