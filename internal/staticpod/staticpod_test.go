package staticpod

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		want    Flags
	}{
		{name: "nothing", command: nil, want: nil},
		{name: "the binary alone", command: []string{"etcd"}, want: nil},
		{name: "kubeadm's form, in order",
			command: []string{"kube-scheduler", "--bind-address=127.0.0.1", "--leader-elect=true"},
			want:    Flags{{"bind-address", "127.0.0.1"}, {"leader-elect", "true"}}},
		{name: "the value keeps its own '='",
			command: []string{"etcd", "--initial-cluster=cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380"},
			want:    Flags{{"initial-cluster", "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380"}}},
		{name: "an empty value is a value",
			command: []string{"kube-controller-manager", "--cluster-signing-key-file="},
			want:    Flags{{"cluster-signing-key-file", ""}}},
		{name: "repeated flags stay repeated",
			command: []string{"kube-apiserver", "--admission-control-config-file=a", "--v=2", "--admission-control-config-file=b"},
			want:    Flags{{"admission-control-config-file", "a"}, {"v", "2"}, {"admission-control-config-file", "b"}}},
		{name: "a flag without '=' is skipped, and so is the argument after it",
			command: []string{"kube-scheduler", "--leader-elect", "--secure-port", "10300", "--v=2"},
			want:    Flags{{"v", "2"}}},
		{name: "single dash, positional, empty name and lone dashes are skipped",
			command: []string{"etcd", "-v=2", "positional", "--=x", "--", "-", ""},
			want:    nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, ParseFlags(tt.command)); d != "" {
				t.Errorf("ParseFlags(%q) (-want +got):\n%s", tt.command, d)
			}
		})
	}
}

func TestFlagsLookup(t *testing.T) {
	f := ParseFlags([]string{"kube-controller-manager", "--controllers=*", "--leader-elect", "--cluster-signing-key-file=", "--controllers=*,bootstrapsigner,tokencleaner"})
	tests := []struct {
		name      string
		wantValue string
		wantOK    bool
	}{
		{name: "controllers", wantValue: "*,bootstrapsigner,tokencleaner", wantOK: true},
		{name: "cluster-signing-key-file", wantValue: "", wantOK: true},
		{name: "leader-elect", wantValue: "", wantOK: false},
		{name: "bind-address", wantValue: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := f.Lookup(tt.name)
			if v != tt.wantValue || ok != tt.wantOK {
				t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.wantValue, tt.wantOK)
			}
			if got := f.Get(tt.name); got != tt.wantValue {
				t.Errorf("Get(%q) = %q; want %q", tt.name, got, tt.wantValue)
			}
		})
	}
}

func TestRead(t *testing.T) {
	const yamlPod = `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - name: etcd
    command:
    - etcd
    - --name=cp1
    args:
    - --data-dir=/var/lib/etcd
    - --name=cp2
  - name: sidecar
    command:
    - sidecar
    - --name=other
  unknownField: ignored
`
	const jsonPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"kube-scheduler"},` +
		`"spec":{"containers":[{"name":"kube-scheduler","command":["kube-scheduler","--secure-port=10300"]}]}}`
	tests := []struct {
		name      string
		component string
		content   string // none: the file does not exist
		wantErr   string // $ROOT: the test's node root
		wantNoPod bool   // error from Read
		wantFlags Flags
	}{
		{name: "YAML; command then args of the first container", component: EtcdName, content: yamlPod,
			wantFlags: Flags{{"name", "cp1"}, {"data-dir", "/var/lib/etcd"}, {"name", "cp2"}}},
		{name: "JSON", component: SchedulerName, content: jsonPod, wantFlags: Flags{{"secure-port", "10300"}}},
		{name: "no file", component: APIServerName, wantNoPod: true,
			wantErr: "read the static Pod of kube-apiserver: open $ROOT/etc/kubernetes/manifests/kube-apiserver.yaml: no such file or directory"},
		{name: "not YAML", component: EtcdName, content: "kind: Pod\nspec: [", wantNoPod: true,
			wantErr: "/etc/kubernetes/manifests/etcd.yaml: error converting YAML to JSON: yaml: line 2: did not find expected node content"},
		{name: "not a Pod's shape", component: EtcdName, content: "spec:\n  containers: 3\n", wantNoPod: true,
			wantErr: "/etc/kubernetes/manifests/etcd.yaml: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal number into Go struct field PodSpec.spec.containers of type []v1.Container"},
		{name: "no container", component: ControllerManagerName, content: "apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n",
			wantErr: "/etc/kubernetes/manifests/kube-controller-manager.yaml: the Pod has no container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := nodefs.FS{Root: t.TempDir()}
			if tt.content != "" {
				writeFile(t, fsys, Path(tt.component), tt.content)
			}
			wantErr := strings.ReplaceAll(tt.wantErr, "$ROOT", fsys.Root)
			m, err := Read(fsys, tt.component)
			if tt.wantNoPod {
				if err == nil || err.Error() != wantErr {
					t.Fatalf("Read error %v\nwant %s", err, wantErr)
				}
				if tt.content == "" && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Read error %v does not wrap fs.ErrNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.File != Path(tt.component) {
				t.Errorf("File %q, want %q", m.File, Path(tt.component))
			}
			flags, err := m.Flags()
			if wantErr != "" {
				if err == nil || err.Error() != wantErr || !errors.Is(err, ErrNoContainer) {
					t.Fatalf("Flags error %v\nwant %s, wrapping ErrNoContainer", err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.wantFlags, flags); d != "" {
				t.Errorf("Flags (-want +got):\n%s", d)
			}
		})
	}
}

func TestCommand(t *testing.T) {
	if _, err := Command(&corev1.Pod{}); !errors.Is(err, ErrNoContainer) || err.Error() != "the Pod has no container" {
		t.Errorf("Command of a Pod without containers: %v", err)
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Command: []string{"kube-apiserver"}, Args: []string{"--v=2"}}}}}
	if got, err := Command(pod); err != nil || !cmp.Equal(got, []string{"kube-apiserver", "--v=2"}) {
		t.Errorf("Command = %q, %v", got, err)
	}
}

func writeFile(t *testing.T, fsys nodefs.FS, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(fsys.Path(p)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fsys.Path(p), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDescription(t *testing.T) {
	if got, want := Selector(EtcdName), "component=etcd,tier=control-plane"; got != want {
		t.Errorf("Selector = %q, want %q", got, want)
	}
	if got, want := Path(ControllerManagerName), "/etc/kubernetes/manifests/kube-controller-manager.yaml"; got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	if got, want := EtcdMetricsURL("::1"), "http://[::1]:2381"; got != want {
		t.Errorf("EtcdMetricsURL = %q, want %q", got, want)
	}
}

func TestURLs(t *testing.T) {
	if got := EtcdPeerURL("10.0.0.2"); got != "https://10.0.0.2:2380" {
		t.Errorf("PeerURL = %s", got)
	}
	if got := EtcdClientURL("fd00::2"); got != "https://[fd00::2]:2379" {
		t.Errorf("ClientURL = %s", got)
	}
}
