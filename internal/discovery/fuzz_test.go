package discovery

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"kubeboot.dev/kubeboot/internal/clusterinfo"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
	"kubeboot.dev/kubeboot/internal/token"
)

// seedCAs are fixed CA certificates (testdata): an ECDSA cluster CA and an RSA one.
func seedCAs(f *testing.F) (ecdsa, rsa []byte) {
	f.Helper()
	ecdsa, err := os.ReadFile("testdata/ca.crt")
	if err != nil {
		f.Fatal(err)
	}
	rsa, err = os.ReadFile("testdata/front-proxy-ca.crt")
	if err != nil {
		f.Fatal(err)
	}
	return ecdsa, rsa
}

// seedKubeconfigs are cluster-info kubeconfigs as kubeadm and kubeboot publish them, and some that must be refused.
func seedKubeconfigs(f *testing.F) []string {
	f.Helper()
	ec, rsa := seedCAs(f)
	var out []string
	for _, k := range []struct {
		server string
		ca     []byte
	}{
		{"https://10.0.0.10:6443", ec},
		{"https://cp.example:6443", append(append([]byte{}, ec...), rsa...)},
		{"https://[fd00::10]:6443", rsa},
	} {
		b, err := clusterinfo.Kubeconfig(k.server, k.ca)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, string(b))
	}
	two := clientcmdapi.NewConfig()
	two.Clusters["a"] = &clientcmdapi.Cluster{Server: "https://a:6443", CertificateAuthorityData: ec}
	two.Clusters["b"] = &clientcmdapi.Cluster{Server: "https://b:6443", CertificateAuthorityData: rsa}
	b, err := clientcmd.Write(*two)
	if err != nil {
		f.Fatal(err)
	}
	return append(out, string(b),
		"apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: http://10.0.0.10:6443\n",
		"apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: https://10.0.0.10:6443\n    certificate-authority-data: bm90IGEgY2VydA==\n",
		"", "{}", "clusters: 7")
}

// FuzzClusterInfo feeds cluster-info's kubeconfig and JWS signature to the checks a joining node makes. Only the
// signature computed with the token's secret may pass; what passes has one https cluster with its CAs and renders
// back (clusterinfo.Kubeconfig) to the same; no error repeats the token secret.
func FuzzClusterInfo(f *testing.F) {
	tok := token.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	for _, kc := range seedKubeconfigs(f) {
		sig, err := jws.ComputeDetachedSignature(kc, tok.ID, tok.Secret)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kc, sig, tok.Secret)
		f.Add(kc, sig, "guessedguessed00")
		f.Add(kc, "", tok.Secret)
		f.Add(kc, strings.Replace(sig, "..", ".x.", 1), tok.Secret)
	}
	f.Fuzz(func(t *testing.T, content, signature, secret string) {
		tok := token.Token{ID: tok.ID, Secret: secret}
		kc, cas, err := verifyClusterInfo(content, signature, tok, "https://10.0.0.10:6443")
		if err != nil {
			if kc != nil || cas != nil {
				t.Fatalf("verifyClusterInfo returned a kubeconfig and the error %v", err)
			}
			if keyleak.Echoes(err.Error(), secret, content) {
				t.Fatalf("the error repeats the token secret: %v", err)
			}
			return
		}
		want, werr := jws.ComputeDetachedSignature(content, tok.ID, secret)
		if werr != nil || signature != want {
			t.Fatalf("accepted the signature %q; the token's is %q (%v)", signature, want, werr)
		}
		if kc == nil || len(cas) == 0 {
			t.Fatalf("verifyClusterInfo = %v, %d CAs, no error", kc, len(cas))
		}
		c := onlyClusterOf(t, kc)
		again, err := clusterinfo.Kubeconfig(c.Server, c.CertificateAuthorityData)
		if err != nil {
			// clusterinfo is stricter than a joining node (a PEM with other blocks than certificates); that is fine,
			// what kubeboot publishes always passes both.
			return
		}
		kc2, cas2, err := parseClusterInfo(string(again), "rendered again")
		if err != nil {
			t.Fatalf("cluster-info rendered again does not parse: %v\n%s", err, again)
		}
		c2 := onlyClusterOf(t, kc2)
		if c2.Server != c.Server || !bytes.Equal(c2.CertificateAuthorityData, c.CertificateAuthorityData) || len(cas2) != len(cas) {
			t.Fatalf("cluster-info rendered again: server %q, %d CAs; first %q, %d CAs", c2.Server, len(cas2), c.Server, len(cas))
		}
	})
}

