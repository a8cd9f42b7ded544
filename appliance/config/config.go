// Package config is the appliance's one configuration parser (SPEC §5, §7):
// every setting of the tarstore command comes from four layers, and the
// first layer that sets it wins:
//
//  1. command-line flags (--disk PATH, --listen=ADDR, ...), collected by the
//     command line parser and handed over as Sources.Flags;
//  2. the environment (TARSTORE_DISK, TARSTORE_LISTEN, TARSTORE_URL, ...);
//  3. the kernel command line (tarstore.disk=... tarstore.listen=...), which
//     the appliance reads from /proc/cmdline only when it runs as PID 1
//     (KernelCmdline), since on a host the kernel's parameters describe the
//     host, not this process;
//  4. the defaults (disk ./tarstore.img, listen 127.0.0.1:7070).
//
// The settings and all their spellings are the table Settings. An empty
// value counts as set (TARSTORE_TOKEN_FILE= clears a token file given by
// the kernel command line), except that an empty environment variable or
// kernel key for the target (below) counts as unset, so that exporting
// TARSTORE_URL= does not switch the command to a remote nobody named.
//
// The target — what the command works on — is one choice among --disk,
// --virtio, --nvme and --remote (TARSTORE_URL). The precedence applies to
// the choice as a whole: the highest layer that names any target decides,
// and naming two targets in that layer is an error. So `--disk x.img` on
// the command line overrides TARSTORE_URL in the environment, and with
// nothing named anywhere the target is the default disk.
//
// Kernel command line parameters are separated by spaces; a value may be
// quoted with double quotes (tarstore.disk="/dev/disk/by-id/my disk"), as
// the kernel's own parser allows. Parameters not starting with "tarstore."
// are ignored, and so are unknown tarstore.* keys (the kernel passes
// everything it does not know to init, and a typo must not stop the
// appliance from booting); dashes and underscores are interchangeable in
// the key names (tarstore.token_file = tarstore.token-file). Unknown
// TARSTORE_* variables are ignored too; unknown flags are the command line
// parser's business.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Layer is where a setting's value came from, from the weakest to the
// strongest.
type Layer int

const (
	Default Layer = iota // the built-in default
	Kernel               // the kernel command line
	Env                  // the environment
	Flag                 // the command line
)

func (l Layer) String() string {
	switch l {
	case Kernel:
		return "kernel command line"
	case Env:
		return "environment"
	case Flag:
		return "command line"
	}
	return "default"
}

// Setting is one configuration key in all its spellings.
type Setting struct {
	Name    string // the flag, without "--": "disk"
	Env     string // the environment variable: "TARSTORE_DISK"
	Kernel  string // the kernel command line key: "tarstore.disk"
	Default string
	Bool    bool   // a switch: --read-only, --read-only=false, TARSTORE_READ_ONLY=1
	Arg     string // what the value is, for help: "PATH"
	Help    string
}

// The names of the settings.
const (
	Disk       = "disk"
	Virtio     = "virtio"
	NVMe       = "nvme"
	Remote     = "remote"
	Listen     = "listen"
	TokenFile  = "token-file"
	ReadOnly   = "read-only"
	SectorSize = "sector-size"
	MaxConns   = "max-conns"
	// MaxConnsPerIP: 0 = a quarter of MaxConns (at least 1).
	MaxConnsPerIP = "max-conns-per-ip"
	TLSCert       = "tls-cert"
	TLSKey        = "tls-key"
	CACert        = "ca-cert"
	AccessLog     = "access-log"
	LogFormat     = "log-format"
)

// Log formats (LogFormat).
const (
	LogText = "text"
	LogJSON = "json"
)

// Defaults.
const (
	DefaultDisk     = "./tarstore.img"
	DefaultListen   = "127.0.0.1:7070"
	DefaultMaxConns = 64
)

