package upgrade

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

func TestPlan(t *testing.T) {
	mixed := threeNodes()
	mixed.kubelets = map[string]string{"w-1": "v1.35.4"}
	patch := threeNodes()
	patch.version = "v1.37.0"
	patch.etcdTag, patch.dnsTag = "3.7.0-0", "v1.14.6"
	latest := threeNodes()
	latest.version = "v1.37.2"
	latest.etcdTag, latest.dnsTag = "3.7.0-0", "v1.14.6"
	tests := []struct {
		name        string
		cluster     fakeCluster
		want        string
		etcdUpgrade bool
	}{
		{name: "ha-1.36-to-1.37", cluster: threeNodes(), etcdUpgrade: true},
		{name: "ha-1.36-explicit-version", cluster: threeNodes(), want: "v1.37.2", etcdUpgrade: true},
		{name: "mixed-kubelets-no-etcd", cluster: mixed, etcdUpgrade: false},
		{name: "patch-within-1.37", cluster: patch, etcdUpgrade: true},
		{name: "up-to-date", cluster: latest, etcdUpgrade: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ReadState(t.Context(), tt.cluster.client(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Plan(s, tt.want, tt.etcdUpgrade)
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := p.PrintText(&text); err != nil {
				t.Fatal(err)
			}
			golden.File(t, filepath.Join("testdata", "plan", tt.name+".txt"), text.Bytes())
			j, err := json.MarshalIndent(p, "", "    ")
			if err != nil {
				t.Fatal(err)
			}
			golden.File(t, filepath.Join("testdata", "plan", tt.name+".json"), append(j, '\n'))
			y, err := yaml.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			golden.File(t, filepath.Join("testdata", "plan", tt.name+".yaml"), y)
		})
	}
}

func TestPlanUnknownVersion(t *testing.T) {
	s, err := ReadState(t.Context(), threeNodes().client(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Plan(s, "v1.39.0", true)
	want := "this version of kubeboot supports control planes v1.36.x to v1.37.x (default v1.37.2), not v1.39.0"
	if err == nil || err.Error() != want {
		t.Errorf("Plan error %v\nwant %s", err, want)
	}
}

func TestReadStateWithoutKubeadmConfig(t *testing.T) {
	c := threeNodes()
	c.noConfig = true
	_, err := ReadState(t.Context(), c.client(t), nil)
	want := `[upgrade] FATAL: the ConfigMap "kubeadm-config" in the "kube-system" namespace was not found`
	if err == nil || err.Error() != want {
		t.Fatalf("ReadState error %v\nwant %s", err, want)
	}
	if h := hintOf(err); !strings.Contains(h, "Use 'kubeboot init phase upload-config kubeadm --config your-config-file' to re-upload it") {
		t.Errorf("hint %q", h)
	}
}
func hintOf(err error) string { return hint.Of(err) }
