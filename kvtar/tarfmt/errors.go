package tarfmt

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the decoder returns is a *FormatError that
// wraps exactly one of them; EncodeHeader and the hole helpers return a
// *HeaderError wrapping ErrUnencodable, ErrFieldTooLong or ErrRange. Test
// with errors.Is.
var (
	// ErrChecksum: a header block's checksum field does not match its bytes
	// (neither the unsigned nor the historic signed sum).
	ErrChecksum = errors.New("tarfmt: header checksum mismatch")
	// ErrTruncated: a header, extended data or member data would extend
	// past the end of the archive, or Data received fewer bytes than asked.
	ErrTruncated = errors.New("tarfmt: archive truncated")
	// ErrFieldTooLong: an extended header (x, g, L, K) or an encoded
	// header is over MaxExtendedSize.
	ErrFieldTooLong = errors.New("tarfmt: field too long")
	// ErrNumber: a numeric header field or PAX value is not a number.
	ErrNumber = errors.New("tarfmt: invalid numeric field")
	// ErrRange: a number is out of range (overflow, negative size, time
	// outside what time.Time represents).
	ErrRange = errors.New("tarfmt: value out of range")
	// ErrPAXRecord: PAX extended header data is not a sequence of
	// well-formed "%d %s=%s\n" records, or a record has an invalid value.
	ErrPAXRecord = errors.New("tarfmt: malformed PAX record")
	// ErrSparse: a sparse map is malformed, inconsistent with the data, or
	// one that GNU tar and the other readers read differently (sparse.go).
	ErrSparse = errors.New("tarfmt: invalid sparse map")
	// ErrHeader: a header is invalid in some other way (unknown layout for
	// its type, size on a type the readers disagree about).
	ErrHeader = errors.New("tarfmt: invalid header")
	// ErrMisplaced: an extended header (x, L, K) is not directly followed by
	// the member it describes: two x headers in a row, or a g header or
	// zero block in between. bsdtar rejects such archives.
	ErrMisplaced = errors.New("tarfmt: misplaced extended header")
	// ErrUsage: the Decoder was driven out of order (a block at another
	// offset than the one asked for, Data when no data was asked for, or a
	// call after an error).
	ErrUsage = errors.New("tarfmt: decoder used out of order")
	// ErrUnencodable: a Header cannot be written (invalid field values).
	ErrUnencodable = errors.New("tarfmt: header cannot be encoded")
)

// A FormatError reports a problem in the archive at Offset (the archive
// offset of the header block at fault, or of the byte at fault within
// extended data). Err is one of the package's sentinel errors.
type FormatError struct {
	Offset int64
	Reason string
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%v at offset %d: %s", e.Err, e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return e.Err }

// A HeaderError reports why a Header cannot be encoded. Field names the
// Header field at fault. Err is ErrUnencodable, ErrFieldTooLong or ErrRange.
type HeaderError struct {
	Field  string
	Reason string
	Err    error
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Err, e.Field, e.Reason)
}

func (e *HeaderError) Unwrap() error { return e.Err }

// fieldError is a problem found by a parser that does not know where its
// input lies in the archive; the decoder turns it into a FormatError.
type fieldError struct {
	err    error
	reason string
	at     int // byte index within the parsed input, for PAX data
}

func (e *fieldError) Error() string { return fmt.Sprintf("%v: %s", e.err, e.reason) }
func (e *fieldError) Unwrap() error { return e.err }

func errorf(sentinel error, at int, format string, args ...any) *fieldError {
	return &fieldError{err: sentinel, reason: fmt.Sprintf(format, args...), at: at}
}

// formatErr turns any error from a parser into a *FormatError at off
// (plus the parser's position when it has one).
func formatErr(off int64, what string, err error) *FormatError {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &FormatError{Offset: off + int64(fe.at), Reason: what + ": " + fe.reason, Err: fe.err}
	}
	var f *FormatError
	if errors.As(err, &f) { // from ParseRecords: Offset is relative to off
		return &FormatError{Offset: off + f.Offset, Reason: what + ": " + f.Reason, Err: f.Err}
	}
	return &FormatError{Offset: off, Reason: what + ": " + err.Error(), Err: ErrHeader}
}