// Settings is the table of every setting. The command line parser offers a
// flag for each.
var Settings = []Setting{
	{Name: Disk, Env: "TARSTORE_DISK", Kernel: "tarstore.disk", Default: DefaultDisk, Arg: "PATH",
		Help: "disk image or block device to work on (embedded mode)"},
	{Name: Virtio, Env: "TARSTORE_VIRTIO", Kernel: "tarstore.virtio", Arg: "SPEC",
		Help: "virtio-blk device for the userspace driver: vhost-user:SOCKET (a vhost-user-blk back-end such as qemu-storage-daemon), pci:BDF or vfio:BDF (a modern virtio-pci function in the VM)"},
	{Name: NVMe, Env: "TARSTORE_NVME", Kernel: "tarstore.nvme", Arg: "SPEC",
		Help: "NVMe namespace 1 for the userspace driver: pci:BDF or vfio:BDF (an NVMe function in the VM)"},
	{Name: Remote, Env: "TARSTORE_URL", Kernel: "tarstore.url", Arg: "URL",
		Help: "work through a running server at URL (http://HOST:PORT) instead of a disk"},
	{Name: Listen, Env: "TARSTORE_LISTEN", Kernel: "tarstore.listen", Default: DefaultListen, Arg: "ADDR",
		Help: "address serve listens on (HOST:PORT; port 0 picks a free one)"},
	{Name: TokenFile, Env: "TARSTORE_TOKEN_FILE", Kernel: "tarstore.token-file", Arg: "FILE",
		Help: "file holding the bearer token: serve requires it, clients send it"},
	{Name: ReadOnly, Env: "TARSTORE_READ_ONLY", Kernel: "tarstore.read-only", Default: "false", Bool: true,
		Help: "open the disk read-only: writes fail with read_only (exit 11)"},
	{Name: SectorSize, Env: "TARSTORE_SECTOR_SIZE", Kernel: "tarstore.sector-size", Default: "0", Arg: "BYTES",
		Help: "sector size to present for an image file (512, 4096, ...); 0 detects it"},
	{Name: MaxConns, Env: "TARSTORE_MAX_CONNS", Kernel: "tarstore.max-conns", Default: strconv.Itoa(DefaultMaxConns), Arg: "N",
		Help: "most HTTP connections serve keeps open at once"},
	{Name: MaxConnsPerIP, Env: "TARSTORE_MAX_CONNS_PER_IP", Kernel: "tarstore.max-conns-per-ip", Default: "0", Arg: "N",
		Help: "most of them from one client IP address; 0 = a quarter of max-conns (raise it when clients share an address, as behind QEMU's user networking)"},
	{Name: TLSCert, Env: "TARSTORE_TLS_CERT", Kernel: "tarstore.tls-cert", Arg: "FILE",
		Help: "serve HTTPS with this PEM certificate (chain); needs --tls-key"},
	{Name: TLSKey, Env: "TARSTORE_TLS_KEY", Kernel: "tarstore.tls-key", Arg: "FILE",
		Help: "the PEM private key of --tls-cert"},
	{Name: CACert, Env: "TARSTORE_CA_CERT", Kernel: "tarstore.ca-cert", Arg: "FILE",
		Help: "clients of an https:// server trust the PEM certificates in FILE (its CA, or its self-signed certificate) instead of the system's"},
	{Name: AccessLog, Env: "TARSTORE_ACCESS_LOG", Kernel: "tarstore.access-log", Default: "false", Bool: true,
		Help: "serve writes one line per request to stderr: method, key, status, bytes, duration, client"},
	{Name: LogFormat, Env: "TARSTORE_LOG_FORMAT", Kernel: "tarstore.log-format", Default: LogText, Arg: "text|json",
		Help: "format of serve's log lines (access log and errors): text (key=value) or json (one object a line)"},
}

