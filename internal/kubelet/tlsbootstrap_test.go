package kubelet

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

const (
	tbNode   = "worker-1"
	tbServer = "https://127.0.0.1:7445"
)

// testCA is the cluster CA the fake signer signs with.
func testCA(t *testing.T) pki.CA {
	t.Helper()
	kp, err := pki.NewCA(pki.Source{}, pki.Request{
		CommonName: "kubernetes", IsCA: true, Algorithm: config.EncryptionAlgorithmECDSAP256,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, Validity: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(kp.Cert, kp.Key)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// sign issues the certificate the kube-controller-manager's signer would: the request's subject and key, for
// client auth.
func sign(t *testing.T, ca pki.CA, req []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(req)
	if block == nil {
		t.Fatal("the CSR's request is not PEM")
	}
	cr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      cr.Subject,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca.Cert, cr.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pki.EncodeCertPEM(der)
}

var csrResource = certificatesv1.SchemeGroupVersion.WithResource("certificatesigningrequests")

// decider changes a created CSR's status as an approver and a signer would; nil leaves it pending.
type decider func(t *testing.T, ca pki.CA, c *certificatesv1.CertificateSigningRequest)

func approveAndSign(t *testing.T, ca pki.CA, c *certificatesv1.CertificateSigningRequest) {
	c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: "True", Reason: "AutoApproved", Message: "Auto approving kubelet client certificate after SubjectAccessReview.",
	})
	c.Status.Certificate = sign(t, ca, c.Spec.Request)
}

func approveOnly(_ *testing.T, _ pki.CA, c *certificatesv1.CertificateSigningRequest) {
	c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: "True", Reason: "AutoApproved",
	})
}

func deny(_ *testing.T, _ pki.CA, c *certificatesv1.CertificateSigningRequest) {
	c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateDenied, Status: "True", Reason: "NotOurs", Message: "no such machine",
	})
}

// fakeCluster is a fake clientset whose CSRs get a UID on creation and are then decided, either in the create
// itself (the first list already shows the decision) or a moment later (the watch delivers it).
func fakeCluster(t *testing.T, ca pki.CA, decide decider, later bool) *fake.Clientset {
	t.Helper()
	c := fake.NewClientset()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	c.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest).DeepCopy()
		obj.UID = types.UID("uid-" + obj.Name)
		if decide != nil && !later {
			decide(t, ca, obj)
		}
		if err := c.Tracker().Create(csrResource, obj, ""); err != nil {
			return true, nil, err
		}
		if decide != nil && later {
			wg.Go(func() {
				time.Sleep(50 * time.Millisecond)
				got, err := c.Tracker().Get(csrResource, "", obj.Name)
				if err != nil {
					t.Error(err)
					return
				}
				decided := got.(*certificatesv1.CertificateSigningRequest).DeepCopy()
				decide(t, ca, decided)
				if err := c.Tracker().Update(csrResource, decided, ""); err != nil {
					t.Error(err)
				}
			})
		}
		return true, obj, nil
	})
	return c
}

func tbInput(c *fake.Clientset, ca pki.CA, out io.Writer) TLSBootstrapInput {
	return TLSBootstrapInput{
		Client: c, NodeName: tbNode, CertDir: CertDir, Kubeconfig: config.KubeletKubeconfigFile,
		Server: tbServer, CAPEM: pki.EncodeCertPEM(ca.Cert.Raw), Timeout: 10 * time.Second, Out: out,
	}
}

// theCSR is the one CSR in c.
func theCSR(t *testing.T, c *fake.Clientset) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	list, err := c.CertificatesV1().CertificateSigningRequests().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("CSRs: %v, %v", list, err)
	}
	return &list.Items[0]
}

