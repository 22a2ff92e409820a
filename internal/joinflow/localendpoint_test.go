package joinflow

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/testutil/staticelf"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// signCSRs makes c approve and sign every kubelet client CSR as it is created, as the controller-manager's
// approver and signer would, with a throwaway CA.
func signCSRs(t *testing.T, c *fake.Clientset) {
	t.Helper()
	kp, err := pki.NewCA(pki.SystemSource(), pki.Request{CommonName: "kubernetes", IsCA: true, Algorithm: config.EncryptionAlgorithmECDSAP256,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(kp.Cert, kp.Key)
	if err != nil {
		t.Fatal(err)
	}
	resource := certificatesv1.SchemeGroupVersion.WithResource("certificatesigningrequests")
	c.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest).DeepCopy()
		obj.UID = types.UID("uid-" + obj.Name)
		block, _ := pem.Decode(obj.Spec.Request)
		cr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return true, nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: cr.Subject, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, ca.Cert, cr.PublicKey, ca.Key)
		if err != nil {
			return true, nil, err
		}
		obj.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "AutoApproved"}}
		obj.Status.Certificate = pki.EncodeCertPEM(der)
		if err := c.Tracker().Create(resource, obj, ""); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	})
}

// registeringKubelet is a kubelet that already has kubelet.conf: once restarted, it registers its Node.
type registeringKubelet struct {
	client   *fake.Clientset
	mu       sync.Mutex
	restarts int
	// bootstrapConf says whether bootstrap-kubelet.conf existed when the kubelet was restarted.
	bootstrapConf bool
	h             *harness
	node          string // the Node it registers; "": worker-1
}

func (k *registeringKubelet) Name() string { return "fake" }

func (k *registeringKubelet) Restart(ctx context.Context, _ string) error {
	k.mu.Lock()
	k.restarts++
	k.bootstrapConf = k.h.data.FS.Exists(config.BootstrapKubeletConf)
	k.mu.Unlock()
	name := k.node
	if name == "" {
		name = nodeName
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		_, _ = k.client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	}()
	return nil
}

func kubebootConfigMap(t *testing.T, port int32) runtime.Object {
	t.Helper()
	objs, err := uploadconfig.KubebootConfigObjects(&config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{Enabled: true, Port: port}})
	if err != nil {
		t.Fatal(err)
	}
	return objs[0]
}

func apiServersSlice(addrs ...string) runtime.Object {
	name, port, ready := "https", int32(6443), true
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}}}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

// TestJoinWorkerLocalEndpoint joins a worker into a cluster whose kube-system/kubeboot-config turns the node-local
// API endpoint on: kubeboot does the TLS bootstrap itself, kubelet.conf points at 127.0.0.1, the endpoint's
// static Pod starts with the API servers the cluster lists (or, when it cannot list them, those it knows), and
// no bootstrap-kubelet.conf is written.
func TestJoinWorkerLocalEndpoint(t *testing.T) {
	healthz := kubeletHealthz(t)
	for _, tc := range []struct {
		name         string
		objects      []runtime.Object
		wantBackends func(h *harness) []string
	}{
		{name: "seeded from the EndpointSlice", objects: []runtime.Object{apiServersSlice("10.0.0.11", "10.0.0.12")},
			wantBackends: func(*harness) []string { return []string{"10.0.0.11:6443", "10.0.0.12:6443"} }},
		{name: "seeded from discovery without the EndpointSlice",
			wantBackends: func(h *harness) []string { return []string{h.cp.endpoint()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, append(clusterObjects(t, healthz, nil), append(tc.objects, kubebootConfigMap(t, 7446))...)...)
			k := &registeringKubelet{client: h.client, h: h}
			h.data.InitSystem = k
			bin := staticelf.Write(t)
			h.data.Executable = func() (string, error) { return bin, nil }
			if err := h.run(t, workflow.Options{}); err != nil {
				t.Fatalf("%v\n%s", err, h.out.String())
			}
			out := h.out.String()
			for _, want := range []string{
				"  read kube-system/kubeboot-config: the cluster's nodes run the node-local API endpoint\n",
				"  wrote /etc/kubernetes/kubelet.conf (server https://127.0.0.1:7446)",
				"  wrote /etc/kubernetes/manifests/kubeboot-local-endpoint.yaml\n  kubeboot-local-endpoint listens on https://127.0.0.1:7446\n",
				"  the kubelet registered the Node worker-1 after",
				"[kubelet-wait-bootstrap] done in",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if !h.data.Bootstrapped() {
				t.Error("Bootstrapped() is false")
			}
			if k.restarts != 1 || k.bootstrapConf || h.data.FS.Exists(config.BootstrapKubeletConf) {
				t.Errorf("kubelet restarts %d, bootstrap-kubelet.conf at the restart %v, after %v; want 1, false, false",
					k.restarts, k.bootstrapConf, h.data.FS.Exists(config.BootstrapKubeletConf))
			}
			kc, err := kubeconfig.Read(h.data.FS, config.KubeletKubeconfigFile)
			if err != nil {
				t.Fatal(err)
			}
			c, user, err := kubeconfig.Current(kc)
			if err != nil {
				t.Fatal(err)
			}
			if c.Server != "https://127.0.0.1:7446" || user.ClientCertificate != kubelet.CertDir+"/"+kubelet.ClientCertCurrent {
				t.Errorf("kubelet.conf: server %s, certificate %s", c.Server, user.ClientCertificate)
			}
			if !h.data.FS.Exists(kubelet.CertDir + "/" + kubelet.ClientCertCurrent) {
				t.Errorf("no %s", kubelet.ClientCertCurrent)
			}
			if !h.data.FS.Exists(localendpoint.HostBinaryPath) {
				t.Errorf("%s not installed", localendpoint.HostBinaryPath)
			}
			m, err := staticpod.Read(h.data.FS, localendpoint.Name)
			if err != nil {
				t.Fatal(err)
			}
			var backends []string
			for _, a := range m.Pod.Spec.Containers[0].Command {
				if b, ok := strings.CutPrefix(a, "--backend="); ok {
					backends = append(backends, b)
				}
			}
			if want := tc.wantBackends(h); strings.Join(backends, ",") != strings.Join(want, ",") {
				t.Errorf("backends %v, want %v", backends, want)
			}
		})
	}
}

// TestJoinOwnKubebootConfigOverrides: a KubebootConfiguration in the join's own --config wins over the cluster's;
// with the endpoint off there, the kubelet talks to cluster-info's API server.
func TestJoinOwnKubebootConfigOverrides(t *testing.T) {
	healthz := kubeletHealthz(t)
	h := newHarness(t, nil, append(clusterObjects(t, healthz, nil), kubebootConfigMap(t, 7446))...)
	h.data.Cfg.Kubeboot = &config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{}}
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	out := h.out.String()
	if want := "  wrote /etc/kubernetes/kubelet.conf (server " + h.cp.url + ")"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if h.data.FS.Exists(staticpod.Path(localendpoint.Name)) || h.data.FS.Exists(localendpoint.HostBinaryPath) {
		t.Error("the node-local API endpoint was installed although the join's own configuration turns it off")
	}
}

