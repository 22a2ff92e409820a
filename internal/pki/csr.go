package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"path"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// CSRMode is the file mode of a certificate signing request: public, like a certificate.
const CSRMode = CertMode

// NewCSR makes a private key and a certificate signing request for the subject and SANs of req, for a CA whose
// key kubeboot does not have (kubeadm's `certs generate-csr`). It touches nothing but src.
func NewCSR(src Source, req Request) (csrPEM, keyPEM []byte, err error) {
	key, err := src.newKey(req.Algorithm)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %q: %w", req.CommonName, err)
	}
	der, err := x509.CreateCertificateRequest(src.rand(), &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: req.CommonName, Organization: req.Organization},
		DNSNames:    req.DNSNames,
		IPAddresses: req.IPs,
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %q: %w", req.CommonName, err)
	}
	if keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateRequestBlockType, Bytes: der}), keyPEM, nil
}

// WriteCSRs writes a key (<base>.key) and a certificate signing request (<base>.csr) for every leaf certificate
// into the cluster's certificates directory, as kubeadm's `certs generate-csr` does for an external CA: the CAs and
// the service-account key are left out, the etcd certificates are not. It refuses to overwrite a key or CSR, and
// returns the base names written.
func WriteCSRs(fsys nodefs.FS, cluster *config.Cluster, node *config.Node, src Source) ([]string, error) {
	dir := Dir(cluster)
	var written []string
	for _, s := range Specs() {
		if s.IsCA() {
			continue
		}
		keyPath, csrPath := s.KeyPath(dir), path.Join(dir, s.BaseName+".csr")
		for _, p := range []string{keyPath, csrPath} {
			if fsys.Exists(p) {
				return written, fmt.Errorf("%s already exists: move it away to generate a new key and CSR for %s", p, s.Name)
			}
		}
		req, err := s.Request(cluster, node)
		if err != nil {
			return written, err
		}
		csrPEM, keyPEM, err := NewCSR(src, req)
		if err != nil {
			return written, err
		}
		if err := fsys.WriteFile(keyPath, keyPEM, KeyMode); err != nil {
			return written, err
		}
		if err := fsys.WriteFile(csrPath, csrPEM, CSRMode); err != nil {
			return written, err
		}
		written = append(written, s.BaseName)
	}
	return written, nil
}
