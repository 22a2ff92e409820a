package kubelet

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate"
	"k8s.io/client-go/util/certificate/csr"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodebootstrap"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

// The kubelet's client certificate store, as the kubelet names it (client-go's certificate.FileStore with the
// prefix "kubelet-client" in --cert-dir): kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem holds the certificates and
// the key, and kubelet-client-current.pem is a symbolic link to the one in use, which rotation replaces.
const (
	// CertDir is the kubelet's default --cert-dir.
	CertDir = config.KubeletDir + "/pki"
	// ClientCertPrefix is the store's prefix of the kubelet's client certificate files.
	ClientCertPrefix = "kubelet-client"
	// ClientCertCurrent is the name of the link to the client certificate in use.
	ClientCertCurrent = ClientCertPrefix + "-current.pem"
)

// statusTimeout bounds the one request that finds out why a CSR was not issued: the wait's own time is over.
const statusTimeout = 10 * time.Second

// TLSBootstrapInput is everything kubeboot needs to obtain the kubelet's client certificate in the kubelet's
// place.
type TLSBootstrapInput struct {
	// Client acts with the TLS bootstrap credentials (bootstrap-kubelet.conf's token): it may create, get and
	// watch CertificateSigningRequests.
	Client kubernetes.Interface
	// NodeName is the Node the certificate is for: system:node:<NodeName>.
	NodeName string
	// CertDir is the kubelet's --cert-dir (CertDir by default).
	CertDir string
	// Kubeconfig is the kubelet's --kubeconfig (config.KubeletKubeconfigFile).
	Kubeconfig string
	// Server is the API server URL written into Kubeconfig. It need not be the one Client talks to: a
	// node-local endpoint that only works once the kubelet runs its static Pods.
	Server string
	// CAPEM is the cluster CA, embedded in Kubeconfig.
	CAPEM []byte
	// Timeout bounds the wait for the certificate (timeouts.tlsBootstrap).
	Timeout time.Duration
	// Source makes the key; the zero Source is the system's.
	Source pki.Source
	// Out receives one line of progress per step; nil discards it.
	Out io.Writer
}

// TLSBootstrapResult says what TLSBootstrap obtained and wrote.
type TLSBootstrapResult struct {
	// CSR is the name of the CertificateSigningRequest that was issued.
	CSR string
	// Current is the node path of kubelet-client-current.pem, which Kubeconfig names.
	Current string
	// NotAfter is when the certificate expires; the kubelet rotates it before then.
	NotAfter time.Time
}

// TLSBootstrap does the kubelet's client TLS bootstrap before the kubelet starts: it makes an ECDSA P-256 key
// and a CertificateSigningRequest for system:node:<NodeName> in system:nodes with the kubelet's signer and usages,
// waits up to Timeout for the certificate, stores it with its key as the kubelet's certificate store does, and
// only then writes Kubeconfig pointing at Server and kubelet-client-current.pem. The kubelet then finds valid
// credentials and skips its own bootstrap, so bootstrap-kubelet.conf is not needed.
//
// A certificate that is not issued is a *CSRNotIssuedError, with advice for the user attached (hint.Of), and
// nothing is written: the key is discarded, so a new run makes a new request.
func TLSBootstrap(ctx context.Context, fsys nodefs.FS, in TLSBootstrapInput) (TLSBootstrapResult, error) {
	if err := in.validate(fsys); err != nil {
		return TLSBootstrapResult{}, err
	}
	// The store is opened (and a rotation the kubelet left half-done recovered) before a request is made, so a
	// certificate directory that cannot take the certificate fails before anyone approves a request for it.
	store, err := openClientStore(fsys, in.CertDir)
	if err != nil {
		return TLSBootstrapResult{}, err
	}
	issued, err := requestClientCert(ctx, in)
	if err != nil {
		return TLSBootstrapResult{}, err
	}
	return storeIssued(fsys, in, store, issued)
}

// clientCert is a kubelet client certificate obtained, with its key, not written anywhere yet.
type clientCert struct {
	csr     string // the CertificateSigningRequest it came from; "" when signed here
	certPEM []byte
	keyPEM  []byte
	certs   []*x509.Certificate
}

