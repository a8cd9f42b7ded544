package vhostuser

import (
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/hw/internal/dma"
)

// fake is the back-end end of a socketpair whose other end is a Conn.
type fake struct {
	t  *testing.T
	uc *net.UnixConn
}

type msg struct {
	h   header
	p   []byte
	fds []int
}

func unixConn(t *testing.T, fd int, name string) *net.UnixConn {
	t.Helper()
	f := os.NewFile(uintptr(fd), name)
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.UnixConn)
}

// newFake returns a Conn connected to a fake back-end running script in a
// goroutine; the test waits for the script when it ends.
func newFake(t *testing.T, script func(f *fake)) *Conn {
	c, _ := newFakeDone(t, script)
	return c
}

// newFakeDone is newFake that also returns a channel closed when the script
// has returned.
func newFakeDone(t *testing.T, script func(f *fake)) (*Conn, <-chan struct{}) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(unixConn(t, fds[0], "front-end"))
	f := &fake{t: t, uc: unixConn(t, fds[1], "back-end")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer f.uc.Close()
		script(f)
	}()
	t.Cleanup(func() {
		c.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("fake back-end did not finish")
		}
	})
	return c, done
}

// read reads one message; ok is false at end of stream.
func (f *fake) read() (m msg, ok bool) {
	var hb [hdrSize]byte
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := f.uc.ReadMsgUnix(hb[:], oob)
	if n == 0 || err != nil {
		return m, false
	}
	if n != hdrSize {
		f.t.Errorf("fake: header read %d bytes", n)
		return m, false
	}
	if oobn > 0 {
		cms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			f.t.Errorf("fake: %v", err)
		}
		for _, cm := range cms {
			fds, err := unix.ParseUnixRights(&cm)
			if err != nil {
				f.t.Errorf("fake: %v", err)
			}
			m.fds = append(m.fds, fds...)
		}
	}
	m.h = parseHeader(hb[:])
	m.p = make([]byte, m.h.size)
	if _, err := io.ReadFull(f.uc, m.p); err != nil {
		f.t.Errorf("fake: payload: %v", err)
		return m, false
	}
	return m, true
}

// expect reads one message and checks its request type.
func (f *fake) expect(req request) msg {
	m, ok := f.read()
	if !ok {
		f.t.Errorf("fake: connection ended, want %v", req)
	} else if m.h.req != req {
		f.t.Errorf("fake: got %v, want %v", m.h.req, req)
	}
	return m
}

func (f *fake) send(req request, flags uint32, payload []byte) {
	if _, err := f.uc.Write(encodeMessage(req, flags, payload)); err != nil {
		f.t.Errorf("fake: write: %v", err)
	}
}

func (f *fake) reply(req request, payload []byte) { f.send(req, flagVersion|flagReply, payload) }

func TestGetFeaturesRoundTrip(t *testing.T) {
	const offered = FeatureVersion1 | FeatureProtocolFeatures | FeatureBlkFlush
	c := newFake(t, func(f *fake) {
		m := f.expect(reqGetFeatures)
		if m.h.flags != flagVersion || m.h.size != 0 {
			f.t.Errorf("GET_FEATURES header %+v, want flags 1 size 0", m.h)
		}
		f.reply(reqGetFeatures, u64Payload(offered))
	})
	got, err := c.GetFeatures()
	if err != nil || got != offered {
		t.Fatalf("GetFeatures = %#x, %v", got, err)
	}
}

