package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const v1beta3Init = `apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
nodeRegistration:
  name: cp-1
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    node-ip: 10.0.0.10
    cgroup-driver: cgroupfs
  taints:
  - key: dedicated
    value: infra
    effect: NoExecute
  imagePullPolicy: Never
localAPIEndpoint:
  advertiseAddress: 10.0.0.10
certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
skipPhases: [addon/coredns]
patches:
  directory: /etc/kubeboot/patches
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.36.2
controlPlaneEndpoint: cp.example:6443
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  timeoutForControlPlane: 7m0s
  certSANs: [api.example]
  extraArgs:
    service-node-port-range: 20000-22767
    audit-log-path: /var/log/audit.log
  extraVolumes:
  - name: audit
    hostPath: /var/log
    mountPath: /var/log
controllerManager:
  extraArgs:
    node-cidr-mask-size-ipv4: "25"
scheduler:
  extraArgs:
    v: "2"
etcd:
  local:
    dataDir: /data/etcd
    extraArgs:
      snapshot-count: "5000"
      heartbeat-interval: "250"
    serverCertSANs: [etcd.example]
dns:
  imageRepository: mirror.example/coredns
imageRepository: mirror.example
featureGates:
  RootlessControlPlane: false
clusterName: lab
`

func TestV1beta3InitConversion(t *testing.T) {
	docs, err := Load([]byte(v1beta3Init))
	if err != nil {
		t.Fatal(err)
	}
	wantWarnings := []string{
		"InitConfiguration: kubeadm.k8s.io/v1beta3 is deprecated and kubeadm v1.37 no longer reads it; convert the file to kubeadm.k8s.io/v1beta4 with 'kubeboot config migrate --old-config FILE --new-config NEW'",
		"ClusterConfiguration: kubeadm.k8s.io/v1beta3 is deprecated and kubeadm v1.37 no longer reads it; convert the file to kubeadm.k8s.io/v1beta4 with 'kubeboot config migrate --old-config FILE --new-config NEW'",
	}
	if d := cmp.Diff(wantWarnings, docs.Warnings); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
	cfg, err := docs.ForInit()
	if err != nil {
		t.Fatal(err)
	}
	want := &Init{
		Init: InitConfiguration{
			TypeMeta:        metav1.TypeMeta{APIVersion: V1beta4, Kind: KindInit},
			BootstrapTokens: []BootstrapToken{{Token: "abcdef.0123456789abcdef"}},
			NodeRegistration: NodeRegistrationOptions{
				Name:      "cp-1",
				CRISocket: "unix:///run/containerd/containerd.sock",
				Taints:    []corev1.Taint{{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoExecute}},
				// Sorted by name: v1beta3 maps have no order.
				KubeletExtraArgs: []Arg{{Name: "cgroup-driver", Value: "cgroupfs"}, {Name: "node-ip", Value: "10.0.0.10"}},
				ImagePullPolicy:  corev1.PullNever,
				ImagePullSerial:  ptr.To(true),
			},
			LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.10"},
			CertificateKey:   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			SkipPhases:       []string{"addon/coredns"},
			Patches:          &Patches{Directory: "/etc/kubeboot/patches"},
			// apiServer.timeoutForControlPlane moved here in v1beta4.
			Timeouts: &Timeouts{ControlPlaneComponentHealthCheck: &metav1.Duration{Duration: 7 * time.Minute}},
		},
		Cluster: ClusterConfiguration{
			TypeMeta:             metav1.TypeMeta{APIVersion: V1beta4, Kind: KindCluster},
			KubernetesVersion:    "v1.36.2",
			ControlPlaneEndpoint: "cp.example:6443",
			Networking:           Networking{PodSubnet: "10.244.0.0/16"},
			APIServer: APIServer{
				ControlPlaneComponent: ControlPlaneComponent{
					ExtraArgs: []Arg{
						{Name: "audit-log-path", Value: "/var/log/audit.log"},
						{Name: "service-node-port-range", Value: "20000-22767"},
					},
					ExtraVolumes: []HostPathMount{{Name: "audit", HostPath: "/var/log", MountPath: "/var/log"}},
				},
				CertSANs: []string{"api.example"},
			},
			ControllerManager: ControlPlaneComponent{ExtraArgs: []Arg{{Name: "node-cidr-mask-size-ipv4", Value: "25"}}},
			Scheduler:         ControlPlaneComponent{ExtraArgs: []Arg{{Name: "v", Value: "2"}}},
			Etcd: Etcd{Local: &LocalEtcd{
				DataDir:        "/data/etcd",
				ExtraArgs:      []Arg{{Name: "heartbeat-interval", Value: "250"}, {Name: "snapshot-count", Value: "5000"}},
				ServerCertSANs: []string{"etcd.example"},
			}},
			DNS:             DNS{ImageMeta: ImageMeta{ImageRepository: "mirror.example/coredns"}},
			ImageRepository: "mirror.example",
			FeatureGates:    map[string]bool{"RootlessControlPlane": false},
			ClusterName:     "lab",
		},
	}
	if d := cmp.Diff(want, cfg); d != "" {
		t.Errorf("converted (-want +got):\n%s", d)
	}

	// After conversion the configuration defaults and validates like a v1beta4 one.
	if err := SetInitDefaults(cfg, testEnv()); err != nil {
		t.Fatal(err)
	}
	if err := ValidateInit(cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Init.Timeouts.ControlPlaneComponentHealthCheck.Duration; got != 7*time.Minute {
		t.Errorf("controlPlaneComponentHealthCheck = %s after defaulting, want 7m", got)
	}
	if cfg.Cluster.EncryptionAlgorithm != EncryptionAlgorithmRSA2048 {
		t.Errorf("encryptionAlgorithm = %q", cfg.Cluster.EncryptionAlgorithm)
	}
}

func TestV1beta3TimeoutOverridesInitTimeouts(t *testing.T) {
	// kubeadm lets a v1beta3 ClusterConfiguration's timeout win over a v1beta4 InitConfiguration's.
	cfg, err := LoadInit([]byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
timeouts:
  controlPlaneComponentHealthCheck: 1m
  kubeletHealthCheck: 2m
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
apiServer:
  timeoutForControlPlane: 9m
`))
	if err != nil {
		t.Fatal(err)
	}
	to := cfg.Init.Timeouts
	if to.ControlPlaneComponentHealthCheck.Duration != 9*time.Minute || to.KubeletHealthCheck.Duration != 2*time.Minute {
		t.Errorf("timeouts = %+v", to)
	}
}

func TestV1beta3JoinConversion(t *testing.T) {
	j, err := LoadJoin([]byte(`apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration:
  kubeletExtraArgs:
    node-labels: role=worker
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: 10.0.0.10:6443
    unsafeSkipCAVerification: true
  timeout: 30s
controlPlane:
  localAPIEndpoint:
    advertiseAddress: 10.0.0.11
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Join{Join: JoinConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: V1beta4, Kind: KindJoin},
		NodeRegistration: NodeRegistrationOptions{
			KubeletExtraArgs: []Arg{{Name: "node-labels", Value: "role=worker"}},
			ImagePullSerial:  ptr.To(true),
		},
		Discovery: Discovery{BootstrapToken: &BootstrapTokenDiscovery{
			Token:                    "abcdef.0123456789abcdef",
			APIServerEndpoint:        "10.0.0.10:6443",
			UnsafeSkipCAVerification: true,
		}},
		ControlPlane: &JoinControlPlane{LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.11"}},
		// discovery.timeout moved to timeouts.discovery in v1beta4.
		Timeouts: &Timeouts{Discovery: &metav1.Duration{Duration: 30 * time.Second}},
	}}
	if d := cmp.Diff(want, j); d != "" {
		t.Errorf("converted (-want +got):\n%s", d)
	}
}

func TestV1beta3RejectsV1beta4Fields(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"timeouts", "kind: InitConfiguration\ntimeouts:\n  discovery: 1m\n",
			`InitConfiguration: unknown field "timeouts" (line 3)`},
		{"dryRun", "kind: InitConfiguration\ndryRun: true\n",
			`InitConfiguration: unknown field "dryRun" (line 3)`},
		{"proxy", "kind: ClusterConfiguration\nproxy:\n  disabled: true\n",
			`ClusterConfiguration: unknown field "proxy" (line 3)`},
		{"encryptionAlgorithm", "kind: ClusterConfiguration\nencryptionAlgorithm: RSA-2048\n",
			`ClusterConfiguration: unknown field "encryptionAlgorithm" (line 3)`},
		{"list-form extraArgs", "kind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: v\n    value: \"2\"\n",
			`ClusterConfiguration: field "apiServer.extraArgs": cannot use a list as map[string]string (line 5)`},
		{"timeoutForControlPlane in v1beta4", "kind: ClusterConfiguration\napiServer:\n  timeoutForControlPlane: 4m\n",
			`ClusterConfiguration: unknown field "apiServer.timeoutForControlPlane" (line 4)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiVersion := "apiVersion: kubeadm.k8s.io/v1beta3\n"
			if tt.name == "timeoutForControlPlane in v1beta4" {
				apiVersion = "apiVersion: kubeadm.k8s.io/v1beta4\n"
			}
			_, err := Load([]byte(apiVersion + tt.in))
			assertError(t, err, tt.want)
		})
	}
}
