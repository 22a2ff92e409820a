// Package renewal knows the certificates kubeadm renews and the CAs that sign them, where each is kept (a file
// under certificatesDir or a kubeconfig's embedded client certificate), and how long each has left: `certs
// check-expiration` and `certs renew`, with kubeadm's names, order and output.
package renewal

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

// Cert is one certificate kubeadm renews.
type Cert struct {
	// Name is kubeadm's name: a pki spec's name ("apiserver") or a kubeconfig file's ("admin.conf").
	Name string
	// LongName is kubeadm's description, used in renew's messages.
	LongName string
	// CAName names the CA that signs it ("ca", "etcd-ca", "front-proxy-ca").
	CAName string
	// File is the node path of the certificate, or of the kubeconfig that embeds it (Kubeconfig).
	File       string
	Kubeconfig bool
}

// CA is one certificate authority whose expiry check-expiration reports.
type CA struct {
	Name, LongName string
	// CertFile and KeyFile are node paths; a CA whose key is absent is externally managed.
	CertFile, KeyFile string
}

// kubeconfigs are the kubeconfig files whose client certificates kubeadm renews, with its descriptions.
// kubelet.conf is not among them: the kubelet rotates its own client certificate.
var kubeconfigs = []struct{ file, longName string }{
	{config.AdminKubeconfigFile, "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself"},
	{config.SuperAdminKubeconfig, "certificate embedded in the kubeconfig file for the super-admin"},
	{config.ControllerManagerConfig, "certificate embedded in the kubeconfig file for the controller manager to use"},
	{config.SchedulerConfig, "certificate embedded in the kubeconfig file for the scheduler manager to use"},
}

// Set is the certificates and CAs of one node, as kubeadm's renewal manager lists them.
type Set struct {
	FS nodefs.FS
	// CertDir is certificatesDir; KubeconfigDir is where the kubeconfig files are (/etc/kubernetes).
	CertDir, KubeconfigDir string
	Certs                  []Cert
	CAs                    []CA
}

// NewSet lists what kubeadm would for a cluster whose etcd is external (no etcd certificates) or not, each list
// sorted by name as kubeadm prints it.
func NewSet(fsys nodefs.FS, certDir, kubeconfigDir string, externalEtcd bool) *Set {
	s := &Set{FS: fsys, CertDir: certDir, KubeconfigDir: kubeconfigDir}
	for _, sp := range pki.Specs() {
		if externalEtcd && sp.LocalEtcdOnly {
			continue
		}
		if sp.IsCA() {
			s.CAs = append(s.CAs, CA{Name: sp.Name, LongName: sp.Description, CertFile: sp.CertPath(certDir), KeyFile: sp.KeyPath(certDir)})
			continue
		}
		s.Certs = append(s.Certs, Cert{Name: sp.Name, LongName: sp.Description, CAName: sp.CAName, File: sp.CertPath(certDir)})
	}
	for _, k := range kubeconfigs {
		name := path.Base(k.file)
		s.Certs = append(s.Certs, Cert{Name: name, LongName: k.longName, CAName: pki.CAPhase, File: path.Join(kubeconfigDir, name), Kubeconfig: true})
	}
	slices.SortFunc(s.Certs, func(a, b Cert) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.CAs, func(a, b CA) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// Names are the certificates' names, in order: the arguments `certs renew` takes besides "all".
func (s *Set) Names() []string {
	names := make([]string, len(s.Certs))
	for i, c := range s.Certs {
		names[i] = c.Name
	}
	return names
}

// CA returns the CA called name.
func (s *Set) CA(name string) (CA, bool) {
	i := slices.IndexFunc(s.CAs, func(c CA) bool { return c.Name == name })
	if i < 0 {
		return CA{}, false
	}
	return s.CAs[i], true
}

// ExternallyManaged says whether the CA called name is present without its key, kubeadm's sign that someone else
// signs with it: its certificates cannot be renewed here.
func (s *Set) ExternallyManaged(name string) bool {
	ca, ok := s.CA(name)
	return ok && s.FS.Exists(ca.CertFile) && !s.FS.Exists(ca.KeyFile)
}

// ErrMissing is returned for a certificate whose file does not exist.
var ErrMissing = errors.New("missing")

// Read returns c's certificate: the first of its file, or the client certificate of its kubeconfig's current
// context, which must be embedded (as kubeadm requires).
func (s *Set) Read(c Cert) (*x509.Certificate, error) {
	b, err := s.FS.ReadFile(c.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", c.File, ErrMissing)
	}
	if err != nil {
		return nil, err
	}
	if c.Kubeconfig {
		if b, err = embeddedClientCert(b); err != nil {
			return nil, fmt.Errorf("%s: %w", c.File, err)
		}
	}
	certs, err := certutil.ParseCertsPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.File, err)
	}
	return certs[0], nil
}

// readCA returns the CA's certificate.
func (s *Set) readCA(ca CA) (*x509.Certificate, error) {
	return s.Read(Cert{Name: ca.Name, File: ca.CertFile})
}

// embeddedClientCert returns the client-certificate-data of a kubeconfig's current context.
func embeddedClientCert(kubeconfig []byte) ([]byte, error) {
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %w", err)
	}
	ctx, ok := kc.Contexts[kc.CurrentContext]
	if !ok {
		return nil, fmt.Errorf("the current context %q does not exist", kc.CurrentContext)
	}
	user, ok := kc.AuthInfos[ctx.AuthInfo]
	if !ok {
		return nil, fmt.Errorf("the user %q of context %q does not exist", ctx.AuthInfo, kc.CurrentContext)
	}
	if len(user.ClientCertificateData) == 0 {
		return nil, fmt.Errorf("the user %q has no embedded client-certificate-data", ctx.AuthInfo)
	}
	return user.ClientCertificateData, nil
}

// residual is what is left of a certificate's life at now, in whole seconds as kubeadm reports it.
func residual(cert *x509.Certificate, now time.Time) time.Duration {
	return cert.NotAfter.Sub(now).Truncate(time.Second)
}
