//go:build e2e

package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
)

// fakeAPIServerArg, as the first argument of the e2e test binary, makes it a fake API server instead of running
// tests (TestMain): the discovery rows of issue 19's security table run it inside a lab node, so that a joining
// node meets it over the lab's network as it would meet a man in the middle.
const fakeAPIServerArg = "e2e-fake-apiserver"

// fakeAPIServerConfig is what the fake API server serves: a TLS certificate, and the cluster-info ConfigMap of the
// first read and of every later one.
type fakeAPIServerConfig struct {
	Listen  string          `json:"listen"`
	CertPEM []byte          `json:"cert"`
	KeyPEM  []byte          `json:"key"`
	First   json.RawMessage `json:"first"`
	Later   json.RawMessage `json:"later"`
	// StopFile: the server exits once it exists, or after Lifetime.
	StopFile string        `json:"stopFile"`
	Lifetime time.Duration `json:"lifetime"`
}

// runFakeAPIServer serves kube-public/cluster-info as config (the file args[0]) says, printing one line per
// request, until its stop file appears or its lifetime ends.
func runFakeAPIServer(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s CONFIG.json\n", fakeAPIServerArg)
		return 2
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var c fakeAPIServerConfig
	if err := json.Unmarshal(b, &c); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", args[0], err)
		return 1
	}
	cert, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: the serving pair: %v\n", args[0], err)
		return 1
	}
	var n atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/namespaces/kube-public/configmaps/cluster-info", func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		body := c.Later
		if i == 1 {
			body = c.First
		}
		fmt.Printf("fake-apiserver: read %d of cluster-info from %s\n", i, r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("fake-apiserver: %s %s from %s: 404\n", r.Method, r.URL.Path, r.RemoteAddr)
		http.NotFound(w, r)
	})
	ln, err := tls.Listen("tcp", c.Listen, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("fake-apiserver: listening on %s\n", c.Listen)
	for deadline := time.Now().Add(c.Lifetime); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(c.StopFile); err == nil {
			break
		}
	}
	_ = srv.Close()
	fmt.Printf("fake-apiserver: stopped after %d reads of cluster-info\n", n.Load())
	return 0
}

// fakeAPIServer is a fake API server running in a lab node.
type fakeAPIServer struct {
	endpoint string
	run      *inNodeRun
	stop     string
}

// startFakeAPIServer runs a fake API server in node, listening on addr ("ip:port") with cfg's certificate and
// answers, and stops it when the test ends.
func startFakeAPIServer(t *testing.T, node, addr string, cfg fakeAPIServerConfig) *fakeAPIServer {
	t.Helper()
	dir := filepath.Join(nodeDir(node), "e2e-fake-apiserver")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Lifetime = addr, 3*time.Minute
	cfg.StopFile = filepath.Join(dir, "stop")
	_ = os.Remove(cfg.StopFile)
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAPIServer{endpoint: addr, stop: cfg.StopFile, run: startInNode(t, node, self, fakeAPIServerArg, file)}
	// The test's context ends `lab exec` first; the server itself, in the node, stops at its stop file (it looks
	// every 100 ms) or at the end of its lifetime.
	t.Cleanup(func() {
		_ = os.WriteFile(f.stop, nil, 0o600)
		time.Sleep(300 * time.Millisecond)
	})
	f.run.waitFor(t, "fake-apiserver: listening on")
	return f
}

// reads is how many times the fake API server has answered cluster-info so far.
func (f *fakeAPIServer) reads() int {
	return strings.Count(f.run.output(), "of cluster-info from")
}

// servingPair issues a serving certificate for ip, signed by the CA (caCert, caKey), or by a new CA of its own
// when caCert is nil. It returns the pair as PEM and the issuing CA.
func servingPair(t *testing.T, ip string, caCert *x509.Certificate, caKey crypto.Signer) (certPEM, keyPEM []byte, ca *x509.Certificate) {
	t.Helper()
	if caCert == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "kubernetes"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		if caCert, err = x509.ParseCertificate(der); err != nil {
			t.Fatal(err)
		}
		caKey = k
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano() + 1), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(ip)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, k.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), caCert
}