// SignClientCert is TLSBootstrap for a node that has the cluster CA's key: it issues the kubelet's client
// certificate with the CA itself, as init does for its own node's kubelet.conf, and stores it as TLSBootstrap does.
// A control plane that joins has the key, and so needs neither a CertificateSigningRequest nor the
// controller-manager's approver and signer (which, right after init, start only once the controller-manager has
// won its leader election: the request waited 1.5 to 2.9 s for them in the lab). The certificate is the one the
// TLS bootstrap would get (system:node:<NodeName> in system:nodes, client auth, the kubelet's ECDSA P-256 key), valid
// for the cluster's certificateValidityPeriod like init's. in.Client and in.Timeout are not used.
func SignClientCert(fsys nodefs.FS, in TLSBootstrapInput, cluster *config.Cluster, ca pki.CA) (TLSBootstrapResult, error) {
	if err := in.validate(fsys); err != nil {
		return TLSBootstrapResult{}, err
	}
	store, err := openClientStore(fsys, in.CertDir)
	if err != nil {
		return TLSBootstrapResult{}, err
	}
	user := kubeconfig.NodeUserPrefix + in.NodeName
	req := pki.ClientRequest(cluster, ca, user, []string{kubeconfig.NodesGroup})
	req.Algorithm = config.EncryptionAlgorithmECDSAP256
	kp, err := pki.NewSignedCert(in.Source, ca, req)
	if err != nil {
		return TLSBootstrapResult{}, fmt.Errorf("the kubelet's client certificate: %w", err)
	}
	certs, err := certutil.ParseCertsPEM(kp.Cert)
	if err != nil {
		return TLSBootstrapResult{}, fmt.Errorf("the kubelet's client certificate: %w", err)
	}
	if in.Out != nil {
		fmt.Fprintf(in.Out, "  signed the kubelet's client certificate for %s with the cluster CA, valid until %s\n", user, certs[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return storeIssued(fsys, in, store, &clientCert{certPEM: kp.Cert, keyPEM: kp.Key, certs: certs})
}

func openClientStore(fsys nodefs.FS, certDir string) (certificate.FileStore, error) {
	store, err := certificate.NewFileStore(ClientCertPrefix, fsys.Path(certDir), fsys.Path(certDir), "", "")
	if err != nil {
		return nil, fmt.Errorf("the kubelet's certificate directory %s: %w", certDir, err)
	}
	current := path.Join(certDir, ClientCertCurrent)
	if fi, err := os.Lstat(fsys.Path(current)); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return nil, fmt.Errorf("%s is not a symbolic link: the kubelet's certificate store cannot replace it; move it away", current)
	}
	return store, nil
}

func requestClientCert(ctx context.Context, in TLSBootstrapInput) (*clientCert, error) {
	out := in.Out
	if out == nil {
		out = io.Discard
	}
	user := kubeconfig.NodeUserPrefix + in.NodeName
	csrPEM, keyPEM, err := pki.NewCSR(in.Source, pki.Request{
		CommonName:   user,
		Organization: []string{kubeconfig.NodesGroup},
		Algorithm:    config.EncryptionAlgorithmECDSAP256,
	})
	if err != nil {
		return nil, fmt.Errorf("the kubelet's client certificate request: %w", err)
	}
	key, err := pki.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the kubelet's client certificate request: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("the kubelet's client certificate request: %w", err)
	}
	// Named after its key, so a name seen in `kubectl get csr` is this request and no other.
	sum := sha256.Sum256(spki)
	name := "node-csr-" + hex.EncodeToString(sum[:16])

	waitCtx, cancel := context.WithTimeout(ctx, in.Timeout)
	defer cancel()
	// The kubelet's usages for an ECDSA key: key encipherment is an RSA usage.
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	reqName, uid, err := csr.RequestCertificateWithContext(waitCtx, in.Client, csrPEM, name,
		certificatesv1.KubeAPIServerClientKubeletSignerName, nil, usages, key)
	if err != nil {
		err = fmt.Errorf("create the CertificateSigningRequest %s for %s: %w", name, user, err)
		switch {
		case apierrors.IsForbidden(err):
			return nil, hint.With(err, fmt.Sprintf(
				"the TLS bootstrap token may not request certificates: its group needs the ClusterRoleBinding %s "+
					"(ClusterRole system:node-bootstrapper), which kubeadm and kubeboot init create", nodebootstrap.KubeletBootstrap))
		case apierrors.IsUnauthorized(err):
			return nil, hint.With(err,
				"the API server does not accept the TLS bootstrap token: it may have expired or been deleted; create a new one (kubeboot token create) and join with it")
		}
		return nil, err
	}
	fmt.Fprintf(out, "  requested the kubelet's client certificate for %s: CertificateSigningRequest %s, waiting up to %s for it to be approved and signed\n",
		user, reqName, in.Timeout)
	start := time.Now()
	certPEM, err := csr.WaitForCertificate(waitCtx, in.Client, reqName, uid)
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted by the caller: no time is left to ask the API server why.
			return nil, fmt.Errorf("wait for CertificateSigningRequest %s: %w", reqName, context.Cause(ctx))
		}
		return nil, notIssued(ctx, in, reqName, user, err, waitCtx.Err() != nil)
	}
	certs, err := checkIssued(certPEM, key, user)
	if err != nil {
		return nil, fmt.Errorf("CertificateSigningRequest %s: %w", reqName, err)
	}
	fmt.Fprintf(out, "  CertificateSigningRequest %s was signed after %s\n", reqName, time.Since(start).Round(10*time.Millisecond))
	return &clientCert{csr: reqName, certPEM: certPEM, keyPEM: keyPEM, certs: certs}, nil
}

