package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	yamlv3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

// addConfigSeeds seeds a fuzz target with the configuration files of the tests: the golden files of testdata and
// the documents the table tests load.
func addConfigSeeds(f *testing.F) {
	f.Helper()
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{fullV1beta4, v1beta3Init, "", "---\n---\n", "a: b\n", "- a\n", "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: 42\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: [abcdef.0123456789abcdef]\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: &a {podSubnet: *a}\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  taints: []\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: &n {podSubnet: 10.244.0.0/16}\napiServer: {<<: *n}\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    <<: {token: 12345678901234567890}\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubeboot.dev/v1alpha1\nkind: KubebootConfiguration\nnodeLocalAPIEndpoint:\n  enabled: true\n  port: 7445\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzLoad feeds configuration files to Load. A file that loads must come back the same when its documents are
// written with the writers of `config print` and `config migrate` and loaded again; a file that does not must
// give an error that repeats none of its tokens and keys.
func FuzzLoad(f *testing.F) {
	addConfigSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Load(data)
		if err != nil {
			if docs != nil {
				t.Fatalf("Load returned documents and the error %v", err)
			}
			secrets, others := secretValues(data)
			for _, s := range secrets {
				if keyleak.Echoes(err.Error(), s, others...) {
					t.Fatalf("the error repeats the secret %q:\n%v", s, err)
				}
			}
			return
		}
		if docs == nil {
			t.Fatal("Load returned neither documents nor an error")
		}
		ignore := cmpopts.IgnoreTypes(metav1.TypeMeta{})
		if docs.Init != nil || docs.Cluster != nil {
			cfg, err := docs.ForInit()
			if err != nil || cfg == nil {
				t.Fatalf("ForInit = %v, %v with an InitConfiguration or a ClusterConfiguration", cfg, err)
			}
			out, err := MarshalInit(cfg)
			if err != nil {
				t.Fatalf("MarshalInit: %v", err)
			}
			again, err := LoadInit(out)
			if err != nil {
				t.Fatalf("LoadInit cannot read what MarshalInit wrote: %v\n%s", err, out)
			}
			if d := cmp.Diff(cfg, again, ignore); d != "" {
				t.Fatalf("loaded, written and loaded again, the init configuration changed (-first +again):\n%s\nwritten:\n%s", d, out)
			}
		}
		if docs.Join != nil {
			out, err := MarshalJoinConfiguration(docs.Join)
			if err != nil {
				t.Fatalf("MarshalJoinConfiguration: %v", err)
			}
			again, err := LoadJoin(out)
			if err != nil {
				t.Fatalf("LoadJoin cannot read what MarshalJoinConfiguration wrote: %v\n%s", err, out)
			}
			if d := cmp.Diff(docs.Join, &again.Join, ignore); d != "" {
				t.Fatalf("loaded, written and loaded again, the JoinConfiguration changed (-first +again):\n%s\nwritten:\n%s", d, out)
			}
		}
		if docs.Cluster != nil {
			out, err := MarshalClusterConfiguration(docs.Cluster)
			if err != nil {
				t.Fatalf("MarshalClusterConfiguration: %v", err)
			}
			again, err := LoadClusterConfiguration(out)
			if err != nil {
				t.Fatalf("LoadClusterConfiguration cannot read what MarshalClusterConfiguration wrote: %v\n%s", err, out)
			}
			if d := cmp.Diff(docs.Cluster, again, ignore); d != "" {
				t.Fatalf("the ClusterConfiguration changed (-first +again):\n%s", d)
			}
		}
		for _, doc := range []struct {
			present bool
			write   func() ([]byte, error)
			first   any
			read    func(*Documents) any
		}{
			{docs.Reset != nil, func() ([]byte, error) { return marshalDocuments(withKind(docs.Reset)) }, docs.Reset, func(d *Documents) any { return d.Reset }},
			{docs.Upgrade != nil, func() ([]byte, error) { return marshalDocuments(withUpgradeKind(docs.Upgrade)) }, docs.Upgrade, func(d *Documents) any { return d.Upgrade }},
			{docs.Kubelet != nil, func() ([]byte, error) { return MarshalKubeletConfiguration(docs.Kubelet) }, docs.Kubelet, func(d *Documents) any { return d.Kubelet }},
			{docs.Proxy != nil, func() ([]byte, error) { return MarshalKubeProxyConfiguration(docs.Proxy) }, docs.Proxy, func(d *Documents) any { return d.Proxy }},
			{docs.Kubeboot != nil, func() ([]byte, error) { return MarshalKubebootConfiguration(docs.Kubeboot) }, docs.Kubeboot, func(d *Documents) any { return d.Kubeboot }},
		} {
			if !doc.present {
				continue
			}
			out, err := doc.write()
			if err != nil {
				t.Fatalf("writing %T: %v", doc.first, err)
			}
			again, err := Load(out)
			if err != nil {
				t.Fatalf("Load cannot read what was written for %T: %v\n%s", doc.first, err, out)
			}
			if d := cmp.Diff(doc.first, doc.read(again), ignore); d != "" {
				t.Fatalf("%T changed when written and loaded again (-first +again):\n%s\nwritten:\n%s", doc.first, d, out)
			}
		}
	})
}

