package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tarstore/tarstore/appliance/config"
	"github.com/tarstore/tarstore/appliance/httpapi"
)

// Limits of the HTTP server (SPEC §6: headers and connections are bounded,
// slow clients time out). Request bodies are bounded by the handler, and
// cut when they stall (httpapi.Options.BodyTimeout, MinBodyRate);
// connections by LimitConns.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
	// ShutdownTimeout is how long a graceful shutdown waits for requests
	// in flight before it closes their connections.
	ShutdownTimeout = 30 * time.Second
)

// ServeOptions are the process-level parts of Serve.
type ServeOptions struct {
	// Log receives the "serving" line, the shutdown line and the
	// handler's log (the command's stderr).
	Log io.Writer
	// Ready, when set, is called with the listening address once the
	// server accepts connections.
	Ready func(addr net.Addr)
	// Resolver resolves the host of cfg.Listen to decide whether it is
	// loopback only; nil is net.DefaultResolver.
	Resolver Resolver
	// BodyTimeout and MinBodyRate bound request bodies (httpapi.Options);
	// zero for the defaults.
	BodyTimeout time.Duration
	MinBodyRate int64
	// Shutdown enables POST /v1/shutdown, which ends Serve as ctx would
	// (the appliance booted as PID 1 enables it: it is how it is stopped
	// from outside the VM).
	Shutdown bool
}

// Serve opens the store cfg names (creating the default image on first
// use), serves the HTTP API on cfg.Listen until ctx is done, then shuts down
// gracefully: it stops accepting, waits up to ShutdownTimeout for requests
// in flight, and closes the store, which flushes the device. It prints one
// line "tarstore: serving DISK on http://ADDR" (https:// with TLS) to
// opts.Log when it is ready (ADDR is the real address, so port 0 is
// usable). The steps, in order:
//
//  1. read the token file, if any; without one, refuse an address that is
//     not loopback only (CheckLoopback, on resolved addresses), before and
//     again after listening;
//  2. load the TLS certificate and key, if cfg names them (ErrBadTLS);
//  3. create the default image if it is missing (EnsureDefaultImage);
//  4. open the device and the store (OpenStore; read-only with
//     cfg.ReadOnly), which recovers from a crash;
//  5. listen — with TLS, the handshake on each connection's first read or
//     write — at most cfg.MaxConns connections at once and cfg.PerIP()
//     from one address, plus DefaultReserveConns for the light routes
//     (LimitConns, ReserveHandler);
//  6. remove what interrupted chunked uploads left in the store
//     (httpapi.Handler.ClearUploads);
//  7. serve httpapi.New(store) with the timeouts above and the body
//     deadlines of opts, logging in cfg.LogFormat to opts.Log: errors, and
//     every request with cfg.AccessLog (httpapi's access.go). A token
//     served over plain HTTP off loopback is warned about in the banner:
//     it crosses the network in clear.
func Serve(ctx context.Context, cfg config.Config, opts ServeOptions) error {
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	if cfg.IsRemote() {
		return fmt.Errorf("serve needs a disk, not a remote server (%s)", cfg.Remote)
	}
	token := ""
	if cfg.TokenFile != "" {
		t, err := ReadToken(cfg.TokenFile)
		if err != nil {
			return err
		}
		token = t
	}
	loopback := CheckLoopback(ctx, opts.Resolver, cfg.Listen)
	if token == "" && loopback != nil {
		return needToken(cfg.Listen, loopback)
	}
	tlsConf, err := LoadTLS(cfg)
	if err != nil {
		return err
	}
	if _, err := EnsureDefaultImage(cfg); err != nil {
		return &DeviceError{Device: cfg.Disk, Err: err}
	}
	store, err := OpenStore(cfg, cfg.ReadOnly)
	if err != nil {
		return err
	}
	closeStore := func() error {
		if err := store.Close(); err != nil {
			return fmt.Errorf("closing the store: %w", err)
		}
		return nil
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		closeStore()
		return err
	}
	// What the listener is bound to decides too: a name may resolve
	// differently now than a moment ago.
	if err := CheckLoopback(ctx, nil, ln.Addr().String()); err != nil {
		loopback = err
	}
	if token == "" && loopback != nil {
		ln.Close()
		closeStore()
		return needToken(cfg.Listen, loopback)
	}
	scheme := "http"
	if tlsConf != nil {
		// Under the connection limits, so that a refusal (limit.go) is
		// written through TLS too.
		ln, scheme = tls.NewListener(ln, tlsConf), "https"
	}
	ln = LimitConns(ln, ConnLimits{Max: cfg.MaxConns, PerIP: cfg.PerIP(), Reserve: DefaultReserveConns})
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var shutdown func()
	if opts.Shutdown {
		shutdown = stop
	}

	logger := slog.New(LogHandler(logw, cfg.LogFormat))
	var access *slog.Logger
	if cfg.AccessLog {
		access = logger
	}
	h := httpapi.New(store, httpapi.Options{
		Token:     token,
		ReadOnly:  cfg.ReadOnly,
		Version:   Version,
		Status:    StatusFunc(store),
		Check:     CheckFunc(store),
		Logger:    logger,
		AccessLog: access,
		TLS:       tlsConf != nil,
		Shutdown:  shutdown,

		BodyTimeout: opts.BodyTimeout,
		MinBodyRate: opts.MinBodyRate,
	})
	srv := &http.Server{
		Handler:           ReserveHandler(h),
		ConnContext:       ConnContext,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if err := h.ClearUploads(); err != nil {
		logger.Warn("removing the pieces of interrupted uploads", "key", httpapi.UploadDir.String(), "err", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(logw, "tarstore: serving %s on %s://%s\n", Describe(cfg), scheme, ln.Addr())
	if token != "" && tlsConf == nil && loopback != nil {
		fmt.Fprintf(logw, "tarstore: WARNING: %s is not loopback only (%v) and is served over plain HTTP: "+
			"the bearer token crosses the network in clear; serve HTTPS with --tls-cert and --tls-key\n", cfg.Listen, loopback)
	}
	if d := store.Damage(); d != "" {
		fmt.Fprintf(logw, "tarstore: WARNING: %s: %s; serving read-only: stop the server and run `tarstore check --repair`\n", Describe(cfg), d)
	}
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}

	select {
	case err := <-errc:
		// The listener failed: nothing more will be accepted.
		srv.Close()
		h.Close()
		return errors.Join(err, closeStore())
	case <-ctx.Done():
	}
	fmt.Fprintf(logw, "tarstore: shutting down\n")
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
		srv.Close()
	}
	h.Close() // reader sessions no longer pin the store
	errs = append(errs, closeStore())
	return errors.Join(errs...)
}

// ErrBadTLS: the TLS certificate or key cannot be loaded.
var ErrBadTLS = errors.New("bad TLS certificate or key")

// LoadTLS returns the server's TLS configuration for cfg.TLSCert and
// cfg.TLSKey (PEM files: the certificate, with its chain, and its private
// key), nil when cfg serves plain HTTP. Errors wrap ErrBadTLS.
func LoadTLS(cfg config.Config) (*tls.Config, error) {
	if !cfg.TLS() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s, %s: %w", ErrBadTLS, cfg.TLSCert, cfg.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// LogHandler is the handler of serve's log lines on w in format
// (config.LogText, the default, or config.LogJSON).
func LogHandler(w io.Writer, format string) slog.Handler {
	if format == config.LogJSON {
		return slog.NewJSONHandler(w, nil)
	}
	return slog.NewTextHandler(w, nil)
}

// needToken is the refusal to listen on addr without a token: why is the
// CheckLoopback error.
func needToken(addr string, why error) error {
	return fmt.Errorf("%s: %w (%w): anyone who can reach it could read and change the store", addr, ErrNeedToken, why)
}

// ReadToken reads a bearer token from path: the file's content without
// surrounding white space. A missing, empty or multi-line file is an error
// wrapping ErrBadToken.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrBadToken, path)
	}
	if strings.ContainsAny(t, "\r\n") {
		return "", fmt.Errorf("%w: %s holds more than one line", ErrBadToken, path)
	}
	return t, nil
}

