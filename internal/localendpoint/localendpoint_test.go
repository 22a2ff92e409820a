package localendpoint

import (
	"net"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

const pauseImage = "registry.k8s.io/pause:3.10.2"

func TestManifestGolden(t *testing.T) {
	for _, tt := range []struct {
		file string
		opts Options
	}{
		{"kubeboot-local-endpoint.yaml", Options{Image: pauseImage, Backends: []string{"10.0.0.10:6443", "10.0.0.11:6443"}, CAFile: config.DefaultCACertPath}},
		{"kubeboot-local-endpoint-port.yaml", Options{Image: "registry.example/pause:3.10.2", Port: 16443, Backends: []string{"cp.example:6443"}}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			pod, err := Manifest(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := manifests.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			golden.File(t, filepath.Join("testdata", tt.file), b)
		})
	}
}

func TestManifestFields(t *testing.T) {
	pod, err := Manifest(Options{Image: pauseImage, Backends: []string{"10.0.0.10:6443"}, CAFile: config.DefaultCACertPath})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "kubeboot-local-endpoint" || pod.Namespace != metav1.NamespaceSystem || !pod.Spec.HostNetwork ||
		pod.Spec.PriorityClassName != "system-node-critical" {
		t.Errorf("Pod %s/%s hostNetwork %v priorityClassName %q", pod.Namespace, pod.Name, pod.Spec.HostNetwork, pod.Spec.PriorityClassName)
	}
	// Not the control plane's labels: `-l tier=control-plane` must not find it on workers.
	if d := cmp.Diff(map[string]string{"component": Name, "tier": "node"}, pod.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	c := pod.Spec.Containers[0]
	wantCommand := []string{"/usr/local/bin/kubeboot", "loadbalancer", "--listen=127.0.0.1:7445", "--backend=10.0.0.10:6443",
		"--follow-kubeconfig=/etc/kubernetes/kubelet.conf", "--state-file=/var/lib/kubeboot/local-endpoint/backends.json",
		"--ca-file=/etc/kubernetes/pki/ca.crt"}
	if d := cmp.Diff(wantCommand, c.Command); d != "" {
		t.Errorf("command (-want +got):\n%s", d)
	}
	if c.Image != pauseImage || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %q pull policy %q", c.Image, c.ImagePullPolicy)
	}
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsGroup == nil || *sc.RunAsGroup != 0 {
		t.Errorf("the container must run as root (the pause image's user cannot read kubelet.conf): %+v", sc)
	}
	if c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil {
		t.Error("probes rendered: the load balancer has no health endpoint")
	}
	type mount struct {
		hostPath, mountPath string
		readOnly            bool
		pathType            corev1.HostPathType
	}
	want := map[string]mount{
		"kubeboot":    {"/var/lib/kubeboot/bin/kubeboot", "/usr/local/bin/kubeboot", true, corev1.HostPathFile},
		"kubeconfig":  {"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/kubelet.conf", true, corev1.HostPathFile},
		"kubelet-pki": {"/var/lib/kubelet/pki", "/var/lib/kubelet/pki", true, corev1.HostPathDirectoryOrCreate},
		"state":       {"/var/lib/kubeboot/local-endpoint", "/var/lib/kubeboot/local-endpoint", false, corev1.HostPathDirectoryOrCreate},
		"ca":          {"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.crt", true, corev1.HostPathFile},
	}
	got := map[string]mount{}
	for _, v := range pod.Spec.Volumes {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == v.Name })
		if i < 0 || v.HostPath == nil || v.HostPath.Type == nil {
			t.Errorf("volume %s: no mount or not a typed hostPath: %+v", v.Name, v)
			continue
		}
		m := c.VolumeMounts[i]
		got[v.Name] = mount{v.HostPath.Path, m.MountPath, m.ReadOnly, *v.HostPath.Type}
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(mount{})); d != "" {
		t.Errorf("volumes (-want +got):\n%s", d)
	}
	if len(c.VolumeMounts) != len(pod.Spec.Volumes) {
		t.Errorf("%d mounts for %d volumes", len(c.VolumeMounts), len(pod.Spec.Volumes))
	}
}

func TestManifestErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		want string
	}{
		{"no image", Options{Backends: []string{"10.0.0.10:6443"}}, "render the static Pod kubeboot-local-endpoint: no image (the release's pause image)"},
		{"no backend", Options{Image: pauseImage}, "render the static Pod kubeboot-local-endpoint: no API server to start with"},
		{"backend without a port", Options{Image: pauseImage, Backends: []string{"10.0.0.10"}},
			`render the static Pod kubeboot-local-endpoint: API server "10.0.0.10" is not HOST:PORT: address 10.0.0.10: missing port in address`},
		{"port out of range", Options{Image: pauseImage, Port: 70000, Backends: []string{"10.0.0.10:6443"}},
			"render the static Pod kubeboot-local-endpoint: port 70000 is not between 1 and 65535"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod, err := Manifest(tt.opts)
			if pod != nil {
				t.Errorf("got a Pod with the error")
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v\nwant  %s", err, tt.want)
			}
		})
	}
}

func TestRBAC(t *testing.T) {
	c := fake.NewClientset()
	for i := range 2 {
		if err := Apply(t.Context(), c); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	role, err := c.RbacV1().ClusterRoles().Get(t.Context(), "kubeboot:local-endpoint", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// loadbalancer.APIServers only gets default/kubernetes.
	wantRules := []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{"discovery.k8s.io"},
		Resources: []string{"endpointslices"}, ResourceNames: []string{"kubernetes"}}}
	if d := cmp.Diff(wantRules, role.Rules); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}
	b, err := c.RbacV1().ClusterRoleBindings().Get(t.Context(), "kubeboot:local-endpoint", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "kubeboot:local-endpoint"}
	wantSubjects := []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "system:nodes"},
		{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "system:bootstrappers:kubeadm:default-node-token"}}
	if d := cmp.Diff(wantRef, b.RoleRef); d != "" {
		t.Errorf("roleRef (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantSubjects, b.Subjects); d != "" {
		t.Errorf("subjects (-want +got):\n%s", d)
	}
}

func TestLocalServer(t *testing.T) {
	if got := LocalServer(7445); got != "https://127.0.0.1:7445" {
		t.Errorf("LocalServer(7445) = %q", got)
	}
}

func TestCertSANs(t *testing.T) {
	enabled := &config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{Enabled: true, Port: 7445}}
	for _, tt := range []struct {
		name     string
		k        *config.KubebootConfiguration
		certSANs []string
		want     []string
	}{
		{"no KubebootConfiguration", nil, nil, nil},
		{"no setting", &config.KubebootConfiguration{}, nil, nil},
		{"disabled", &config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{Port: 7445}}, nil, nil},
		{"enabled", enabled, []string{"api.example"}, []string{"127.0.0.1"}},
		{"already there", enabled, []string{"api.example", "127.0.0.1"}, nil},
		{"already there as a mapped address", enabled, []string{"::ffff:127.0.0.1"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cluster := &config.ClusterConfiguration{APIServer: config.APIServer{CertSANs: tt.certSANs}}
			if d := cmp.Diff(tt.want, CertSANs(tt.k, cluster)); d != "" {
				t.Errorf("CertSANs (-want +got):\n%s", d)
			}
		})
	}
}

// TestCertSANsReachTheCertificate checks that what CertSANs returns, put into apiServer.certSANs, puts 127.0.0.1
// into the API server's certificate.
func TestCertSANsReachTheCertificate(t *testing.T) {
	enabled := &config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{Enabled: true, Port: 7445}}
	cluster := &config.Cluster{ClusterConfiguration: config.ClusterConfiguration{
		Networking: config.Networking{ServiceSubnet: config.DefaultServiceSubnet, DNSDomain: config.DefaultDNSDomain},
	}}
	cluster.APIServer.CertSANs = append(cluster.APIServer.CertSANs, CertSANs(enabled, &cluster.ClusterConfiguration)...)
	node := &config.Node{LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "10.0.0.10", BindPort: 6443}}
	alt, err := pki.APIServerSANs(cluster, node)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(alt.IPs, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
		t.Errorf("the API server's SANs %v lack 127.0.0.1", alt.IPs)
	}
}
