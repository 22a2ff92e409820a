// Package localendpoint renders the node-local API endpoint (issue 18): `kubeboot loadbalancer` run on every node
// as the static Pod kubeboot-local-endpoint, listening on 127.0.0.1, so that the node's kubelet and kube-proxy
// reach every API server of the cluster without an external load balancer. It is opt-in, through
// nodeLocalAPIEndpoint of the KubebootConfiguration.
//
// The Pod runs kubeboot itself, copied to the node (InstallBinary) and mounted from the host into the release's
// pause image, which every node already has for its Pod sandboxes: no image of kubeboot's to build, publish or
// pull. The pause image holds nothing but /pause, no C library, hence a statically linked kubeboot.
//
// Rendering (Manifest, RBAC, LocalServer, CertSANs) is pure; InstallBinary and Apply are the effects.
package localendpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/manifests"
)

// Name is the name of the static Pod, of its container, of its manifest file (manifests.Write) and of its patch
// target.
const Name = "kubeboot-local-endpoint"

// Paths on the node and in the container.
const (
	// HostBinaryPath is where InstallBinary puts kubeboot on the node, for the Pod to mount.
	HostBinaryPath = "/var/lib/kubeboot/bin/kubeboot"
	// ContainerBinaryPath is where the Pod's container sees it.
	ContainerBinaryPath = "/usr/local/bin/kubeboot"
	// StateDir holds the load balancer's state file, written by the Pod.
	StateDir = "/var/lib/kubeboot/local-endpoint"
	// KubeletPKIDir holds the kubelet's client certificate, which kubelet.conf names by path.
	KubeletPKIDir = "/var/lib/kubelet/pki"
)

// StateFile is the load balancer's --state-file: the last list of API servers it followed, so that a restart
// finds them while its seeds are down.
var StateFile = path.Join(StateDir, "backends.json")

// loopback is the only address the endpoint listens on: it serves this node alone.
const loopback = "127.0.0.1"

// Options are what the static Pod renders from.
type Options struct {
	// Image is the release's pause image (config.ClusterConfiguration.PauseImage).
	Image string
	// Port is the port on 127.0.0.1 (nodeLocalAPIEndpoint.port); 0: config.DefaultNodeLocalAPIEndpointPort.
	Port int32
	// Backends are the API servers (HOST:PORT) the load balancer starts with, before it reads the list the API
	// servers keep (EndpointSlice default/kubernetes) through kubelet.conf: at least one.
	Backends []string
	// CAFile is the cluster CA on the node (e.g. /etc/kubernetes/pki/ca.crt), with which the health checks verify
	// the API servers; "": they do not verify (the clients' own TLS is untouched either way).
	CAFile string
}

// Manifest renders the static Pod kubeboot-local-endpoint of kube-system: `kubeboot loadbalancer` listening on
// 127.0.0.1:Port, forwarding to Backends, following the API servers with the node's own credentials
// (/etc/kubernetes/kubelet.conf, allowed by RBAC) and keeping their list in StateFile.
//
// kubelet.conf must exist before the Pod can start (its hostPath has type File): write the manifest after the
// kubelet's TLS bootstrap, which must therefore not depend on this endpoint. The Pod has no liveness probe: the
// load balancer serves no health endpoint of its own (it checks the API servers' /readyz), and a TCP probe would
// only show that its socket accepts.
func Manifest(opts Options) (*corev1.Pod, error) {
	if opts.Image == "" {
		return nil, errors.New("render the static Pod " + Name + ": no image (the release's pause image)")
	}
	port := opts.Port
	if port == 0 {
		port = config.DefaultNodeLocalAPIEndpointPort
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("render the static Pod %s: port %d is not between 1 and 65535", Name, port)
	}
	if len(opts.Backends) == 0 {
		return nil, fmt.Errorf("render the static Pod %s: no API server to start with", Name)
	}
	command := []string{ContainerBinaryPath, "loadbalancer", "--listen=" + listenAddress(port)}
	for _, b := range opts.Backends {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("render the static Pod %s: API server %q is not HOST:PORT: %w", Name, b, err)
		}
		command = append(command, "--backend="+b)
	}
	command = append(command, "--follow-kubeconfig="+config.KubeletKubeconfigFile, "--state-file="+StateFile)
	volumes := []config.HostPathMount{
		{Name: "kubeboot", HostPath: HostBinaryPath, MountPath: ContainerBinaryPath, ReadOnly: true, PathType: corev1.HostPathFile},
		{Name: "kubeconfig", HostPath: config.KubeletKubeconfigFile, MountPath: config.KubeletKubeconfigFile, ReadOnly: true, PathType: corev1.HostPathFile},
		{Name: "kubelet-pki", HostPath: KubeletPKIDir, MountPath: KubeletPKIDir, ReadOnly: true, PathType: corev1.HostPathDirectoryOrCreate},
		{Name: "state", HostPath: StateDir, MountPath: StateDir, PathType: corev1.HostPathDirectoryOrCreate},
	}
	if opts.CAFile != "" {
		command = append(command, "--ca-file="+opts.CAFile)
		volumes = append(volumes, config.HostPathMount{Name: "ca", HostPath: opts.CAFile, MountPath: opts.CAFile, ReadOnly: true, PathType: corev1.HostPathFile})
	}
	root := int64(0)
	c := corev1.Container{
		Name:    Name,
		Image:   opts.Image,
		Command: command,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi"),
		}},
		// The pause image says USER 65535, who may read neither kubelet.conf nor the kubelet's key.
		SecurityContext: &corev1.SecurityContext{RunAsUser: &root, RunAsGroup: &root},
	}
	return manifests.StaticPod(c, map[string]string{"component": Name, "tier": "node"}, volumes), nil
}

// listenAddress is where the endpoint listens.
func listenAddress(port int32) string {
	return net.JoinHostPort(loopback, strconv.Itoa(int(port)))
}

// LocalServer is the URL of the endpoint on port, for the server of the node's kubeconfig files (kubelet.conf,
// kube-proxy's).
func LocalServer(port int32) string {
	return "https://" + listenAddress(port)
}

// CertSANs are the names the API servers' serving certificate needs beyond those of cluster, for the
// KubebootConfiguration k (nil: none): 127.0.0.1 when the node-local endpoint is enabled, since its clients
// connect to that address and TLS passes through to the API servers. The result goes into apiServer.certSANs.
func CertSANs(k *config.KubebootConfiguration, cluster *config.ClusterConfiguration) []string {
	if _, ok := k.NodeLocalAPIEndpointPort(); !ok {
		return nil
	}
	want := netip.MustParseAddr(loopback)
	for _, s := range cluster.APIServer.CertSANs {
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap() == want {
			return nil
		}
	}
	return []string{loopback}
}
