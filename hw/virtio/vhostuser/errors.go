package vhostuser

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed reports that the connection is gone: the back-end closed
	// it (it exited, crashed or dropped us) or Close was called.
	ErrClosed = errors.New("vhost-user connection closed")

	// ErrTimeout reports that the back-end did not answer within the
	// connection's timeout (see SetTimeout). The connection is unusable
	// afterwards: a late reply would be taken for the answer to the next
	// request.
	ErrTimeout = errors.New("vhost-user back-end did not reply in time")

	// ErrProtocol reports a reply that breaks the protocol: wrong request
	// type, version or flags, or a payload of the wrong size.
	ErrProtocol = errors.New("vhost-user protocol error")

	// ErrUnsupported reports that the back-end lacks a feature the
	// operation needs (Negotiate: VIRTIO_F_VERSION_1,
	// VHOST_USER_F_PROTOCOL_FEATURES or VHOST_USER_PROTOCOL_F_CONFIG).
	ErrUnsupported = errors.New("vhost-user back-end lacks a required feature")

	// ErrInvalid reports an argument rejected before anything is sent.
	ErrInvalid = errors.New("invalid argument")
)

// Error is the error returned by every operation: Op names the message
// (such as "SET_MEM_TABLE", or "dial" and "negotiate") and Err is the cause,
// which matches ErrClosed, ErrTimeout, ErrProtocol, ErrUnsupported or
// ErrInvalid with errors.Is, or is a *NackError, or a system error.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string { return "vhost-user " + e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// NackError is a negative REPLY_ACK: the back-end answered a message sent
// with the NEED_REPLY flag with a non-zero u64. The connection stays usable.
type NackError struct {
	Value uint64
}

func (e *NackError) Error() string {
	return fmt.Sprintf("back-end rejected the request (reply-ack %#x)", e.Value)
}
