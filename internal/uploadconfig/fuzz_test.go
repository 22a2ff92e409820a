package uploadconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzParseClusterConfiguration feeds the ClusterConfiguration key of kube-system/kubeadm-config to the reader a
// joining node uses. What it reads, stored again by ClusterConfigurationYAML (what init uploads), must read the
// same; a document it refuses gives an error and no warning.
func FuzzParseClusterConfiguration(f *testing.F) {
	files, err := filepath.Glob("../config/testdata/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in ../config/testdata: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nfieldOfANewerKubeadm: true\nclusterName: c\n",
		"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  timeoutForControlPlane: 4m\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n", "", "kind: ClusterConfiguration\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var warn bytes.Buffer
		cc, err := ParseClusterConfiguration(doc, &warn)
		if err != nil {
			if warn.Len() > 0 {
				t.Fatalf("refused with %v, but warned:\n%s", err, warn.String())
			}
			return
		}
		if cc.ImageRepository == "" || cc.ClusterName == "" {
			t.Fatalf("read without the defaults of imageRepository and clusterName: %+v", cc)
		}
		out, err := ClusterConfigurationYAML(cc)
		if err != nil {
			t.Fatalf("ClusterConfigurationYAML: %v", err)
		}
		warn.Reset()
		again, err := ParseClusterConfiguration(string(out), &warn)
		if err != nil {
			t.Fatalf("what ClusterConfigurationYAML wrote does not read: %v\n%s", err, out)
		}
		if warn.Len() > 0 {
			t.Fatalf("what ClusterConfigurationYAML wrote reads with a warning: %s\n%s", warn.String(), out)
		}
		if d := cmp.Diff(cc, again, cmpopts.IgnoreTypes(metav1.TypeMeta{})); d != "" {
			t.Fatalf("read, stored and read again (-first +again):\n%s\nstored:\n%s", d, out)
		}
	})
}
