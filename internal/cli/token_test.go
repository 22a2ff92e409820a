package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"kubeboot.dev/kubeboot/internal/token"
)

// tokenFixture runs `kubeboot token ...` against a fake clientset.
type tokenFixture struct {
	client     *fake.Clientset
	now        time.Time
	clientPath string // the kubeconfig path the command built its client from
	clients    int    // how many clients were built
}

func (f *tokenFixture) deps() tokenDeps {
	return tokenDeps{
		client: func(path string) (kubernetes.Interface, error) {
			f.clientPath = path
			f.clients++
			return f.client, nil
		},
		now:      func() time.Time { return f.now },
		generate: func() (token.Token, error) { return token.Parse("genera.0123456789abcdef") },
		env:      testConfigDeps(&fakePuller{}).env,
	}
}

func (f *tokenFixture) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := &cobra.Command{Use: "kubeboot", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newTokenCmdWith(&out, &errb, f.deps()))
	root.SetArgs(append([]string{"token"}, args...))
	err = root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func bootstrapSecret(id, secret string, data map[string]string) *corev1.Secret {
	d := map[string][]byte{"token-id": []byte(id), "token-secret": []byte(secret)}
	for k, v := range data {
		d[k] = []byte(v)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "bootstrap-token-" + id},
		Type:       "bootstrap.kubernetes.io/token",
		Data:       d,
	}
}

