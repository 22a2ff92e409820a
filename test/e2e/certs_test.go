//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// expirationTables runs tool's `certs check-expiration` on node and returns its two tables, without the lines
// that say where the configuration came from (they name the tool).
func expirationTables(t *testing.T, tool, node string) string {
	t.Helper()
	out, err := inNode(t.Context(), node, tool, "certs", "check-expiration")
	if err != nil {
		t.Fatalf("%s certs check-expiration on %s: %v\n%s", tool, node, err, out)
	}
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "[check-expiration]") {
			continue
		}
		keep = append(keep, l)
	}
	tables := strings.Join(keep, "\n")
	// kubeboot adds the kubelet's certificates as a third table after kubeadm's two.
	if i := strings.Index(tables, "\n\nKUBELET CERTIFICATE"); i >= 0 {
		tables = tables[:i]
	}
	return strings.TrimSpace(tables)
}

// checkExpirationAgrees: kubeboot's and upstream kubeadm's check-expiration print the same tables on node, and
// each reads the configuration from the cluster.
func checkExpirationAgrees(t *testing.T, node string) {
	t.Helper()
	kb := expirationTables(t, kubeboot, node)
	ka := expirationTables(t, kubeadm, node)
	if kb != ka {
		t.Errorf("check-expiration on %s differs:\nkubeboot:\n%s\nupstream kubeadm:\n%s", node, kb, ka)
	}
	if strings.Contains(kb, "!MISSING!") || !strings.Contains(kb, "\napiserver ") || !strings.Contains(kb, "\netcd-ca ") {
		t.Errorf("check-expiration on %s lists:\n%s", node, kb)
	}
	t.Logf("check-expiration on %s, the same from both tools:\n%s", node, kb)
}

// checkRenewAll renews every certificate of node with kubeboot, then checks that upstream kubeadm sees new
// expiry dates and that admin.conf's new client certificate is accepted by the running API server.
func checkRenewAll(t *testing.T, node string) {
	t.Helper()
	ctx := t.Context()
	files := []string{"/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/etcd/peer.crt", "/etc/kubernetes/admin.conf"}
	read := func() map[string]string {
		m := map[string]string{}
		for _, f := range files {
			b, err := os.ReadFile(nodeHostPath(node, f))
			if err != nil {
				t.Fatal(err)
			}
			m[f] = string(b)
		}
		return m
	}
	before := read()
	out, err := inNode(ctx, node, kubeboot, "certs", "renew", "all")
	if err != nil {
		t.Fatalf("kubeboot certs renew all on %s: %v\n%s", node, err, out)
	}
	if n := strings.Count(out, " renewed\n"); n != 11 || !strings.Contains(out, "Done renewing certificates.") {
		t.Fatalf("kubeboot certs renew all on %s renewed %d of 11:\n%s", node, n, out)
	}
	after := read()
	for _, f := range files {
		if after[f] == before[f] {
			t.Errorf("%s unchanged by renew all", f)
		}
	}
	t.Logf("upstream kubeadm check-expiration after kubeboot's renewal:\n%s", expirationTables(t, kubeadm, node))
	if out, err := inNode(ctx, node, kubectlIn, "--kubeconfig", "/etc/kubernetes/admin.conf", "auth", "can-i", "*", "*"); err != nil || strings.TrimSpace(out) != "yes" {
		t.Errorf("admin.conf after renewal: %v %q", err, out)
	}
	if out, err := inNode(ctx, node, kubectlIn, "--kubeconfig", "/etc/kubernetes/super-admin.conf", "get", "--raw", "/readyz"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("super-admin.conf after renewal: %v %q", err, out)
	}
}

// servedCert is the leaf certificate a TLS server at addr presents. It is read as soon as the server sends it,
// so a server that then asks for a client certificate (etcd) may refuse the rest of the handshake.
func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	var leaf []byte
	cfg := &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // only the certificate is read
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				leaf = raw[0]
			}
			return nil
		},
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err == nil {
		conn.Close()
	}
	if leaf == nil {
		t.Fatalf("TLS dial %s: no certificate (%v)", addr, err)
	}
	return leaf
}

// fileCert is the first certificate of a node's PEM file.
func fileCert(t *testing.T, node, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(nodeHostPath(node, file))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	return block.Bytes
}

// checkRenewRestart renews every certificate of a control plane with --restart and checks that each component
// came back and serves the new certificates: the failure kubernetes #102556 reports (renewed, yet the API server
// kept serving the old certificate) cannot happen. args are added to the command.
func checkRenewRestart(t *testing.T, node, ip string, args ...string) {
	t.Helper()
	ctx := t.Context()
	oldAPI, oldEtcd := servedCert(t, ip+":6443"), servedCert(t, ip+":2379")
	start := time.Now()
	out, err := inNode(ctx, node, append([]string{kubeboot, "certs", "renew", "all", "--restart"}, args...)...)
	took := time.Since(start)
	t.Logf("kubeboot certs renew all --restart on %s (%s):\n%s", node, took.Round(10*time.Millisecond), out)
	if err != nil {
		t.Fatalf("renew --restart on %s: %v", node, err)
	}
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if !strings.Contains(out, "[restart] "+c+": restarted and healthy") {
			t.Errorf("no line saying %s restarted and healthy", c)
		}
	}
	newAPI, newEtcd := servedCert(t, ip+":6443"), servedCert(t, ip+":2379")
	if bytes.Equal(newAPI, oldAPI) || !bytes.Equal(newAPI, fileCert(t, node, "/etc/kubernetes/pki/apiserver.crt")) {
		t.Error("the API server does not serve the renewed apiserver.crt")
	}
	if bytes.Equal(newEtcd, oldEtcd) || !bytes.Equal(newEtcd, fileCert(t, node, "/etc/kubernetes/pki/etcd/server.crt")) {
		t.Error("etcd does not serve the renewed etcd/server.crt")
	}
	if out, err := lab(ctx, "kubectl", "get", "--raw", "/readyz"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("API after the restarts: %v %q", err, out)
	}
	t.Logf("FIGURE certs renew all --restart on %s, one control plane: %s", node, took.Round(10*time.Millisecond))
}
