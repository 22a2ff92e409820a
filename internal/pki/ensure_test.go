package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/keyutil"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

const pkiDir = "/etc/kubernetes/pki"

// snapshot reads every file under the temporary root, keyed by node path.
func snapshot(t *testing.T, fsys nodefs.FS) map[string][]byte {
	t.Helper()
	files, err := fsys.List("/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := fsys.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

func mustEnsureAll(t *testing.T, fsys nodefs.FS, cfg *config.Init, src Source) []Result {
	t.Helper()
	res, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), src)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func actions(res []Result) map[string]Action {
	out := map[string]Action{}
	for _, r := range res {
		out[r.Phase] = r.Action
	}
	return out
}

func allPhases(a Action) map[string]Action {
	out := map[string]Action{}
	for _, p := range Phases() {
		out[p.Name] = a
	}
	return out
}

func TestEnsureAllMakesKubeadmsTree(t *testing.T) {
	leafDNS := []string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	etcdDNS := []string{"cp-1", "localhost"}
	etcdIPs := ips("192.168.10.5", "127.0.0.1", "::1")
	type want struct {
		base, ca, cn string
		org          []string
		dns          []string
		ips          []net.IP
		isCA         bool
		eku          []x509.ExtKeyUsage
	}
	server, client, both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	wants := []want{
		{base: "ca", cn: "kubernetes", dns: []string{"kubernetes"}, isCA: true},
		{base: "apiserver", ca: "ca", cn: "kube-apiserver", dns: leafDNS, ips: ips("10.96.0.1", "192.168.10.5"), eku: server},
		{base: "apiserver-kubelet-client", ca: "ca", cn: "kube-apiserver-kubelet-client", eku: client},
		{base: "front-proxy-ca", cn: "front-proxy-ca", dns: []string{"front-proxy-ca"}, isCA: true},
		{base: "front-proxy-client", ca: "front-proxy-ca", cn: "front-proxy-client", eku: client},
		{base: "etcd/ca", cn: "etcd-ca", dns: []string{"etcd-ca"}, isCA: true},
		{base: "etcd/server", ca: "etcd/ca", cn: "cp-1", dns: etcdDNS, ips: etcdIPs, eku: both},
		{base: "etcd/peer", ca: "etcd/ca", cn: "cp-1", dns: etcdDNS, ips: etcdIPs, eku: both},
		{base: "etcd/healthcheck-client", ca: "etcd/ca", cn: "kube-etcd-healthcheck-client", eku: client},
		{base: "apiserver-etcd-client", ca: "etcd/ca", cn: "kube-apiserver-etcd-client", eku: client},
	}
	algs := []struct {
		alg               config.EncryptionAlgorithmType
		validity, caValid time.Duration
		checkKey          func(crypto.PublicKey) bool
		sigAlg            x509.SignatureAlgorithm
	}{
		{config.EncryptionAlgorithmRSA2048, 8760 * time.Hour, 87600 * time.Hour,
			func(k crypto.PublicKey) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 2048 }, x509.SHA256WithRSA},
		{config.EncryptionAlgorithmECDSAP256, 720 * time.Hour, 8760 * time.Hour,
			func(k crypto.PublicKey) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve == elliptic.P256() }, x509.ECDSAWithSHA256},
	}
	for _, a := range algs {
		t.Run(string(a.alg), func(t *testing.T) {
			cfg := testConfig(a.alg)
			cfg.Cluster.CertificateValidityPeriod = &metav1.Duration{Duration: a.validity}
			cfg.Cluster.CACertificateValidityPeriod = &metav1.Duration{Duration: a.caValid}
			fsys := nodefs.FS{Root: t.TempDir()}
			res := mustEnsureAll(t, fsys, cfg, fixedSource())

			if got, want := actions(res), allPhases(Generated); !maps.Equal(got, want) {
				t.Errorf("actions = %v, want %v", got, want)
			}
			var order []string
			for _, r := range res {
				order = append(order, r.Phase)
			}
			if want := []string{"ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client", "etcd-ca",
				"etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client", "sa"}; !slices.Equal(order, want) {
				t.Errorf("result order = %v", order)
			}
			if r := res[1]; !slices.Equal(r.SANs, []string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1", "192.168.10.5"}) {
				t.Errorf("apiserver result SANs = %v", r.SANs)
			}

			// Exactly kubeadm's files, with kubeadm's modes, and no leftovers of the atomic writes.
			var wantFiles []string
			for _, w := range wants {
				wantFiles = append(wantFiles, pkiDir+"/"+w.base+".crt", pkiDir+"/"+w.base+".key")
			}
			wantFiles = append(wantFiles, pkiDir+"/sa.key", pkiDir+"/sa.pub")
			slices.Sort(wantFiles)
			files := slices.Sorted(maps.Keys(snapshot(t, fsys)))
			if !slices.Equal(files, wantFiles) {
				t.Fatalf("files = %v\nwant %v", files, wantFiles)
			}
			for _, f := range files {
				fi, err := os.Stat(fsys.Path(f))
				if err != nil {
					t.Fatal(err)
				}
				wantMode := os.FileMode(0o644)
				if filepath.Ext(f) == ".key" {
					wantMode = 0o600
				}
				if fi.Mode().Perm() != wantMode {
					t.Errorf("%s mode = %v, want %v", f, fi.Mode().Perm(), wantMode)
				}
			}
			// The directories holding the keys are kubeboot's own: not world-readable.
			for _, d := range []string{pkiDir, pkiDir + "/etcd"} {
				if fi, err := os.Stat(fsys.Path(d)); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
				}
			}

			certs := map[string]*x509.Certificate{}
			for _, w := range wants {
				t.Run(w.base, func(t *testing.T) {
					c := readCert(t, fsys, w.base)
					certs[w.base] = c
					key := readKey(t, fsys, w.base)
					if c.Subject.CommonName != w.cn || !slices.Equal(c.Subject.Organization, w.org) {
						t.Errorf("subject = CN %q O %q, want CN %q O %q", c.Subject.CommonName, c.Subject.Organization, w.cn, w.org)
					}
					if !slices.Equal(c.DNSNames, w.dns) {
						t.Errorf("DNS SANs = %q, want %q", c.DNSNames, w.dns)
					}
					if !slices.EqualFunc(c.IPAddresses, w.ips, net.IP.Equal) {
						t.Errorf("IP SANs = %v, want %v", c.IPAddresses, w.ips)
					}
					wantKU, validity := x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, a.validity
					if w.isCA {
						wantKU, validity = wantKU|x509.KeyUsageCertSign, a.caValid
					}
					if c.KeyUsage != wantKU || !slices.Equal(c.ExtKeyUsage, w.eku) || c.IsCA != w.isCA || !c.BasicConstraintsValid {
						t.Errorf("usages = %v %v CA=%v, want %v %v CA=%v", c.KeyUsage, c.ExtKeyUsage, c.IsCA, wantKU, w.eku, w.isCA)
					}
					if !c.NotBefore.Equal(testNow.Add(-5*time.Minute)) || !c.NotAfter.Equal(testNow.Add(validity)) {
						t.Errorf("validity = %s..%s, want %s..%s", c.NotBefore, c.NotAfter, testNow.Add(-5*time.Minute), testNow.Add(validity))
					}
					if s := c.SerialNumber; s.Sign() <= 0 || s.Cmp(bigMaxInt64) >= 0 {
						t.Errorf("serial %s out of [1, MaxInt64)", s)
					}
					if !a.checkKey(c.PublicKey) || c.SignatureAlgorithm != a.sigAlg {
						t.Errorf("key %T / signature %v, want %s", c.PublicKey, c.SignatureAlgorithm, a.alg)
					}
					if !KeyMatches(c, key) {
						t.Error("key file does not match the certificate")
					}
				})
			}
			for _, w := range wants {
				issuer := certs[w.ca]
				if w.isCA {
					issuer = certs[w.base]
				}
				roots := x509.NewCertPool()
				roots.AddCert(issuer)
				if _, err := certs[w.base].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("%s does not chain to %s: %v", w.base, w.ca, err)
				}
				// And not to the other CAs.
				for _, other := range []string{"ca", "front-proxy-ca", "etcd/ca"} {
					if other != w.ca && !(w.isCA && other == w.base) && certs[w.base].CheckSignatureFrom(certs[other]) == nil {
						t.Errorf("%s is also signed by %s", w.base, other)
					}
				}
			}

			saKey := readKey(t, fsys, "sa")
			pubs, err := keyutil.PublicKeysFromFile(fsys.Path(pkiDir + "/sa.pub"))
			if err != nil {
				t.Fatal(err)
			}
			if !a.checkKey(saKey.Public()) || !saKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pubs[0]) {
				t.Errorf("sa.key %T and sa.pub %T: want a matching %s pair", saKey, pubs[0], a.alg)
			}
		})
	}
}