func TestVringFilePassesFD(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	c := newFake(t, func(f *fake) {
		m := f.expect(reqSetVringKick)
		if len(m.fds) != 1 || get64(m.p, 0) != 2 {
			f.t.Errorf("SET_VRING_KICK: fds %v payload %x, want 1 fd and index 2", m.fds, m.p)
		}
		for _, fd := range m.fds {
			// The fd is the same eventfd: a write shows on the original.
			if _, err := unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
				f.t.Errorf("write passed eventfd: %v", err)
			}
			unix.Close(fd)
		}
		m = f.expect(reqSetVringCall)
		if len(m.fds) != 0 || get64(m.p, 0) != 1|vringNoFD {
			f.t.Errorf("SET_VRING_CALL without fd: fds %v payload %x", m.fds, m.p)
		}
	})
	if err := c.SetVringKick(2, efd); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVringCall(1, -1); err != nil {
		t.Fatal(err)
	}
	c.Close() // ends the script once it has read everything
	var b [8]byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := unix.Read(efd, b[:]); err == nil {
			break
		} else if err != unix.EAGAIN || time.Now().After(deadline) {
			t.Fatalf("eventfd not signalled through the passed fd: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReplyAck(t *testing.T) {
	c := newFake(t, func(f *fake) {
		if m := f.expect(reqSetProtocolFeatures); m.h.flags != flagVersion {
			f.t.Errorf("SET_PROTOCOL_FEATURES flags %#x, want 1", m.h.flags)
		}
		m := f.expect(reqSetVringNum)
		if m.h.flags != flagVersion|flagNeedReply {
			f.t.Errorf("SET_VRING_NUM flags %#x, want NEED_REPLY", m.h.flags)
		}
		f.reply(reqSetVringNum, u64Payload(0))
		f.expect(reqSetVringBase)
		f.reply(reqSetVringBase, u64Payload(22))
		// Messages with their own reply carry no NEED_REPLY.
		if m := f.expect(reqGetFeatures); m.h.flags != flagVersion {
			f.t.Errorf("GET_FEATURES flags %#x, want 1", m.h.flags)
		}
		f.reply(reqGetFeatures, u64Payload(FeatureVersion1))
	})
	if err := c.SetProtocolFeatures(ProtocolFeatureReplyAck); err != nil {
		t.Fatal(err)
	}
	if got := c.ProtocolFeatures(); got != ProtocolFeatureReplyAck {
		t.Errorf("ProtocolFeatures = %#x", got)
	}
	if err := c.SetVringNum(0, 256); err != nil {
		t.Fatal(err)
	}
	err := c.SetVringBase(0, 0)
	var nack *NackError
	var e *Error
	if !errors.As(err, &nack) || nack.Value != 22 || !errors.As(err, &e) || e.Op != "SET_VRING_BASE" {
		t.Fatalf("SetVringBase: %v, want *Error{SET_VRING_BASE, *NackError{22}}", err)
	}
	// A NACK leaves the connection usable.
	if f, err := c.GetFeatures(); err != nil || f != FeatureVersion1 {
		t.Fatalf("GetFeatures after NACK = %#x, %v", f, err)
	}
}

func TestNoNeedReplyWithoutReplyAck(t *testing.T) {
	c := newFake(t, func(f *fake) {
		for _, req := range []request{reqSetOwner, reqSetVringNum, reqSetVringEnable} {
			if m := f.expect(req); m.h.flags != flagVersion {
				f.t.Errorf("%v flags %#x, want 1", req, m.h.flags)
			}
		}
	})
	c.SetTimeout(time.Second)
	if err := c.SetOwner(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVringNum(0, 8); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVringEnable(0, true); err != nil {
		t.Fatal(err)
	}
}

func TestBadReplies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(f *fake)
		sticky bool // the connection is broken afterwards
	}{
		{"no reply flag", func(f *fake) { f.send(reqGetFeatures, flagVersion, u64Payload(1)) }, true},
		{"version 2", func(f *fake) { f.send(reqGetFeatures, 0x2|flagReply, u64Payload(1)) }, true},
		{"other request", func(f *fake) { f.reply(reqGetProtocolFeatures, u64Payload(1)) }, true},
		{"huge size", func(f *fake) {
			b := encodeMessage(reqGetFeatures, flagVersion|flagReply, nil)
			put32(b, 8, 1<<20)
			f.uc.Write(b)
		}, true},
		{"short payload", func(f *fake) { f.reply(reqGetFeatures, []byte{1, 2, 3, 4}) }, false},
		{"long payload", func(f *fake) { f.reply(reqGetFeatures, make([]byte, 16)) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFake(t, func(f *fake) {
				f.expect(reqGetFeatures)
				tc.answer(f)
				if !tc.sticky {
					f.expect(reqGetFeatures)
					f.reply(reqGetFeatures, u64Payload(7))
				} else {
					f.read() // wait for the front-end to go
				}
			})
			c.SetTimeout(2 * time.Second)
			_, err := c.GetFeatures()
			var e *Error
			if !errors.Is(err, ErrProtocol) || !errors.As(err, &e) || e.Op != "GET_FEATURES" {
				t.Fatalf("GetFeatures: %v, want *Error{GET_FEATURES, ErrProtocol}", err)
			}
			v, err := c.GetFeatures()
			if tc.sticky {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("second call: %v, want the sticky ErrProtocol", err)
				}
			} else if err != nil || v != 7 {
				t.Fatalf("second call = %d, %v, want 7", v, err)
			}
		})
	}
}

