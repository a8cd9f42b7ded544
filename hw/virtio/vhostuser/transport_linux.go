package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
)

// MaxQueueSize is the largest ring a back-end built on QEMU's
// libvhost-user accepts (VIRTQUEUE_MAX_SIZE); vhost-user has no message to
// ask.
const MaxQueueSize = 1024

// Transport is a virtio device behind a vhost-user back-end, with the
// method set of hw/virtio's Transport: Handshake at dial, GET_CONFIG,
// SET_FEATURES, one memfd Arena in SET_MEM_TABLE, SET_VRING_* per queue
// with a kick and a call eventfd, SET_VRING_ENABLE at Start. Wait blocks
// in poll(2) on the queue's call eventfd, the socket (a back-end that
// exits hangs it up) and an eventfd that Close signals.
type Transport struct {
	path string
	c    *Conn
	n    *Negotiated
	sock int // the socket's fd, polled for hang-up

	arena  *Arena
	pool   *Arena  // SharePool's, registered with arena; not ours to close
	queues []vring // by index
	stop   int     // eventfd written by Close

	closed atomic.Bool
	once   sync.Once
	waitMu sync.Mutex // held by Wait while it polls; Close takes it before closing fds
}

type vring struct {
	kick, call int // eventfds, -1 when not set up
	size       int
}

// DialTransport connects to the back-end listening at path and runs
// Handshake.
func DialTransport(path string) (*Transport, error) {
	c, err := Dial(path)
	if err != nil {
		return nil, err
	}
	t := &Transport{path: path, c: c, stop: -1}
	fail := func(err error) (*Transport, error) {
		t.Close()
		return nil, err
	}
	if t.sock, err = c.fd(); err != nil {
		return fail(&Error{Op: "dial", Err: err})
	}
	if t.stop, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail(&Error{Op: "dial", Err: os.NewSyscallError("eventfd", err)})
	}
	if t.n, err = c.Handshake(); err != nil {
		return fail(err)
	}
	t.queues = make([]vring, t.n.QueueNum)
	for i := range t.queues {
		t.queues[i] = vring{kick: -1, call: -1}
	}
	return t, nil
}

// Name returns "vhost-user:" and the socket path.
func (t *Transport) Name() string { return "vhost-user:" + t.path }

// DeviceFeatures returns what GET_FEATURES offered.
func (t *Transport) DeviceFeatures() uint64 { return t.n.Offered }

// ReadConfig reads config space with GET_CONFIG.
func (t *Transport) ReadConfig(off, n int) ([]byte, error) {
	if off < 0 || n <= 0 || off+n > MaxConfigSize {
		return nil, &Error{Op: "GET_CONFIG", Err: fmt.Errorf("%w: config range [%d,+%d)", ErrInvalid, off, n)}
	}
	return t.c.GetConfig(uint32(off), uint32(n))
}

// SetFeatures sends SET_FEATURES with features plus
// FeatureProtocolFeatures, which the session negotiated at dial.
func (t *Transport) SetFeatures(features uint64) error {
	return t.c.SetFeatures(features | FeatureProtocolFeatures)
}

// NewPool returns a new Arena of size bytes, which the caller owns and may
// share with this back-end in this and later sessions (SharePool).
func (t *Transport) NewPool(size int) (dma.Memory, error) { return NewArena(size) }

// SharePool registers p, an Arena from NewPool, in the memory table that
// Memory sends, next to the session's own arena. Its addresses are its
// mapping's, as for every Arena, so they stay the same in every session.
func (t *Transport) SharePool(p dma.Memory) error {
	a, ok := p.(*Arena)
	if !ok || a.FD() < 0 || t.arena != nil || t.pool != nil {
		return &Error{Op: "SET_MEM_TABLE", Err: fmt.Errorf("%w: pool %T after Memory, twice, or closed", ErrInvalid, p)}
	}
	t.pool = a
	return nil
}

// Memory creates the Arena and registers it with SET_MEM_TABLE, with the
// pool SharePool gave.
func (t *Transport) Memory(size int) (dma.Region, error) {
	if t.arena != nil {
		return dma.Region{}, &Error{Op: "SET_MEM_TABLE", Err: fmt.Errorf("%w: memory already set", ErrInvalid)}
	}
	a, err := NewArena(size)
	if err != nil {
		return dma.Region{}, err
	}
	table := []Region{a.TableEntry()}
	if t.pool != nil {
		table = append(table, t.pool.TableEntry())
	}
	if err := t.c.SetMemTable(table); err != nil {
		a.Close()
		return dma.Region{}, err
	}
	t.arena = a
	return a.Region(), nil
}

// QueueMax returns MaxQueueSize for the queues GET_QUEUE_NUM announced, 0
// for others.
func (t *Transport) QueueMax(i int) (int, error) {
	if i < 0 || i >= len(t.queues) {
		return 0, nil
	}
	return MaxQueueSize, nil
}

