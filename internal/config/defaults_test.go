package config

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	componentbaseconfigv1alpha1 "k8s.io/component-base/config/v1alpha1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
)

// countingReader yields 0, 1, 2, ...: tokens generated from it are predictable.
type countingReader struct{ n byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// testEnv is a fixed machine: hostname "CP-1", default-route address 10.0.0.10, no systemd-resolved.
func testEnv() Environment {
	return Environment{
		Hostname:              func() (string, error) { return "CP-1", nil },
		AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.0.0.10"), nil },
		SystemdResolvedActive: func() bool { return false },
		Random:                &countingReader{},
	}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func defaultTimeouts() *Timeouts {
	return &Timeouts{
		ControlPlaneComponentHealthCheck: dur(4 * time.Minute),
		KubeletHealthCheck:               dur(4 * time.Minute),
		KubernetesAPICall:                dur(time.Minute),
		EtcdAPICall:                      dur(2 * time.Minute),
		TLSBootstrap:                     dur(5 * time.Minute),
		Discovery:                        dur(5 * time.Minute),
		UpgradeManifests:                 dur(5 * time.Minute),
	}
}

// wantDefaultInit is what an empty configuration becomes on testEnv's machine.
func wantDefaultInit() *Init {
	return &Init{
		Init: InitConfiguration{
			TypeMeta: metav1.TypeMeta{APIVersion: V1beta4, Kind: KindInit},
			BootstrapTokens: []BootstrapToken{{
				Token:  "012345.6789abcdefghijkl", // bytes 0..21 of countingReader
				TTL:    dur(24 * time.Hour),
				Usages: []string{"signing", "authentication"},
				Groups: []string{"system:bootstrappers:kubeadm:default-node-token"},
			}},
			NodeRegistration: NodeRegistrationOptions{
				Name:            "cp-1",
				CRISocket:       "unix:///var/run/containerd/containerd.sock",
				Taints:          []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}},
				ImagePullPolicy: corev1.PullIfNotPresent,
				ImagePullSerial: ptr.To(true),
			},
			LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.10", BindPort: 6443},
			Timeouts:         defaultTimeouts(),
		},
		Cluster: ClusterConfiguration{
			TypeMeta:                    metav1.TypeMeta{APIVersion: V1beta4, Kind: KindCluster},
			Etcd:                        Etcd{Local: &LocalEtcd{DataDir: "/var/lib/etcd"}},
			Networking:                  Networking{ServiceSubnet: "10.96.0.0/12", DNSDomain: "cluster.local"},
			KubernetesVersion:           "v1.37.2",
			CertificatesDir:             "/etc/kubernetes/pki",
			ImageRepository:             "registry.k8s.io",
			ClusterName:                 "kubernetes",
			EncryptionAlgorithm:         EncryptionAlgorithmRSA2048,
			CertificateValidityPeriod:   dur(8760 * time.Hour),
			CACertificateValidityPeriod: dur(87600 * time.Hour),
		},
		Kubelet: &kubeletv1beta1.KubeletConfiguration{
			TypeMeta:      metav1.TypeMeta{APIVersion: KubeletGroupVer, Kind: KindKubelet},
			FeatureGates:  map[string]bool{},
			StaticPodPath: "/etc/kubernetes/manifests",
			ClusterDNS:    []string{"10.96.0.10"},
			ClusterDomain: "cluster.local",
			Authentication: kubeletv1beta1.KubeletAuthentication{
				X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: "/etc/kubernetes/pki/ca.crt"},
				Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(true)},
				Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
			},
			Authorization:      kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
			HealthzBindAddress: "127.0.0.1",
			HealthzPort:        ptr.To[int32](10248),
			RotateCertificates: true,
			CgroupDriver:       "systemd",
		},
		Proxy: &kubeproxyv1alpha1.KubeProxyConfiguration{
			TypeMeta:         metav1.TypeMeta{APIVersion: ProxyGroupVer, Kind: KindProxy},
			FeatureGates:     map[string]bool{},
			BindAddress:      "0.0.0.0",
			ClientConnection: componentbaseconfigv1alpha1.ClientConnectionConfiguration{Kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf"},
			// kubeadm 1.37 writes the mode it used to leave to kube-proxy.
			Mode: "iptables",
		},
	}
}

