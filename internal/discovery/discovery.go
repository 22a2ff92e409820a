// Package discovery is how a joining node learns to trust a cluster before it has any credentials, the way
// kubeadm does it: either from kube-public/cluster-info, authenticated by the bootstrap token's JWS signature
// and pinned by the hash of the cluster CA's public key (FetchClusterInfo), or from a kubeconfig the user
// supplies as a file or an https URL (FetchFile).
//
// The token's secret is a credential: no message, log line or error of this package contains it.
package discovery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// DefaultInterval is the pause between two reads of cluster-info while the signature of the token is missing.
// kubeadm waits 5 s; right after init the bootstrapsigner adds the signature within a second or two, so a
// shorter pause shortens the join that follows an init. One anonymous GET of one small ConfigMap every 250 ms is
// no load for an API server, and the whole wait stays bounded by timeouts.discovery.
const DefaultInterval = 250 * time.Millisecond

// DefaultTimeout bounds discovery when the caller gives no timeout (kubeadm's timeouts.discovery).
const DefaultTimeout = 5 * time.Minute

// Options are the knobs of discovery that are not part of kubeadm's configuration.
type Options struct {
	// Interval between attempts; 0 means DefaultInterval.
	Interval time.Duration
	// Out receives warnings and one line per new reason to wait; nil discards them.
	Out io.Writer
}

func (o Options) interval() time.Duration {
	if o.Interval > 0 {
		return o.Interval
	}
	return DefaultInterval
}

func (o Options) printf(format string, args ...any) {
	if o.Out != nil {
		fmt.Fprintf(o.Out, format, args...)
	}
}

// Errors of discovery. Each is wrapped with a one-line message saying what was found and what to do; check
// them with errors.Is.
var (
	// ErrCAHashMismatch: the CA in cluster-info is not one of the pinned --discovery-token-ca-cert-hash values.
	ErrCAHashMismatch = errors.New("cluster CA does not match --discovery-token-ca-cert-hash")
	// ErrTokenNotSigned: cluster-info carries no signature for the token's ID (expired or deleted token).
	ErrTokenNotSigned = errors.New("token is not signed in cluster-info")
	// ErrBadSignature: the signature for the token's ID does not verify with the token's secret.
	ErrBadSignature = errors.New("cluster-info signature does not verify")
	// ErrClusterCount: the kubeconfig does not hold exactly one cluster.
	ErrClusterCount = errors.New("kubeconfig does not hold exactly one cluster")
	// ErrContentChanged: cluster-info read over verified TLS differs from what the first read returned.
	ErrContentChanged = errors.New("cluster-info changed between reads")
	// ErrServerNotTrusted: the API server's certificate does not verify against the discovered CA.
	ErrServerNotTrusted = errors.New("API server certificate not trusted")
	// ErrMalformed: cluster-info or a discovery file is not what kubeadm would have written.
	ErrMalformed = errors.New("malformed discovery data")
	// ErrUnavailable: the API server answers, but not with cluster-info (HTTP error status).
	ErrUnavailable = errors.New("cluster-info unavailable")
	// ErrNoPin: neither a CA pin nor the unsafe switch was given.
	ErrNoPin = errors.New("no CA pin")
)

// UnreachableError means no connection to the API server could be made before the discovery timeout.
type UnreachableError struct {
	// Address is the URL discovery tried.
	Address string
	// Waited is how long discovery kept trying: the discovery timeout.
	Waited time.Duration
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the API server at %s (%v), still failing after %s: check the address and port, "+
		"and that kube-apiserver runs there and is reachable from this node", e.Address, e.Err, e.Waited)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// statusError is an HTTP answer other than 200.
type statusError struct {
	code    int
	message string
}

func (e *statusError) Error() string {
	if e.message == "" {
		return fmt.Sprintf("HTTP %d", e.code)
	}
	return fmt.Sprintf("HTTP %d: %s", e.code, e.message)
}

// transportError is a failure below HTTP; permanent ones (not TLS at all, an untrusted certificate) stop
// discovery at once, the others are retried until the timeout.
type transportError struct {
	err error
}

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// classify turns an error of http.Client.Do into one discovery understands.
func classify(address, anchor string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return untrusted(address, anchor, verr.Err)
	}
	var rec tls.RecordHeaderError
	// net/http reports a plain-HTTP server with a string only.
	if errors.As(err, &rec) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%w: %s does not speak TLS (%w): is this the API server's secure port?", ErrMalformed, address, err)
	}
	return &transportError{err: err}
}

// untrusted explains why the server's certificate failed verification against anchor.
func untrusted(address, anchor string, err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: the server at %s presents a certificate not signed by %s: "+
			"something between this node and the control plane intercepts TLS, or the endpoint is not this cluster's API server", ErrServerNotTrusted, address, anchor)
	case errors.As(err, &host):
		return fmt.Errorf("%w: the certificate of %s is not valid for %s (%w): join through an address listed in "+
			"the API server certificate (apiServer.certSANs)", ErrServerNotTrusted, address, host.Host, err)
	default:
		return fmt.Errorf("%w: %s: %w", ErrServerNotTrusted, address, err)
	}
}

// isTransient reports whether another attempt may succeed: the server could not be reached, or answered with an
// HTTP error (404 and 403 are normal while init is still creating cluster-info and its RBAC).
func isTransient(err error) bool {
	var te *transportError
	var se *statusError
	return errors.As(err, &te) || errors.As(err, &se)
}

// hostPort checks an API server endpoint "host:port".
func hostPort(endpoint string) error {
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return fmt.Errorf("API server endpoint %q: %w; pass host:port, e.g. 10.0.0.10:6443", endpoint, err)
	}
	return nil
}

// firstLine keeps error bodies to one line.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