// Resolver looks up the addresses of a host name; *net.Resolver is one.
// Serve takes it from ServeOptions so that tests can inject one.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// ErrNotLoopback: a listen address is not on the loopback interface only.
var ErrNotLoopback = errors.New("not a loopback address")

// CheckLoopback returns nil when the listen address addr (HOST:PORT) is on
// the loopback interface only, decided on addresses, never on the name
// (SPEC §6): an IP literal must be a loopback address; any other host is
// resolved with r (nil: net.DefaultResolver) and every address it resolves
// to must be loopback, so that "localhost" mapped to a public address in
// /etc/hosts or DNS is not trusted. An empty host (all interfaces), an
// unspecified address (0.0.0.0, ::), a name that does not resolve and a
// malformed addr are not loopback. The error wraps ErrNotLoopback and says
// which address is not.
func CheckLoopback(ctx context.Context, r Resolver, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q is not HOST:PORT", ErrNotLoopback, addr)
	}
	if host == "" {
		return fmt.Errorf("%w: %s listens on every interface", ErrNotLoopback, addr)
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrNotLoopback, ip)
		}
		return nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%w: %s does not resolve: %v", ErrNotLoopback, host, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("%w: %s resolves to no address", ErrNotLoopback, host)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%w: %s resolves to %s", ErrNotLoopback, host, ip.IP)
		}
	}
	return nil
}

// IsLoopback reports whether CheckLoopback accepts addr.
func IsLoopback(ctx context.Context, r Resolver, addr string) bool {
	return CheckLoopback(ctx, r, addr) == nil
}