// TestJoinControlPlaneLocalEndpoint: a control-plane join into a cluster with the node-local API endpoint gets an
// API server certificate for 127.0.0.1 too, and its kubelet uses the endpoint like a worker's.
func TestJoinControlPlaneLocalEndpoint(t *testing.T) {
	h := newCPHarness(t, cpCluster{endpoint: "cp.lab:6443", upload: certKey}, certKey)
	if err := h.client.Tracker().Add(kubebootConfigMap(t, 7446)); err != nil {
		t.Fatal(err)
	}
	k := &registeringKubelet{client: h.client, h: h.harness, node: cpName}
	h.data.InitSystem = k
	bin := staticelf.Write(t)
	h.data.Executable = func() (string, error) { return bin, nil }
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	apiserver, err := certutil.ParseCertsPEM([]byte(h.read(t, "/etc/kubernetes/pki/apiserver.crt")))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(apiserver[0].IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) ||
		!slices.Contains(apiserver[0].DNSNames, "cp.lab") {
		t.Errorf("apiserver.crt SANs %v %v lack 127.0.0.1 or the endpoint", apiserver[0].DNSNames, apiserver[0].IPAddresses)
	}
	kc, err := kubeconfig.Read(h.data.FS, config.KubeletKubeconfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if c, _, err := kubeconfig.Current(kc); err != nil || c.Server != "https://127.0.0.1:7446" {
		t.Errorf("kubelet.conf: %v, %v; want the server https://127.0.0.1:7446", c, err)
	}
	if k.bootstrapConf || h.data.FS.Exists(config.BootstrapKubeletConf) {
		t.Error("bootstrap-kubelet.conf was written")
	}
	if !h.data.FS.Exists(staticpod.Path(localendpoint.Name)) {
		t.Errorf("no %s", staticpod.Path(localendpoint.Name))
	}
}

// TestJoinLocalEndpointDryRun: a dry run requests no certificate (the cluster is only read) and renders the
// endpoint's files where the dry run writes.
func TestJoinLocalEndpointDryRun(t *testing.T) {
	h := newHarness(t, nil, append(clusterObjects(t, kubeletHealthz(t), nil), kubebootConfigMap(t, 7446))...)
	h.data.DryRun = true
	bin := staticelf.Write(t)
	h.data.Executable = func() (string, error) { return bin, nil }
	if err := h.run(t, workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, h.out.String())
	}
	if !strings.Contains(h.out.String(), "  dry run: would request the kubelet's client certificate for worker-1 and write /etc/kubernetes/kubelet.conf (server https://127.0.0.1:7446)\n") {
		t.Errorf("output:\n%s", h.out.String())
	}
	csrs, err := h.client.CertificatesV1().CertificateSigningRequests().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(csrs.Items) != 0 {
		t.Errorf("a dry run created CSRs: %v, %v", csrs, err)
	}
	if !h.data.FS.Exists(staticpod.Path(localendpoint.Name)) || h.data.FS.Exists(config.BootstrapKubeletConf) {
		t.Error("the dry run did not render the endpoint's manifest, or rendered bootstrap-kubelet.conf")
	}
}