func onlyClusterOf(t *testing.T, kc *clientcmdapi.Config) *clientcmdapi.Cluster {
	t.Helper()
	c, err := onlyCluster(kc, "test")
	if err != nil {
		t.Fatalf("a kubeconfig that passed has %v", err)
	}
	return c
}

// FuzzDiscoveryFile feeds `join --discovery-file` kubeconfigs to what reads them before any connection: load,
// exactly one https cluster, file references embedded, CA certificates parsed. What passes must have a CA and
// survive being written as bootstrap-kubelet.conf and read again; no error may repeat the file's credentials.
func FuzzDiscoveryFile(f *testing.F) {
	for _, kc := range seedKubeconfigs(f) {
		f.Add([]byte(kc))
	}
	f.Add([]byte("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://10.0.0.10:6443\n" +
		"    certificate-authority: ca.crt\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user:\n" +
		"    token: abcdef.0123456789abcdef\n    client-key-data: c2VjcmV0LWtleS1kYXRh\n"))
	f.Add([]byte("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://10.0.0.10:6443\n" +
		"    certificate-authority: missing.crt\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user:\n" +
		"    tokenFile: token\n"))
	ca, _ := seedCAs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for name, b := range map[string][]byte{"ca.crt": ca, "token": []byte("abcdef.0123456789abcdef\n"), "discovery.conf": data} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		file := filepath.Join(dir, "discovery.conf")
		kc, err := loadFile(t.Context(), file, "discovery file", nil)
		if err != nil {
			if kc != nil {
				t.Fatalf("loadFile returned a kubeconfig and the error %v", err)
			}
			return
		}
		cluster, err := onlyCluster(kc, "discovery file")
		if err == nil && !referencesOnlyUnder(kc, dir) {
			// The file names files elsewhere on this machine (a device could block the read): not this test's business.
			return
		}
		if err == nil {
			err = embed(kc, cluster, "discovery file")
		}
		var cas int
		if err == nil {
			c, cerr := clusterCAs(cluster, "discovery file")
			err, cas = cerr, len(c)
		}
		if err != nil {
			for _, u := range kc.AuthInfos {
				for _, s := range []string{u.Token, string(u.ClientKeyData), u.Password} {
					if keyleak.Echoes(err.Error(), s) {
						t.Fatalf("the error repeats a credential of the file: %v", err)
					}
				}
			}
			if errors.Is(err, ErrClusterCount) && len(kc.Clusters) == 1 {
				t.Fatalf("one cluster refused as the wrong count: %v", err)
			}
			return
		}
		if cas == 0 || !strings.HasPrefix(cluster.Server, "https://") || cluster.CertificateAuthority != "" {
			t.Fatalf("accepted a cluster with %d CAs, server %q, CA file %q", cas, cluster.Server, cluster.CertificateAuthority)
		}
		out, err := clientcmd.Write(*kc)
		if err != nil {
			t.Fatalf("the discovered kubeconfig cannot be written: %v", err)
		}
		again, err := clientcmd.Load(out)
		if err != nil {
			t.Fatalf("the discovered kubeconfig, written, does not load: %v\n%s", err, out)
		}
		c2, err := onlyCluster(again, "written")
		if err != nil || c2.Server != cluster.Server || !bytes.Equal(c2.CertificateAuthorityData, cluster.CertificateAuthorityData) {
			t.Fatalf("the discovered kubeconfig, written and loaded again: %+v, %v; want %+v", c2, err, cluster)
		}
	})
}

// referencesOnlyUnder reports whether every file the kubeconfig names is under dir.
func referencesOnlyUnder(kc *clientcmdapi.Config, dir string) bool {
	var files []string
	for _, c := range kc.Clusters {
		files = append(files, c.CertificateAuthority)
	}
	for _, u := range kc.AuthInfos {
		files = append(files, u.ClientCertificate, u.ClientKey, u.TokenFile)
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if rel, err := filepath.Rel(dir, f); err != nil || strings.HasPrefix(rel, "..") || !filepath.IsAbs(f) {
			return false
		}
	}
	return true
}
