package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const fullV1beta4 = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 2h
localAPIEndpoint:
  advertiseAddress: 10.0.0.10
  bindPort: 6444
nodeRegistration:
  name: cp-1
  taints: []
  kubeletExtraArgs:
  - name: v
    value: "2"
  - name: v
    value: "4"
skipPhases: [addon/kube-proxy]
timeouts:
  discovery: 1m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  extraArgs:
  - name: audit-log-maxage
    value: "3"
  extraEnvs:
  - name: HTTP_PROXY
    value: http://proxy
proxy:
  disabled: true
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: 10.0.0.10:6443
    caCertHashes: ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ResetConfiguration
force: true
unmountFlags: [MNT_DETACH]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: UpgradeConfiguration
apply:
  forceUpgrade: true
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
conntrack:
  maxPerCore: 0
`

func TestLoadAllKinds(t *testing.T) {
	docs, err := Load([]byte(fullV1beta4))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs.Warnings) != 0 {
		t.Errorf("warnings: %v", docs.Warnings)
	}
	wantInit := &InitConfiguration{
		TypeMeta:         metav1.TypeMeta{APIVersion: V1beta4, Kind: KindInit},
		BootstrapTokens:  []BootstrapToken{{Token: "abcdef.0123456789abcdef", TTL: &metav1.Duration{Duration: 2 * time.Hour}}},
		LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: "10.0.0.10", BindPort: 6444},
		NodeRegistration: NodeRegistrationOptions{
			Name:             "cp-1",
			Taints:           []corev1.Taint{},
			KubeletExtraArgs: []Arg{{Name: "v", Value: "2"}, {Name: "v", Value: "4"}},
		},
		SkipPhases: []string{"addon/kube-proxy"},
		Timeouts:   &Timeouts{Discovery: &metav1.Duration{Duration: time.Minute}},
	}
	if d := cmp.Diff(wantInit, docs.Init); d != "" {
		t.Errorf("InitConfiguration (-want +got):\n%s", d)
	}
	c := docs.Cluster
	if c.Networking.PodSubnet != "10.244.0.0/16" || !c.Proxy.Disabled ||
		c.APIServer.ExtraArgs[0] != (Arg{Name: "audit-log-maxage", Value: "3"}) ||
		c.APIServer.ExtraEnvs[0].Name != "HTTP_PROXY" {
		t.Errorf("ClusterConfiguration decoded wrong: %+v", c)
	}
	if docs.Join.Discovery.BootstrapToken.APIServerEndpoint != "10.0.0.10:6443" {
		t.Errorf("JoinConfiguration decoded wrong: %+v", docs.Join)
	}
	if !docs.Reset.Force || docs.Reset.UnmountFlags[0] != "MNT_DETACH" {
		t.Errorf("ResetConfiguration decoded wrong: %+v", docs.Reset)
	}
	if !*docs.Upgrade.Apply.ForceUpgrade {
		t.Errorf("UpgradeConfiguration decoded wrong: %+v", docs.Upgrade)
	}
	if docs.Kubelet.CgroupDriver != "cgroupfs" || *docs.Kubelet.FailSwapOn {
		t.Errorf("KubeletConfiguration decoded wrong: %+v", docs.Kubelet)
	}
	if *docs.Proxy.Conntrack.MaxPerCore != 0 {
		t.Errorf("KubeProxyConfiguration decoded wrong: %+v", docs.Proxy)
	}

	cfg, err := docs.ForInit()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Init.LocalAPIEndpoint.BindPort != 6444 || cfg.Cluster.Networking.PodSubnet != "10.244.0.0/16" ||
		cfg.Kubelet != docs.Kubelet || cfg.Proxy != docs.Proxy {
		t.Errorf("ForInit assembled %+v", cfg)
	}
	j, err := docs.ForJoin()
	if err != nil || j.Join.Discovery.BootstrapToken == nil {
		t.Errorf("ForJoin = %+v, %v", j, err)
	}
	r, err := docs.ForReset()
	if err != nil || !r.Force {
		t.Errorf("ForReset = %+v, %v", r, err)
	}
}

func TestLoadOnlyClusterConfiguration(t *testing.T) {
	cfg, err := LoadInit([]byte("---\n# comment only\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: lab\n---\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.ClusterName != "lab" || cfg.Init.TypeMeta.Kind != "" || cfg.Kubelet != nil {
		t.Errorf("got %+v", cfg)
	}
}

func TestLoadMissingKind(t *testing.T) {
	join := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery: {}\n"
	init := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
	tests := []struct {
		name string
		load func() error
		want string
	}{
		{"init from a join file", func() error { _, err := LoadInit([]byte(join)); return err },
			"no InitConfiguration or ClusterConfiguration found in the configuration file"},
		{"join from an init file", func() error { _, err := LoadJoin([]byte(init)); return err },
			"no JoinConfiguration found in the configuration file"},
		{"reset from an init file", func() error { _, err := LoadReset([]byte(init)); return err },
			"no ResetConfiguration found in the configuration file"},
		{"empty file", func() error { _, err := LoadInit(nil); return err },
			"no InitConfiguration or ClusterConfiguration found in the configuration file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertError(t, tt.load(), tt.want)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	const cluster = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
	const init = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "misspelled nested field",
			in:   cluster + "networking:\n  podSubnett: 10.244.0.0/16\n",
			want: `ClusterConfiguration: unknown field "networking.podSubnett" (line 4)`,
		},
		{
			name: "unknown top-level field",
			in:   cluster + "kubernetesVersoin: v1.37.2\n",
			want: `ClusterConfiguration: unknown field "kubernetesVersoin" (line 3)`,
		},
		{
			name: "unknown field inside a list element",
			in:   cluster + "apiServer:\n  extraArgs:\n  - name: a\n    value: b\n  - name: c\n    valeu: d\n",
			want: `ClusterConfiguration: unknown field "apiServer.extraArgs[1].valeu" (line 8)`,
		},
		{
			name: "several unknown fields are all reported",
			in:   init + "foo: 1\nnodeRegistration:\n  nmae: x\n",
			want: "InitConfiguration: unknown field \"foo\" (line 3)\nInitConfiguration: unknown field \"nodeRegistration.nmae\" (line 5)",
		},
		{
			name: "duplicate field",
			in:   cluster + "networking:\n  podSubnet: 10.244.0.0/16\n  podSubnet: 10.245.0.0/16\n",
			want: `ClusterConfiguration: duplicate field "networking.podSubnet" (line 5)`,
		},
		{
			name: "duplicate field in a list element",
			in:   init + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 1h\n  ttl: 2h\n",
			want: `InitConfiguration: duplicate field "bootstrapTokens[0].ttl" (line 6)`,
		},
		{
			name: "wrong type with its value",
			in:   init + "localAPIEndpoint:\n  bindPort: sixfour\n",
			want: `InitConfiguration: field "localAPIEndpoint.bindPort": cannot use "sixfour" as int32 (line 4)`,
		},
		{
			name: "wrong type inside a list",
			in:   init + "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: signing\n",
			want: `InitConfiguration: field "bootstrapTokens.usages": cannot use "signing" as []string (line 5)`,
		},
		{
			name: "secret of the wrong type is not repeated",
			in:   init + "certificateKey: 1234\n",
			want: `InitConfiguration: field "certificateKey": cannot use this value as string (line 3)`,
		},
		{
			name: "list where a mapping belongs",
			in:   cluster + "networking:\n- a\n",
			want: `ClusterConfiguration: field "networking": cannot use a list as config.Networking (line 4)`,
		},
		{
			name: "bad duration",
			in:   init + "timeouts:\n  discovery: soon\n",
			want: `InitConfiguration: time: invalid duration "soon"`,
		},
		{
			name: "unknown field in KubeletConfiguration",
			in:   "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriverr: cgroupfs\n",
			want: `KubeletConfiguration: unknown field "cgroupDriverr" (line 3)`,
		},
		{
			name: "unknown field in KubeProxyConfiguration",
			in:   "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nconntrack:\n  maxPerCpu: 0\n",
			want: `KubeProxyConfiguration: unknown field "conntrack.maxPerCpu" (line 4)`,
		},
		{
			name: "unknown kind",
			in:   "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfig\n",
			want: `document 1 (line 1): unsupported apiVersion "kubeadm.k8s.io/v1beta4" with kind "InitConfig" (` + supportedDocuments + `)`,
		},
		{
			name: "unknown apiVersion",
			in:   "apiVersion: kubeadm.k8s.io/v2\nkind: InitConfiguration\n",
			want: `document 1 (line 1): unsupported apiVersion "kubeadm.k8s.io/v2" with kind "InitConfiguration" (` + supportedDocuments + `)`,
		},
		{
			name: "ResetConfiguration does not exist in v1beta3",
			in:   "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ResetConfiguration\n",
			want: `document 1 (line 1): unsupported apiVersion "kubeadm.k8s.io/v1beta3" with kind "ResetConfiguration" (` + supportedDocuments + `)`,
		},
		{
			name: "old kubeadm API",
			in:   "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n",
			want: "document 1 (line 1): kubeadm.k8s.io/v1beta2 ClusterConfiguration uses an API version kubeboot no longer reads; " +
				"convert it with kubeadm v1.22 (`kubeadm config migrate`) to kubeadm.k8s.io/v1beta4",
		},
		{
			name: "missing kind",
			in:   "apiVersion: kubeadm.k8s.io/v1beta4\nclusterName: x\n",
			want: "document 1 (line 1): apiVersion and kind are required (" + supportedDocuments + ")",
		},
		{
			name: "kind twice",
			in:   cluster + "---\n" + cluster,
			want: "document 2 (line 4): ClusterConfiguration appears a second time (first in document 1); each kind may appear once",
		},
		{
			name: "not a mapping",
			in:   "- a\n- b\n",
			want: "document 1 (line 1): expected a mapping with apiVersion and kind",
		},
		{
			name: "invalid YAML",
			in:   cluster + "---\nnetworking: [\n",
			want: "document 2: invalid YAML: yaml: line 4: did not find expected node content",
		},
		{
			// The value comes from a YAML merge key, so the tree has no key of that name: this used to panic (issue 19).
			name: "wrong type merged in with <<",
			in:   cluster + "<<: {kubernetesVersion: [1]}\n",
			want: `ClusterConfiguration: field "kubernetesVersion": cannot use array as string`,
		},
		{
			name: "errors of several documents are joined",
			in:   cluster + "bogus: 1\n---\n" + init + "bogus: 2\n",
			want: "ClusterConfiguration: unknown field \"bogus\" (line 3)\nInitConfiguration: unknown field \"bogus\" (line 7)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Load([]byte(tt.in))
			if docs != nil {
				t.Errorf("got documents %+v along with the error", docs)
			}
			assertError(t, err, tt.want)
		})
	}
}

func TestLoadKeepsNilAndEmptyTaintsApart(t *testing.T) {
	for _, tt := range []struct {
		yaml    string
		wantNil bool
	}{
		{"nodeRegistration: {}\n", true},
		{"nodeRegistration:\n  taints: null\n", true},
		{"nodeRegistration:\n  taints: []\n", false},
	} {
		cfg, err := LoadInit([]byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n" + tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Init.NodeRegistration.Taints == nil; got != tt.wantNil {
			t.Errorf("%q: taints nil = %v, want %v", tt.yaml, got, tt.wantNil)
		}
	}
}

func TestLoadV1beta4ImagePullSerial(t *testing.T) {
	cfg, err := LoadInit([]byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  imagePullSerial: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ptr.To(false), cfg.Init.NodeRegistration.ImagePullSerial); d != "" {
		t.Error(d)
	}
}

// assertError fails unless err's message is exactly want.
func assertError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want:\n%s", want)
	}
	if got := err.Error(); got != want {
		t.Fatalf("error mismatch\n got: %s\nwant: %s\n%s", got, want, cmp.Diff(strings.Split(want, "\n"), strings.Split(got, "\n")))
	}
}
