package virtio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/hw/hwtest"
	"github.com/tarstore/tarstore/internal/qsd"
)

// Tests against a real qemu-storage-daemon vhost-user-blk export.

const qsdImageSize = 32 << 20

func startQSD(t testing.TB, blockSize int) *qsd.Daemon {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := file.Create(img, qsdImageSize); err != nil {
		t.Fatal(err)
	}
	return qsd.Start(t, img, blockSize)
}

// openQSD opens d's device, retrying briefly while the daemon accepts a
// new front-end after the previous one left.
func openQSD(t testing.TB, d *qsd.Daemon, opts Options) *Device {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		dev, err := OpenVhostUser(d.Sock, opts)
		if err == nil {
			return dev
		}
		if time.Now().After(deadline) {
			t.Fatalf("OpenVhostUser: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestVhostUserConformance(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			d := startQSD(t, bs)
			open := func(t *testing.T) hw.Block {
				dev := openQSD(t, d, Options{})
				if got := dev.Info(); got.SectorSize != bs || got.Sectors != uint64(qsdImageSize/bs) || got.Driver != "virtio" {
					t.Fatalf("Info %+v", got)
				}
				return dev
			}
			hwtest.TestDevice(t, hwtest.Harness{
				Open:   open,
				Reopen: func(t *testing.T, _ hw.Block) hw.Block { return open(t) },
			})
		})
	}
}

// TestVhostUserImageBytes checks byte for byte that what the driver writes
// is what the image file holds, at both block sizes, with transfers split
// into several device requests and vectored buffers.
func TestVhostUserImageBytes(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			d := startQSD(t, bs)
			dev := openQSD(t, d, Options{MaxTransfer: 64 << 10})
			defer dev.Close()
			t.Logf("features %#x, info %+v", dev.Features(), dev.Info())
			want := make([]byte, qsdImageSize)
			for i := range want {
				want[i] = byte(i/bs*31 + i%251)
			}
			// Whole image in 1 MiB writes of three buffers each.
			for off := 0; off < len(want); off += 1 << 20 {
				b := want[off : off+1<<20]
				if err := dev.Write(uint64(off/bs), b[:bs], b[bs:1<<19], b[1<<19:]); err != nil {
					t.Fatal(err)
				}
			}
			if err := dev.Flush(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(d.Image)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("image differs from what was written")
			}
			// And the device reads back the whole image.
			back := make([]byte, len(want))
			if err := dev.Read(0, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, want) {
				t.Fatal("read back differs")
			}
		})
	}
}

// TestVhostUserDaemonKilled kills the back-end under concurrent requests:
// every request ends, those that fail with hw.ErrIO; after the daemon is
// back, the next request reconnects and data flushed before the kill is
// intact.
func TestVhostUserDaemonKilled(t *testing.T) {
	d := startQSD(t, 512)
	dev := openQSD(t, d, Options{Timeout: 10 * time.Second})
	defer dev.Close()
	base := bytes.Repeat([]byte("flushed!"), 512)
	if err := dev.Write(0, base); err != nil {
		t.Fatal(err)
	}
	if err := dev.Flush(); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fails, oks int
	for w := range 8 {
		wg.Go(func() {
			buf := bytes.Repeat([]byte{byte(w)}, 64<<10)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				lba := uint64(1024 + w*1024 + i%8*128)
				var err error
				if i%2 == 0 {
					err = dev.Write(lba, buf)
				} else {
					err = dev.Read(lba, buf)
				}
				mu.Lock()
				if err != nil {
					fails++
					if !errors.Is(err, hw.ErrIO) {
						t.Errorf("request failed with %v, want hw.ErrIO", err)
					}
				} else {
					oks++
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	killed := time.Now()
	d.Kill()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests succeeded, %d failed; all ended %v after the kill", oks, fails, time.Since(killed).Round(time.Millisecond))
	if fails == 0 || oks == 0 {
		t.Fatalf("%d ok, %d failed: the kill did not land mid-run", oks, fails)
	}
	err := dev.Read(0, make([]byte, 512))
	if !errors.Is(err, hw.ErrIO) || !errors.Is(err, ErrGone) {
		t.Fatalf("read with the daemon down: %v, want hw.ErrIO and ErrGone", err)
	}
	t.Logf("with the daemon down: %v", err)

	d.Restart(t)
	got := make([]byte, len(base))
	if err := dev.Read(0, got); err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if !bytes.Equal(got, base) {
		t.Fatal("flushed data lost")
	}
}