var bigMaxInt64 = new(big.Int).SetInt64(math.MaxInt64)

func readCert(t *testing.T, fsys nodefs.FS, base string) *x509.Certificate {
	t.Helper()
	b, err := fsys.ReadFile(pkiDir + "/" + base + ".crt")
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, b)
}

func readKey(t *testing.T, fsys nodefs.FS, base string) crypto.Signer {
	t.Helper()
	b, err := fsys.ReadFile(pkiDir + "/" + base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestEnsureAllExternalEtcd(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	cfg.Cluster.Etcd = config.Etcd{External: &config.ExternalEtcd{Endpoints: []string{"https://10.0.0.9:2379"}}}
	fsys := nodefs.FS{Root: t.TempDir()}
	res := mustEnsureAll(t, fsys, cfg, fixedSource())
	want := allPhases(Generated)
	for _, p := range []string{"etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"} {
		want[p] = Skipped
	}
	if got := actions(res); !maps.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	for f := range snapshot(t, fsys) {
		if filepath.Base(filepath.Dir(f)) == "etcd" || filepath.Base(f) == "apiserver-etcd-client.crt" {
			t.Errorf("external etcd, yet %s was written", f)
		}
	}
	r, err := Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), "etcd-server", fixedSource())
	if err != nil || r.Action != Skipped || r.Note != "external etcd" {
		t.Errorf("Ensure(etcd-server) = %+v, %v; want skipped for external etcd", r, err)
	}
}

