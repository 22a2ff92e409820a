package copycerts

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

const certDir = "/etc/kubernetes/pki"

func testConfig() *config.Init {
	return &config.Init{
		Init: config.InitConfiguration{
			NodeRegistration: config.NodeRegistrationOptions{Name: "cp-1"},
			LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "192.168.10.5", BindPort: 6443},
		},
		Cluster: config.ClusterConfiguration{
			Etcd:                config.Etcd{Local: &config.LocalEtcd{DataDir: config.DefaultEtcdDataDir}},
			Networking:          config.Networking{ServiceSubnet: "10.96.0.0/12", DNSDomain: "cluster.local"},
			CertificatesDir:     certDir,
			EncryptionAlgorithm: config.EncryptionAlgorithmECDSAP256,
		},
	}
}

// cluster makes the certificate tree of a first control-plane node under a temporary root.
func cluster(t *testing.T) nodefs.FS {
	t.Helper()
	fsys := nodefs.FS{Root: t.TempDir()}
	cfg := testConfig()
	if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	return fsys
}

// fakeClient is a fake clientset that gives created objects a UID, as the API server does.
func fakeClient(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	n := 0
	c.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if o, ok := a.(k8stesting.CreateAction).GetObject().(metav1.Object); ok && o.GetUID() == "" {
			n++
			o.SetUID(types.UID("uid-" + string(rune('0'+n))))
		}
		return false, nil, nil
	})
	return c
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := NewCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func getSecret(t *testing.T, c *fake.Clientset, name string) *corev1.Secret {
	t.Helper()
	s, err := c.CoreV1().Secrets("kube-system").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listFiles returns every regular file under fsys's root, as node paths.
func listFiles(t *testing.T, fsys nodefs.FS) []string {
	t.Helper()
	files, err := fsys.List("/")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func mode(t *testing.T, fsys nodefs.FS, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(fsys.Path(p))
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestNewCertificateKey(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	for _, k := range []string{a, b} {
		if len(k) != 64 || strings.Trim(k, "0123456789abcdef") != "" {
			t.Fatalf("key %q is not 64 lower-case hex digits", k)
		}
		if raw, err := ParseKey(k); err != nil || len(raw) != 32 {
			t.Fatalf("ParseKey(%q) = %d bytes, %v", k, len(raw), err)
		}
	}
	if a == b {
		t.Fatal("two keys are equal")
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		name, key, want string
	}{
		{"empty", "", "malformed certificate key: it must be 64 hexadecimal characters (32 random bytes), got 0 characters; `kubeboot certs certificate-key` makes one"},
		{"short", strings.Repeat("a", 63), "malformed certificate key: it must be 64 hexadecimal characters (32 random bytes), got 63 characters; `kubeboot certs certificate-key` makes one"},
		{"long", strings.Repeat("a", 65), "malformed certificate key: it must be 64 hexadecimal characters (32 random bytes), got 65 characters; `kubeboot certs certificate-key` makes one"},
		{"not hex", strings.Repeat("g", 64), "malformed certificate key: it must be 64 hexadecimal characters (0-9, a-f); `kubeboot certs certificate-key` makes one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.key)
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
	if _, err := ParseKey(strings.Repeat("AB", 32)); err != nil {
		t.Errorf("upper-case hex is accepted by kubeadm too: %v", err)
	}
}

// sealSpec and openSpec are AES-GCM as kubeadm's format is described, written independently of Encrypt and
// Decrypt: AES with the 32-byte key, GCM with the standard 12-byte nonce, the nonce prepended to the
// ciphertext||tag, no additional data.
func sealSpec(t *testing.T, plain, key []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 12)
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		t.Fatal(err)
	}
	return append(nonce, gcm.Seal(nil, nonce, plain, nil)...)
}

func openSpec(t *testing.T, sealed, key []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gcm.Open(nil, sealed[:12], sealed[12:], nil)
	if err != nil {
		t.Fatalf("independent decryption failed: %v", err)
	}
	return plain
}

func TestEncryptionIsKubeadmsFormat(t *testing.T) {
	key, _ := hex.DecodeString(mustKey(t))
	plain := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

	t.Run("ours, opened by the spec", func(t *testing.T) {
		sealed, err := Encrypt(plain, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 12+len(plain)+16 {
			t.Fatalf("sealed length %d, want nonce 12 + %d + tag 16", len(sealed), len(plain))
		}
		if got := openSpec(t, sealed, key); string(got) != string(plain) {
			t.Fatalf("decrypted %q", got)
		}
		again, _ := Encrypt(plain, key)
		if string(again[:12]) == string(sealed[:12]) {
			t.Fatal("two encryptions used the same nonce")
		}
	})
	t.Run("the spec's, opened by ours", func(t *testing.T) {
		got, err := Decrypt(sealSpec(t, plain, key), key)
		if err != nil || string(got) != string(plain) {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		other, _ := hex.DecodeString(mustKey(t))
		if _, err := Decrypt(sealSpec(t, plain, key), other); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("error = %v, want ErrWrongKey", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		_, err := Decrypt(make([]byte, 27), key)
		if want := "27 bytes is too short for a 12-byte nonce and a 16-byte tag"; err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %s", err, want)
		}
	})
}

func TestUploadStoresKubeadmsSecret(t *testing.T) {
	fsys := cluster(t)
	c := fakeClient()
	key := mustKey(t)
	rawKey, _ := hex.DecodeString(key)
	before := time.Now().UTC().Truncate(time.Second)
	if err := Upload(t.Context(), c, fsys, certDir, key, nil); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()

	s := getSecret(t, c, "kubeadm-certs")
	wantKeys := []string{"ca.crt", "ca.key", "etcd-ca.crt", "etcd-ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"}
	if got := slices.Sorted(maps.Keys(s.Data)); !slices.Equal(got, wantKeys) {
		t.Fatalf("Secret keys = %v, want %v", got, wantKeys)
	}
	files := map[string]string{"ca.crt": "ca.crt", "ca.key": "ca.key", "etcd-ca.crt": "etcd/ca.crt", "etcd-ca.key": "etcd/ca.key",
		"front-proxy-ca.crt": "front-proxy-ca.crt", "front-proxy-ca.key": "front-proxy-ca.key", "sa.key": "sa.key", "sa.pub": "sa.pub"}
	for k, f := range files {
		want, err := fsys.ReadFile(certDir + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if got := openSpec(t, s.Data[k], rawKey); string(got) != string(want) {
			t.Errorf("%s does not decrypt to %s", k, f)
		}
	}

	if len(s.OwnerReferences) != 1 {
		t.Fatalf("owner references = %+v", s.OwnerReferences)
	}
	ref := s.OwnerReferences[0]
	if !strings.HasPrefix(ref.Name, "bootstrap-token-") || ref.APIVersion != "v1" || ref.Kind != "Secret" ||
		ref.Controller == nil || !*ref.Controller || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Fatalf("owner reference = %+v", ref)
	}
	tok := getSecret(t, c, ref.Name)
	if ref.UID == "" || ref.UID != tok.UID {
		t.Errorf("owner UID %q, token UID %q", ref.UID, tok.UID)
	}
	if tok.Type != "bootstrap.kubernetes.io/token" {
		t.Errorf("token type %q", tok.Type)
	}
	wantTokenKeys := []string{"description", "expiration", "token-id", "token-secret"}
	if got := slices.Sorted(maps.Keys(tok.Data)); !slices.Equal(got, wantTokenKeys) {
		t.Errorf("token keys = %v, want %v (kubeadm's cert token has no usages and no groups)", got, wantTokenKeys)
	}
	if got := string(tok.Data["description"]); got != "Proxy for managing TTL for the kubeadm-certs secret" {
		t.Errorf("description %q", got)
	}
	exp, err := time.Parse(time.RFC3339, string(tok.Data["expiration"]))
	if err != nil {
		t.Fatal(err)
	}
	if exp.Before(before.Add(2*time.Hour)) || exp.After(after.Add(2*time.Hour)) {
		t.Errorf("expiration %v is not 2h after the upload (%v..%v)", exp, before, after)
	}

	role, err := c.RbacV1().Roles("kube-system").Get(t.Context(), "kubeadm:kubeadm-certs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRule := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"kubeadm-certs"}}
	if len(role.Rules) != 1 || !equalRule(role.Rules[0], wantRule) {
		t.Errorf("role rules = %+v", role.Rules)
	}
	rb, err := c.RbacV1().RoleBindings("kube-system").Get(t.Context(), "kubeadm:kubeadm-certs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "kubeadm:kubeadm-certs"}) ||
		len(rb.Subjects) != 1 || rb.Subjects[0] != (rbacv1.Subject{Kind: "Group", Name: "system:bootstrappers:kubeadm:default-node-token"}) {
		t.Errorf("role binding = %+v %+v", rb.RoleRef, rb.Subjects)
	}

	t.Run("a second upload moves ownership to a new token", func(t *testing.T) {
		if err := Upload(t.Context(), c, fsys, certDir, key, nil); err != nil {
			t.Fatal(err)
		}
		s2 := getSecret(t, c, "kubeadm-certs")
		if s2.OwnerReferences[0].Name == ref.Name {
			t.Fatalf("owner is still %s", ref.Name)
		}
		getSecret(t, c, s2.OwnerReferences[0].Name)
	})
}

func equalRule(a, b rbacv1.PolicyRule) bool {
	return slices.Equal(a.Verbs, b.Verbs) && slices.Equal(a.APIGroups, b.APIGroups) &&
		slices.Equal(a.Resources, b.Resources) && slices.Equal(a.ResourceNames, b.ResourceNames)
}

func TestDownloadWritesTheSharedFiles(t *testing.T) {
	src := cluster(t)
	c := fakeClient()
	key := mustKey(t)
	if err := Upload(t.Context(), c, src, certDir, key, nil); err != nil {
		t.Fatal(err)
	}
	// A transient API error on the way is retried.
	failed := false
	c.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failed {
			return false, nil, nil
		}
		failed = true
		return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
	})

	dst := nodefs.FS{Root: t.TempDir()}
	if err := Download(t.Context(), c, dst, certDir, key, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/etcd/ca.key",
		"/etc/kubernetes/pki/front-proxy-ca.crt", "/etc/kubernetes/pki/front-proxy-ca.key", "/etc/kubernetes/pki/sa.key", "/etc/kubernetes/pki/sa.pub"}
	if got := listFiles(t, dst); !slices.Equal(got, want) {
		t.Fatalf("files written = %v\nwant %v", got, want)
	}
	for _, p := range want {
		a, _ := src.ReadFile(p)
		b, _ := dst.ReadFile(p)
		if string(a) != string(b) {
			t.Errorf("%s differs from the uploader's", p)
		}
		wantMode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".key") {
			wantMode = 0o600
		}
		if m := mode(t, dst, p); m != wantMode {
			t.Errorf("%s mode %o, want %o", p, m, wantMode)
		}
	}

	t.Run("again over the same files", func(t *testing.T) {
		if err := os.Chmod(dst.Path("/etc/kubernetes/pki/ca.key"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Download(t.Context(), c, dst, certDir, key, nil); err != nil {
			t.Fatal(err)
		}
		if m := mode(t, dst, "/etc/kubernetes/pki/ca.key"); m != 0o600 {
			t.Errorf("ca.key mode %o after a second download", m)
		}
	})
}

// externalEtcdFiles writes an external etcd CA and client pair at the paths a ClusterConfiguration names.
func externalEtcdFiles(t *testing.T, fsys nodefs.FS, ext *config.ExternalEtcd) {
	t.Helper()
	src := pki.SystemSource()
	ca, err := pki.NewCA(src, pki.Request{CommonName: "external-etcd-ca", IsCA: true, Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := pki.ParseCA(ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.NewSignedCert(src, parsed, pki.Request{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string][]byte{ext.CAFile: ca.Cert, ext.CertFile: leaf.Cert, ext.KeyFile: leaf.Key} {
		if err := fsys.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExternalEtcd(t *testing.T) {
	ext := &config.ExternalEtcd{
		Endpoints: []string{"https://10.0.0.9:2379"},
		CAFile:    "/etc/etcd-client/ca.pem", CertFile: "/etc/etcd-client/client.pem", KeyFile: "/etc/etcd-client/client-key.pem",
	}
	t.Run("client files travel to their configured paths", func(t *testing.T) {
		src := cluster(t)
		externalEtcdFiles(t, src, ext)
		c, key := fakeClient(), mustKey(t)
		if err := Upload(t.Context(), c, src, certDir, key, ext); err != nil {
			t.Fatal(err)
		}
		wantKeys := []string{"ca.crt", "ca.key", "external-etcd-ca.crt", "external-etcd.crt", "external-etcd.key",
			"front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"}
		if got := slices.Sorted(maps.Keys(getSecret(t, c, "kubeadm-certs").Data)); !slices.Equal(got, wantKeys) {
			t.Fatalf("Secret keys = %v, want %v", got, wantKeys)
		}
		dst := nodefs.FS{Root: t.TempDir()}
		if err := Download(t.Context(), c, dst, certDir, key, ext); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{ext.CAFile, ext.CertFile, ext.KeyFile} {
			a, _ := src.ReadFile(p)
			b, err := dst.ReadFile(p)
			if err != nil || string(a) != string(b) {
				t.Errorf("%s: %v, or it differs", p, err)
			}
		}
		if m := mode(t, dst, ext.KeyFile); m != 0o600 {
			t.Errorf("%s mode %o", ext.KeyFile, m)
		}
		if m := mode(t, dst, ext.CAFile); m != 0o644 {
			t.Errorf("%s mode %o", ext.CAFile, m)
		}
		if dst.Exists(certDir + "/etcd/ca.crt") {
			t.Error("the stacked etcd CA was written for an external etcd")
		}
	})
	t.Run("files the uploader lacks are stored empty and not written", func(t *testing.T) {
		src := cluster(t) // no external etcd client files: etcd without TLS
		c, key := fakeClient(), mustKey(t)
		if err := Upload(t.Context(), c, src, certDir, key, ext); err != nil {
			t.Fatal(err)
		}
		s := getSecret(t, c, "kubeadm-certs")
		for _, k := range []string{"external-etcd-ca.crt", "external-etcd.crt", "external-etcd.key"} {
			if v, ok := s.Data[k]; !ok || len(v) != 0 {
				t.Errorf("%s = %d bytes, present %v; want present and empty", k, len(v), ok)
			}
		}
		dst := nodefs.FS{Root: t.TempDir()}
		if err := Download(t.Context(), c, dst, certDir, key, ext); err != nil {
			t.Fatal(err)
		}
		if got := len(listFiles(t, dst)); got != 6 {
			t.Errorf("%d files written, want the 6 cluster files", got)
		}
	})
}

// TestDownloadReadsAnIndependentlyEncryptedSecret builds kubeadm-certs by hand from the format's description,
// as upstream kubeadm would store it, and downloads it.
func TestDownloadReadsAnIndependentlyEncryptedSecret(t *testing.T) {
	src := cluster(t)
	key := mustKey(t)
	rawKey, _ := hex.DecodeString(key)
	data := map[string][]byte{}
	for k, f := range map[string]string{"ca.crt": "ca.crt", "ca.key": "ca.key", "etcd-ca.crt": "etcd/ca.crt", "etcd-ca.key": "etcd/ca.key",
		"front-proxy-ca.crt": "front-proxy-ca.crt", "front-proxy-ca.key": "front-proxy-ca.key", "sa.key": "sa.key", "sa.pub": "sa.pub"} {
		plain, err := src.ReadFile(certDir + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		data[k] = sealSpec(t, plain, rawKey)
	}
	c := fakeClient(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-certs"}, Data: data})
	dst := nodefs.FS{Root: t.TempDir()}
	if err := Download(t.Context(), c, dst, certDir, key, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "etcd/ca.crt", "sa.pub"} {
		a, _ := src.ReadFile(certDir + "/" + f)
		b, _ := dst.ReadFile(certDir + "/" + f)
		if string(a) != string(b) {
			t.Errorf("%s differs", f)
		}
	}
}

func TestDownloadRefusesBeforeWriting(t *testing.T) {
	src := cluster(t)
	key := mustKey(t)
	rawKey, _ := hex.DecodeString(key)
	uploaded := fakeClient()
	if err := Upload(t.Context(), uploaded, src, certDir, key, nil); err != nil {
		t.Fatal(err)
	}
	good := getSecret(t, uploaded, "kubeadm-certs")
	otherCA := cluster(t) // a second cluster: its CA key does not belong to the first one's certificate
	otherCAKey, _ := otherCA.ReadFile(certDir + "/ca.key")

	withData := func(edit func(map[string][]byte)) *corev1.Secret {
		s := good.DeepCopy()
		s.OwnerReferences = nil
		edit(s.Data)
		return s
	}
	const reupload = "re-upload with `kubeboot init phase upload-certs --upload-certs` on a control-plane node"
	tests := []struct {
		name   string
		secret *corev1.Secret // nil: no Secret
		key    string
		ext    *config.ExternalEtcd
		want   string
		is     error
	}{
		{
			name: "wrong key", secret: withData(func(map[string][]byte) {}), key: mustKey(t),
			want: "the certificate key does not decrypt kubeadm-certs: use the key printed by init --upload-certs, or " + reupload,
			is:   ErrWrongKey,
		},
		{
			name: "altered value", key: key,
			secret: withData(func(d map[string][]byte) { d["sa.key"][20] ^= 1 }),
			want:   "the certificate key does not decrypt kubeadm-certs: use the key printed by init --upload-certs, or " + reupload,
			is:     ErrWrongKey,
		},
		{
			name: "no Secret (expired)", key: key,
			want: "Secret kube-system/kubeadm-certs not found: it expires 2h after upload; " + reupload,
			is:   ErrSecretNotFound,
		},
		{
			name: "malformed key", secret: withData(func(map[string][]byte) {}), key: key[:10],
			want: "malformed certificate key: it must be 64 hexadecimal characters (32 random bytes), got 10 characters; `kubeboot certs certificate-key` makes one",
			is:   ErrMalformedKey,
		},
		{
			name: "uploaded for external etcd", key: key,
			secret: withData(func(d map[string][]byte) { delete(d, "etcd-ca.crt"); delete(d, "etcd-ca.key") }),
			want:   `Secret kube-system/kubeadm-certs has no key "etcd-ca.crt", which a cluster with stacked etcd needs: it was uploaded for a different etcd setup; ` + reupload,
		},
		{
			name: "CA key of another cluster", key: key,
			secret: withData(func(d map[string][]byte) { d["ca.key"] = sealSpec(t, otherCAKey, rawKey) }),
			want:   "Secret kube-system/kubeadm-certs: ca.crt and ca.key: the private key does not belong to the certificate; " + reupload,
		},
		{
			name: "not PEM", key: key,
			secret: withData(func(d map[string][]byte) { d["front-proxy-ca.crt"] = sealSpec(t, []byte("hello"), rawKey) }),
			want:   `Secret kube-system/kubeadm-certs key "front-proxy-ca.crt": not a PEM certificate: data does not contain any valid RSA or ECDSA certificates; ` + reupload,
		},
		{
			name: "too short to be a value", key: key,
			secret: withData(func(d map[string][]byte) { d["ca.crt"] = []byte("short") }),
			want:   `Secret kube-system/kubeadm-certs key "ca.crt": 5 bytes is too short for a 12-byte nonce and a 16-byte tag; ` + reupload,
		},
		{
			name: "external etcd file without a configured path", key: key,
			ext: &config.ExternalEtcd{CAFile: "/etc/etcd/ca.pem"},
			secret: withData(func(d map[string][]byte) {
				d["external-etcd-ca.crt"], d["external-etcd.crt"], d["external-etcd.key"] = d["etcd-ca.crt"], d["ca.crt"], d["ca.key"]
			}),
			want: `Secret kube-system/kubeadm-certs carries "external-etcd.crt" but etcd.external names no file for it; set the file in the ClusterConfiguration`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			if tt.secret != nil {
				objs = append(objs, tt.secret)
			}
			dst := nodefs.FS{Root: t.TempDir()}
			err := Download(t.Context(), fakeClient(objs...), dst, certDir, tt.key, tt.ext)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error is not %v", tt.is)
			}
			if files := listFiles(t, dst); len(files) != 0 {
				t.Errorf("a refused download wrote %v", files)
			}
		})
	}
}

func TestUploadErrors(t *testing.T) {
	t.Run("malformed key: nothing stored", func(t *testing.T) {
		c := fakeClient()
		err := Upload(t.Context(), c, cluster(t), certDir, "abc", nil)
		if !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("error = %v", err)
		}
		if n := len(c.Actions()); n != 0 {
			t.Errorf("%d API calls after a refused upload", n)
		}
	})
	t.Run("unreadable file: no token created", func(t *testing.T) {
		fsys := cluster(t)
		if err := os.Remove(fsys.Path(certDir + "/sa.key")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(fsys.Path(certDir+"/sa.key"), 0o700); err != nil {
			t.Fatal(err)
		}
		c := fakeClient()
		err := Upload(t.Context(), c, fsys, certDir, mustKey(t), nil)
		want := "read /etc/kubernetes/pki/sa.key for kube-system/kubeadm-certs: read " + fsys.Path(certDir+"/sa.key") + ": is a directory"
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		if n := len(c.Actions()); n != 0 {
			t.Errorf("%d API calls after a refused upload", n)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		c := fakeClient()
		c.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "", errors.New("no"))
		})
		err := Upload(t.Context(), c, cluster(t), certDir, mustKey(t), nil)
		if !apierrors.IsForbidden(err) || !strings.HasPrefix(err.Error(), `create the bootstrap token "`) ||
			!strings.HasSuffix(err.Error(), `" that owns kube-system/kubeadm-certs: secrets is forbidden: no`) {
			t.Fatalf("error = %v", err)
		}
	})
}
