package kubeconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedSource() pki.Source { return pki.Source{Now: func() time.Time { return testNow }} }

func testConfig(alg config.EncryptionAlgorithmType) *config.Init {
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
			EncryptionAlgorithm:         alg,
			CertificateValidityPeriod:   &metav1.Duration{Duration: 8760 * time.Hour},
			CACertificateValidityPeriod: &metav1.Duration{Duration: 87600 * time.Hour},
		},
	}
}

// withPKI is a node root with the certificate tree of cfg already made.
func withPKI(t testing.TB, cfg *config.Init) nodefs.FS {
	t.Helper()
	fsys := nodefs.FS{Root: t.TempDir()}
	if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource()); err != nil {
		t.Fatal(err)
	}
	return fsys
}

func snapshot(t *testing.T, fsys nodefs.FS) map[string][]byte {
	t.Helper()
	files, err := fsys.List("/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		if out[f], err = fsys.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestPhases(t *testing.T) {
	var got []string
	for _, p := range Phases() {
		got = append(got, p.Name)
	}
	if want := []string{"admin", "super-admin", "kubelet", "controller-manager", "scheduler"}; !slices.Equal(got, want) {
		t.Fatalf("phases = %v, want %v", got, want)
	}
}

func TestSpecsServers(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Init)
		// servers of admin, super-admin, kubelet, controller-manager, scheduler
		want    []string
		wantErr string
	}{
		{
			name: "no controlPlaneEndpoint",
			want: []string{"https://192.168.10.5:6443", "https://192.168.10.5:6443", "https://192.168.10.5:6443", "https://192.168.10.5:6443", "https://192.168.10.5:6443"},
		},
		{
			name: "DNS endpoint without port takes bindPort; kubelet stays local (ControlPlaneKubeletLocalMode on by default)",
			mutate: func(c *config.Init) {
				c.Cluster.ControlPlaneEndpoint = "lb.example.com"
				c.Init.LocalAPIEndpoint.BindPort = 8443
			},
			want: []string{"https://lb.example.com:8443", "https://lb.example.com:8443", "https://192.168.10.5:8443", "https://192.168.10.5:8443", "https://192.168.10.5:8443"},
		},
		{
			name: "IPv6",
			mutate: func(c *config.Init) {
				c.Init.LocalAPIEndpoint.AdvertiseAddress = "fd00:0::5"
				c.Cluster.ControlPlaneEndpoint = "[fd00::100]:6443"
			},
			want: []string{"https://[fd00::100]:6443", "https://[fd00::100]:6443", "https://[fd00::5]:6443", "https://[fd00::5]:6443", "https://[fd00::5]:6443"},
		},
		{
			name:    "bad endpoint",
			mutate:  func(c *config.Init) { c.Cluster.ControlPlaneEndpoint = "lb_1:6443" },
			wantErr: `controlPlaneEndpoint: "lb_1:6443": host "lb_1" must be an IP address or a DNS name`,
		},
		{
			name:    "bad bind port",
			mutate:  func(c *config.Init) { c.Init.LocalAPIEndpoint.BindPort = 0 },
			wantErr: "localAPIEndpoint.bindPort 0 must be between 1 and 65535",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
			if tt.mutate != nil {
				tt.mutate(cfg)
			}
			specs, err := Specs(cfg.ClusterPart(), cfg.NodePart())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range specs {
				got = append(got, s.Server)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("servers = %v\nwant      %v", got, tt.want)
			}
		})
	}
}

