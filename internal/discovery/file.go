package discovery

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

// FetchFile discovers the cluster from a kubeconfig the user trusts: a file path or an https URL (downloaded
// with the machine's trusted roots), as `join --discovery-file` does. The kubeconfig must hold exactly one cluster
// with a CA; certificate and token files it names are embedded into the result. Trust in the cluster is then
// proven by reading cluster-info over TLS verified against that CA (any HTTP answer proves it; an anonymous read
// may well be refused). When cluster-info names another server, a warning says so, as kubeadm does.
//
// The result keeps the kubeconfig's credentials, if any: without a TLS bootstrap token they are what the kubelet
// bootstraps with.
func FetchFile(ctx context.Context, location string, timeout time.Duration, opts Options) (*clientcmdapi.Config, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	what := "discovery file " + location
	kc, err := loadFile(ctx, location, what, &poller{subject: "the discovery file", opts: opts, address: location, timeout: timeout})
	if err != nil {
		return nil, err
	}
	cluster, err := onlyCluster(kc, what)
	if err != nil {
		return nil, err
	}
	if err := embed(kc, cluster, what); err != nil {
		return nil, err
	}
	cas, err := clusterCAs(cluster, what)
	if err != nil {
		return nil, fmt.Errorf("%w (kubeboot does not fall back to the machine's trusted roots for a cluster)", err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	client := newClient(pool, true)
	defer client.CloseIdleConnections()
	p := &poller{opts: opts, address: cluster.Server, timeout: timeout}
	err = p.poll(ctx, func(ctx context.Context) (bool, error) {
		cm, err := get(ctx, client, cluster.Server, "the CA in "+what)
		var se *statusError
		if errors.As(err, &se) && se.code < 500 && se.code != 429 {
			// The TLS handshake succeeded, which is all this read must prove.
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if published, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey])); err == nil && len(published.Clusters) == 1 {
			for _, c := range published.Clusters {
				if c.Server != cluster.Server {
					opts.printf("  WARNING: %s points at %s, but cluster-info names %s as the API server\n", what, cluster.Server, c.Server)
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return kc, nil
}

// loadFile reads the kubeconfig at location: an https URL, downloaded with the machine's trusted roots only,
// or a file path.
func loadFile(ctx context.Context, location, what string, p *poller) (*clientcmdapi.Config, error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "https" {
		// File names inside the kubeconfig are relative to it, as kubectl reads them.
		kc, err := clientcmd.LoadFromFile(location)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist: pass the path of a kubeconfig with the cluster's address and CA", what)
		}
		if err == nil {
			err = clientcmd.ResolveLocalPaths(kc)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
		}
		return kc, nil
	}
	client := newClient(nil, true)
	defer client.CloseIdleConnections()
	var data []byte
	err = p.poll(ctx, func(ctx context.Context) (bool, error) {
		b, err := download(ctx, client, location, location, "a CA this machine trusts")
		if err != nil {
			return false, err
		}
		data = b
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("download the discovery file: %w", err)
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not a kubeconfig: %w", ErrMalformed, what, err)
	}
	return kc, nil
}

// embed replaces the file references of the cluster and of the current user by their content, so the result can
// be written anywhere (bootstrap-kubelet.conf) and still work.
func embed(kc *clientcmdapi.Config, cluster *clientcmdapi.Cluster, what string) error {
	read := func(field, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", what, field, err)
		}
		return b, nil
	}
	var err error
	if len(cluster.CertificateAuthorityData) == 0 && cluster.CertificateAuthority != "" {
		if cluster.CertificateAuthorityData, err = read("certificate-authority", cluster.CertificateAuthority); err != nil {
			return err
		}
	}
	cluster.CertificateAuthority = ""
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil {
		return nil
	}
	user := kc.AuthInfos[ctx.AuthInfo]
	if user == nil {
		return nil
	}
	if len(user.ClientCertificateData) == 0 && user.ClientCertificate != "" {
		if user.ClientCertificateData, err = read("client-certificate", user.ClientCertificate); err != nil {
			return err
		}
	}
	if len(user.ClientKeyData) == 0 && user.ClientKey != "" {
		if user.ClientKeyData, err = read("client-key", user.ClientKey); err != nil {
			return err
		}
	}
	if user.Token == "" && user.TokenFile != "" {
		b, err := read("tokenFile", user.TokenFile)
		if err != nil {
			return err
		}
		user.Token = strings.TrimSpace(string(b))
	}
	user.ClientCertificate, user.ClientKey, user.TokenFile = "", "", ""
	return nil
}
