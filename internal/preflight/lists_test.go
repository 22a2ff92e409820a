package preflight

import (
	"bytes"
	"io"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/config"
)

// initConfig is what the loader produces for a default `kubeboot init` on node1 (10.0.0.10).
func initConfig() config.Init {
	return config.Init{
		Init: config.InitConfiguration{
			NodeRegistration: config.NodeRegistrationOptions{
				Name:            "node1",
				CRISocket:       config.DefaultCRISocket,
				ImagePullPolicy: corev1.PullIfNotPresent,
			},
			LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "10.0.0.10", BindPort: 6443},
		},
		Cluster: config.ClusterConfiguration{
			Etcd:              config.Etcd{Local: &config.LocalEtcd{DataDir: config.DefaultEtcdDataDir}},
			Networking:        config.Networking{ServiceSubnet: config.DefaultServiceSubnet, PodSubnet: "10.244.0.0/16", DNSDomain: config.DefaultDNSDomain},
			KubernetesVersion: "v1.37.2",
			CertificatesDir:   config.DefaultCertificatesDir,
			ImageRepository:   config.DefaultImageRepository,
			ClusterName:       config.DefaultClusterName,
		},
		Kubelet: &kubeletv1beta1.KubeletConfiguration{},
		Proxy:   &kubeproxyv1alpha1.KubeProxyConfiguration{},
	}
}

func names(checks []Check) []string {
	var out []string
	for _, c := range checks {
		out = append(out, c.Name())
	}
	return out
}

var nodeCheckNames = []string{
	"CRI", "ContainerRuntimeVersion", "SystemVerification", "Swap",
	"FileExisting-conntrack", "FileExisting-ip", "FileExisting-iptables", "FileExisting-mount", "FileExisting-nsenter",
	"FileExisting-ebtables", "FileExisting-ethtool", "FileExisting-socat", "FileExisting-tc", "FileExisting-touch",
	"Hostname", "KubeletVersion", "Service-Kubelet",
}

