// Package appliance composes tarstore's parts into the appliance (SPEC §1,
// §5, §6): it is the one place that names concrete drivers. The
// constructors apply like OCaml functors:
//
//	dev   := OpenDevice(cfg, readOnly)        // hw/file today; virtio and NVMe to come
//	clk   := Clock()                          // clock.OpenRTC("/dev/rtc0") or clock.System
//	store := kvtar.New(clk, dev)              // Make_KV_RW(CLOCK)(BLOCK)
//	h     := httpapi.New(store, opts)         // the HTTP API over any kv.RW
//	Serve(ctx, cfg, ...)                      // an http.Server around h
//
// The configuration (appliance/config) names the target; the command line
// (appliance/cli) and PID 1 (boot) call these constructors.
//
// Decisions made here:
//
//   - Only the default disk (nothing named a target: ./tarstore.img) is
//     created on first use, as a 1 GiB sparse image formatted empty. A disk
//     named explicitly must exist, so that a typo does not serve a fresh
//     empty store; `tarstore format` creates one.
//   - The hardware clock is used when /dev/rtc0 exists (the appliance
//     booted as PID 1, where nothing sets the system clock); otherwise the
//     system clock.
//   - --virtio SPEC uses the userspace virtio-blk driver (hw/virtio):
//     vhost-user:SOCKET on a host, pci:BDF or vfio:BDF in the VM; --nvme
//     SPEC the NVMe drivers: pci:BDF or vfio:BDF (hw/nvme, userspace),
//     passthru:/dev/nvme0n1 (hw/nvme/passthru, through the kernel's
//     driver). A spec neither can parse is ErrBadSpec.
//   - A server listening anywhere but loopback requires a token file
//     (ErrNeedToken), as SPEC §6 says. Loopback is decided on addresses,
//     never on names (CheckLoopback): a host name must resolve to loopback
//     addresses only, and the address the listener is bound to must be
//     loopback too.
//   - --tls-cert and --tls-key serve HTTPS (TLS 1.2 or later; LoadTLS),
//     the handshake under the connection limits, so that even a refusal
//     is sent through TLS. A token served over plain HTTP anywhere but
//     loopback is allowed, since a trusted network or a tunnel may carry
//     it, but the banner warns that it crosses the network in clear.
//   - Logs go to the command's stderr as text or JSON (--log-format,
//     LogHandler): server errors always, one line per request with
//     --access-log (httpapi's access log), none by default.
//   - Connections are bounded per client address as well as in all, and a
//     reserve of connections keeps /healthz, /v1/status and /metrics
//     answerable when every slot is taken ("Connection slots", limit.go);
//     request bodies that stall are cut by the handler (httpapi's
//     deadline.go), which frees their slots and locks.
//   - The HTTP API's online check (POST /v1/check) is kvtar's Check
//     (CheckFunc), spaced by the handler (httpapi.CheckPauseFactor)
//     because it blocks writes while it runs. It is not a light route: a
//     reserve connection does not serve it.
package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/file"
	"github.com/tarstore/tarstore/hw/nvme"
	"github.com/tarstore/tarstore/hw/nvme/passthru"
	"github.com/tarstore/tarstore/hw/virtio"
	"github.com/tarstore/tarstore/kvtar"
)

// Version is the appliance's version, reported by /v1/status and `tarstore
// help`. Release builds set it with
// -ldflags "-X github.com/tarstore/tarstore/appliance.Version=v1.2.3".
var Version = "0.1.0-dev"

// DefaultImageSize is the size of the image created on first use.
const DefaultImageSize = 1 << 30

// The drivers this build has, as compile-time proof that they are devices.
var (
	_ hw.Block = (*file.Device)(nil)
	_ hw.Block = (*virtio.Device)(nil)
	_ hw.Block = (*nvme.Device)(nil)
	_ hw.Block = (*passthru.Device)(nil)
)

var (
	// ErrNeedToken: serve was asked to listen on a non-loopback address
	// without a token file.
	ErrNeedToken = errors.New("refusing to listen on a non-loopback address without --token-file")
	// ErrBadToken: the token file cannot be read or holds no token.
	ErrBadToken = errors.New("bad token file")
	// ErrBadSpec: a device spec the appliance cannot parse (--virtio
	// wants vhost-user:SOCKET).
	ErrBadSpec = errors.New("bad device spec")
	// ErrNoImage: the disk does not exist.
	ErrNoImage = errors.New("no such disk image or device")
)

// DeviceError is an error opening the device, with the path or spec.
type DeviceError struct {
	Device string
	Err    error
}

func (e *DeviceError) Error() string { return e.Device + ": " + e.Err.Error() }
func (e *DeviceError) Unwrap() error { return e.Err }

