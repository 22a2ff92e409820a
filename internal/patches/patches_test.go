package patches

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

const (
	strategic = types.StrategicMergePatchType
	merge     = types.MergePatchType
	jsonPatch = types.JSONPatchType
)

func TestParseName(t *testing.T) {
	errType := "unknown or missing patch type after '+', must be one of [json merge strategic]"
	tests := []struct {
		name       string
		wantTarget string
		wantType   types.PatchType
		wantReason string
		wantErr    string
	}{
		{name: "etcd+merge.json", wantTarget: Etcd, wantType: merge},
		{name: "etcd0.yaml", wantTarget: Etcd, wantType: strategic},
		{name: "etcd0+merge.yaml", wantTarget: Etcd, wantType: merge},
		{name: "etcd.yaml", wantTarget: Etcd, wantType: strategic},
		{name: "kube-apiserver-extra+json.json", wantTarget: KubeAPIServer, wantType: jsonPatch},
		{name: "kube-controller-manager+strategic.yaml", wantTarget: KubeControllerManager, wantType: strategic},
		{name: "kube-scheduler_1.yaml", wantTarget: KubeScheduler, wantType: strategic},
		{name: "kubeletconfiguration+merge.yaml", wantTarget: KubeletConfiguration, wantType: merge},
		{name: "corednsdeployment.json", wantTarget: CoreDNSDeployment, wantType: strategic},
		// kubeadm only checks that a known type starts right after the '+'.
		{name: "etcd+mergefoo.yaml", wantTarget: Etcd, wantType: merge},
		// The suffix stops at the first '.', and only a '+' right there names a type.
		{name: "etcd.x+merge.yaml", wantTarget: Etcd, wantType: strategic},
		{name: "foo.yaml", wantReason: reasonTarget},
		{name: "ETCD.yaml", wantReason: reasonTarget},
		{name: "kube-proxy+merge.yaml", wantReason: reasonTarget},
		{name: "etcd.foo", wantReason: reasonExtension},
		{name: "etcd", wantReason: reasonExtension},
		{name: "etcd.yml", wantReason: reasonExtension},
		{name: ".yaml", wantReason: reasonExtension},
		{name: "etcd+foo.json", wantErr: errType},
		{name: "etcd+.json", wantErr: errType},
		{name: "etcd+Merge.yaml", wantErr: errType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, typ, reason, err := parseName(tt.name)
			if gotErr := errString(err); gotErr != tt.wantErr {
				t.Fatalf("error %q, want %q", gotErr, tt.wantErr)
			}
			if target != tt.wantTarget || typ != tt.wantType || reason != tt.wantReason {
				t.Errorf("got (%q, %q, %q), want (%q, %q, %q)", target, typ, reason, tt.wantTarget, tt.wantType, tt.wantReason)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// writeFiles creates files (node path relative to /p → content) under the node directory /p of a temporary root.
func writeFiles(t *testing.T, files map[string]string) nodefs.FS {
	t.Helper()
	fsys := nodefs.FS{Root: t.TempDir()}
	if err := fsys.MkdirAll("/p", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := fsys.WriteFile("/p/"+name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fsys
}

func TestLoad(t *testing.T) {
	fsys := writeFiles(t, map[string]string{
		"kube-scheduler+merge.yaml": "metadata:\n  labels:\n    a: \"1\"\n",
		// Several documents, YAML and JSON, with an empty one in between.
		"kube-apiserver.yaml":          "metadata:\n  labels:\n    a: \"1\"\n---\n---\n{\"metadata\":{\"labels\":{\"b\":\"2\"}}}\n",
		"kube-apiserver0+json.json":    `[{"op":"add","path":"/metadata/labels/c","value":"3"}]`,
		"sub/etcd.yaml":                "spec:\n  priority: 1\n",
		"etcd+merge.yaml":              "spec:\n  priority: 2\n",
		"README.md":                    "not a patch",
		"kube-proxy.yaml":              "spec: {}\n",
		"kube-controller-manager.json": "",
		"kubeletconfiguration.yaml":    "\n   \n", // not empty, but without a document
	})
	s, err := Load(fsys, "/p")
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{
		"/p/etcd+merge.yaml", "/p/kube-apiserver.yaml", "/p/kube-apiserver0+json.json",
		"/p/kube-scheduler+merge.yaml", "/p/kubeletconfiguration.yaml", "/p/sub/etcd.yaml",
	}
	if !slices.Equal(s.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", s.Files, wantFiles)
	}
	wantIgnored := []Ignored{
		{File: "/p/README.md", Reason: reasonExtension},
		{File: "/p/kube-controller-manager.json", Reason: reasonEmpty},
		{File: "/p/kube-proxy.yaml", Reason: reasonTarget},
	}
	if !slices.Equal(s.Ignored, wantIgnored) {
		t.Errorf("Ignored = %q, want %q", s.Ignored, wantIgnored)
	}
	type short struct {
		File   string
		Doc    int
		Target string
		Type   types.PatchType
		Data   string
	}
	var got []short
	for _, p := range s.patches {
		got = append(got, short{p.File, p.Doc, p.Target, p.Type, string(p.Data)})
	}
	want := []short{
		{"/p/etcd+merge.yaml", 1, Etcd, merge, `{"spec":{"priority":2}}`},
		{"/p/kube-apiserver.yaml", 1, KubeAPIServer, strategic, `{"metadata":{"labels":{"a":"1"}}}`},
		{"/p/kube-apiserver.yaml", 2, KubeAPIServer, strategic, `{"metadata":{"labels":{"b":"2"}}}`},
		{"/p/kube-apiserver0+json.json", 1, KubeAPIServer, jsonPatch, `[{"op":"add","path":"/metadata/labels/c","value":"3"}]`},
		{"/p/kube-scheduler+merge.yaml", 1, KubeScheduler, merge, `{"metadata":{"labels":{"a":"1"}}}`},
		{"/p/sub/etcd.yaml", 1, Etcd, strategic, `{"spec":{"priority":1}}`},
	}
	if !slices.Equal(got, want) {
		t.Errorf("patches\n got %+v\nwant %+v", got, want)
	}
	wantSummary := []string{
		`[patches] Reading patches from path "/p"`,
		`[patches] Ignoring file "README.md": the file extension must be one of [json yaml]`,
		`[patches] Ignoring empty file: "kube-controller-manager.json"`,
		`[patches] Ignoring file "kube-proxy.yaml": unknown target, must be one of [etcd kube-apiserver kube-controller-manager kube-scheduler kubeletconfiguration corednsdeployment kubeproxydaemonset]`,
		`[patches] Found the following patch files: [etcd+merge.yaml kube-apiserver.yaml kube-apiserver0+json.json kube-scheduler+merge.yaml kubeletconfiguration.yaml etcd.yaml]`,
		`[patches] Ignored the following files: [README.md kube-controller-manager.json kube-proxy.yaml]`,
	}
	if got := s.Summary(); !slices.Equal(got, wantSummary) {
		t.Errorf("Summary\n got %q\nwant %q", got, wantSummary)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, fsys nodefs.FS)
		dir   string
		want  string // %s is the machine path of the root
	}{
		{
			name: "missing directory",
			dir:  "/nope",
			want: "read patches directory /nope: lstat %s/nope: no such file or directory",
		},
		{
			name:  "a file",
			setup: func(t *testing.T, fsys nodefs.FS) { write(t, fsys, "/p", "x") },
			dir:   "/p",
			want:  "read patches directory /p: not a directory",
		},
		{
			name: "a symbolic link",
			setup: func(t *testing.T, fsys nodefs.FS) {
				write(t, fsys, "/real/etcd.yaml", "{}")
				if err := os.Symlink("real", fsys.Path("/p")); err != nil {
					t.Fatal(err)
				}
			},
			dir:  "/p",
			want: "read patches directory /p: it is a symbolic link; set patches.directory to the directory it points to",
		},
		{
			name:  "unknown patch type",
			setup: func(t *testing.T, fsys nodefs.FS) { write(t, fsys, "/p/kube-scheduler+foo.json", "{}") },
			dir:   "/p",
			want:  "patch file /p/kube-scheduler+foo.json: unknown or missing patch type after '+', must be one of [json merge strategic]",
		},
		{
			name:  "not YAML",
			setup: func(t *testing.T, fsys nodefs.FS) { write(t, fsys, "/p/etcd.yaml", "a: 1\n---\nb: [\n") },
			dir:   "/p",
			want:  "patch file /p/etcd.yaml: document 2 is neither YAML nor JSON: yaml: line 1: did not find expected node content",
		},
		{
			name: "a directory named like a patch, through a link",
			setup: func(t *testing.T, fsys nodefs.FS) {
				write(t, fsys, "/p/real/x", "")
				if err := os.Symlink("real", fsys.Path("/p/etcd.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			dir:  "/p",
			want: "read patch file /p/etcd.yaml: read %s/p/etcd.yaml: is a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := nodefs.FS{Root: t.TempDir()}
			if tt.setup != nil {
				tt.setup(t, fsys)
			}
			s, err := Load(fsys, tt.dir)
			want := strings.ReplaceAll(tt.want, "%s", fsys.Root)
			if errString(err) != want {
				t.Errorf("error\n got %v\nwant %s", err, want)
			}
			if s != nil {
				t.Errorf("Load returned a Set with its error")
			}
		})
	}
}

func write(t *testing.T, fsys nodefs.FS, p, content string) {
	t.Helper()
	if err := fsys.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigured(t *testing.T) {
	fsys := writeFiles(t, map[string]string{"etcd.yaml": "{}"})
	for _, p := range []*config.Patches{nil, {}} {
		s, err := LoadConfigured(fsys, p)
		if s != nil || err != nil {
			t.Errorf("LoadConfigured(%v) = %v, %v; want nil, nil", p, s, err)
		}
	}
	s, err := LoadConfigured(fsys, &config.Patches{Directory: "/p"})
	if err != nil || len(s.For(Etcd)) != 1 {
		t.Errorf("LoadConfigured(/p) = %+v, %v", s, err)
	}
}

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
  name: kube-scheduler
spec:
  containers:
  - command:
    - kube-scheduler
    image: registry.k8s.io/kube-scheduler:v1.37.2
    name: kube-scheduler
  - image: sidecar
    name: sidecar
`

func TestApply(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		target string
		doc    string
		schema any
		want   string
	}{
		{
			name:   "strategic merges containers by name",
			files:  map[string]string{"kube-scheduler.yaml": "spec:\n  containers:\n  - name: kube-scheduler\n    resources:\n      requests:\n        cpu: 50m\n"},
			target: KubeScheduler, doc: podYAML, schema: corev1.Pod{},
			want: `apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
  name: kube-scheduler
spec:
  containers:
  - command:
    - kube-scheduler
    image: registry.k8s.io/kube-scheduler:v1.37.2
    name: kube-scheduler
    resources:
      requests:
        cpu: 50m
  - image: sidecar
    name: sidecar
`,
		},
		{
			name:   "merge replaces lists whole",
			files:  map[string]string{"kube-scheduler+merge.yaml": "spec:\n  containers:\n  - name: only\n"},
			target: KubeScheduler, doc: podYAML, schema: corev1.Pod{},
			want: `apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
  name: kube-scheduler
spec:
  containers:
  - name: only
`,
		},
		{
			name:   "json patch, written in YAML",
			files:  map[string]string{"kube-scheduler+json.yaml": "- op: add\n  path: /spec/containers/0/command/-\n  value: --v=2\n- op: remove\n  path: /spec/containers/1\n"},
			target: KubeScheduler, doc: podYAML, schema: corev1.Pod{},
			want: `apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
  name: kube-scheduler
spec:
  containers:
  - command:
    - kube-scheduler
    - --v=2
    image: registry.k8s.io/kube-scheduler:v1.37.2
    name: kube-scheduler
`,
		},
		{
			// kube-scheduler.yaml < kube-scheduler0+merge.yaml < kube-scheduler1+json.json < sub/...: each sees
			// the one before; documents of a file apply in order.
			name: "files in name order, documents in file order",
			files: map[string]string{
				"kube-scheduler1+json.json":      `[{"op":"replace","path":"/metadata/labels/order","value":"json"}]`,
				"kube-scheduler0+merge.yaml":     "metadata:\n  labels:\n    order: merge\n---\nmetadata:\n  labels:\n    second: doc\n",
				"kube-scheduler.yaml":            "metadata:\n  labels:\n    order: strategic\n    first: \"yes\"\n",
				"sub/kube-scheduler+merge.yaml":  "metadata:\n  labels:\n    first: null\n",
				"etcd+merge.yaml":                "metadata:\n  labels:\n    order: etcd\n",
				"kubeletconfiguration+json.json": `[{"op":"remove","path":"/nothing"}]`,
			},
			target: KubeScheduler, doc: "kind: Pod\nmetadata:\n  labels:\n    component: kube-scheduler\n", schema: corev1.Pod{},
			want: "kind: Pod\nmetadata:\n  labels:\n    component: kube-scheduler\n    order: json\n    second: doc\n",
		},
		{
			name:   "the lab's kubelet cgroupRoot",
			files:  map[string]string{"kubeletconfiguration+merge.yaml": "cgroupRoot: /node1\n"},
			target: KubeletConfiguration, doc: "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: cgroupfs\n",
			schema: kubeletv1beta1.KubeletConfiguration{},
			want:   "apiVersion: kubelet.config.k8s.io/v1beta1\ncgroupDriver: cgroupfs\ncgroupRoot: /node1\nkind: KubeletConfiguration\n",
		},
		{
			name:   "strategic on a Deployment, JSON document in",
			files:  map[string]string{"corednsdeployment.yaml": "spec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: coredns\n        image: mirror/coredns:v1.14.6\n"},
			target: CoreDNSDeployment, doc: `{"kind":"Deployment","spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"coredns","image":"registry.k8s.io/coredns/coredns:v1.14.6","args":["-conf"]}]}}}}`,
			schema: appsv1.Deployment{},
			want:   "kind: Deployment\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - args:\n        - -conf\n        image: mirror/coredns:v1.14.6\n        name: coredns\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(writeFiles(t, tt.files), "/p")
			if err != nil {
				t.Fatal(err)
			}
			got, applied, err := s.Apply(tt.target, []byte(tt.doc), tt.schema)
			if err != nil {
				t.Fatal(err)
			}
			if !applied {
				t.Error("applied = false")
			}
			if string(got) != tt.want {
				t.Errorf("\n got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestApplyNothing(t *testing.T) {
	s, err := Load(writeFiles(t, map[string]string{"etcd.yaml": "metadata:\n  name: x\n"}), "/p")
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []*Set{s, nil, NewSet()} {
		got, applied, err := set.Apply(KubeScheduler, []byte(`{"a": 1}`), corev1.Pod{})
		if err != nil || applied || string(got) != `{"a": 1}` {
			t.Errorf("Apply without patches for the target = %q, %v, %v; want the document unchanged", got, applied, err)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		target string
		doc    string
		want   string
	}{
		{
			name:   "json patch on a missing path",
			files:  map[string]string{"kube-scheduler.yaml": "metadata:\n  labels:\n    a: b\n", "kube-scheduler+json.yaml": "- op: remove\n  path: /spec/nodeName\n"},
			target: KubeScheduler, doc: podYAML,
			want: "apply patch file /p/kube-scheduler+json.yaml (document 1, type json) to kube-scheduler: error in remove for path: '/spec/nodeName': Unable to remove nonexistent key: nodeName: missing value; fix or remove the patch",
		},
		{
			name:   "json patch that is not a list",
			files:  map[string]string{"etcd+json.json": `{"op":"add"}`},
			target: Etcd, doc: podYAML,
			want: "apply patch file /p/etcd+json.json (document 1, type json) to etcd: json: cannot unmarshal object into Go value of type jsonpatch.Patch; fix or remove the patch",
		},
		{
			name:   "strategic patch of a container without its name",
			files:  map[string]string{"kube-scheduler.yaml": "metadata: {}\n---\nspec:\n  containers:\n  - image: x\n"},
			target: KubeScheduler, doc: podYAML,
			want: "apply patch file /p/kube-scheduler.yaml (document 2, type strategic) to kube-scheduler: map: map[image:x] does not contain declared merge key: name; fix or remove the patch",
		},
		{
			name:   "json patch whose copies double the document",
			files:  map[string]string{"etcd+json.json": "[" + copies(30) + "]"},
			target: Etcd, doc: podYAML,
			want: "apply patch file /p/etcd+json.json (document 1, type json) to etcd: operation 16 makes the document larger than 8 MiB; fix or remove the patch",
		},
		{
			name:   "unknown target",
			files:  map[string]string{"etcd.yaml": "{}"},
			target: "kube-proxy", doc: podYAML,
			want: "unknown patch target \"kube-proxy\", must be one of [etcd kube-apiserver kube-controller-manager kube-scheduler kubeletconfiguration corednsdeployment kubeproxydaemonset]",
		},
		{
			name:   "document to patch is not YAML",
			files:  map[string]string{"etcd.yaml": "{}"},
			target: Etcd, doc: "a: [\n",
			want: "patch etcd: read the document to patch: yaml: line 1: did not find expected node content",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(writeFiles(t, tt.files), "/p")
			if err != nil {
				t.Fatal(err)
			}
			got, applied, err := s.Apply(tt.target, []byte(tt.doc), corev1.Pod{})
			if errString(err) != tt.want {
				t.Errorf("error\n got %v\nwant %s", err, tt.want)
			}
			if got != nil || applied {
				t.Errorf("Apply returned %q, %v with its error", got, applied)
			}
		})
	}
}

func TestLine(t *testing.T) {
	for _, tt := range []struct {
		p    Patch
		want string
	}{
		{Patch{Target: Etcd, Type: jsonPatch}, `[patches] Applied patch of type "application/json-patch+json" to target "etcd"`},
		{Patch{Target: KubeletConfiguration, Type: merge}, `[patches] Applied patch of type "application/merge-patch+json" to target "kubeletconfiguration"`},
		{Patch{Target: KubeAPIServer, Type: strategic}, `[patches] Applied patch of type "application/strategic-merge-patch+json" to target "kube-apiserver"`},
	} {
		if got := tt.p.Line(); got != tt.want {
			t.Errorf("Line() = %s, want %s", got, tt.want)
		}
	}
}

// TestLoadReadsOnce shows that a Set keeps what it read: changing the directory afterwards changes nothing.
func TestLoadReadsOnce(t *testing.T) {
	fsys := writeFiles(t, map[string]string{"etcd+merge.yaml": "a: 1\n"})
	s, err := Load(fsys, "/p")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(fsys.Root, "p")); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Apply(Etcd, []byte("b: 2\n"), nil)
	if err != nil || string(got) != "a: 1\nb: 2\n" {
		t.Errorf("Apply after the directory is gone = %q, %v", got, err)
	}
}

// copies is a JSON patch's operations that copy /spec into itself n times under new names: each doubles it.
func copies(n int) string {
	ops := make([]string, n)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"op":"copy","from":"/spec","path":"/spec/x%d"}`, i)
	}
	return strings.Join(ops, ",")
}