func TestEnsureRerunReusesEverything(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := nodefs.FS{Root: t.TempDir()}
	mustEnsureAll(t, fsys, cfg, fixedSource())
	before := snapshot(t, fsys)

	later := Source{Now: func() time.Time { return testNow.Add(30 * 24 * time.Hour) }}
	res := mustEnsureAll(t, fsys, cfg, later)
	if got, want := actions(res), allPhases(Reused); !maps.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	// A superset of SANs is fine: drop a certSAN the certificate still carries.
	cfg.Cluster.APIServer.CertSANs = nil
	for _, p := range Phases() {
		r, err := Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), p.Name, later)
		if err != nil || r.Action != Reused {
			t.Errorf("Ensure(%s) = %v, %v; want reused", p.Name, r.Action, err)
		}
	}
	if after := snapshot(t, fsys); !maps.EqualFunc(before, after, slices.Equal) {
		t.Error("a rerun changed files")
	}
}

func TestEnsureUsesUserCA(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := nodefs.FS{Root: t.TempDir()}
	// The user's own CA, RSA with another name: kubeboot must sign with it and leave it alone.
	kp, err := NewCA(fixedSource(), Request{CommonName: "acme-root", IsCA: true, KeyUsage: caKeyUsage, Algorithm: config.EncryptionAlgorithmRSA2048, Validity: time.Hour * 24 * 365})
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile(pkiDir+"/ca.crt", kp.Cert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile(pkiDir+"/ca.key", kp.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	res := mustEnsureAll(t, fsys, cfg, fixedSource())
	want := allPhases(Generated)
	want["ca"] = Reused
	if got := actions(res); !maps.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	after := snapshot(t, fsys)
	if !slices.Equal(after[pkiDir+"/ca.crt"], kp.Cert) || !slices.Equal(after[pkiDir+"/ca.key"], kp.Key) {
		t.Error("the user's CA was rewritten")
	}
	ca := parseCert(t, kp.Cert)
	for _, leaf := range []string{"apiserver", "apiserver-kubelet-client"} {
		if err := readCert(t, fsys, leaf).CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s not signed by the user's CA: %v", leaf, err)
		}
	}
}

func TestEnsureExternalCA(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	extErr := "external CA mode (/etc/kubernetes/pki/ca.crt present, /etc/kubernetes/pki/ca.key absent): kubeboot cannot sign /etc/kubernetes/pki/%[1]s.crt; " +
		"provide /etc/kubernetes/pki/%[1]s.crt and /etc/kubernetes/pki/%[1]s.key signed by that CA, or provide /etc/kubernetes/pki/ca.key"

	t.Run("every leaf provided", func(t *testing.T) {
		fsys := nodefs.FS{Root: t.TempDir()}
		mustEnsureAll(t, fsys, cfg, fixedSource())
		if err := fsys.Remove(pkiDir + "/ca.key"); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, fsys)
		res := mustEnsureAll(t, fsys, cfg, fixedSource())
		if got, want := actions(res), allPhases(Reused); !maps.Equal(got, want) {
			t.Errorf("actions = %v, want %v", got, want)
		}
		if res[0].Note != "external CA: /etc/kubernetes/pki/ca.key is absent, so the certificates it signs must be provided" {
			t.Errorf("ca note = %q", res[0].Note)
		}
		if after := snapshot(t, fsys); !maps.EqualFunc(before, after, slices.Equal) {
			t.Error("external CA mode wrote files")
		}
	})
	t.Run("a leaf missing", func(t *testing.T) {
		fsys := nodefs.FS{Root: t.TempDir()}
		mustEnsureAll(t, fsys, cfg, fixedSource())
		for _, f := range []string{"ca.key", "apiserver.crt", "apiserver.key"} {
			if err := fsys.Remove(pkiDir + "/" + f); err != nil {
				t.Fatal(err)
			}
		}
		_, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource())
		if want := fmt.Sprintf(extErr, "apiserver"); err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		if fsys.Exists(pkiDir + "/apiserver.crt") {
			t.Error("apiserver.crt was generated without ca.key")
		}
	})
	t.Run("only ca.crt given", func(t *testing.T) {
		fsys := nodefs.FS{Root: t.TempDir()}
		kp, err := NewCA(fixedSource(), Request{CommonName: "kubernetes", IsCA: true, KeyUsage: caKeyUsage, Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := fsys.WriteFile(pkiDir+"/ca.crt", kp.Cert, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource())
		if want := fmt.Sprintf(extErr, "apiserver") + "\n" + fmt.Sprintf(extErr, "apiserver-kubelet-client"); err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		// The other CAs are independent: their trees are made.
		want := allPhases(Generated)
		want["ca"] = Reused
		delete(want, "apiserver")
		delete(want, "apiserver-kubelet-client")
		if got := actions(res); !maps.Equal(got, want) {
			t.Errorf("actions = %v, want %v", got, want)
		}
	})
}

func TestEnsureRefuses(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	// other is a second, unrelated tree, for "signed by another CA" cases.
	other := nodefs.FS{Root: t.TempDir()}
	mustEnsureAll(t, other, cfg, fixedSource())
	copyFrom := func(t *testing.T, to nodefs.FS, from nodefs.FS, src, dst string) {
		b, err := from.ReadFile(pkiDir + "/" + src)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.WriteFile(pkiDir+"/"+dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(t *testing.T, fsys nodefs.FS, files ...string) {
		for _, f := range files {
			if err := fsys.Remove(pkiDir + "/" + f); err != nil {
				t.Fatal(err)
			}
		}
	}
	apiRemedy := "remove /etc/kubernetes/pki/apiserver.crt and /etc/kubernetes/pki/apiserver.key to generate a new pair"
	tests := []struct {
		name   string
		mutate func(t *testing.T, fsys nodefs.FS, cfg *config.Init)
		now    time.Time
		phase  string // "" runs EnsureAll
		want   string
	}{
		{
			name: "advertise address changed",
			mutate: func(t *testing.T, _ nodefs.FS, cfg *config.Init) {
				cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "192.168.10.6"
			},
			phase: "apiserver",
			want: "certificate /etc/kubernetes/pki/apiserver.crt lacks the required names 192.168.10.6 (it has cp-1, kubernetes, kubernetes.default, " +
				"kubernetes.default.svc, kubernetes.default.svc.cluster.local, 10.96.0.1, 192.168.10.5); " + apiRemedy + ", or fix the configuration if those names are wrong",
		},
		{
			name: "advertise address changed, all phases",
			mutate: func(t *testing.T, _ nodefs.FS, cfg *config.Init) {
				cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "192.168.10.6"
			},
			want: "certificate /etc/kubernetes/pki/apiserver.crt lacks the required names 192.168.10.6 (it has cp-1, kubernetes, kubernetes.default, " +
				"kubernetes.default.svc, kubernetes.default.svc.cluster.local, 10.96.0.1, 192.168.10.5); " + apiRemedy + ", or fix the configuration if those names are wrong\n" +
				"certificate /etc/kubernetes/pki/etcd/server.crt lacks the required names 192.168.10.6 (it has cp-1, localhost, 192.168.10.5, 127.0.0.1, ::1); " +
				"remove /etc/kubernetes/pki/etcd/server.crt and /etc/kubernetes/pki/etcd/server.key to generate a new pair, or fix the configuration if those names are wrong\n" +
				"certificate /etc/kubernetes/pki/etcd/peer.crt lacks the required names 192.168.10.6 (it has cp-1, localhost, 192.168.10.5, 127.0.0.1, ::1); " +
				"remove /etc/kubernetes/pki/etcd/peer.crt and /etc/kubernetes/pki/etcd/peer.key to generate a new pair, or fix the configuration if those names are wrong",
		},
		{
			name: "new certSANs",
			mutate: func(t *testing.T, _ nodefs.FS, cfg *config.Init) {
				cfg.Cluster.APIServer.CertSANs = []string{"api.example.com", "10.0.0.100"}
			},
			phase: "apiserver",
			want: "certificate /etc/kubernetes/pki/apiserver.crt lacks the required names api.example.com, 10.0.0.100 (it has cp-1, kubernetes, kubernetes.default, " +
				"kubernetes.default.svc, kubernetes.default.svc.cluster.local, 10.96.0.1, 192.168.10.5); " + apiRemedy + ", or fix the configuration if those names are wrong",
		},
		{
			name: "certificate from another CA",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				copyFrom(t, fsys, other, "apiserver.crt", "apiserver.crt")
				copyFrom(t, fsys, other, "apiserver.key", "apiserver.key")
			},
			phase: "apiserver",
			want: "certificate /etc/kubernetes/pki/apiserver.crt is not signed by the CA in /etc/kubernetes/pki/ca.crt: x509: certificate signed by unknown authority " +
				`(possibly because of "x509: ECDSA verification failure" while trying to verify candidate authority certificate "kubernetes"); ` +
				apiRemedy + " signed by this CA, or put back the CA that signed it",
		},
		{
			name: "key of another certificate",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				copyFrom(t, fsys, fsys, "front-proxy-client.key", "apiserver.key")
			},
			phase: "apiserver",
			want:  "key /etc/kubernetes/pki/apiserver.key does not belong to the certificate /etc/kubernetes/pki/apiserver.crt; " + apiRemedy,
		},
		{
			name:  "expired leaf",
			now:   testNow.Add(8761 * time.Hour),
			phase: "apiserver",
			want:  "certificate /etc/kubernetes/pki/apiserver.crt expired at 2027-03-01T12:00:00Z; " + apiRemedy,
		},
		{
			name:  "clock behind the CA",
			now:   testNow.Add(-time.Hour),
			phase: "apiserver",
			want: "certificate /etc/kubernetes/pki/ca.crt is not valid before 2026-03-01T11:55:00Z (now is 2026-03-01T11:00:00Z); " +
				"check the clock, or renew the CA (kubeboot never replaces an existing CA)",
		},
		{
			name:   "certificate without key",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) { remove(t, fsys, "apiserver.key") },
			phase:  "apiserver",
			want:   "found /etc/kubernetes/pki/apiserver.crt but not /etc/kubernetes/pki/apiserver.key; provide the key, or " + apiRemedy,
		},
		{
			name:   "key without certificate",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) { remove(t, fsys, "etcd/peer.crt") },
			phase:  "etcd-peer",
			want: "found /etc/kubernetes/pki/etcd/peer.key but not /etc/kubernetes/pki/etcd/peer.crt; provide the certificate, or " +
				"remove /etc/kubernetes/pki/etcd/peer.crt and /etc/kubernetes/pki/etcd/peer.key to generate a new pair",
		},
		{
			name:   "CA key without CA certificate",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) { remove(t, fsys, "front-proxy-ca.crt") },
			phase:  "front-proxy-ca",
			want: "found the CA key /etc/kubernetes/pki/front-proxy-ca.key but not its certificate /etc/kubernetes/pki/front-proxy-ca.crt; " +
				"provide the certificate, or remove the key to generate a new CA",
		},
		{
			name:   "CA key of another CA",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) { copyFrom(t, fsys, other, "ca.key", "ca.key") },
			phase:  "ca",
			want: "CA key /etc/kubernetes/pki/ca.key does not belong to the certificate /etc/kubernetes/pki/ca.crt; " +
				"put back the matching key, or remove both to generate a new CA",
		},
		{
			name: "CA certificate that is not a CA",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				copyFrom(t, fsys, fsys, "apiserver.crt", "ca.crt")
				copyFrom(t, fsys, fsys, "apiserver.key", "ca.key")
			},
			phase: "apiserver",
			want: "CA certificate /etc/kubernetes/pki/ca.crt: the certificate is not a CA (basic constraints CA:FALSE); " +
				"replace it with a valid CA certificate, or remove it to generate a new CA",
		},
		{
			name:   "sa.pub of another key",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) { copyFrom(t, fsys, other, "sa.pub", "sa.pub") },
			phase:  "sa",
			want: "service-account public key /etc/kubernetes/pki/sa.pub does not belong to /etc/kubernetes/pki/sa.key; " +
				"remove /etc/kubernetes/pki/sa.pub to derive it from /etc/kubernetes/pki/sa.key again",
		},
		{
			name:   "sa.pub without sa.key",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) { remove(t, fsys, "sa.key") },
			phase:  "sa",
			want: "found /etc/kubernetes/pki/sa.pub but not /etc/kubernetes/pki/sa.key; provide the private key, " +
				"or remove /etc/kubernetes/pki/sa.pub to generate a new pair",
		},
		{
			name: "leaf phase before its CA",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				remove(t, fsys, "etcd/ca.crt", "etcd/ca.key", "etcd/server.crt", "etcd/server.key")
			},
			phase: "etcd-server",
			want:  "the CA certificate /etc/kubernetes/pki/etcd/ca.crt does not exist: run the certs/etcd-ca phase first, or provide the CA",
		},
		{
			name:  "unknown phase",
			phase: "kubelet",
			want: "unknown certificate phase \"kubelet\": known phases are ca, apiserver, apiserver-kubelet-client, front-proxy-ca, front-proxy-client, " +
				"etcd-ca, etcd-server, etcd-peer, etcd-healthcheck-client, apiserver-etcd-client, sa",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
			fsys := nodefs.FS{Root: t.TempDir()}
			mustEnsureAll(t, fsys, cfg, fixedSource())
			if tt.mutate != nil {
				tt.mutate(t, fsys, cfg)
			}
			before := snapshot(t, fsys)
			src := fixedSource()
			if !tt.now.IsZero() {
				src.Now = func() time.Time { return tt.now }
			}
			var err error
			if tt.phase == "" {
				_, err = EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), src)
			} else {
				_, err = Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), tt.phase, src)
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
			if after := snapshot(t, fsys); !maps.EqualFunc(before, after, slices.Equal) {
				t.Error("a refused run changed files")
			}
		})
	}
}