func storeIssued(fsys nodefs.FS, in TLSBootstrapInput, store certificate.FileStore, c *clientCert) (TLSBootstrapResult, error) {
	out := in.Out
	if out == nil {
		out = io.Discard
	}
	if err := storeClientCert(fsys, in.CertDir, store, c.certPEM, c.keyPEM); err != nil {
		return TLSBootstrapResult{}, err
	}
	current := path.Join(in.CertDir, ClientCertCurrent)
	// Last: a kubelet.conf that exists names a certificate that exists.
	if err := kubeconfig.Write(fsys, in.Kubeconfig, kubeconfig.KubeletAfterBootstrap(in.Server, in.CAPEM, current)); err != nil {
		return TLSBootstrapResult{}, err // names the file already
	}
	fmt.Fprintf(out, "  wrote %s (server %s) with the client certificate %s\n", in.Kubeconfig, in.Server, current)
	return TLSBootstrapResult{CSR: c.csr, Current: current, NotAfter: c.certs[0].NotAfter}, nil
}

func (in TLSBootstrapInput) validate(fsys nodefs.FS) error {
	var problems []string
	if in.Client == nil {
		problems = append(problems, "no client")
	}
	if in.NodeName == "" {
		problems = append(problems, "no node name")
	}
	if !path.IsAbs(in.CertDir) {
		problems = append(problems, fmt.Sprintf("the certificate directory %q is not an absolute path", in.CertDir))
	}
	if !path.IsAbs(in.Kubeconfig) {
		problems = append(problems, fmt.Sprintf("the kubeconfig %q is not an absolute path", in.Kubeconfig))
	}
	if in.Server == "" {
		problems = append(problems, "no server")
	}
	if _, err := certutil.ParseCertsPEM(in.CAPEM); err != nil {
		problems = append(problems, fmt.Sprintf("the cluster CA: %v", err))
	}
	if in.Timeout <= 0 {
		problems = append(problems, fmt.Sprintf("the timeout %s is not positive", in.Timeout))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the kubelet's TLS bootstrap: %s", strings.Join(problems, "; "))
	}
	if fsys.InMemory() {
		// client-go's store writes host paths: it would write beside a dry run's overlay, on the disk.
		return fmt.Errorf("the kubelet's TLS bootstrap writes %s: %w", in.CertDir, nodefs.ErrInMemory)
	}
	return nil
}

