package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigPrintMatchesConfigPackage(t *testing.T) {
	code, out, errs := run(t, "config", "print", "init-defaults")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, err := config.DefaultInitDocuments()
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatalf("printed\n%s\nwant\n%s", out, want)
	}
}

func TestInitRejectsBadConfigWithFieldPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kubeadm.yaml")
	doc := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnett: 10.244.0.0/16\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	code, _, errs := run(t, "init", "--config", file, "--rootfs", root)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errs, `unknown field "networking.podSubnett"`) || !strings.Contains(errs, "hint: fix the fields named above; nothing was written") {
		t.Fatalf("stderr:\n%s", errs)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("a refused init created %s", root)
	}
}

func TestInitRejectsUnknownSkipPhase(t *testing.T) {
	code, _, errs := run(t, "init", "--skip-phases", "certz", "--rootfs", t.TempDir(), "--apiserver-advertise-address", "10.0.0.1")
	if code != 1 || !strings.Contains(errs, `unknown phase "certz": known phases are addon, addon/coredns`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
}

func TestInitPhaseRendersIntoRootfs(t *testing.T) {
	root := t.TempDir()
	code, out, errs := run(t, "init", "phase", "certs", "all", "--rootfs", root, "--apiserver-advertise-address", "10.0.0.1", "--node-name", "n1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "[certs/ca] done in") || !strings.Contains(out, "[certs/apiserver-etcd-client] done in") {
		t.Fatalf("stdout:\n%s", out)
	}
	for _, f := range []string{"etc/kubernetes/pki/ca.crt", "etc/kubernetes/pki/apiserver.key", "etc/kubernetes/pki/etcd/peer.crt", "etc/kubernetes/pki/sa.pub"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/admin.conf")); !os.IsNotExist(err) {
		t.Errorf("phase certs wrote a kubeconfig")
	}
}

func TestDryRunWritesNothingAndHidesSecrets(t *testing.T) {
	root := t.TempDir()
	code, out, errs := run(t, "init", "--dry-run", "--rootfs", root, "--skip-phases", "preflight",
		"--apiserver-advertise-address", "10.0.0.1", "--node-name", "n1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Fatalf("dry run wrote into the root: %v %v", entries, err)
	}
	for _, want := range []string{"[dryrun] would write", "/etc/kubernetes/pki/ca.key", "[dryrun] --- /etc/kubernetes/manifests/kube-apiserver.yaml"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "client-key-data") {
		t.Errorf("dry run printed key material")
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version", "-o", "short")
	if code != 0 || out != "v0.1.0-dev\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
	code, _, errs := run(t, "version", "-o", "xml")
	if code != 1 || !strings.Contains(errs, `--output "xml": must be one of`) {
		t.Fatalf("exit %d, %q", code, errs)
	}
}
