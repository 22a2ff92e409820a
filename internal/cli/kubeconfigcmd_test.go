package cli

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/pki"
)

func TestKubeconfigUser(t *testing.T) {
	root := t.TempDir()
	if code, _, errs := run(t, "init", "phase", "certs", "ca", "--rootfs", root, "--apiserver-advertise-address", "10.0.0.1", "--node-name", "n1"); code != 0 {
		t.Fatalf("certs ca: %s", errs)
	}
	deps := testConfigDeps(&fakePuller{})
	runUser := func(args ...string) (string, error) {
		var out bytes.Buffer
		r := newRoot(&out, &out)
		r.RemoveCommand(commandAt(t, r, "kubeconfig"))
		r.AddCommand(newKubeconfigCmd(&out, deps.env, pki.SystemSource))
		r.SetArgs(append([]string{"kubeconfig", "user", "--rootfs", root}, args...))
		err := r.ExecuteContext(t.Context())
		return out.String(), err
	}

	out, err := runUser("--client-name", "alice", "--org", "team-a,team-b", "--validity-period", "48h")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if kc.CurrentContext != "alice@kubernetes" || kc.Clusters["kubernetes"].Server != "https://10.0.0.10:6443" {
		t.Errorf("context %q, clusters %v", kc.CurrentContext, kc.Clusters)
	}
	certs, err := certutil.ParseCertsPEM(kc.AuthInfos["alice"].ClientCertificateData)
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if c.Subject.CommonName != "alice" || strings.Join(c.Subject.Organization, ",") != "team-a,team-b" {
		t.Errorf("subject %v", c.Subject)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d > 49*60*60*1e9 || d < 47*60*60*1e9 {
		t.Errorf("validity %s, want about 48h", d)
	}

	out, err = runUser("--client-name", "bob", "--token", "abcdef.0123456789abcdef")
	if err != nil || !strings.Contains(out, "token: abcdef.0123456789abcdef") || strings.Contains(out, "client-certificate-data") {
		t.Errorf("--token: %v\n%s", err, out)
	}

	if _, err := runUser(); err == nil || err.Error() != "--client-name is required" {
		t.Errorf("err = %v", err)
	}
}
