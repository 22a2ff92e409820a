package joinflow

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/markcontrolplane"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/workflow"
)

const (
	certKey   = "7c386097d30fd6ec9c05bb6e3dbf013f8b8291269c988cecc3c88fdab95a11e3"
	otherKey  = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	cpName    = "cp-2"
	cpAddress = "127.0.0.1"
	// firstEtcd is the client URL of the first control-plane node's etcd member, as its Pod announces it.
	firstEtcd = "https://10.0.0.11:2379"
	learnerID = 0x42
)

// fakeEtcd is the cluster's etcd as the joining node sees it. It records every call with what the node's files
// held at that moment, so the order of operations can be checked.
type fakeEtcd struct {
	fs nodefs.FS

	mu        sync.Mutex
	opts      []etcd.Options
	events    []string
	quorumErr error
	// notRunning is how many Status calls see the learner before it has started.
	notRunning  int
	statusCalls int
	promoted    bool
	// lostPublish keeps the learner from serving clients, as etcd does while it waits on its own publish that
	// came to it through the leader's snapshot, until its container is removed (restarted is set then).
	lostPublish, restarted bool
}

func (f *fakeEtcd) connect(opts etcd.Options) (EtcdCluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts = append(f.opts, opts)
	return f, nil
}

func (f *fakeEtcd) record(format string, args ...any) {
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

func (f *fakeEtcd) manifest() string {
	if f.fs.Exists(staticpod.Path(staticpod.EtcdName)) {
		return "etcd.yaml written"
	}
	return "no etcd.yaml"
}

func (f *fakeEtcd) first() etcd.Member {
	return etcd.Member{ID: 0x11, Name: "cp-1", PeerURLs: []string{"https://10.0.0.11:2380"}, ClientURLs: []string{firstEtcd}}
}

func (f *fakeEtcd) MemberList(context.Context) ([]etcd.Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("list")
	return []etcd.Member{f.first()}, nil
}

func (f *fakeEtcd) Status(context.Context) ([]etcd.MemberStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusCalls++
	learner := etcd.MemberStatus{Member: etcd.Member{ID: learnerID, PeerURLs: []string{"https://127.0.0.1:2380"}, IsLearner: !f.promoted}}
	switch {
	case f.statusCalls <= f.notRunning:
		learner.Problem = "not started: it has no client URL yet"
		f.record("status: learner not started (%s)", f.manifest())
	case f.lostPublish && !f.restarted:
		// Published as the cluster sees it (through the snapshot), but not serving: it waits on its own publish.
		learner.Name, learner.ClientURLs = cpName, []string{"https://127.0.0.1:2379"}
		learner.Problem = "unreachable: context deadline exceeded"
		f.record("status: learner unreachable (%s)", f.manifest())
	default:
		learner.Name, learner.ClientURLs, learner.Serving, learner.Healthy = cpName, []string{"https://127.0.0.1:2379"}, true, true
		f.record("status: learner healthy")
	}
	return []etcd.MemberStatus{{Member: f.first(), Healthy: true, IsLeader: true}, learner}, nil
}

func (f *fakeEtcd) CheckQuorumSafeToAdd(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("check quorum")
	return f.quorumErr
}

func (f *fakeEtcd) AddLearner(_ context.Context, name, peerURL string) (uint64, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("add learner %s %s (%s)", name, peerURL, f.manifest())
	return learnerID, "cp-1=https://10.0.0.11:2380," + name + "=" + peerURL, nil
}

func (f *fakeEtcd) Promote(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("promote %x (%s)", id, f.manifest())
	f.promoted = true
	return nil
}

func (f *fakeEtcd) Remove(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove %x (%s)", id, f.manifest())
	return nil
}

func (f *fakeEtcd) Endpoints() []string { return []string{firstEtcd} }
func (f *fakeEtcd) Close() error        { return nil }

// cpCluster describes the cluster a control-plane node joins.
type cpCluster struct {
	endpoint string // controlPlaneEndpoint
	gates    map[string]bool
	external bool
	upload   string // the key kubeadm-certs is uploaded with; "" uploads nothing
	noPods   bool   // no etcd Pod announces its client URL
	// apiServers: with noPods, the EndpointSlice default/kubernetes lists these API server addresses (port 6443),
	// as right after init, before the first kubelet has created its etcd mirror Pod.
	apiServers []string
}

// cpHarness is one control-plane join: the first control-plane node's certificates (uploaded to a fake API server
// as init --upload-certs does), the joining machine (a temporary root), a fake etcd and health endpoints that answer
// for this node's API server, controller-manager and scheduler.
type cpHarness struct {
	*harness
	first nodefs.FS
	etcd  *fakeEtcd
	port  int32 // where this node's control-plane components answer
}

func newCPHarness(t *testing.T, c cpCluster, joinKey string) *cpHarness {
	t.Helper()
	ctx := t.Context()
	const certDir = "/etc/kubernetes/pki"
	cc := config.ClusterConfiguration{
		KubernetesVersion: "v1.37.2", ClusterName: "lab", ImageRepository: "registry.k8s.io", FeatureGates: c.gates,
		ControlPlaneEndpoint: c.endpoint, EncryptionAlgorithm: config.EncryptionAlgorithmECDSAP256,
		Networking:      config.Networking{ServiceSubnet: "10.96.0.0/12", DNSDomain: "cluster.local"},
		CertificatesDir: certDir, Etcd: config.Etcd{Local: &config.LocalEtcd{DataDir: "/var/lib/etcd"}},
	}
	// This node's components all answer on one port.
	health := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(health.Close)
	port, err := strconv.Atoi(health.URL[strings.LastIndex(health.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	securePort := []config.Arg{{Name: "secure-port", Value: strconv.Itoa(port)}}
	cc.ControllerManager.ExtraArgs, cc.Scheduler.ExtraArgs = securePort, securePort
	cc.Etcd.Local.ExtraArgs = []config.Arg{{Name: "listen-metrics-urls", Value: health.URL}}

	// The first control-plane node.
	first := nodefs.FS{Root: t.TempDir()}
	firstCfg := &config.Init{Cluster: cc}
	firstCfg.Init.NodeRegistration.Name = "cp-1"
	firstCfg.Init.LocalAPIEndpoint = config.APIEndpoint{AdvertiseAddress: "10.0.0.11", BindPort: 6443}
	if c.external {
		cc.Etcd = config.Etcd{External: &config.ExternalEtcd{Endpoints: []string{"https://10.0.0.50:2379"},
			CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key"}}
		firstCfg.Cluster = cc
		writeExternalEtcdFiles(t, first, cc.Etcd.External)
	}
	if _, err := pki.EnsureAll(ctx, first, firstCfg.ClusterPart(), firstCfg.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	caCrt, err := first.ReadFile(certDir + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := first.ReadFile(certDir + "/ca.key")
	if err != nil {
		t.Fatal(err)
	}

	h := &harness{root: t.TempDir(), cp: startControlPlaneWithCA(t, pki.KeyPair{Cert: caCrt, Key: caKey})}
	for p, content := range map[string]string{"/proc/sys/net/ipv4/ip_forward": "1\n", "/proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n"} {
		if err := (nodefs.FS{Root: h.root}).WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objects := clusterObjectsFor(t, kubeletHealthz(t), cc)
	objects = append(objects, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cpName, Labels: map[string]string{corev1.LabelHostname: cpName}}})
	if !c.noPods {
		objects = append(objects, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-cp-1", Namespace: "kube-system",
			Labels:      map[string]string{"component": "etcd", "tier": "control-plane"},
			Annotations: map[string]string{staticpod.EtcdAdvertiseClientURLsAnnotation: firstEtcd}}})
	}
	if len(c.apiServers) > 0 {
		ready, port := true, int32(6443)
		name := "https"
		slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}}}
		for _, a := range c.apiServers {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		objects = append(objects, slice)
	}
	h.client = fake.NewClientset(objects...)
	signCSRs(t, h.client)
	if c.upload != "" {
		if err := copycerts.Upload(ctx, h.client, first, certDir, c.upload, cc.Etcd.External); err != nil {
			t.Fatal(err)
		}
	}

	tok, yes, addr, bind := testToken, true, cpAddress, int32(port)
	flags := config.JoinFlags{APIServerEndpoint: h.cp.endpoint(), Token: &tok, DiscoveryTokenCACertHashes: []string{h.cp.caHash},
		ControlPlane: &yes, APIServerAdvertiseAddress: &addr, APIServerBindPort: &bind}
	if joinKey != "" {
		flags.CertificateKey = &joinKey
	}
	cfg, _, err := config.ResolveJoin(nil, flags, config.Environment{Hostname: func() (string, error) { return cpName, nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*metav1.Duration{cfg.Join.Timeouts.KubeletHealthCheck, cfg.Join.Timeouts.TLSBootstrap, cfg.Join.Timeouts.Discovery,
		cfg.Join.Timeouts.KubernetesAPICall, cfg.Join.Timeouts.ControlPlaneComponentHealthCheck, cfg.Join.Timeouts.EtcdAPICall} {
		d.Duration = 2 * time.Second
	}
	fsys := nodefs.FS{Root: h.root}
	h.kubelet = &fakeKubelet{fs: fsys, bootstraps: true}
	fe := &fakeEtcd{fs: fsys, notRunning: 2}
	h.data = &Data{
		Env:          nodeenv.Env{FS: fsys, Out: &h.out, Preflight: machine(h.root), InitSystem: h.kubelet},
		Cfg:          cfg,
		Hostname:     cpName,
		PollInterval: 10 * time.Millisecond,
		// The refused join whose cluster shows no etcd Pod would otherwise wait the kubelet's sync period.
		MirrorPodLag: 100 * time.Millisecond,
		NewEtcd:      fe.connect,
		// No snapshot seen: the learner is never taken for waiting on its own publish (TestJoinRestartsALearnerWaitingOnItsOwnPublish).
		LearnerSnapshots: func(context.Context) (int, error) { return 0, nil },
		NewClient: func(kc *clientcmdapi.Config) (kubernetes.Interface, error) {
			_, user, err := currentUser(kc)
			switch {
			case err != nil:
				return nil, err
			case user.Token == testToken:
				return h.client, nil
			}
			// admin.conf: a client certificate of kubeadm's admin identity.
			cert, err := certutil.ParseCertsPEM(user.ClientCertificateData)
			if err != nil || cert[0].Subject.CommonName != "kubernetes-admin" {
				return nil, fmt.Errorf("not admin.conf's credentials: %v", err)
			}
			return h.client, nil
		},
	}
	return &cpHarness{harness: h, first: first, etcd: fe, port: int32(port)}
}

func writeExternalEtcdFiles(t *testing.T, fsys nodefs.FS, ext *config.ExternalEtcd) {
	t.Helper()
	src := pki.SystemSource()
	kp, err := pki.NewCA(src, pki.Request{CommonName: "etcd-ca", IsCA: true, Algorithm: config.EncryptionAlgorithmECDSAP256,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(kp.Cert, kp.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.NewSignedCert(src, ca, pki.Request{CommonName: "apiserver-etcd-client", Algorithm: config.EncryptionAlgorithmECDSAP256,
		Validity: time.Hour, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{ext.CAFile: kp.Cert, ext.CertFile: leaf.Cert, ext.KeyFile: leaf.Key} {
		if err := fsys.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *cpHarness) etcdEvents() []string {
	h.etcd.mu.Lock()
	defer h.etcd.mu.Unlock()
	return slices.Clone(h.etcd.events)
}

func (h *cpHarness) command(t *testing.T, name string) []string {
	t.Helper()
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(h.read(t, staticpod.Path(name))), &pod); err != nil {
		t.Fatal(err)
	}
	return pod.Spec.Containers[0].Command
}

func TestJoinControlPlane(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	out := h.out.String()
	local := fmt.Sprintf("https://%s:%d", cpAddress, h.port)

	// The phases in kubeadm's order; etcd-join adds the member between kubelet-start and kubelet-wait-bootstrap.
	var phases []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "[") {
			phases = append(phases, strings.SplitN(line, "]", 2)[0][1:]+strings.Fields(strings.SplitN(line, "]", 2)[1])[0])
		}
	}
	wantPhases := []string{"preflightdone", "control-plane-prepare/download-certsdone", "control-plane-prepare/certsdone",
		"control-plane-prepare/kubeconfigdone", "control-plane-prepare/control-planedone", "check-etcddone", "kubelet-startdone",
		"etcd-joindone", "kubelet-wait-bootstrapdone", "control-plane-join/mark-control-planedone",
		"wait-control-planedone"}
	if !slices.Equal(phases, wantPhases) {
		t.Errorf("phases\n%q\nwant\n%q\n%s", phases, wantPhases, out)
	}
	for _, want := range []string{
		"  decrypted 8 shared certificates and keys of kube-system/kubeadm-certs with the certificate key\n",
		"  the etcd cluster at " + firstEtcd + " is healthy enough to add a member\n",
		"  added etcd member cp-2 (ID 42) as a learner at https://127.0.0.1:2380 through " + firstEtcd + "\n",
		"  wrote /etc/kubernetes/manifests/etcd.yaml: member cp-2 of 2, initial-cluster-state=existing\n",
		"  labelled Node cp-2 node-role.kubernetes.io/control-plane and node.kubernetes.io/exclude-from-external-load-balancers; tainted node-role.kubernetes.io/control-plane:NoSchedule\n",
		"  kube-apiserver healthy after", "  kube-controller-manager healthy after", "  kube-scheduler healthy after",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{certKey, "0123456789abcdef"} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret was printed: %s", secret)
		}
	}
	// The API server's manifest comes with the etcd member's, not before the kubelet starts (Data.Select).
	if etcdAt, apiAt := strings.Index(out, "  wrote /etc/kubernetes/manifests/etcd.yaml"),
		strings.Index(out, "  wrote /etc/kubernetes/manifests/kube-apiserver.yaml\n"); etcdAt < 0 || apiAt < etcdAt ||
		!strings.Contains(out, "  wrote the static Pods of kube-controller-manager and kube-scheduler in /etc/kubernetes/manifests; etcd-join writes kube-apiserver's") {
		t.Errorf("kube-apiserver.yaml not written right after etcd.yaml by etcd-join:\n%s", out)
	}

	// The order of the etcd work: checked twice (before writing, and check-etcd), the learner added before
	// etcd.yaml exists, promoted only once it runs.
	wantEvents := []string{"check quorum", "check quorum",
		"add learner cp-2 https://127.0.0.1:2380 (no etcd.yaml)",
		"status: learner not started (etcd.yaml written)", "status: learner not started (etcd.yaml written)", "status: learner healthy",
		"promote 42 (etcd.yaml written)"}
	if got := h.etcdEvents(); !slices.Equal(got, wantEvents) {
		t.Errorf("etcd calls\n%q\nwant\n%q", got, wantEvents)
	}
	for i, o := range h.etcd.opts {
		if !slices.Equal(o.Endpoints, []string{firstEtcd}) || o.TLS == nil || len(o.TLS.Certificates) != 1 || o.CallTimeout != 2*time.Second {
			t.Errorf("etcd connection %d: endpoints %q, TLS %v, call timeout %s", i, o.Endpoints, o.TLS != nil, o.CallTimeout)
		}
	}

	// The shared files are the first node's; this node's own certificates are signed by them.
	for _, f := range copycerts.Files("/etc/kubernetes/pki", nil) {
		want, err := h.first.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		wantMode := pki.CertMode
		if f.Private {
			wantMode = pki.KeyMode
		}
		if h.read(t, f.Path) != string(want) || mode(t, h.data.FS, f.Path) != wantMode {
			t.Errorf("%s differs from the first node's or has mode %v", f.Path, mode(t, h.data.FS, f.Path))
		}
	}
	apiserver, err := certutil.ParseCertsPEM([]byte(h.read(t, "/etc/kubernetes/pki/apiserver.crt")))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(apiserver[0].DNSNames, "cp.lab") || !slices.Contains(apiserver[0].DNSNames, cpName) ||
		!slices.ContainsFunc(apiserver[0].IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP(cpAddress)) }) {
		t.Errorf("apiserver.crt SANs %v %v lack the endpoint, the node name or the advertise address", apiserver[0].DNSNames, apiserver[0].IPAddresses)
	}
	caPEM, _ := h.first.ReadFile("/etc/kubernetes/pki/ca.crt")
	ca, _ := certutil.ParseCertsPEM(caPEM)
	if err := apiserver[0].CheckSignatureFrom(ca[0]); err != nil {
		t.Errorf("apiserver.crt is not signed by the cluster CA: %v", err)
	}
	peer, err := certutil.ParseCertsPEM([]byte(h.read(t, "/etc/kubernetes/pki/etcd/peer.crt")))
	if err != nil || peer[0].Subject.CommonName != cpName {
		t.Errorf("etcd/peer.crt: %v", err)
	}

	// kubeconfig files: no super-admin.conf, admin.conf through the endpoint, the components through this node.
	if h.data.FS.Exists("/etc/kubernetes/super-admin.conf") {
		t.Error("super-admin.conf written on a joining control-plane node")
	}
	for file, server := range map[string]string{"/etc/kubernetes/admin.conf": "https://cp.lab:6443",
		"/etc/kubernetes/controller-manager.conf": local, "/etc/kubernetes/scheduler.conf": local} {
		kc, err := clientcmd.LoadFromFile(h.data.FS.Path(file))
		if err != nil {
			t.Fatal(err)
		}
		if c, _, err := currentUser(kc); err != nil || c.Server != server {
			t.Errorf("%s: server %v, want %s", file, c, server)
		}
	}

	// The etcd member joins the list etcd returned.
	etcdCmd := h.command(t, "etcd")
	for _, want := range []string{"--name=cp-2", "--initial-cluster=cp-1=https://10.0.0.11:2380,cp-2=https://127.0.0.1:2380",
		"--initial-cluster-state=existing", "--initial-advertise-peer-urls=https://127.0.0.1:2380"} {
		if !slices.Contains(etcdCmd, want) {
			t.Errorf("etcd.yaml lacks %s: %q", want, etcdCmd)
		}
	}
	if m := mode(t, h.data.FS, "/var/lib/etcd"); m != 0o700 {
		t.Errorf("etcd data directory mode %v, want 0700", m)
	}
	if cmd := h.command(t, "kube-apiserver"); !slices.Contains(cmd, "--advertise-address="+cpAddress) || !slices.Contains(cmd, "--etcd-servers=https://127.0.0.1:2379") {
		t.Errorf("kube-apiserver.yaml: %q", cmd)
	}

	// kubeboot did the kubelet's TLS bootstrap through the discovered API server: the kubelet starts with
	// kubelet.conf for this node's API server and its certificate, never with bootstrap-kubelet.conf; and it is not
	// told to taint itself.
	_, boot, _, err := h.kubelet.state()
	if err != nil || boot != nil {
		t.Errorf("the kubelet found bootstrap-kubelet.conf (%v, %v); want kubelet.conf only", boot, err)
	}
	kc, err := clientcmd.LoadFromFile(h.data.FS.Path(config.KubeletKubeconfigFile))
	if err != nil {
		t.Fatal(err)
	}
	c, user, err := currentUser(kc)
	if err != nil || c.Server != local || user.ClientCertificate != "/var/lib/kubelet/pki/kubelet-client-current.pem" {
		t.Errorf("kubelet.conf: cluster %+v, user %+v (%v); want server %s and kubelet-client-current.pem", c, user, err, local)
	}
	pair, err := os.ReadFile(h.data.FS.Path("/var/lib/kubelet/pki/kubelet-client-current.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if certs, err := certutil.ParseCertsPEM(pair); err != nil || certs[0].Subject.CommonName != "system:node:"+cpName {
		t.Errorf("kubelet-client-current.pem: %v; want the certificate of system:node:%s", err, cpName)
	}
	if !strings.Contains(h.out.String(), "/etc/kubernetes/kubelet.conf is in place (kubelet-start did the TLS bootstrap)") {
		t.Errorf("kubelet-wait-bootstrap does not say the bootstrap was done:\n%s", h.out.String())
	}
	if got := h.read(t, config.KubeletFlagsEnvFile); strings.Contains(got, "register-with-taints") {
		t.Errorf("kubeadm-flags.env registers taints: %s", got)
	}
	node, err := h.client.CoreV1().Nodes().Get(t.Context(), cpName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, l1 := node.Labels[markcontrolplane.LabelControlPlane]
	_, l2 := node.Labels[markcontrolplane.LabelExcludeFromExternalLB]
	if !l1 || !l2 || len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != markcontrolplane.LabelControlPlane {
		t.Errorf("Node not marked: labels %v, taints %v", node.Labels, node.Spec.Taints)
	}
}

// A ClusterConfiguration that still names a gate kubeadm removed (ControlPlaneKubeletLocalMode went GA in 1.35 and
// was removed in 1.36) is refused by a control-plane join, which renders from it, as kubeadm's validation does.
// Right after init the first kubelet may not have created its etcd mirror Pod yet (in the lab it missed the
// PriorityClass and tried again 9 s later): the join reaches etcd at the API servers' addresses instead of waiting.
func TestJoinControlPlaneBeforeTheEtcdMirrorPod(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey, noPods: true, apiServers: []string{"10.0.0.11", "10.0.0.12"}}, certKey)
	// A join that waited for the mirror Pod would fail after timeouts.kubernetesAPICall and this.
	h.data.MirrorPodLag = time.Millisecond
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	want := []string{"https://10.0.0.11:2379", "https://10.0.0.12:2379"}
	if len(h.etcd.opts) == 0 {
		t.Fatal("etcd was never connected to")
	}
	for i, o := range h.etcd.opts {
		if !slices.Equal(o.Endpoints, want) {
			t.Errorf("etcd connection %d: endpoints %q, want %q", i, o.Endpoints, want)
		}
	}
	line := "  no etcd Pod is in the API yet (the kubelet creates its mirror Pod after its Node registers): reaching the stacked etcd members at the API servers' addresses, https://10.0.0.11:2379,https://10.0.0.12:2379\n"
	if !strings.Contains(h.out.String(), line) {
		t.Errorf("output lacks %q:\n%s", line, h.out.String())
	}
}

func TestJoinControlPlaneRefusesRemovedGate(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey, gates: map[string]bool{"ControlPlaneKubeletLocalMode": false}}, certKey)
	err := h.run(t, workflow.Options{})
	want := `featureGates[ControlPlaneKubeletLocalMode]: Unsupported value: "ControlPlaneKubeletLocalMode": supported values: "RootlessControlPlane"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("join error %v\nwant one containing %s\n%s", err, want, h.out.String())
	}
	if h.data.FS.Exists(config.KubeletConfigFile) {
		t.Error("the refused join wrote the kubelet's config.yaml")
	}
}

func TestJoinControlPlaneExternalEtcd(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey, external: true}, certKey)
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	if got := h.etcdEvents(); len(got) > 0 || len(h.etcd.opts) > 0 {
		t.Errorf("etcd was asked %q with an external etcd", got)
	}
	if h.data.FS.Exists(staticpod.Path("etcd")) || h.data.FS.Exists("/etc/kubernetes/pki/etcd/ca.crt") {
		t.Error("a stacked etcd member or its CA was set up for a cluster with an external etcd")
	}
	for _, p := range []string{"/etc/etcd/ca.crt", "/etc/etcd/client.crt", "/etc/etcd/client.key"} {
		want, _ := h.first.ReadFile(p)
		if h.read(t, p) != string(want) {
			t.Errorf("%s is not the first node's", p)
		}
	}
	if cmd := h.command(t, "kube-apiserver"); !slices.Contains(cmd, "--etcd-servers=https://10.0.0.50:2379") {
		t.Errorf("kube-apiserver.yaml does not use the external etcd: %q", cmd)
	}
	if want := "  the cluster uses an external etcd: this node runs no etcd member\n"; !strings.Contains(h.out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, h.out.String())
	}
}

func TestControlPlaneDryRun(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	h.data.DryRun = true
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	if restarts, _, _, _ := h.kubelet.state(); restarts != 0 {
		t.Error("a dry run restarted the kubelet")
	}
	if got, want := h.etcdEvents(), []string{"check quorum", "check quorum", "list"}; !slices.Equal(got, want) {
		t.Errorf("etcd calls %q, want only reads %q", got, want)
	}
	if cmd := h.command(t, "etcd"); !slices.Contains(cmd, "--initial-cluster=cp-1=https://10.0.0.11:2380,cp-2=https://127.0.0.1:2380") {
		t.Errorf("etcd.yaml: %q", cmd)
	}
	node, _ := h.client.CoreV1().Nodes().Get(t.Context(), cpName, metav1.GetOptions{})
	if len(node.Spec.Taints) > 0 {
		t.Error("a dry run marked the Node")
	}
	for _, want := range []string{"  dry run: would add cp-2 as an etcd learner at https://127.0.0.1:2380 through " + firstEtcd + ", wait for it to run, and promote it\n",
		"  dry run: would label and taint Node cp-2 as a control-plane node\n", "[wait-control-plane] not needed, skipped\n",
		"  dry run: would sign the kubelet's client certificate with the cluster CA for cp-2 and write /etc/kubernetes/kubelet.conf (server https://127.0.0.1:"} {
		if !strings.Contains(h.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, h.out.String())
		}
	}
}

func TestRefusedControlPlaneJoinWritesNothing(t *testing.T) {
	memberDown := fmt.Errorf("%w to add a member: voting member cp-3 (ID 13, peer https://10.0.0.13:2380) is not healthy: unreachable: "+
		"dial tcp 10.0.0.13:2379: connect: connection refused; bring it back, or remove it from the cluster, before adding another", etcd.ErrUnhealthy)
	tests := []struct {
		name    string
		cluster cpCluster
		key     string
		setup   func(h *cpHarness)
		wantErr error
		wantMsg string
	}{
		{
			name: "no controlPlaneEndpoint", cluster: cpCluster{upload: certKey}, key: certKey, wantErr: ErrNoControlPlaneEndpoint,
			wantMsg: "phase preflight: one or more conditions for hosting a new control plane instance is not satisfied: unable to add a new " +
				"control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address (kube-system/kubeadm-config has no " +
				"controlPlaneEndpoint): init a cluster that is to have several control-plane nodes with --control-plane-endpoint (a load balancer " +
				"or DNS name for every API server)",
		},
		{
			name: "wrong certificate key", cluster: cpCluster{endpoint: "cp.lab:6443", upload: certKey}, key: otherKey, wantErr: copycerts.ErrWrongKey,
			wantMsg: "phase preflight: download the shared certificates: the certificate key does not decrypt kubeadm-certs: use the key printed by " +
				"init --upload-certs, or re-upload with `kubeboot init phase upload-certs --upload-certs` on a control-plane node",
		},
		{
			name: "kubeadm-certs expired or never uploaded", cluster: cpCluster{endpoint: "cp.lab:6443"}, key: certKey, wantErr: copycerts.ErrSecretNotFound,
			wantMsg: "phase preflight: download the shared certificates: Secret kube-system/kubeadm-certs not found: it expires 2h after upload; " +
				"re-upload with `kubeboot init phase upload-certs --upload-certs` on a control-plane node",
		},
		{
			name: "no certificate key and no shared certificates", cluster: cpCluster{endpoint: "cp.lab:6443", upload: certKey}, wantErr: ErrSharedCertificatesMissing,
			wantMsg: "phase preflight: one or more conditions for hosting a new control plane instance is not satisfied: the certificates that " +
				"must be shared among control plane instances are not provided: /etc/kubernetes/pki/ca.crt, /etc/kubernetes/pki/front-proxy-ca.crt, " +
				"/etc/kubernetes/pki/sa.pub, /etc/kubernetes/pki/sa.key, /etc/kubernetes/pki/etcd/ca.crt missing; pass the --certificate-key printed by " +
				"`kubeboot init --upload-certs` (or `kubeboot init phase upload-certs --upload-certs`), or copy them from a control-plane node",
		},
		{
			name: "an etcd member is down", cluster: cpCluster{endpoint: "cp.lab:6443", upload: certKey}, key: certKey, wantErr: etcd.ErrUnhealthy,
			setup:   func(h *cpHarness) { h.etcd.quorumErr = memberDown },
			wantMsg: "phase preflight: " + memberDown.Error(),
		},
		{
			name: "a cluster configuration this kubeboot cannot render", key: certKey,
			cluster: cpCluster{endpoint: "cp.lab:6443", upload: certKey, gates: map[string]bool{"NoSuchGate": true}},
			wantMsg: "phase preflight: the cluster's configuration (kube-system/kubeadm-config, kube-system/kubelet-config): ClusterConfiguration: " +
				`featureGates[NoSuchGate]: Unsupported value: "NoSuchGate": supported values: "RootlessControlPlane"`,
		},
		{
			name: "no etcd Pod announces its member", cluster: cpCluster{endpoint: "cp.lab:6443", upload: certKey, noPods: true}, key: certKey,
			wantMsg: "phase preflight: no etcd Pod in kube-system carries the annotation kubeadm.kubernetes.io/etcd.advertise-client-urls, and " +
				"the EndpointSlice default/kubernetes lists no ready API server: the cluster's etcd is external (set etcd.external), or its control-plane nodes were not made by kubeadm or kubeboot",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newCPHarness(t, tt.cluster, tt.key)
			if tt.setup != nil {
				tt.setup(h)
			}
			before := snapshot(t, h.root)
			err := h.run(t, workflow.Options{})
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err == nil || err.Error() != tt.wantMsg {
				t.Fatalf("error\n got %v\nwant %s", err, tt.wantMsg)
			}
			requireUnchanged(t, h.root, before, "the refused control-plane join")
			if restarts, _, _, _ := h.kubelet.state(); restarts != 0 {
				t.Fatal("the kubelet was restarted")
			}
			for _, e := range h.etcdEvents() {
				if !strings.HasPrefix(e, "check") {
					t.Errorf("etcd was changed: %s", e)
				}
			}
			if bytes.Contains(h.out.Bytes(), []byte(certKey)) {
				t.Error("the certificate key was printed")
			}
		})
	}
}

// A control-plane join that stops after the learner was added takes the learner out again, with its manifest,
// and gives its turn back.
func TestLearnerOfAFailedJoinIsRemoved(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	h.etcd.notRunning = 1 << 30 // the member never starts
	err := h.run(t, workflow.Options{})
	want := "phase etcd-join: the new etcd member 42 did not start within 2s (timeouts.controlPlaneComponentHealthCheck): not started: it has " +
		"no client URL yet; check that the kubelet runs the static Pod /etc/kubernetes/manifests/etcd.yaml and that the member reaches the " +
		"other members' peer URLs (port 2380)"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	events := h.etcdEvents()
	if slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "promote") }) {
		t.Error("a member that never ran was promoted")
	}
	if last := events[len(events)-1]; last != "remove 42 (etcd.yaml written)" {
		t.Errorf("the last etcd call is %q, want the learner removed: %v", last, events)
	}
	if h.data.FS.Exists(staticpod.Path(staticpod.EtcdName)) {
		t.Error("the manifest of the removed learner is still there")
	}
	if !strings.Contains(h.out.String(), "removed the learner 42 from the etcd member list") {
		t.Errorf("the output does not say the learner was removed:\n%s", h.out.String())
	}
	lease, err := h.client.CoordinationV1().Leases("kube-system").Get(t.Context(), etcd.TurnLease, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity != nil || lease.Annotations[etcd.LearnerAnnotation] != "" {
		t.Errorf("the turn was not given back: %v %+v", err, lease)
	}
}

// learnerRuntime is the joining node's runtime running its etcd learner's container; removing that container is
// the restart (the kubelet starts another).
type learnerRuntime struct {
	fakeRuntime
	etcd  *fakeEtcd
	mu    sync.Mutex
	calls []string
}

func (r *learnerRuntime) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	if labels[cri.LabelContainerName] != staticpod.EtcdName {
		return nil, nil
	}
	return []cri.Container{{ID: "etcd-learner-container", Name: staticpod.EtcdName, State: cri.ContainerRunning}}, nil
}

func (r *learnerRuntime) StopContainer(_ context.Context, id string, grace time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("stop %s %s", id, grace))
	return nil
}

func (r *learnerRuntime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	r.calls = append(r.calls, "remove "+id)
	r.mu.Unlock()
	r.etcd.mu.Lock()
	defer r.etcd.mu.Unlock()
	r.etcd.restarted = true
	return nil
}

// A learner that has the leader's snapshot and serves no client past publishGrace is restarted once, and the join
// goes on as soon as it serves; one without the snapshot is left alone.
func TestJoinRestartsALearnerWaitingOnItsOwnPublish(t *testing.T) {
	for _, tc := range []struct {
		name      string
		snapshots int
		lost      bool
		wantCalls []string
	}{
		{"the snapshot installed, no publish: restarted", 1, true, []string{"stop etcd-learner-container 0s", "remove etcd-learner-container"}},
		{"no snapshot yet: left to start", 0, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
			h.etcd.lostPublish = tc.lost
			h.etcd.notRunning = 5
			rt := &learnerRuntime{etcd: h.etcd}
			h.data.DialRuntime = func(context.Context, string) (cri.Runtime, error) { return rt, nil }
			asked := 0
			h.data.LearnerSnapshots = func(context.Context) (int, error) { asked++; return tc.snapshots, nil }
			start := time.Now()
			if err := h.run(t, workflow.Options{}); err != nil {
				t.Fatalf("%v\n%s", err, h.out.String())
			}
			if !slices.Equal(rt.calls, tc.wantCalls) {
				t.Errorf("runtime calls %q, want %q\n%s", rt.calls, tc.wantCalls, h.out.String())
			}
			restartLine := "restarted its container etcd-learner-"
			if got := strings.Contains(h.out.String(), restartLine); got != tc.lost {
				t.Errorf("output has %q: %v, want %v\n%s", restartLine, got, tc.lost, h.out.String())
			}
			if tc.lost && time.Since(start) < publishGrace {
				t.Errorf("restarted after %s, before the publish grace %s", time.Since(start), publishGrace)
			}
			if asked == 0 {
				t.Error("the learner's snapshots were never read while it was unpublished")
			}
			if events := h.etcdEvents(); !slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "promote") }) {
				t.Errorf("the learner was not promoted: %q", events)
			}
		})
	}
}

// A run without etcd-join (`kubeboot join phase control-plane-prepare`) writes every control-plane manifest in the
// control-plane phase, the API server's included.
// A control plane's kubelet starts in etcd-join once the member is added (Data.Select); kubelet-start run on its own
// still writes the kubelet's files and starts it.
func TestControlPlaneKubeletStartsWithItsEtcdMember(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	out := h.out.String()
	kubeletStart, etcdJoin := strings.Index(out, "[kubelet-start] done"), strings.Index(out, "[etcd-join] done")
	added := strings.Index(out, "  added etcd member cp-2")
	wrote := strings.Index(out, "  wrote /var/lib/kubelet/kubeadm-flags.env and /var/lib/kubelet/config.yaml\n")
	manifest := strings.Index(out, "  wrote /etc/kubernetes/manifests/etcd.yaml")
	if kubeletStart < 0 || added < kubeletStart || wrote < added || manifest < wrote || etcdJoin < manifest ||
		!strings.Contains(out[:kubeletStart], "  etcd-join writes /var/lib/kubelet/kubeadm-flags.env and /var/lib/kubelet/config.yaml and starts the kubelet once") {
		t.Errorf("the kubelet's files not written in etcd-join between the member's addition and its manifest:\n%s", out)
	}
	if restarts, _, _, _ := h.kubelet.state(); restarts != 1 {
		t.Errorf("kubelet restarted %d times, want 1", restarts)
	}

	h = newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	if err := h.run(t, workflow.Options{Skip: []string{"etcd-join", "kubelet-wait-bootstrap", "control-plane-join", "wait-control-plane"}}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	if !h.data.FS.Exists(config.KubeletConfigFile) || !h.data.FS.Exists(config.KubeletFlagsEnvFile) {
		t.Errorf("kubelet-start without etcd-join did not write the kubelet's files:\n%s", h.out.String())
	}
	if restarts, _, _, _ := h.kubelet.state(); restarts != 1 {
		t.Errorf("kubelet-start without etcd-join: kubelet restarted %d times, want 1", restarts)
	}
}

// A control plane that has the cluster CA's key signs its kubelet's client certificate with it, as init does for its
// own node: no CertificateSigningRequest, so no wait for the controller-manager's approver and signer.
func TestControlPlaneSignsItsKubeletCertificate(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	var csrs atomic.Int32
	h.client.PrependReactor("create", "certificatesigningrequests", func(k8stesting.Action) (bool, runtime.Object, error) {
		csrs.Add(1)
		return false, nil, nil
	})
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	out := h.out.String()
	if n := csrs.Load(); n != 0 {
		t.Errorf("%d CertificateSigningRequests created", n)
	}
	if !strings.Contains(out, "  signed the kubelet's client certificate for system:node:cp-2 with the cluster CA, valid until ") {
		t.Errorf("output lacks the signing:\n%s", out)
	}
	pemBytes := h.read(t, "/var/lib/kubelet/pki/kubelet-client-current.pem")
	certs, err := certutil.ParseCertsPEM([]byte(pemBytes))
	if err != nil {
		t.Fatal(err)
	}
	leaf := certs[0]
	caPEM, _ := h.first.ReadFile("/etc/kubernetes/pki/ca.crt")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the kubelet's certificate does not verify as a client of the cluster CA: %v", err)
	}
	if leaf.Subject.CommonName != "system:node:cp-2" || !slices.Equal(leaf.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %v", leaf.Subject)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("key %T, want the kubelet's ECDSA", leaf.PublicKey)
	}
	if kc := h.read(t, "/etc/kubernetes/kubelet.conf"); !strings.Contains(kc, "client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem") {
		t.Errorf("kubelet.conf does not use the rotating certificate:\n%s", kc)
	}
}

func TestControlPlanePhaseAloneWritesTheAPIServer(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	if err := h.run(t, workflow.Options{Only: "control-plane-prepare"}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	for _, name := range []string{staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName} {
		if _, err := h.data.FS.ReadFile(staticpod.Path(name)); err != nil {
			t.Errorf("control-plane-prepare alone: %v\n%s", err, h.out.String())
		}
	}
	if _, err := h.data.FS.ReadFile(staticpod.Path(staticpod.EtcdName)); err == nil {
		t.Errorf("control-plane-prepare alone wrote the etcd manifest")
	}
}