func secretData(t *testing.T, c *fake.Clientset, name string) map[string]string {
	t.Helper()
	s, err := c.CoreV1().Secrets("kube-system").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func TestTokenCreate(t *testing.T) {
	t.Run("explicit token, defaults", func(t *testing.T) {
		f := &tokenFixture{client: fake.NewClientset()}
		before := time.Now().UTC().Truncate(time.Second)
		out, errs, err := f.run(t, "create", "abcdef.0123456789abcdef", "--description", "for node 7")
		after := time.Now().UTC()
		if err != nil {
			t.Fatal(err)
		}
		if out != "abcdef.0123456789abcdef\n" || errs != "" {
			t.Errorf("stdout %q, stderr %q", out, errs)
		}
		d := secretData(t, f.client, "bootstrap-token-abcdef")
		exp, err := time.Parse(time.RFC3339, d["expiration"])
		if err != nil || exp.Before(before.Add(24*time.Hour)) || exp.After(after.Add(24*time.Hour)) {
			t.Errorf("expiration %q is not 24h from now (%v)", d["expiration"], err)
		}
		delete(d, "expiration")
		want := map[string]string{
			"token-id": "abcdef", "token-secret": "0123456789abcdef", "description": "for node 7",
			"usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
			"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
		}
		if !mapsEqual(d, want) {
			t.Errorf("Secret data %v, want %v", d, want)
		}
	})
	t.Run("generated, never expires, signing only", func(t *testing.T) {
		f := &tokenFixture{client: fake.NewClientset()}
		out, _, err := f.run(t, "create", "--ttl", "0", "--usages", "signing")
		if err != nil {
			t.Fatal(err)
		}
		if out != "genera.0123456789abcdef\n" {
			t.Errorf("stdout %q", out)
		}
		want := map[string]string{"token-id": "genera", "token-secret": "0123456789abcdef", "usage-bootstrap-signing": "true"}
		if d := secretData(t, f.client, "bootstrap-token-genera"); !mapsEqual(d, want) {
			t.Errorf("Secret data %v, want %v", d, want)
		}
	})

	refusals := []struct {
		name        string
		args        []string
		existing    *corev1.Secret
		want        string
		builtClient bool
	}{
		{name: "duplicate ID", args: []string{"create", "abcdef.0123456789abcdef"},
			existing:    bootstrapSecret("abcdef", "ffffffffffffffff", nil),
			want:        `creating bootstrap token "abcdef": a token with this ID already exists; delete it first or pick another token`,
			builtClient: true},
		{name: "no dot", args: []string{"create", "abcdef0123456789abcdef"},
			want: "TOKEN argument: malformed bootstrap token (22 characters): there is no dot between the ID and the secret; a token has the form [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef"},
		{name: "upper case secret", args: []string{"create", "abcdef.0123456789ABCDEF"},
			want: "TOKEN argument: malformed bootstrap token (23 characters): the secret after the dot must be 16 lowercase letters or digits; a token has the form [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef"},
		{name: "groups without authentication", args: []string{"create", "abcdef.0123456789abcdef", "--usages", "signing", "--groups", "system:bootstrappers:x"},
			want: `bootstrap token "abcdef": groups: extra groups need the usage "authentication"`},
		{name: "negative ttl", args: []string{"create", "abcdef.0123456789abcdef", "--ttl", "-1h"},
			want: `bootstrap token "abcdef": ttl: -1h0m0s is negative; use 0 for a token that never expires`},
		{name: "certificate key alone", args: []string{"create", "--certificate-key", strings.Repeat("ab", 32)},
			want: "--certificate-key needs --print-join-command"},
		{name: "certificate key malformed", args: []string{"create", "--print-join-command", "--certificate-key", "secretish"},
			want: "--certificate-key: not 64 hexadecimal characters (got 9 characters)"},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			var objs []runtime.Object
			if c.existing != nil {
				objs = append(objs, c.existing)
			}
			f := &tokenFixture{client: fake.NewClientset(objs...)}
			out, _, err := f.run(t, c.args...)
			if err == nil || err.Error() != c.want {
				t.Fatalf("error = %v\nwant    %s", err, c.want)
			}
			if out != "" {
				t.Errorf("printed %q on a failure", out)
			}
			if (f.clients > 0) != c.builtClient {
				t.Errorf("built %d clients; a malformed request must be refused before reaching the cluster", f.clients)
			}
			if c.existing != nil {
				if d := secretData(t, f.client, c.existing.Name); d["token-secret"] != "ffffffffffffffff" {
					t.Error("the existing token was overwritten")
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// newCA returns a self-signed CA certificate as PEM, and the discovery hash computed here, independently of
// package pki: sha256 over the DER SubjectPublicKeyInfo.
func newCA(t *testing.T) (caPEM []byte, hash string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "sha256:" + hex.EncodeToString(sum[:])
}

func kubeconfigYAML(server, caLine string) string {
	return `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: ` + server + `
` + caLine + `
contexts:
- name: kubernetes-admin@kubernetes
  context: {cluster: kubernetes, user: kubernetes-admin}
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user: {token: not-used}
`
}

func TestTokenCreatePrintJoinCommand(t *testing.T) {
	caPEM, hash := newCA(t)
	otherCA, otherHash := newCA(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	inline := "    certificate-authority-data: " + b64(caPEM)
	clusterInfo := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"},
		Data:       map[string]string{"kubeconfig": kubeconfigYAML("https://10.0.0.1:6443", "    certificate-authority-data: "+b64(otherCA))},
	}
	key := strings.Repeat("0f", 32)
	cases := []struct {
		name, kubeconfig string
		args             []string
		want             string
	}{
		{name: "worker, CA inline", kubeconfig: kubeconfigYAML("https://10.0.0.1:6443", inline),
			want: "kubeboot join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash " + hash + "\n"},
		{name: "control plane", kubeconfig: kubeconfigYAML("https://cp.example:6443", inline), args: []string{"--certificate-key", key},
			want: "kubeboot join cp.example:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash " + hash + " --control-plane --certificate-key " + key + "\n"},
		{name: "CA as a file relative to the kubeconfig", kubeconfig: kubeconfigYAML("https://10.0.0.1:6443", "    certificate-authority: ca.crt"),
			want: "kubeboot join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash " + hash + "\n"},
		{name: "no CA in the kubeconfig: cluster-info", kubeconfig: kubeconfigYAML("https://[fd00::1]:6443", ""),
			want: "kubeboot join [fd00::1]:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash " + otherHash + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".conf")
			if err := os.WriteFile(path, []byte(c.kubeconfig), 0o600); err != nil {
				t.Fatal(err)
			}
			f := &tokenFixture{client: fake.NewClientset(clusterInfo)}
			args := append([]string{"create", "abcdef.0123456789abcdef", "--print-join-command", "--kubeconfig", path}, c.args...)
			out, errs, err := f.run(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if out != c.want || errs != "" {
				t.Errorf("stdout %q\nwant   %q\nstderr %q", out, c.want, errs)
			}
			if f.clientPath != path {
				t.Errorf("client built from %q, want %q", f.clientPath, path)
			}
			secretData(t, f.client, "bootstrap-token-abcdef")
		})
	}
	t.Run("no CA anywhere: no token is left behind", func(t *testing.T) {
		path := filepath.Join(dir, "noca.conf")
		if err := os.WriteFile(path, []byte(kubeconfigYAML("https://10.0.0.1:6443", "")), 0o600); err != nil {
			t.Fatal(err)
		}
		f := &tokenFixture{client: fake.NewClientset()}
		_, _, err := f.run(t, "create", "abcdef.0123456789abcdef", "--print-join-command", "--kubeconfig", path)
		want := "kubeconfig " + path + ` has no CA, and reading ConfigMap kube-public/cluster-info failed: configmaps "cluster-info" not found`
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		if list, _ := f.client.CoreV1().Secrets("kube-system").List(t.Context(), metav1.ListOptions{}); len(list.Items) != 0 {
			t.Errorf("a token was created although no join command could be printed")
		}
	})
}

func TestTokenList(t *testing.T) {
	now := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	secrets := []runtime.Object{
		bootstrapSecret("abcdef", "0123456789abcdef", map[string]string{
			"expiration": "2025-03-05T11:00:00Z", "description": "for node 7",
			"usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
			"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
		}),
		bootstrapSecret("forevr", "aaaaaaaaaaaaaaaa", map[string]string{"usage-bootstrap-signing": "true"}),
		// Broken: named for another ID. Reported on stderr, never with its secret.
		func() *corev1.Secret {
			s := bootstrapSecret("zzzzzz", "cccccccccccccccc", nil)
			s.Name = "bootstrap-token-yyyyyy"
			return s
		}(),
	}
	t.Run("text", func(t *testing.T) {
		f := &tokenFixture{client: fake.NewClientset(secrets...), now: now}
		out, errs, err := f.run(t, "list")
		if err != nil {
			t.Fatal(err)
		}
		want := `TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION                                                EXTRA GROUPS
abcdef.0123456789abcdef   23h         2025-03-05T11:00:00Z   authentication,signing   for node 7                                                 system:bootstrappers:kubeadm:default-node-token
forevr.aaaaaaaaaaaaaaaa   <forever>   <never>   signing                  <none>                                                     <none>
`
		if out != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
		}
		wantErr := `skipped: Secret kube-system/bootstrap-token-yyyyyy: holds token ID "zzzzzz", so it must be named bootstrap-token-zzzzzz` + "\n"
		if errs != wantErr || strings.Contains(errs, "cccccccccccccccc") {
			t.Errorf("stderr %q\nwant   %q", errs, wantErr)
		}
	})
	t.Run("json", func(t *testing.T) {
		f := &tokenFixture{client: fake.NewClientset(secrets[:2]...), now: now}
		out, _, err := f.run(t, "list", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		want := `{
    "kind": "BootstrapToken",
    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
    "token": "abcdef.0123456789abcdef",
    "description": "for node 7",
    "expires": "2025-03-05T11:00:00Z",
    "usages": [
        "authentication",
        "signing"
    ],
    "groups": [
        "system:bootstrappers:kubeadm:default-node-token"
    ]
}
{
    "kind": "BootstrapToken",
    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
    "token": "forevr.aaaaaaaaaaaaaaaa",
    "usages": [
        "signing"
    ]
}
`
		if out != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		f := &tokenFixture{client: fake.NewClientset(secrets[:2]...), now: now}
		out, _, err := f.run(t, "list", "--output", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		want := `apiVersion: output.kubeadm.k8s.io/v1alpha3
description: for node 7
expires: "2025-03-05T11:00:00Z"
groups:
- system:bootstrappers:kubeadm:default-node-token
kind: BootstrapToken
token: abcdef.0123456789abcdef
usages:
- authentication
- signing
---
apiVersion: output.kubeadm.k8s.io/v1alpha3
kind: BootstrapToken
token: forevr.aaaaaaaaaaaaaaaa
usages:
- signing
`
		if out != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		f := &tokenFixture{client: fake.NewClientset()}
		_, _, err := f.run(t, "list", "-o", "wide")
		if err == nil || err.Error() != `--output "wide": must be one of text, json, yaml` {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestTokenDelete(t *testing.T) {
	existing := func() []runtime.Object {
		return []runtime.Object{bootstrapSecret("abcdef", "0123456789abcdef", nil), bootstrapSecret("123456", "aaaaaaaaaaaaaaaa", nil)}
	}
	left := func(t *testing.T, c *fake.Clientset) []string {
		list, err := c.CoreV1().Secrets("kube-system").List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range list.Items {
			names = append(names, s.Name)
		}
		return names
	}
	cases := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
		left    []string
	}{
		{name: "by ID and by whole token", args: []string{"abcdef", "123456.aaaaaaaaaaaaaaaa"},
			wantOut: "bootstrap token \"abcdef\" deleted\nbootstrap token \"123456\" deleted\n"},
		{name: "missing one, the others still go", args: []string{"zzzzzz", "abcdef"},
			wantOut: "bootstrap token \"abcdef\" deleted\n",
			wantErr: `deleting bootstrap token "zzzzzz": not found (no Secret kube-system/bootstrap-token-zzzzzz); ` + "`kubeboot token list` shows the tokens that exist",
			left:    []string{"bootstrap-token-123456"}},
		{name: "malformed: nothing deleted", args: []string{"abcdef", "abc.def"},
			wantErr: "argument 2: malformed bootstrap token: want a token ID of the form [a-z0-9]{6} or a token of the form [a-z0-9]{6}.[a-z0-9]{16} (got 7 characters); nothing was deleted",
			left:    []string{"bootstrap-token-123456", "bootstrap-token-abcdef"}},
		{name: "no argument",
			wantErr: "missing argument: name the tokens to delete, each as [a-z0-9]{6}.[a-z0-9]{16} or [a-z0-9]{6}",
			left:    []string{"bootstrap-token-123456", "bootstrap-token-abcdef"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &tokenFixture{client: fake.NewClientset(existing()...)}
			out, _, err := f.run(t, append([]string{"delete"}, c.args...)...)
			if c.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if c.wantErr != "" && (err == nil || err.Error() != c.wantErr) {
				t.Fatalf("error = %v\nwant    %s", err, c.wantErr)
			}
			if c.wantErr != "" && strings.Contains(c.wantErr, "not found") && !errors.Is(err, token.ErrNotFound) {
				t.Error("error does not wrap token.ErrNotFound")
			}
			if out != c.wantOut {
				t.Errorf("stdout %q, want %q", out, c.wantOut)
			}
			if got := left(t, f.client); strings.Join(got, ",") != strings.Join(c.left, ",") {
				t.Errorf("left %v, want %v", got, c.left)
			}
		})
	}
}

func TestTokenGenerate(t *testing.T) {
	var out bytes.Buffer
	cmd := newTokenCmdWith(&out, &out, hostTokenDeps())
	cmd.SetArgs([]string{"generate"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}\n$`).MatchString(out.String()) {
		t.Errorf("generated %q", out.String())
	}
}

func TestKubeconfigPath(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists.conf")
	if err := os.WriteFile(existing, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.conf")
	t.Setenv("KUBECONFIG", missing+string(os.PathListSeparator)+existing)
	if got := kubeconfigPath(""); got != existing {
		t.Errorf("KUBECONFIG: got %q, want the first existing file %q", got, existing)
	}
	if got := kubeconfigPath("/x.conf"); got != "/x.conf" {
		t.Errorf("the flag must win: got %q", got)
	}
	t.Setenv("KUBECONFIG", missing)
	want := missing // no file exists: the first name
	if _, err := os.Stat("/etc/kubernetes/admin.conf"); err == nil {
		want = "/etc/kubernetes/admin.conf"
	}
	if got := kubeconfigPath(""); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f := &tokenFixture{client: fake.NewClientset()}
	t.Setenv("KUBECONFIG", existing)
	if _, _, err := f.run(t, "list"); err != nil {
		t.Fatal(err)
	}
	if f.clientPath != existing {
		t.Errorf("token list used %q, want $KUBECONFIG %q", f.clientPath, existing)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
