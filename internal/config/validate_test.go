package config

import (
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/release"
)

// validInit is a defaulted configuration that passes validation; each case breaks one thing.
func validInit(t *testing.T) *Init {
	t.Helper()
	cfg := &Init{}
	cfg.Cluster.Networking.PodSubnet = "10.244.0.0/16"
	if err := SetInitDefaults(cfg, testEnv()); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestValidateInitAcceptsDefaults(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Init)
	}{
		{"defaults", func(*Init) {}},
		{"dual-stack", func(c *Init) {
			c.Cluster.Networking.ServiceSubnet = "10.96.0.0/16,fd00:10:96::/112"
			c.Cluster.Networking.PodSubnet = "10.244.0.0/16,fd00:10:244::/56"
		}},
		{"service subnet /12 is the largest allowed", func(c *Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/12" }},
		{"IPv6 service subnet /108", func(c *Init) { c.Cluster.Networking.ServiceSubnet = "fd00::/108" }},
		{"no pod subnet", func(c *Init) { c.Cluster.Networking.PodSubnet = "" }},
		{"allocate-node-cidrs=false skips the node mask check", func(c *Init) {
			c.Cluster.Networking.PodSubnet = "10.244.0.0/28"
			c.Cluster.ControllerManager.ExtraArgs = []Arg{{Name: "allocate-node-cidrs", Value: "false"}}
		}},
		{"node mask from the controller-manager", func(c *Init) {
			c.Cluster.Networking.PodSubnet = "10.244.0.0/26"
			c.Cluster.ControllerManager.ExtraArgs = []Arg{{Name: "node-cidr-mask-size-ipv4", Value: "28"}}
		}},
		{"loopback advertise address", func(c *Init) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "127.0.0.1" }},
		{"external etcd over TLS", func(c *Init) {
			c.Cluster.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"},
				CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/c.crt", KeyFile: "/etc/etcd/c.key"}}
		}},
		{"external etcd over plain http", func(c *Init) {
			c.Cluster.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"http://10.0.0.5:2379"}}}
		}},
		{"wildcard and IP SANs", func(c *Init) { c.Cluster.APIServer.CertSANs = []string{"*.lab.example", "10.0.0.1", "fd00::1"} }},
		{"image repository with port and path", func(c *Init) { c.Cluster.ImageRepository = "Mirror.Lab:5000/k8s/images" }},
		{"v1.36 control plane", func(c *Init) { c.Cluster.KubernetesVersion = "v1.36.3" }},
		{"v1.37 release candidate", func(c *Init) { c.Cluster.KubernetesVersion = "v1.37.0-rc.1" }},
		{"token never expiring", func(c *Init) { c.Init.BootstrapTokens[0].TTL = dur(0) }},
		{"kubelet with cgroupfs", func(c *Init) { c.Kubelet.CgroupDriver = "cgroupfs" }},
		{"ignore all preflight errors", func(c *Init) { c.Init.NodeRegistration.IgnorePreflightErrors = []string{"all"} }},
		{"certificate key", func(c *Init) { c.Init.CertificateKey = strings.Repeat("ab", 32) }},
		{"known feature gate", func(c *Init) { c.Cluster.FeatureGates = map[string]bool{"RootlessControlPlane": false} }},
		{"v1.36's locked gate at its value", func(c *Init) {
			c.Cluster.KubernetesVersion = "v1.36.3"
			c.Cluster.FeatureGates = map[string]bool{"NodeLocalCRISocket": true}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validInit(t)
			tt.edit(cfg)
			if err := ValidateInit(cfg); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidateInitErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Init)
		want string
	}{
		{
			name: "pod subnet not a CIDR",
			edit: func(c *Init) { c.Cluster.Networking.PodSubnet = "10.244.0.0" },
			want: `ClusterConfiguration: networking.podSubnet: Invalid value: "10.244.0.0": not a CIDR such as 10.96.0.0/12`,
		},
		{
			name: "service subnet not a CIDR",
			edit: func(c *Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/33" },
			want: `ClusterConfiguration: networking.serviceSubnet: Invalid value: "10.96.0.0/33": not a CIDR such as 10.96.0.0/12`,
		},
		{
			name: "three subnets",
			edit: func(c *Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/16,10.97.0.0/16,fd00::/112" },
			want: `ClusterConfiguration: networking.serviceSubnet: Invalid value: "10.96.0.0/16,10.97.0.0/16,fd00::/112": at most two CIDRs, one IPv4 and one IPv6`,
		},
		{
			name: "two subnets of one family",
			edit: func(c *Init) { c.Cluster.Networking.PodSubnet = "10.244.0.0/16,10.245.0.0/16" },
			want: `ClusterConfiguration: networking.podSubnet: Invalid value: "10.244.0.0/16,10.245.0.0/16": two CIDRs must be one IPv4 and one IPv6 (dual-stack)`,
		},
		{
			name: "service subnet /11 is too large",
			edit: func(c *Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/11" },
			want: `ClusterConfiguration: networking.serviceSubnet: Invalid value: "10.96.0.0/11": too large: at most 20 host bits, so the prefix must be /12 or longer`,
		},
		{
			name: "IPv6 service subnet /107 is too large",
			edit: func(c *Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/16,fd00::/107" },
			want: `ClusterConfiguration: networking.serviceSubnet: Invalid value: "fd00::/107": too large: at most 20 host bits, so the prefix must be /108 or longer`,
		},
		{
			name: "service subnet too small",
			edit: func(c *Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/29" },
			want: `ClusterConfiguration: networking.serviceSubnet: Invalid value: "10.96.0.0/29": too small: 8 addresses, at least 10 needed`,
		},
		{
			name: "pod subnet too small",
			edit: func(c *Init) {
				c.Cluster.Networking.PodSubnet = "10.244.0.0/29"
				c.Cluster.ControllerManager.ExtraArgs = []Arg{{Name: "allocate-node-cidrs", Value: "false"}}
			},
			want: `ClusterConfiguration: networking.podSubnet: Invalid value: "10.244.0.0/29": too small: 8 addresses, at least 14 needed`,
		},
		{
			name: "pod subnet smaller than one node's",
			edit: func(c *Init) { c.Cluster.Networking.PodSubnet = "10.244.0.0/25" },
			want: `ClusterConfiguration: networking.podSubnet: Invalid value: "10.244.0.0/25": the prefix /25 is smaller than one node's /24 (controller-manager node-cidr-mask-size-ipv4)`,
		},
		{
			name: "pod subnet with too many node ranges",
			edit: func(c *Init) { c.Cluster.Networking.PodSubnet = "12.0.0.0/7" },
			want: `ClusterConfiguration: networking.podSubnet: Invalid value: "12.0.0.0/7": the prefix /7 and the node size /24 differ by more than 16 bits (controller-manager node-cidr-mask-size-ipv4)`,
		},
		{
			name: "node mask not a number",
			edit: func(c *Init) {
				c.Cluster.ControllerManager.ExtraArgs = []Arg{{Name: "node-cidr-mask-size-ipv4", Value: "big"}}
			},
			want: `ClusterConfiguration: controllerManager.extraArgs: Invalid value: "node-cidr-mask-size-ipv4=big": not an integer`,
		},
		{
			name: "overlapping pod and service subnets",
			edit: func(c *Init) { c.Cluster.Networking.PodSubnet = "10.96.0.0/16" },
			want: `ClusterConfiguration: networking.podSubnet: Invalid value: "10.96.0.0/16": overlaps networking.serviceSubnet 10.96.0.0/12; Pod and Service addresses must not collide`,
		},
		{
			name: "DNS domain",
			edit: func(c *Init) { c.Cluster.Networking.DNSDomain = "Cluster_Local" },
			want: `ClusterConfiguration: networking.dnsDomain: Invalid value: "Cluster_Local": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
		},
		{
			name: "advertise address not an IP",
			edit: func(c *Init) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "cp-1.lab" },
			want: `InitConfiguration: localAPIEndpoint.advertiseAddress: Invalid value: "cp-1.lab": not an IP address`,
		},
		{
			name: "advertise address multicast",
			edit: func(c *Init) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "224.0.0.1" },
			want: `InitConfiguration: localAPIEndpoint.advertiseAddress: Invalid value: "224.0.0.1": the API server cannot advertise this address; use a unicast address of this node`,
		},
		{
			name: "bind port out of range",
			edit: func(c *Init) { c.Init.LocalAPIEndpoint.BindPort = 70000 },
			want: `InitConfiguration: localAPIEndpoint.bindPort: Invalid value: 70000: must be between 1 and 65535`,
		},
		{
			name: "negative bind port",
			edit: func(c *Init) { c.Init.LocalAPIEndpoint.BindPort = -1 },
			want: `InitConfiguration: localAPIEndpoint.bindPort: Invalid value: -1: must be between 1 and 65535`,
		},
		{
			name: "kubernetes version too old",
			edit: func(c *Init) { c.Cluster.KubernetesVersion = "v1.35.4" },
			want: `ClusterConfiguration: kubernetesVersion: Invalid value: "v1.35.4": this version of kubeboot only supports deploying clusters with the control plane version >= v1.36.0. Current version: v1.35.4`,
		},
		{
			name: "kubernetes version too new",
			edit: func(c *Init) { c.Cluster.KubernetesVersion = "v1.38.0" },
			want: `ClusterConfiguration: kubernetesVersion: Invalid value: "v1.38.0": this version of kubeboot supports control planes v1.36.x to v1.37.x (default v1.37.2), not v1.38.0`,
		},
		{
			name: "kubernetes version v2",
			edit: func(c *Init) { c.Cluster.KubernetesVersion = "v2.34.0" },
			want: `ClusterConfiguration: kubernetesVersion: Invalid value: "v2.34.0": this version of kubeboot supports control planes v1.36.x to v1.37.x (default v1.37.2), not v2.34.0`,
		},
		{
			name: "kubernetes version not semantic",
			edit: func(c *Init) { c.Cluster.KubernetesVersion = "v1.34" },
			want: `ClusterConfiguration: kubernetesVersion: Invalid value: "v1.34": must be a version such as "v1.37.2"`,
		},
		{
			name: "kubernetes version without v after defaulting",
			edit: func(c *Init) { c.Cluster.KubernetesVersion = "one" },
			want: `ClusterConfiguration: kubernetesVersion: Invalid value: "one": must be a version such as "v1.37.2"`,
		},
		{
			name: "unknown encryption algorithm",
			edit: func(c *Init) { c.Cluster.EncryptionAlgorithm = "RSA-1024" },
			want: `ClusterConfiguration: encryptionAlgorithm: Unsupported value: "RSA-1024": supported values: "ECDSA-P256", "ECDSA-P384", "RSA-2048", "RSA-3072", "RSA-4096"`,
		},
		{
			name: "malformed bootstrap token does not leak its secret",
			edit: func(c *Init) { c.Init.BootstrapTokens[0].Token = "abcdef.TOPSECRET0123456" },
			want: `InitConfiguration: bootstrapTokens[0].token: Invalid value: "abcdef.<redacted>": a bootstrap token has the form "[a-z0-9]{6}.[a-z0-9]{16}"`,
		},
		{
			name: "token without dot",
			edit: func(c *Init) { c.Init.BootstrapTokens[0].Token = "abcdef0123456789abcdef" },
			want: `InitConfiguration: bootstrapTokens[0].token: Invalid value: "abcdef<redacted>": a bootstrap token has the form "[a-z0-9]{6}.[a-z0-9]{16}"`,
		},
		{
			name: "unknown token usage",
			edit: func(c *Init) { c.Init.BootstrapTokens[0].Usages = []string{"signing", "authentication", "fly"} },
			want: `InitConfiguration: bootstrapTokens[0].usages: Invalid value: ["signing","authentication","fly"]: invalid bootstrap token usage string: fly, valid usage options: signing,authentication`,
		},
		{
			name: "groups without authentication usage",
			edit: func(c *Init) { c.Init.BootstrapTokens[0].Usages = []string{"signing"} },
			want: `InitConfiguration: bootstrapTokens[0].groups: Invalid value: ["system:bootstrappers:kubeadm:default-node-token"]: groups need the "authentication" usage`,
		},
		{
			name: "bad token group",
			edit: func(c *Init) { c.Init.BootstrapTokens[0].Groups = []string{"admins"} },
			want: `InitConfiguration: bootstrapTokens[0].groups[0]: Invalid value: "admins": bootstrap group "admins" is invalid (must match \Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z)`,
		},
		{
			name: "ttl and expires",
			edit: func(c *Init) {
				c.Init.BootstrapTokens[0].Expires = &metav1.Time{Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			},
			want: `InitConfiguration: bootstrapTokens[0].expires: Invalid value: "2030-01-02T03:04:05Z": ttl and expires are mutually exclusive; set one`,
		},
		{
			name: "negative ttl",
			edit: func(c *Init) { c.Init.BootstrapTokens[0].TTL = dur(-time.Hour) },
			want: `InitConfiguration: bootstrapTokens[0].ttl: Invalid value: "-1h0m0s": must not be negative (0 means never expires)`,
		},
		{
			name: "control-plane endpoint with a bad port",
			edit: func(c *Init) { c.Cluster.ControlPlaneEndpoint = "cp.lab:99999" },
			want: `ClusterConfiguration: controlPlaneEndpoint: Invalid value: "cp.lab:99999": the port must be a number between 1 and 65535`,
		},
		{
			name: "control-plane endpoint with a bad host",
			edit: func(c *Init) { c.Cluster.ControlPlaneEndpoint = "cp_lab:6443" },
			want: `ClusterConfiguration: controlPlaneEndpoint: Invalid value: "cp_lab:6443": must be host[:port] where host is an IP address or a DNS name`,
		},
		{
			name: "control-plane endpoint as a URL",
			edit: func(c *Init) { c.Cluster.ControlPlaneEndpoint = "https://cp.lab:6443" },
			want: `ClusterConfiguration: controlPlaneEndpoint: Invalid value: "https://cp.lab:6443": must be host[:port] where host is an IP address or a DNS name`,
		},
		{
			name: "etcd local and external",
			edit: func(c *Init) {
				c.Cluster.Etcd.External = &ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}}
			},
			want: `ClusterConfiguration: etcd.external: Forbidden: local and external are mutually exclusive; set only one`,
		},
		{
			name: "etcd neither",
			edit: func(c *Init) { c.Cluster.Etcd = Etcd{} },
			want: `ClusterConfiguration: etcd: Required value: either local or external`,
		},
		{
			name: "external etcd without endpoints",
			edit: func(c *Init) { c.Cluster.Etcd = Etcd{External: &ExternalEtcd{}} },
			want: `ClusterConfiguration: etcd.external.endpoints: Required value: at least one etcd client URL, e.g. https://10.0.0.5:2379`,
		},
		{
			name: "external etcd with half a client certificate and no CA",
			edit: func(c *Init) {
				c.Cluster.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}, CertFile: "etcd.crt"}}
			},
			want: "ClusterConfiguration: etcd.external: Invalid value: \"\": certFile and keyFile must be set together\n" +
				"ClusterConfiguration: etcd.external.caFile: Required value: certFile and keyFile need the CA that signed etcd's serving certificate\n" +
				`ClusterConfiguration: etcd.external.certFile: Invalid value: "etcd.crt": must be an absolute path`,
		},
		{
			name: "external etcd http with TLS files",
			edit: func(c *Init) {
				c.Cluster.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"http://10.0.0.5:2379", "10.0.0.6:2379"},
					CAFile: "/ca.crt"}}
			},
			want: "ClusterConfiguration: etcd.external.endpoints[0]: Invalid value: \"http://10.0.0.5:2379\": must use https when caFile, certFile or keyFile is set\n" +
				`ClusterConfiguration: etcd.external.endpoints[1]: Invalid value: "10.0.0.6:2379": not a URL such as https://10.0.0.5:2379`,
		},
		{
			name: "external etcd with an odd scheme",
			edit: func(c *Init) { c.Cluster.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"unix://etcd:2379"}}} },
			want: `ClusterConfiguration: etcd.external.endpoints[0]: Invalid value: "unix://etcd:2379": the scheme must be https or http`,
		},
		{
			name: "relative etcd data dir",
			edit: func(c *Init) { c.Cluster.Etcd.Local.DataDir = "etcd" },
			want: `ClusterConfiguration: etcd.local.dataDir: Invalid value: "etcd": must be an absolute path`,
		},
		{
			name: "bad etcd SAN and image repository",
			edit: func(c *Init) {
				c.Cluster.Etcd.Local.PeerCertSANs = []string{"etcd_1"}
				c.Cluster.Etcd.Local.ImageRepository = "Bad/Repo"
			},
			want: "ClusterConfiguration: etcd.local.peerCertSANs[0]: Invalid value: \"etcd_1\": not an IP address, a DNS name or a wildcard DNS name\n" +
				`ClusterConfiguration: etcd.local.imageRepository: Invalid value: "Bad/Repo": not an image repository such as registry.k8s.io or host:5000/path`,
		},
		{
			name: "node name not a DNS subdomain",
			edit: func(c *Init) { c.Init.NodeRegistration.Name = "cp_1" },
			want: `InitConfiguration: nodeRegistration.name: Invalid value: "cp_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
		},
		{
			name: "node name empty",
			edit: func(c *Init) { c.Init.NodeRegistration.Name = "" },
			want: `InitConfiguration: nodeRegistration.name: Required value: set it or pass --node-name`,
		},
		{
			name: "unknown image pull policy",
			edit: func(c *Init) { c.Init.NodeRegistration.ImagePullPolicy = "Sometimes" },
			want: `InitConfiguration: nodeRegistration.imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"`,
		},
		{
			name: "CRI socket with another scheme",
			edit: func(c *Init) { c.Init.NodeRegistration.CRISocket = "npipe:////./pipe/containerd" },
			want: `InitConfiguration: nodeRegistration.criSocket: Invalid value: "npipe:////./pipe/containerd": only the "unix" URL scheme is supported, got "npipe"`,
		},
		{
			name: "CRI socket empty",
			edit: func(c *Init) { c.Init.NodeRegistration.CRISocket = "" },
			want: `InitConfiguration: nodeRegistration.criSocket: Required value: the CRI socket URL, e.g. unix:///var/run/containerd/containerd.sock`,
		},
		{
			name: "CRI socket not a URL",
			edit: func(c *Init) { c.Init.NodeRegistration.CRISocket = "unix://%zz" },
			want: `InitConfiguration: nodeRegistration.criSocket: Invalid value: "unix://%zz": not a URL: parse "unix://%zz": invalid URL escape "%zz"`,
		},
		{
			name: "bad taints",
			edit: func(c *Init) {
				c.Init.NodeRegistration.Taints = []corev1.Taint{{Key: "bad key", Value: "x y", Effect: "Sometimes"}}
			},
			want: `InitConfiguration: nodeRegistration.taints[0].key: Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')` + "\n" +
				`InitConfiguration: nodeRegistration.taints[0].value: Invalid value: "x y": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')` + "\n" +
				`InitConfiguration: nodeRegistration.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`,
		},
		{
			name: "all plus a named preflight check",
			edit: func(c *Init) { c.Init.NodeRegistration.IgnorePreflightErrors = []string{"all", "swap"} },
			want: `InitConfiguration: nodeRegistration.ignorePreflightErrors: Invalid value: "all,swap": "all" ignores every check; do not list individual checks with it`,
		},
		{
			name: "extra args without names or with dashes",
			edit: func(c *Init) {
				c.Init.NodeRegistration.KubeletExtraArgs = []Arg{{Value: "x"}}
				c.Cluster.APIServer.ExtraArgs = []Arg{{Name: "--v", Value: "2"}}
				c.Cluster.Scheduler.ExtraArgs = []Arg{{Name: "", Value: "2"}}
			},
			want: "InitConfiguration: nodeRegistration.kubeletExtraArgs[0].name: Required value: an argument needs a name\n" +
				"ClusterConfiguration: apiServer.extraArgs[0].name: Invalid value: \"--v\": write the flag name without leading \"-\"\n" +
				"ClusterConfiguration: scheduler.extraArgs[0].name: Required value: an argument needs a name",
		},
		{
			name: "certificate key not hex, never printed",
			edit: func(c *Init) { c.Init.CertificateKey = "not-a-key" },
			want: `InitConfiguration: certificateKey: Invalid value: "<redacted>": must be 64 hex characters (a 32-byte AES key)`,
		},
		{
			name: "certificate key too short",
			edit: func(c *Init) { c.Init.CertificateKey = "abcd" },
			want: `InitConfiguration: certificateKey: Invalid value: "<redacted>": must be 64 hex characters (a 32-byte AES key)`,
		},
		{
			name: "bad cert SAN",
			edit: func(c *Init) { c.Cluster.APIServer.CertSANs = []string{"ok.example", "not ok"} },
			want: `ClusterConfiguration: apiServer.certSANs[1]: Invalid value: "not ok": not an IP address, a DNS name or a wildcard DNS name`,
		},
		{
			name: "relative certificates dir",
			edit: func(c *Init) { c.Cluster.CertificatesDir = "pki" },
			want: `ClusterConfiguration: certificatesDir: Invalid value: "pki": must be an absolute path`,
		},
		{
			name: "bad image repositories",
			edit: func(c *Init) {
				c.Cluster.ImageRepository = "registry.k8s.io/UPPER"
				c.Cluster.DNS.ImageRepository = "-bad.example"
			},
			want: "ClusterConfiguration: imageRepository: Invalid value: \"registry.k8s.io/UPPER\": not an image repository such as registry.k8s.io or host:5000/path\n" +
				`ClusterConfiguration: dns.imageRepository: Invalid value: "-bad.example": not an image repository such as registry.k8s.io or host:5000/path`,
		},
		{
			name: "unknown feature gate",
			edit: func(c *Init) { c.Cluster.FeatureGates = map[string]bool{"Bogus": true} },
			want: `ClusterConfiguration: featureGates[Bogus]: Unsupported value: "Bogus": supported values: "RootlessControlPlane"`,
		},
		{
			name: "a gate kubeadm v1.37 removed",
			edit: func(c *Init) { c.Cluster.FeatureGates = map[string]bool{"NodeLocalCRISocket": true} },
			want: `ClusterConfiguration: featureGates[NodeLocalCRISocket]: Unsupported value: "NodeLocalCRISocket": supported values: "RootlessControlPlane"`,
		},
		{
			name: "v1.36's locked gate turned off",
			edit: func(c *Init) {
				c.Cluster.KubernetesVersion = "v1.36.3"
				c.Cluster.FeatureGates = map[string]bool{"NodeLocalCRISocket": false}
			},
			want: `ClusterConfiguration: featureGates[NodeLocalCRISocket]: Invalid value: false: the gate is locked to true in Kubernetes v1.36: remove it`,
		},
		{
			name: "non-positive validity",
			edit: func(c *Init) { c.Cluster.CertificateValidityPeriod = dur(0) },
			want: `ClusterConfiguration: certificateValidityPeriod: Invalid value: "0s": must be positive`,
		},
		{
			name: "leaf outlives CA",
			edit: func(c *Init) { c.Cluster.CACertificateValidityPeriod = dur(time.Hour) },
			want: `ClusterConfiguration: certificateValidityPeriod: Invalid value: "8760h0m0s": longer than caCertificateValidityPeriod (1h0m0s): certificates cannot outlive their CA`,
		},
		{
			name: "negative timeout",
			edit: func(c *Init) { c.Init.Timeouts.EtcdAPICall = dur(-time.Second) },
			want: `InitConfiguration: timeouts.etcdAPICall: Invalid value: "-1s": must not be negative`,
		},
		{
			name: "relative patches directory",
			edit: func(c *Init) { c.Init.Patches = &Patches{Directory: "patches"} },
			want: `InitConfiguration: patches.directory: Invalid value: "patches": must be an absolute path`,
		},
		{
			name: "kubelet cgroup driver and cluster DNS",
			edit: func(c *Init) {
				c.Kubelet.CgroupDriver = "cgroupv2"
				c.Kubelet.ClusterDNS = []string{"dns"}
			},
			want: "KubeletConfiguration: cgroupDriver: Unsupported value: \"cgroupv2\": supported values: \"cgroupfs\", \"systemd\"\n" +
				`KubeletConfiguration: clusterDNS[0]: Invalid value: "dns": not an IP address`,
		},
		{
			name: "kube-proxy cluster CIDR",
			edit: func(c *Init) { c.Proxy.ClusterCIDR = "pods" },
			want: `KubeProxyConfiguration: clusterCIDR: Invalid value: "pods": not a CIDR such as 10.96.0.0/12`,
		},
		{
			name: "errors of both documents are collected",
			edit: func(c *Init) {
				c.Init.LocalAPIEndpoint.AdvertiseAddress = "x"
				c.Cluster.Networking.PodSubnet = "y"
				c.Kubelet = &kubeletv1beta1.KubeletConfiguration{CgroupDriver: "z"}
			},
			want: "InitConfiguration: localAPIEndpoint.advertiseAddress: Invalid value: \"x\": not an IP address\n" +
				"ClusterConfiguration: networking.podSubnet: Invalid value: \"y\": not a CIDR such as 10.96.0.0/12\n" +
				`KubeletConfiguration: cgroupDriver: Unsupported value: "z": supported values: "cgroupfs", "systemd"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validInit(t)
			tt.edit(cfg)
			assertError(t, ValidateInit(cfg), tt.want)
		})
	}
}

// validJoin is a defaulted worker join that passes validation.
func validJoin(t *testing.T) *Join {
	t.Helper()
	j := &Join{Join: JoinConfiguration{Discovery: Discovery{BootstrapToken: &BootstrapTokenDiscovery{
		Token:             "abcdef.0123456789abcdef",
		APIServerEndpoint: "10.0.0.10:6443",
		CACertHashes:      []string{"sha256:" + strings.Repeat("0a", 32)},
	}}}}
	if err := SetJoinDefaults(j, testEnv()); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestValidateJoinAccepts(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Join)
	}{
		{"token discovery with a pin", func(*Join) {}},
		{"unsafe skip without pin", func(j *Join) {
			j.Join.Discovery.BootstrapToken.CACertHashes = nil
			j.Join.Discovery.BootstrapToken.UnsafeSkipCAVerification = true
		}},
		{"file discovery without TLS token", func(j *Join) {
			j.Join.Discovery = Discovery{File: &FileDiscovery{KubeConfigPath: "/etc/kubernetes/discovery.conf"}}
		}},
		{"https discovery URL", func(j *Join) {
			j.Join.Discovery = Discovery{File: &FileDiscovery{KubeConfigPath: "https://cp.lab/cluster-info.yaml"},
				TLSBootstrapToken: "abcdef.0123456789abcdef"}
		}},
		{"control plane", func(j *Join) {
			j.Join.ControlPlane = &JoinControlPlane{LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.11", BindPort: 6443},
				CertificateKey: strings.Repeat("0f", 32)}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := validJoin(t)
			tt.edit(j)
			if err := ValidateJoin(j); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidateJoinErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Join)
		want string
	}{
		{
			name: "no discovery",
			edit: func(j *Join) { j.Join.Discovery = Discovery{} },
			want: "JoinConfiguration: discovery: Required value: bootstrapToken or file; pass an API server endpoint with " +
				"--token and --discovery-token-ca-cert-hash, or --discovery-file",
		},
		{
			name: "both discoveries",
			edit: func(j *Join) { j.Join.Discovery.File = &FileDiscovery{KubeConfigPath: "/x.conf"} },
			want: "JoinConfiguration: discovery.file: Forbidden: bootstrapToken and file are mutually exclusive; set only one",
		},
		{
			name: "token without pin and without unsafe skip",
			edit: func(j *Join) { j.Join.Discovery.BootstrapToken.CACertHashes = nil },
			want: "JoinConfiguration: discovery.bootstrapToken.caCertHashes: Required value: without a CA pin the cluster " +
				"cannot be authenticated; pass --discovery-token-ca-cert-hash sha256:<hex> (or, unsafely, " +
				"--discovery-token-unsafe-skip-ca-verification)",
		},
		{
			name: "bad hash formats",
			edit: func(j *Join) {
				j.Join.Discovery.BootstrapToken.CACertHashes = []string{
					"sha256:" + strings.Repeat("0a", 31), "md5:" + strings.Repeat("0a", 32), strings.Repeat("0A", 32)}
			},
			want: "JoinConfiguration: discovery.bootstrapToken.caCertHashes[0]: Invalid value: \"sha256:" + strings.Repeat("0a", 31) + "\": must be \"sha256:\" followed by 64 lower-case hex characters\n" +
				"JoinConfiguration: discovery.bootstrapToken.caCertHashes[1]: Invalid value: \"md5:" + strings.Repeat("0a", 32) + "\": must be \"sha256:\" followed by 64 lower-case hex characters\n" +
				"JoinConfiguration: discovery.bootstrapToken.caCertHashes[2]: Invalid value: \"" + strings.Repeat("0A", 32) + "\": must be \"sha256:\" followed by 64 lower-case hex characters",
		},
		{
			name: "malformed discovery and TLS tokens",
			edit: func(j *Join) {
				j.Join.Discovery.BootstrapToken.Token = "abcdef.short"
				j.Join.Discovery.TLSBootstrapToken = ""
			},
			want: "JoinConfiguration: discovery.bootstrapToken.token: Invalid value: \"abcdef.<redacted>\": a bootstrap token has the form \"[a-z0-9]{6}.[a-z0-9]{16}\"\n" +
				`JoinConfiguration: discovery.tlsBootstrapToken: Invalid value: "": a bootstrap token has the form "[a-z0-9]{6}.[a-z0-9]{16}"`,
		},
		{
			name: "endpoint missing",
			edit: func(j *Join) { j.Join.Discovery.BootstrapToken.APIServerEndpoint = "" },
			want: "JoinConfiguration: discovery.bootstrapToken.apiServerEndpoint: Required value: the control plane's host:port",
		},
		{
			name: "endpoint without port",
			edit: func(j *Join) { j.Join.Discovery.BootstrapToken.APIServerEndpoint = "10.0.0.10" },
			want: `JoinConfiguration: discovery.bootstrapToken.apiServerEndpoint: Invalid value: "10.0.0.10": must be host:port`,
		},
		{
			name: "http discovery URL",
			edit: func(j *Join) {
				j.Join.Discovery = Discovery{File: &FileDiscovery{KubeConfigPath: "http://cp.lab/cluster-info"}}
			},
			want: `JoinConfiguration: discovery.file.kubeConfigPath: Invalid value: "http://cp.lab/cluster-info": a URL must use https`,
		},
		{
			name: "empty discovery file",
			edit: func(j *Join) { j.Join.Discovery = Discovery{File: &FileDiscovery{}} },
			want: "JoinConfiguration: discovery.file.kubeConfigPath: Required value: a kubeconfig file path or an https URL",
		},
		{
			name: "file discovery with a malformed TLS token",
			edit: func(j *Join) {
				j.Join.Discovery = Discovery{File: &FileDiscovery{KubeConfigPath: "/d.conf"}, TLSBootstrapToken: "nope"}
			},
			want: `JoinConfiguration: discovery.tlsBootstrapToken: Invalid value: "nope": a bootstrap token has the form "[a-z0-9]{6}.[a-z0-9]{16}"`,
		},
		{
			name: "control plane with bad endpoint and key",
			edit: func(j *Join) {
				j.Join.ControlPlane = &JoinControlPlane{LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "0.0.0.0"}, CertificateKey: "zz"}
			},
			want: "JoinConfiguration: controlPlane.localAPIEndpoint.advertiseAddress: Invalid value: \"0.0.0.0\": the API server cannot advertise this address; use a unicast address of this node\n" +
				"JoinConfiguration: controlPlane.localAPIEndpoint.bindPort: Invalid value: 0: must be between 1 and 65535\n" +
				`JoinConfiguration: controlPlane.certificateKey: Invalid value: "<redacted>": must be 64 hex characters (a 32-byte AES key)`,
		},
		{
			name: "CA path",
			edit: func(j *Join) { j.Join.CACertPath = "ca.pem" },
			want: `JoinConfiguration: caCertPath: Invalid value: "ca.pem": must be an absolute path ending in .crt`,
		},
		{
			name: "node registration",
			edit: func(j *Join) {
				j.Join.NodeRegistration.Name = "Worker"
				j.Join.NodeRegistration.ImagePullPolicy = "Later"
			},
			want: `JoinConfiguration: nodeRegistration.name: Invalid value: "Worker": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')` + "\n" +
				`JoinConfiguration: nodeRegistration.imagePullPolicy: Unsupported value: "Later": supported values: "Always", "IfNotPresent", "Never"`,
		},
		{
			name: "timeouts and patches",
			edit: func(j *Join) {
				j.Join.Timeouts.Discovery = dur(-time.Minute)
				j.Join.Patches = &Patches{Directory: "p"}
			},
			want: "JoinConfiguration: patches.directory: Invalid value: \"p\": must be an absolute path\n" +
				`JoinConfiguration: timeouts.discovery: Invalid value: "-1m0s": must not be negative`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := validJoin(t)
			tt.edit(j)
			assertError(t, ValidateJoin(j), tt.want)
		})
	}
}

