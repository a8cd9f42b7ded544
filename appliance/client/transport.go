package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// newTransport is the transport of a Client made without an HTTPClient:
// Go's default transport, with more idle connections per host (the
// client's requests to its one server run concurrently) and tlsConf for
// https:// servers (nil: the system's roots). Its errors for a
// certificate the client does not trust are *CertificateError.
func newTransport(tlsConf *tls.Config) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	if tlsConf != nil {
		t.TLSClientConfig = tlsConf.Clone()
	}
	return &certTransport{t}
}

// certTransport names a failed certificate verification for what it is.
type certTransport struct{ *http.Transport }

func (t *certTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.Transport.RoundTrip(r)
	var ve *tls.CertificateVerificationError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	if err != nil && (errors.As(err, &ve) || errors.As(err, &ue) || errors.As(err, &he)) {
		err = &CertificateError{Host: r.URL.Host, Err: err}
	}
	return resp, err
}

// CertificateError is the cause of a request's failure when the server's
// TLS certificate is not one the client trusts: signed by a CA it was not
// given (Options.TLS; --ca-cert on the command line), expired, or for
// another name.
type CertificateError struct {
	Host string // the server's host:port
	Err  error  // the verification's error
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("the TLS certificate of %s is not trusted (%v): give the certificate of the CA that signed it (--ca-cert FILE)", e.Host, e.Err)
}

func (e *CertificateError) Unwrap() error { return e.Err }

// ErrNoCertificates: a CA file holds no PEM certificate.
var ErrNoCertificates = errors.New("no PEM certificate in it")

// CAConfig returns a TLS configuration that trusts the PEM certificates in
// the file path (a CA's, or a server's self-signed one) instead of the
// system's roots, for Options.TLS.
func CAConfig(path string) (*tls.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCertificates)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