func TestBadAck(t *testing.T) {
	c := newFake(t, func(f *fake) {
		f.expect(reqSetProtocolFeatures)
		f.expect(reqSetVringNum)
		f.reply(reqSetVringNum, nil) // an ack must be a u64
		f.expect(reqSetVringNum)
		f.reply(reqSetVringNum, u64Payload(0))
	})
	if err := c.SetProtocolFeatures(ProtocolFeatureReplyAck); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVringNum(0, 8); !errors.Is(err, ErrProtocol) {
		t.Fatalf("empty ack: %v, want ErrProtocol", err)
	}
	if err := c.SetVringNum(0, 8); err != nil {
		t.Fatalf("after a short ack: %v", err)
	}
}

func TestGetConfigEmptyReply(t *testing.T) {
	c := newFake(t, func(f *fake) {
		m := f.expect(reqGetConfig)
		if len(m.p) != configHdrSize+60 || get32(m.p, 4) != 60 {
			f.t.Errorf("GET_CONFIG payload %x", m.p)
		}
		f.reply(reqGetConfig, nil) // libvhost-user's way of failing
		f.expect(reqGetConfig)
		cfg := make([]byte, 60)
		cfg[0] = 0x80
		f.reply(reqGetConfig, configPayload(0, 0, cfg))
	})
	if _, err := c.GetConfig(0, 60); !errors.Is(err, ErrProtocol) {
		t.Fatalf("GetConfig with empty reply: %v, want ErrProtocol", err)
	}
	cfg, err := c.GetConfig(0, 60)
	if err != nil || len(cfg) != 60 || cfg[0] != 0x80 {
		t.Fatalf("GetConfig = %x, %v", cfg, err)
	}
}

func TestClosedByBackEnd(t *testing.T) {
	c := newFake(t, func(f *fake) {
		f.expect(reqGetFeatures) // and hang up
	})
	_, err := c.GetFeatures()
	var e *Error
	if !errors.Is(err, ErrClosed) || !errors.As(err, &e) || e.Op != "GET_FEATURES" {
		t.Fatalf("GetFeatures: %v, want *Error{GET_FEATURES, ErrClosed}", err)
	}
	if err := c.SetOwner(); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetOwner after close: %v, want ErrClosed", err)
	}
}

func TestClosedMidReply(t *testing.T) {
	c := newFake(t, func(f *fake) {
		f.expect(reqGetFeatures)
		b := encodeMessage(reqGetFeatures, flagVersion|flagReply, u64Payload(1))
		f.uc.Write(b[:hdrSize+3])
	})
	if _, err := c.GetFeatures(); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetFeatures: %v, want ErrClosed", err)
	}
}

func TestWriteToClosedBackEnd(t *testing.T) {
	c := newFake(t, func(f *fake) {})
	time.Sleep(50 * time.Millisecond) // let the script hang up
	// The first write may still succeed; by the second the peer is gone.
	for range 2 {
		if err := c.SetVringNum(0, 8); err != nil {
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("SetVringNum: %v, want ErrClosed", err)
			}
			return
		}
	}
	t.Fatal("writes to a closed back-end succeeded")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	c := newFake(t, func(f *fake) {
		f.expect(reqGetFeatures)
		<-release // never answer
	})
	defer close(release)
	c.SetTimeout(100 * time.Millisecond)
	start := time.Now()
	_, err := c.GetFeatures()
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("GetFeatures: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// The connection is out of sync now: later calls fail at once.
	if err := c.SetOwner(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("SetOwner after timeout: %v, want ErrTimeout", err)
	}
}

