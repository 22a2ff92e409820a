package joinflow

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/discovery"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/waiter"
	"kubeboot.dev/kubeboot/internal/workflow"
)

const (
	testToken  = "abcdef.0123456789abcdef"
	nodeName   = "worker-1"
	wrongHash  = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	tokenID    = "abcdef"
	tokenValue = "0123456789abcdef"
)

// controlPlane is a fake control plane: an API server serving a signed cluster-info over TLS, and the objects a
// fake clientset answers the TLS bootstrap client with.
type controlPlane struct {
	caPEM  []byte
	caHash string
	srv    *httptest.Server
	url    string
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	kp, err := pki.NewCA(pki.SystemSource(), pki.Request{CommonName: "kubernetes", IsCA: true, Algorithm: config.EncryptionAlgorithmECDSAP256,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return startControlPlaneWithCA(t, kp)
}

// startControlPlaneWithCA serves cluster-info for the cluster CA kp.
func startControlPlaneWithCA(t *testing.T, kp pki.KeyPair) *controlPlane {
	t.Helper()
	src := pki.SystemSource()
	ca, err := pki.ParseCA(kp.Cert, kp.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.NewSignedCert(src, ca, pki.Request{CommonName: "kube-apiserver", Algorithm: config.EncryptionAlgorithmECDSAP256,
		Validity: time.Hour, IPs: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(leaf.Cert, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{caPEM: kp.Cert, caHash: pki.DiscoveryHash(ca.Cert)}
	var cm *corev1.ConfigMap
	cp.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/kube-public/configmaps/cluster-info" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(cm)
	}))
	cp.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	cp.srv.StartTLS()
	t.Cleanup(cp.srv.Close)
	cp.url = cp.srv.URL
	kc := clientcmdapi.NewConfig()
	kc.Clusters[""] = &clientcmdapi.Cluster{Server: cp.url, CertificateAuthorityData: kp.Cert}
	content, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jws.ComputeDetachedSignature(string(content), tokenID, tokenValue)
	if err != nil {
		t.Fatal(err)
	}
	cm = &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(content), bootstrapapi.JWSSignatureKeyPrefix + tokenID: sig},
	}
	return cp
}

func (cp *controlPlane) endpoint() string { return strings.TrimPrefix(cp.url, "https://") }

// clusterObjects are kube-system/kubeadm-config and kube-system/kubelet-config as init uploads them; the kubelet
// answers health checks on healthzPort.
func clusterObjects(t *testing.T, healthzPort int32, gates map[string]bool) []runtime.Object {
	t.Helper()
	return clusterObjectsFor(t, healthzPort, config.ClusterConfiguration{
		KubernetesVersion: "v1.37.2", ClusterName: "lab", ImageRepository: "registry.k8s.io", FeatureGates: gates,
		Networking: config.Networking{ServiceSubnet: "10.96.0.0/12", DNSDomain: "cluster.local"}, CertificatesDir: "/etc/kubernetes/pki",
	})
}

// clusterObjectsFor is clusterObjects with the ClusterConfiguration given.
func clusterObjectsFor(t *testing.T, healthzPort int32, clusterCfg config.ClusterConfiguration) []runtime.Object {
	t.Helper()
	cc, err := uploadconfig.ClusterConfigurationYAML(clusterCfg)
	if err != nil {
		t.Fatal(err)
	}
	f := false
	kc, err := uploadconfig.KubeletConfigurationYAML(&kubeletv1beta1.KubeletConfiguration{
		ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local", CgroupDriver: "cgroupfs", FailSwapOn: &f,
		HealthzBindAddress: "127.0.0.1", HealthzPort: &healthzPort, StaticPodPath: staticpod.Dir,
		Authentication: kubeletv1beta1.KubeletAuthentication{X509: kubeletv1beta1.KubeletX509Authentication{ClientCAFile: config.DefaultCACertPath}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"}, Data: map[string]string{"ClusterConfiguration": string(cc)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubelet-config"}, Data: map[string]string{"kubelet": string(kc)}},
	}
}

func node(ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
}

// kubeletHealthz is the kubelet's healthz endpoint; it returns the port.
func kubeletHealthz(t *testing.T) int32 {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	port, err := strconv.Atoi(srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	return int32(port)
}

// fakeKubelet plays the kubelet's supervisor and the kubelet: once restarted (or, without an init system, once
// it sees the kubelet files), it checks bootstrap-kubelet.conf and writes kubelet.conf with a client
// certificate, as the kubelet does after its TLS bootstrap.
type fakeKubelet struct {
	fs         nodefs.FS
	bootstraps bool // false: the kubelet never gets a certificate
	mu         sync.Mutex
	restarts   int
	bootConf   *clientcmdapi.Config // bootstrap-kubelet.conf as the kubelet found it
	bootMode   fs.FileMode
	err        error
}

func (k *fakeKubelet) Name() string { return "fake" }

func (k *fakeKubelet) Restart(_ context.Context, service string) error {
	k.mu.Lock()
	k.restarts++
	k.mu.Unlock()
	if service != kubelet.Service {
		return fmt.Errorf("restart %s", service)
	}
	go k.run()
	return nil
}

func (k *fakeKubelet) run() {
	time.Sleep(30 * time.Millisecond)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fs.Exists(config.KubeletKubeconfigFile) {
		// As the kubelet: valid credentials already, no bootstrap (kubeboot did it for a control plane).
		return
	}
	kc, err := clientcmd.LoadFromFile(k.fs.Path(config.BootstrapKubeletConf))
	if err != nil {
		k.err = err
		return
	}
	st, err := os.Stat(k.fs.Path(config.BootstrapKubeletConf))
	if err != nil {
		k.err = err
		return
	}
	k.bootConf, k.bootMode = kc, st.Mode().Perm()
	if !k.bootstraps {
		return
	}
	pem := "/var/lib/kubelet/pki/kubelet-client-current.pem"
	if err := k.fs.WriteFile(pem, []byte("cert and key"), 0o600); err != nil {
		k.err = err
		return
	}
	out := clientcmdapi.NewConfig()
	out.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: kc.Clusters["lab"].Server, CertificateAuthority: config.DefaultCACertPath}
	out.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: pem, ClientKey: pem}
	out.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth"}
	out.CurrentContext = "default-context"
	b, err := clientcmd.Write(*out)
	if err != nil {
		k.err = err
		return
	}
	k.err = k.fs.WriteFile(config.KubeletKubeconfigFile, b, 0o600)
}

