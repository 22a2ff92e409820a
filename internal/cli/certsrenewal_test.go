package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// certsNode is a node root with the certificates and kubeconfig files `init phase` writes, and the configuration
// file it used.
func certsNode(t *testing.T) (root, cfgFile string) {
	t.Helper()
	root = t.TempDir()
	cfgFile = filepath.Join(t.TempDir(), "kubeadm.yaml")
	cfg := `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.5}
nodeRegistration: {name: cp-1}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: ECDSA-P256
`
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"certs", "kubeconfig"} {
		if code, _, errs := run(t, "init", "phase", phase, "all", "--config", cfgFile, "--rootfs", root); code != 0 {
			t.Fatalf("init phase %s: exit %d: %s", phase, code, errs)
		}
	}
	return root, cfgFile
}

func TestCertsCheckExpirationAndRenew(t *testing.T) {
	root, cfgFile := certsNode(t)
	code, out, errs := run(t, "certs", "check-expiration", "--config", cfgFile, "--rootfs", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "CERTIFICATE ") || !strings.HasPrefix(lines[1], "admin.conf ") || !strings.Contains(lines[1], " 364d ") ||
		!strings.Contains(out, "\nCERTIFICATE AUTHORITY ") || !strings.Contains(out, "\netcd-ca ") {
		t.Errorf("check-expiration printed:\n%s", out)
	}
	if errs != "" {
		t.Errorf("warnings for a fresh PKI: %s", errs)
	}

	fsys := nodefs.FS{Root: root}
	before, _ := fsys.ReadFile("/etc/kubernetes/pki/apiserver.crt")
	beforeEtcd, _ := fsys.ReadFile("/etc/kubernetes/pki/etcd/server.crt")
	code, out, errs = run(t, "certs", "renew", "apiserver", "--config", cfgFile, "--rootfs", root)
	if code != 0 || out != "certificate for serving the Kubernetes API renewed\n" {
		t.Fatalf("renew apiserver: exit %d, printed %q, %s", code, out, errs)
	}
	after, _ := fsys.ReadFile("/etc/kubernetes/pki/apiserver.crt")
	afterEtcd, _ := fsys.ReadFile("/etc/kubernetes/pki/etcd/server.crt")
	if string(before) == string(after) || string(beforeEtcd) != string(afterEtcd) {
		t.Error("renew apiserver did not renew exactly the apiserver certificate")
	}

	code, out, errs = run(t, "certs", "renew", "all", "--config", cfgFile, "--rootfs", root)
	if code != 0 || !strings.HasSuffix(out, "super-admin.conf renewed\n"+renewAllDone) && !strings.HasSuffix(out, "for the super-admin renewed\n"+renewAllDone) {
		t.Fatalf("renew all: exit %d, printed:\n%s\n%s", code, out, errs)
	}
	if n := strings.Count(out, " renewed\n"); n != 11 {
		t.Errorf("renew all renewed %d certificates, want 11:\n%s", n, out)
	}

	code, out, errs = run(t, "certs", "check-expiration", "--config", cfgFile, "--rootfs", root, "--cert-dir", "/nowhere", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var info struct {
		Kind         string
		Certificates []struct {
			Name    string
			Missing bool
		}
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("-o json printed %q: %v", out, err)
	}
	missing := 0
	for _, c := range info.Certificates {
		if c.Missing {
			missing++
		}
	}
	// With --cert-dir somewhere empty only the kubeconfig files' certificates are found.
	if info.Kind != "CertificateExpirationInfo" || len(info.Certificates) != 11 || missing != 7 {
		t.Errorf("-o json: kind %q, %d certificates, %d missing; want 11 and 7:\n%s", info.Kind, len(info.Certificates), missing, out)
	}
}
