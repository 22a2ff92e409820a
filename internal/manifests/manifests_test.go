package manifests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// baseConfig is a configuration defaulted the way bundle.go promises: what kubeadm's defaulting makes of
// testdata/kubeadm/ipv4-default/kubeadm.yaml.
func baseConfig() *config.Init {
	return &config.Init{
		Init: config.InitConfiguration{
			NodeRegistration: config.NodeRegistrationOptions{
				Name:            "cp1",
				CRISocket:       config.DefaultCRISocket,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Taints: []corev1.Taint{{
					Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule,
				}},
			},
			LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "10.77.0.10", BindPort: 6443},
			Timeouts: &config.Timeouts{
				ControlPlaneComponentHealthCheck: duration(4 * time.Minute),
				KubeletHealthCheck:               duration(4 * time.Minute),
				KubernetesAPICall:                duration(time.Minute),
				EtcdAPICall:                      duration(2 * time.Minute),
				TLSBootstrap:                     duration(5 * time.Minute),
				Discovery:                        duration(5 * time.Minute),
				UpgradeManifests:                 duration(5 * time.Minute),
			},
		},
		Cluster: config.ClusterConfiguration{
			Etcd: config.Etcd{Local: &config.LocalEtcd{DataDir: config.DefaultEtcdDataDir}},
			Networking: config.Networking{
				ServiceSubnet: config.DefaultServiceSubnet,
				PodSubnet:     "10.244.0.0/16",
				DNSDomain:     config.DefaultDNSDomain,
			},
			KubernetesVersion:           "v1.37.2",
			CertificatesDir:             config.DefaultCertificatesDir,
			ImageRepository:             config.DefaultImageRepository,
			ClusterName:                 config.DefaultClusterName,
			EncryptionAlgorithm:         config.EncryptionAlgorithmRSA2048,
			CertificateValidityPeriod:   duration(8760 * time.Hour),
			CACertificateValidityPeriod: duration(87600 * time.Hour),
		},
		Kubelet: &kubeletv1beta1.KubeletConfiguration{},
		Proxy:   &kubeproxyv1alpha1.KubeProxyConfiguration{},
	}
}

// extrasConfig mirrors testdata/kubeadm/extras/kubeadm.yaml: every override kubeadm offers.
func extrasConfig() *config.Init {
	cfg := baseConfig()
	cfg.Init.LocalAPIEndpoint = config.APIEndpoint{AdvertiseAddress: "192.168.50.7", BindPort: 8443}
	cfg.Init.NodeRegistration.Name = "node-a"
	cfg.Init.NodeRegistration.CRISocket = "unix:///run/containerd/containerd.sock"
	cfg.Init.NodeRegistration.ImagePullPolicy = corev1.PullNever
	cfg.Init.Timeouts.ControlPlaneComponentHealthCheck = duration(2*time.Minute + 35*time.Second)
	c := &cfg.Cluster
	c.ClusterName = "lab"
	c.ImageRepository = "images.lab.example"
	c.CertificatesDir = "/srv/pki"
	c.Networking = config.Networking{ServiceSubnet: "10.100.0.0/16", DNSDomain: "lab.local"}
	c.Etcd.Local = &config.LocalEtcd{
		ImageMeta: config.ImageMeta{ImageRepository: "etcd.lab.example", ImageTag: "3.5.21-0"},
		DataDir:   "/var/lib/etcd-lab",
		ExtraArgs: []config.Arg{
			{Name: "listen-metrics-urls", Value: "https://127.0.0.1:2391,http://10.0.0.1:2392"},
			{Name: "snapshot-count", Value: "5000"},
			{Name: "log-level", Value: "debug"},
		},
		ExtraEnvs: []config.EnvVar{{EnvVar: corev1.EnvVar{Name: "ETCD_UNSUPPORTED_ARCH", Value: "amd64"}}},
	}
	c.APIServer.ExtraArgs = []config.Arg{
		{Name: "authorization-mode", Value: "Node,RBAC,Webhook"},
		{Name: "audit-log-path", Value: "/var/log/audit.log"},
		{Name: "feature-gates", Value: "A=true"},
		{Name: "feature-gates", Value: "B=false"},
		{Name: "secure-port", Value: "9443"},
	}
	c.APIServer.ExtraVolumes = []config.HostPathMount{
		{Name: "audit", HostPath: "/var/log", MountPath: "/var/log", PathType: corev1.HostPathDirectoryOrCreate},
		{Name: "ca-certs", HostPath: "/opt/certs", MountPath: "/etc/ssl/certs", ReadOnly: true},
	}
	c.APIServer.ExtraEnvs = []config.EnvVar{{EnvVar: corev1.EnvVar{Name: "GODEBUG", Value: "x509sha1=1"}}}
	c.ControllerManager.ExtraArgs = []config.Arg{
		{Name: "bind-address", Value: "0.0.0.0"},
		{Name: "flex-volume-plugin-dir", Value: "/opt/flex"},
		{Name: "controllers", Value: "*,bootstrapsigner,tokencleaner,-nodeipam"},
	}
	c.Scheduler.ExtraArgs = []config.Arg{{Name: "bind-address", Value: "10.0.0.5"}, {Name: "v", Value: "4"}}
	c.Scheduler.ExtraVolumes = []config.HostPathMount{{
		Name: "sched-config", HostPath: "/etc/kubernetes/sched.yaml", MountPath: "/etc/kubernetes/sched.yaml",
		ReadOnly: true, PathType: corev1.HostPathFile,
	}}
	return cfg
}

