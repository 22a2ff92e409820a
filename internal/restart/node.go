package restart

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// health is which of its probes' endpoints says a component is healthy after a restart: the readiness of etcd
// (its member serves, with a leader) and of the API server (it serves requests, etcd reached), the liveness of
// the controller manager (it has no other) and of the scheduler.
var health = map[string]struct {
	staticpod.Component
	path string
	// addrFlag is the flag that sets the address the probes reach; unset or unspecified: loopback.
	addrFlag string
}{
	staticpod.EtcdName:              {staticpod.Etcd, staticpod.Etcd.ReadinessPath, ""},
	staticpod.APIServerName:         {staticpod.APIServer, staticpod.APIServer.ReadinessPath, "advertise-address"},
	staticpod.ControllerManagerName: {staticpod.ControllerManager, staticpod.ControllerManager.LivenessPath, "bind-address"},
	staticpod.SchedulerName:         {staticpod.Scheduler, staticpod.Scheduler.LivenessPath, "bind-address"},
}

// HealthURL is the URL that says whether the component of manifest m is healthy: staticpod's description of its
// probes, at the address and port its flags give (etcd: its first --listen-metrics-urls; the others: their
// address flag and --secure-port).
func HealthURL(m *staticpod.Manifest, component string) (string, error) {
	h, ok := health[component]
	if !ok {
		return "", fmt.Errorf("%s is not a control-plane component", component)
	}
	flags, err := m.Flags()
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: strings.ToLower(string(h.Scheme)), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(h.Port))), Path: h.path}
	if component == staticpod.EtcdName {
		if v := flags.Get("listen-metrics-urls"); v != "" {
			first, _, _ := strings.Cut(v, ",")
			mu, err := url.Parse(first)
			if err != nil || mu.Host == "" {
				return "", fmt.Errorf("%s: --listen-metrics-urls %q is not a URL", m.File, v)
			}
			port := mu.Port()
			if port == "" {
				port = strconv.Itoa(int(h.Port))
			}
			u.Scheme, u.Host = mu.Scheme, net.JoinHostPort(reachable(mu.Hostname()), port)
		}
		return u.String(), nil
	}
	port := flags.Get("secure-port")
	if port == "" {
		port = strconv.Itoa(int(h.Port))
	}
	u.Host = net.JoinHostPort(reachable(flags.Get(h.addrFlag)), port)
	return u.String(), nil
}

// reachable is where a listener on addr is reached from this node: loopback for an unset or unspecified address.
func reachable(addr string) string {
	if ip := net.ParseIP(addr); addr == "" || ip != nil && ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return addr
}

// NodeProber probes this node's components at their health endpoints (HealthURL, read from the manifests under
// FS at each probe), as the kubelet's probes do: without verifying their serving certificates. etcd is healthy
// once every voting member is too (Cluster), so the next restart starts from a cluster at full strength.
type NodeProber struct {
	FS      nodefs.FS
	Cluster Cluster
	// Client makes the requests; nil: one that skips TLS verification and proxies.
	Client *http.Client
}

// Probe implements Prober.
func (p *NodeProber) Probe(ctx context.Context, component string) error {
	m, err := staticpod.Read(p.FS, component)
	if err != nil {
		return err
	}
	u, err := HealthURL(m, component)
	if err != nil {
		return err
	}
	if err := get(ctx, p.client(), u); err != nil {
		return err
	}
	if component != staticpod.EtcdName || p.Cluster == nil {
		return nil
	}
	members, err := p.Cluster.EtcdMembers(ctx)
	if err != nil {
		return err
	}
	for _, m := range members {
		if !m.IsLearner && !m.Healthy {
			return fmt.Errorf("etcd member %s is not healthy: %s", memberName(m), m.Problem)
		}
	}
	return nil
}

func (p *NodeProber) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			// Health endpoints, probed as the kubelet does: the point is whether the component answers.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// get is nil when u answers 200, and otherwise says what it answered.
func get(ctx context.Context, client *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err // *url.Error: Get "u": why
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
}

// NodeCluster is the cluster as this node reaches it: etcd through the connector with this node's etcd client
// certificate, the API through a kubeconfig. Each call reads the files again, so that calls after a renewal
// use the renewed certificates.
type NodeCluster struct {
	FS nodefs.FS
	// CertDir is the certificates directory.
	CertDir string
	// Kubeconfig is the path of the kubeconfig file, read as given (admin.conf).
	Kubeconfig string
}

// EtcdMembers implements Cluster: the members and their health, as the local member lists them.
func (c *NodeCluster) EtcdMembers(ctx context.Context) ([]etcd.MemberStatus, error) {
	cli, err := etcd.Connect(c.FS, c.CertDir, etcd.Options{})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return cli.Status(ctx)
}

// HandOffEtcdLeadership implements LeaderHandOff for this node's member.
func (c *NodeCluster) HandOffEtcdLeadership(ctx context.Context) (string, error) {
	cli, err := etcd.Connect(c.FS, c.CertDir, etcd.Options{})
	if err != nil {
		return "", err
	}
	defer cli.Close()
	return cli.HandOffLeadership(ctx, etcd.LocalEndpoint)
}