// Lookup returns the setting called name.
func Lookup(name string) (Setting, bool) {
	for _, s := range Settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// Sources are the inputs of Load, one per layer (the defaults are built in).
type Sources struct {
	// Flags holds the settings given on the command line, by setting name
	// ("disk"), with their values as written; a switch given bare
	// (--read-only) has the value "true".
	Flags map[string]string
	// LookupEnv reads the environment; nil means an empty environment.
	// Main passes os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Cmdline is the kernel command line, "" when it does not apply (see
	// KernelCmdline).
	Cmdline string
}

// Config is the resolved configuration.
type Config struct {
	Disk       string // the disk image or block device, when the target is a disk
	Virtio     string // the virtio-blk device spec, when the target is one
	NVMe       string // the NVMe device spec, when the target is one
	Remote     string // the server's base URL, when the target is a server
	Listen     string // HOST:PORT for serve
	TokenFile  string // "" for none
	ReadOnly   bool
	SectorSize int // 0: detect
	MaxConns   int
	// MaxConnsPerIP bounds the connections of one client address; 0 = a
	// quarter of MaxConns (PerIP).
	MaxConnsPerIP int
	// TLSCert and TLSKey are the PEM files serve's HTTPS uses; both or
	// neither are set.
	TLSCert, TLSKey string
	// CACert is the PEM file of certificates a client trusts for an
	// https:// server; "" for the system's.
	CACert    string
	AccessLog bool   // serve logs every request
	LogFormat string // LogText or LogJSON

	// From tells where each setting's value came from, by setting name.
	From map[string]Layer
}

// Error is a configuration error: a bad value, or conflicting targets. The
// command line reports it as a usage error.
type Error struct {
	Setting string // the setting name
	Layer   Layer
	Source  string // how the user spelled it: "--disk", "TARSTORE_URL", "tarstore.url"
	Msg     string
}

func (e *Error) Error() string { return e.Source + ": " + e.Msg }

// targets are the settings that name what the command works on.
var targets = []string{Disk, Virtio, NVMe, Remote}

// Load resolves the configuration from src (see the package doc for the
// precedence).
func Load(src Sources) (Config, error) {
	kernel := ParseCmdline(src.Cmdline)
	type found struct {
		val   string
		layer Layer
		spell string
	}
	pick := func(s Setting) found {
		if v, ok := src.Flags[s.Name]; ok {
			return found{v, Flag, "--" + s.Name}
		}
		if src.LookupEnv != nil {
			if v, ok := src.LookupEnv(s.Env); ok {
				return found{v, Env, s.Env}
			}
		}
		if v, ok := kernel[normalize(s.Kernel)]; ok {
			return found{v, Kernel, s.Kernel}
		}
		return found{s.Default, Default, "default " + s.Name}
	}

	// The target: the strongest layer naming one decides.
	cfg := Config{From: map[string]Layer{}}
	var chosen []found
	var names []string
	for layer := Flag; layer > Default && chosen == nil; layer-- {
		for _, name := range targets {
			s, _ := Lookup(name)
			var v string
			var ok bool
			var spell string
			switch layer {
			case Flag:
				v, ok = src.Flags[name]
				spell = "--" + name
			case Env:
				if src.LookupEnv != nil {
					v, ok = src.LookupEnv(s.Env)
				}
				ok = ok && v != ""
				spell = s.Env
			case Kernel:
				v, ok = kernel[normalize(s.Kernel)]
				ok = ok && v != ""
				spell = s.Kernel
			}
			if ok {
				chosen = append(chosen, found{v, layer, spell})
				names = append(names, name)
			}
		}
	}
	if len(chosen) > 1 {
		spells := make([]string, len(chosen))
		for i, c := range chosen {
			spells[i] = c.spell
		}
		return Config{}, &Error{Setting: names[0], Layer: chosen[0].layer, Source: strings.Join(spells, ", "),
			Msg: "name one target only (a disk, a virtio or NVMe device, or a remote server)"}
	}
	if len(chosen) == 0 {
		chosen = []found{{DefaultDisk, Default, "default disk"}}
		names = []string{Disk}
	}
	t := chosen[0]
	if t.val == "" {
		return Config{}, &Error{Setting: names[0], Layer: t.layer, Source: t.spell, Msg: "empty value"}
	}
	cfg.From[names[0]] = t.layer
	switch names[0] {
	case Disk:
		cfg.Disk = t.val
	case Virtio:
		cfg.Virtio = t.val
	case NVMe:
		cfg.NVMe = t.val
	case Remote:
		u, err := url.Parse(t.val)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, &Error{Setting: Remote, Layer: t.layer, Source: t.spell,
				Msg: fmt.Sprintf("%q is not an http:// or https:// URL with a host", t.val)}
		}
		cfg.Remote = strings.TrimRight(t.val, "/")
	}

	// The other settings, each on its own.
	spells := map[string]string{}
	for _, s := range Settings {
		if isTarget(s.Name) {
			continue
		}
		f := pick(s)
		cfg.From[s.Name] = f.layer
		spells[s.Name] = f.spell
		bad := func(msg string) error {
			return &Error{Setting: s.Name, Layer: f.layer, Source: f.spell, Msg: msg}
		}
		switch s.Name {
		case Listen:
			if _, _, err := net.SplitHostPort(f.val); err != nil {
				return Config{}, bad(fmt.Sprintf("%q is not HOST:PORT", f.val))
			}
			cfg.Listen = f.val
		case TokenFile:
			cfg.TokenFile = f.val
		case ReadOnly:
			b, err := ParseBool(f.val)
			if err != nil {
				return Config{}, bad(err.Error())
			}
			cfg.ReadOnly = b
		case SectorSize:
			n, err := strconv.Atoi(f.val)
			if err != nil || n < 0 || n%512 != 0 {
				return Config{}, bad(fmt.Sprintf("%q is not 0 or a multiple of 512", f.val))
			}
			cfg.SectorSize = n
		case MaxConns:
			n, err := strconv.Atoi(f.val)
			if err != nil || n < 1 {
				return Config{}, bad(fmt.Sprintf("%q is not a positive number", f.val))
			}
			cfg.MaxConns = n
		case MaxConnsPerIP:
			n, err := strconv.Atoi(f.val)
			if err != nil || n < 0 {
				return Config{}, bad(fmt.Sprintf("%q is not 0 or a positive number", f.val))
			}
			cfg.MaxConnsPerIP = n
		case TLSCert:
			cfg.TLSCert = f.val
		case TLSKey:
			cfg.TLSKey = f.val
		case CACert:
			cfg.CACert = f.val
		case AccessLog:
			b, err := ParseBool(f.val)
			if err != nil {
				return Config{}, bad(err.Error())
			}
			cfg.AccessLog = b
		case LogFormat:
			if f.val != LogText && f.val != LogJSON {
				return Config{}, bad(fmt.Sprintf("%q is not text or json", f.val))
			}
			cfg.LogFormat = f.val
		}
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		name, other := TLSCert, TLSKey
		if cfg.TLSCert == "" {
			name, other = TLSKey, TLSCert
		}
		return Config{}, &Error{Setting: name, Layer: cfg.From[name], Source: spells[name],
			Msg: "needs " + other + " too (a certificate and its key)"}
	}
	return cfg, nil
}

