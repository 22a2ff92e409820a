package reset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path"
	"strings"
	"time"

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
	// ClusterToken is --initial-cluster-token; "" when etcd's default is used (kubeadm sets none).
	ClusterToken string
}

// CertDir is the certificates directory of the member's manifest (see etcdCertDir).
func (m *EtcdMember) CertDir() (string, error) { return etcdCertDir(m) }

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
	return EtcdMemberOf(manifest)
}

// EtcdMemberOf reads what an etcd manifest says about its member, wherever the manifest was read from (a
// snapshot restore reads one moved out of the manifests directory too).
func EtcdMemberOf(manifest *staticpod.Manifest) (*EtcdMember, error) {
	flags, err := manifest.Flags()
	if err != nil {
		return nil, err
	}
	m := &EtcdMember{
		ClusterToken:        flags.Get("initial-cluster-token"),
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

// OpenEtcd connects to the etcd cluster of this node's member at endpoints, with the etcd client certificate
// kubeadm issues beside the member's CA (see etcdCertDir).
func OpenEtcd(_ context.Context, fsys nodefs.FS, m *EtcdMember, endpoints []string, callTimeout time.Duration) (EtcdMembership, error) {
	certDir, err := etcdCertDir(m)
	if err != nil {
		return nil, err
	}
	c, err := etcd.Connect(fsys, certDir, etcd.Options{Endpoints: endpoints, CallTimeout: callTimeout})
	if err != nil {
		return nil, err // not c: a nil *etcd.Client in the interface would not compare equal to nil
	}
	return c, nil
}

// etcdCertDir is the certificates directory of the member's manifest, in kubeadm's layout: its CA
// (--trusted-ca-file) is <certificatesDir>/etcd/ca.crt.
func etcdCertDir(m *EtcdMember) (string, error) {
	if m.TrustedCAFile == "" {
		return "", fmt.Errorf("%s: no --trusted-ca-file", EtcdManifest)
	}
	return path.Dir(path.Dir(m.TrustedCAFile)), nil
}

// LocalEtcdMembers asks the local etcd member, on a loopback client URL of its manifest, for the members of its
// cluster, with the etcd client certificate kubeadm issues beside its CA (see etcdCertDir). The read is
// serializable: it is answered by the local member alone, so it works without quorum.
func LocalEtcdMembers(ctx context.Context, fsys nodefs.FS, m *EtcdMember) ([]etcd.Member, error) {
	var endpoints []string
	for _, u := range m.ClientURLs {
		if isLoopbackURL(u) {
			endpoints = append(endpoints, u)
		}
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%s: no loopback address in --listen-client-urls %s", EtcdManifest, strings.Join(m.ClientURLs, ","))
	}
	certDir, err := etcdCertDir(m)
	if err != nil {
		return nil, err
	}
	c, err := etcd.Connect(fsys, certDir, etcd.Options{Endpoints: endpoints})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// A member that is down is common at reset (the kubelet may have stopped it already): LocalMemberList finds
	// that out at once, with a TLS handshake, and bounds its request.
	return c.LocalMemberList(ctx)
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