// externalEtcdConfig mirrors testdata/kubeadm/external-etcd/kubeadm.yaml.
func externalEtcdConfig() *config.Init {
	cfg := baseConfig()
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "10.77.0.11"
	cfg.Init.NodeRegistration.Name = "cp2"
	cfg.Cluster.ControlPlaneEndpoint = "lb.lab:6443"
	cfg.Cluster.Networking.PodSubnet = ""
	cfg.Cluster.Etcd = config.Etcd{External: &config.ExternalEtcd{
		Endpoints: []string{"https://10.77.0.2:2379", "https://10.77.0.3:2379"},
		CAFile:    "/etc/etcd/pki/ca.crt",
		CertFile:  "/etc/etcd/pki/client/apiserver.crt",
		KeyFile:   "/opt/keys/apiserver.key",
	}}
	return cfg
}

// ipv6Config mirrors testdata/kubeadm/ipv6/kubeadm.yaml.
func ipv6Config() *config.Init {
	cfg := baseConfig()
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "fd00:77::10"
	cfg.Init.NodeRegistration.Name = "cp6"
	cfg.Cluster.Networking.ServiceSubnet = "fd00:96::/108"
	cfg.Cluster.Networking.PodSubnet = "fd00:244::/56"
	return cfg
}

// debianHost is what DetectHost finds on the Debian 12 machines the references were generated on.
var debianHost = Host{CACertDirs: []string{"/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates"}}

type renderCase struct {
	name           string
	cfg            *config.Init
	host           Host
	initialCluster []EtcdMember
}

func renderCases() []renderCase {
	return []renderCase{
		{name: "ipv4-default", cfg: baseConfig(), host: debianHost},
		{name: "extras", cfg: extrasConfig(), host: debianHost},
		{name: "external-etcd", cfg: externalEtcdConfig(), host: debianHost},
		{name: "ipv6", cfg: ipv6Config(), host: debianHost},
		{
			name: "proxy-external-ca",
			cfg:  baseConfig(),
			host: Host{
				ProxyEnv: []corev1.EnvVar{
					{Name: "https_proxy", Value: "http://proxy.lab:3128"},
					{Name: "NO_PROXY", Value: "10.0.0.0/8"},
				},
				ExternalCA: true,
			},
		},
		{
			name: "etcd-join-member",
			cfg:  baseConfig(),
			host: debianHost,
			initialCluster: []EtcdMember{
				{Name: "cp0", PeerURL: "https://10.77.0.9:2380"},
				{Name: "cp1", PeerURL: "https://10.77.0.10:2380"},
			},
		},
	}
}

// renderAll returns the serialized manifests of a case by file name; external etcd has no etcd.yaml.
func renderAll(t *testing.T, rc renderCase) map[string][]byte {
	t.Helper()
	pods := []*corev1.Pod{
		APIServer(rc.cfg.ClusterPart(), rc.cfg.NodePart(), rc.host),
		ControllerManager(rc.cfg.ClusterPart(), rc.cfg.NodePart(), rc.host),
		Scheduler(rc.cfg.ClusterPart(), rc.cfg.NodePart(), rc.host),
	}
	etcd, err := Etcd(rc.cfg.ClusterPart(), rc.cfg.NodePart(), rc.initialCluster)
	switch {
	case rc.cfg.Cluster.Etcd.External != nil:
		if !errors.Is(err, ErrExternalEtcd) {
			t.Fatalf("Etcd() with external etcd: error %v, want %v", err, ErrExternalEtcd)
		}
	case err != nil:
		t.Fatalf("Etcd(): %v", err)
	default:
		pods = append(pods, etcd)
	}
	out := map[string][]byte{}
	for _, p := range pods {
		b, err := Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p.Name+".yaml"] = b
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, rc := range renderCases() {
		t.Run(rc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "golden", rc.name)
			got := renderAll(t, rc)
			golden.Dir(t, dir, got)
		})
	}
}

// kubeadmRefs is the directory of what upstream kubeadm of release r rendered (generate.sh).
func kubeadmRefs(r *release.Release) string {
	return filepath.Join("testdata", "kubeadm", fmt.Sprintf("v1.%d", r.Minor))
}

// TestMatchesKubeadm compares the rendering with what upstream kubeadm of each release wrote for the same
// configuration at that release's version (testdata/kubeadm/v1.MINOR/*/kubeadm.yaml, rendered by generate.sh),
// byte for byte.
func TestMatchesKubeadm(t *testing.T) {
	for _, r := range release.All() {
		if _, err := os.Stat(kubeadmRefs(r)); err != nil {
			t.Errorf("no references of kubeadm %s: %v (run testdata/kubeadm/generate.sh)", r.Kubeadm, err)
		}
		for _, rc := range renderCases() {
			rc.cfg.Cluster.KubernetesVersion = r.Kubeadm
			dir := filepath.Join(kubeadmRefs(r), rc.name)
			if _, err := os.Stat(dir); err != nil {
				continue // a kubeboot-only case
			}
			t.Run(r.Kubeadm+"/"+rc.name, func(t *testing.T) { matchKubeadm(t, rc, dir) })
		}
	}
}