// APIServers implements Cluster (see APIServersOf), this node's API server found by its manifest (SelfEndpoint).
func (c *NodeCluster) APIServers(ctx context.Context) ([]APIServer, error) {
	rc, err := kubeclient.LoadFile(c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", c.Kubeconfig, err)
	}
	client, err := kubeclient.New(rc, kubeclient.Command)
	if err != nil {
		return nil, err
	}
	return APIServersOf(ctx, client, SelfEndpoint(c.FS))
}

// SelfEndpoint is the endpoint of this node's API server, from its manifest: kubeadm's advertise-address
// annotation, else --advertise-address and --secure-port; "" without a manifest that says.
func SelfEndpoint(fsys nodefs.FS) string {
	m, err := staticpod.Read(fsys, staticpod.APIServerName)
	if err != nil {
		return ""
	}
	if ep := m.Pod.Annotations[staticpod.APIServerAdvertiseAddressAnnotation]; ep != "" {
		return ep
	}
	flags, err := m.Flags()
	if err != nil || flags.Get("advertise-address") == "" {
		return ""
	}
	port := flags.Get("secure-port")
	if port == "" {
		port = strconv.Itoa(staticpod.APIServerPort)
	}
	return net.JoinHostPort(flags.Get("advertise-address"), port)
}

// kubernetesSlice is the EndpointSlice of the default/kubernetes Service, where every running API server keeps
// its address while its lease lasts (the API server's endpoint reconciler): one that stopped drops out within
// the lease's 15 s.
const kubernetesSlice = "kubernetes"

// APIServersOf lists the cluster's API servers: the kube-apiserver mirror Pods of kube-system, each ready when
// its Ready condition is true and, if it carries kubeadm's advertise-address annotation, its endpoint is in the
// default/kubernetes EndpointSlice; and the endpoints of that slice no Pod accounts for. The Pods know every
// control-plane node, also those whose API server is down; the slice forgets those within seconds, while a dead
// node's Pod stays Ready until the node controller notices. self is this node's endpoint.
func APIServersOf(ctx context.Context, client kubernetes.Interface, self string) ([]APIServer, error) {
	pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: staticpod.Selector(staticpod.APIServerName)})
	if err != nil {
		return nil, fmt.Errorf("list the kube-apiserver Pods in %s: %w", metav1.NamespaceSystem, err)
	}
	inSlice := map[string]bool{} // endpoint: ready
	sliceKnown := true
	slice, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, kubernetesSlice, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		sliceKnown = false
	case err != nil:
		return nil, fmt.Errorf("read the EndpointSlice %s/%s: %w", metav1.NamespaceDefault, kubernetesSlice, err)
	default:
		for _, ep := range slice.Endpoints {
			for _, addr := range ep.Addresses {
				for _, p := range slice.Ports {
					if p.Port != nil {
						inSlice[net.JoinHostPort(addr, strconv.Itoa(int(*p.Port)))] = ep.Conditions.Ready == nil || *ep.Conditions.Ready
					}
				}
			}
		}
	}
	var out []APIServer
	seen := map[string]bool{}
	for _, pod := range pods.Items {
		s := APIServer{Name: pod.Name, Endpoint: pod.Annotations[staticpod.APIServerAdvertiseAddressAnnotation], Ready: true, ContainerID: containerID(&pod, staticpod.APIServerName)}
		s.Self = s.Endpoint != "" && s.Endpoint == self
		seen[s.Endpoint] = true
		if cond := podReady(&pod); cond == nil || cond.Status != corev1.ConditionTrue {
			s.Ready, s.Problem = false, "its Pod is not Ready"
			if cond != nil && cond.Reason != "" {
				s.Problem += fmt.Sprintf(" (%s: %s)", cond.Reason, cond.Message)
			}
		} else if ready, ok := inSlice[s.Endpoint]; sliceKnown && s.Endpoint != "" && (!ok || !ready) {
			s.Ready, s.Problem = false, fmt.Sprintf("it is not a ready endpoint of the EndpointSlice %s/%s, where every running API server keeps its address", metav1.NamespaceDefault, kubernetesSlice)
		}
		out = append(out, s)
	}
	for ep, ready := range inSlice {
		if seen[ep] {
			continue
		}
		s := APIServer{Name: ep, Endpoint: ep, Self: ep == self, Ready: ready}
		if !ready {
			s.Problem = fmt.Sprintf("its endpoint in the EndpointSlice %s/%s is not ready", metav1.NamespaceDefault, kubernetesSlice)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b APIServer) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// containerID is the runtime's ID of pod's container named name, as its status reports it ("" when it reports
// none), without the "containerd://" kind of prefix.
func containerID(pod *corev1.Pod, name string) string {
	for _, c := range pod.Status.ContainerStatuses {
		if c.Name == name {
			_, id, found := strings.Cut(c.ContainerID, "://")
			if !found {
				return c.ContainerID
			}
			return id
		}
	}
	return ""
}

func podReady(pod *corev1.Pod) *corev1.PodCondition {
	for i, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}
