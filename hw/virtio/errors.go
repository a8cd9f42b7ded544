package virtio

import (
	"errors"
	"fmt"
)

var (
	// ErrBadDevice reports a device whose features or configuration the
	// driver cannot use: no VIRTIO_F_VERSION_1, a block size that is not
	// a power of two from 512 to 64 KiB, no queue, a malformed config.
	ErrBadDevice = errors.New("unusable virtio-blk device")

	// ErrTimeout reports a request the device did not complete within
	// Options.Timeout. The session is abandoned: its requests fail and
	// the memory they used is never reused.
	ErrTimeout = errors.New("virtio-blk device did not complete the request in time")

	// ErrGone reports that the device went away (the back-end closed its
	// socket, the device needs a reset) while requests were in flight.
	ErrGone = errors.New("virtio-blk device is gone")
)

// StatusError is a request the device completed with a status other than
// VIRTIO_BLK_S_OK (virtio 1.2 §5.2.6). It is the Err of an *hw.Error of
// Kind hw.ErrIO, or hw.ErrUnsupported for VIRTIO_BLK_S_UNSUPP.
type StatusError struct {
	Op     string // "read", "write", "flush", ...
	Sector uint64 // the request's first 512-byte sector
	Status uint8  // VIRTIO_BLK_S_IOERR (1), VIRTIO_BLK_S_UNSUPP (2), or other
}

func (e *StatusError) Error() string {
	var s string
	switch e.Status {
	case statusIOErr:
		s = "VIRTIO_BLK_S_IOERR"
	case statusUnsupp:
		s = "VIRTIO_BLK_S_UNSUPP"
	default:
		s = fmt.Sprintf("status %d", e.Status)
	}
	return fmt.Sprintf("virtio-blk %s at sector %d: %s", e.Op, e.Sector, s)
}
