package reset

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// EtcdManifest is the static Pod manifest of a stacked etcd member.
var EtcdManifest = staticpod.Path(staticpod.EtcdName)

// EtcdMember is what the etcd manifest says about this node's member.
type EtcdMember struct {
	Name string
	// DataDir is the host directory of the etcd-data volume.
	DataDir string
	// InitialCluster holds the "name=peerURL" entries of --initial-cluster: the members known when this one
	// started. The first control-plane node lists only itself even after others joined.
	InitialCluster []string
	// ClientURLs are --listen-client-urls.
	ClientURLs []string
	// AdvertiseClientURLs are --advertise-client-urls: how other machines reach the member.
	AdvertiseClientURLs []string
	// PeerURLs are --initial-advertise-peer-urls: they identify the member in the member list.
	PeerURLs []string
	// TrustedCAFile is --trusted-ca-file, the etcd CA; the client certificates kubeadm issues sit next to it.
	TrustedCAFile string
}

// ReadEtcdManifest reads /etc/kubernetes/manifests/etcd.yaml. It returns nil and no error when the file does
// not exist: the node runs no stacked etcd member (a worker, or a control plane with external etcd).
func ReadEtcdManifest(fsys nodefs.FS) (*EtcdMember, error) {
	manifest, err := staticpod.Read(fsys, staticpod.EtcdName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	flags, err := manifest.Flags()
	if err != nil {
		return nil, err
	}
	m := &EtcdMember{
		Name:                flags.Get("name"),
		InitialCluster:      splitNonEmpty(flags.Get("initial-cluster")),
		ClientURLs:          splitNonEmpty(flags.Get("listen-client-urls")),
		AdvertiseClientURLs: splitNonEmpty(flags.Get("advertise-client-urls")),
		PeerURLs:            splitNonEmpty(flags.Get("initial-advertise-peer-urls")),
		TrustedCAFile:       flags.Get("trusted-ca-file"),
	}
	for _, v := range manifest.Pod.Spec.Volumes {
		if v.Name == staticpod.EtcdDataVolume && v.HostPath != nil {
			m.DataDir = path.Clean(v.HostPath.Path)
		}
	}
	if m.DataDir == "" {
		return nil, fmt.Errorf("%s: no hostPath volume named %s, so where etcd keeps its data is unknown", manifest.File, staticpod.EtcdDataVolume)
	}
	return m, nil
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// EtcdMembership is what reset asks of the etcd cluster; *etcd.Client is one.
type EtcdMembership interface {
	MemberList(ctx context.Context) ([]etcd.Member, error)
	CheckQuorumSafeToRemove(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
	Close() error
}

// OpenEtcd connects to the etcd cluster of this node's member at endpoints, with the healthcheck-client
// certificate kubeadm issues next to the member's CA (--trusted-ca-file).
func OpenEtcd(_ context.Context, fsys nodefs.FS, m *EtcdMember, endpoints []string, callTimeout time.Duration) (EtcdMembership, error) {
	if m.TrustedCAFile == "" {
		return nil, fmt.Errorf("%s: no --trusted-ca-file", EtcdManifest)
	}
	// kubeadm's layout: <certificatesDir>/etcd/ca.crt.
	tlsCfg, err := etcd.ClientTLS(fsys, path.Dir(path.Dir(m.TrustedCAFile)))
	if err != nil {
		return nil, err
	}
	c, err := etcd.New(etcd.Options{Endpoints: endpoints, TLS: tlsCfg, CallTimeout: callTimeout})
	if err != nil {
		return nil, err // not c: a nil *etcd.Client in the interface would not compare equal to nil
	}
	return c, nil
}

// etcdQueryTimeout bounds asking the local member: a member that is down must not stall reset.
const etcdQueryTimeout = 5 * time.Second

// CountEtcdMembers asks the local etcd member, on a loopback client URL of its manifest, how many members the
// cluster has. It authenticates with the healthcheck-client certificate kubeadm issues next to the etcd CA.
// The read is serializable: it is answered by the local member alone, so it works without quorum.
func CountEtcdMembers(ctx context.Context, fsys nodefs.FS, m *EtcdMember) (int, error) {
	var endpoints []string
	for _, u := range m.ClientURLs {
		if isLoopbackURL(u) {
			endpoints = append(endpoints, u)
		}
	}
	if len(endpoints) == 0 {
		return 0, fmt.Errorf("%s: no loopback address in --listen-client-urls %s", EtcdManifest, strings.Join(m.ClientURLs, ","))
	}
	if m.TrustedCAFile == "" {
		return 0, fmt.Errorf("%s: no --trusted-ca-file", EtcdManifest)
	}
	// The etcd client retries a refused connection until its deadline; a member that is down is common at
	// reset (the kubelet may have stopped it already), so find that out at once.
	if err := probeAny(ctx, endpoints); err != nil {
		return 0, err
	}
	tlsCfg, err := etcdClientTLS(fsys, m.TrustedCAFile)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, etcdQueryTimeout)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsCfg,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		Context:     ctx,
	})
	if err != nil {
		return 0, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	defer c.Close()
	resp, err := c.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return 0, fmt.Errorf("list the etcd members at %s: %w", strings.Join(endpoints, ","), err)
	}
	return len(resp.Members), nil
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// etcdClientTLS builds the client TLS configuration from the etcd CA and the healthcheck-client pair beside it.
func etcdClientTLS(fsys nodefs.FS, caFile string) (*tls.Config, error) {
	caPEM, err := fsys.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the etcd CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	dir := path.Dir(caFile)
	certFile, keyFile := path.Join(dir, "healthcheck-client.crt"), path.Join(dir, "healthcheck-client.key")
	certPEM, err := fsys.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read the etcd client certificate: %w", err)
	}
	keyPEM, err := fsys.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read the etcd client key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// probeAny succeeds when a TCP connection to one of the endpoints' hosts opens.
func probeAny(ctx context.Context, endpoints []string) error {
	var errs []error
	d := net.Dialer{Timeout: 2 * time.Second}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Close()
		return nil
	}
	return fmt.Errorf("etcd is not reachable at %s: %w", strings.Join(endpoints, ","), errors.Join(errs...))
}
