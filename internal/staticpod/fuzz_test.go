package staticpod

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// FuzzReadFlags feeds static Pod manifests to Read and Flags, as reset, certs renew --restart and init's checks read
// the node's manifests. A manifest that reads must read the same when written again; its flags must render back
// (--name=value) to the same flags.
func FuzzReadFlags(f *testing.F) {
	// The golden manifests kubeboot renders (package manifests).
	files, err := filepath.Glob("../manifests/testdata/golden/*/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden manifests: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "{}", "spec: {containers: []}", "spec:\n  containers:\n  - command: [etcd, --name, x, --=y, -a=b, --data-dir=/d, --data-dir=/e, --x==]\n",
		`{"spec":{"containers":[{"command":["kube-apiserver"],"args":["--a=1"]}]}}`, "spec: 3", "- a",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := nodefs.Memory()
		if err := fsys.WriteFile(Path(EtcdName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := Read(fsys, EtcdName)
		if err != nil {
			if m != nil {
				t.Fatalf("Read returned a manifest and the error %v", err)
			}
			return
		}
		if m == nil || m.Pod == nil {
			t.Fatal("Read returned neither a manifest nor an error")
		}
		flags, err := m.Flags()
		if err != nil {
			if len(m.Pod.Spec.Containers) > 0 {
				t.Fatalf("Flags of a Pod with a container: %v", err)
			}
			return
		}
		var args []string
		for _, fl := range flags {
			if fl.Name == "" {
				t.Fatalf("flag without a name in %v", flags)
			}
			args = append(args, "--"+fl.Name+"="+fl.Value)
		}
		if again := ParseFlags(args); !slices.Equal(again, flags) {
			t.Fatalf("flags %q rendered and parsed again: %q", flags, again)
		}
		out, err := yaml.Marshal(m.Pod)
		if err != nil {
			t.Fatalf("the Pod read does not write: %v", err)
		}
		if err := fsys.WriteFile(Path(EtcdName), out, 0o600); err != nil {
			t.Fatal(err)
		}
		m2, err := Read(fsys, EtcdName)
		if err != nil {
			t.Fatalf("the Pod read, written, does not read: %v\n%s", err, out)
		}
		flags2, err := m2.Flags()
		if err != nil || !cmp.Equal(flags, flags2) {
			t.Fatalf("flags written and read again: %q, %v; want %q", flags2, err, flags)
		}
	})
}