func TestSetInitDefaults(t *testing.T) {
	tests := []struct {
		name  string
		in    func(*Init)
		env   func(*Environment)
		want  func(*Init)
		check func(*testing.T, *Init)
	}{
		{name: "empty configuration"},
		{
			name: "user values win",
			in: func(c *Init) {
				c.Init.BootstrapTokens = []BootstrapToken{{Token: "aaaaaa.bbbbbbbbbbbbbbbb", TTL: dur(time.Hour),
					Usages: []string{"authentication"}, Groups: []string{"system:bootstrappers:lab"}}}
				c.Init.NodeRegistration = NodeRegistrationOptions{Name: "Worker-7 ", CRISocket: "unix:///run/crio/crio.sock",
					ImagePullPolicy: corev1.PullNever, ImagePullSerial: ptr.To(false)}
				c.Init.LocalAPIEndpoint = APIEndpoint{AdvertiseAddress: "192.168.1.5", BindPort: 7443}
				c.Init.Timeouts = &Timeouts{KubernetesAPICall: dur(3 * time.Minute)}
				c.Cluster.Networking = Networking{ServiceSubnet: "10.100.0.0/16", PodSubnet: "10.244.0.0/16", DNSDomain: "lab.local"}
				c.Cluster.KubernetesVersion = "1.36.1"
				c.Cluster.CertificatesDir = "/srv/pki"
				c.Cluster.ImageRepository = "mirror.example"
				c.Cluster.ClusterName = "lab"
				c.Cluster.EncryptionAlgorithm = EncryptionAlgorithmECDSAP256
				c.Cluster.CertificateValidityPeriod = dur(time.Hour)
				c.Cluster.CACertificateValidityPeriod = dur(2 * time.Hour)
				c.Cluster.ControlPlaneEndpoint = "api.example"
				c.Cluster.APIServer.CertSANs = []string{"API.Example", "10.0.0.1"}
				c.Cluster.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}}}
			},
			want: func(c *Init) {
				c.Init.BootstrapTokens = []BootstrapToken{{Token: "aaaaaa.bbbbbbbbbbbbbbbb", TTL: dur(time.Hour),
					Usages: []string{"authentication"}, Groups: []string{"system:bootstrappers:lab"}}}
				c.Init.NodeRegistration.Name = "worker-7"
				c.Init.NodeRegistration.CRISocket = "unix:///run/crio/crio.sock"
				c.Init.NodeRegistration.ImagePullPolicy = corev1.PullNever
				c.Init.NodeRegistration.ImagePullSerial = ptr.To(false)
				c.Init.LocalAPIEndpoint = APIEndpoint{AdvertiseAddress: "192.168.1.5", BindPort: 7443}
				c.Init.Timeouts.KubernetesAPICall = dur(3 * time.Minute)
				c.Cluster.Networking = Networking{ServiceSubnet: "10.100.0.0/16", PodSubnet: "10.244.0.0/16", DNSDomain: "lab.local"}
				c.Cluster.KubernetesVersion = "v1.36.1"
				c.Cluster.CertificatesDir = "/srv/pki"
				c.Cluster.ImageRepository = "mirror.example"
				c.Cluster.ClusterName = "lab"
				c.Cluster.EncryptionAlgorithm = EncryptionAlgorithmECDSAP256
				c.Cluster.CertificateValidityPeriod = dur(time.Hour)
				c.Cluster.CACertificateValidityPeriod = dur(2 * time.Hour)
				c.Cluster.ControlPlaneEndpoint = "api.example:7443"
				c.Cluster.APIServer.CertSANs = []string{"api.example", "10.0.0.1"}
				// httpEndpoints default to the client endpoints (kubeadm 1.35+).
				c.Cluster.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}, HTTPEndpoints: []string{"https://10.0.0.5:2379"}}}
				// kubeadm 1.36 leaves kube-proxy's mode unset.
				c.Proxy.Mode = ""
				c.Kubelet.ClusterDNS = []string{"10.100.0.10"}
				c.Kubelet.ClusterDomain = "lab.local"
				c.Kubelet.Authentication.X509.ClientCAFile = "/srv/pki/ca.crt"
				c.Proxy.ClusterCIDR = "10.244.0.0/16"
			},
		},
		{
			name: "explicit empty taint list means no taints",
			in:   func(c *Init) { c.Init.NodeRegistration.Taints = []corev1.Taint{} },
			want: func(c *Init) { c.Init.NodeRegistration.Taints = []corev1.Taint{} },
		},
		{
			name: "unspecified advertise address is detected",
			in:   func(c *Init) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "0.0.0.0" },
		},
		{
			name: "bare CRI socket path gets the unix scheme",
			in:   func(c *Init) { c.Init.NodeRegistration.CRISocket = "/run/containerd/containerd.sock" },
			want: func(c *Init) { c.Init.NodeRegistration.CRISocket = "unix:///run/containerd/containerd.sock" },
		},
		{
			name: "IPv6 control-plane endpoint without port",
			in:   func(c *Init) { c.Cluster.ControlPlaneEndpoint = "fd00::1" },
			want: func(c *Init) { c.Cluster.ControlPlaneEndpoint = "[fd00::1]:6443" },
		},
		{
			name: "endpoint with port is kept",
			in:   func(c *Init) { c.Cluster.ControlPlaneEndpoint = "10.0.0.100:443" },
			want: func(c *Init) { c.Cluster.ControlPlaneEndpoint = "10.0.0.100:443" },
		},
		{
			name: "token with expires gets no TTL",
			in: func(c *Init) {
				c.Init.BootstrapTokens = []BootstrapToken{{Expires: &metav1.Time{Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}}
			},
			want: func(c *Init) {
				c.Init.BootstrapTokens[0].TTL = nil
				c.Init.BootstrapTokens[0].Expires = &metav1.Time{Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
			},
		},
		{
			name: "TTL 0 (never expires) is kept",
			in:   func(c *Init) { c.Init.BootstrapTokens = []BootstrapToken{{TTL: dur(0)}} },
			want: func(c *Init) { c.Init.BootstrapTokens[0].TTL = dur(0) },
		},
		{
			name: "IPv6 advertise address binds kube-proxy to ::",
			in:   func(c *Init) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "fd00::10" },
			want: func(c *Init) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "fd00::10"; c.Proxy.BindAddress = "::" },
		},
		{
			name: "systemd-resolved points the kubelet at the real resolv.conf",
			env:  func(e *Environment) { e.SystemdResolvedActive = func() bool { return true } },
			want: func(c *Init) { c.Kubelet.ResolverConfig = ptr.To("/run/systemd/resolve/resolv.conf") },
		},
		{
			name: "user kubelet and kube-proxy values win",
			in: func(c *Init) {
				c.Kubelet = &kubeletv1beta1.KubeletConfiguration{
					CgroupDriver:       "cgroupfs",
					ClusterDNS:         []string{"10.96.0.53"},
					StaticPodPath:      "/srv/manifests",
					HealthzPort:        ptr.To[int32](0),
					FailSwapOn:         ptr.To(false),
					ResolverConfig:     ptr.To("/etc/lab-resolv.conf"),
					RotateCertificates: false,
					Authentication: kubeletv1beta1.KubeletAuthentication{
						Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(true)},
					},
				}
				c.Proxy = &kubeproxyv1alpha1.KubeProxyConfiguration{
					BindAddress: "10.0.0.10",
					ClusterCIDR: "10.250.0.0/16",
					Conntrack:   kubeproxyv1alpha1.KubeProxyConntrackConfiguration{MaxPerCore: ptr.To[int32](0)},
				}
			},
			env: func(e *Environment) { e.SystemdResolvedActive = func() bool { return true } },
			want: func(c *Init) {
				c.Kubelet.CgroupDriver = "cgroupfs"
				c.Kubelet.ClusterDNS = []string{"10.96.0.53"}
				c.Kubelet.StaticPodPath = "/srv/manifests"
				c.Kubelet.HealthzPort = ptr.To[int32](0)
				c.Kubelet.FailSwapOn = ptr.To(false)
				c.Kubelet.ResolverConfig = ptr.To("/etc/lab-resolv.conf")
				c.Kubelet.Authentication.Anonymous.Enabled = ptr.To(true)
				c.Proxy.BindAddress = "10.0.0.10"
				c.Proxy.ClusterCIDR = "10.250.0.0/16"
				c.Proxy.Conntrack.MaxPerCore = ptr.To[int32](0)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Init{}
			if tt.in != nil {
				tt.in(cfg)
			}
			env := testEnv()
			if tt.env != nil {
				tt.env(&env)
			}
			if err := SetInitDefaults(cfg, env); err != nil {
				t.Fatal(err)
			}
			want := wantDefaultInit()
			if tt.want != nil {
				tt.want(want)
			}
			if d := cmp.Diff(want, cfg); d != "" {
				t.Errorf("defaulted (-want +got):\n%s", d)
			}
			// Defaulting twice changes nothing (no second token, no second port).
			again := *cfg
			if err := SetInitDefaults(&again, testEnv()); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(cfg, &again); d != "" {
				t.Errorf("second defaulting changed (-first +second):\n%s", d)
			}
		})
	}
}

func TestSetInitDefaultsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   func(*Init)
		env  func(*Environment)
		want string
	}{
		{
			name: "release label",
			in:   func(c *Init) { c.Cluster.KubernetesVersion = "stable-1" },
			want: `ClusterConfiguration: kubernetesVersion "stable-1" is a release label that needs an internet lookup, ` +
				`which kubeboot never does; pin a version such as v1.37.2`,
		},
		{
			name: "latest label",
			in:   func(c *Init) { c.Cluster.KubernetesVersion = "latest-1.34" },
			want: `ClusterConfiguration: kubernetesVersion "latest-1.34" is a release label that needs an internet lookup, ` +
				`which kubeboot never does; pin a version such as v1.37.2`,
		},
		{
			name: "hostname unreadable",
			env:  func(e *Environment) { e.Hostname = func() (string, error) { return "", errors.New("uname failed") } },
			want: "InitConfiguration: nodeRegistration.name is unset and the hostname could not be read (uname failed); " +
				"set it or pass --node-name",
		},
		{
			name: "hostname empty",
			env:  func(e *Environment) { e.Hostname = func() (string, error) { return " \n", nil } },
			want: "InitConfiguration: nodeRegistration.name is unset and the hostname could not be read (it is empty); " +
				"set it or pass --node-name",
		},
		{
			name: "no default route",
			env: func(e *Environment) {
				e.AdvertiseAddress = func() (net.IP, error) { return nil, errors.New("there is no IPv4 default route") }
			},
			want: "InitConfiguration: localAPIEndpoint.advertiseAddress is unset and could not be detected: " +
				"there is no IPv4 default route; set it or pass --apiserver-advertise-address",
		},
		{
			name: "no detector",
			env:  func(e *Environment) { e.AdvertiseAddress = nil },
			want: "InitConfiguration: localAPIEndpoint.advertiseAddress is unset and no address detector is configured; " +
				"set it or pass --apiserver-advertise-address",
		},
		{
			name: "no randomness",
			env:  func(e *Environment) { e.Random = strings.NewReader("short") },
			want: "InitConfiguration: bootstrapTokens[0].token: generating a bootstrap token: unexpected EOF",
		},
		{
			name: "several problems at once",
			in:   func(c *Init) { c.Cluster.KubernetesVersion = "stable" },
			env:  func(e *Environment) { e.Hostname = nil },
			want: "InitConfiguration: nodeRegistration.name is unset and the hostname is unknown; set it or pass --node-name\n" +
				`ClusterConfiguration: kubernetesVersion "stable" is a release label that needs an internet lookup, ` +
				`which kubeboot never does; pin a version such as v1.37.2`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Init{}
			if tt.in != nil {
				tt.in(cfg)
			}
			env := testEnv()
			if tt.env != nil {
				tt.env(&env)
			}
			assertError(t, SetInitDefaults(cfg, env), tt.want)
		})
	}
}