func TestEnsureAllWritesKubeadmsFiles(t *testing.T) {
	type want struct {
		file, user, server string
		org                []string
	}
	wants := []want{
		{"/etc/kubernetes/admin.conf", "kubernetes-admin", "https://lb.example.com:6443", []string{"kubeadm:cluster-admins"}},
		{"/etc/kubernetes/super-admin.conf", "kubernetes-super-admin", "https://lb.example.com:6443", []string{"system:masters"}},
		{"/etc/kubernetes/kubelet.conf", "system:node:cp-1", "https://192.168.10.5:6443", []string{"system:nodes"}},
		{"/etc/kubernetes/controller-manager.conf", "system:kube-controller-manager", "https://192.168.10.5:6443", nil},
		{"/etc/kubernetes/scheduler.conf", "system:kube-scheduler", "https://192.168.10.5:6443", nil},
	}
	algs := []struct {
		alg      config.EncryptionAlgorithmType
		checkKey func(crypto.PublicKey) bool
	}{
		{config.EncryptionAlgorithmRSA2048, func(k crypto.PublicKey) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 2048 }},
		{config.EncryptionAlgorithmECDSAP256, func(k crypto.PublicKey) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve == elliptic.P256() }},
	}
	for _, a := range algs {
		t.Run(string(a.alg), func(t *testing.T) {
			cfg := testConfig(a.alg)
			cfg.Cluster.ClusterName = "lab"
			cfg.Cluster.ControlPlaneEndpoint = "lb.example.com"
			fsys := withPKI(t, cfg)
			caPEM, err := fsys.ReadFile("/etc/kubernetes/pki/ca.crt")
			if err != nil {
				t.Fatal(err)
			}
			caCerts, _ := certutil.ParseCertsPEM(caPEM)
			ca := caCerts[0]

			res, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource())
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Phase != Phases()[i].Name || r.Action != pki.Generated || !slices.Equal(r.Files, []string{wants[i].file}) {
					t.Errorf("result %d = %+v", i, r)
				}
			}
			for _, w := range wants {
				t.Run(w.user, func(t *testing.T) {
					fi, err := os.Stat(fsys.Path(w.file))
					if err != nil {
						t.Fatal(err)
					}
					if fi.Mode().Perm() != 0o600 {
						t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
					}
					// Parse back with client-go itself, from the real path.
					kc, err := clientcmd.LoadFromFile(fsys.Path(w.file))
					if err != nil {
						t.Fatal(err)
					}
					ctxName := w.user + "@lab"
					if kc.CurrentContext != ctxName || len(kc.Contexts) != 1 || len(kc.Clusters) != 1 || len(kc.AuthInfos) != 1 {
						t.Fatalf("current context %q with %d contexts, %d clusters, %d users; want %q and one of each", kc.CurrentContext, len(kc.Contexts), len(kc.Clusters), len(kc.AuthInfos), ctxName)
					}
					if c := kc.Contexts[ctxName]; c == nil || c.Cluster != "lab" || c.AuthInfo != w.user {
						t.Fatalf("context = %+v, want cluster lab and user %s", c, w.user)
					}
					cluster, user := kc.Clusters["lab"], kc.AuthInfos[w.user]
					if cluster == nil || user == nil {
						t.Fatal("context points at a missing cluster or user")
					}
					if cluster.Server != w.server {
						t.Errorf("server = %s, want %s", cluster.Server, w.server)
					}
					if !slices.Equal(cluster.CertificateAuthorityData, caPEM) {
						t.Error("embedded CA differs from ca.crt")
					}
					certs, err := certutil.ParseCertsPEM(user.ClientCertificateData)
					if err != nil {
						t.Fatal(err)
					}
					c := certs[0]
					key, err := pki.ParsePrivateKeyPEM(user.ClientKeyData)
					if err != nil {
						t.Fatal(err)
					}
					if c.Subject.CommonName != w.user || !slices.Equal(c.Subject.Organization, w.org) {
						t.Errorf("subject = CN %q O %q, want CN %q O %q", c.Subject.CommonName, c.Subject.Organization, w.user, w.org)
					}
					if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || c.IsCA {
						t.Errorf("usages = %v %v CA=%v", c.KeyUsage, c.ExtKeyUsage, c.IsCA)
					}
					// kubeadm leaves NotBefore at the CA's own NotBefore for kubeconfig client certificates.
					if !c.NotBefore.Equal(ca.NotBefore) || !c.NotAfter.Equal(testNow.Add(8760*time.Hour)) {
						t.Errorf("validity = %s..%s, want %s..%s", c.NotBefore, c.NotAfter, ca.NotBefore, testNow.Add(8760*time.Hour))
					}
					roots := x509.NewCertPool()
					roots.AddCert(ca)
					if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
						t.Errorf("client certificate does not chain to ca.crt: %v", err)
					}
					if !pki.KeyMatches(c, key) || !a.checkKey(c.PublicKey) {
						t.Errorf("client key %T does not match or is not %s", key, a.alg)
					}
				})
			}
		})
	}
}

// A joining control-plane node makes only some kubeconfig files: just those, results in phase order.
func TestEnsureSomeWritesOnlyThose(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := withPKI(t, cfg)
	res, err := EnsureSome(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), []string{"scheduler", "admin"}, fixedSource())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Phase != "admin" || res[1].Phase != "scheduler" || res[0].Action != pki.Generated {
		t.Fatalf("results %+v, want admin then scheduler, generated", res)
	}
	for _, f := range []string{config.SuperAdminKubeconfig, config.KubeletKubeconfigFile, config.ControllerManagerConfig} {
		if fsys.Exists(f) {
			t.Errorf("%s was written", f)
		}
	}
	_, err = EnsureSome(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), []string{"admin", "kubelett"}, fixedSource())
	want := `unknown kubeconfig phase "kubelett": known phases are admin, super-admin, kubelet, controller-manager, scheduler`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestEnsureRerunReuses(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := withPKI(t, cfg)
	if _, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource()); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, fsys)
	res, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Action != pki.Reused {
			t.Errorf("%s: %s, want reused", r.Phase, r.Action)
		}
	}
	if len(res) != 5 {
		t.Errorf("%d results, want 5", len(res))
	}
	if after := snapshot(t, fsys); !maps.EqualFunc(before, after, slices.Equal) {
		t.Error("a rerun changed files")
	}
}