// A deviceKind is one kind of device the appliance keeps its store on: the
// configuration setting that names it, and how it is opened and named for
// humans. Every way to reach a device is one row of deviceKinds; a new
// driver adds one.
type deviceKind struct {
	spec     func(cfg config.Config) string // its value in cfg; "" when not this kind
	describe func(spec string) string       // for humans: the path, "virtio SPEC", ...
	open     func(cfg config.Config, spec string, readOnly bool) (hw.Block, error)
}

// deviceKinds are the kinds of devices, in the order their settings are
// listed.
var deviceKinds = []deviceKind{
	{func(c config.Config) string { return c.Disk }, func(s string) string { return s }, openFile},
	{func(c config.Config) string { return c.Virtio }, func(s string) string { return "virtio " + s }, openVirtio},
	{func(c config.Config) string { return c.NVMe }, func(s string) string { return "nvme " + s }, openNVMe},
}

// deviceOf returns the kind of device cfg names and its spec; false when
// it names none (a remote server, or an empty disk).
func deviceOf(cfg config.Config) (deviceKind, string, bool) {
	for _, k := range deviceKinds {
		if s := k.spec(cfg); s != "" {
			return k, s, true
		}
	}
	return deviceKind{}, "", false
}

// Describe names the target of cfg for humans: the disk path, "virtio
// SPEC" / "nvme SPEC", or the server's URL.
func Describe(cfg config.Config) string {
	if k, s, ok := deviceOf(cfg); ok {
		return k.describe(s)
	}
	return cfg.Remote
}

// OpenDevice opens the block device cfg names, read-only when asked (a
// shared lock, so several readers can run at once but not next to a
// writer). Errors are *DeviceError wrapping ErrBadSpec, ErrNoImage (and
// fs.ErrNotExist), or the driver's *hw.Error (hw.ErrBusy when another
// process holds the device).
func OpenDevice(cfg config.Config, readOnly bool) (hw.Block, error) {
	k, spec, ok := deviceOf(cfg)
	if !ok {
		return nil, &DeviceError{Device: "", Err: fmt.Errorf("%w: no disk configured", ErrNoImage)}
	}
	dev, err := k.open(cfg, spec, readOnly)
	if err != nil {
		return nil, &DeviceError{Device: k.describe(spec), Err: err}
	}
	return dev, nil
}

// openFile opens a disk image or /dev node with hw/file (O_DIRECT).
func openFile(cfg config.Config, path string, readOnly bool) (hw.Block, error) {
	dev, err := file.Open(path, file.Options{ReadOnly: readOnly, SectorSize: cfg.SectorSize})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrNoImage, err)
	}
	return dev, err
}

// openVirtio opens a virtio-blk device with the userspace driver. The spec
// is "vhost-user:SOCKET", a vhost-user-blk back-end's unix socket (such as
// qemu-storage-daemon's export), "pci:BDF", a modern virtio-pci function
// (inside the VM; its BAR through sysfs, DMA memory from huge pages), or
// "vfio:BDF", the same through VFIO with an IOMMU.
func openVirtio(_ config.Config, spec string, readOnly bool) (hw.Block, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	opts := virtio.Options{ReadOnly: readOnly}
	switch {
	case kind == "vhost-user" && arg != "":
		return virtio.OpenVhostUser(arg, opts)
	case kind == "pci" && arg != "":
		return virtio.OpenPCI(arg, opts)
	case kind == "vfio" && arg != "":
		return virtio.OpenVFIO(arg, opts)
	}
	return nil, fmt.Errorf("virtio-blk %q: %w: want vhost-user:SOCKET, pci:BDF or vfio:BDF", spec, ErrBadSpec)
}

// openNVMe opens an NVMe namespace with the userspace driver: "pci:BDF"
// (inside the VM; BAR 0 through sysfs, DMA memory from huge pages),
// "vfio:BDF" (the same through VFIO with an IOMMU), or
// "passthru:/dev/nvme0n1" (the same commands through the kernel's driver,
// NVME_IOCTL_IO_CMD; also /dev/ng0n1). The userspace driver gets a buffer
// pool, so that the store's buffers go to the controller in place, unless
// too few huge pages are reserved for it.
func openNVMe(_ config.Config, spec string, readOnly bool) (hw.Block, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	opts := nvme.Options{ReadOnly: readOnly, PoolSize: nvme.DefaultPoolSize}
	switch {
	case kind == "pci" && arg != "":
		return nvme.OpenPCI(arg, opts)
	case kind == "vfio" && arg != "":
		return nvme.OpenVFIO(arg, opts)
	case kind == "passthru" && arg != "":
		return passthru.Open(arg, passthru.Options{ReadOnly: readOnly})
	}
	return nil, fmt.Errorf("NVMe %q: %w: want pci:BDF, vfio:BDF or passthru:/dev/NODE", spec, ErrBadSpec)
}