func matchKubeadm(t *testing.T, rc renderCase, dir string) {
	refs, err := filepath.Glob(filepath.Join(dir, "*.yaml.ref"))
	if err != nil {
		t.Fatal(err)
	}
	got := renderAll(t, rc)
	if len(refs) != len(got) {
		t.Fatalf("kubeadm wrote %d manifests, kubeboot renders %d", len(refs), len(got))
	}
	for _, ref := range refs {
		name := strings.TrimSuffix(filepath.Base(ref), ".ref")
		want, err := os.ReadFile(ref)
		if err != nil {
			t.Fatal(err)
		}
		b := got[name]
		if !bytes.Equal(b, want) {
			t.Errorf("%s differs from kubeadm's %s\n--- kubeboot\n%s\n--- kubeadm\n%s", name, ref, b, want)
		}
	}
}

// decode reads a manifest back the way the kubelet does, refusing unknown fields.
func decode(t *testing.T, b []byte) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	return &pod
}

func roundTrip(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	b, err := Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, b)
}

func flagsOf(pod *corev1.Pod) []string { return pod.Spec.Containers[0].Command[1:] }

func hasFlag(pod *corev1.Pod, flag string) bool { return slices.Contains(flagsOf(pod), flag) }

func TestAPIServerFlags(t *testing.T) {
	pod := roundTrip(t, APIServer(baseConfig().ClusterPart(), baseConfig().NodePart(), debianHost))
	c := pod.Spec.Containers[0]
	if c.Command[0] != "kube-apiserver" {
		t.Fatalf("command[0] = %q", c.Command[0])
	}
	for _, f := range []string{
		"--advertise-address=10.77.0.10",
		"--allow-privileged=true",
		"--authorization-mode=Node,RBAC",
		"--client-ca-file=/etc/kubernetes/pki/ca.crt",
		"--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth=true",
		"--etcd-servers=https://127.0.0.1:2379",
		"--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
		"--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
		"--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
		"--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt",
		"--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt",
		"--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key",
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--secure-port=6443",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=/etc/kubernetes/pki/sa.pub",
		"--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
		"--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
	} {
		if !hasFlag(pod, f) {
			t.Errorf("kube-apiserver lacks %s", f)
		}
	}
	if !slices.IsSorted(flagsOf(pod)) {
		t.Errorf("default flags are not sorted: %v", flagsOf(pod))
	}
	if got := pod.Annotations[staticpod.APIServerAdvertiseAddressAnnotation]; got != "10.77.0.10:6443" {
		t.Errorf("annotation %s = %q, want 10.77.0.10:6443", staticpod.APIServerAdvertiseAddressAnnotation, got)
	}
	if c.Image != "registry.k8s.io/kube-apiserver:v1.37.2" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %q policy %q", c.Image, c.ImagePullPolicy)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 6443 || c.Ports[0].Name != "probe-port" {
		t.Errorf("ports = %+v", c.Ports)
	}
	if got := c.Resources.Requests.Cpu().String(); got != "250m" {
		t.Errorf("cpu request = %s, want 250m", got)
	}
	if c.Env != nil {
		t.Errorf("env = %v, want none", c.Env)
	}
}

func TestControlPlanePodCommon(t *testing.T) {
	cfg := baseConfig()
	etcd, err := Etcd(cfg.ClusterPart(), cfg.NodePart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range []*corev1.Pod{APIServer(cfg.ClusterPart(), cfg.NodePart(), debianHost), ControllerManager(cfg.ClusterPart(), cfg.NodePart(), debianHost), Scheduler(cfg.ClusterPart(), cfg.NodePart(), debianHost), etcd} {
		p := roundTrip(t, pod)
		t.Run(p.Name, func(t *testing.T) {
			if p.APIVersion != "v1" || p.Kind != "Pod" || p.Namespace != "kube-system" {
				t.Errorf("type/namespace = %s %s %s", p.APIVersion, p.Kind, p.Namespace)
			}
			if p.Labels["component"] != p.Name || p.Labels["tier"] != "control-plane" || len(p.Labels) != 2 {
				t.Errorf("labels = %v", p.Labels)
			}
			s := p.Spec
			if !s.HostNetwork || s.PriorityClassName != "system-node-critical" || s.Priority == nil || *s.Priority != 2000001000 {
				t.Errorf("hostNetwork %v priorityClass %q priority %v", s.HostNetwork, s.PriorityClassName, s.Priority)
			}
			if s.SecurityContext == nil || s.SecurityContext.SeccompProfile == nil ||
				s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("securityContext = %+v", s.SecurityContext)
			}
			for k := range p.Annotations {
				if strings.HasPrefix(k, "kubernetes.io/config.") {
					t.Errorf("annotation %s is the kubelet's to set", k)
				}
			}
			// Every mount has its volume and every volume is a hostPath.
			vols := map[string]bool{}
			for _, v := range s.Volumes {
				if v.HostPath == nil {
					t.Errorf("volume %s is not a hostPath", v.Name)
				}
				vols[v.Name] = true
			}
			for _, m := range s.Containers[0].VolumeMounts {
				if !vols[m.Name] {
					t.Errorf("mount %s has no volume", m.Name)
				}
			}
			if len(vols) != len(s.Containers[0].VolumeMounts) {
				t.Errorf("%d volumes for %d mounts", len(vols), len(s.Containers[0].VolumeMounts))
			}
		})
	}
}

