// Package staticpod describes the control plane's static Pods as kubeadm writes them (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler): their names, files, ports, probes, labels and annotations, and reads
// a manifest back, with the one reader of a component's command-line flags.
//
// kubeboot renders these Pods (package manifests) and everything else finds them by these facts: preflight checks
// their ports and files, the waiter their health endpoints, join and the etcd commands their members' URLs and
// annotation, reset their manifests. Images are config.KubernetesImage and config.EtcdImage of the names here.
package staticpod

import (
	"net"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Dir is where kubeadm writes the static Pods and the kubelet reads them (its staticPodPath).
const Dir = "/etc/kubernetes/manifests"

// Names of the components. Each is also the name of its static Pod, of the Pod's container, of its manifest file
// (Path), of its image and of its patch target.
const (
	EtcdName              = "etcd"
	APIServerName         = "kube-apiserver"
	ControllerManagerName = "kube-controller-manager"
	SchedulerName         = "kube-scheduler"
)

// Ports the components listen on unless the configuration moves them.
const (
	// APIServerPort is the apiserver's --secure-port, localAPIEndpoint.bindPort's default.
	APIServerPort         = 6443
	ControllerManagerPort = 10257
	SchedulerPort         = 10259
	EtcdClientPort        = 2379
	EtcdPeerPort          = 2380
	// EtcdMetricsPort is etcd's --listen-metrics-urls on loopback, plain HTTP: its probes need no client certificate.
	EtcdMetricsPort = 2381
)

// Annotations kubeadm reads back on upgrade and join to find each member's endpoints.
const (
	// EtcdAdvertiseClientURLsAnnotation holds the client URL of the node's etcd member: how a joining
	// control-plane node finds the cluster's etcd before it can ask etcd itself.
	EtcdAdvertiseClientURLsAnnotation = "kubeadm.kubernetes.io/etcd.advertise-client-urls"
	// APIServerAdvertiseAddressAnnotation holds the advertise address and port of the node's apiserver.
	APIServerAdvertiseAddressAnnotation = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"
)

// EtcdDataVolume is the hostPath volume of the etcd Pod that holds the member's data directory; kubeadm's reset
// finds the directory to delete through it too.
const EtcdDataVolume = "etcd-data"

// Component is how kubeadm's probes check one component, and where kubeboot looks for its health.
type Component struct {
	Name string
	// Port is where the probes reach it unless its flags move it (etcd: its metrics listener).
	Port int32
	// Scheme is how the probes talk to Port.
	Scheme corev1.URIScheme
	// LivenessPath, ReadinessPath and StartupPath are the paths of its three probes; "": it has no such probe.
	LivenessPath, ReadinessPath, StartupPath string
}

// The components' probes, as kubeadm renders them.
var (
	APIServer = Component{Name: APIServerName, Port: APIServerPort, Scheme: corev1.URISchemeHTTPS,
		LivenessPath: "/livez", ReadinessPath: "/readyz", StartupPath: "/livez"}
	ControllerManager = Component{Name: ControllerManagerName, Port: ControllerManagerPort, Scheme: corev1.URISchemeHTTPS,
		LivenessPath: "/healthz", StartupPath: "/healthz"}
	Scheduler = Component{Name: SchedulerName, Port: SchedulerPort, Scheme: corev1.URISchemeHTTPS,
		LivenessPath: "/livez", ReadinessPath: "/readyz", StartupPath: "/livez"}
	Etcd = Component{Name: EtcdName, Port: EtcdMetricsPort, Scheme: corev1.URISchemeHTTP,
		LivenessPath: "/livez", ReadinessPath: "/readyz", StartupPath: "/readyz"}
)

// Names lists the components in the order kubeadm checks their manifests in preflight.
func Names() []string {
	return []string{APIServerName, ControllerManagerName, SchedulerName, EtcdName}
}

// Path is the node path of the manifest of component name.
func Path(name string) string { return path.Join(Dir, name+".yaml") }

// Labels are the labels of component name's static Pod: component=<name>, tier=control-plane.
func Labels(name string) map[string]string {
	return map[string]string{"component": name, "tier": "control-plane"}
}

// Selector selects the mirror Pods of component name's static Pods, on every node: "component=<name>,tier=control-plane".
func Selector(name string) string { return labels.SelectorFromSet(Labels(name)).String() }

// EtcdClientURL is the URL where an etcd member serves clients on host (an address or name).
func EtcdClientURL(host string) string {
	return "https://" + net.JoinHostPort(host, strconv.Itoa(EtcdClientPort))
}

// EtcdPeerURL is the URL where an etcd member on host talks to its peers; it identifies the member in the member list.
func EtcdPeerURL(host string) string {
	return "https://" + net.JoinHostPort(host, strconv.Itoa(EtcdPeerPort))
}

// EtcdMetricsURL is the URL of an etcd member's metrics and health listener on host.
func EtcdMetricsURL(host string) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(EtcdMetricsPort))
}
