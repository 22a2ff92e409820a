package clusterinfo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/cluster-bootstrap/token/jws"

	"kubeboot.dev/kubeboot/internal/token"
)

func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestKubeconfigParsesBack(t *testing.T) {
	ca := testCA(t)
	for _, server := range []string{"https://10.0.0.10:6443", "https://cp.example.internal:443", "https://[fd00::1]:6443"} {
		t.Run(server, func(t *testing.T) {
			b, err := Kubeconfig(server, ca)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := clientcmd.Load(b)
			if err != nil {
				t.Fatalf("clientcmd.Load: %v\n%s", err, b)
			}
			if len(cfg.Clusters) != 1 {
				t.Fatalf("%d clusters, want exactly 1", len(cfg.Clusters))
			}
			cl, ok := cfg.Clusters[""]
			if !ok {
				t.Fatalf("the cluster is not named \"\": %v", cfg.Clusters)
			}
			if cl.Server != server || string(cl.CertificateAuthorityData) != string(ca) {
				t.Errorf("server = %q, CA equal = %v", cl.Server, string(cl.CertificateAuthorityData) == string(ca))
			}
			if len(cfg.AuthInfos) != 0 || len(cfg.Contexts) != 0 || cfg.CurrentContext != "" {
				t.Errorf("cluster-info must carry no credentials or contexts: %+v", cfg)
			}
		})
	}
}

func TestKubeconfigRejectsBadInput(t *testing.T) {
	ca := testCA(t)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("x")})
	tests := []struct {
		name, server string
		ca           []byte
		wantErr      string
	}{
		{"http", "http://10.0.0.10:6443", ca, `cluster-info: server "http://10.0.0.10:6443" is not an https://host[:port] URL; check controlPlaneEndpoint and localAPIEndpoint`},
		{"bare host", "10.0.0.10:6443", ca, `cluster-info: server "10.0.0.10:6443" is not an https://host[:port] URL; check controlPlaneEndpoint and localAPIEndpoint`},
		{"no host", "https://:6443", ca, `cluster-info: server "https://:6443" is not an https://host[:port] URL; check controlPlaneEndpoint and localAPIEndpoint`},
		{"no CA", "https://10.0.0.10:6443", nil, "cluster-info: the CA PEM holds no certificate"},
		{"a key", "https://10.0.0.10:6443", append(append([]byte{}, ca...), keyPEM...), `cluster-info: the CA PEM holds a "EC PRIVATE KEY" block; only CERTIFICATE blocks belong in cluster-info`},
		{"junk cert", "https://10.0.0.10:6443", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), "cluster-info: the CA PEM holds an unreadable certificate: x509: malformed certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Kubeconfig(tt.server, tt.ca)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
			}
		})
	}
}

func TestPublish(t *testing.T) {
	ca := testCA(t)
	c := fake.NewClientset()
	if err := Publish(t.Context(), c, "https://10.0.0.10:6443", ca, nil); err != nil {
		t.Fatal(err)
	}

	cm, err := c.CoreV1().ConfigMaps("kube-public").Get(t.Context(), "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 1 || cm.Data["kubeconfig"] == "" {
		t.Fatalf("cluster-info data keys = %v, want only kubeconfig", cm.Data)
	}
	cfg, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if err != nil || len(cfg.Clusters) != 1 || cfg.Clusters[""] == nil || cfg.Clusters[""].Server != "https://10.0.0.10:6443" {
		t.Fatalf("stored kubeconfig does not parse back to the one cluster: %v\n%s", err, cm.Data["kubeconfig"])
	}

	role, err := c.RbacV1().Roles("kube-public").Get(t.Context(), "kubeadm:bootstrap-signer-clusterinfo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRules := []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cluster-info"}}}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("rules = %+v\nwant %+v", role.Rules, wantRules)
	}
	rb, err := c.RbacV1().RoleBindings("kube-public").Get(t.Context(), "kubeadm:bootstrap-signer-clusterinfo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "kubeadm:bootstrap-signer-clusterinfo"}
	wantSubjects := []rbacv1.Subject{{Kind: "User", Name: "system:anonymous"}}
	if rb.RoleRef != wantRef || !reflect.DeepEqual(rb.Subjects, wantSubjects) {
		t.Errorf("binding = %+v %+v", rb.RoleRef, rb.Subjects)
	}
}

func TestPublishAgainReplacesServer(t *testing.T) {
	ca := testCA(t)
	c := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info", ResourceVersion: "5"},
		Data:       map[string]string{"kubeconfig": "old", "jws-kubeconfig-abcdef": "sig"},
	})
	if err := Publish(t.Context(), c, "https://lb.internal:6443", ca, nil); err != nil {
		t.Fatal(err)
	}
	cm, err := c.CoreV1().ConfigMaps("kube-public").Get(t.Context(), "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if err != nil || cfg.Clusters[""].Server != "https://lb.internal:6443" {
		t.Fatalf("kubeconfig not replaced: %v %q", err, cm.Data["kubeconfig"])
	}
}

func TestPublishForbidden(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "rolebindings", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}, "kubeadm:bootstrap-signer-clusterinfo", errors.New("no"))
	})
	err := Publish(t.Context(), c, "https://10.0.0.10:6443", testCA(t), nil)
	want := `apply RoleBinding kube-public/kubeadm:bootstrap-signer-clusterinfo: create: rolebindings.rbac.authorization.k8s.io "kubeadm:bootstrap-signer-clusterinfo" is forbidden: no`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func TestPublishSignsWithEachSigningToken(t *testing.T) {
	ca := testCA(t)
	c := fake.NewClientset()
	a, err := token.Parse("abcdef.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	b, err := token.Parse("zyxwvu.fedcba9876543210")
	if err != nil {
		t.Fatal(err)
	}
	if err := Publish(t.Context(), c, "https://10.0.0.10:6443", ca, []token.Token{a, b}); err != nil {
		t.Fatal(err)
	}
	cm, err := c.CoreV1().ConfigMaps("kube-public").Get(t.Context(), "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 3 {
		t.Fatalf("cluster-info data keys = %v, want kubeconfig and two signatures", cm.Data)
	}
	content := cm.Data["kubeconfig"]
	for _, tok := range []token.Token{a, b} {
		sig := cm.Data["jws-kubeconfig-"+tok.ID]
		// What a joining node checks (kubeadm's discovery and ours): the detached JWS over the kubeconfig, keyed by
		// the token's secret.
		if !jws.DetachedTokenIsValid(sig, content, tok.ID, tok.Secret) {
			t.Errorf("jws-kubeconfig-%s = %q does not verify with the token", tok.ID, sig)
		}
	}
	if jws.DetachedTokenIsValid(cm.Data["jws-kubeconfig-"+a.ID], content, a.ID, b.Secret) {
		t.Error("token abcdef's signature verifies with another token's secret")
	}
}