func (k *fakeKubelet) state() (int, *clientcmdapi.Config, fs.FileMode, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.restarts, k.bootConf, k.bootMode, k.err
}

// machine is a healthy worker machine as preflight sees it: cgroup v2, containerd 2, kubelet v1.37.
func machine(root string) preflight.Env {
	controllers := filepath.Join(root, "sys/fs/cgroup/cgroup.controllers")
	if err := os.MkdirAll(filepath.Dir(controllers), 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(controllers, []byte("cpu memory pids\n"), 0o644); err != nil {
		panic(err)
	}
	return preflight.Env{
		FS:          nodefs.FS{Root: root},
		Listen:      func(string, string) (net.Listener, error) { return fakeListener{}, nil },
		LookPath:    func(file string) (string, error) { return "/usr/bin/" + file, nil },
		Output:      func(context.Context, string, ...string) ([]byte, error) { return []byte("Kubernetes v1.37.2\n"), nil },
		DialRuntime: func(context.Context, string) (cri.Runtime, error) { return fakeRuntime{}, nil },
		Geteuid:     func() int { return 0 },
		NumCPU:      func() int { return 2 },
		MemoryMB:    func() (uint64, error) { return 24000, nil },
		LookupHost:  func(context.Context, string) ([]string, error) { return []string{"10.0.0.21"}, nil },
		Getenv:      func(string) string { return "" },
	}
}

type fakeListener struct{}

func (fakeListener) Accept() (net.Conn, error) { return nil, errors.New("fake") }
func (fakeListener) Close() error              { return nil }
func (fakeListener) Addr() net.Addr            { return &net.TCPAddr{} }

// fakeRuntime is a ready containerd 2.
type fakeRuntime struct{ cri.Runtime }

func (fakeRuntime) Version(context.Context) (cri.Version, error) {
	return cri.Version{RuntimeName: "containerd", RuntimeVersion: "v2.4.2", RuntimeAPIVersion: "v1"}, nil
}
func (fakeRuntime) Status(context.Context) (cri.Status, error) {
	return cri.Status{RuntimeReady: true}, nil
}
func (fakeRuntime) RuntimeConfig(context.Context) (cri.RuntimeConfig, error) {
	return cri.RuntimeConfig{CgroupDriver: "cgroupfs"}, nil
}
func (fakeRuntime) Close() error { return nil }

// harness is one join of a worker machine (a temporary root) into a fake control plane.
type harness struct {
	root    string
	cp      *controlPlane
	client  *fake.Clientset
	kubelet *fakeKubelet
	out     bytes.Buffer
	data    *Data
}

func newHarness(t *testing.T, hashes []string, objects ...runtime.Object) *harness {
	t.Helper()
	h := &harness{root: t.TempDir(), cp: startControlPlane(t)}
	// The machine's own files preflight reads.
	for p, content := range map[string]string{"/proc/sys/net/ipv4/ip_forward": "1\n", "/proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n"} {
		if err := (nodefs.FS{Root: h.root}).WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if hashes == nil {
		hashes = []string{h.cp.caHash}
	}
	tok := testToken
	cfg, _, err := config.ResolveJoin(nil, config.JoinFlags{
		APIServerEndpoint:          h.cp.endpoint(),
		Token:                      &tok,
		DiscoveryTokenCACertHashes: hashes,
	}, config.Environment{Hostname: func() (string, error) { return nodeName, nil }})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Join.Timeouts.KubeletHealthCheck.Duration = 2 * time.Second
	cfg.Join.Timeouts.TLSBootstrap.Duration = 2 * time.Second
	cfg.Join.Timeouts.Discovery.Duration = 2 * time.Second
	cfg.Join.Timeouts.KubernetesAPICall.Duration = 2 * time.Second
	h.client = fake.NewClientset(objects...)
	signCSRs(t, h.client)
	fsys := nodefs.FS{Root: h.root}
	h.kubelet = &fakeKubelet{fs: fsys, bootstraps: true}
	h.data = &Data{
		Env:          nodeenv.Env{FS: fsys, Out: &h.out, Preflight: machine(h.root), InitSystem: h.kubelet},
		Cfg:          cfg,
		Hostname:     nodeName,
		PollInterval: 10 * time.Millisecond,
		NewClient: func(kc *clientcmdapi.Config) (kubernetes.Interface, error) {
			// The client must be built from the discovered kubeconfig with the token.
			if _, user, err := currentUser(kc); err != nil || user.Token != testToken {
				return nil, fmt.Errorf("bootstrap kubeconfig without the token: %v", err)
			}
			return h.client, nil
		},
	}
	return h
}

func currentUser(kc *clientcmdapi.Config) (*clientcmdapi.Cluster, *clientcmdapi.AuthInfo, error) {
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || kc.Clusters[ctx.Cluster] == nil || kc.AuthInfos[ctx.AuthInfo] == nil {
		return nil, nil, errors.New("no current context")
	}
	return kc.Clusters[ctx.Cluster], kc.AuthInfos[ctx.AuthInfo], nil
}

func (h *harness) run(t *testing.T, opts workflow.Options) error {
	t.Helper()
	r := workflow.Runner[*Data]{Phases: Phases(), Out: &h.out}
	h.data.Select(opts) // as the CLI does
	return r.Run(t.Context(), h.data, opts)
}

func (h *harness) read(t *testing.T, p string) string {
	t.Helper()
	b, err := h.data.FS.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, fsys nodefs.FS, p string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(fsys.Path(p))
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestJoinWorker(t *testing.T) {
	port := kubeletHealthz(t)
	tests := []struct {
		name     string
		objects  []runtime.Object
		gates    map[string]bool
		wantOut  []string
		noOutput []string
	}{
		{name: "new node", wantOut: []string{"[kubelet-wait-bootstrap] done in"}},
		{name: "a NotReady Node of the same name is taken over", objects: []runtime.Object{node(corev1.ConditionFalse)},
			wantOut: []string{"  a Node named worker-1 exists but is not Ready: this machine takes it over\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, append(clusterObjects(t, port, tt.gates), tt.objects...)...)
			if err := h.run(t, workflow.Options{}); err != nil {
				t.Fatalf("%v\n%s", err, h.out.String())
			}
			out := h.out.String()
			for _, want := range append([]string{
				"[preflight] done in",
				"  trusting the cluster at " + h.cp.url + " (CA " + h.cp.caHash + ")\n",
				`  read kube-system/kubeadm-config and kube-system/kubelet-config: cluster "lab", Kubernetes v1.37.2` + "\n",
				"  requested the kubelet's client certificate for system:node:worker-1: CertificateSigningRequest node-csr-",
				"  wrote /etc/kubernetes/kubelet.conf (server " + h.cp.url + ") with the client certificate /var/lib/kubelet/pki/kubelet-client-current.pem\n" +
					"  wrote /etc/kubernetes/pki/ca.crt\n",
				"  restarted the kubelet through fake\n",
				"  kubelet healthy after",
				"  /etc/kubernetes/kubelet.conf is in place (kubelet-start did the TLS bootstrap)",
			}, tt.wantOut...) {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "0123456789abcdef") {
				t.Errorf("the token secret was printed:\n%s", out)
			}

			if !h.data.Bootstrapped() {
				t.Error("Bootstrapped() is false after a join that waited for the kubelet")
			}
			restarts, boot, _, err := h.kubelet.state()
			if err != nil || restarts != 1 {
				t.Fatalf("kubelet restarted %d times, %v", restarts, err)
			}
			// kubeboot did the TLS bootstrap: the kubelet started with kubelet.conf and its certificate, and the
			// token never reached the disk.
			if boot != nil || h.data.FS.Exists(config.BootstrapKubeletConf) {
				t.Errorf("bootstrap-kubelet.conf was written (the kubelet saw it: %v)", boot != nil)
			}
			csrs, err := h.client.CertificatesV1().CertificateSigningRequests().List(t.Context(), metav1.ListOptions{})
			if err != nil || len(csrs.Items) != 1 || csrs.Items[0].Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
				t.Fatalf("CertificateSigningRequests: %v, %+v; want one for the kubelet's signer", err, csrs)
			}
			kconf, err := kubeconfig.Read(h.data.FS, config.KubeletKubeconfigFile)
			if err != nil {
				t.Fatal(err)
			}
			cluster, user, err := kubeconfig.Current(kconf)
			current := kubelet.CertDir + "/" + kubelet.ClientCertCurrent
			if err != nil || cluster.Server != h.cp.url || !bytes.Equal(cluster.CertificateAuthorityData, h.cp.caPEM) ||
				user.ClientCertificate != current || user.ClientKey != current || mode(t, h.data.FS, config.KubeletKubeconfigFile) != 0o600 {
				t.Fatalf("kubelet.conf: %v, %+v, %+v; want the discovered server and CA, the certificate store's current file, mode 0600", err, cluster, user)
			}
			if !h.data.FS.Exists(current) {
				t.Errorf("no %s", current)
			}
			if got := h.read(t, config.DefaultCACertPath); got != string(h.cp.caPEM) || mode(t, h.data.FS, config.DefaultCACertPath) != 0o644 {
				t.Error("ca.crt is not the discovered CA, mode 0644")
			}
			if got, want := h.read(t, config.KubeletFlagsEnvFile), `KUBELET_KUBEADM_ARGS=""`+"\n"; got != want {
				t.Errorf("kubeadm-flags.env %q, want %q", got, want)
			}
			var kc kubeletv1beta1.KubeletConfiguration
			if err := yaml.UnmarshalStrict([]byte(h.read(t, config.KubeletConfigFile)), &kc); err != nil {
				t.Fatal(err)
			}
			if kc.ContainerRuntimeEndpoint != config.DefaultCRISocket || kc.CgroupDriver != "cgroupfs" || *kc.HealthzPort != port {
				t.Errorf("config.yaml is not the cluster's KubeletConfiguration for this node: %+v", kc)
			}
			if got := h.read(t, kubelet.InstanceConfigFile); got != `containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"`+"\n" {
				t.Errorf("instance-config.yaml %q", got)
			}
		})
	}
}

// writePatch puts a file into the node's patches directory and points the configuration at it.
func writePatch(t *testing.T, d *Data, name, content string) {
	t.Helper()
	d.Cfg.Join.Patches = &config.Patches{Directory: "/etc/kubernetes/patches"}
	if err := d.FS.WriteFile("/etc/kubernetes/patches/"+name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestJoinAppliesKubeletPatches(t *testing.T) {
	h := newHarness(t, nil, clusterObjects(t, kubeletHealthz(t), nil)...)
	writePatch(t, h.data, "kubeletconfiguration+merge.yaml", "maxPods: 42\n")
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	if want := `  [patches] Applied patch of type "application/merge-patch+json" to target "kubeletconfiguration"` + "\n"; !strings.Contains(h.out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, h.out.String())
	}
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict([]byte(h.read(t, config.KubeletConfigFile)), &kc); err != nil {
		t.Fatal(err)
	}
	if kc.MaxPods != 42 || kc.ContainerRuntimeEndpoint != config.DefaultCRISocket || kc.CgroupDriver != "cgroupfs" {
		t.Fatalf("config.yaml: maxPods %d, containerRuntimeEndpoint %q, cgroupDriver %q", kc.MaxPods, kc.ContainerRuntimeEndpoint, kc.CgroupDriver)
	}
}

// requireUnchanged fails the test when root differs from before (a snapshot), naming each path what added,
// changed or removed.
func requireUnchanged(t *testing.T, root string, before map[string]string, what string) {
	t.Helper()
	after := snapshot(t, root)
	if fmt.Sprint(before) == fmt.Sprint(after) {
		return
	}
	for p, a := range after {
		if b, ok := before[p]; !ok {
			t.Errorf("written: %s", p)
		} else if a != b {
			t.Errorf("changed: %s", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("removed: %s", p)
		}
	}
	t.Fatalf("%s changed the node's root", what)
}

// snapshot lists every file and directory under root with its mode and content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		entry := info.Mode().String()
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entry += " " + string(b)
		}
		out[p] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRefusedJoinWritesNothing(t *testing.T) {
	port := kubeletHealthz(t)
	unauthorized := func(c *fake.Clientset) {
		c.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewUnauthorized("Unauthorized")
		})
	}
	forbiddenNodes := func(c *fake.Clientset) {
		c.PrependReactor("get", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, nodeName, errors.New("no RBAC"))
		})
	}
	tests := []struct {
		name    string
		hashes  []string
		objects []runtime.Object
		react   func(c *fake.Clientset)
		setup   func(d *Data)
		wantErr error
		wantMsg string // exact, URL standing for the API server's URL
	}{
		{
			name: "wrong CA hash", hashes: []string{wrongHash}, wantErr: discovery.ErrCAHashMismatch,
			wantMsg: "phase preflight: cluster CA does not match --discovery-token-ca-cert-hash: cluster-info at URL carries a CA with " +
				"public key hash HASH, but the pinned hash is " + wrongHash + ": check the hash (`kubeboot token create --print-join-command` " +
				"on a control-plane node prints it); if it is right, the endpoint is not your cluster or the connection is intercepted",
		},
		{
			name: "a Ready Node has the name", objects: []runtime.Object{node(corev1.ConditionTrue)},
			wantMsg: "phase kubelet-start: a Node named worker-1 is already Ready in the cluster: run kubeboot reset on it or choose --node-name",
		},
		{
			name: "the TLS bootstrap token is rejected", react: unauthorized,
			wantMsg: `phase preflight: read kube-system/kubeadm-config: the API server at URL does not accept the bootstrap token "abcdef" ` +
				"(Unauthorized): it expired or was deleted; create a new token with `kubeboot token create` on a control-plane node",
		},
		{
			name: "the token may not read Nodes", react: forbiddenNodes,
			wantMsg: `phase kubelet-start: check whether a Node named worker-1 exists: the bootstrap token "abcdef" may not ` +
				`(nodes "worker-1" is forbidden: no RBAC): the token needs the group system:bootstrappers:kubeadm:default-node-token, ` +
				"and the cluster the kubeadm:get-nodes binding made by init",
		},
		{
			name: "the control plane has not uploaded its configuration", objects: []runtime.Object{}, react: func(c *fake.Clientset) {
				c.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, "kubeadm-config")
				})
			},
			wantMsg: "phase preflight: kube-system/kubeadm-config does not exist: the control plane has not finished init (its upload-config phase writes it)",
		},
		{
			name: "a kubelet patch that does not apply", setup: func(d *Data) {
				writePatch(t, d, "kubeletconfiguration+json.yaml", "- op: replace\n  path: /noSuchField/deeper\n  value: 1\n")
			},
			wantMsg: "phase kubelet-start: patch the kubelet's /var/lib/kubelet/config.yaml: apply patch file /etc/kubernetes/patches/" +
				"kubeletconfiguration+json.yaml (document 1, type json) to kubeletconfiguration: replace operation does not apply: " +
				"doc is missing path: /noSuchField/deeper: missing value; fix or remove the patch",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.hashes, append(clusterObjects(t, port, nil), tt.objects...)...)
			if tt.react != nil {
				tt.react(h.client)
			}
			if tt.setup != nil {
				tt.setup(h.data)
			}
			before := snapshot(t, h.root)
			err := h.run(t, workflow.Options{})
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			want := strings.NewReplacer("URL", h.cp.url, "HASH", h.cp.caHash).Replace(tt.wantMsg)
			if err == nil || err.Error() != want {
				t.Fatalf("error\n got %v\nwant %s", err, want)
			}
			requireUnchanged(t, h.root, before, "the refused join")
			if restarts, _, _, _ := h.kubelet.state(); restarts != 0 {
				t.Fatal("the kubelet was restarted")
			}
		})
	}
	t.Run("Node Ready, kubelet-start alone", func(t *testing.T) {
		h := newHarness(t, nil, append(clusterObjects(t, port, nil), node(corev1.ConditionTrue))...)
		before := snapshot(t, h.root)
		err := h.run(t, workflow.Options{Only: "kubelet-start"})
		var nre *NodeReadyError
		if !errors.As(err, &nre) || nre.Name != nodeName {
			t.Fatalf("got %v", err)
		}
		requireUnchanged(t, h.root, before, "kubelet-start, refusing,")
	})
}

