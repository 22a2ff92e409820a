package patches

import (
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

var nameSeeds = []string{
	"etcd.yaml", "kube-apiserver+json.json", "kube-apiserver0+merge.yaml", "kube-scheduler+strategic.json",
	"kubeletconfiguration+merge.yaml", "corednsdeployment.yaml", "kubeproxydaemonset+json.json", "etcd.x+merge.yaml",
	"etcd+bogus.yaml", "etcd+.yaml", "kube-proxy.yaml", "README.md", ".yaml", "etcd.yml", "etcd\n.yaml", "etcd+json\n.yaml",
}

// FuzzPatchName checks the file-name rule (target[suffix][+patchtype].extension): a name is ignored with a reason,
// refused with an error, or a patch of a known target and type; a name built from a target and a type reads back.
func FuzzPatchName(f *testing.F) {
	for _, n := range nameSeeds {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		target, typ, reason, err := parseName(name)
		switch {
		case err != nil:
			if target != "" || reason != "" {
				t.Fatalf("parseName(%q) = %q, %q, reason %q and the error %v", name, target, typ, reason, err)
			}
			if !strings.Contains(name, "+") {
				t.Fatalf("parseName(%q): error %v without a '+'", name, err)
			}
		case reason != "":
			if target != "" || typ != "" {
				t.Fatalf("parseName(%q) = %q, %q and the reason %q", name, target, typ, reason)
			}
		default:
			if !slices.Contains(Targets(), target) || !strings.HasPrefix(name, target) {
				t.Fatalf("parseName(%q): target %q", name, target)
			}
			if typ != types.JSONPatchType && typ != types.MergePatchType && typ != types.StrategicMergePatchType {
				t.Fatalf("parseName(%q): patch type %q", name, typ)
			}
			if !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".json") {
				t.Fatalf("parseName(%q) took a name without a .yaml or .json extension", name)
			}
			for _, ext := range []string{".yaml", ".json"} {
				again := target + "+" + typeName(typ) + ext
				if t2, typ2, r2, err := parseName(again); t2 != target || typ2 != typ || r2 != "" || err != nil {
					t.Fatalf("parseName(%q) = %q, %q, %q, %v; want %q, %q", again, t2, typ2, r2, err, target, typ)
				}
			}
		}
	})
}

// docs are what each target's patches apply to, with the schema strategic merge patches use.
var docs = map[string]struct {
	doc    string
	schema any
}{
	Etcd:                  {podYAML, corev1.Pod{}},
	KubeAPIServer:         {podYAML, corev1.Pod{}},
	KubeControllerManager: {podYAML, corev1.Pod{}},
	KubeScheduler:         {podYAML, corev1.Pod{}},
	KubeletConfiguration:  {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n", kubeletv1beta1.KubeletConfiguration{}},
	CoreDNSDeployment:     {"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: coredns\nspec:\n  replicas: 2\n", appsv1.Deployment{}},
	KubeProxyDaemonSet:    {"apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kube-proxy\n", appsv1.DaemonSet{}},
}

// FuzzPatchFile writes one file into a patches directory, loads the directory and applies what it found. A file
// is ignored, refused with an error naming it, or read as patches of its target; applying them gives YAML or an
// error naming the file, never a half result.
func FuzzPatchFile(f *testing.F) {
	for _, n := range nameSeeds {
		f.Add(n, []byte("metadata:\n  labels:\n    a: \"1\"\n"))
	}
	f.Add("kube-apiserver+json.json", []byte(`[{"op":"add","path":"/metadata/labels/c","value":"3"}]`))
	f.Add("kube-apiserver+json.json", []byte(`[{"op":"copy","from":"/spec","path":"/metadata/x"}]`))
	f.Add("kube-apiserver+json.json", []byte(`[{"op":"remove","path":"/spec/containers/5"}]`))
	f.Add("kube-scheduler.yaml", []byte("spec:\n  containers:\n  - name: kube-scheduler\n    $patch: delete\n"))
	f.Add("kube-scheduler.yaml", []byte("metadata: {}\n---\n{\"spec\": 3}\n---\n"))
	f.Add("kubeletconfiguration+merge.yaml", []byte("cgroupDriver: null\n"))
	f.Add("corednsdeployment.json", []byte("{\"spec\":{\"replicas\":\"two\"}}"))
	f.Add("etcd.yaml", []byte(": : :\n"))
	// Each copy doubles the document: 30 of them in 1.5 KiB used to exhaust memory (MaxPatchedSize).
	f.Add("etcd+json.json", []byte("["+copies(30)+"]"))
	f.Fuzz(func(t *testing.T, name string, content []byte) {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 200 {
			return // not a file name
		}
		fsys := nodefs.FS{Root: t.TempDir()}
		if err := fsys.MkdirAll("/p", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fsys.WriteFile(path.Join("/p", name), content, 0o644); err != nil {
			t.Skip(err) // a name the file system refuses
		}
		s, err := Load(fsys, "/p")
		if err != nil {
			if s != nil {
				t.Fatalf("Load returned a set and the error %v", err)
			}
			if !strings.Contains(err.Error(), path.Join("/p", name)) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if len(s.Files)+len(s.Ignored) != 1 {
			t.Fatalf("one file read as %d patch files and %d ignored", len(s.Files), len(s.Ignored))
		}
		for _, target := range Targets() {
			d := docs[target]
			out, applied, err := s.Apply(target, []byte(d.doc), d.schema)
			if err != nil {
				if out != nil || applied || !strings.Contains(err.Error(), path.Join("/p", name)) {
					t.Fatalf("Apply(%s) = %q, %v and the error %v", target, out, applied, err)
				}
				continue
			}
			if applied != (len(s.For(target)) > 0) {
				t.Fatalf("Apply(%s) applied %v with %d patches", target, applied, len(s.For(target)))
			}
			if _, err := yaml.YAMLToJSON(out); err != nil {
				t.Fatalf("Apply(%s) wrote what does not read back: %v\n%s", target, err, out)
			}
		}
	})
}