func TestEnsureRefuses(t *testing.T) {
	const cmRemedy = "remove /etc/kubernetes/controller-manager.conf to generate a new one"
	tests := []struct {
		name   string
		mutate func(t *testing.T, fsys nodefs.FS, cfg *config.Init)
		phase  string // "" runs EnsureAll
		want   string
	}{
		{
			name: "advertise address changed",
			mutate: func(t *testing.T, _ nodefs.FS, cfg *config.Init) {
				cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "192.168.10.6"
			},
			phase: "controller-manager",
			want: "kubeconfig /etc/kubernetes/controller-manager.conf points at https://192.168.10.5:6443, expected https://192.168.10.6:6443; " +
				cmRemedy + ", or fix controlPlaneEndpoint/localAPIEndpoint in the configuration",
		},
		{
			name:   "controlPlaneEndpoint added: only the files that use it are refused",
			mutate: func(t *testing.T, _ nodefs.FS, cfg *config.Init) { cfg.Cluster.ControlPlaneEndpoint = "lb.example.com" },
			want: "kubeconfig /etc/kubernetes/admin.conf points at https://192.168.10.5:6443, expected https://lb.example.com:6443; " +
				"remove /etc/kubernetes/admin.conf to generate a new one, or fix controlPlaneEndpoint/localAPIEndpoint in the configuration\n" +
				"kubeconfig /etc/kubernetes/super-admin.conf points at https://192.168.10.5:6443, expected https://lb.example.com:6443; " +
				"remove /etc/kubernetes/super-admin.conf to generate a new one, or fix controlPlaneEndpoint/localAPIEndpoint in the configuration",
		},
		{
			name: "another cluster's kubeconfig",
			mutate: func(t *testing.T, fsys nodefs.FS, cfg *config.Init) {
				other := withPKI(t, cfg)
				if _, err := Ensure(t.Context(), other, cfg.ClusterPart(), cfg.NodePart(), "controller-manager", fixedSource()); err != nil {
					t.Fatal(err)
				}
				b, _ := other.ReadFile(config.ControllerManagerConfig)
				if err := fsys.WriteFile(config.ControllerManagerConfig, b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			phase: "controller-manager",
			want:  "kubeconfig /etc/kubernetes/controller-manager.conf trusts a different CA (\"kubernetes\", %OTHER%) than the cluster CA (\"kubernetes\", %OURS%); " + cmRemedy,
		},
		{
			name: "not a kubeconfig",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				if err := fsys.WriteFile(config.ControllerManagerConfig, []byte("clusters: 42\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			phase: "controller-manager",
			want:  "kubeconfig /etc/kubernetes/controller-manager.conf: json: cannot unmarshal number into Go struct field Config.clusters of type []v1.NamedCluster; " + cmRemedy,
		},
		{
			name: "no current context",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				kc := Basic("https://192.168.10.5:6443", "kubernetes", "x", nil)
				kc.CurrentContext = ""
				if err := Write(fsys, config.ControllerManagerConfig, kc); err != nil {
					t.Fatal(err)
				}
			},
			phase: "controller-manager",
			want:  "kubeconfig /etc/kubernetes/controller-manager.conf: no current context with a cluster; " + cmRemedy,
		},
		{
			name: "no CA",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				if err := fsys.Remove("/etc/kubernetes/pki/ca.crt"); err != nil {
					t.Fatal(err)
				}
			},
			phase: "admin",
			want:  "the CA certificate /etc/kubernetes/pki/ca.crt does not exist: run the certs/ca phase first, or provide the CA",
		},
		{
			name: "external CA, file not provided",
			mutate: func(t *testing.T, fsys nodefs.FS, _ *config.Init) {
				if err := fsys.Remove("/etc/kubernetes/pki/ca.key"); err != nil {
					t.Fatal(err)
				}
				if err := fsys.Remove(config.SchedulerConfig); err != nil {
					t.Fatal(err)
				}
			},
			want: "external CA mode (/etc/kubernetes/pki/ca.crt present, /etc/kubernetes/pki/ca.key absent): kubeboot cannot sign the client certificate of " +
				"/etc/kubernetes/scheduler.conf; provide /etc/kubernetes/scheduler.conf, or provide /etc/kubernetes/pki/ca.key",
		},
		{
			name:  "unknown phase",
			phase: "etcd",
			want:  `unknown kubeconfig phase "etcd": known phases are admin, super-admin, kubelet, controller-manager, scheduler`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
			fsys := withPKI(t, cfg)
			if _, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource()); err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tt.mutate(t, fsys, cfg)
			}
			want := tt.want
			if kc, err := Read(fsys, config.ControllerManagerConfig); err == nil {
				if cl, _, err := Current(kc); err == nil {
					if certs, err := certutil.ParseCertsPEM(cl.CertificateAuthorityData); err == nil {
						want = strings.ReplaceAll(want, "%OTHER%", pki.DiscoveryHash(certs[0]))
					}
				}
			}
			if ca, err := pki.LoadCA(fsys, cfg.ClusterPart(), "ca", testNow); err == nil {
				want = strings.ReplaceAll(want, "%OURS%", pki.DiscoveryHash(ca.Cert))
			}
			before := snapshot(t, fsys)
			var err error
			if tt.phase == "" {
				_, err = EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource())
			} else {
				_, err = Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), tt.phase, fixedSource())
			}
			if err == nil || err.Error() != want {
				t.Fatalf("error = %v\nwant    %s", err, want)
			}
			if after := snapshot(t, fsys); !maps.EqualFunc(before, after, slices.Equal) {
				t.Error("a refused run changed files")
			}
		})
	}
}