// TLS reports whether serve serves HTTPS.
func (c Config) TLS() bool { return c.TLSCert != "" }

func isTarget(name string) bool {
	for _, t := range targets {
		if t == name {
			return true
		}
	}
	return false
}

// PerIP is the number of connections one client address may hold:
// MaxConnsPerIP, or a quarter of MaxConns (at least 1) when it is 0, and
// never more than MaxConns.
func (c Config) PerIP() int {
	n := c.MaxConnsPerIP
	if n == 0 {
		n = max(c.MaxConns/4, 1)
	}
	return min(n, max(c.MaxConns, 1))
}

// IsRemote reports whether the target is a server.
func (c Config) IsRemote() bool { return c.Remote != "" }

// DefaultTarget reports whether nothing named a target, so that the disk is
// the default one (which serve creates on first use).
func (c Config) DefaultTarget() bool {
	return c.Disk != "" && c.From[Disk] == Default
}

// ParseBool parses a switch value: 1/0, true/false, yes/no, on/off, in any
// case; the empty string is false.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "", "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// ParseCmdline returns the tarstore.* parameters of a kernel command line,
// keyed by their name with underscores turned into dashes. A parameter
// without "=" is a switch set to "true". A later parameter overrides an
// earlier one, as it does for the kernel.
func ParseCmdline(s string) map[string]string {
	out := map[string]string{}
	for _, p := range splitCmdline(s) {
		k, v, ok := strings.Cut(p, "=")
		if !strings.HasPrefix(k, "tarstore.") {
			continue
		}
		if !ok {
			v = "true"
		}
		out[normalize(k)] = v
	}
	return out
}

func normalize(k string) string { return strings.ReplaceAll(k, "_", "-") }

// splitCmdline splits a kernel command line into parameters the way the
// kernel's next_arg does: on spaces, with double quotes grouping (and
// removed), so both "a=b c" and a="b c" are one parameter.
func splitCmdline(s string) []string {
	var out []string
	var b strings.Builder
	inQuote, any := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			any = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if any {
				out = append(out, b.String())
				b.Reset()
				any = false
			}
		default:
			b.WriteRune(r)
			any = true
		}
	}
	if any {
		out = append(out, b.String())
	}
	return out
}

// KernelCmdline returns the kernel command line when the process is PID 1
// (the appliance booted as init), and "" otherwise.
func KernelCmdline() string {
	if os.Getpid() != 1 {
		return ""
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// IsConfigError reports whether err is a configuration error.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
