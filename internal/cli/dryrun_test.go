package cli

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

// files lists the regular files under root, relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, strings.TrimPrefix(p, root))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An init dry run on a node that already has its CA generates every other key, as a real init would, but holds
// them in memory: none is written to the node, to a temporary directory or to the output, and neither are the
// credentials the static Pods' environment carries.
func TestInitDryRunKeepsKeysInMemory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	const password = "s3cret-proxy-password"
	t.Setenv("https_proxy", "http://kubeboot:"+password+"@proxy.example:3128")
	root := t.TempDir()
	if code, _, errs := run(t, "init", "phase", "certs", "ca", "--rootfs", root, "--apiserver-advertise-address", "10.0.0.1"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	before := files(t, root)
	file := filepath.Join(t.TempDir(), "kubeadm.yaml")
	doc := `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.1
nodeRegistration:
  name: n1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer:
  extraEnvs:
  - name: CLOUD_TOKEN
    value: ` + password + `
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	// The Watch looks at every line init prints: a temporary directory exists only while init runs.
	w := &keyleak.Watch{Dirs: []string{tmp, root}, Skip: []string{filepath.Join(root, "etc/kubernetes/pki")}}
	var errs bytes.Buffer
	if code := Main(t.Context(), []string{"init", "--dry-run", "--config", file, "--rootfs", root, "--skip-phases", "preflight"}, w, &errs); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), w.String())
	}
	out := w.String()
	if found := w.Check(); len(found) > 0 {
		t.Errorf("key material outside the certificates directory: %q\n%s", found, out)
	}
	if strings.Contains(out, password) {
		t.Errorf("the dry run printed a static Pod's environment value:\n%s", out)
	}
	if after := files(t, root); !slices.Equal(after, before) {
		t.Errorf("the dry run changed the node: files %q, before %q", after, before)
	}
	for _, want := range []string{
		"  reused /etc/kubernetes/pki/ca.crt, /etc/kubernetes/pki/ca.key\n",
		"[dryrun]   -rw------- /etc/kubernetes/pki/apiserver.key (",
		"[dryrun]   -rw------- /etc/kubernetes/admin.conf (",
		"[dryrun] --- /etc/kubernetes/manifests/kube-apiserver.yaml\n",
		"    - name: CLOUD_TOKEN\n      value: <hidden>\n",
		"    - name: https_proxy\n      value: <hidden>\n",
		"[dryrun] --- /var/lib/kubelet/config.yaml\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, hidden := range []string{"[dryrun] --- /etc/kubernetes/pki/apiserver.key", "[dryrun] --- /etc/kubernetes/admin.conf", "[dryrun]   -rw------- /etc/kubernetes/pki/ca.key"} {
		if strings.Contains(out, hidden) {
			t.Errorf("output has %q:\n%s", hidden, out)
		}
	}
}
