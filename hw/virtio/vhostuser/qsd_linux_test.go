package vhostuser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarstore/tarstore/internal/qsd"
)

// Integration tests against a qemu-storage-daemon vhost-user-blk export.

const imageSize = 16 << 20

type daemon struct{ *qsd.Daemon }

// startDaemon exports a fresh 16 MiB image, whose first 8 KiB hold
// pattern(), with the given logical block size, and waits for its socket.
func startDaemon(t *testing.T, blockSize int) daemon {
	t.Helper()
	img := make([]byte, imageSize)
	copy(img, pattern())
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return daemon{qsd.Start(t, path, blockSize)}
}

// dial connects to d, retrying briefly while the daemon gets to listen(2)
// or to accept a new front-end after a disconnect.
func (d daemon) dial(t *testing.T) *Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := Dial(d.Sock)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		if !errors.Is(err, unix.ECONNREFUSED) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pattern() []byte {
	b := make([]byte, 8192)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// virtio-blk feature bits (virtio 1.2 §5.2.3) these tests use; the driver's
// own are in package hw/virtio.
const (
	FeatureBlkSizeMax = 1 << 1
	FeatureBlkSegMax  = 1 << 2
	FeatureBlkRO      = 1 << 5
	FeatureBlkBlkSize = 1 << 6
	FeatureBlkFlush   = 1 << 9
	FeatureBlkDiscard = 1 << 13
)

const wantFeatures = FeatureBlkSizeMax | FeatureBlkSegMax | FeatureBlkBlkSize | FeatureBlkFlush

func negotiate(t *testing.T, c *Conn, blockSize int) *Negotiated {
	t.Helper()
	n, err := c.Negotiate(wantFeatures)
	if err != nil {
		t.Fatal(err)
	}
	if n.Features&FeatureVersion1 == 0 || n.Features&FeatureProtocolFeatures == 0 {
		t.Errorf("acked features %#x lack VERSION_1 or PROTOCOL_FEATURES", n.Features)
	}
	if n.Offered&FeatureBlkRO != 0 {
		t.Errorf("writable=on export offers VIRTIO_BLK_F_RO (features %#x)", n.Offered)
	}
	if n.ProtocolFeatures != ProtocolFeatureConfig|ProtocolFeatureReplyAck|ProtocolFeatureMQ {
		t.Errorf("protocol features %#x, want CONFIG|REPLY_ACK|MQ", n.ProtocolFeatures)
	}
	if n.QueueNum < 1 {
		t.Errorf("queue num %d", n.QueueNum)
	}
	if len(n.Config) != ConfigSize {
		t.Fatalf("config is %d bytes", len(n.Config))
	}
	if capacity := binary.LittleEndian.Uint64(n.Config); capacity != imageSize/512 {
		t.Errorf("capacity %d sectors, want %d", capacity, imageSize/512)
	}
	if n.Features&FeatureBlkBlkSize == 0 {
		t.Errorf("BLK_SIZE not negotiated (offered %#x)", n.Offered)
	}
	if got := binary.LittleEndian.Uint32(n.Config[20:]); got != uint32(blockSize) {
		t.Errorf("blk_size %d, want %d", got, blockSize)
	}
	t.Logf("features %#x (offered %#x), protocol %#x, queues %d, config % x",
		n.Features, n.Offered, n.ProtocolFeatures, n.QueueNum, n.Config)
	return n
}

// Split virtqueue layout in the arena (virtio 1.2 §2.7), queue size 128.
const (
	qSize     = 128
	descOff   = 0    // 16 bytes per descriptor
	availOff  = 2048 // flags, idx, ring[qSize], used_event: u16
	usedOff   = 4096 // flags, idx: u16; ring[qSize]: {id, len u32}
	reqOff    = 8192 // request headers, 16 bytes each
	statusOff = 8448 // status bytes
	dataOff   = 12288
	arenaSize = 64 << 10
)

// ring is a bare-bones split virtqueue driver, just enough to prove that
// the memory table and ring addresses given to the back-end are right.
type ring struct {
	a          *Arena
	kick, call int
	next       uint16 // next descriptor / avail index (no reuse)
	used       uint16
}

func (r *ring) setUp(t *testing.T, c *Conn) {
	t.Helper()
	var err error
	if r.kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(r.kick) })
	if r.call, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(r.call) })
	clear(r.a.Bytes())
	for _, step := range []struct {
		name string
		err  error
	}{
		{"SetMemTable", c.SetMemTable([]Region{r.a.TableEntry()})},
		{"SetVringNum", c.SetVringNum(0, qSize)},
		{"SetVringBase", c.SetVringBase(0, 0)},
		{"SetVringAddr", c.SetVringAddr(0, r.a.Addr(descOff), r.a.Addr(usedOff), r.a.Addr(availOff), 0)},
		{"SetVringKick", c.SetVringKick(0, r.kick)},
		{"SetVringCall", c.SetVringCall(0, r.call)},
		{"SetVringEnable", c.SetVringEnable(0, true)},
	} {
		if step.err != nil {
			t.Fatalf("%s: %v", step.name, step.err)
		}
	}
}