// files lists everything under root, symbolic links included.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, root))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTLSBootstrapIssued(t *testing.T) {
	for _, later := range []bool{false, true} {
		name := "decided at creation"
		if later {
			name = "decided while watched"
		}
		t.Run(name, func(t *testing.T) {
			ca := testCA(t)
			c := fakeCluster(t, ca, approveAndSign, later)
			root := t.TempDir()
			fsys := nodefs.FS{Root: root}
			var out bytes.Buffer
			res, err := TLSBootstrap(t.Context(), fsys, tbInput(c, ca, &out))
			if err != nil {
				t.Fatal(err)
			}

			// The request is the kubelet's: its subject, signer and usages (no key encipherment for ECDSA).
			csrObj := theCSR(t, c)
			if res.CSR != csrObj.Name || !strings.HasPrefix(csrObj.Name, "node-csr-") {
				t.Errorf("result CSR %q, created %q", res.CSR, csrObj.Name)
			}
			if csrObj.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
				t.Errorf("signer %q", csrObj.Spec.SignerName)
			}
			if want := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}; !slices.Equal(csrObj.Spec.Usages, want) {
				t.Errorf("usages %v, want %v", csrObj.Spec.Usages, want)
			}

			// The store: one timestamped PEM, 0600, with the certificate and the EC key; the current link to it.
			current := filepath.Join(root, CertDir, ClientCertCurrent)
			target, err := os.Readlink(current)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(target) != filepath.Join(root, CertDir) ||
				!regexp.MustCompile(`^kubelet-client-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.pem$`).MatchString(filepath.Base(target)) {
				t.Errorf("%s -> %s", ClientCertCurrent, target)
			}
			wantFiles := []string{config.KubeletKubeconfigFile, CertDir + "/" + ClientCertCurrent, CertDir + "/" + filepath.Base(target)}
			if got := files(t, root); !sameSet(got, wantFiles) {
				t.Errorf("files %v, want %v", got, wantFiles)
			}
			fi, err := os.Stat(target)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v, %v; want mode 0600", target, fi, err)
			}
			pemData, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			var blocks []string
			for rest := pemData; ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				blocks = append(blocks, b.Type)
			}
			if want := []string{"CERTIFICATE", "EC PRIVATE KEY"}; !slices.Equal(blocks, want) {
				t.Errorf("PEM blocks %v, want %v", blocks, want)
			}
			certs, err := certutil.ParseCertsPEM(pemData)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := certs[0].Subject, (pkix.Name{CommonName: "system:node:" + tbNode, Organization: []string{"system:nodes"}}); got.CommonName != want.CommonName || !slices.Equal(got.Organization, want.Organization) {
				t.Errorf("subject %v, want %v", got, want)
			}
			if err := certs[0].CheckSignatureFrom(ca.Cert); err != nil {
				t.Error(err)
			}
			if !res.NotAfter.Equal(certs[0].NotAfter) || res.Current != CertDir+"/"+ClientCertCurrent {
				t.Errorf("result %+v", res)
			}

			// kubelet.conf: 0600, the given server and CA, the current link as certificate and key.
			kcPath := fsys.Path(config.KubeletKubeconfigFile)
			if fi, err := os.Stat(kcPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("kubelet.conf: %v, %v; want mode 0600", fi, err)
			}
			kc, err := clientcmd.LoadFromFile(kcPath)
			if err != nil {
				t.Fatal(err)
			}
			cl, user := kc.Clusters["default-cluster"], kc.AuthInfos["default-auth"]
			if kc.CurrentContext != "default-context" || cl == nil || user == nil {
				t.Fatalf("kubelet.conf %+v", kc)
			}
			if cl.Server != tbServer || !bytes.Equal(cl.CertificateAuthorityData, pki.EncodeCertPEM(ca.Cert.Raw)) {
				t.Errorf("cluster %+v", cl)
			}
			if want := "/var/lib/kubelet/pki/kubelet-client-current.pem"; user.ClientCertificate != want || user.ClientKey != want ||
				user.ClientCertificateData != nil || user.ClientKeyData != nil {
				t.Errorf("user %+v", user)
			}
			// client-go loads it as the kubelet does (the paths are the node's: read them through root).
			user.ClientCertificate, user.ClientKey = current, current
			if _, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig(); err != nil {
				t.Errorf("kubelet.conf does not load: %v", err)
			}

			wantOut := "  requested the kubelet's client certificate for system:node:worker-1: CertificateSigningRequest " + res.CSR +
				", waiting up to 10s for it to be approved and signed\n  CertificateSigningRequest " + res.CSR + " was signed after "
			if !strings.HasPrefix(out.String(), wantOut) || !strings.HasSuffix(out.String(),
				"  wrote /etc/kubernetes/kubelet.conf (server https://127.0.0.1:7445) with the client certificate /var/lib/kubelet/pki/kubelet-client-current.pem\n") {
				t.Errorf("output:\n%s", out.String())
			}
			if keyleak.In(out.Bytes()) {
				t.Error("the output holds the key")
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestTLSBootstrapNotIssued(t *testing.T) {
	tests := []struct {
		name    string
		decide  decider
		timeout time.Duration
		state   CSRState
		// wantMsg and wantHint have NAME where the CSR's name goes.
		wantMsg  string
		wantHint []string
	}{
		{
			name: "denied", decide: deny, timeout: 10 * time.Second, state: CSRDenied,
			wantMsg:  `CertificateSigningRequest NAME for the kubelet's client certificate (system:node:worker-1) was denied (reason "NotOurs": no such machine)`,
			wantHint: []string{"kubectl get csr NAME -o yaml", "run the join again (it makes a new request)"},
		},
		{
			name: "pending", timeout: 300 * time.Millisecond, state: CSRPending,
			wantMsg:  "CertificateSigningRequest NAME for the kubelet's client certificate (system:node:worker-1) is still pending after 300ms: nobody approved it",
			wantHint: []string{"ClusterRoleBinding kubeadm:node-autoapprove-bootstrap", "kubectl certificate approve NAME", "run the join again"},
		},
		{
			name: "approved, never signed", decide: approveOnly, timeout: 300 * time.Millisecond, state: CSRApproved,
			wantMsg:  "CertificateSigningRequest NAME for the kubelet's client certificate (system:node:worker-1) was approved but not signed within 300ms",
			wantHint: []string{"--cluster-signing-cert-file", "kubernetes.io/kube-apiserver-client-kubelet"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := testCA(t)
			c := fakeCluster(t, ca, tt.decide, true)
			root := t.TempDir()
			var out bytes.Buffer
			in := tbInput(c, ca, &out)
			in.Timeout = tt.timeout
			_, err := TLSBootstrap(t.Context(), nodefs.FS{Root: root}, in)
			name := theCSR(t, c).Name
			var nie *CSRNotIssuedError
			if !errors.As(err, &nie) || nie.State != tt.state || nie.Name != name {
				t.Fatalf("error %v (%#v), want a CSRNotIssuedError in state %s", err, nie, tt.state)
			}
			if want := strings.ReplaceAll(tt.wantMsg, "NAME", name); err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			h := hint.Of(err)
			for _, w := range tt.wantHint {
				if w = strings.ReplaceAll(w, "NAME", name); !strings.Contains(h, w) {
					t.Errorf("hint %q lacks %q", h, w)
				}
			}
			if got := files(t, root); len(got) != 0 {
				t.Errorf("files written: %v", got)
			}
			if keyleak.In(out.Bytes()) || keyleak.In([]byte(err.Error()+h)) {
				t.Error("the key leaked into the output or the error")
			}
		})
	}
}

func TestTLSBootstrapRefuses(t *testing.T) {
	ca := testCA(t)
	for _, tt := range []struct {
		name     string
		apiErr   error
		is       func(error) bool
		wantHint string
	}{
		{"forbidden", apierrors.NewForbidden(csrResource.GroupResource(), "", errors.New("no RBAC policy matched")), apierrors.IsForbidden,
			"ClusterRoleBinding kubeadm:kubelet-bootstrap"},
		{"unauthorized", apierrors.NewUnauthorized("Unauthorized"), apierrors.IsUnauthorized, "kubeboot token create"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			c.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.apiErr
			})
			root := t.TempDir()
			_, err := TLSBootstrap(t.Context(), nodefs.FS{Root: root}, tbInput(c, ca, nil))
			if !tt.is(err) || !strings.HasPrefix(err.Error(), "create the CertificateSigningRequest node-csr-") ||
				!strings.Contains(hint.Of(err), tt.wantHint) {
				t.Fatalf("error %v, hint %q", err, hint.Of(err))
			}
			if got := files(t, root); len(got) != 0 {
				t.Errorf("files written: %v", got)
			}
		})
	}
	t.Run("in memory", func(t *testing.T) {
		c := fake.NewClientset()
		_, err := TLSBootstrap(t.Context(), nodefs.Overlay(nodefs.FS{Root: t.TempDir()}), tbInput(c, ca, nil))
		if !errors.Is(err, nodefs.ErrInMemory) {
			t.Fatalf("error %v, want ErrInMemory", err)
		}
		if len(c.Actions()) != 0 {
			t.Errorf("API calls: %v", c.Actions())
		}
	})
	t.Run("current is a file", func(t *testing.T) {
		c := fake.NewClientset()
		fsys := nodefs.FS{Root: t.TempDir()}
		if err := fsys.WriteFile(CertDir+"/"+ClientCertCurrent, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := TLSBootstrap(t.Context(), fsys, tbInput(c, ca, nil))
		want := "/var/lib/kubelet/pki/kubelet-client-current.pem is not a symbolic link: the kubelet's certificate store cannot replace it; move it away"
		if err == nil || err.Error() != want {
			t.Fatalf("error %v, want %s", err, want)
		}
		if len(c.Actions()) != 0 {
			t.Errorf("a request was made: %v", c.Actions())
		}
	})
	t.Run("bad input", func(t *testing.T) {
		_, err := TLSBootstrap(t.Context(), nodefs.FS{Root: t.TempDir()}, TLSBootstrapInput{CertDir: "pki", Kubeconfig: "/k"})
		want := `the kubelet's TLS bootstrap: no client; no node name; the certificate directory "pki" is not an absolute path; ` +
			`no server; the cluster CA: data does not contain any valid RSA or ECDSA certificates; the timeout 0s is not positive`
		if err == nil || err.Error() != want {
			t.Fatalf("error\n%v\nwant\n%s", err, want)
		}
	})
}