func TestCloseUnblocksCall(t *testing.T) {
	release := make(chan struct{})
	c := newFake(t, func(f *fake) {
		f.expect(reqGetQueueNum)
		<-release
	})
	defer close(release)
	c.SetTimeout(0) // no bound: only Close ends the wait
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.Close()
	}()
	if _, err := c.GetQueueNum(); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetQueueNum: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	c := newFake(t, func(f *fake) {
		if m, ok := f.read(); ok {
			f.t.Errorf("invalid calls sent %v", m.h.req)
		}
	})
	regions := make([]Region, MaxRegions+1)
	for i := range regions {
		regions[i] = Region{Size: 4096, FD: 0}
	}
	for name, err := range map[string]error{
		"no regions":      c.SetMemTable(nil),
		"too many":        c.SetMemTable(regions),
		"negative fd":     c.SetMemTable([]Region{{Size: 4096, FD: -1}}),
		"empty region":    c.SetMemTable([]Region{{FD: 0}}),
		"config size 0":   func() error { _, err := c.GetConfig(0, 0); return err }(),
		"config too big":  func() error { _, err := c.GetConfig(0, MaxConfigSize+1); return err }(),
		"kick index 256":  c.SetVringKick(256, -1),
		"call index 1000": c.SetVringCall(1000, -1),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestGetVringBase(t *testing.T) {
	c := newFake(t, func(f *fake) {
		m := f.expect(reqGetVringBase)
		if idx, _, _ := parseVringState(reqGetVringBase, m.p); idx != 1 {
			f.t.Errorf("GET_VRING_BASE index %d", idx)
		}
		f.reply(reqGetVringBase, vringStatePayload(1, 77))
		f.expect(reqGetVringBase)
		f.reply(reqGetVringBase, vringStatePayload(0, 77))
	})
	if base, err := c.GetVringBase(1); err != nil || base != 77 {
		t.Fatalf("GetVringBase = %d, %v", base, err)
	}
	if _, err := c.GetVringBase(1); !errors.Is(err, ErrProtocol) {
		t.Fatalf("GetVringBase with another index: %v, want ErrProtocol", err)
	}
}

// fakeBlk answers the Negotiate sequence like qemu-storage-daemon and
// records the order of requests.
func fakeBlk(f *fake, offered, pOffered uint64, got *[]request, acked, pAcked *uint64) {
	cfg := make([]byte, ConfigSize)
	cfg[0] = 0x80 // capacity 128 sectors
	cfg[21] = 0x10
	for {
		m, ok := f.read()
		if !ok {
			return
		}
		*got = append(*got, m.h.req)
		switch m.h.req {
		case reqGetFeatures:
			f.reply(m.h.req, u64Payload(offered))
		case reqGetProtocolFeatures:
			f.reply(m.h.req, u64Payload(pOffered))
		case reqGetQueueNum:
			f.reply(m.h.req, u64Payload(4))
		case reqGetConfig:
			f.reply(m.h.req, configPayload(0, 0, cfg))
		case reqSetFeatures:
			*acked = get64(m.p, 0)
		case reqSetProtocolFeatures:
			*pAcked = get64(m.p, 0)
		}
		if m.h.flags&flagNeedReply != 0 {
			f.reply(m.h.req, u64Payload(0))
		}
	}
}

func TestNegotiateFake(t *testing.T) {
	var got []request
	var acked, pAcked uint64
	const offered = FeatureVersion1 | FeatureProtocolFeatures | FeatureBlkBlkSize | FeatureBlkFlush | FeatureRingEventIdx
	const pOffered = ProtocolFeatureMQ | ProtocolFeatureReplyAck | ProtocolFeatureConfig | ProtocolFeatureConfigureMemSlots
	c, done := newFakeDone(t, func(f *fake) { fakeBlk(f, offered, pOffered, &got, &acked, &pAcked) })
	n, err := c.Negotiate(FeatureBlkBlkSize | FeatureBlkFlush | FeatureBlkDiscard)
	if err != nil {
		t.Fatal(err)
	}
	wantFeatures := uint64(FeatureVersion1 | FeatureProtocolFeatures | FeatureBlkBlkSize | FeatureBlkFlush)
	if n.Features != wantFeatures || n.Offered != offered {
		t.Errorf("Features %#x Offered %#x, want %#x %#x", n.Features, n.Offered, wantFeatures, uint64(offered))
	}
	if n.ProtocolFeatures != ProtocolFeatureMQ|ProtocolFeatureReplyAck|ProtocolFeatureConfig || n.QueueNum != 4 {
		t.Errorf("ProtocolFeatures %#x QueueNum %d", n.ProtocolFeatures, n.QueueNum)
	}
	if len(n.Config) != ConfigSize || n.Config[0] != 0x80 || n.Config[21] != 0x10 {
		t.Errorf("config % x", n.Config)
	}
	c.Close()
	<-done
	{
		want := []request{reqSetOwner, reqGetFeatures, reqGetProtocolFeatures, reqSetProtocolFeatures,
			reqGetQueueNum, reqGetConfig, reqSetFeatures}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("requests %v, want %v", got, want)
		}
		if acked != wantFeatures || pAcked != n.ProtocolFeatures {
			t.Errorf("back-end saw features %#x protocol %#x", acked, pAcked)
		}
	}
}

