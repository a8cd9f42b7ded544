//go:build linux

package kvtar

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/virtio"
	"github.com/tarstore/tarstore/internal/qsd"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// TestConformanceVhostUser runs the conformance suite on stores kept
// through the userspace virtio-blk driver on a qemu-storage-daemon
// vhost-user-blk export of an image file (one daemon per fresh store), at
// both logical block sizes; the harness's check reads the image file.
func TestConformanceVhostUser(t *testing.T) {
	t.Parallel()
	for _, bs := range []int{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			var mu sync.Mutex
			daemons := map[string]*qsd.Daemon{}
			kvtest.TestRW(t, deviceHarness(func(t *testing.T) string {
				img := newImage(t, conformanceImageSize)
				d := qsd.Start(t, img, bs)
				mu.Lock()
				daemons[img] = d
				mu.Unlock()
				return img
			}, func(t *testing.T, img string) (hw.Block, error) {
				mu.Lock()
				d := daemons[img]
				mu.Unlock()
				// After a reopen the daemon takes a moment to accept a
				// new front-end.
				deadline := time.Now().Add(5 * time.Second)
				for {
					dev, err := virtio.OpenVhostUser(d.Sock, virtio.Options{})
					if err == nil || time.Now().After(deadline) {
						return dev, err
					}
					time.Sleep(10 * time.Millisecond)
				}
			}, bs))
		})
	}
}