// clusterCA reads the cluster CA's certificate and key from a control-plane node.
func clusterCA(t *testing.T, node string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(nodeHostPath(node, "/etc/kubernetes/pki/ca.crt"), nodeHostPath(node, "/etc/kubernetes/pki/ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert, pair.PrivateKey.(crypto.Signer)
}

// realClusterInfo is the cluster's kube-public/cluster-info, as the lab's kubectl reads it.
func realClusterInfo(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	if err := kubectl(t.Context(), &cm, "get", "configmap", "-n", "kube-public", "cluster-info", "-o", "json"); err != nil {
		t.Fatalf("read kube-public/cluster-info: %v", err)
	}
	return &cm
}

// configMapJSON renders cm as an API server answers it.
func configMapJSON(t *testing.T, cm *corev1.ConfigMap) json.RawMessage {
	t.Helper()
	cm = cm.DeepCopy()
	cm.APIVersion, cm.Kind = "v1", "ConfigMap"
	b, err := json.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withKubeconfig is cm with its kubeconfig's cluster changed by edit, and, when tok is set, signed again for
// tok ("id.secret") as only someone who knows the token could.
func withKubeconfig(t *testing.T, cm *corev1.ConfigMap, edit func(*clientcmdapi.Cluster), tok string) *corev1.ConfigMap {
	t.Helper()
	kc, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey]))
	if err != nil {
		t.Fatalf("cluster-info's kubeconfig: %v", err)
	}
	for _, c := range kc.Clusters {
		edit(c)
	}
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	out := cm.DeepCopy()
	out.Data[bootstrapapi.KubeConfigKey] = string(b)
	if tok != "" {
		id, secret, _ := strings.Cut(tok, ".")
		sig, err := jws.ComputeDetachedSignature(string(b), id, secret)
		if err != nil {
			t.Fatal(err)
		}
		out.Data[bootstrapapi.JWSSignatureKeyPrefix+id] = sig
	}
	return out
}

// discoveryAttacks are the rows of issue 19's security table that need a fake API server in a lab node (in node,
// at ip): a join pointed at it (with the cluster's real token and CA pin, from good) must be refused before it
// writes anything, and the fake server must have been read as the row says.
type discoveryAttack struct {
	name string
	// serve starts the fake API server and returns the join's parameters and the reads of cluster-info the
	// refusal must come after.
	serve func(t *testing.T) (joinParams, *fakeAPIServer, int)
	want  string
}

func discoveryAttacks(good joinParams, node, ip string) []discoveryAttack {
	via := func(f *fakeAPIServer) joinParams {
		p := good
		p.endpoint, p.discoveryTimeout = f.endpoint, 20*time.Second
		return p
	}
	return []discoveryAttack{
		{
			// Someone between the node and the control plane answers with the cluster's real, signed
			// cluster-info, but cannot present a certificate the cluster CA signed.
			name: "a man in the middle replays the real cluster-info with its own TLS certificate",
			serve: func(t *testing.T) (joinParams, *fakeAPIServer, int) {
				real := configMapJSON(t, realClusterInfo(t))
				cert, key, _ := servingPair(t, ip, nil, nil)
				f := startFakeAPIServer(t, node, ip+":16443", fakeAPIServerConfig{CertPEM: cert, KeyPEM: key, First: real, Later: real})
				// The second, verified read ends in the TLS handshake, before any request.
				return via(f), f, 1
			},
			want: "presents a certificate not signed by the cluster CA",
		},
		{
			// Someone who knows the token (it leaked) answers with a cluster-info of their own CA, correctly
			// signed: only the CA pin stops them.
			name: "a server that knows the token signs a cluster-info with its own CA",
			serve: func(t *testing.T) (joinParams, *fakeAPIServer, int) {
				cert, key, ca := servingPair(t, ip, nil, nil)
				caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
				forged := withKubeconfig(t, realClusterInfo(t), func(c *clientcmdapi.Cluster) {
					c.CertificateAuthorityData = caPEM
					c.Server = "https://" + ip + ":16444"
				}, good.token)
				body := configMapJSON(t, forged)
				f := startFakeAPIServer(t, node, ip+":16444", fakeAPIServerConfig{CertPEM: cert, KeyPEM: key, First: body, Later: body})
				return via(f), f, 1
			},
			want: "but the pinned hash is " + good.hash,
		},
		{
			// A server with a certificate the cluster CA signed (here: issued with the lab's CA key) whose
			// second, verified read of cluster-info differs from the first, signed one.
			name: "cluster-info changes between the signed read and the verified read",
			serve: func(t *testing.T) (joinParams, *fakeAPIServer, int) {
				caCert, caKey := clusterCA(t, cp1)
				cert, key, _ := servingPair(t, ip, caCert, caKey)
				real := realClusterInfo(t)
				changed := withKubeconfig(t, real, func(c *clientcmdapi.Cluster) { c.Server = "https://" + ip + ":16445" }, "")
				f := startFakeAPIServer(t, node, ip+":16445", fakeAPIServerConfig{CertPEM: cert, KeyPEM: key, First: configMapJSON(t, real), Later: configMapJSON(t, changed)})
				return via(f), f, 2
			},
			want: "differs from the first read",
		},
	}
}