func TestNegotiateUnsupported(t *testing.T) {
	for _, tc := range []struct {
		name              string
		offered, pOffered uint64
	}{
		{"no VERSION_1", FeatureProtocolFeatures, ProtocolFeatureConfig},
		{"no PROTOCOL_FEATURES", FeatureVersion1, ProtocolFeatureConfig},
		{"no CONFIG", FeatureVersion1 | FeatureProtocolFeatures, ProtocolFeatureReplyAck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []request
			var acked, pAcked uint64
			c := newFake(t, func(f *fake) { fakeBlk(f, tc.offered, tc.pOffered, &got, &acked, &pAcked) })
			_, err := c.Negotiate(0)
			var e *Error
			if !errors.Is(err, ErrUnsupported) || !errors.As(err, &e) || e.Op != "negotiate" {
				t.Fatalf("Negotiate: %v, want *Error{negotiate, ErrUnsupported}", err)
			}
		})
	}
}

func TestDialMissingSocket(t *testing.T) {
	_, err := Dial(t.TempDir() + "/none.sock")
	var e *Error
	if !errors.As(err, &e) || e.Op != "dial" || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Dial: %v, want *Error{dial, ENOENT}", err)
	}
}

func TestArena(t *testing.T) {
	a, err := NewArena(100)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	page := os.Getpagesize()
	if a.Len() != page || len(a.Bytes()) != page {
		t.Fatalf("Len %d, want a page (%d)", a.Len(), page)
	}
	if a.Addr(0) != dma.AddrOf(a.Bytes()) || a.Addr(10) != a.Addr(0)+10 || a.Addr(0)%uint64(page) != 0 {
		t.Errorf("Addr(0) %#x, mapping at %#x", a.Addr(0), dma.AddrOf(a.Bytes()))
	}
	if dr := a.Region(); dr.Len() != page || dr.Addr(7) != a.Addr(7) {
		t.Errorf("dma region of %d bytes at %#x", dr.Len(), dr.Addr(0))
	}
	r := a.TableEntry()
	if r != (Region{GuestAddr: a.Addr(0), UserAddr: a.Addr(0), Size: uint64(page), FD: a.FD()}) || r.FD < 0 {
		t.Errorf("Region %+v", r)
	}
	// The memory is shared: what is written through one mapping of the
	// memfd shows through another (as it will in the back-end).
	other, err := unix.Mmap(a.FD(), 0, page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(other)
	copy(a.Bytes()[page-5:], "hello")
	if string(other[page-5:]) != "hello" {
		t.Errorf("second mapping reads %q", other[page-5:])
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Addr(Len()+1) did not panic")
			}
		}()
		a.Addr(page + 1)
	}()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil || a.FD() != -1 {
		t.Fatalf("second Close: %v, FD %d", err, a.FD())
	}
	if _, err := NewArena(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewArena(0): %v, want ErrInvalid", err)
	}
}
