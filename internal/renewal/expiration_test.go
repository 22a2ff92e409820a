package renewal

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig() *config.Init {
	return &config.Init{
		Init: config.InitConfiguration{
			NodeRegistration: config.NodeRegistrationOptions{Name: "cp-1", CRISocket: config.DefaultCRISocket},
			LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "192.168.10.5", BindPort: 6443},
		},
		Cluster: config.ClusterConfiguration{
			Etcd:                        config.Etcd{Local: &config.LocalEtcd{DataDir: config.DefaultEtcdDataDir}},
			Networking:                  config.Networking{ServiceSubnet: "10.96.0.0/12", DNSDomain: "cluster.local"},
			KubernetesVersion:           "v1.37.2",
			CertificatesDir:             config.DefaultCertificatesDir,
			ImageRepository:             config.DefaultImageRepository,
			ClusterName:                 config.DefaultClusterName,
			EncryptionAlgorithm:         config.EncryptionAlgorithmECDSAP256,
			CertificateValidityPeriod:   &metav1.Duration{Duration: 8760 * time.Hour},
			CACertificateValidityPeriod: &metav1.Duration{Duration: 87600 * time.Hour},
		},
	}
}

// controlPlaneNode is a node root with init's certificates and kubeconfig files, made at testNow.
func controlPlaneNode(t *testing.T) nodefs.FS {
	t.Helper()
	fsys := nodefs.FS{Root: t.TempDir()}
	cfg := testConfig()
	src := pki.Source{Now: func() time.Time { return testNow }}
	if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), src); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeconfig.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), src); err != nil {
		t.Fatal(err)
	}
	return fsys
}

func newTestSet(fsys nodefs.FS, externalEtcd bool) *Set {
	return NewSet(fsys, config.DefaultCertificatesDir, config.KubernetesDir, externalEtcd)
}

func TestNamesAreKubeadms(t *testing.T) {
	want := []string{"admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager.conf",
		"etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf", "super-admin.conf"}
	if got := newTestSet(nodefs.FS{Root: "/"}, false).Names(); !slices.Equal(got, want) {
		t.Errorf("names %v\nwant  %v", got, want)
	}
	wantExternal := []string{"admin.conf", "apiserver", "apiserver-kubelet-client", "controller-manager.conf", "front-proxy-client", "scheduler.conf", "super-admin.conf"}
	s := newTestSet(nodefs.FS{Root: "/"}, true)
	if got := s.Names(); !slices.Equal(got, wantExternal) {
		t.Errorf("names with an external etcd %v\nwant %v", got, wantExternal)
	}
	if _, ok := s.CA("etcd-ca"); ok {
		t.Error("etcd-ca listed with an external etcd")
	}
}

