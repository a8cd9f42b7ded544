package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/boot/netconf"
)

// A Step is one duty of PID 1.
type Step struct {
	Name  string
	Fatal bool // a failure powers the machine off
	Run   func(b *Booter) error
}

// Steps are PID 1's duties, in order (see the package doc).
var Steps = []Step{
	{"mount /proc", true, func(b *Booter) error { return mount("proc", "/proc", "proc") }},
	{"probe", true, (*Booter).probe},
	{"mount /sys", true, func(b *Booter) error { return mount("sysfs", "/sys", "sysfs") }},
	{"mount /dev", true, func(b *Booter) error { return mount("devtmpfs", "/dev", "devtmpfs") }},
	{"mount /tmp and /run", true, func(b *Booter) error {
		return errors.Join(mount("tmpfs", "/tmp", "tmpfs"), mount("tmpfs", "/run", "tmpfs"))
	}},
	{"signals", true, (*Booter).signals},
	{"reap children", true, func(b *Booter) error { return reapChildren() }},
	{"claim devices", true, (*Booter).claim},
	{"load modules", false, func(b *Booter) error { return loadModules(ModulesList, b.Console) }},
	{"network", true, (*Booter).network},
	{"token", false, (*Booter).token},
	{"tls", true, (*Booter).tls},
	{"disk", true, (*Booter).disk},
	{"device benchmark", true, (*Booter).devbench},
	{"serve", true, (*Booter).serve},
}

// Where PID 1 finds and puts things.
const (
	// ModulesList lists the modules to load, one absolute path per line,
	// in load order (written by boot/initramfs).
	ModulesList = "/etc/tarstore/modules.load"
	// TokenFwCfg is the fw_cfg file QEMU passes a bearer token in.
	TokenFwCfg = "/sys/firmware/qemu_fw_cfg/by_name/opt/tarstore/token/raw"
	// TokenFile is where PID 1 keeps that token for the server.
	TokenFile = "/run/tarstore/token"
	// TLSCertFwCfg and TLSKeyFwCfg are the fw_cfg files QEMU passes the
	// PEM certificate (chain) and private key of HTTPS in.
	TLSCertFwCfg = "/sys/firmware/qemu_fw_cfg/by_name/opt/tarstore/tls-cert/raw"
	TLSKeyFwCfg  = "/sys/firmware/qemu_fw_cfg/by_name/opt/tarstore/tls-key/raw"
	// TLSCertFile and TLSKeyFile are where PID 1 keeps them for the
	// server (the key with mode 0600).
	TLSCertFile = "/run/tarstore/tls-cert.pem"
	TLSKeyFile  = "/run/tarstore/tls-key.pem"
	// DefaultListen is where the appliance listens unless tarstore.listen=
	// says otherwise: every interface, since QEMU's port forward reaches
	// the guest on its NIC's address.
	DefaultListen = "0.0.0.0:7070"
)

// DiskWait bounds the wait for the disk's device node to appear.
const DiskWait = 5 * time.Second

// DefaultDisks are the device nodes tried, in order, when the kernel
// command line names no disk.
var DefaultDisks = []string{"/dev/vda", "/dev/nvme0n1"}

// A Booter runs the steps. Its fields are what the steps share.
type Booter struct {
	// Console receives every line PID 1 prints (the kernel gives /init
	// /dev/console as its standard output).
	Console io.Writer
	// Cmdline is the kernel command line, read once /proc is mounted.
	Cmdline string
	// params are tarstore.* parameters the steps add in front of the
	// kernel command line (defaults: the command line overrides them) or
	// after it (what the steps decided).
	defaults, decided []string
	// ctx ends on SIGINT and SIGTERM.
	ctx    context.Context
	cancel context.CancelFunc
}

// Main runs the steps and powers off; it never returns.
func Main() {
	b := &Booter{Console: os.Stdout}
	err := b.Run(Steps)
	if err != nil {
		fmt.Fprintf(b.Console, "tarstore: boot: %v; powering off\n", err)
	} else {
		fmt.Fprintln(b.Console, "tarstore: powering off")
	}
	powerOff()
}

// A StepError is the failure of a fatal step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Run runs steps in order: it returns the first fatal step's failure
// (a *StepError), after printing a warning for each step that is not
// fatal and failed. A panic in a step is that step's failure.
func (b *Booter) Run(steps []Step) error {
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	for _, st := range steps {
		err := runStep(b, st)
		if err == nil {
			continue
		}
		if errors.Is(err, errDone) {
			return nil
		}
		if st.Fatal {
			return &StepError{st.Name, err}
		}
		fmt.Fprintf(b.Console, "tarstore: boot: %s: %v (going on)\n", st.Name, err)
	}
	return nil
}

// runStep runs one step, turning a panic into its error.
func runStep(b *Booter, st Step) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return st.Run(b)
}

// params returns the tarstore.* parameters in force: the command line's,
// over the defaults, under what the steps decided.
func (b *Booter) params() map[string]string { return config.ParseCmdline(b.cmdline()) }