// A store that fails after writing the PEM file (here: a stray regular file where the store puts its
// kubelet-client-updated.pem link, planted once the store was opened) leaves no key behind, and no kubelet.conf.
func TestTLSBootstrapStoreFails(t *testing.T) {
	ca := testCA(t)
	root := t.TempDir()
	fsys := nodefs.FS{Root: root}
	stray := CertDir + "/kubelet-client-updated.pem"
	c := fakeCluster(t, ca, approveAndSign, false)
	c.PrependReactor("create", "certificatesigningrequests", func(k8stesting.Action) (bool, runtime.Object, error) {
		return false, nil, fsys.WriteFile(stray, []byte("stray"), 0o600)
	})
	_, err := TLSBootstrap(t.Context(), fsys, tbInput(c, ca, nil))
	want := "store the kubelet's client certificate in /var/lib/kubelet/pki: expected \"" + fsys.Path(stray) + "\" to be a symlink but it is a file"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
	if got := files(t, root); !slices.Equal(got, []string{stray}) {
		t.Errorf("files %v, want only the stray %s", got, stray)
	}
}

// A wait that ends early while the request looks pending (here: another request of the same name replaced it)
// is not called pending: the error says what ended the wait.
func TestTLSBootstrapReplacedRequest(t *testing.T) {
	ca := testCA(t)
	c := fake.NewClientset()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	c.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest).DeepCopy()
		obj.UID = "first"
		if err := c.Tracker().Create(csrResource, obj, ""); err != nil {
			return true, nil, err
		}
		wg.Go(func() {
			time.Sleep(50 * time.Millisecond)
			again := obj.DeepCopy()
			again.UID = "second"
			if err := c.Tracker().Update(csrResource, again, ""); err != nil {
				t.Error(err)
			}
		})
		return true, obj, nil
	})
	root := t.TempDir()
	_, err := TLSBootstrap(t.Context(), nodefs.FS{Root: root}, tbInput(c, ca, nil))
	name := theCSR(t, c).Name
	var nie *CSRNotIssuedError
	if !errors.As(err, &nie) || nie.State != CSRUnknown {
		t.Fatalf("error %v, want a CSRNotIssuedError in state unknown", err)
	}
	want := "CertificateSigningRequest " + name + " for the kubelet's client certificate (system:node:worker-1) was not signed: " +
		"cannot watch on the certificate signing request: csr \"" + name + "\" changed UIDs"
	if err.Error() != want {
		t.Errorf("error\n%s\nwant\n%s", err, want)
	}
	if got := files(t, root); len(got) != 0 {
		t.Errorf("files written: %v", got)
	}
}
