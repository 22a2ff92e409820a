package pki

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"os/exec"
	"sync"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedSource() Source {
	return Source{Now: func() time.Time { return testNow }}
}

// zeroReader makes crypto/rand.Int return its smallest value, so the serial number shows the injected source.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func TestNewCAAndSignedCertUseTheSource(t *testing.T) {
	key, err := NewPrivateKey(config.EncryptionAlgorithmECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	var keyCalls []config.EncryptionAlgorithmType
	src := Source{
		Now:  func() time.Time { return testNow },
		Rand: zeroReader{},
		NewKey: func(alg config.EncryptionAlgorithmType) (crypto.Signer, error) {
			keyCalls = append(keyCalls, alg)
			return key, nil
		},
	}
	caKP, err := NewCA(src, Request{CommonName: "test-ca", IsCA: true, KeyUsage: caKeyUsage, Algorithm: config.EncryptionAlgorithmECDSAP384, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ParseCA(caKP.Cert, caKP.Key)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.SerialNumber.Int64() != 1 {
		t.Errorf("serial = %s, want 1 from the zero reader", ca.Cert.SerialNumber)
	}
	if !ca.Cert.NotBefore.Equal(testNow.Add(-5*time.Minute)) || !ca.Cert.NotAfter.Equal(testNow.Add(time.Hour)) {
		t.Errorf("validity = %s..%s", ca.Cert.NotBefore, ca.Cert.NotAfter)
	}
	if !KeyMatches(ca.Cert, key) {
		t.Error("CA does not use the injected key")
	}
	notBefore := testNow.Add(-72 * time.Hour)
	leafKP, err := NewSignedCert(src, ca, Request{CommonName: "leaf", ExtKeyUsage: clientAuth, KeyUsage: leafKeyUsage, NotBefore: notBefore, Validity: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, leafKP.Cert)
	if !leaf.NotBefore.Equal(notBefore) || !leaf.NotAfter.Equal(testNow.Add(2*time.Hour)) {
		t.Errorf("leaf validity = %s..%s", leaf.NotBefore, leaf.NotAfter)
	}
	if err := leaf.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("leaf not signed by the CA: %v", err)
	}
	if want := []config.EncryptionAlgorithmType{config.EncryptionAlgorithmECDSAP384, ""}; len(keyCalls) != 2 || keyCalls[0] != want[0] || keyCalls[1] != want[1] {
		t.Errorf("key requests = %q, want %q", keyCalls, want)
	}
}

func TestIssueErrors(t *testing.T) {
	ca := func() CA {
		kp, err := NewCA(fixedSource(), Request{CommonName: "c", IsCA: true, KeyUsage: caKeyUsage, Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCA(kp.Cert, kp.Key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}()
	keyless := CA{Cert: ca.Cert}
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"NewCA of a leaf request", func() error { _, err := NewCA(fixedSource(), Request{CommonName: "x"}); return err },
			"NewCA: the request is not for a CA"},
		{"unknown algorithm", func() error {
			_, err := NewCA(fixedSource(), Request{CommonName: "x", IsCA: true, Algorithm: "DSA-1024"})
			return err
		}, `CA "x": encryptionAlgorithm "DSA-1024" is not supported (use RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 or ECDSA-P384)`},
		{"no common name", func() error {
			_, err := NewSignedCert(fixedSource(), ca, Request{ExtKeyUsage: clientAuth, Algorithm: config.EncryptionAlgorithmECDSAP256})
			return err
		}, `certificate "": a common name is required`},
		{"no extended key usage", func() error {
			_, err := NewSignedCert(fixedSource(), ca, Request{CommonName: "x", Algorithm: config.EncryptionAlgorithmECDSAP256})
			return err
		}, `certificate "x": at least one extended key usage is required`},
		{"CA without key", func() error {
			_, err := NewSignedCert(fixedSource(), keyless, Request{CommonName: "x", ExtKeyUsage: clientAuth})
			return err
		}, `certificate "x": the CA's private key is not available`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// spkiByHand walks the certificate's DER without crypto/x509: Certificate ::= SEQUENCE { tbsCertificate, ... };
// tbsCertificate ::= SEQUENCE { [0] version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }.
func spkiByHand(t *testing.T, der []byte) []byte {
	t.Helper()
	var cert, tbs, el asn1.RawValue
	if _, err := asn1.Unmarshal(der, &cert); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(cert.Bytes, &tbs); err != nil {
		t.Fatal(err)
	}
	rest := tbs.Bytes
	for i := 0; i < 7; i++ {
		var err error
		if rest, err = asn1.Unmarshal(rest, &el); err != nil {
			t.Fatal(err)
		}
		if i == 0 && !(el.Class == asn1.ClassContextSpecific && el.Tag == 0) {
			t.Fatal("expected an explicit v3 version field first")
		}
	}
	return el.FullBytes
}

func TestDiscoveryHash(t *testing.T) {
	for _, alg := range []config.EncryptionAlgorithmType{config.EncryptionAlgorithmRSA2048, config.EncryptionAlgorithmECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			kp, err := NewCA(fixedSource(), Request{CommonName: "kubernetes", IsCA: true, KeyUsage: caKeyUsage, Algorithm: alg, Validity: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			cert := parseCert(t, kp.Cert)
			got := DiscoveryHash(cert)

			sum := sha256.Sum256(spkiByHand(t, cert.Raw))
			if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
				t.Errorf("DiscoveryHash = %s, hand-parsed DER gives %s", got, want)
			}

			// The recipe from kubeadm's documentation, with pkey so that it works for EC keys too.
			openssl, err := exec.LookPath("openssl")
			if err != nil {
				t.Log("openssl not installed: checked against the hand-parsed DER only")
				return
			}
			pub := exec.Command(openssl, "x509", "-pubkey", "-noout")
			pub.Stdin = bytes.NewReader(kp.Cert)
			pubPEM, err := pub.Output()
			if err != nil {
				t.Fatalf("openssl x509: %v", err)
			}
			der := exec.Command(openssl, "pkey", "-pubin", "-outform", "DER")
			der.Stdin = bytes.NewReader(pubPEM)
			spki, err := der.Output()
			if err != nil {
				t.Fatalf("openssl pkey: %v", err)
			}
			sum = sha256.Sum256(spki)
			if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
				t.Errorf("DiscoveryHash = %s, openssl gives %s", got, want)
			}
		})
	}
}

// The first key of a WithSpareKey source is made alongside a spare of the same algorithm; the second call takes
// the spare; after that, and for another algorithm, keys are made as they are asked for.
func TestWithSpareKey(t *testing.T) {
	type call struct{ alg config.EncryptionAlgorithmType }
	newSource := func() (Source, *sync.Mutex, *[]call, *int) {
		var mu sync.Mutex
		var calls []call
		inFlight, most := 0, 0
		src := Source{NewKey: func(alg config.EncryptionAlgorithmType) (crypto.Signer, error) {
			mu.Lock()
			calls = append(calls, call{alg})
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond) // long enough for a spare started alongside to overlap
			k, err := NewPrivateKey(config.EncryptionAlgorithmECDSAP256)
			mu.Lock()
			inFlight--
			mu.Unlock()
			return k, err
		}}
		return src.WithSpareKey(), &mu, &calls, &most
	}
	t.Run("the second key is the spare, made alongside the first", func(t *testing.T) {
		src, mu, calls, most := newSource()
		first, err := src.newKey(config.EncryptionAlgorithmRSA2048)
		if err != nil {
			t.Fatal(err)
		}
		second, err := src.newKey(config.EncryptionAlgorithmRSA2048)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n, m := len(*calls), *most
		mu.Unlock()
		if n != 2 || m != 2 {
			t.Fatalf("%d keys made, at most %d at once; want 2 made, both at once", n, m)
		}
		if first.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(second.Public()) {
			t.Fatal("the spare is the first key")
		}
		if _, err := src.newKey(config.EncryptionAlgorithmRSA2048); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(*calls) != 3 {
			t.Fatalf("%d keys made after a third call, want 3 (one spare only)", len(*calls))
		}
	})
	t.Run("a second call for another algorithm does not get the spare", func(t *testing.T) {
		src, mu, calls, _ := newSource()
		if _, err := src.newKey(config.EncryptionAlgorithmRSA2048); err != nil {
			t.Fatal(err)
		}
		if _, err := src.newKey(config.EncryptionAlgorithmECDSAP256); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(*calls) != 3 || (*calls)[2].alg != config.EncryptionAlgorithmECDSAP256 {
			t.Fatalf("calls %v, want the two RSA-2048 (first and spare) and then ECDSA-P256", *calls)
		}
	})
}