func TestEnsureExternalCAReusesProvidedFiles(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := withPKI(t, cfg)
	if _, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource()); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("/etc/kubernetes/pki/ca.key"); err != nil {
		t.Fatal(err)
	}
	res, err := EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), fixedSource())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 {
		t.Fatalf("%d results, want 5", len(res))
	}
	for _, r := range res {
		if r.Action != pki.Reused {
			t.Errorf("%s: %s, want reused", r.Phase, r.Action)
		}
	}
}

func TestBootstrapRoundTrip(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
	fsys := withPKI(t, cfg)
	caPEM, err := fsys.ReadFile("/etc/kubernetes/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	const token = "abcdef.0123456789abcdef"
	if err := Write(fsys, config.BootstrapKubeletConf, Bootstrap("https://192.168.10.5:6443", caPEM, token)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(fsys.Path(config.BootstrapKubeletConf))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat = %v, %v; want mode 0600", fi, err)
	}
	kc, err := clientcmd.LoadFromFile(fsys.Path(config.BootstrapKubeletConf))
	if err != nil {
		t.Fatal(err)
	}
	want := &clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"kubernetes": {Server: "https://192.168.10.5:6443", CertificateAuthorityData: caPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"tls-bootstrap-token-user": {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{"tls-bootstrap-token-user@kubernetes": {Cluster: "kubernetes", AuthInfo: "tls-bootstrap-token-user"}},
		CurrentContext: "tls-bootstrap-token-user@kubernetes",
	}
	if kc.CurrentContext != want.CurrentContext {
		t.Errorf("current context = %q", kc.CurrentContext)
	}
	cl, user, err := Current(kc)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Server != want.Clusters["kubernetes"].Server || !slices.Equal(cl.CertificateAuthorityData, caPEM) || user == nil || user.Token != token {
		t.Errorf("cluster %+v user %+v", cl, user)
	}
	if c := kc.Contexts[want.CurrentContext]; c == nil || c.Cluster != "kubernetes" || c.AuthInfo != "tls-bootstrap-token-user" {
		t.Errorf("context = %+v", c)
	}
	// Read is what other packages use: it must agree with clientcmd.
	read, err := Read(fsys, config.BootstrapKubeletConf)
	if err != nil || read.AuthInfos["tls-bootstrap-token-user"].Token != token {
		t.Errorf("Read = %v, %v", read, err)
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(nodefs.FS{Root: t.TempDir()}, "/etc/kubernetes/admin.conf")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error = %v, want fs.ErrNotExist", err)
	}
}

// kubelet.conf after the TLS bootstrap has the shape the kubelet itself writes, so the kubelet, kubeadm's upgrade
// and scripts reading it find what they expect.
func TestKubeletAfterBootstrap(t *testing.T) {
	const pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	got, err := clientcmd.Write(*KubeletAfterBootstrap("https://127.0.0.1:7445", []byte("CA"), pem))
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:7445
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`
	if string(got) != want {
		t.Errorf("kubelet.conf =\n%s\nwant\n%s", got, want)
	}
}
