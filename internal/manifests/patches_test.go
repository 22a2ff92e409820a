package manifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

const patchesDir = "/etc/kubernetes/patches"

// patchedNode returns a node whose patches directory holds testdata/kubeadm/patches/patches, and a configuration
// pointing at it.
func patchedNode(t *testing.T) (nodefs.FS, *config.Init) {
	t.Helper()
	fs := nodefs.FS{Root: t.TempDir()}
	if err := os.CopyFS(fs.Path(patchesDir), os.DirFS(filepath.Join(kubeadmRefs(release.Default()), "patches", "patches"))); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.Init.Patches = &config.Patches{Directory: patchesDir}
	return fs, cfg
}

// TestPatchesMatchKubeadm writes the four manifests with testdata/kubeadm/patches/patches (every patch type, two
// documents in a file, a file in a subdirectory, ignored files) and compares them byte for byte with what upstream
// kubeadm v1.37.2 wrote with the same directory, and the [patches] lines with what kubeadm printed (generate.sh
// runs `init phase control-plane all`, then `init phase etcd local`: two processes, so two summaries).
func TestPatchesMatchKubeadm(t *testing.T) {
	fs, cfg := patchedNode(t)
	ctx := t.Context()
	set, err := patches.Load(fs, patchesDir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	report := func(applied []patches.Patch, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range applied {
			lines = append(lines, p.Line())
		}
	}
	lines = append(lines, set.Summary()...)
	report(WriteAPIServer(ctx, fs, cfg.ClusterPart(), cfg.NodePart(), debianHost))
	report(WriteControllerManager(ctx, fs, cfg.ClusterPart(), cfg.NodePart(), debianHost))
	report(WriteScheduler(ctx, fs, cfg.ClusterPart(), cfg.NodePart(), debianHost))
	lines = append(lines, set.Summary()...)
	report(WriteLocalEtcd(ctx, fs, cfg.ClusterPart(), cfg.NodePart()))

	dir := filepath.Join(kubeadmRefs(release.Default()), "patches")
	want, err := os.ReadFile(filepath.Join(dir, "patches-output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n") + "\n"; got != string(want) {
		t.Errorf("[patches] lines\n--- kubeboot\n%s--- kubeadm\n%s", got, want)
	}
	for _, name := range []string{staticpod.EtcdName, staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName} {
		got, err := fs.ReadFile(staticpod.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := os.ReadFile(filepath.Join(dir, name+".yaml.ref"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(ref) {
			t.Errorf("%s differs from kubeadm's\n--- kubeboot\n%s\n--- kubeadm\n%s", name, got, ref)
		}
	}
	// The references really are patched: kubeadm's rendering without patches differs for all but the
	// controller-manager, which no patch targets.
	for name, patched := range map[string]bool{staticpod.EtcdName: true, staticpod.APIServerName: true, staticpod.SchedulerName: true, staticpod.ControllerManagerName: false} {
		a, errA := os.ReadFile(filepath.Join(dir, name+".yaml.ref"))
		b, errB := os.ReadFile(filepath.Join(kubeadmRefs(release.Default()), "ipv4-default", name+".yaml.ref"))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if (string(a) != string(b)) != patched {
			t.Errorf("%s: patched reference differs from the unpatched one: %v, want %v", name, string(a) != string(b), patched)
		}
	}
}

func TestWriteWithPatchesErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		dir   string
		want  string
	}{
		{
			name: "missing directory",
			dir:  "/nope",
			want: "write static Pod manifest for kube-scheduler: read patches directory /nope: lstat {root}/nope: no such file or directory",
		},
		{
			name:  "bad patch type in a name",
			files: map[string]string{"kube-apiserver+yaml.yaml": "{}"},
			want:  "write static Pod manifest for kube-scheduler: patch file /etc/kubernetes/patches/kube-apiserver+yaml.yaml: unknown or missing patch type after '+', must be one of [json merge strategic]",
		},
		{
			name:  "a patch that fails",
			files: map[string]string{"kube-scheduler+json.yaml": "- op: remove\n  path: /spec/nodeName\n"},
			want:  "patch static Pod kube-scheduler: apply patch file /etc/kubernetes/patches/kube-scheduler+json.yaml (document 1, type json) to kube-scheduler: error in remove for path: '/spec/nodeName': Unable to remove nonexistent key: nodeName: missing value; fix or remove the patch",
		},
		{
			name:  "no longer a Pod",
			files: map[string]string{"kube-scheduler+merge.yaml": "kind: Deployment\n"},
			want:  `patches for static Pod kube-scheduler in /etc/kubernetes/patches turn it into apiVersion "v1" kind "Deployment"; a static Pod must stay apiVersion v1 kind Pod`,
		},
		{
			name:  "not a valid Pod",
			files: map[string]string{"kube-scheduler+merge.yaml": "spec:\n  containers: 3\n"},
			want:  "patches for static Pod kube-scheduler in /etc/kubernetes/patches leave no valid Pod: json: cannot unmarshal number into Go struct field PodSpec.spec.containers of type []v1.Container",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := nodefs.FS{Root: t.TempDir()}
			if err := fs.MkdirAll(patchesDir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range tt.files {
				if err := fs.WriteFile(patchesDir+"/"+name, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := baseConfig()
			cfg.Init.Patches = &config.Patches{Directory: patchesDir}
			if tt.dir != "" {
				cfg.Init.Patches.Directory = tt.dir
			}
			applied, err := WriteScheduler(t.Context(), fs, cfg.ClusterPart(), cfg.NodePart(), debianHost)
			want := strings.ReplaceAll(tt.want, "{root}", fs.Root)
			if err == nil || err.Error() != want {
				t.Errorf("error\n got %v\nwant %s", err, want)
			}
			if applied != nil {
				t.Errorf("applied %v with an error", applied)
			}
			if fs.Exists(staticpod.Path(staticpod.SchedulerName)) {
				t.Error("the manifest was written despite the error")
			}
		})
	}
}

func TestPatchPodWithoutPatches(t *testing.T) {
	pod := Scheduler(baseConfig().ClusterPart(), baseConfig().NodePart(), debianHost)
	set := patches.NewSet(patches.Patch{Target: patches.Etcd, Type: "application/merge-patch+json", Data: []byte(`{}`)})
	for _, s := range []*patches.Set{nil, set} {
		got, applied, err := PatchPod(s, pod)
		if got != pod || applied != nil || err != nil {
			t.Errorf("PatchPod without patches for the Pod = %p, %v, %v; want the Pod itself", got, applied, err)
		}
	}
}

// TestPatchesEmptyDirectory: patches.directory set but with no patch in it writes exactly the unpatched manifest.
func TestPatchesEmptyDirectory(t *testing.T) {
	fs := nodefs.FS{Root: t.TempDir()}
	if err := fs.MkdirAll(patchesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.Init.Patches = &config.Patches{Directory: patchesDir}
	applied, err := WriteAPIServer(t.Context(), fs, cfg.ClusterPart(), cfg.NodePart(), debianHost)
	if err != nil || applied != nil {
		t.Fatalf("WriteAPIServer = %v, %v", applied, err)
	}
	got, err := fs.ReadFile(staticpod.Path(staticpod.APIServerName))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "golden", "ipv4-default", staticpod.APIServerName+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("manifest with an empty patches directory differs from the golden one:\n%s", got)
	}
}
