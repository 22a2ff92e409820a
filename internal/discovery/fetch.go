package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

// clusterInfoPath is kube-public/cluster-info in the core API.
const clusterInfoPath = "/api/v1/namespaces/" + metav1.NamespacePublic + "/configmaps/" + bootstrapapi.ConfigMapClusterInfo

// maxBody bounds what discovery reads from a server it does not trust yet; a ConfigMap is at most 1 MiB.
const maxBody = 2 << 20

// attemptTimeout bounds one request, so that a server that accepts connections and never answers does not use
// up the whole discovery timeout in one attempt.
const attemptTimeout = 10 * time.Second

// newClient returns an HTTP client for one discovery step. Without verify, the server's certificate is not
// checked at all: that is the first, anonymous read of cluster-info, whose content the token's signature and the
// CA pin authenticate instead. With verify, roots nil means the machine's trusted roots.
func newClient(roots *x509.CertPool, verify bool) *http.Client {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if !verify {
		tlsConfig.InsecureSkipVerify = true //nolint:gosec // see above
	}
	return &http.Client{
		Transport: &http.Transport{
			// client-go, and so kubeadm, honours the proxy environment too.
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			TLSClientConfig:     tlsConfig,
			MaxIdleConnsPerHost: 1,
		},
		// A redirect would send a pinned request somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get reads cluster-info from the API server at base ("https://host:port"). anchor names what the client
// trusts, for errors.
func get(ctx context.Context, client *http.Client, base, anchor string) (*corev1.ConfigMap, error) {
	body, err := download(ctx, client, strings.TrimRight(base, "/")+clusterInfoPath, base, anchor)
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil || cm.Kind != "ConfigMap" {
		return nil, fmt.Errorf("%w: %s answered with something that is not a ConfigMap: is this a Kubernetes API server?", ErrMalformed, base)
	}
	return &cm, nil
}

// download GETs url; address names the server and anchor what the client trusts, in errors.
func download(ctx context.Context, client *http.Client, url, address, anchor string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, classify(address, anchor, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &transportError{err: err}
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("%w: %s sent more than %d bytes", ErrMalformed, url, maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		se := &statusError{code: resp.StatusCode}
		var status metav1.Status
		if json.Unmarshal(body, &status) == nil && status.Message != "" {
			se.message = firstLine(status.Message)
		} else {
			se.message = firstLine(string(body))
		}
		return nil, se
	}
	return body, nil
}

// errNotSignedYet marks a cluster-info without a signature for the token: the bootstrapsigner may add it soon.
var errNotSignedYet = errors.New("not signed yet")

// poller retries one read of cluster-info until it succeeds, fails for good, or the discovery timeout passes.
type poller struct {
	// subject is what is read, for messages; "" means cluster-info.
	subject string
	opts    Options
	address string
	tokenID string
	timeout time.Duration
}

// poll calls read until it reports done. Errors that are not transient end the poll at once; when ctx ends, the
// error explains the last reason to wait.
func (p *poller) poll(ctx context.Context, read func(ctx context.Context) (done bool, err error)) error {
	var last error
	said := ""
	for {
		done, err := read(ctx)
		if err == nil && done {
			return nil
		}
		if err != nil && !errors.Is(err, errNotSignedYet) && !isTransient(err) {
			return err
		}
		// An attempt cut short by the end of discovery says nothing new about the server.
		if err != nil && (ctx.Err() == nil || last == nil) {
			last = err
		}
		if ctx.Err() == nil && last != nil && last.Error() != said {
			said = last.Error()
			p.opts.printf("  waiting for %s at %s: %s (retrying every %s for up to %s)\n",
				p.what(), p.address, p.reason(last), p.opts.interval(), p.timeout)
		}
		t := time.NewTimer(p.opts.interval())
		select {
		case <-ctx.Done():
			t.Stop()
			return p.giveUp(ctx, last)
		case <-t.C:
		}
	}
}

func (p *poller) what() string {
	if p.subject == "" {
		return bootstrapapi.ConfigMapClusterInfo
	}
	return p.subject
}

func (p *poller) reason(err error) string {
	if errors.Is(err, errNotSignedYet) {
		return fmt.Sprintf("no signature for token id %q yet", p.tokenID)
	}
	return err.Error()
}

// giveUp turns the last reason to wait into the error the user sees when discovery times out.
func (p *poller) giveUp(ctx context.Context, last error) error {
	if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("discovery of %s interrupted: %w", p.address, cause)
	}
	// The timeout, not the time measured: the message is the same every time.
	waited := p.timeout
	var se *statusError
	switch {
	case last == nil:
		return fmt.Errorf("%w: no answer from %s within %s", ErrUnavailable, p.address, waited)
	case errors.Is(last, errNotSignedYet):
		return fmt.Errorf("%w: cluster-info at %s has no signature for token id %q after %s: the token expired or was "+
			"deleted; create a new one with `kubeboot token create` on a control-plane node", ErrTokenNotSigned, p.address, p.tokenID, waited)
	case errors.As(last, &se) && p.subject != "":
		return fmt.Errorf("%w: %s answers %v after %s", ErrUnavailable, p.address, se, waited)
	case errors.As(last, &se):
		hint := "check the API server's log"
		switch se.code {
		case http.StatusNotFound:
			hint = "the control plane has not published it: run init to the end (its bootstrap-token phase creates it)"
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = "anonymous reads are refused: the API server needs --anonymous-auth=true and the " +
				"kubeadm:bootstrap-signer-clusterinfo Role and RoleBinding in kube-public (init's bootstrap-token phase)"
		}
		return fmt.Errorf("%w: %s answers %v for cluster-info after %s: %s", ErrUnavailable, p.address, se, waited, hint)
	default:
		var te *transportError
		if errors.As(last, &te) {
			last = te.err
		}
		return &UnreachableError{Address: p.address, Waited: waited, Err: last}
	}
}
