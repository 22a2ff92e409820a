package renewal

import (
	"crypto/x509"
	"fmt"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

// Outcome is what Renew did with one certificate.
type Outcome int

const (
	Renewed Outcome = iota
	// Missing: there is no such file; nothing was written (kubeadm carries on with the next).
	Missing
	// External: its CA's key is not on this node; nothing was written.
	External
)

// Line is kubeadm's message for the outcome.
func (o Outcome) Line(c Cert) string {
	switch o {
	case Missing:
		return "MISSING! " + c.LongName
	case External:
		base := c.CAName
		if s, ok := pki.SpecByName(c.CAName); ok {
			base = s.BaseName
		}
		return fmt.Sprintf("Detected external %s, %s can't be renewed", base, c.LongName)
	}
	return c.LongName + " renewed"
}

// Policy is what a renewed certificate gets from the cluster's configuration.
type Policy struct {
	// Algorithm is encryptionAlgorithm, for the new key.
	Algorithm config.EncryptionAlgorithmType
	// Validity is certificateValidityPeriod, counted from now.
	Validity time.Duration
}

// PolicyOf reads the renewal policy from a defaulted ClusterConfiguration.
func PolicyOf(cc *config.ClusterConfiguration) Policy {
	p := Policy{Algorithm: cc.EncryptionAlgorithm, Validity: pki.DefaultValidity}
	if cc.CertificateValidityPeriod != nil {
		p.Validity = cc.CertificateValidityPeriod.Duration
	}
	return p
}

// Renew replaces c with a certificate that has a new key, the same subject, SANs and usages, and a new
// validity, signed by its CA on this node, as kubeadm's `certs renew` does. A kubeconfig keeps everything but
// its current user's client certificate and key and its cluster's CA data, which is set to the CA on disk. The
// certificate must chain to that CA, or it is refused and left alone. The key and the certificate are replaced
// together (nodefs.WriteTogether): a failed write leaves the old pair.
func (s *Set) Renew(c Cert, p Policy, src pki.Source) (Outcome, error) {
	if !s.FS.Exists(c.File) {
		return Missing, nil
	}
	if s.ExternallyManaged(c.CAName) {
		return External, nil
	}
	old, err := s.Read(c)
	if err != nil {
		return 0, fmt.Errorf("renew %s: %w", c.Name, err)
	}
	ca, err := s.loadCA(c.CAName)
	if err != nil {
		return 0, fmt.Errorf("renew %s: %w", c.Name, err)
	}
	if err := old.CheckSignatureFrom(ca.Cert); err != nil {
		return 0, fmt.Errorf("renew %s: %s is not signed by the CA in %s (%v); it was left alone: renew it with the CA that signed it, "+
			"or put back that CA", c.Name, c.File, s.caCertFile(c.CAName), err)
	}
	kp, err := pki.NewSignedCert(src, ca, requestFrom(old, p))
	if err != nil {
		return 0, fmt.Errorf("renew %s: %w", c.Name, err)
	}
	if c.Kubeconfig {
		err = s.writeKubeconfig(c, ca, kp)
	} else {
		keyFile := c.File[:len(c.File)-len(".crt")] + ".key"
		err = s.FS.WriteTogether(
			nodefs.File{Path: keyFile, Mode: pki.KeyMode, Data: kp.Key},
			nodefs.File{Path: c.File, Mode: pki.CertMode, Data: kp.Cert})
	}
	if err != nil {
		return 0, fmt.Errorf("renew %s: %w", c.Name, err)
	}
	return Renewed, nil
}

// requestFrom copies what kubeadm keeps of a certificate: CN, O, DNS and IP SANs, and extended key usages.
func requestFrom(old *x509.Certificate, p Policy) pki.Request {
	return pki.Request{
		CommonName:   old.Subject.CommonName,
		Organization: old.Subject.Organization,
		DNSNames:     old.DNSNames,
		IPs:          old.IPAddresses,
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  old.ExtKeyUsage,
		Algorithm:    p.Algorithm,
		Validity:     p.Validity,
	}
}

func (s *Set) caCertFile(name string) string {
	if ca, ok := s.CA(name); ok {
		return ca.CertFile
	}
	return name
}

// loadCA reads the CA called name with its key.
func (s *Set) loadCA(name string) (pki.CA, error) {
	ca, ok := s.CA(name)
	if !ok {
		return pki.CA{}, fmt.Errorf("no CA %q on this node's list", name)
	}
	certPEM, err := s.FS.ReadFile(ca.CertFile)
	if err != nil {
		return pki.CA{}, fmt.Errorf("read the CA: %w", err)
	}
	keyPEM, err := s.FS.ReadFile(ca.KeyFile)
	if err != nil {
		return pki.CA{}, fmt.Errorf("read the CA's key: %w", err)
	}
	parsed, err := pki.ParseCA(certPEM, keyPEM)
	if err != nil {
		return pki.CA{}, fmt.Errorf("CA %s: %w", ca.CertFile, err)
	}
	return parsed, nil
}

// writeKubeconfig puts the new client certificate and key into c's kubeconfig, and the CA on disk into its
// cluster, keeping every other field.
func (s *Set) writeKubeconfig(c Cert, ca pki.CA, kp pki.KeyPair) error {
	b, err := s.FS.ReadFile(c.File)
	if err != nil {
		return err
	}
	kc, err := clientcmd.Load(b)
	if err != nil {
		return fmt.Errorf("%s: %w", c.File, err)
	}
	cluster, user, err := kubeconfig.Current(kc)
	if err != nil || user == nil {
		return fmt.Errorf("%s: no current context with a cluster and a user", c.File)
	}
	cluster.CertificateAuthorityData = pki.EncodeCertPEM(ca.Cert.Raw)
	user.ClientCertificateData, user.ClientKeyData = kp.Cert, kp.Key
	out, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("%s: %w", c.File, err)
	}
	return s.FS.WriteTogether(nodefs.File{Path: c.File, Mode: kubeconfig.FileMode, Data: out})
}
