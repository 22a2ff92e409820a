package kubelet

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/release"
)

// patchesConfig mirrors testdata/kubeadm/patches/kubeadm.yaml: the default case with a patches directory.
func patchesConfig() *config.Init {
	cfg := defaultConfig()
	cfg.Init.Patches = &config.Patches{Directory: "/etc/kubernetes/patches"}
	return cfg
}

// labInitConfig is lab/bootstrap/testdata/init.yaml: what the lab's first control plane runs init with.
const labInitConfig = `apiVersion: kubeadm.k8s.io/v1beta4
bootstrapTokens:
- token: abcdef.0123456789abcdef
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.77.0.11
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: Never
  kubeletExtraArgs:
  - name: node-ip
    value: 10.77.0.11
  name: kblab-cp1
patches:
  directory: /lab/nodes/kblab-cp1/patches
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
---
apiVersion: kubelet.config.k8s.io/v1beta1
cgroupDriver: cgroupfs
failSwapOn: false
kind: KubeletConfiguration
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
conntrack:
  maxPerCore: 0
kind: KubeProxyConfiguration
mode: iptables
`

// TestLabCgroupRootPatch is the lab's case end to end: the lab's init configuration through kubeboot's config
// pipeline, the node's kubeletconfiguration+merge.yaml (as lab/bootstrap writes it) in its patches directory on
// a node filesystem, and WriteConfig. config.yaml must be the unpatched one plus exactly the cgroupRoot line.
func TestLabCgroupRootPatch(t *testing.T) {
	env := config.Environment{
		Hostname:              func() (string, error) { return "kblab-cp1", nil },
		AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.77.0.11"), nil },
		SystemdResolvedActive: func() bool { return false },
		Random:                strings.NewReader(strings.Repeat("r", 64)),
	}
	cfg, _, err := config.ResolveInit([]byte(labInitConfig), config.InitFlags{}, env)
	if err != nil {
		t.Fatal(err)
	}

	unpatched := nodefs.FS{Root: t.TempDir()}
	cfgNoPatches := *cfg
	cfgNoPatches.Init.Patches = nil
	if applied, err := WriteConfig(unpatched, cfgNoPatches.ClusterPart(), cfgNoPatches.NodePart()); err != nil || applied != nil {
		t.Fatalf("WriteConfig without patches = %v, %v", applied, err)
	}
	before, err := unpatched.ReadFile(config.KubeletConfigFile)
	if err != nil {
		t.Fatal(err)
	}

	fs := nodefs.FS{Root: t.TempDir()}
	patchFile := "/lab/nodes/kblab-cp1/patches/kubeletconfiguration+merge.yaml"
	if err := fs.WriteFile(patchFile, []byte("cgroupRoot: /kblab-cp1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	applied, err := WriteConfig(fs, cfg.ClusterPart(), cfg.NodePart())
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 1 || applied[0].File != patchFile || applied[0].Type != types.MergePatchType {
		t.Errorf("applied = %+v, want the one merge patch of %s", applied, patchFile)
	}
	if line := applied[0].Line(); line != `[patches] Applied patch of type "application/merge-patch+json" to target "kubeletconfiguration"` {
		t.Errorf("Line() = %s", line)
	}
	after, err := fs.ReadFile(config.KubeletConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(before, []byte("\ncgroupDriver: cgroupfs\n")) || bytes.Contains(before, []byte("cgroupRoot")) {
		t.Fatalf("unexpected unpatched config.yaml:\n%s", before)
	}
	want := bytes.Replace(before, []byte("\ncgroupDriver: cgroupfs\n"), []byte("\ncgroupDriver: cgroupfs\ncgroupRoot: /kblab-cp1\n"), 1)
	if !bytes.Equal(after, want) {
		t.Errorf("patched config.yaml\n%s\nwant\n%s", after, want)
	}
	kc := decodeKubelet(t, after)
	if kc.CgroupRoot != "/kblab-cp1" || kc.CgroupDriver != "cgroupfs" || kc.FailSwapOn == nil || *kc.FailSwapOn ||
		kc.ContainerRuntimeEndpoint != "unix:///run/containerd/containerd.sock" {
		t.Errorf("patched config decodes to cgroupRoot %q cgroupDriver %q failSwapOn %v containerRuntimeEndpoint %q",
			kc.CgroupRoot, kc.CgroupDriver, kc.FailSwapOn, kc.ContainerRuntimeEndpoint)
	}
}

// TestPatchesOutputMatchesKubeadm compares the [patches] lines a caller prints for the patches case with what
// kubeadm printed (testdata/kubeadm/patches/patches-output.txt). kubeadm prints one line more: its own
// strategic patch with instance-config.yaml, which kubeboot folds into the rendering and does not report.
func TestPatchesOutputMatchesKubeadm(t *testing.T) {
	cfg := patchesConfig()
	fs := nodefs.FS{Root: t.TempDir()}
	if err := os.CopyFS(fs.Path(cfg.Init.Patches.Directory), os.DirFS(filepath.Join(kubeadmRefs(release.Default()), "patches", "patches"))); err != nil {
		t.Fatal(err)
	}
	set, err := patches.Load(fs, cfg.Init.Patches.Directory)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := WriteConfig(fs, cfg.ClusterPart(), cfg.NodePart())
	if err != nil {
		t.Fatal(err)
	}
	lines := set.Summary()
	for _, p := range applied {
		lines = append(lines, p.Line())
	}
	lines = append(lines, `[patches] Applied patch of type "application/strategic-merge-patch+json" to target "kubeletconfiguration"`)
	want, err := os.ReadFile(filepath.Join(kubeadmRefs(release.Default()), "patches", "patches-output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n") + "\n"; got != string(want) {
		t.Errorf("[patches] lines\n--- kubeboot\n%s--- kubeadm\n%s", got, want)
	}
}

func TestPatchConfig(t *testing.T) {
	const socket = "unix:///var/run/containerd/containerd.sock"
	tests := []struct {
		name      string
		patches   []patches.Patch
		nodeLocal bool
		want      []string // lines config.yaml must hold
		wantNot   []string
	}{
		{
			name:      "strategic merges maps, json patch edits lists",
			nodeLocal: true,
			patches: []patches.Patch{
				{Type: types.StrategicMergePatchType, Data: []byte(`{"evictionHard":{"memory.available":"100Mi"}}`)},
				{Type: types.StrategicMergePatchType, Data: []byte(`{"evictionHard":{"nodefs.available":"5%"}}`)},
				{Type: types.JSONPatchType, Data: []byte(`[{"op":"add","path":"/clusterDNS/-","value":"10.96.0.11"}]`)},
			},
			want: []string{"evictionHard:\n  memory.available: 100Mi\n  nodefs.available: 5%\n", "clusterDNS:\n- 10.96.0.10\n- 10.96.0.11\n"},
		},
		{
			// kubeadm applies instance-config.yaml after the user's patches: the node's criSocket wins.
			name:      "NodeLocalCRISocket: criSocket wins over a patched endpoint",
			nodeLocal: true,
			patches:   []patches.Patch{{Type: types.MergePatchType, Data: []byte(`{"containerRuntimeEndpoint":"unix:///other.sock","cgroupRoot":"/n"}`)}},
			want:      []string{"containerRuntimeEndpoint: " + socket + "\n", "cgroupRoot: /n\n"},
			wantNot:   []string{"other.sock"},
		},
		{
			name:    "without NodeLocalCRISocket the patch decides",
			patches: []patches.Patch{{Type: types.MergePatchType, Data: []byte(`{"containerRuntimeEndpoint":"unix:///other.sock"}`)}},
			want:    []string{"containerRuntimeEndpoint: unix:///other.sock\n"},
		},
		{
			name:      "a patch removing the endpoint does not remove the node's",
			nodeLocal: true,
			patches:   []patches.Patch{{Type: types.MergePatchType, Data: []byte(`{"containerRuntimeEndpoint":null}`)}},
			want:      []string{"containerRuntimeEndpoint: " + socket + "\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			if !tt.nodeLocal {
				cfg.Cluster.FeatureGates = map[string]bool{"NodeLocalCRISocket": false}
			}
			b, err := Config(cfg.ClusterPart(), cfg.NodePart())
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.patches {
				tt.patches[i].Target = patches.KubeletConfiguration
			}
			var criSocket string
			if tt.nodeLocal {
				criSocket = cfg.Init.NodeRegistration.CRISocket
			}
			got, applied, err := PatchConfig(patches.NewSet(tt.patches...), b, criSocket)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(applied, tt.patches, func(a, b patches.Patch) bool { return string(a.Data) == string(b.Data) }) {
				t.Errorf("applied %+v, want %+v", applied, tt.patches)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(got), w) {
					t.Errorf("config.yaml lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(string(got), w) {
					t.Errorf("config.yaml holds %q:\n%s", w, got)
				}
			}
			decodeKubelet(t, got)
		})
	}
}

func TestWriteConfigPatchErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		dir   string
		want  string
	}{
		{
			name: "missing directory",
			dir:  "/nope",
			want: "write the kubelet's /var/lib/kubelet/config.yaml: read patches directory /nope: lstat {root}/nope: no such file or directory",
		},
		{
			name:  "a patch that fails",
			files: map[string]string{"kubeletconfiguration+json.yaml": "- op: test\n  path: /cgroupDriver\n  value: cgroupfs\n"},
			want:  "patch the kubelet's /var/lib/kubelet/config.yaml: apply patch file /p/kubeletconfiguration+json.yaml (document 1, type json) to kubeletconfiguration: testing value /cgroupDriver failed: test failed; fix or remove the patch",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := nodefs.FS{Root: t.TempDir()}
			if err := fs.MkdirAll("/p", 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range tt.files {
				if err := fs.WriteFile("/p/"+name, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := defaultConfig()
			cfg.Init.Patches = &config.Patches{Directory: "/p"}
			if tt.dir != "" {
				cfg.Init.Patches.Directory = tt.dir
			}
			applied, err := WriteConfig(fs, cfg.ClusterPart(), cfg.NodePart())
			want := strings.ReplaceAll(tt.want, "{root}", fs.Root)
			if err == nil || err.Error() != want {
				t.Errorf("error\n got %v\nwant %s", err, want)
			}
			if applied != nil {
				t.Errorf("applied %v with an error", applied)
			}
			if fs.Exists(config.KubeletConfigFile) || fs.Exists(InstanceConfigFile) {
				t.Error("kubelet files written despite the error")
			}
		})
	}
}
