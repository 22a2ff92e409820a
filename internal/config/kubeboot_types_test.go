package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	kubebootInit = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\n"
	kubebootJoin = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n" +
		"    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.10:6443\n    unsafeSkipCAVerification: true\n---\n"
	kubebootHeader = "apiVersion: kubeboot.dev/v1alpha1\nkind: KubebootConfiguration\n"
)

func TestLoadKubebootConfiguration(t *testing.T) {
	docs, err := Load([]byte(kubebootInit + kubebootJoin + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n  port: 7446\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &KubebootConfiguration{
		TypeMeta:             metav1.TypeMeta{APIVersion: KubebootGroupVer, Kind: KindKubeboot},
		NodeLocalAPIEndpoint: &NodeLocalAPIEndpoint{Enabled: true, Port: 7446},
	}
	if d := cmp.Diff(want, docs.Kubeboot); d != "" {
		t.Errorf("Documents.Kubeboot (-want +got):\n%s", d)
	}
	if len(docs.Warnings) != 0 {
		t.Errorf("warnings: %v", docs.Warnings)
	}
	init, err := docs.ForInit()
	if err != nil {
		t.Fatal(err)
	}
	join, err := docs.ForJoin()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, init.Kubeboot); d != "" {
		t.Errorf("Init.Kubeboot (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, join.Kubeboot); d != "" {
		t.Errorf("Join.Kubeboot (-want +got):\n%s", d)
	}
	// Defaulting one must not change the other.
	if init.Kubeboot.NodeLocalAPIEndpoint == join.Kubeboot.NodeLocalAPIEndpoint || init.Kubeboot == docs.Kubeboot {
		t.Error("Init and Join share the KubebootConfiguration of Documents")
	}
}

func TestLoadWithoutKubebootConfiguration(t *testing.T) {
	docs, err := Load([]byte(fullV1beta4))
	if err != nil {
		t.Fatal(err)
	}
	init, _ := docs.ForInit()
	join, _ := docs.ForJoin()
	if docs.Kubeboot != nil || init.Kubeboot != nil || join.Kubeboot != nil {
		t.Errorf("a file without a KubebootConfiguration got one: %+v %+v %+v", docs.Kubeboot, init.Kubeboot, join.Kubeboot)
	}
	if _, ok := init.Kubeboot.NodeLocalAPIEndpointPort(); ok {
		t.Error("the node-local API endpoint is enabled without a KubebootConfiguration")
	}
}

func TestResolveKubebootDefaults(t *testing.T) {
	for _, tt := range []struct {
		name     string
		doc      string
		want     *NodeLocalAPIEndpoint
		wantPort int32
		enabled  bool
	}{
		{"enabled without a port", "nodeLocalAPIEndpoint:\n  enabled: true\n", &NodeLocalAPIEndpoint{Enabled: true, Port: 7445}, 7445, true},
		{"enabled with a port", "nodeLocalAPIEndpoint:\n  enabled: true\n  port: 16443\n", &NodeLocalAPIEndpoint{Enabled: true, Port: 16443}, 16443, true},
		{"disabled keeps no port", "nodeLocalAPIEndpoint:\n  enabled: false\n", &NodeLocalAPIEndpoint{}, 0, false},
		{"no setting", "", nil, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			init, _, err := ResolveInit([]byte(kubebootInit+kubebootHeader+tt.doc), InitFlags{}, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			join, _, err := ResolveJoin([]byte(kubebootJoin+kubebootHeader+tt.doc), JoinFlags{}, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []*KubebootConfiguration{init.Kubeboot, join.Kubeboot} {
				if d := cmp.Diff(tt.want, k.NodeLocalAPIEndpoint); d != "" {
					t.Errorf("nodeLocalAPIEndpoint (-want +got):\n%s", d)
				}
				if k.TypeMeta != (metav1.TypeMeta{APIVersion: KubebootGroupVer, Kind: KindKubeboot}) {
					t.Errorf("TypeMeta %+v", k.TypeMeta)
				}
				if port, ok := k.NodeLocalAPIEndpointPort(); port != tt.wantPort || ok != tt.enabled {
					t.Errorf("NodeLocalAPIEndpointPort() = %d, %v; want %d, %v", port, ok, tt.wantPort, tt.enabled)
				}
			}
		})
	}
}

func TestResolveKubebootErrors(t *testing.T) {
	const cpJoin = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n" +
		"    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.10:6443\n    unsafeSkipCAVerification: true\n" +
		"controlPlane:\n  localAPIEndpoint:\n    bindPort: 7445\n---\n"
	for _, tt := range []struct {
		name string
		file string
		join bool
		want string
	}{
		{"unknown field", kubebootInit + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n  prot: 7445\n", false,
			`KubebootConfiguration: unknown field "nodeLocalAPIEndpoint.prot" (line 8)`},
		{"unknown top-level field", kubebootInit + kubebootHeader + "nodeLocalEndpoint: {}\n", false,
			`KubebootConfiguration: unknown field "nodeLocalEndpoint" (line 6)`},
		{"port of the wrong type", kubebootInit + kubebootHeader + "nodeLocalAPIEndpoint:\n  port: high\n", false,
			`KubebootConfiguration: field "nodeLocalAPIEndpoint.port": cannot use "high" as int32 (line 7)`},
		{"port too large", kubebootInit + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n  port: 70000\n", false,
			"KubebootConfiguration: nodeLocalAPIEndpoint.port: Invalid value: 70000: must be between 1 and 65535"},
		{"negative port", kubebootInit + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n  port: -1\n", false,
			"KubebootConfiguration: nodeLocalAPIEndpoint.port: Invalid value: -1: must be between 1 and 65535"},
		{"bad port while disabled", kubebootInit + kubebootHeader + "nodeLocalAPIEndpoint:\n  port: 70000\n", false,
			"KubebootConfiguration: nodeLocalAPIEndpoint.port: Invalid value: 70000: must be between 1 and 65535"},
		{"the API server's port on init", kubebootInit + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n  port: 6443\n", false,
			"KubebootConfiguration: nodeLocalAPIEndpoint.port: Invalid value: 6443: the API server of this node listens on this port " +
				"(localAPIEndpoint.bindPort); choose another, e.g. the default 7445"},
		{"the API server's port on a control-plane join", cpJoin + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n", true,
			"KubebootConfiguration: nodeLocalAPIEndpoint.port: Invalid value: 7445: the API server of this node listens on this port " +
				"(localAPIEndpoint.bindPort); choose another, e.g. the default 7445"},
		{"twice", kubebootInit + kubebootHeader + "---\n" + kubebootHeader, false,
			"document 3 (line 7): KubebootConfiguration appears a second time (first in document 2); each kind may appear once"},
		{"unknown version", kubebootInit + "apiVersion: kubeboot.dev/v1\nkind: KubebootConfiguration\n", false,
			`document 2 (line 4): unsupported apiVersion "kubeboot.dev/v1" with kind "KubebootConfiguration" (` + supportedDocuments + ")"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.join {
				_, _, err = ResolveJoin([]byte(tt.file), JoinFlags{}, testEnv())
			} else {
				_, _, err = ResolveInit([]byte(tt.file), InitFlags{}, testEnv())
			}
			assertError(t, err, tt.want)
		})
	}
}

func TestResolveKubebootWorkerMayUseAnyPort(t *testing.T) {
	// A worker runs no API server: 6443 is free on it.
	cfg, _, err := ResolveJoin([]byte(kubebootJoin+kubebootHeader+"nodeLocalAPIEndpoint:\n  enabled: true\n  port: 6443\n"), JoinFlags{}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if port, ok := cfg.Kubeboot.NodeLocalAPIEndpointPort(); port != 6443 || !ok {
		t.Errorf("NodeLocalAPIEndpointPort() = %d, %v", port, ok)
	}
}

func TestMigrateKeepsKubebootConfiguration(t *testing.T) {
	out, err := Migrate([]byte(kubebootJoin+kubebootHeader+"nodeLocalAPIEndpoint:\n  enabled: true\n"), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := "---\n" + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n  port: 7445\n"
	if !strings.HasSuffix(string(out), want) {
		t.Errorf("migrated file does not end with the defaulted KubebootConfiguration:\n%s", out)
	}
	docs, err := Load(out)
	if err != nil {
		t.Fatalf("Load cannot read what Migrate wrote: %v\n%s", err, out)
	}
	if port, ok := docs.Kubeboot.NodeLocalAPIEndpointPort(); port != 7445 || !ok {
		t.Errorf("NodeLocalAPIEndpointPort() = %d, %v", port, ok)
	}
}

func TestMarshalInitWritesKubebootConfiguration(t *testing.T) {
	cfg, err := LoadInit([]byte(kubebootInit + kubebootHeader + "nodeLocalAPIEndpoint:\n  enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalInit(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadInit(out)
	if err != nil {
		t.Fatalf("LoadInit cannot read what MarshalInit wrote: %v\n%s", err, out)
	}
	if d := cmp.Diff(cfg.Kubeboot, again.Kubeboot); d != "" {
		t.Errorf("KubebootConfiguration changed when written and read again (-first +again):\n%s", d)
	}
}
