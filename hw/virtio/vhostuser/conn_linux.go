package vhostuser

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds each request/reply exchange of a new Conn.
const DefaultTimeout = 5 * time.Second

// Conn is the front-end end of a vhost-user connection. Its methods send
// one message each and wait for the reply when there is one; they are safe
// for concurrent use (exchanges are serialised).
//
// After a transport failure (the back-end closed the socket, a timeout, a
// malformed reply header) the connection is broken: every later call fails
// with the same cause. A NackError or a reply payload of the wrong size
// leaves it usable.
type Conn struct {
	uc      *net.UnixConn
	closed  atomic.Bool
	timeout atomic.Int64 // time.Duration

	mu       sync.Mutex // serialises exchanges; guards the fields below
	protocol uint64     // protocol features set with SetProtocolFeatures
	broken   error      // sticky transport error
}

// Dial connects to the vhost-user back-end listening on the unix socket at
// path.
func Dial(path string) (*Conn, error) {
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, &Error{Op: "dial", Err: err}
	}
	return newConn(uc), nil
}

func newConn(uc *net.UnixConn) *Conn {
	c := &Conn{uc: uc}
	c.timeout.Store(int64(DefaultTimeout))
	return c
}

// fd returns the socket's file descriptor, for polling; it stays open
// until Close.
func (c *Conn) fd() (int, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// SetTimeout sets the bound on each later exchange (sending a message and
// reading its reply); d <= 0 means no bound.
func (c *Conn) SetTimeout(d time.Duration) { c.timeout.Store(int64(d)) }

// Close closes the socket. A call in progress returns ErrClosed. The
// back-end sees a disconnect and, like qemu-storage-daemon, may wait for a
// new front-end.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if err := c.uc.Close(); err != nil {
		return &Error{Op: "close", Err: err}
	}
	return nil
}

// ProtocolFeatures returns the protocol features last set with
// SetProtocolFeatures.
func (c *Conn) ProtocolFeatures() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.protocol
}

// exchange sends req with payload and fds, then reads the reply when
// hasReply, or the u64 ack when REPLY_ACK is negotiated. It returns the
// reply payload (nil for messages without a reply).
func (c *Conn) exchange(req request, payload []byte, fds []int, hasReply bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, &Error{Op: req.String(), Err: c.broken}
	}
	if c.closed.Load() {
		return nil, &Error{Op: req.String(), Err: ErrClosed}
	}
	p, err := c.exchangeLocked(req, payload, fds, hasReply)
	if err != nil {
		var nack *NackError
		if !errors.As(err, &nack) && !errors.Is(err, errShortPayload) {
			c.broken = err
		}
		return nil, &Error{Op: req.String(), Err: err}
	}
	return p, nil
}

// errShortPayload marks protocol errors after which the stream is still
// in sync (the whole reply was read).
var errShortPayload = errors.New("payload size mismatch")

func (c *Conn) exchangeLocked(req request, payload []byte, fds []int, hasReply bool) ([]byte, error) {
	if d := time.Duration(c.timeout.Load()); d > 0 {
		if err := c.uc.SetDeadline(time.Now().Add(d)); err != nil {
			return nil, c.transportErr(err)
		}
	} else if err := c.uc.SetDeadline(time.Time{}); err != nil {
		return nil, c.transportErr(err)
	}
	flags := uint32(flagVersion)
	ack := !hasReply && c.protocol&ProtocolFeatureReplyAck != 0
	if ack {
		flags |= flagNeedReply
	}
	if err := c.send(encodeMessage(req, flags, payload), fds); err != nil {
		return nil, err
	}
	if !hasReply && !ack {
		return nil, nil
	}
	h, p, err := c.recv()
	if err != nil {
		return nil, err
	}
	if err := h.checkReply(req); err != nil {
		return nil, err
	}
	if !ack {
		return p, nil
	}
	v, err := parseU64(req, p)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", err, errShortPayload)
	}
	if v != 0 {
		return nil, &NackError{Value: v}
	}
	return nil, nil
}

// send writes msg (header and payload) in one sendmsg, with fds as
// SCM_RIGHTS: the back-end reads the fds together with the header.
func (c *Conn) send(msg []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := c.uc.WriteMsgUnix(msg, oob, nil)
	if err != nil {
		return c.transportErr(err)
	}
	if n < len(msg) { // the fds went with the first byte
		if _, err := c.uc.Write(msg[n:]); err != nil {
			return c.transportErr(err)
		}
	}
	return nil
}

// recv reads one message. Replies to the messages this package sends carry
// no fds; any received are closed.
func (c *Conn) recv() (header, []byte, error) {
	var hb [hdrSize]byte
	oob := make([]byte, unix.CmsgSpace(4*8))
	for got := 0; got < hdrSize; {
		n, oobn, _, _, err := c.uc.ReadMsgUnix(hb[got:], oob)
		closeRights(oob[:oobn])
		got += n
		if err != nil {
			if errors.Is(err, io.EOF) && got > 0 {
				err = io.ErrUnexpectedEOF
			}
			return header{}, nil, c.transportErr(err)
		}
		if n == 0 {
			return header{}, nil, c.transportErr(io.EOF)
		}
	}
	h := parseHeader(hb[:])
	if h.size > maxPayload {
		return h, nil, fmt.Errorf("%w: reply to %v: payload size %d > %d", ErrProtocol, h.req, h.size, maxPayload)
	}
	p := make([]byte, h.size)
	if _, err := io.ReadFull(c.uc, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, c.transportErr(err)
	}
	return h, p, nil
}

func closeRights(oob []byte) {
	if len(oob) == 0 {
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// transportErr classifies a socket error: a deadline is ErrTimeout, a
// vanished peer or a closed socket is ErrClosed.
func (c *Conn) transportErr(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (%v): %w", ErrTimeout, time.Duration(c.timeout.Load()), err)
	case c.closed.Load(), errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w by the back-end: %w", ErrClosed, err)
	}
	return err
}