// cmdline is the kernel command line with the steps' defaults before it
// and their decisions after it (a later parameter wins).
func (b *Booter) cmdline() string {
	return strings.Join(append(append(append([]string{}, b.defaults...), b.Cmdline), b.decided...), " ")
}

// errDone ends the boot early, with no error: a step did all there was to
// do.
var errDone = errors.New("done")

// probe ends a probe boot.
func (b *Booter) probe() error {
	b.Cmdline = readCmdline()
	if _, ok := b.params()["tarstore.probe"]; ok {
		fmt.Fprintln(b.Console, "tarstore: probe boot ok")
		return errDone
	}
	return nil
}

// network brings up lo and the NIC.
func (b *Booter) network() error {
	cfg, err := netconf.ParseConfig(b.params()["tarstore.ip"])
	if err != nil {
		return fmt.Errorf("tarstore.ip: %w", err)
	}
	if err := netconf.Configure(cfg); err != nil {
		return err
	}
	fmt.Fprintf(b.Console, "tarstore: network up: %s via %s\n", cfg.Addr, cfg.Gateway)
	return nil
}

// token takes the bearer token from fw_cfg, when QEMU passed one.
func (b *Booter) token() error {
	ok, err := copyFwCfg(TokenFwCfg, TokenFile, 0o600)
	if ok {
		b.decided = append(b.decided, "tarstore.token-file="+TokenFile)
	}
	return err
}

// ErrHalfTLS is the "tls" step's error when QEMU passed only one of the
// certificate and the key.
var ErrHalfTLS = errors.New("fw_cfg holds one of opt/tarstore/tls-cert and opt/tarstore/tls-key without the other: pass both (scripts/qemu/run --tls-cert F --tls-key F)")

// tls takes HTTPS's certificate and key from fw_cfg, when QEMU passed
// them. It is fatal: serving plain HTTP when HTTPS was asked for would
// send the token in clear.
func (b *Booter) tls() error {
	return b.tlsFrom(TLSCertFwCfg, TLSKeyFwCfg, TLSCertFile, TLSKeyFile)
}

// tlsFrom is tls with the certificate and key read from certSrc and
// keySrc, kept in certDst and keyDst.
func (b *Booter) tlsFrom(certSrc, keySrc, certDst, keyDst string) error {
	cert, err := copyFwCfg(certSrc, certDst, 0o644)
	if err != nil {
		return err
	}
	key, err := copyFwCfg(keySrc, keyDst, 0o600)
	if err != nil {
		return err
	}
	if cert != key {
		return ErrHalfTLS
	}
	if cert {
		b.decided = append(b.decided, "tarstore.tls-cert="+certDst, "tarstore.tls-key="+keyDst)
	}
	return nil
}

// copyFwCfg copies the fw_cfg file src, when QEMU passed it, to dst (on
// /run's tmpfs) with mode perm, and reports whether there was one.
func copyFwCfg(src, dst string, perm os.FileMode) (bool, error) {
	data, err := os.ReadFile(src)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return false, err
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		return false, err
	}
	return true, nil
}

// disk waits for the disk the command line names, or finds a default one.
func (b *Booter) disk() error {
	p := b.params()
	for _, key := range []string{"tarstore.virtio", "tarstore.nvme"} {
		if spec := p[key]; spec != "" {
			// A userspace driver's device: the driver finds it; through
			// the kernel's passthrough, its node must appear first.
			if kind, node, _ := strings.Cut(spec, ":"); kind == "passthru" && strings.HasPrefix(node, "/dev/") && waitFor(DiskWait, node) == "" {
				return fmt.Errorf("%s did not appear within %v: is the disk attached, and its driver in the image?", node, DiskWait)
			}
			return nil
		}
	}
	if d := p["tarstore.disk"]; d != "" {
		if !strings.HasPrefix(d, "/dev/") {
			return nil
		}
		if waitFor(DiskWait, d) == "" {
			return fmt.Errorf("%s did not appear within %v: is the disk attached, and its driver in the image?", d, DiskWait)
		}
		return nil
	}
	d := waitFor(DiskWait, DefaultDisks...)
	if d == "" {
		return fmt.Errorf("no disk: none of %s appeared within %v (attach one as virtio-blk or NVMe, or name it with tarstore.disk=)",
			strings.Join(DefaultDisks, ", "), DiskWait)
	}
	b.decided = append(b.decided, "tarstore.disk="+d)
	return nil
}

// waitFor returns the first of paths that exists, polling until wait has
// passed; "" when none appeared.
func waitFor(wait time.Duration, paths ...string) string {
	deadline := time.Now().Add(wait)
	for {
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serve serves the store until a graceful shutdown.
func (b *Booter) serve() error {
	if up, ok := uptime(); ok {
		fmt.Fprintf(b.Console, "tarstore: booted %.2f s after the kernel started; opening the store\n", up.Seconds())
	}
	b.defaults = append(b.defaults, "tarstore.listen="+DefaultListen)
	cfg, err := config.Load(config.Sources{Cmdline: b.cmdline()})
	if err != nil {
		return err
	}
	return appliance.Serve(b.ctx, cfg, appliance.ServeOptions{Log: b.Console, Shutdown: true})
}
