// Package manifests renders the control plane's static Pods (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) as kubeadm writes them to /etc/kubernetes/manifests, and writes them. The one deliberate
// difference: containers use nodeRegistration.imagePullPolicy, where kubeadm always writes IfNotPresent.
//
// Rendering is pure: everything kubeadm reads from the machine (which CA directories exist, *_proxy variables,
// whether the cluster CA key is absent) comes in through Host, so golden files are stable.
package manifests

import (
	"math"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Names and values kubeadm uses in the manifests; the components' own facts are package staticpod's.
const (
	probePortName = "probe-port"

	systemNodeCriticalPriority = int32(2000001000)
	defaultHealthCheckTimeout  = 4 * time.Minute
)

// caCertsDir is mounted into the apiserver and controller-manager so they trust the machine's CAs (OIDC, webhooks).
const caCertsDir = "/etc/ssl/certs"

// caCertsExtraDirs may be targets of symlinks in /etc/ssl/certs on some distributions; kubeadm mounts each one
// that exists so those links resolve inside the container.
var caCertsExtraDirs = []string{
	"/etc/pki/ca-trust",
	"/etc/pki/tls/certs",
	"/etc/ca-certificates",
	"/usr/share/ca-certificates",
	"/usr/local/share/ca-certificates",
}

// Host is what kubeadm takes from the machine when it renders manifests.
type Host struct {
	// CACertDirs lists the entries of caCertsExtraDirs that exist on the node.
	CACertDirs []string
	// ProxyEnv holds the *_proxy variables of kubeboot's environment; kubeadm passes them to the apiserver,
	// controller-manager and scheduler so they reach webhooks and clouds through the same proxy.
	ProxyEnv []corev1.EnvVar
	// ExternalCA is true when ca.crt exists without ca.key: the controller-manager must then not sign certificates.
	ExternalCA bool
}

// DetectHost reads the Host facts from fs (the node's filesystem) and environ (os.Environ()).
func DetectHost(fs nodefs.FS, certificatesDir string, environ []string) Host {
	var h Host
	for _, dir := range caCertsExtraDirs {
		if fs.Exists(dir) {
			h.CACertDirs = append(h.CACertDirs, dir)
		}
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if ok && value != "" && strings.HasSuffix(strings.ToLower(name), "_proxy") {
			h.ProxyEnv = append(h.ProxyEnv, corev1.EnvVar{Name: name, Value: value})
		}
	}
	h.ExternalCA = fs.Exists(path.Join(certificatesDir, "ca.crt")) && !fs.Exists(path.Join(certificatesDir, "ca.key"))
	return h
}

// componentPod wraps one control-plane container into the Pod every kubeadm static Pod shares.
func componentPod(c corev1.Container, volumes map[string]corev1.Volume, annotations map[string]string) *corev1.Pod {
	return newPod(c, staticpod.Labels(c.Name), volumes, annotations)
}

// StaticPod wraps the container of one of kubeboot's own node components into a static Pod shaped as the control
// plane's: named after the container, in kube-system, hostNetwork, system-node-critical, RuntimeDefault seccomp,
// the image pulled IfNotPresent, and volumes mounted from the host, sorted by name (c's VolumeMounts are
// replaced). labels stand in for the control plane's component and tier labels, which other tools select on.
func StaticPod(c corev1.Container, labels map[string]string, volumes []config.HostPathMount) *corev1.Pod {
	hp := newHostPaths()
	hp.addExtra(volumes)
	c.VolumeMounts = hp.volumeMounts()
	c.ImagePullPolicy = pullPolicy
	return newPod(c, labels, hp.volumes, nil)
}

func newPod(c corev1.Container, labels map[string]string, volumes map[string]corev1.Volume, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.Name,
			Namespace:   metav1.NamespaceSystem,
			Labels:      labels,
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			Containers:        []corev1.Container{c},
			Priority:          ptrTo(systemNodeCriticalPriority),
			PriorityClassName: "system-node-critical",
			HostNetwork:       true,
			Volumes:           sortedVolumes(volumes),
			SecurityContext: &corev1.PodSecurityContext{
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

func cpuRequest(cpu string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}
}

// The three probes of kubeadm (their paths and schemes: staticpod.Component): liveness waits one period before its first check; readiness checks every second
// from the start; startup allows the whole control-plane health-check timeout before the kubelet gives up.
func livenessProbe(host, urlPath string, scheme corev1.URIScheme) *corev1.Probe {
	return httpProbe(host, urlPath, scheme, 10, 15, 8, 10)
}

func readinessProbe(host, urlPath string, scheme corev1.URIScheme) *corev1.Probe {
	return httpProbe(host, urlPath, scheme, 0, 15, 3, 1)
}

func startupProbe(host, urlPath string, scheme corev1.URIScheme, timeout time.Duration) *corev1.Probe {
	const period = 10
	failures := int32(math.Ceil(timeout.Seconds() / period))
	return httpProbe(host, urlPath, scheme, period, 15, failures, period)
}

func httpProbe(host, urlPath string, scheme corev1.URIScheme, initialDelay, timeout, failures, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Host:   host,
			Path:   urlPath,
			Port:   intstr.FromString(probePortName),
			Scheme: scheme,
		}},
		InitialDelaySeconds: initialDelay,
		TimeoutSeconds:      timeout,
		FailureThreshold:    failures,
		PeriodSeconds:       period,
	}
}

func probePort(port int32) []corev1.ContainerPort {
	return []corev1.ContainerPort{{Name: probePortName, ContainerPort: port, Protocol: corev1.ProtocolTCP}}
}

// probeHost turns a bind address into the host a probe can reach: the kubelet cannot connect to an unspecified
// address, and an empty host makes it probe the Pod IP (the node's, with hostNetwork).
func probeHost(addr string) string {
	if addr == "0.0.0.0" || addr == "::" {
		return ""
	}
	return addr
}

// healthCheckTimeout is how long the startup probe lets a component come up.
func healthCheckTimeout(node *config.Node) time.Duration {
	if t := node.Timeouts; t != nil && t.ControlPlaneComponentHealthCheck != nil {
		return t.ControlPlaneComponentHealthCheck.Duration
	}
	return defaultHealthCheckTimeout
}

// isIPv6 reports whether addr is an IPv6 address; etcd and the probes then use ::1 instead of 127.0.0.1.
func isIPv6(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	return err == nil && ip.Is6() && !ip.Is4In6()
}

func loopback(advertiseAddress string) string {
	if isIPv6(advertiseAddress) {
		return "::1"
	}
	return "127.0.0.1"
}

// pullPolicy is the static Pods' imagePullPolicy: IfNotPresent, always, as kubeadm writes it
// (phases/controlplane/manifests.go, phases/etcd/local.go). nodeRegistration.imagePullPolicy governs only the
// preflight pull; honouring it here made kubeadm's `upgrade apply` rewrite, and restart, every static Pod of a
// kubeboot cluster made with imagePullPolicy Never.
const pullPolicy = corev1.PullIfNotPresent

// mergeEnv returns the union of the lists, later lists winning on equal names, sorted by name as kubeadm does.
func mergeEnv(lists ...[]corev1.EnvVar) []corev1.EnvVar {
	byName := map[string]corev1.EnvVar{}
	for _, l := range lists {
		for _, e := range l {
			byName[e.Name] = e
		}
	}
	if len(byName) == 0 {
		return nil
	}
	out := make([]corev1.EnvVar, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b corev1.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func extraEnv(envs []config.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(envs))
	for _, e := range envs {
		out = append(out, e.EnvVar)
	}
	return out
}