func TestWaitBootstrap(t *testing.T) {
	port := kubeletHealthz(t)
	t.Run("the certificate is never issued: nothing is written", func(t *testing.T) {
		h := newHarness(t, nil, clusterObjects(t, port, nil)...)
		// The request is created and stays pending: no approver runs.
		h.client.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
			obj := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest).DeepCopy()
			obj.UID = types.UID("uid-" + obj.Name)
			return true, obj, h.client.Tracker().Create(certificatesv1.SchemeGroupVersion.WithResource("certificatesigningrequests"), obj, "")
		})
		h.data.Cfg.Join.Timeouts.TLSBootstrap.Duration = 300 * time.Millisecond
		before := snapshot(t, h.root)
		err := h.run(t, workflow.Options{})
		var notIssued *kubelet.CSRNotIssuedError
		if !errors.As(err, &notIssued) || !strings.HasPrefix(err.Error(), "phase kubelet-start: ") ||
			!strings.Contains(hint.Of(err), "kubectl certificate approve node-csr-") {
			t.Fatalf("got %v\n     hint: %s\nwant phase kubelet-start's CSRNotIssuedError, with a hint to approve the request", err, hint.Of(err))
		}
		requireUnchanged(t, h.root, before, "the join whose certificate was never issued")
		if restarts, _, _, _ := h.kubelet.state(); restarts != 0 {
			t.Error("the kubelet was restarted")
		}
	})
	// A kubelet that bootstraps itself from a bootstrap-kubelet.conf that kubeboot's kubelet-start did not write
	// (kubeadm's kubelet-start did): kubelet-wait-bootstrap waits for its kubelet.conf, then removes the token's file.
	selfBootstrap := func(t *testing.T, bootstraps bool) (*harness, error) {
		h := newHarness(t, nil, clusterObjects(t, port, nil)...)
		h.kubelet.bootstraps = bootstraps
		h.data.Cfg.Join.Timeouts.TLSBootstrap.Duration = 300 * time.Millisecond
		cl, err := h.data.Cluster(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := kubeconfig.Write(h.data.FS, config.BootstrapKubeletConf, cl.Bootstrap); err != nil {
			t.Fatal(err)
		}
		go h.kubelet.run()
		return h, h.run(t, workflow.Options{Only: "kubelet-wait-bootstrap"})
	}
	t.Run("a kubelet bootstrapping itself", func(t *testing.T) {
		h, err := selfBootstrap(t, true)
		if err != nil {
			t.Fatalf("%v\n%s", err, h.out.String())
		}
		if !strings.Contains(h.out.String(), "  the kubelet wrote /etc/kubernetes/kubelet.conf after") || !h.data.Bootstrapped() {
			t.Errorf("the wait did not see the kubelet's kubelet.conf:\n%s", h.out.String())
		}
		if h.data.FS.Exists(config.BootstrapKubeletConf) {
			t.Fatal("bootstrap-kubelet.conf, which holds the token, was left behind")
		}
	})
	t.Run("a kubelet bootstrapping itself never gets its certificate", func(t *testing.T) {
		h, err := selfBootstrap(t, false)
		want := "phase kubelet-wait-bootstrap: the kubelet did not finish its TLS bootstrap: /etc/kubernetes/kubelet.conf not usable " +
			"after 300ms: read kubeconfig: open " + h.data.FS.Path(config.KubeletKubeconfigFile) + ": no such file or directory"
		wantHint := "check the kubelet's log: it must run with --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf " +
			"--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml and the flags of /var/lib/kubelet/kubeadm-flags.env"
		if err == nil || err.Error() != want || hint.Of(err) != wantHint {
			t.Fatalf("error\n got %v\n     hint: %s\nwant %s\n     hint: %s", err, hint.Of(err), want, wantHint)
		}
		if h.data.FS.Exists(config.BootstrapKubeletConf) {
			t.Fatal("bootstrap-kubelet.conf, which holds the token, was left behind")
		}
	})
	t.Run("no init system: the supervisor restarts the kubelet", func(t *testing.T) {
		h := newHarness(t, nil, clusterObjects(t, port, nil)...)
		h.data.InitSystem = kubelet.None{}
		if err := h.run(t, workflow.Options{}); err != nil {
			t.Fatalf("%v\n%s", err, h.out.String())
		}
		if want := "  no init system found: restart the kubelet yourself so it reads /var/lib/kubelet/config.yaml\n"; !strings.Contains(h.out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, h.out.String())
		}
	})
	t.Run("the kubelet does not come up", func(t *testing.T) {
		h := newHarness(t, nil, clusterObjects(t, 1, nil)...) // nothing answers on port 1
		h.data.Cfg.Join.Timeouts.KubeletHealthCheck.Duration = 200 * time.Millisecond
		err := h.run(t, workflow.Options{})
		var ue *waiter.UnhealthyError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), "the kubelet did not become healthy") ||
			!strings.Contains(err.Error(), "kubelet (http://127.0.0.1:1/healthz)") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestDryRunChangesNothingOutsideItsScratchRoot(t *testing.T) {
	port := kubeletHealthz(t)
	h := newHarness(t, nil, clusterObjects(t, port, nil)...)
	h.data.DryRun = true
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	if restarts, _, _, _ := h.kubelet.state(); restarts != 0 || h.data.Bootstrapped() {
		t.Fatal("a dry run restarted the kubelet or claims it bootstrapped")
	}
	for _, want := range []string{
		"  dry run: would request the kubelet's client certificate for worker-1 and write /etc/kubernetes/kubelet.conf (server " + h.cp.url + ")\n",
		"  dry run: would restart the kubelet\n", "  dry run: would wait for the kubelet's TLS bootstrap\n",
	} {
		if !strings.Contains(h.out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// What a dry run prints: the files a join would write.
	for _, p := range []string{config.KubeletConfigFile, config.KubeletFlagsEnvFile, config.DefaultCACertPath} {
		if !h.data.FS.Exists(p) {
			t.Errorf("%s not rendered", p)
		}
	}
}
