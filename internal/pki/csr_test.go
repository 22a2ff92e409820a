package pki

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
)

func TestNewCSR(t *testing.T) {
	req := Request{CommonName: "kube-apiserver", Organization: []string{"o"}, DNSNames: []string{"kubernetes"},
		IPs: []net.IP{net.ParseIP("10.96.0.1")}, Algorithm: config.EncryptionAlgorithmECDSAP256}
	csrPEM, keyPEM, err := NewCSR(Source{}, req)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("CSR PEM: %q", csrPEM)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "kube-apiserver" || csr.Subject.Organization[0] != "o" || csr.DNSNames[0] != "kubernetes" || !csr.IPAddresses[0].Equal(net.ParseIP("10.96.0.1")) {
		t.Errorf("CSR: %v %v %v", csr.Subject, csr.DNSNames, csr.IPAddresses)
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := key.(*ecdsa.PrivateKey); !ok || !key.Public().(*ecdsa.PublicKey).Equal(csr.PublicKey) {
		t.Errorf("key %T does not match the CSR's public key", key)
	}
}