func TestValidateReset(t *testing.T) {
	r := &ResetConfiguration{}
	SetResetDefaults(r)
	if err := ValidateReset(r); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	r.UnmountFlags = []string{"MNT_FORCE", "MNT_LAZY"}
	r.CertificatesDir = "pki"
	r.CRISocket = "tcp://10.0.0.1:1234"
	r.IgnorePreflightErrors = []string{"All", "x"}
	r.Timeouts.TLSBootstrap = dur(-time.Second)
	assertError(t, ValidateReset(r),
		"ResetConfiguration: criSocket: Invalid value: \"tcp://10.0.0.1:1234\": only the \"unix\" URL scheme is supported, got \"tcp\"\n"+
			"ResetConfiguration: certificatesDir: Invalid value: \"pki\": must be an absolute path\n"+
			"ResetConfiguration: unmountFlags[1]: Unsupported value: \"MNT_LAZY\": supported values: \"MNT_DETACH\", \"MNT_EXPIRE\", \"MNT_FORCE\", \"UMOUNT_NOFOLLOW\"\n"+
			"ResetConfiguration: ignorePreflightErrors: Invalid value: \"All,x\": \"all\" ignores every check; do not list individual checks with it\n"+
			"ResetConfiguration: timeouts.tlsBootstrap: Invalid value: \"-1s\": must not be negative")
}

func TestValidateClusterIsInitsClusterPart(t *testing.T) {
	cfg := &Init{}
	if err := SetInitDefaults(cfg, Environment{
		Hostname:         func() (string, error) { return "n1", nil },
		AdvertiseAddress: func() (net.IP, error) { return net.ParseIP("10.0.0.1"), nil },
		Random:           strings.NewReader(strings.Repeat("a", 64)),
	}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateCluster(cfg.ClusterPart()); err != nil {
		t.Fatalf("a defaulted configuration: %v", err)
	}
	cfg.Cluster.KubernetesVersion = "1.37"
	cfg.Kubelet.CgroupDriver = "openrc"
	cfg.Init.NodeRegistration.Name = "" // the node's part: not ValidateCluster's
	err := ValidateCluster(cfg.ClusterPart())
	want := `ClusterConfiguration: kubernetesVersion: Invalid value: "1.37": must be a version such as "` + release.DefaultVersion() + `"` + "\n" +
		`KubeletConfiguration: cgroupDriver: Unsupported value: "openrc": supported values: "cgroupfs", "systemd"`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
}