// checkIssued parses what the signer issued and checks it is a certificate for key and user that is valid now:
// the kubelet would otherwise start with credentials the API server rejects.
func checkIssued(certPEM []byte, key crypto.Signer, user string) ([]*x509.Certificate, error) {
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("the issued certificate does not parse: %w", err)
	}
	leaf := certs[0]
	if !pki.KeyMatches(leaf, key) {
		return nil, errors.New("the issued certificate is not for the requested key")
	}
	if leaf.Subject.CommonName != user {
		return nil, fmt.Errorf("the issued certificate is for %q, not %q", leaf.Subject.CommonName, user)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("the issued certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return certs, nil
}

// storeClientCert writes the certificate and key with client-go's certificate store, the kubelet's own. The
// store writes kubelet-client-<time>.pem and then links kubelet-client-current.pem to it; if it fails in between,
// the file it wrote is removed, so no key is left behind that nothing uses.
func storeClientCert(fsys nodefs.FS, certDir string, store certificate.FileStore, certPEM, keyPEM []byte) error {
	before, err := fsys.List(certDir)
	if err != nil {
		return fmt.Errorf("list %s: %w", certDir, err)
	}
	if _, err := store.Update(certPEM, keyPEM); err != nil {
		after, _ := fsys.List(certDir)
		for _, p := range after {
			if !slices.Contains(before, p) && strings.HasPrefix(path.Base(p), ClientCertPrefix+"-") {
				_ = fsys.Remove(p)
			}
		}
		return fmt.Errorf("store the kubelet's client certificate in %s: %w", certDir, err)
	}
	return nil
}

// CSRState is how far a CertificateSigningRequest got.
type CSRState string

// The states of a request that was not issued.
const (
	CSRPending  CSRState = "pending"
	CSRApproved CSRState = "approved" // but no certificate issued
	CSRDenied   CSRState = "denied"
	CSRFailed   CSRState = "failed"
	CSRDeleted  CSRState = "deleted"
	CSRUnknown  CSRState = "unknown"
)

// CSRNotIssuedError is a kubelet client certificate request that did not give a certificate.
type CSRNotIssuedError struct {
	// Name is the CertificateSigningRequest.
	Name string
	// User is the certificate's subject: system:node:<name>.
	User  string
	State CSRState
	// Reason and Message are those of the Denied or Failed condition.
	Reason, Message string
	// Timeout is how long TLSBootstrap waited.
	Timeout time.Duration
	// Err is what the wait returned (for CSRUnknown, with what the request for the state returned).
	Err error
}

func (e *CSRNotIssuedError) Error() string {
	subject := fmt.Sprintf("CertificateSigningRequest %s for the kubelet's client certificate (%s)", e.Name, e.User)
	why := ""
	if e.Reason != "" || e.Message != "" {
		why = fmt.Sprintf(" (reason %q: %s)", e.Reason, e.Message)
	}
	switch e.State {
	case CSRPending:
		return fmt.Sprintf("%s is still pending after %s: nobody approved it", subject, e.Timeout)
	case CSRApproved:
		return fmt.Sprintf("%s was approved but not signed within %s", subject, e.Timeout)
	case CSRDenied:
		return fmt.Sprintf("%s was denied%s", subject, why)
	case CSRFailed:
		return fmt.Sprintf("%s failed to be signed%s", subject, why)
	case CSRDeleted:
		return fmt.Sprintf("%s was deleted before it was signed", subject)
	}
	return fmt.Sprintf("%s was not signed: %v", subject, e.Err)
}

func (e *CSRNotIssuedError) Unwrap() error { return e.Err }

// notIssued asks the API server once why the request was not issued and says what to do about it. timedOut says
// the wait used all its time; a wait that ended early on a request that looks pending ended for a reason of its
// own (a watch the token may not make), which waitErr holds.
func notIssued(ctx context.Context, in TLSBootstrapInput, name, user string, waitErr error, timedOut bool) error {
	e := &CSRNotIssuedError{Name: name, User: user, Timeout: in.Timeout, Err: waitErr}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusTimeout)
	defer cancel()
	obj, err := in.Client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		e.State = CSRDeleted
	case err != nil:
		e.State, e.Err = CSRUnknown, errors.Join(waitErr, err)
	default:
		e.State = CSRPending
		// A decision (Denied, Failed) outweighs an approval: both may be set.
		for _, c := range obj.Status.Conditions {
			switch {
			case c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed:
				e.State, e.Reason, e.Message = CSRDenied, c.Reason, c.Message
				if c.Type == certificatesv1.CertificateFailed {
					e.State = CSRFailed
				}
			case c.Type == certificatesv1.CertificateApproved && e.State == CSRPending:
				e.State = CSRApproved
			}
		}
		if !timedOut && (e.State == CSRPending || e.State == CSRApproved) {
			e.State = CSRUnknown
		}
	}
	return hint.With(e, e.advice())
}

// advice says what to do next. The key of the request is gone with this run, so every piece of advice ends in a
// new run, which makes a new request.
func (e *CSRNotIssuedError) advice() string {
	again := "then run the join again (it makes a new request)"
	switch e.State {
	case CSRPending:
		return fmt.Sprintf("node client certificates are approved by the kube-controller-manager's csrapproving controller when "+
			"the requesting group is bound to ClusterRole system:certificates.k8s.io:certificatesigningrequests:nodeclient: "+
			"kubeadm and kubeboot init create the ClusterRoleBinding %s for their bootstrap tokens. Check that it exists "+
			"and that the kube-controller-manager runs, or approve the request by hand while the join waits "+
			"(kubectl certificate approve %s); %s", nodebootstrap.NodeAutoApproveBootstrap, e.Name, again)
	case CSRApproved:
		return fmt.Sprintf("the signer %s is the kube-controller-manager's csrsigning controller: check that it runs with "+
			"--cluster-signing-cert-file and --cluster-signing-key-file (kubeadm sets them to the cluster CA), %s",
			certificatesv1.KubeAPIServerClientKubeletSignerName, again)
	case CSRDenied, CSRFailed:
		return fmt.Sprintf("see kubectl get csr %s -o yaml for who decided and why; once the cause is fixed, %s", e.Name, again)
	case CSRDeleted:
		return fmt.Sprintf("something deleted the request (a CSR cleaner?); %s", again)
	}
	return fmt.Sprintf("check with kubectl get csr %s; %s", e.Name, again)
}