func withKind(r *ResetConfiguration) *ResetConfiguration {
	c := *r
	c.TypeMeta = typeMeta(KindReset)
	return &c
}

func withUpgradeKind(u *UpgradeConfiguration) *UpgradeConfiguration {
	c := *u
	c.TypeMeta = typeMeta(KindUpgrade)
	return &c
}

// secretValues returns the scalar values of the secret fields (tokens, the certificate key) in the documents of
// data that parse as YAML, and every other scalar: an error may quote those, and a secret equal to one of them.
func secretValues(data []byte) (secrets, others []string) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var walk func(n *yamlv3.Node, secret bool)
	walk = func(n *yamlv3.Node, secret bool) {
		if n == nil {
			return
		}
		switch n.Kind {
		case yamlv3.ScalarNode:
			if secret {
				secrets = append(secrets, n.Value)
			} else {
				others = append(others, n.Value)
			}
		case yamlv3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i], false)
				walk(n.Content[i+1], secret || secretFields[n.Content[i].Value])
			}
		case yamlv3.DocumentNode, yamlv3.SequenceNode:
			for _, c := range n.Content {
				walk(c, secret)
			}
		}
	}
	for {
		var root yamlv3.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) || err != nil {
			return secrets, others
		}
		walk(&root, false)
	}
}

// FuzzParseFeatureGates feeds --feature-gates values to ParseFeatureGates: what it accepts must come back the
// same from its own rendering.
func FuzzParseFeatureGates(f *testing.F) {
	for _, s := range []string{"", "A=true", "A=true,B=false", " A = true ", "A", "A=maybe", "=true", "A=true,,B=false", "A=TRUE,A=false"} {
		f.Add(s)
	}
	for _, n := range FeatureGateNames() {
		f.Add(n + "=true," + n + "=False")
	}
	f.Fuzz(func(t *testing.T, s string) {
		gates, err := ParseFeatureGates(s)
		if err != nil {
			if gates != nil {
				t.Fatalf("ParseFeatureGates(%q) = %v with the error %v", s, gates, err)
			}
			return
		}
		var parts []string
		for k, v := range gates {
			if k == "" {
				t.Fatalf("ParseFeatureGates(%q) accepted a gate without a name: %v", s, gates)
			}
			parts = append(parts, k+"="+map[bool]string{true: "true", false: "false"}[v])
		}
		again, err := ParseFeatureGates(joinComma(parts))
		if err != nil || !cmp.Equal(gates, again, cmpopts.EquateEmpty()) {
			t.Fatalf("ParseFeatureGates(%q) = %v; rendered and parsed again: %v, %v", s, gates, again, err)
		}
	})
}

func joinComma(parts []string) string {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p)
	}
	return b.String()
}