var controlPlaneCheckNames = []string{
	"NumCPU", "Mem", "Port-6443", "Port-10259", "Port-10257", "DirAvailable--etc-kubernetes-manifests",
	"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
	"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
	"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
	"FileAvailable--etc-kubernetes-manifests-etcd.yaml",
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestInitChecksNames(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*config.Init)
		want   []string
	}{
		{
			name: "defaults",
			want: concat([]string{"IsPrivilegedUser"}, controlPlaneCheckNames,
				[]string{"HTTPProxy", "HTTPProxyCIDR", "HTTPProxyCIDR"}, nodeCheckNames,
				[]string{"Port-10250", "FileContent--proc-sys-net-ipv4-ip_forward", "Port-2379", "Port-2380", "DirAvailable--var-lib-etcd", "ImagePull"}),
		},
		{
			name: "external etcd, custom ports, dual-stack",
			modify: func(c *config.Init) {
				c.Init.LocalAPIEndpoint.BindPort = 8443
				c.Cluster.Scheduler.ExtraArgs = []config.Arg{{Name: "secure-port", Value: "20259"}}
				c.Kubelet.Port = 20250
				c.Cluster.Networking.ServiceSubnet = "10.96.0.0/12,fd00:10:96::/108"
				c.Cluster.Networking.PodSubnet = ""
				c.Cluster.Etcd = config.Etcd{External: &config.ExternalEtcd{
					Endpoints: []string{"https://10.0.0.20:2379"}, CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key",
				}}
			},
			want: concat([]string{"IsPrivilegedUser", "NumCPU", "Mem", "Port-8443", "Port-20259", "Port-10257"}, controlPlaneCheckNames[5:],
				[]string{"HTTPProxy", "HTTPProxyCIDR", "HTTPProxyCIDR"}, nodeCheckNames,
				[]string{"Port-20250", "FileContent--proc-sys-net-ipv4-ip_forward", "FileContent--proc-sys-net-ipv6-conf-default-forwarding",
					"ExternalEtcdClientCertificates", "ExternalEtcdClientCertificates", "ExternalEtcdClientCertificates", "ImagePull"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := initConfig()
			if tt.modify != nil {
				tt.modify(&cfg)
			}
			if got := names(InitChecks(cfg, newFakeMachine(t).Env())); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("InitChecks names:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestJoinChecksNames(t *testing.T) {
	cfg := config.Join{Join: config.JoinConfiguration{
		NodeRegistration: config.NodeRegistrationOptions{Name: "node2", CRISocket: config.DefaultCRISocket},
		CACertPath:       config.DefaultCACertPath,
		Discovery: config.Discovery{BootstrapToken: &config.BootstrapTokenDiscovery{
			Token: "abcdef.0123456789abcdef", APIServerEndpoint: "10.0.0.10:6443", UnsafeSkipCAVerification: true,
		}},
	}}
	worker := concat([]string{"IsPrivilegedUser", "FileAvailable--etc-kubernetes-kubelet.conf", "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf"},
		nodeCheckNames, []string{"Port-10250", "FileAvailable--etc-kubernetes-pki-ca.crt", "HTTPProxy", "FileContent--proc-sys-net-ipv4-ip_forward"})
	if got := names(JoinChecks(cfg, newFakeMachine(t).Env(), false)); !reflect.DeepEqual(got, worker) {
		t.Fatalf("JoinChecks(worker) names:\n got %q\nwant %q", got, worker)
	}

	cfg.Join.ControlPlane = &config.JoinControlPlane{LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "10.0.0.11", BindPort: 6443}}
	cp := concat([]string{"IsPrivilegedUser", "FileAvailable--etc-kubernetes-kubelet.conf", "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf"},
		nodeCheckNames, []string{"Port-10250", "HTTPProxy"}, controlPlaneCheckNames,
		[]string{"HTTPProxy", "Port-2379", "Port-2380", "DirAvailable--var-lib-etcd", "FileContent--proc-sys-net-ipv4-ip_forward"})
	if got := names(JoinChecks(cfg, newFakeMachine(t).Env(), true)); !reflect.DeepEqual(got, cp) {
		t.Fatalf("JoinChecks(control plane) names:\n got %q\nwant %q", got, cp)
	}
}

// The addresses each port check binds are those the components will bind.
func TestPortAddresses(t *testing.T) {
	t.Run("init", func(t *testing.T) {
		m := newFakeMachine(t)
		cfg := initConfig()
		cfg.Cluster.APIServer.ExtraArgs = []config.Arg{{Name: "bind-address", Value: "10.0.0.10"}}
		cfg.Kubelet.Address = "10.0.0.10"
		for _, c := range InitChecks(cfg, m.Env()) {
			if _, ok := c.(port); ok {
				c.Check(t.Context())
			}
		}
		want := []string{"10.0.0.10:6443", "127.0.0.1:10259", "127.0.0.1:10257", "10.0.0.10:10250", "127.0.0.1:2379", "10.0.0.10:2379", "10.0.0.10:2380"}
		if !reflect.DeepEqual(m.listened, want) {
			t.Fatalf("listened on %q, want %q", m.listened, want)
		}
	})
	t.Run("join worker", func(t *testing.T) {
		m := newFakeMachine(t)
		for _, c := range JoinChecks(config.Join{}, m.Env(), false) {
			if _, ok := c.(port); ok {
				c.Check(t.Context())
			}
		}
		if want := []string{"0.0.0.0:10250"}; !reflect.DeepEqual(m.listened, want) {
			t.Fatalf("listened on %q, want %q", m.listened, want)
		}
	})
}

// Three checks need the kubelet's version (KubeletVersion, SystemVerification on cgroup v1, and the runtime's
// version with containerd 1.x); a list runs `kubelet --version` once for all of them.
func TestChecksRunKubeletVersionOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		checks func(m *fakeMachine) []Check
	}{
		{"init", func(m *fakeMachine) []Check { return InitChecks(initConfig(), m.Env()) }},
		{"join", func(m *fakeMachine) []Check { return JoinChecks(config.Join{}, m.Env(), false) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeMachine(t)
			m.remove(t, "/sys/fs/cgroup/cgroup.controllers")
			m.runtime.version.RuntimeVersion = "v1.7.0"
			if err := Run(t.Context(), tt.checks(m), nil, io.Discard); err == nil {
				t.Fatal("cgroup v1 and containerd 1.7 with kubelet 1.37 passed preflight")
			}
			n := 0
			for _, cmd := range m.ran {
				if cmd == "kubelet --version" {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("ran `kubelet --version` %d times, want once (all ran: %q)", n, m.ran)
			}
		})
	}
}

// A whole init preflight on a fake machine: a healthy one passes with the warnings this lab's machine gets, a
// used one fails with every problem listed.
func TestInitPreflight(t *testing.T) {
	t.Run("healthy machine: cgroup v2, containerd 2", func(t *testing.T) {
		m := newFakeMachine(t)
		var w bytes.Buffer
		if err := Run(t.Context(), InitChecks(initConfig(), m.Env()), nil, &w); err != nil {
			t.Fatalf("Run error = %v", err)
		}
		want := ""
		if w.String() != want {
			t.Fatalf("warnings:\n%q\nwant\n%q", w.String(), want)
		}
	})
	t.Run("machine of a previous cluster, images not imported", func(t *testing.T) {
		m := newFakeMachine(t)
		m.write(t, "/etc/kubernetes/manifests/etcd.yaml", "x")
		m.write(t, "/var/lib/etcd/member/wal/0.wal", "x")
		m.busy["0.0.0.0:6443"] = errInUse
		m.busy["0.0.0.0:10250"] = errInUse
		m.missing["socat"] = true
		cfg := initConfig()
		cfg.Init.NodeRegistration.ImagePullPolicy = corev1.PullNever
		images, err := cfg.Cluster.Images()
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range images {
			m.runtime.present[img] = img != "registry.k8s.io/etcd:3.7.0-0"
		}
		var w bytes.Buffer
		err = Run(t.Context(), InitChecks(cfg, m.Env()), []string{"DirAvailable--var-lib-etcd"}, &w)
		wantErr := "preflight checks failed:\n" +
			"\t[ERROR Port-6443]: port 6443 is in use on 0.0.0.0, stop what listens there (ss -ltnp 'sport = :6443') or run 'kubeboot reset' if it is a previous cluster\n" +
			"\t[ERROR DirAvailable--etc-kubernetes-manifests]: /etc/kubernetes/manifests is not empty, run 'kubeboot reset' or empty it\n" +
			"\t[ERROR FileAvailable--etc-kubernetes-manifests-etcd.yaml]: /etc/kubernetes/manifests/etcd.yaml already exists, run 'kubeboot reset' or remove it\n" +
			"\t[ERROR Port-10250]: port 10250 is in use on 0.0.0.0, stop what listens there (ss -ltnp 'sport = :10250') or run 'kubeboot reset' if it is a previous cluster\n" +
			"\t[ERROR ImagePull]: image registry.k8s.io/etcd:3.7.0-0 is not present in the container runtime and imagePullPolicy is Never, import it (ctr -n k8s.io images import FILE.tar) or set nodeRegistration.imagePullPolicy to IfNotPresent\n" +
			"To ignore these, use --ignore-preflight-errors=Port-6443,DirAvailable--etc-kubernetes-manifests,FileAvailable--etc-kubernetes-manifests-etcd.yaml,Port-10250,ImagePull"
		if err == nil || err.Error() != wantErr {
			t.Fatalf("Run error:\n%v\nwant:\n%s", err, wantErr)
		}
		wantWarnings := "" +
			"\t[WARNING FileExisting-socat]: socat not found in system path, install it (Debian/Ubuntu package socat)\n" +
			"\t[WARNING DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty, run 'kubeboot reset' or empty it\n"
		if w.String() != wantWarnings {
			t.Fatalf("warnings:\n%s\nwant\n%s", w.String(), wantWarnings)
		}
	})
}