func TestEnsureDerivesMissingSAPub(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := nodefs.FS{Root: t.TempDir()}
	mustEnsureAll(t, fsys, cfg, fixedSource())
	pub, _ := fsys.ReadFile(pkiDir + "/sa.pub")
	if err := fsys.Remove(pkiDir + "/sa.pub"); err != nil {
		t.Fatal(err)
	}
	r, err := Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), "sa", fixedSource())
	if err != nil || r.Action != Reused || r.Note != "/etc/kubernetes/pki/sa.pub derived from the existing /etc/kubernetes/pki/sa.key" {
		t.Fatalf("Ensure(sa) = %+v, %v", r, err)
	}
	if got, _ := fsys.ReadFile(pkiDir + "/sa.pub"); !slices.Equal(got, pub) {
		t.Error("derived sa.pub differs from the original")
	}
}

func TestEnsureAllRunsKeyGenerationConcurrently(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	var inFlight, maxInFlight, calls atomic.Int32
	src := fixedSource()
	src.NewKey = func(alg config.EncryptionAlgorithmType) (crypto.Signer, error) {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond) // stands in for slow RSA key generation
		return NewPrivateKey(alg)
	}
	mustEnsureAll(t, nodefs.FS{Root: t.TempDir()}, cfg, src)
	// Three CAs and the service-account key start together; so do the four etcd leaves.
	if calls.Load() != 11 || maxInFlight.Load() < 4 {
		t.Errorf("%d keys, at most %d generated at once; want 11 keys and at least 4 at once", calls.Load(), maxInFlight.Load())
	}
}

func TestEnsureAllStopsOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fsys := nodefs.FS{Root: t.TempDir()}
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	_, err := EnsureAll(ctx, fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if files := snapshot(t, fsys); len(files) != 0 {
		t.Errorf("files written after cancel: %v", slices.Sorted(maps.Keys(files)))
	}
}

// init runs the certificate phases one by one: each leaves the certificate directories private, also where they
// existed world-readable before (the lab found /etc/kubernetes/pki 0755 after kubeboot init).
func TestEnsureOnePhaseMakesTheDirectoriesPrivate(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := nodefs.FS{Root: t.TempDir()}
	if err := os.MkdirAll(fsys.Path(pkiDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), CAPhase, fixedSource()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{pkiDir, pkiDir + "/etcd"} {
		if fi, err := os.Stat(fsys.Path(d)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s after Ensure(%s): %v, want 0700", d, CAPhase, err)
			if err == nil {
				t.Errorf("mode %v", fi.Mode().Perm())
			}
		}
	}
}
