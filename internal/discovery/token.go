package discovery

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/token"
)

// pinPrefix is the only hash kind kubeadm pins CAs with.
const pinPrefix = "sha256:"

// FetchClusterInfo discovers the cluster behind endpoint ("host:port") with a bootstrap token, as kubeadm join does:
//
//  1. read kube-public/cluster-info anonymously over TLS without verification, retrying every Options.Interval
//     while cluster-info or the signature for tok's ID is missing;
//  2. verify the detached JWS of its kubeconfig with tok's secret: only someone who knows the token can have
//     signed it;
//  3. require exactly one cluster and parse its CA;
//  4. check that the CA's public key hash is one of caCertHashes ("sha256:<hex>"); unsafeSkip without hashes
//     skips this with a warning;
//  5. read cluster-info again over TLS verified against that CA and require the same kubeconfig, byte for byte.
//
// All of it must succeed within timeout. The result is the kubeconfig from cluster-info: one cluster with the
// control plane's address and the CA, no credentials.
func FetchClusterInfo(ctx context.Context, endpoint string, tok token.Token, caCertHashes []string, unsafeSkip bool, timeout time.Duration, opts Options) (*clientcmdapi.Config, error) {
	if err := hostPort(endpoint); err != nil {
		return nil, err
	}
	pins, err := parsePins(caCertHashes)
	if err != nil {
		return nil, err
	}
	if len(pins) == 0 && !unsafeSkip {
		return nil, fmt.Errorf("%w: pass --discovery-token-ca-cert-hash sha256:<hex> (printed by init, or by "+
			"`kubeboot token create --print-join-command` on a control-plane node); without it the cluster cannot be authenticated", ErrNoPin)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	base := "https://" + endpoint
	p := &poller{opts: opts, address: base, tokenID: tok.ID, timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	insecure := newClient(nil, false)
	defer insecure.CloseIdleConnections()
	var content, signature string
	err = p.poll(ctx, func(ctx context.Context) (bool, error) {
		cm, err := get(ctx, insecure, base, "" /* nothing is verified */)
		if err != nil {
			return false, err
		}
		kc := cm.Data[bootstrapapi.KubeConfigKey]
		if kc == "" {
			return false, fmt.Errorf("%w: cluster-info at %s has no %q key: this API server is not set up for token discovery",
				ErrMalformed, base, bootstrapapi.KubeConfigKey)
		}
		sig := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+tok.ID]
		if sig == "" {
			return false, errNotSignedYet
		}
		content, signature = kc, sig
		return true, nil
	})
	if err != nil {
		return nil, err
	}

	kc, cas, err := verifyClusterInfo(content, signature, tok, base)
	if err != nil {
		return nil, err
	}
	found := make([]string, 0, len(cas))
	for _, ca := range cas {
		found = append(found, pki.DiscoveryHash(ca))
	}
	if len(pins) > 0 {
		if !slices.ContainsFunc(found, func(h string) bool { return slices.Contains(pins, h) }) {
			return nil, fmt.Errorf("%w: cluster-info at %s carries a CA with public key hash %s, but the pinned hash is %s: "+
				"check the hash (`kubeboot token create --print-join-command` on a control-plane node prints it); if it is right, "+
				"the endpoint is not your cluster or the connection is intercepted", ErrCAHashMismatch, base, strings.Join(found, ", "), strings.Join(pins, ", "))
		}
	} else {
		opts.printf("  WARNING: the cluster CA (%s) was not checked against a pinned hash "+
			"(--discovery-token-unsafe-skip-ca-verification): anyone who knows the token can impersonate the control plane\n", strings.Join(found, ", "))
	}

	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	secure := newClient(pool, true)
	defer secure.CloseIdleConnections()
	var again string
	err = p.poll(ctx, func(ctx context.Context) (bool, error) {
		cm, err := get(ctx, secure, base, "the cluster CA from cluster-info")
		if err != nil {
			return false, err
		}
		again = cm.Data[bootstrapapi.KubeConfigKey]
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if again != content {
		return nil, fmt.Errorf("%w: cluster-info at %s read over TLS verified with the cluster CA differs from the first read: "+
			"retry the join; if it happens again, something between this node and the control plane alters the traffic", ErrContentChanged, base)
	}
	return kc, nil
}

// parsePins checks and normalizes --discovery-token-ca-cert-hash values.
func parsePins(hashes []string) ([]string, error) {
	out := make([]string, 0, len(hashes))
	for _, h := range hashes {
		p := strings.ToLower(strings.TrimSpace(h))
		hexPart, ok := strings.CutPrefix(p, pinPrefix)
		if b, err := hex.DecodeString(hexPart); !ok || err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("CA hash %q: want %s followed by 64 hex characters", h, pinPrefix)
		}
		out = append(out, p)
	}
	return out, nil
}

// verifyClusterInfo checks the detached JWS signature of cluster-info's kubeconfig (content) with tok's secret, then
// parses the kubeconfig (parseClusterInfo). base is the address it was read from, for errors.
func verifyClusterInfo(content, signature string, tok token.Token, base string) (*clientcmdapi.Config, []*x509.Certificate, error) {
	want, err := jws.ComputeDetachedSignature(content, tok.ID, tok.Secret)
	// Compared in constant time: the signature is a MAC keyed with the token secret.
	if err != nil || subtle.ConstantTimeCompare([]byte(signature), []byte(want)) != 1 {
		return nil, nil, fmt.Errorf("%w: cluster-info at %s is signed for token id %q, but not with this token's secret: the "+
			"token is mistyped (copy it again from a control-plane node), or the server is not your control plane", ErrBadSignature, base, tok.ID)
	}
	return parseClusterInfo(content, "cluster-info at "+base)
}

// parseClusterInfo loads a discovered kubeconfig and returns it with its CA certificates; it must hold exactly
// one cluster, with a server and a CA. what names the source in errors.
func parseClusterInfo(content, what string) (*clientcmdapi.Config, []*x509.Certificate, error) {
	kc, err := clientcmd.Load([]byte(content))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: the kubeconfig does not parse: %w", ErrMalformed, what, err)
	}
	cluster, err := onlyCluster(kc, what)
	if err != nil {
		return nil, nil, err
	}
	cas, err := clusterCAs(cluster, what)
	if err != nil {
		return nil, nil, err
	}
	return kc, cas, nil
}

// onlyCluster returns the kubeconfig's one cluster and checks that it has an https server.
func onlyCluster(kc *clientcmdapi.Config, what string) (*clientcmdapi.Cluster, error) {
	if n := len(kc.Clusters); n != 1 {
		names := make([]string, 0, n)
		for name := range kc.Clusters {
			names = append(names, fmt.Sprintf("%q", name))
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w: %s holds %d clusters [%s]; exactly one is required, kubeboot will not guess which to trust",
			ErrClusterCount, what, n, strings.Join(names, " "))
	}
	var c *clientcmdapi.Cluster
	for _, only := range kc.Clusters {
		c = only
	}
	if !strings.HasPrefix(c.Server, "https://") {
		return nil, fmt.Errorf("%w: %s: the cluster's server %q is not an https:// URL", ErrMalformed, what, c.Server)
	}
	return c, nil
}

func clusterCAs(c *clientcmdapi.Cluster, what string) ([]*x509.Certificate, error) {
	if len(c.CertificateAuthorityData) == 0 {
		return nil, fmt.Errorf("%w: %s: the cluster has no certificate-authority-data", ErrMalformed, what)
	}
	cas, err := certutil.ParseCertsPEM(c.CertificateAuthorityData)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: the cluster's certificate-authority-data: %w", ErrMalformed, what, err)
	}
	return cas, nil
}
