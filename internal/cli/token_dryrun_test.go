package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestTokenDryRun(t *testing.T) {
	f := &tokenFixture{client: fake.NewClientset(bootstrapSecret("abcdef", "0123456789abcdef", map[string]string{"usage-bootstrap-authentication": "true"}))}
	out, _, err := f.run(t, "create", "--dry-run", "ghijkl.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "[dryrun] Would create secrets in namespace kube-system:\n") || !strings.Contains(out, "name: bootstrap-token-ghijkl") ||
		!strings.HasSuffix(out, "ghijkl.0123456789abcdef\n") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := f.client.CoreV1().Secrets("kube-system").Get(t.Context(), "bootstrap-token-ghijkl", metav1.GetOptions{}); err == nil {
		t.Error("a dry run created the Secret")
	}

	out, _, err = f.run(t, "delete", "--dry-run", "abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "[dryrun] Would delete secrets kube-system/bootstrap-token-abcdef\n") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := f.client.CoreV1().Secrets("kube-system").Get(t.Context(), "bootstrap-token-abcdef", metav1.GetOptions{}); err != nil {
		t.Errorf("a dry run deleted the Secret: %v", err)
	}

	out, _, err = f.run(t, "list", "--dry-run")
	if err != nil || !strings.Contains(out, "abcdef.0123456789abcdef") {
		t.Errorf("list --dry-run reads the cluster: %v\n%s", err, out)
	}
}

func TestTokenCreateConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kubeadm.yaml")
	doc := `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.10
nodeRegistration:
  name: cp-1
bootstrapTokens:
- token: aaaaaa.0123456789abcdef
  description: first
  ttl: 2h
- token: bbbbbb.0123456789abcdef
  usages: [authentication]
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &tokenFixture{client: fake.NewClientset()}
	out, _, err := f.run(t, "create", "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if out != "aaaaaa.0123456789abcdef\n" {
		t.Errorf("output %q, want the first token", out)
	}
	if d := secretData(t, f.client, "bootstrap-token-aaaaaa"); d["description"] != "first" {
		t.Errorf("aaaaaa: %v", d)
	}
	if d := secretData(t, f.client, "bootstrap-token-bbbbbb"); d["usage-bootstrap-authentication"] != "true" || d["usage-bootstrap-signing"] != "" {
		t.Errorf("bbbbbb: %v", d)
	}

	_, _, err = f.run(t, "create", "--config", file, "--ttl", "1h", "cccccc.0123456789abcdef")
	if err == nil || err.Error() != "cannot mix --config with --ttl, the TOKEN argument" {
		t.Errorf("err = %v", err)
	}
}