// Clock returns the wall clock for the store: the hardware RTC when
// /dev/rtc0 can be read, the system clock otherwise.
func Clock() clock.PClock {
	if _, err := os.Stat(clock.DefaultRTC); err == nil {
		if rtc, err := clock.OpenRTC(clock.DefaultRTC); err == nil {
			return rtc
		}
	}
	return clock.System{}
}

// OpenStore opens the store on the device cfg names: kvtar.New(Clock(),
// OpenDevice(cfg, readOnly)). A writable open recovers from a crash first.
func OpenStore(cfg config.Config, readOnly bool) (*kvtar.Store, error) {
	dev, err := OpenDevice(cfg, readOnly)
	if err != nil {
		return nil, err
	}
	s, err := kvtar.New(Clock(), dev)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return s, nil
}

// RepairStore repairs the store on cfg's device (kvtar.Repair: damage
// before the end of the archive becomes free space, values whose data
// fails its CRC are removed) and returns what it repaired.
func RepairStore(cfg config.Config) ([]kvtar.Problem, error) {
	dev, err := OpenDevice(cfg, false)
	if err != nil {
		return nil, err
	}
	return kvtar.Repair(Clock(), dev)
}

// CreateImage creates a sparse image file of size bytes at path (which
// must not exist) and formats it as an empty store. On failure the file is
// removed again.
func CreateImage(path string, size int64, sectorSize int) error {
	if err := file.Create(path, size); err != nil {
		return err
	}
	dev, err := file.Open(path, file.Options{SectorSize: sectorSize})
	if err == nil {
		err = kvtar.Format(dev)
		if cerr := dev.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// EnsureDefaultImage creates the default image (DefaultImageSize, sparse,
// formatted) when nothing named a target and it does not exist yet. It
// reports whether it created it.
func EnsureDefaultImage(cfg config.Config) (bool, error) {
	if !cfg.DefaultTarget() {
		return false, nil
	}
	if _, err := os.Stat(cfg.Disk); !errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err := CreateImage(cfg.Disk, DefaultImageSize, cfg.SectorSize); err != nil {
		return false, err
	}
	return true, nil
}

// StatusFunc returns the status of store s for the HTTP API and `df`.
func StatusFunc(s *kvtar.Store) func() (httpapi.Status, error) {
	return func() (httpapi.Status, error) {
		info, err := s.Stat()
		if err != nil {
			return httpapi.Status{}, err
		}
		return Status(info), nil
	}
}

// CheckFunc returns the online check of store s for the HTTP API
// (httpapi.Options.Check, POST /v1/check): s.Check, then the counts of
// s.Stat, taken just after it. The check blocks s's writes while it runs
// (kvtar's Check); the handler spaces checks (httpapi.CheckPauseFactor).
func CheckFunc(s *kvtar.Store) func() (httpapi.CheckReport, error) {
	return func() (httpapi.CheckReport, error) {
		ps, err := s.Check()
		if err != nil {
			return httpapi.CheckReport{}, err
		}
		info, err := s.Stat()
		if err != nil {
			return httpapi.CheckReport{}, err
		}
		rep := httpapi.CheckReport{Problems: make([]httpapi.CheckProblem, 0, len(ps)),
			Values: info.Values, End: info.End, Capacity: info.Size, Free: info.Free}
		for _, p := range ps {
			rep.Problems = append(rep.Problems, httpapi.NewCheckProblem(p.Offset, p.Name, p.What, p.Fatal))
		}
		return rep, nil
	}
}

// Status converts a store's Info into the API's Status.
func Status(info kvtar.Info) httpapi.Status {
	d := info.Device
	return httpapi.Status{
		Version:     Version,
		Capacity:    info.Size,
		Free:        info.Free,
		Largest:     info.Largest,
		Entries:     info.Values,
		ReadOnly:    d.ReadOnly || info.WhyReadOnly != "",
		WhyReadOnly: info.WhyReadOnly,
		Damage:      info.Damage,
		Device: httpapi.DeviceStatus{
			Driver:     d.Driver,
			Model:      d.Model,
			Serial:     d.Serial,
			SectorSize: d.SectorSize,
			Sectors:    d.Sectors,

			MaxTransfer:  d.MaxTransfer,
			QueueDepth:   d.QueueDepth,
			WriteThrough: d.WriteThrough,
		},
	}
}