// TestCheckExpirationText: kubeadm's two tables, 30 days and a bit after init, with a missing certificate, a
// missing kubeconfig and an external front-proxy CA.
func TestCheckExpirationText(t *testing.T) {
	fsys := controlPlaneNode(t)
	for _, f := range []string{"/etc/kubernetes/pki/apiserver-kubelet-client.crt", "/etc/kubernetes/scheduler.conf", "/etc/kubernetes/pki/front-proxy-ca.key"} {
		if err := fsys.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	info, err := newTestSet(fsys, false).Expiration(testNow.Add(30*24*time.Hour + 90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := info.PrintText(&b); err != nil {
		t.Fatal(err)
	}
	golden.File(t, filepath.Join("testdata", "check-expiration.txt"), []byte(b.String()))
}

// TestCheckExpirationObject: -o json is kubeadm's CertificateExpirationInfo.
func TestCheckExpirationObject(t *testing.T) {
	fsys := controlPlaneNode(t)
	if err := fsys.Remove("/etc/kubernetes/pki/etcd/peer.crt"); err != nil {
		t.Fatal(err)
	}
	now := testNow.Add(time.Hour)
	info, err := newTestSet(fsys, false).Expiration(now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3","certificates":[{"name":"admin.conf","expirationDate":"2027-03-01T12:00:00Z","residualTime":31532400,"externallyManaged":false,"caName":"ca","missing":false},`,
		`{"name":"etcd-peer","expirationDate":null,"residualTime":0,"externallyManaged":false,"missing":true}`,
		`"certificateAuthorities":[{"name":"ca","expirationDate":"2036-02-27T12:00:00Z","residualTime":315356400,"externallyManaged":false,"missing":false},`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON lacks\n%s\nin\n%s", want, s)
		}
	}
}

func TestKubeconfigWithoutEmbeddedCertificate(t *testing.T) {
	fsys := controlPlaneNode(t)
	kc := "apiVersion: v1\nkind: Config\nclusters: [{name: k, cluster: {server: https://x:6443}}]\nusers: [{name: u, user: {client-certificate: /etc/x.crt}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\ncurrent-context: c\n"
	if err := fsys.WriteFile("/etc/kubernetes/admin.conf", []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := newTestSet(fsys, false).Expiration(testNow)
	want := `certificate admin.conf: /etc/kubernetes/admin.conf: the user "u" has no embedded client-certificate-data`
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant  %s", err, want)
	}
}

// TestWarnings: within 30 days of expiry, each certificate gets a line saying what to do; further away, none.
func TestWarnings(t *testing.T) {
	fsys := controlPlaneNode(t)
	if err := fsys.Remove("/etc/kubernetes/pki/front-proxy-ca.key"); err != nil {
		t.Fatal(err)
	}
	s := newTestSet(fsys, false)
	early, err := s.Expiration(testNow.Add(300 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if w := Warnings(early, nil); len(w) != 0 {
		t.Errorf("warnings 65 days before expiry: %q", w)
	}
	late, err := s.Expiration(testNow.Add(345 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kubelet := []KubeletCert{{Name: "kubelet client", File: "/var/lib/kubelet/pki/kubelet-client-current.pem", NotAfter: testNow.Add(-time.Hour), Residual: -time.Hour}}
	w := Warnings(late, kubelet)
	if len(w) != 12 { // the 11 certificates and the kubelet's; no CA is near its end
		t.Errorf("%d warnings, want 12:\n%s", len(w), strings.Join(w, "\n"))
	}
	for _, want := range []string{
		"apiserver expires in 20d (Mar 01, 2027 12:00 UTC): renew it with 'kubeboot certs renew apiserver'",
		"front-proxy-client expires in 20d (Mar 01, 2027 12:00 UTC): its CA front-proxy-ca is external: have it signed again by whoever holds that CA's key",
		"kubelet client certificate /var/lib/kubelet/pki/kubelet-client-current.pem expired on Mar 01, 2026 11:00 UTC: the kubelet renews it itself while it can reach the API server (rotateCertificates); check its log",
	} {
		if !slices.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, strings.Join(w, "\n"))
		}
	}
}

func TestDue(t *testing.T) {
	fsys := controlPlaneNode(t)
	s := newTestSet(fsys, false)
	notAfter := certOf(t, s, "apiserver").NotAfter
	const within = 720 * time.Hour
	tests := []struct {
		name   string
		cert   string
		now    time.Time
		within time.Duration
		want   bool
	}{
		{name: "well before the window", cert: "apiserver", now: testNow, within: within, want: false},
		{name: "residual exactly the window: not below it", cert: "apiserver", now: notAfter.Add(-within), within: within, want: false},
		{name: "a second into the window", cert: "apiserver", now: notAfter.Add(-within + time.Second), within: within, want: true},
		{name: "a nanosecond into the window: the residual counts whole seconds", cert: "apiserver", now: notAfter.Add(-within + 1), within: within, want: true},
		{name: "expiring now", cert: "apiserver", now: notAfter, within: within, want: true},
		{name: "expired", cert: "apiserver", now: notAfter.Add(time.Hour), within: within, want: true},
		{name: "a window of zero: only the expired", cert: "apiserver", now: notAfter, within: 0, want: false},
		{name: "a window of zero, expired a second ago", cert: "apiserver", now: notAfter.Add(time.Second), within: 0, want: true},
		{name: "an embedded kubeconfig certificate", cert: "admin.conf", now: notAfter.Add(-within + time.Second), within: within, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Due(byName(t, s, tt.cert), tt.now, tt.within)
			if err != nil || got != tt.want {
				t.Errorf("Due(%s, NotAfter%+v, %s) = %v, %v; want %v", tt.cert, tt.now.Sub(notAfter), tt.within, got, err, tt.want)
			}
		})
	}

	t.Run("missing: nothing to renew", func(t *testing.T) {
		if err := fsys.Remove("/etc/kubernetes/super-admin.conf"); err != nil {
			t.Fatal(err)
		}
		got, err := s.Due(byName(t, s, "super-admin.conf"), notAfter, within)
		if err != nil || got {
			t.Errorf("Due(missing) = %v, %v; want false, nil", got, err)
		}
	})
	t.Run("unreadable: an error naming it", func(t *testing.T) {
		if err := fsys.WriteFile("/etc/kubernetes/pki/front-proxy-client.crt", []byte("not PEM"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := s.Due(byName(t, s, "front-proxy-client"), notAfter, within)
		want := "certificate front-proxy-client: /etc/kubernetes/pki/front-proxy-client.crt: data does not contain any valid RSA or ECDSA certificates"
		if err == nil || err.Error() != want {
			t.Errorf("Due(unreadable) error %v\nwant %s", err, want)
		}
	})
}