// SetupQueue sends SET_VRING_NUM, SET_VRING_BASE (0), SET_VRING_ADDR,
// SET_VRING_KICK and SET_VRING_CALL for queue i, with fresh eventfds.
func (t *Transport) SetupQueue(i, size int, desc, avail, used uint64) error {
	if i < 0 || i >= len(t.queues) || t.queues[i].kick >= 0 {
		return &Error{Op: "SET_VRING_NUM", Err: fmt.Errorf("%w: queue %d of %d, or set up twice", ErrInvalid, i, len(t.queues))}
	}
	q := &t.queues[i]
	var err error
	if q.kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return &Error{Op: "SET_VRING_KICK", Err: os.NewSyscallError("eventfd", err)}
	}
	if q.call, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return &Error{Op: "SET_VRING_CALL", Err: os.NewSyscallError("eventfd", err)}
	}
	q.size = size
	idx := uint32(i)
	for _, step := range []func() error{
		func() error { return t.c.SetVringNum(idx, uint32(size)) },
		func() error { return t.c.SetVringBase(idx, 0) },
		func() error { return t.c.SetVringAddr(idx, desc, used, avail, 0) },
		func() error { return t.c.SetVringKick(idx, q.kick) },
		func() error { return t.c.SetVringCall(idx, q.call) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// Start enables every queue that was set up (SET_VRING_ENABLE): with
// protocol features negotiated, rings start disabled.
func (t *Transport) Start() error {
	for i, q := range t.queues {
		if q.kick < 0 {
			continue
		}
		if err := t.c.SetVringEnable(uint32(i), true); err != nil {
			return err
		}
	}
	return nil
}

// one is an eventfd increment: a native-endian u64 1.
var one = binary.NativeEndian.AppendUint64(nil, 1)

// Notify kicks queue i: it adds 1 to the kick eventfd.
func (t *Transport) Notify(i int) error {
	if t.closed.Load() {
		return &Error{Op: "kick", Err: ErrClosed}
	}
	if i < 0 || i >= len(t.queues) || t.queues[i].kick < 0 {
		return &Error{Op: "kick", Err: fmt.Errorf("%w: queue %d not set up", ErrInvalid, i)}
	}
	for {
		_, err := unix.Write(t.queues[i].kick, one)
		switch {
		case err == nil, errors.Is(err, unix.EAGAIN): // EAGAIN: the counter is full, the back-end will look
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		}
		return &Error{Op: "kick", Err: os.NewSyscallError("write", err)}
	}
}

// Wait blocks until the back-end signals queue i's call eventfd, the
// back-end hangs up (ErrClosed), or Close is called (ErrClosed).
func (t *Transport) Wait(i int) error {
	t.waitMu.Lock()
	defer t.waitMu.Unlock()
	if t.closed.Load() {
		return &Error{Op: "wait", Err: ErrClosed}
	}
	if i < 0 || i >= len(t.queues) || t.queues[i].call < 0 {
		return &Error{Op: "wait", Err: fmt.Errorf("%w: queue %d not set up", ErrInvalid, i)}
	}
	call := t.queues[i].call
	fds := []unix.PollFd{
		{Fd: int32(call), Events: unix.POLLIN},
		{Fd: int32(t.stop), Events: unix.POLLIN},
		{Fd: int32(t.sock), Events: unix.POLLRDHUP},
	}
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return &Error{Op: "wait", Err: os.NewSyscallError("poll", err)}
		}
		switch {
		case fds[1].Revents != 0 || t.closed.Load():
			return &Error{Op: "wait", Err: ErrClosed}
		case fds[2].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0:
			return &Error{Op: "wait", Err: fmt.Errorf("%w by the back-end", ErrClosed)}
		case fds[0].Revents != 0:
			var buf [8]byte
			unix.Read(call, buf[:]) // reset the counter; EAGAIN if another read won
			return nil
		}
	}
}

// Close closes the socket (the back-end stops the rings and waits for a
// new front-end), wakes Wait, and releases the eventfds and the arena.
func (t *Transport) Close() error {
	var err error
	t.once.Do(func() {
		t.closed.Store(true)
		if t.stop >= 0 {
			unix.Write(t.stop, one)
		}
		err = t.c.Close()
		t.waitMu.Lock()
		defer t.waitMu.Unlock()
		for _, q := range t.queues {
			for _, fd := range []int{q.kick, q.call} {
				if fd >= 0 {
					unix.Close(fd)
				}
			}
		}
		if t.stop >= 0 {
			unix.Close(t.stop)
		}
		if t.arena != nil {
			if aerr := t.arena.Close(); err == nil {
				err = aerr
			}
		}
	})
	return err
}
