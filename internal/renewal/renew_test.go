package renewal

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

func byName(t *testing.T, s *Set, name string) Cert {
	t.Helper()
	i := slices.Index(s.Names(), name)
	if i < 0 {
		t.Fatalf("no certificate %s", name)
	}
	return s.Certs[i]
}

func certOf(t *testing.T, s *Set, name string) *x509.Certificate {
	t.Helper()
	c, err := s.Read(byName(t, s, name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keyOf reads the private key that goes with c: the .key file next to it, or the kubeconfig's client-key-data.
func keyOf(t *testing.T, fsys nodefs.FS, c Cert) crypto.Signer {
	t.Helper()
	var keyPEM []byte
	if c.Kubeconfig {
		b, err := fsys.ReadFile(c.File)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := clientcmd.Load(b)
		if err != nil {
			t.Fatal(err)
		}
		_, user, err := kubeconfig.Current(kc)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM = user.ClientKeyData
	} else {
		var err error
		if keyPEM, err = fsys.ReadFile(strings.TrimSuffix(c.File, ".crt") + ".key"); err != nil {
			t.Fatal(err)
		}
	}
	key, err := pki.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func publicKeyDER(t *testing.T, c *x509.Certificate) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var renewAt = testNow.Add(200 * 24 * time.Hour)

func renewSource() pki.Source { return pki.Source{Now: func() time.Time { return renewAt }} }

var testPolicy = Policy{Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: 8760 * time.Hour}

// TestRenewKeepsIdentity: every certificate of a control plane renews to a new key with the same subject, SANs
// and usages, a validity counted from now, signed by its CA, with the key on disk matching.
func TestRenewKeepsIdentity(t *testing.T) {
	fsys := controlPlaneNode(t)
	s := newTestSet(fsys, false)
	for _, c := range s.Certs {
		t.Run(c.Name, func(t *testing.T) {
			before := certOf(t, s, c.Name)
			out, err := s.Renew(c, testPolicy, renewSource())
			if err != nil || out != Renewed {
				t.Fatalf("Renew = %v, %v", out, err)
			}
			after := certOf(t, s, c.Name)
			if bytes.Equal(publicKeyDER(t, before), publicKeyDER(t, after)) {
				t.Error("same public key: kubeadm makes a new key")
			}
			if before.Subject.String() != after.Subject.String() || !slices.Equal(before.DNSNames, after.DNSNames) ||
				!slices.EqualFunc(before.IPAddresses, after.IPAddresses, net.IP.Equal) ||
				!slices.Equal(before.ExtKeyUsage, after.ExtKeyUsage) || before.KeyUsage != after.KeyUsage {
				t.Errorf("identity changed:\nbefore %s %v %v %v %v\nafter  %s %v %v %v %v", before.Subject, before.DNSNames, before.IPAddresses, before.ExtKeyUsage, before.KeyUsage,
					after.Subject, after.DNSNames, after.IPAddresses, after.ExtKeyUsage, after.KeyUsage)
			}
			if want := renewAt.Add(8760 * time.Hour); !after.NotAfter.Equal(want) {
				t.Errorf("NotAfter %v, want %v", after.NotAfter, want)
			}
			if want := renewAt.Add(-pki.Backdate); !after.NotBefore.Equal(want) {
				t.Errorf("NotBefore %v, want %v", after.NotBefore, want)
			}
			ca, err := s.loadCA(c.CAName)
			if err != nil {
				t.Fatal(err)
			}
			if err := after.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("not signed by %s: %v", c.CAName, err)
			}
			if !pki.KeyMatches(after, keyOf(t, fsys, c)) {
				t.Error("the key on disk does not match the renewed certificate")
			}
			if !c.Kubeconfig {
				fi, err := os.Stat(fsys.Path(strings.TrimSuffix(c.File, ".crt") + ".key"))
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("key mode %v (%v), want 0600", fi.Mode().Perm(), err)
				}
			}
		})
	}
}

// TestRenewKubeconfigKeepsTheRest: only the current user's certificate and key and the cluster's CA data change.
func TestRenewKubeconfigKeepsTheRest(t *testing.T) {
	fsys := controlPlaneNode(t)
	s := newTestSet(fsys, false)
	c := byName(t, s, "admin.conf")
	b, _ := fsys.ReadFile(c.File)
	kc, _ := clientcmd.Load(b)
	kc.Preferences.Colors = true // a field kubeboot never writes, which must survive
	b, _ = clientcmd.Write(*kc)
	if err := fsys.WriteFile(c.File, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Renew(c, testPolicy, renewSource()); err != nil {
		t.Fatal(err)
	}
	after, _ := fsys.ReadFile(c.File)
	kc2, err := clientcmd.Load(after)
	if err != nil {
		t.Fatal(err)
	}
	cl, user, _ := kubeconfig.Current(kc2)
	oldCl, oldUser, _ := kubeconfig.Current(kc)
	if cl.Server != oldCl.Server || kc2.CurrentContext != kc.CurrentContext || !kc2.Preferences.Colors {
		t.Errorf("kubeconfig fields changed: server %s (was %s), context %s (was %s), colors %v", cl.Server, oldCl.Server, kc2.CurrentContext, kc.CurrentContext, kc2.Preferences.Colors)
	}
	caPEM, _ := fsys.ReadFile("/etc/kubernetes/pki/ca.crt")
	if !bytes.Equal(cl.CertificateAuthorityData, caPEM) {
		t.Error("the cluster's CA data is not the CA on disk")
	}
	if bytes.Equal(user.ClientCertificateData, oldUser.ClientCertificateData) || bytes.Equal(user.ClientKeyData, oldUser.ClientKeyData) {
		t.Error("client certificate or key unchanged")
	}
}

// TestRenewSkipsAndRefuses: a missing certificate and one whose CA key is absent are skipped with kubeadm's
// messages; one that does not chain to the CA on disk is refused and left as it was.
func TestRenewSkipsAndRefuses(t *testing.T) {
	fsys := controlPlaneNode(t)
	s := newTestSet(fsys, false)
	if err := fsys.Remove("/etc/kubernetes/pki/etcd/peer.crt"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("/etc/kubernetes/pki/front-proxy-ca.key"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"etcd-peer":          "MISSING! certificate for etcd nodes to communicate with each other",
		"front-proxy-client": "Detected external front-proxy-ca, certificate for the front proxy client can't be renewed",
	} {
		c := byName(t, s, name)
		before, _ := fsys.ReadFile(strings.TrimSuffix(c.File, ".crt") + ".key")
		out, err := s.Renew(c, testPolicy, renewSource())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := out.Line(c); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
		if after, _ := fsys.ReadFile(strings.TrimSuffix(c.File, ".crt") + ".key"); !bytes.Equal(before, after) {
			t.Errorf("%s: the key changed", name)
		}
	}
	if got, want := Renewed.Line(byName(t, s, "apiserver")), "certificate for serving the Kubernetes API renewed"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := External.Line(byName(t, s, "etcd-server")), "Detected external etcd/ca, certificate for serving etcd can't be renewed"; got != want {
		t.Errorf("%q, want %q", got, want)
	}

	// apiserver.crt signed by another CA.
	other := controlPlaneNode(t)
	foreign, _ := other.ReadFile("/etc/kubernetes/pki/apiserver.crt")
	foreignKey, _ := other.ReadFile("/etc/kubernetes/pki/apiserver.key")
	if err := fsys.WriteFile("/etc/kubernetes/pki/apiserver.crt", foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile("/etc/kubernetes/pki/apiserver.key", foreignKey, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Renew(byName(t, s, "apiserver"), testPolicy, renewSource())
	want := "renew apiserver: /etc/kubernetes/pki/apiserver.crt is not signed by the CA in /etc/kubernetes/pki/ca.crt ("
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "); it was left alone: renew it with the CA that signed it, or put back that CA") {
		t.Fatalf("error %v, want one starting %q", err, want)
	}
	if after, _ := fsys.ReadFile("/etc/kubernetes/pki/apiserver.crt"); !bytes.Equal(after, foreign) {
		t.Error("a refused certificate was changed")
	}
}