func TestSetJoinDefaults(t *testing.T) {
	base := func() *Join {
		return &Join{Join: JoinConfiguration{Discovery: Discovery{BootstrapToken: &BootstrapTokenDiscovery{
			Token: "abcdef.0123456789abcdef", APIServerEndpoint: "10.0.0.10:6443",
		}}}}
	}
	wantWorker := func() *Join {
		j := base()
		j.Join.TypeMeta = metav1.TypeMeta{APIVersion: V1beta4, Kind: KindJoin}
		j.Join.CACertPath = "/etc/kubernetes/pki/ca.crt"
		j.Join.Discovery.TLSBootstrapToken = "abcdef.0123456789abcdef"
		j.Join.NodeRegistration = NodeRegistrationOptions{
			Name: "cp-1", CRISocket: "unix:///var/run/containerd/containerd.sock",
			ImagePullPolicy: corev1.PullIfNotPresent, ImagePullSerial: ptr.To(true),
		}
		j.Join.Timeouts = defaultTimeouts()
		return j
	}
	tests := []struct {
		name string
		in   func(*Join)
		want func(*Join)
	}{
		{name: "worker: no taints, no control plane"},
		{
			name: "control plane: taint and detected address",
			in:   func(j *Join) { j.Join.ControlPlane = &JoinControlPlane{} },
			want: func(j *Join) {
				j.Join.ControlPlane = &JoinControlPlane{LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.10", BindPort: 6443}}
				j.Join.NodeRegistration.Taints = []corev1.Taint{ControlPlaneTaint()}
			},
		},
		{
			name: "control plane with explicit address and no taints",
			in: func(j *Join) {
				j.Join.ControlPlane = &JoinControlPlane{LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.11", BindPort: 7443}}
				j.Join.NodeRegistration.Taints = []corev1.Taint{}
			},
			want: func(j *Join) {
				j.Join.ControlPlane = &JoinControlPlane{LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.11", BindPort: 7443}}
				j.Join.NodeRegistration.Taints = []corev1.Taint{}
			},
		},
		{
			name: "TLS bootstrap token set separately is kept",
			in:   func(j *Join) { j.Join.Discovery.TLSBootstrapToken = "zzzzzz.0123456789abcdef" },
			want: func(j *Join) { j.Join.Discovery.TLSBootstrapToken = "zzzzzz.0123456789abcdef" },
		},
		{
			name: "file:// discovery URL becomes a path",
			in: func(j *Join) {
				j.Join.Discovery = Discovery{File: &FileDiscovery{KubeConfigPath: "file:///etc/kubernetes/discovery.conf"}}
			},
			want: func(j *Join) {
				j.Join.Discovery = Discovery{File: &FileDiscovery{KubeConfigPath: "/etc/kubernetes/discovery.conf"}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := base()
			if tt.in != nil {
				tt.in(j)
			}
			if err := SetJoinDefaults(j, testEnv()); err != nil {
				t.Fatal(err)
			}
			want := wantWorker()
			if tt.want != nil {
				tt.want(want)
			}
			if d := cmp.Diff(want, j); d != "" {
				t.Errorf("defaulted (-want +got):\n%s", d)
			}
		})
	}
}

func TestSetJoinDefaultsWorkerNeedsNoAddress(t *testing.T) {
	env := testEnv()
	env.AdvertiseAddress = func() (net.IP, error) { t.Fatal("a worker must not detect an address"); return nil, nil }
	if err := SetJoinDefaults(&Join{}, env); err != nil {
		t.Fatal(err)
	}
}

func TestSetResetDefaults(t *testing.T) {
	r := &ResetConfiguration{CRISocket: "/run/crio/crio.sock"}
	SetResetDefaults(r)
	want := &ResetConfiguration{
		TypeMeta:        metav1.TypeMeta{APIVersion: V1beta4, Kind: KindReset},
		CertificatesDir: "/etc/kubernetes/pki",
		CRISocket:       "unix:///run/crio/crio.sock",
		Timeouts:        defaultTimeouts(),
	}
	if d := cmp.Diff(want, r); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestGenerateToken(t *testing.T) {
	// 252..255 are rejected (they would favour the first characters); 36+1 maps to "1".
	r := io.MultiReader(strings.NewReader(string([]byte{252, 253, 254, 255, 37})), &countingReader{n: 10})
	tok, err := GenerateToken(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1abcde.fghijklmnopqrstu"; tok != want {
		t.Errorf("token = %q, want %q", tok, want)
	}
	if _, err := GenerateToken(nil); err == nil || err.Error() != "no source of randomness to generate a bootstrap token" {
		t.Errorf("nil reader: %v", err)
	}
}

func TestServiceIP(t *testing.T) {
	tests := []struct {
		subnet string
		index  int
		want   string
		err    string
	}{
		{"10.96.0.0/12", 10, "10.96.0.10", ""},
		{"10.96.0.0/12", 1, "10.96.0.1", ""},
		{"10.100.5.0/24,fd00:10:96::/112", 10, "10.100.5.10", ""},
		{"fd00:10:96::/112", 10, "fd00:10:96::a", ""},
		{"10.96.0.7/12", 10, "10.96.0.10", ""},
		{"10.0.0.0/29", 10, "", `service subnet "10.0.0.0/29" has fewer than 11 addresses`},
		{"nonsense", 10, "", `service subnet "nonsense": netip.ParsePrefix("nonsense"): no '/'`},
	}
	for _, tt := range tests {
		t.Run(tt.subnet, func(t *testing.T) {
			ip, err := ServiceIP(tt.subnet, tt.index)
			if tt.err != "" {
				assertError(t, err, tt.err)
				return
			}
			if err != nil || ip.String() != tt.want {
				t.Errorf("ServiceIP = %v, %v; want %s", ip, err, tt.want)
			}
		})
	}
}

func TestDefaultRouteIPv4(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	addrs := map[string][]net.Addr{
		"eth0":  {&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}, &net.IPNet{IP: net.ParseIP("192.168.1.20").To4(), Mask: net.CIDRMask(24, 32)}},
		"eth1":  {&net.IPNet{IP: net.ParseIP("10.0.0.10").To4(), Mask: net.CIDRMask(24, 32)}},
		"wg0":   {&net.IPNet{IP: net.ParseIP("fd00::5"), Mask: net.CIDRMask(64, 128)}},
		"lab-0": {&net.IPNet{IP: net.ParseIP("169.254.1.1").To4(), Mask: net.CIDRMask(16, 32)}},
	}
	lookup := func(name string) ([]net.Addr, error) {
		a, ok := addrs[name]
		if !ok {
			return nil, errors.New("no such interface")
		}
		return a, nil
	}
	tests := []struct {
		name, routes, want, err string
	}{
		{"one default route", "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "192.168.1.20", ""},
		{"lowest metric wins", "eth0\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "10.0.0.10", ""},
		{"down route is skipped", "eth1\t00000000\t0100000A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\t0101A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n", "192.168.1.20", ""},
		{"interface without IPv4 falls through", "wg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0100000A\t0003\t0\t0\t10\t00000000\t0\t0\t0\n", "10.0.0.10", ""},
		{"no default route", "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "",
			"there is no IPv4 default route"},
		{"only link-local", "lab-0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n", "",
			"no global unicast IPv4 address on the default-route interface(s) lab-0"},
		{"unknown interface", "gone\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n", "",
			"addresses of gone: no such interface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, err := DefaultRouteIPv4(strings.NewReader(header+tt.routes), lookup)
			if tt.err != "" {
				assertError(t, err, tt.err)
				return
			}
			if err != nil || ip.String() != tt.want {
				t.Errorf("got %v, %v; want %s", ip, err, tt.want)
			}
		})
	}
}
