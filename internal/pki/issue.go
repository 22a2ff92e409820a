package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"sync"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"kubeboot.dev/kubeboot/internal/config"
)

// Source is where new certificates get their time, serial numbers and keys. Tests pin all three; a zero field
// means the system's (time.Now, crypto/rand, NewPrivateKey).
type Source struct {
	Now    func() time.Time
	Rand   io.Reader
	NewKey func(config.EncryptionAlgorithmType) (crypto.Signer, error)
}

// SystemSource is the real clock, crypto/rand and fresh keys.
func SystemSource() Source {
	return Source{Now: time.Now, Rand: rand.Reader, NewKey: NewPrivateKey}
}

func (s Source) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s Source) rand() io.Reader {
	if s.Rand == nil {
		return rand.Reader
	}
	return s.Rand
}

func (s Source) newKey(alg config.EncryptionAlgorithmType) (crypto.Signer, error) {
	if s.NewKey == nil {
		return NewPrivateKey(alg)
	}
	return s.NewKey(alg)
}

// Freeze returns s with its clock stopped at its current time, so that every certificate of one run has the
// same times, as in kubeadm.
func (s Source) Freeze() Source {
	t := s.now()
	s.Now = func() time.Time { return t }
	return s
}

// WithSpareKey returns s with one key made ahead: its first NewKey call also starts making a second key of the
// same algorithm alongside (on another CPU), which the next call takes, waiting for it if need be. Later calls, and
// a next call for another algorithm, make their own. Init uses it for the two keys the kubelet's start waits for,
// the CA's and then kubelet.conf's, which would otherwise be made one after the other.
func (s Source) WithSpareKey() Source {
	type made struct {
		key crypto.Signer
		err error
	}
	base := s.newKey // s as it is now: the returned Source's NewKey must not call itself
	var (
		mu       sync.Mutex
		started  bool
		spare    chan made
		spareAlg config.EncryptionAlgorithmType
	)
	s.NewKey = func(alg config.EncryptionAlgorithmType) (crypto.Signer, error) {
		mu.Lock()
		if !started {
			started, spareAlg = true, alg
			ch := make(chan made, 1)
			spare = ch
			go func() {
				k, err := base(alg)
				ch <- made{k, err}
			}()
			mu.Unlock()
			return base(alg)
		}
		ch := spare
		spare = nil
		mu.Unlock()
		if ch != nil && alg == spareAlg {
			m := <-ch
			return m.key, m.err
		}
		return base(alg)
	}
	return s
}

// NewPrivateKey generates a key of the configured algorithm; an empty algorithm is RSA-2048, as in kubeadm.
func NewPrivateKey(alg config.EncryptionAlgorithmType) (crypto.Signer, error) {
	switch alg {
	case config.EncryptionAlgorithmECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case config.EncryptionAlgorithmECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case config.EncryptionAlgorithmRSA2048, "":
		return rsa.GenerateKey(rand.Reader, 2048)
	case config.EncryptionAlgorithmRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case config.EncryptionAlgorithmRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("encryptionAlgorithm %q is not supported (use RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 or ECDSA-P384)", alg)
}

// Request is everything that goes into one certificate: a Spec resolved against a configuration, or built by
// hand (kubeconfig client certificates).
type Request struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	KeyUsage     x509.KeyUsage
	ExtKeyUsage  []x509.ExtKeyUsage
	IsCA         bool
	Algorithm    config.EncryptionAlgorithmType
	// NotBefore, when zero, is the source's now minus Backdate.
	NotBefore time.Time
	// Validity counts from the source's now (not from NotBefore), as kubeadm does.
	Validity time.Duration
}

// KeyPair is a PEM-encoded certificate and its PEM-encoded private key.
type KeyPair struct {
	Cert []byte
	Key  []byte
}

// CA is a parsed certificate authority. Key is nil for an external CA, whose key kubeboot does not have.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate as read or generated (it may hold a bundle), for embedding in kubeconfigs.
	PEM []byte
}

