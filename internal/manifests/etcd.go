package manifests

import (
	"errors"
	"net/url"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// ErrExternalEtcd is returned when a local etcd Pod is asked for while the cluster uses an external etcd.
var ErrExternalEtcd = errors.New("etcd.external is set in ClusterConfiguration: kubeboot runs no etcd Pod for an external etcd")

// EtcdMember is one member of the etcd cluster a new member joins.
type EtcdMember struct {
	Name    string
	PeerURL string
}

// Etcd renders the local etcd member's static Pod for the node, advertised at its LocalAPIEndpoint. An empty
// initialCluster starts a new single-member cluster; otherwise the member joins the listed members (which must
// include itself) with initial-cluster-state=existing.
func Etcd(cluster *config.Cluster, node *config.Node, initialCluster []EtcdMember) (*corev1.Pod, error) {
	local := cluster.Etcd.Local
	if local == nil {
		return nil, ErrExternalEtcd
	}
	endpoint := node.LocalAPIEndpoint
	pki := path.Join(cluster.CertificatesDir, "etcd")
	volumes := map[string]corev1.Volume{
		staticpod.EtcdDataVolume: hostPathVolume(staticpod.EtcdDataVolume, local.DataDir, corev1.HostPathDirectoryOrCreate),
		"etcd-certs":             hostPathVolume("etcd-certs", pki, corev1.HostPathDirectoryOrCreate),
	}
	image, err := cluster.EtcdImage()
	if err != nil {
		return nil, err
	}
	host, port, scheme := etcdProbeEndpoint(local, loopback(endpoint.AdvertiseAddress))
	timeout := healthCheckTimeout(node)
	d := staticpod.Etcd
	c := corev1.Container{
		Name:            d.Name,
		Command:         commandLine(d.Name, etcdArgs(cluster, node, initialCluster), local.ExtraArgs),
		Image:           image,
		ImagePullPolicy: pullPolicy,
		// Read-write: etcd writes its data, and the certificates are rotated in place.
		VolumeMounts: []corev1.VolumeMount{
			{Name: staticpod.EtcdDataVolume, MountPath: local.DataDir},
			{Name: "etcd-certs", MountPath: pki},
		},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("100Mi"),
		}},
		// /livez and /readyz on the metrics listener (plain HTTP on loopback) need no client certificate.
		LivenessProbe:  livenessProbe(host, d.LivenessPath, scheme),
		ReadinessProbe: readinessProbe(host, d.ReadinessPath, scheme),
		StartupProbe:   startupProbe(host, d.StartupPath, scheme, timeout),
		Env:            mergeEnv(extraEnv(local.ExtraEnvs)),
		Ports:          probePort(port),
	}
	annotations := map[string]string{staticpod.EtcdAdvertiseClientURLsAnnotation: staticpod.EtcdClientURL(endpoint.AdvertiseAddress)}
	return componentPod(c, volumes, annotations), nil
}

func etcdArgs(cluster *config.Cluster, node *config.Node, initialCluster []EtcdMember) []config.Arg {
	pki := cluster.CertificatesDir
	endpoint := node.LocalAPIEndpoint
	lo := loopback(endpoint.AdvertiseAddress)
	name := node.Registration.Name
	clientURL, peerURL := staticpod.EtcdClientURL(endpoint.AdvertiseAddress), staticpod.EtcdPeerURL(endpoint.AdvertiseAddress)
	args := []config.Arg{
		{Name: "name", Value: name},
		{Name: "listen-client-urls", Value: staticpod.EtcdClientURL(lo) + "," + clientURL},
		{Name: "advertise-client-urls", Value: clientURL},
		{Name: "listen-peer-urls", Value: peerURL},
		{Name: "initial-advertise-peer-urls", Value: peerURL},
		{Name: "data-dir", Value: cluster.Etcd.Local.DataDir},
		{Name: "cert-file", Value: path.Join(pki, "etcd", "server.crt")},
		{Name: "key-file", Value: path.Join(pki, "etcd", "server.key")},
		{Name: "trusted-ca-file", Value: path.Join(pki, "etcd", "ca.crt")},
		{Name: "client-cert-auth", Value: "true"},
		{Name: "peer-cert-file", Value: path.Join(pki, "etcd", "peer.crt")},
		{Name: "peer-key-file", Value: path.Join(pki, "etcd", "peer.key")},
		{Name: "peer-trusted-ca-file", Value: path.Join(pki, "etcd", "ca.crt")},
		{Name: "peer-client-cert-auth", Value: "true"},
		{Name: "snapshot-count", Value: "10000"},
		{Name: "listen-metrics-urls", Value: staticpod.EtcdMetricsURL(lo)},
		// Since 1.36 kubeadm no longer renders etcd 3.5's experimental-* spellings of these two.
		{Name: "feature-gates", Value: "InitialCorruptCheck=true"},
		{Name: "watch-progress-notify-interval", Value: "5s"},
	}
	if len(initialCluster) == 0 {
		args = setArg(args, "initial-cluster", name+"="+peerURL)
	} else {
		members := make([]string, 0, len(initialCluster))
		for _, m := range initialCluster {
			members = append(members, m.Name+"="+m.PeerURL)
		}
		args = setArg(args, "initial-cluster", strings.Join(members, ","))
		args = setArg(args, "initial-cluster-state", "existing")
	}
	return args
}

// etcdProbeEndpoint follows a user's listen-metrics-urls (its first URL) so the probes hit a listener that exists.
func etcdProbeEndpoint(local *config.LocalEtcd, lo string) (string, int32, corev1.URIScheme) {
	d := staticpod.Etcd
	v, ok := argValue(local.ExtraArgs, "listen-metrics-urls")
	if !ok {
		return lo, d.Port, d.Scheme
	}
	u, err := url.Parse(strings.Split(v, ",")[0])
	if err != nil {
		return lo, d.Port, d.Scheme
	}
	scheme := corev1.URISchemeHTTP
	if u.Scheme == "https" {
		scheme = corev1.URISchemeHTTPS
	}
	host := u.Hostname()
	if host == "" {
		host = lo
	}
	port := d.Port
	if p, err := strconv.Atoi(u.Port()); err == nil && p > 0 && p < 65536 {
		port = int32(p)
	}
	return host, port, scheme
}
