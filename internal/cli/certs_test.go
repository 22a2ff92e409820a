package cli

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

func TestCertsCertificateKey(t *testing.T) {
	var keys []string
	for range 2 {
		code, out, errs := run(t, "certs", "certificate-key")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		key, ok := strings.CutSuffix(out, "\n")
		if !ok || len(key) != 64 || strings.Trim(key, "0123456789abcdef") != "" {
			t.Fatalf("printed %q, want 64 hex digits and a newline", out)
		}
		keys = append(keys, key)
	}
	if keys[0] == keys[1] {
		t.Fatal("two runs printed the same key")
	}
}

func TestCertsGenerateCSR(t *testing.T) {
	root := t.TempDir()
	var out bytes.Buffer
	generate := func() error {
		out.Reset()
		r := newRoot(&out, &out)
		r.RemoveCommand(commandAt(t, r, "certs"))
		certs := &cobra.Command{Use: "certs"}
		certs.AddCommand(newCertsGenerateCSRCmd(&out, testConfigDeps(&fakePuller{}).env, pki.SystemSource))
		r.AddCommand(certs)
		r.SetArgs([]string{"certs", "generate-csr", "--rootfs", root, "--cert-dir", "/srv/pki"})
		return r.ExecuteContext(t.Context())
	}
	if err := generate(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "generating keys and CSRs in /srv/pki\n  apiserver\n") ||
		!strings.Contains(out.String(), "generating keys and CSRs in /etc/kubernetes\n  admin.conf\n") {
		t.Errorf("output:\n%s", out.String())
	}
	fsys := nodefs.FS{Root: root}
	b, err := fsys.ReadFile("/srv/pki/apiserver.csr")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "kube-apiserver" || !slices.Contains(csr.DNSNames, "kubernetes.default.svc.cluster.local") || !containsIP(csr.IPAddresses, "10.96.0.1") {
		t.Errorf("apiserver CSR: %v %v %v", csr.Subject, csr.DNSNames, csr.IPAddresses)
	}
	for _, f := range []string{"/srv/pki/etcd/peer.key", "/srv/pki/etcd/peer.csr", "/srv/pki/front-proxy-client.csr"} {
		if !fsys.Exists(f) {
			t.Errorf("%s missing", f)
		}
	}
	for _, f := range []string{"/srv/pki/ca.key", "/srv/pki/ca.csr", "/srv/pki/sa.key"} {
		if fsys.Exists(f) {
			t.Errorf("%s written: CAs and the service-account key have no CSR", f)
		}
	}
	kc, err := kubeconfig.Read(fsys, "/etc/kubernetes/admin.conf")
	if err != nil {
		t.Fatal(err)
	}
	if a := kc.AuthInfos["kubernetes-admin"]; a == nil || len(a.ClientKeyData) == 0 || len(a.ClientCertificateData) != 0 {
		t.Errorf("admin.conf auth: %+v", a)
	}
	b, _ = fsys.ReadFile("/etc/kubernetes/admin.conf.csr")
	if block, _ = pem.Decode(b); block == nil {
		t.Fatal("admin.conf.csr holds no PEM")
	}
	if csr, err = x509.ParseCertificateRequest(block.Bytes); err != nil || csr.Subject.CommonName != "kubernetes-admin" ||
		!slices.Equal(csr.Subject.Organization, []string{"kubeadm:cluster-admins"}) {
		t.Errorf("admin.conf CSR: %v %v", csr.Subject, err)
	}

	// Nothing is overwritten.
	if err := generate(); err == nil || err.Error() != "/srv/pki/apiserver.key already exists: move it away to generate a new key and CSR for apiserver" {
		t.Errorf("second run: %v", err)
	}
}