// NewCA makes a self-signed CA certificate and its key. It touches nothing but src.
func NewCA(src Source, req Request) (KeyPair, error) {
	if !req.IsCA {
		return KeyPair{}, errors.New("NewCA: the request is not for a CA")
	}
	key, err := src.newKey(req.Algorithm)
	if err != nil {
		return KeyPair{}, fmt.Errorf("CA %q: %w", req.CommonName, err)
	}
	tmpl, err := template(src, req)
	if err != nil {
		return KeyPair{}, fmt.Errorf("CA %q: %w", req.CommonName, err)
	}
	der, err := x509.CreateCertificate(src.rand(), tmpl, tmpl, key.Public(), key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("CA %q: %w", req.CommonName, err)
	}
	return encodePair(der, key)
}

// NewSignedCert makes a certificate signed by ca, with a new key. It touches nothing but src.
func NewSignedCert(src Source, ca CA, req Request) (KeyPair, error) {
	if ca.Cert == nil || ca.Key == nil {
		return KeyPair{}, fmt.Errorf("certificate %q: the CA's private key is not available", req.CommonName)
	}
	if len(req.ExtKeyUsage) == 0 && !req.IsCA {
		return KeyPair{}, fmt.Errorf("certificate %q: at least one extended key usage is required", req.CommonName)
	}
	key, err := src.newKey(req.Algorithm)
	if err != nil {
		return KeyPair{}, fmt.Errorf("certificate %q: %w", req.CommonName, err)
	}
	tmpl, err := template(src, req)
	if err != nil {
		return KeyPair{}, fmt.Errorf("certificate %q: %w", req.CommonName, err)
	}
	der, err := x509.CreateCertificate(src.rand(), tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("certificate %q: %w", req.CommonName, err)
	}
	return encodePair(der, key)
}

func template(src Source, req Request) (*x509.Certificate, error) {
	if req.CommonName == "" {
		return nil, errors.New("a common name is required")
	}
	// Uniform in [1, MaxInt64), like kubeadm: positive and fits in 63 bits.
	serial, err := rand.Int(src.rand(), big.NewInt(math.MaxInt64-1))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	serial.Add(serial, big.NewInt(1))
	now := src.now().UTC()
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = now.Add(-Backdate)
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName, Organization: req.Organization},
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
		NotBefore:             notBefore.UTC(),
		NotAfter:              now.Add(req.Validity),
		KeyUsage:              req.KeyUsage,
		ExtKeyUsage:           req.ExtKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  req.IsCA,
	}, nil
}

func encodePair(der []byte, key crypto.Signer) (KeyPair, error) {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Cert: EncodeCertPEM(der), Key: keyPEM}, nil
}

// EncodeCertPEM wraps a DER certificate in a CERTIFICATE block.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: der})
}

// EncodePublicKeyPEM encodes a public key as a PKIX "PUBLIC KEY" block, the format of sa.pub.
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParseCA parses a CA certificate (the first of a bundle) and, if keyPEM is not nil, its key; it checks that the
// certificate is a CA and that the key belongs to it.
func ParseCA(certPEM, keyPEM []byte) (CA, error) {
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return CA{}, err
	}
	ca := CA{Cert: certs[0], PEM: certPEM}
	if !ca.Cert.IsCA {
		return CA{}, errors.New("the certificate is not a CA (basic constraints CA:FALSE)")
	}
	if keyPEM == nil {
		return ca, nil
	}
	if ca.Key, err = ParsePrivateKeyPEM(keyPEM); err != nil {
		return CA{}, err
	}
	if !KeyMatches(ca.Cert, ca.Key) {
		return CA{}, errors.New("the private key does not belong to the certificate")
	}
	return ca, nil
}

// ParsePrivateKeyPEM parses an RSA or ECDSA private key (PKCS#1, SEC 1 or PKCS#8).
func ParsePrivateKeyPEM(keyPEM []byte) (crypto.Signer, error) {
	k, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T (RSA or ECDSA expected)", k)
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// DiscoveryHash is the CA public key pin that `join --discovery-token-ca-cert-hash` expects:
// "sha256:" + hex SHA-256 of the certificate's DER SubjectPublicKeyInfo.
func DiscoveryHash(caCert *x509.Certificate) string {
	sum := sha256.Sum256(caCert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}