// do runs one virtio-blk request (type 0 = IN, 1 = OUT) on data at dataOff
// and returns its status byte.
func (r *ring) do(t *testing.T, typ uint32, sector uint64, n int) byte {
	t.Helper()
	m := r.a.Bytes()
	le := binary.LittleEndian
	i := r.next
	hdr := reqOff + 16*int(i)
	le.PutUint32(m[hdr:], typ)
	le.PutUint64(m[hdr+8:], sector)
	status := statusOff + int(i)
	m[status] = 0xff
	const next, write = 1, 2
	dataFlags := uint16(next)
	if typ == 0 {
		dataFlags |= write
	}
	d := 3 * i % qSize
	for k, desc := range []struct {
		off, len int
		flags    uint16
	}{
		{hdr, 16, next},
		{dataOff, n, dataFlags},
		{status, 1, write},
	} {
		p := descOff + 16*int(d+uint16(k))
		le.PutUint64(m[p:], r.a.Addr(desc.off))
		le.PutUint32(m[p+8:], uint32(desc.len))
		le.PutUint16(m[p+12:], desc.flags)
		le.PutUint16(m[p+14:], d+uint16(k)+1)
	}
	le.PutUint16(m[availOff+4+2*int(i%qSize):], d)
	r.next++
	le.PutUint16(m[availOff+2:], r.next) // publish (the syscall below orders it)
	if _, err := unix.Write(r.kick, le.AppendUint64(nil, 1)); err != nil {
		t.Fatal(err)
	}
	fds := []unix.PollFd{{Fd: int32(r.call), Events: unix.POLLIN}}
	deadline := time.Now().Add(10 * time.Second)
	for le.Uint16(m[usedOff+2:]) == r.used {
		if time.Now().After(deadline) {
			t.Fatalf("request %d not completed in 10s (call eventfd not signalled)", i)
		}
		if _, err := unix.Poll(fds, 100); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		var b [8]byte
		unix.Read(r.call, b[:])
	}
	e := usedOff + 4 + 8*int(r.used%qSize)
	if id := le.Uint32(m[e:]); id != uint32(d) {
		t.Errorf("used id %d, want %d", id, d)
	}
	r.used++
	return m[status]
}

func TestQemuStorageDaemon(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(fmt.Sprint("blk_size=", bs), func(t *testing.T) {
			d := startDaemon(t, bs)
			c := d.dial(t)
			negotiate(t, c, bs)

			a, err := NewArena(arenaSize)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			r := &ring{a: a}
			r.setUp(t, c)

			// A read of block 1 returns the image's bytes: the ring,
			// the request and the buffer were found where we said.
			sector := uint64(bs / 512)
			if st := r.do(t, 0, sector, bs); st != 0 {
				t.Fatalf("read status %d", st)
			}
			if got, want := a.Bytes()[dataOff:dataOff+bs], pattern()[bs:2*bs]; !bytes.Equal(got, want) {
				t.Fatal("read returned other data than the image holds")
			}
			// A write lands in the image file.
			data := a.Bytes()[dataOff : dataOff+bs]
			for i := range data {
				data[i] = 0xa5
			}
			if st := r.do(t, 1, 0, bs); st != 0 {
				t.Fatalf("write status %d", st)
			}
			f, err := os.ReadFile(d.Image)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f[:bs], data) {
				t.Error("written block not in the image")
			}

			// Stop the ring, hang up: the daemon survives and takes a
			// new front-end.
			base, err := c.GetVringBase(0)
			if err != nil || base != 2 {
				t.Fatalf("GetVringBase = %d, %v, want 2", base, err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if !d.Alive() {
				t.Fatalf("daemon exited after a clean disconnect:\n%s", d.LogText())
			}
			c2 := d.dial(t)
			negotiate(t, c2, bs)
			r2 := &ring{a: a}
			r2.setUp(t, c2)
			if st := r2.do(t, 0, 0, bs); st != 0 || !bytes.Equal(a.Bytes()[dataOff:dataOff+bs], data) {
				t.Fatalf("read after reconnect: status %d", st)
			}
			if err := c2.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestQemuStorageDaemonKilled(t *testing.T) {
	d := startDaemon(t, 512)
	c := d.dial(t)
	negotiate(t, c, 512)
	d.Kill()
	start := time.Now()
	_, err := c.GetFeatures()
	var e *Error
	if !errors.Is(err, ErrClosed) || !errors.As(err, &e) || e.Op != "GET_FEATURES" {
		t.Fatalf("GetFeatures after the daemon died: %v, want *Error{GET_FEATURES, ErrClosed}", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to notice", d)
	}
	if err := c.SetVringEnable(0, false); !errors.Is(err, ErrClosed) {
		t.Errorf("next call: %v, want ErrClosed", err)
	}
}