func TestProbes(t *testing.T) {
	cfg := baseConfig()
	cfg.Init.Timeouts.ControlPlaneComponentHealthCheck = duration(95 * time.Second)
	etcd, err := Etcd(cfg.ClusterPart(), cfg.NodePart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	type probeWant struct {
		host, path string
		scheme     corev1.URIScheme
		delay      int32
		failures   int32
		period     int32
	}
	tests := []struct {
		pod                          *corev1.Pod
		port                         int32
		liveness, readiness, startup *probeWant
	}{
		{
			pod: APIServer(cfg.ClusterPart(), cfg.NodePart(), debianHost), port: 6443,
			liveness:  &probeWant{"10.77.0.10", "/livez", "HTTPS", 10, 8, 10},
			readiness: &probeWant{"10.77.0.10", "/readyz", "HTTPS", 0, 3, 1},
			startup:   &probeWant{"10.77.0.10", "/livez", "HTTPS", 10, 10, 10},
		},
		{
			pod: ControllerManager(cfg.ClusterPart(), cfg.NodePart(), debianHost), port: 10257,
			liveness: &probeWant{"127.0.0.1", "/healthz", "HTTPS", 10, 8, 10},
			startup:  &probeWant{"127.0.0.1", "/healthz", "HTTPS", 10, 10, 10},
		},
		{
			pod: Scheduler(cfg.ClusterPart(), cfg.NodePart(), debianHost), port: 10259,
			liveness:  &probeWant{"127.0.0.1", "/livez", "HTTPS", 10, 8, 10},
			readiness: &probeWant{"127.0.0.1", "/readyz", "HTTPS", 0, 3, 1},
			startup:   &probeWant{"127.0.0.1", "/livez", "HTTPS", 10, 10, 10},
		},
		{
			pod: etcd, port: 2381,
			liveness:  &probeWant{"127.0.0.1", "/livez", "HTTP", 10, 8, 10},
			readiness: &probeWant{"127.0.0.1", "/readyz", "HTTP", 0, 3, 1},
			startup:   &probeWant{"127.0.0.1", "/readyz", "HTTP", 10, 10, 10},
		},
	}
	check := func(t *testing.T, kind string, got *corev1.Probe, want *probeWant) {
		t.Helper()
		if want == nil {
			if got != nil {
				t.Errorf("%s probe set, kubeadm has none", kind)
			}
			return
		}
		if got == nil || got.HTTPGet == nil {
			t.Fatalf("%s probe missing", kind)
		}
		g := got.HTTPGet
		if g.Host != want.host || g.Path != want.path || g.Scheme != want.scheme || g.Port.String() != "probe-port" {
			t.Errorf("%s probe GET %s://%s:%s%s, want %s://%s:probe-port%s", kind, g.Scheme, g.Host, g.Port.String(), g.Path, want.scheme, want.host, want.path)
		}
		if got.InitialDelaySeconds != want.delay || got.FailureThreshold != want.failures || got.PeriodSeconds != want.period || got.TimeoutSeconds != 15 {
			t.Errorf("%s probe delay %d failures %d period %d timeout %d, want %d %d %d 15", kind,
				got.InitialDelaySeconds, got.FailureThreshold, got.PeriodSeconds, got.TimeoutSeconds, want.delay, want.failures, want.period)
		}
	}
	for _, tt := range tests {
		pod := roundTrip(t, tt.pod)
		t.Run(pod.Name, func(t *testing.T) {
			c := pod.Spec.Containers[0]
			check(t, "liveness", c.LivenessProbe, tt.liveness)
			check(t, "readiness", c.ReadinessProbe, tt.readiness)
			check(t, "startup", c.StartupProbe, tt.startup)
			if len(c.Ports) != 1 || c.Ports[0].ContainerPort != tt.port {
				t.Errorf("ports = %+v, want probe-port %d", c.Ports, tt.port)
			}
		})
	}
}

func volumeByName(pod *corev1.Pod, name string) (corev1.Volume, corev1.VolumeMount, bool) {
	var vol corev1.Volume
	var mount corev1.VolumeMount
	found := 0
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			vol = v
			found++
		}
	}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if m.Name == name {
			mount = m
			found++
		}
	}
	return vol, mount, found == 2
}

