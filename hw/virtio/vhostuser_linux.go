package virtio

import "github.com/tarstore/tarstore/hw/virtio/vhostuser"

var _ Transport = (*vhostuser.Transport)(nil)

// OpenVhostUser opens the virtio-blk device of the vhost-user back-end
// listening on the unix socket at path (such as qemu-storage-daemon's
// vhost-user-blk export). After the back-end goes away, the next request
// dials path again.
func OpenVhostUser(path string, opts Options) (*Device, error) {
	return Open(func() (Transport, error) { return vhostuser.DialTransport(path) }, opts)
}
