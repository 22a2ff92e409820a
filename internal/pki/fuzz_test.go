package pki

import (
	"bytes"
	"crypto"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/util/keyutil"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

func testdataFile(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// addPairSeeds adds the test-only CAs (ECDSA and RSA), a leaf, mismatched pairs and broken PEM.
func addPairSeeds(f *testing.F) {
	ca, caKey := testdataFile(f, "ca.crt"), testdataFile(f, "ca.key")
	fp, fpKey := testdataFile(f, "front-proxy-ca.crt"), testdataFile(f, "front-proxy-ca.key")
	leaf, leafKey := testdataFile(f, "leaf.crt"), testdataFile(f, "leaf.key")
	f.Add(ca, caKey)
	f.Add(fp, fpKey)
	f.Add(ca, fpKey)
	f.Add(leaf, leafKey)
	f.Add(append(bytes.Clone(fp), ca...), fpKey)
	f.Add(ca, ca)
	f.Add(caKey, caKey)
	f.Add(bytes.ReplaceAll(ca, []byte("CERTIFICATE"), []byte("PRIVATE KEY")), caKey[:len(caKey)/2])
	f.Add([]byte{}, []byte{})
}

// FuzzParseCA feeds certificate and key files to ParseCA, which init, join, certs renew and copycerts use on
// existing CAs: what it takes must be a CA with its own key, and no error may carry key material.
func FuzzParseCA(f *testing.F) {
	addPairSeeds(f)
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		ca, err := ParseCA(certPEM, keyPEM)
		if err != nil {
			if ca.Cert != nil || ca.Key != nil {
				t.Fatalf("ParseCA returned a CA and the error %v", err)
			}
			if keyleak.In([]byte(err.Error())) || keyleak.Echoes(err.Error(), string(keyPEM)) {
				t.Fatalf("the error carries key material: %v", err)
			}
			return
		}
		if ca.Cert == nil || ca.Key == nil || !ca.Cert.IsCA || !KeyMatches(ca.Cert, ca.Key) {
			t.Fatalf("ParseCA accepted what is not a CA with its key: %+v", ca)
		}
		// Written as kubeboot writes keys, the key reads back the same.
		out, err := keyutil.MarshalPrivateKeyToPEM(ca.Key)
		if err != nil {
			t.Fatalf("the CA key does not write: %v", err)
		}
		again, err := ParseCA(EncodeCertPEM(ca.Cert.Raw), out)
		if err != nil {
			t.Fatalf("the CA, written and parsed again: %v", err)
		}
		if !again.Cert.Equal(ca.Cert) || !again.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(ca.Key.Public()) {
			t.Fatal("the CA, written and parsed again, differs")
		}
	})
}

// FuzzLoadCA feeds an existing ca.crt and ca.key to LoadCA, the reader init's certs phase and join use: it returns
// a CA valid now with its key, or, without a key file, an external CA; otherwise an error naming the file with no
// key material in it.
func FuzzLoadCA(f *testing.F) {
	addPairSeeds(f)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		fsys := nodefs.Memory()
		cluster := &config.Cluster{}
		dir := Dir(cluster)
		if err := fsys.WriteFile(dir+"/ca.crt", certPEM, CertMode); err != nil {
			t.Fatal(err)
		}
		if len(keyPEM) > 0 {
			if err := fsys.WriteFile(dir+"/ca.key", keyPEM, KeyMode); err != nil {
				t.Fatal(err)
			}
		}
		ca, err := LoadCA(fsys, cluster, "ca", now)
		if err != nil {
			if ca.Cert != nil {
				t.Fatalf("LoadCA returned a CA and the error %v", err)
			}
			if keyleak.In([]byte(err.Error())) || keyleak.Echoes(err.Error(), string(keyPEM)) {
				t.Fatalf("the error carries key material: %v", err)
			}
			return
		}
		if ca.Cert == nil || !ca.Cert.IsCA || now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
			t.Fatalf("LoadCA accepted a CA that is not a CA valid now: %+v", ca.Cert)
		}
		if (ca.Key == nil) != (len(keyPEM) == 0) || ca.Key != nil && !KeyMatches(ca.Cert, ca.Key) {
			t.Fatalf("LoadCA: key %v with a key file of %d bytes", ca.Key != nil, len(keyPEM))
		}
	})
}