func TestVolumes(t *testing.T) {
	cfg := baseConfig()
	etcd, err := Etcd(cfg.ClusterPart(), cfg.NodePart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	type vol struct {
		name, hostPath, mountPath string
		readOnly                  bool
		pathType                  corev1.HostPathType
	}
	dir := corev1.HostPathDirectoryOrCreate
	file := corev1.HostPathFileOrCreate
	caVols := []vol{
		{"ca-certs", "/etc/ssl/certs", "/etc/ssl/certs", true, dir},
		{"etc-ca-certificates", "/etc/ca-certificates", "/etc/ca-certificates", true, dir},
		{"usr-share-ca-certificates", "/usr/share/ca-certificates", "/usr/share/ca-certificates", true, dir},
		{"usr-local-share-ca-certificates", "/usr/local/share/ca-certificates", "/usr/local/share/ca-certificates", true, dir},
	}
	tests := []struct {
		pod  *corev1.Pod
		want []vol
	}{
		{APIServer(cfg.ClusterPart(), cfg.NodePart(), debianHost), append([]vol{{"k8s-certs", "/etc/kubernetes/pki", "/etc/kubernetes/pki", true, dir}}, caVols...)},
		{ControllerManager(cfg.ClusterPart(), cfg.NodePart(), debianHost), append([]vol{
			{"k8s-certs", "/etc/kubernetes/pki", "/etc/kubernetes/pki", true, dir},
			{"kubeconfig", "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/controller-manager.conf", true, file},
		}, caVols...)},
		{Scheduler(cfg.ClusterPart(), cfg.NodePart(), debianHost), []vol{
			{"kubeconfig", "/etc/kubernetes/scheduler.conf", "/etc/kubernetes/scheduler.conf", true, file},
		}},
		{etcd, []vol{
			{"etcd-data", "/var/lib/etcd", "/var/lib/etcd", false, dir},
			{"etcd-certs", "/etc/kubernetes/pki/etcd", "/etc/kubernetes/pki/etcd", false, dir},
		}},
	}
	for _, tt := range tests {
		pod := roundTrip(t, tt.pod)
		t.Run(pod.Name, func(t *testing.T) {
			if len(pod.Spec.Volumes) != len(tt.want) {
				t.Errorf("%d volumes, want %d", len(pod.Spec.Volumes), len(tt.want))
			}
			for _, w := range tt.want {
				v, m, ok := volumeByName(pod, w.name)
				if !ok {
					t.Errorf("volume %s missing", w.name)
					continue
				}
				if v.HostPath.Path != w.hostPath || *v.HostPath.Type != w.pathType || m.MountPath != w.mountPath || m.ReadOnly != w.readOnly {
					t.Errorf("volume %s: host %s (%s) mount %s ro=%v, want %s (%s) %s ro=%v", w.name,
						v.HostPath.Path, *v.HostPath.Type, m.MountPath, m.ReadOnly, w.hostPath, w.pathType, w.mountPath, w.readOnly)
				}
			}
		})
	}
}

func TestExtraArgsOverride(t *testing.T) {
	pod := roundTrip(t, APIServer(extrasConfig().ClusterPart(), extrasConfig().NodePart(), debianHost))
	flags := flagsOf(pod)
	// Overridden defaults vanish from their sorted place; overrides follow in the user's order, repeats kept.
	tail := []string{
		"--authorization-mode=Node,RBAC,Webhook",
		"--audit-log-path=/var/log/audit.log",
		"--feature-gates=A=true",
		"--feature-gates=B=false",
		"--secure-port=9443",
	}
	if !slices.Equal(flags[len(flags)-len(tail):], tail) {
		t.Errorf("flags end with %v, want %v", flags[len(flags)-len(tail):], tail)
	}
	for _, gone := range []string{"--authorization-mode=Node,RBAC", "--secure-port=8443"} {
		if hasFlag(pod, gone) {
			t.Errorf("default %s kept although overridden", gone)
		}
	}
	// The probe port follows the endpoint's bindPort, not --secure-port, as in kubeadm.
	if got := pod.Spec.Containers[0].Ports[0].ContainerPort; got != 8443 {
		t.Errorf("probe port = %d, want 8443", got)
	}
	// A user volume with a default's name replaces it.
	if v, m, ok := volumeByName(pod, "ca-certs"); !ok || v.HostPath.Path != "/opt/certs" || m.MountPath != "/etc/ssl/certs" {
		t.Errorf("ca-certs not replaced by the extra volume: %+v %+v", v, m)
	}
	if v, _, ok := volumeByName(pod, "audit"); !ok || v.HostPath.Path != "/var/log" {
		t.Errorf("extra volume audit missing")
	}
	// nodeRegistration.imagePullPolicy is Never in this configuration; the static Pods say IfNotPresent, as kubeadm's.
	if c := pod.Spec.Containers[0]; c.ImagePullPolicy != corev1.PullIfNotPresent || c.Image != "images.lab.example/kube-apiserver:v1.37.2" {
		t.Errorf("image %s policy %s, want images.lab.example/kube-apiserver:v1.37.2 IfNotPresent", c.Image, c.ImagePullPolicy)
	}
	if env := pod.Spec.Containers[0].Env; len(env) != 1 || env[0].Name != "GODEBUG" {
		t.Errorf("env = %v", env)
	}

	kcm := roundTrip(t, ControllerManager(extrasConfig().ClusterPart(), extrasConfig().NodePart(), debianHost))
	if !hasFlag(kcm, "--controllers=*,bootstrapsigner,tokencleaner,-nodeipam") || hasFlag(kcm, "--controllers=*,bootstrapsigner,tokencleaner") {
		t.Errorf("controllers not overridden: %v", flagsOf(kcm))
	}
	// Since 1.36 kubeadm mounts no FlexVolume directory, whatever --flex-volume-plugin-dir says.
	if _, _, ok := volumeByName(kcm, "flexvolume-dir"); ok {
		t.Errorf("flexvolume-dir mounted: %+v", kcm.Spec.Volumes)
	}
	if h := kcm.Spec.Containers[0].LivenessProbe.HTTPGet.Host; h != "" {
		t.Errorf("probe host for bind-address 0.0.0.0 = %q, want empty (the Pod IP)", h)
	}

	etcd, err := Etcd(extrasConfig().ClusterPart(), extrasConfig().NodePart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	etcd = roundTrip(t, etcd)
	if g := etcd.Spec.Containers[0].LivenessProbe.HTTPGet; g.Scheme != corev1.URISchemeHTTPS || g.Host != "127.0.0.1" || etcd.Spec.Containers[0].Ports[0].ContainerPort != 2391 {
		t.Errorf("etcd probe does not follow listen-metrics-urls: %+v port %d", g, etcd.Spec.Containers[0].Ports[0].ContainerPort)
	}
	// kubeadm 1.36+ renders etcd 3.6's spellings whatever the image tag says.
	for _, f := range []string{"--feature-gates=InitialCorruptCheck=true", "--snapshot-count=5000", "--log-level=debug"} {
		if !hasFlag(etcd, f) {
			t.Errorf("etcd lacks %s: %v", f, flagsOf(etcd))
		}
	}
	if hasFlag(etcd, "--snapshot-count=10000") || hasFlag(etcd, "--experimental-initial-corrupt-check=true") {
		t.Errorf("etcd flags: %v", flagsOf(etcd))
	}
	if img := etcd.Spec.Containers[0].Image; img != "etcd.lab.example/etcd:3.5.21-0" {
		t.Errorf("etcd image = %s", img)
	}
}

func TestAPIServerFollowsEtcdAdvertiseURL(t *testing.T) {
	cfg := baseConfig()
	cfg.Cluster.Etcd.Local.ExtraArgs = []config.Arg{{Name: "advertise-client-urls", Value: "https://10.77.0.10:12379"}}
	pod := APIServer(cfg.ClusterPart(), cfg.NodePart(), debianHost)
	if !hasFlag(pod, "--etcd-servers=https://10.77.0.10:12379") {
		t.Errorf("flags: %v", flagsOf(pod))
	}
}

func TestAuthorizationConfigDropsMode(t *testing.T) {
	cfg := baseConfig()
	cfg.Cluster.APIServer.ExtraArgs = []config.Arg{{Name: "authorization-config", Value: "/etc/kubernetes/authz.yaml"}}
	for _, f := range flagsOf(APIServer(cfg.ClusterPart(), cfg.NodePart(), debianHost)) {
		if strings.HasPrefix(f, "--authorization-mode=") {
			t.Errorf("%s set together with --authorization-config", f)
		}
	}
}

func TestExternalEtcd(t *testing.T) {
	cfg := externalEtcdConfig()
	pod := roundTrip(t, APIServer(cfg.ClusterPart(), cfg.NodePart(), debianHost))
	for _, f := range []string{
		"--etcd-servers=https://10.77.0.2:2379,https://10.77.0.3:2379",
		"--etcd-cafile=/etc/etcd/pki/ca.crt",
		"--etcd-certfile=/etc/etcd/pki/client/apiserver.crt",
		"--etcd-keyfile=/opt/keys/apiserver.key",
	} {
		if !hasFlag(pod, f) {
			t.Errorf("kube-apiserver lacks %s", f)
		}
	}
	// /etc/etcd/pki holds the CA and (in a subdirectory) the certificate: one mount covers both.
	for name, dir := range map[string]string{"etcd-certs-0": "/etc/etcd/pki", "etcd-certs-1": "/opt/keys"} {
		v, m, ok := volumeByName(pod, name)
		if !ok || v.HostPath.Path != dir || m.MountPath != dir || !m.ReadOnly {
			t.Errorf("volume %s = %+v %+v, want read-only %s", name, v, m, dir)
		}
	}
	if _, _, ok := volumeByName(pod, "etcd-certs-2"); ok {
		t.Error("a third etcd-certs volume for a covered directory")
	}
	if _, err := WriteLocalEtcd(t.Context(), nodefs.FS{Root: t.TempDir()}, cfg.ClusterPart(), cfg.NodePart()); err != nil {
		t.Errorf("WriteLocalEtcd with external etcd: %v, want nothing done", err)
	}
}

func TestExternalEtcdCertDirs(t *testing.T) {
	tests := []struct {
		name string
		ext  config.ExternalEtcd
		want []string
	}{
		{"no files", config.ExternalEtcd{}, nil},
		{"all under certificatesDir", config.ExternalEtcd{CAFile: "/etc/kubernetes/pki/etcd/ca.crt", CertFile: "/etc/kubernetes/pki/c.crt", KeyFile: "/etc/kubernetes/pki/c.key"}, nil},
		{"ssl and ca dirs", config.ExternalEtcd{CAFile: "/etc/ssl/certs/ca.pem", CertFile: "/etc/pki/tls/certs/c.pem", KeyFile: "/usr/share/ca-certificates/k.pem"}, nil},
		{"child after parent", config.ExternalEtcd{CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/sub/c.crt", KeyFile: "/etc/etcd/k.key"}, []string{"/etc/etcd"}},
		{"parent after child", config.ExternalEtcd{CAFile: "/etc/etcd/sub/ca.crt", CertFile: "/etc/etcd/c.crt"}, []string{"/etc/etcd"}},
		{"sorted", config.ExternalEtcd{CAFile: "/z/ca.crt", CertFile: "/a/c.crt", KeyFile: "/m/k.key"}, []string{"/a", "/m", "/z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := externalEtcdCertDirs(&tt.ext, "/etc/kubernetes/pki"); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEtcd(t *testing.T) {
	cfg := baseConfig()
	pod, err := Etcd(cfg.ClusterPart(), cfg.NodePart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pod = roundTrip(t, pod)
	for _, f := range []string{
		"--name=cp1",
		"--data-dir=/var/lib/etcd",
		"--listen-client-urls=https://127.0.0.1:2379,https://10.77.0.10:2379",
		"--advertise-client-urls=https://10.77.0.10:2379",
		"--listen-peer-urls=https://10.77.0.10:2380",
		"--initial-advertise-peer-urls=https://10.77.0.10:2380",
		"--initial-cluster=cp1=https://10.77.0.10:2380",
		"--cert-file=/etc/kubernetes/pki/etcd/server.crt",
		"--key-file=/etc/kubernetes/pki/etcd/server.key",
		"--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
		"--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
		"--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
		"--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
		"--client-cert-auth=true",
		"--peer-client-cert-auth=true",
		"--snapshot-count=10000",
		"--listen-metrics-urls=http://127.0.0.1:2381",
		"--feature-gates=InitialCorruptCheck=true",
		"--watch-progress-notify-interval=5s",
	} {
		if !hasFlag(pod, f) {
			t.Errorf("etcd lacks %s", f)
		}
	}
	if n := len(flagsOf(pod)); n != 19 {
		t.Errorf("etcd has %d flags, want 19: %v", n, flagsOf(pod))
	}
	if got := pod.Annotations[staticpod.EtcdAdvertiseClientURLsAnnotation]; got != "https://10.77.0.10:2379" {
		t.Errorf("annotation = %q", got)
	}
	c := pod.Spec.Containers[0]
	if c.Image != "registry.k8s.io/etcd:3.7.0-0" {
		t.Errorf("image = %s", c.Image)
	}
	if c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Requests.Memory().String() != "100Mi" {
		t.Errorf("requests = %v", c.Resources.Requests)
	}

	joining, err := Etcd(cfg.ClusterPart(), cfg.NodePart(), []EtcdMember{
		{Name: "cp0", PeerURL: "https://10.77.0.9:2380"}, {Name: "cp1", PeerURL: "https://10.77.0.10:2380"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--initial-cluster=cp0=https://10.77.0.9:2380,cp1=https://10.77.0.10:2380", "--initial-cluster-state=existing"} {
		if !hasFlag(joining, f) {
			t.Errorf("joining member lacks %s: %v", f, flagsOf(joining))
		}
	}

	if _, err := Etcd(externalEtcdConfig().ClusterPart(), &config.Node{}, nil); !errors.Is(err, ErrExternalEtcd) {
		t.Errorf("Etcd with external etcd: %v, want %v", err, ErrExternalEtcd)
	}
}

func TestIPv6UsesIPv6Loopback(t *testing.T) {
	cfg := ipv6Config()
	etcd, err := Etcd(cfg.ClusterPart(), cfg.NodePart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--listen-client-urls=https://[::1]:2379,https://[fd00:77::10]:2379", "--listen-metrics-urls=http://[::1]:2381"} {
		if !hasFlag(etcd, f) {
			t.Errorf("etcd lacks %s", f)
		}
	}
	if h := etcd.Spec.Containers[0].LivenessProbe.HTTPGet.Host; h != "::1" {
		t.Errorf("etcd probe host = %s", h)
	}
	api := APIServer(cfg.ClusterPart(), cfg.NodePart(), debianHost)
	if !hasFlag(api, "--etcd-servers=https://[::1]:2379") {
		t.Errorf("flags: %v", flagsOf(api))
	}
	if a := api.Annotations[staticpod.APIServerAdvertiseAddressAnnotation]; a != "[fd00:77::10]:6443" {
		t.Errorf("annotation = %s", a)
	}
}

func TestControllerManagerFlags(t *testing.T) {
	t.Run("pod subnet", func(t *testing.T) {
		pod := ControllerManager(baseConfig().ClusterPart(), baseConfig().NodePart(), debianHost)
		want := []string{
			"--allocate-node-cidrs=true",
			"--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
			"--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
			"--bind-address=127.0.0.1",
			"--client-ca-file=/etc/kubernetes/pki/ca.crt",
			"--cluster-cidr=10.244.0.0/16",
			"--cluster-name=kubernetes",
			"--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
			"--cluster-signing-key-file=/etc/kubernetes/pki/ca.key",
			"--controllers=*,bootstrapsigner,tokencleaner",
			"--kubeconfig=/etc/kubernetes/controller-manager.conf",
			"--leader-elect=true",
			"--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
			"--root-ca-file=/etc/kubernetes/pki/ca.crt",
			"--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
			"--service-cluster-ip-range=10.96.0.0/12",
			"--use-service-account-credentials=true",
		}
		if got := flagsOf(pod); !slices.Equal(got, want) {
			t.Errorf("flags\n got %v\nwant %v", got, want)
		}
	})
	t.Run("no pod subnet", func(t *testing.T) {
		cfg := baseConfig()
		cfg.Cluster.Networking.PodSubnet = ""
		for _, f := range flagsOf(ControllerManager(cfg.ClusterPart(), cfg.NodePart(), debianHost)) {
			if strings.HasPrefix(f, "--allocate-node-cidrs") || strings.HasPrefix(f, "--cluster-cidr") || strings.HasPrefix(f, "--service-cluster-ip-range") {
				t.Errorf("%s without a pod subnet", f)
			}
		}
	})
	t.Run("external CA", func(t *testing.T) {
		pod := ControllerManager(baseConfig().ClusterPart(), baseConfig().NodePart(), Host{ExternalCA: true})
		for _, f := range []string{"--cluster-signing-cert-file=", "--cluster-signing-key-file="} {
			if !hasFlag(pod, f) {
				t.Errorf("lacks %s: %v", f, flagsOf(pod))
			}
		}
	})
}

func TestSchedulerFlags(t *testing.T) {
	want := []string{
		"--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
		"--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
		"--bind-address=127.0.0.1",
		"--kubeconfig=/etc/kubernetes/scheduler.conf",
		"--leader-elect=true",
	}
	if got := flagsOf(Scheduler(baseConfig().ClusterPart(), baseConfig().NodePart(), debianHost)); !slices.Equal(got, want) {
		t.Errorf("flags\n got %v\nwant %v", got, want)
	}
	pod := Scheduler(extrasConfig().ClusterPart(), extrasConfig().NodePart(), debianHost)
	if h := pod.Spec.Containers[0].ReadinessProbe.HTTPGet.Host; h != "10.0.0.5" {
		t.Errorf("probe host = %q, want the bind address 10.0.0.5", h)
	}
}

func TestProxyEnv(t *testing.T) {
	cfg := baseConfig()
	cfg.Cluster.APIServer.ExtraEnvs = []config.EnvVar{
		{EnvVar: corev1.EnvVar{Name: "https_proxy", Value: "http://other:3128"}},
		{EnvVar: corev1.EnvVar{Name: "A", Value: "1"}},
	}
	host := Host{ProxyEnv: []corev1.EnvVar{{Name: "https_proxy", Value: "http://proxy:3128"}, {Name: "NO_PROXY", Value: "10.0.0.0/8"}}}
	want := []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "NO_PROXY", Value: "10.0.0.0/8"}, {Name: "https_proxy", Value: "http://other:3128"}}
	if got := APIServer(cfg.ClusterPart(), cfg.NodePart(), host).Spec.Containers[0].Env; !slices.Equal(got, want) {
		t.Errorf("apiserver env = %v, want %v", got, want)
	}
	etcd, err := Etcd(cfg.ClusterPart(), cfg.NodePart(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if env := etcd.Spec.Containers[0].Env; env != nil {
		t.Errorf("etcd env = %v: kubeadm gives etcd no proxy variables", env)
	}
}

func TestDetectHost(t *testing.T) {
	root := t.TempDir()
	fs := nodefs.FS{Root: root}
	for _, d := range []string{"/etc/pki/ca-trust", "/usr/share/ca-certificates"} {
		if err := fs.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.WriteFile("/etc/kubernetes/pki/ca.crt", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"HTTPS_PROXY=http://p:1", "no_proxy=", "PATH=/bin", "http_proxy=http://q:2", "MALFORMED"}
	h := DetectHost(fs, "/etc/kubernetes/pki", env)
	if want := []string{"/etc/pki/ca-trust", "/usr/share/ca-certificates"}; !slices.Equal(h.CACertDirs, want) {
		t.Errorf("CACertDirs = %v, want %v", h.CACertDirs, want)
	}
	if want := []corev1.EnvVar{{Name: "HTTPS_PROXY", Value: "http://p:1"}, {Name: "http_proxy", Value: "http://q:2"}}; !slices.Equal(h.ProxyEnv, want) {
		t.Errorf("ProxyEnv = %v, want %v", h.ProxyEnv, want)
	}
	if !h.ExternalCA {
		t.Error("ExternalCA = false with ca.crt and no ca.key")
	}
	if err := fs.WriteFile("/etc/kubernetes/pki/ca.key", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if DetectHost(fs, "/etc/kubernetes/pki", nil).ExternalCA {
		t.Error("ExternalCA = true with ca.key present")
	}
}

func TestWritePhases(t *testing.T) {
	root := t.TempDir()
	fs := nodefs.FS{Root: root}
	cfg := baseConfig()
	ctx := t.Context()
	steps := []struct {
		name string
		run  func() ([]patches.Patch, error)
	}{
		{staticpod.APIServerName, func() ([]patches.Patch, error) {
			return WriteAPIServer(ctx, fs, cfg.ClusterPart(), cfg.NodePart(), debianHost)
		}},
		{staticpod.ControllerManagerName, func() ([]patches.Patch, error) {
			return WriteControllerManager(ctx, fs, cfg.ClusterPart(), cfg.NodePart(), debianHost)
		}},
		{staticpod.SchedulerName, func() ([]patches.Patch, error) {
			return WriteScheduler(ctx, fs, cfg.ClusterPart(), cfg.NodePart(), debianHost)
		}},
		{staticpod.EtcdName, func() ([]patches.Patch, error) { return WriteLocalEtcd(ctx, fs, cfg.ClusterPart(), cfg.NodePart()) }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			applied, err := s.run()
			if err != nil {
				t.Fatal(err)
			}
			if applied != nil {
				t.Errorf("patches applied without a patches directory: %v", applied)
			}
			file := filepath.Join(root, "etc/kubernetes/manifests", s.name+".yaml")
			st, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", file, st.Mode().Perm())
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if pod := decode(t, b); pod.Name != s.name {
				t.Errorf("%s holds Pod %s", file, pod.Name)
			}
		})
	}
	st, err := os.Stat(filepath.Join(root, "etc/kubernetes/manifests"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("manifests directory mode %v, want 0700", st.Mode().Perm())
	}
}

func TestWriteErrors(t *testing.T) {
	root := t.TempDir()
	// A file where the manifests directory should be.
	if err := os.MkdirAll(filepath.Join(root, "etc/kubernetes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/kubernetes/manifests"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(nodefs.FS{Root: root}, staticpod.SchedulerName, Scheduler(baseConfig().ClusterPart(), baseConfig().NodePart(), Host{}))
	want := "create " + filepath.Join(root, "etc/kubernetes/manifests") + ": mkdir " + filepath.Join(root, "etc/kubernetes/manifests") + ": not a directory"
	if err == nil || err.Error() != want {
		t.Errorf("Write error = %v, want %s", err, want)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := WriteAPIServer(ctx, nodefs.FS{Root: t.TempDir()}, baseConfig().ClusterPart(), baseConfig().NodePart(), Host{}); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteAPIServer on a cancelled context: %v", err)
	}
}
