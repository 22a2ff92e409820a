package discovery

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/token"
)

// The token the joining node was given, and one an attacker guessed (same public ID, another secret).
var (
	realToken    = token.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	guessedToken = token.Token{ID: "abcdef", Secret: "guessedguessed00"}
	otherToken   = token.Token{ID: "zzzzzz", Secret: "0123456789abcdef"}
)

// testCA is a cluster CA and a serving certificate it signed for 127.0.0.1.
type testCA struct {
	pem  []byte
	cert *x509.Certificate
	tls  tls.Certificate
}

func newTestCA(t *testing.T, servingIP string) testCA {
	t.Helper()
	src := pki.SystemSource()
	kp, err := pki.NewCA(src, pki.Request{CommonName: "kubernetes", IsCA: true, Algorithm: config.EncryptionAlgorithmECDSAP256,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(kp.Cert, kp.Key)
	if err != nil {
		t.Fatal(err)
	}
	req := pki.Request{CommonName: "kube-apiserver", Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: time.Hour,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(servingIP); ip != nil {
		req.IPs = []net.IP{ip}
	} else {
		req.DNSNames = []string{servingIP}
	}
	leaf, err := pki.NewSignedCert(src, ca, req)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(leaf.Cert, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{pem: kp.Cert, cert: ca.Cert, tls: pair}
}

// kubeconfigFor renders cluster-info's kubeconfig: one cluster per CA, named as kubeadm names the first ("").
func kubeconfigFor(t *testing.T, server string, cas ...testCA) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	for i, ca := range cas {
		name := ""
		if i > 0 {
			name = fmt.Sprintf("extra-%d", i)
		}
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca.pem}
	}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// clusterInfo is a cluster-info ConfigMap whose kubeconfig is signed with each of signers.
func clusterInfo(t *testing.T, kubeconfig string, signers ...token.Token) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespacePublic, Name: bootstrapapi.ConfigMapClusterInfo},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: kubeconfig},
	}
	for _, s := range signers {
		sig, err := jws.ComputeDetachedSignature(kubeconfig, s.ID, s.Secret)
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[bootstrapapi.JWSSignatureKeyPrefix+s.ID] = sig
	}
	return cm
}

// apiServer serves cluster-info over TLS with a given certificate; answer decides each response (n counts from 1).
type apiServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	n      int
	answer func(n int) (int, any)
}

func startAPIServer(t *testing.T, cert tls.Certificate, answer func(n int) (int, any)) *apiServer {
	t.Helper()
	a := &apiServer{answer: answer}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != clusterInfoPath || r.Header.Get("Authorization") != "" {
			http.Error(w, "unexpected request "+r.URL.Path, http.StatusTeapot)
			return
		}
		a.mu.Lock()
		a.n++
		n := a.n
		a.mu.Unlock()
		code, body := a.answer(n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}))
	a.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *apiServer) endpoint() string { return a.srv.Listener.Addr().String() }
func (a *apiServer) url() string      { return "https://" + a.endpoint() }
func (a *apiServer) requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func always(cm *corev1.ConfigMap) func(int) (int, any) {
	return func(int) (int, any) { return http.StatusOK, cm }
}

func notFound(int) (int, any) {
	return http.StatusNotFound, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure",
		Message: `configmaps "cluster-info" not found`, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound}
}

func TestFetchClusterInfo(t *testing.T) {
	real := newTestCA(t, "127.0.0.1")
	mitm := newTestCA(t, "127.0.0.1")
	realHash, mitmHash := pki.DiscoveryHash(real.cert), pki.DiscoveryHash(mitm.cert)
	const wrongHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

	type setup struct {
		cert   tls.Certificate
		answer func(t *testing.T, url string) func(int) (int, any)
	}
	tests := []struct {
		name       string
		setup      setup
		tok        token.Token
		pins       []string
		unsafeSkip bool
		timeout    time.Duration
		wantErr    error
		wantMsg    string // exact error, with URL standing for the server's https:// URL
		wantReqs   int    // requests the server saw, 0: not checked
		wantOut    string // a line Out must contain
	}{
		{
			name: "valid",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real), realToken, otherToken))
			}},
			tok: realToken, pins: []string{realHash}, wantReqs: 2,
		},
		{
			name: "valid with several pins",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real), realToken))
			}},
			tok: realToken, pins: []string{wrongHash, strings.ToUpper(realHash[:10]) + realHash[10:]}, wantReqs: 2,
		},
		{
			name: "unsafe skip warns",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real), realToken))
			}},
			tok: realToken, unsafeSkip: true, wantReqs: 2,
			wantOut: "  WARNING: the cluster CA (" + realHash + ") was not checked against a pinned hash",
		},
		{
			name: "wrong hash",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real), realToken))
			}},
			tok: realToken, pins: []string{wrongHash}, wantErr: ErrCAHashMismatch, wantReqs: 1,
			wantMsg: "cluster CA does not match --discovery-token-ca-cert-hash: cluster-info at URL carries a CA with public key hash " +
				realHash + ", but the pinned hash is " + wrongHash + ": check the hash (`kubeboot token create --print-join-command` on a " +
				"control-plane node prints it); if it is right, the endpoint is not your cluster or the connection is intercepted",
		},
		{
			name: "wrong signature",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real), guessedToken))
			}},
			tok: realToken, pins: []string{realHash}, wantErr: ErrBadSignature, wantReqs: 1,
			wantMsg: `cluster-info signature does not verify: cluster-info at URL is signed for token id "abcdef", but not with this ` +
				`token's secret: the token is mistyped (copy it again from a control-plane node), or the server is not your control plane`,
		},
		{
			name: "two clusters",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real, mitm), realToken))
			}},
			tok: realToken, pins: []string{realHash}, wantErr: ErrClusterCount, wantReqs: 1,
			wantMsg: `kubeconfig does not hold exactly one cluster: cluster-info at URL holds 2 clusters ["" "extra-1"]; ` +
				`exactly one is required, kubeboot will not guess which to trust`,
		},
		{
			name: "content changed between fetches",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				first := clusterInfo(t, kubeconfigFor(t, url, real), realToken)
				second := clusterInfo(t, kubeconfigFor(t, "https://10.9.9.9:6443", real), realToken)
				return func(n int) (int, any) {
					if n == 1 {
						return http.StatusOK, first
					}
					return http.StatusOK, second
				}
			}},
			tok: realToken, pins: []string{realHash}, wantErr: ErrContentChanged, wantReqs: 2,
			wantMsg: "cluster-info changed between reads: cluster-info at URL read over TLS verified with the cluster CA differs from " +
				"the first read: retry the join; if it happens again, something between this node and the control plane alters the traffic",
		},
		{
			name: "signature appears after a few tries",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				unsigned := clusterInfo(t, kubeconfigFor(t, url, real))
				signed := clusterInfo(t, kubeconfigFor(t, url, real), realToken)
				return func(n int) (int, any) {
					switch {
					case n == 1:
						return notFound(n)
					case n <= 3:
						return http.StatusOK, unsigned
					}
					return http.StatusOK, signed
				}
			}},
			tok: realToken, pins: []string{realHash}, wantReqs: 5,
			wantOut: `  waiting for cluster-info at URL: no signature for token id "abcdef" yet (retrying every 10ms for up to 5s)`,
		},
		{
			name: "token expired or deleted",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real), otherToken))
			}},
			tok: realToken, pins: []string{realHash}, timeout: 200 * time.Millisecond, wantErr: ErrTokenNotSigned,
			wantMsg: `token is not signed in cluster-info: cluster-info at URL has no signature for token id "abcdef" after 200ms: ` +
				"the token expired or was deleted; create a new one with `kubeboot token create` on a control-plane node",
		},
		{
			name:  "cluster-info missing until the timeout",
			setup: setup{real.tls, func(*testing.T, string) func(int) (int, any) { return notFound }},
			tok:   realToken, pins: []string{realHash}, timeout: 200 * time.Millisecond, wantErr: ErrUnavailable,
			wantMsg: `cluster-info unavailable: URL answers HTTP 404: configmaps "cluster-info" not found for cluster-info after 200ms: ` +
				"the control plane has not published it: run init to the end (its bootstrap-token phase creates it)",
		},
		{
			name: "MITM with its own CA and a guessed token secret",
			setup: setup{mitm.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, mitm), guessedToken))
			}},
			tok: realToken, pins: []string{realHash}, wantErr: ErrBadSignature, wantReqs: 1,
			wantMsg: `cluster-info signature does not verify: cluster-info at URL is signed for token id "abcdef", but not with this ` +
				`token's secret: the token is mistyped (copy it again from a control-plane node), or the server is not your control plane`,
		},
		{
			name: "MITM with its own CA and a guessed token ID",
			setup: setup{mitm.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, mitm), otherToken))
			}},
			tok: realToken, pins: []string{realHash}, timeout: 200 * time.Millisecond, wantErr: ErrTokenNotSigned,
			wantMsg: `token is not signed in cluster-info: cluster-info at URL has no signature for token id "abcdef" after 200ms: ` +
				"the token expired or was deleted; create a new one with `kubeboot token create` on a control-plane node",
		},
		{
			name: "MITM with its own CA that stole the token",
			setup: setup{mitm.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, mitm), realToken))
			}},
			tok: realToken, pins: []string{realHash}, wantErr: ErrCAHashMismatch, wantReqs: 1,
			wantMsg: "cluster CA does not match --discovery-token-ca-cert-hash: cluster-info at URL carries a CA with public key hash " +
				mitmHash + ", but the pinned hash is " + realHash + ": check the hash (`kubeboot token create --print-join-command` on a " +
				"control-plane node prints it); if it is right, the endpoint is not your cluster or the connection is intercepted",
		},
		{
			name: "server CA is not the pinned CA on the second fetch",
			setup: setup{mitm.tls, func(t *testing.T, url string) func(int) (int, any) {
				// The real, signed cluster-info relayed by a server that terminates TLS with its own CA.
				return always(clusterInfo(t, kubeconfigFor(t, url, real), realToken))
			}},
			tok: realToken, pins: []string{realHash}, wantErr: ErrServerNotTrusted, wantReqs: 1,
			wantMsg: "API server certificate not trusted: the server at URL presents a certificate not signed by the cluster CA " +
				"from cluster-info: something between this node and the control plane intercepts TLS, or the endpoint is not this cluster's API server",
		},
		{
			name: "no pin and no unsafe switch",
			setup: setup{real.tls, func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real), realToken))
			}},
			tok: realToken, wantErr: ErrNoPin,
			wantMsg: "no CA pin: pass --discovery-token-ca-cert-hash sha256:<hex> (printed by init, or by `kubeboot token create " +
				"--print-join-command` on a control-plane node); without it the cluster cannot be authenticated",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var answer func(int) (int, any)
			srv := startAPIServer(t, tt.setup.cert, func(n int) (int, any) { return answer(n) })
			answer = tt.setup.answer(t, srv.url())
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			var out bytes.Buffer
			kc, err := FetchClusterInfo(t.Context(), srv.endpoint(), tt.tok, tt.pins, tt.unsafeSkip, timeout,
				Options{Interval: 10 * time.Millisecond, Out: &out})
			if strings.Contains(out.String(), tt.tok.Secret) || (err != nil && strings.Contains(err.Error(), tt.tok.Secret)) {
				t.Fatalf("the token secret leaked: out %q, err %v", out.String(), err)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				if want := strings.ReplaceAll(tt.wantMsg, "URL", srv.url()); err.Error() != want {
					t.Fatalf("message\n got %s\nwant %s", err, want)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				cluster := kc.Clusters[""]
				if len(kc.Clusters) != 1 || cluster == nil || cluster.Server != srv.url() || !bytes.Equal(cluster.CertificateAuthorityData, real.pem) {
					t.Fatalf("got clusters %+v", kc.Clusters)
				}
			}
			if tt.wantReqs != 0 && srv.requests() != tt.wantReqs {
				t.Fatalf("server saw %d requests, want %d", srv.requests(), tt.wantReqs)
			}
			if tt.wantOut != "" && !strings.Contains(out.String(), strings.ReplaceAll(tt.wantOut, "URL", srv.url())) {
				t.Fatalf("output %q lacks %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestFetchClusterInfoUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more: connection refused
	var out bytes.Buffer
	_, err = FetchClusterInfo(t.Context(), addr, realToken, []string{"sha256:" + strings.Repeat("ab", 32)}, false,
		150*time.Millisecond, Options{Interval: 10 * time.Millisecond, Out: &out})
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Address != "https://"+addr {
		t.Fatalf("got %v, want an UnreachableError for %s", err, addr)
	}
	want := fmt.Sprintf("cannot reach the API server at https://%s (dial tcp %s: connect: connection refused), still failing "+
		"after 150ms: check the address and port, and that kube-apiserver runs there and is reachable from this node", addr, addr)
	if err.Error() != want {
		t.Fatalf("message\n got %s\nwant %s", err, want)
	}
	if !strings.Contains(out.String(), "waiting for cluster-info at https://"+addr+": dial tcp") {
		t.Fatalf("no progress line in %q", out.String())
	}
}

func TestFetchClusterInfoNotTLS(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	endpoint := srv.Listener.Addr().String()
	_, err := FetchClusterInfo(t.Context(), endpoint, realToken, []string{"sha256:" + strings.Repeat("ab", 32)}, false,
		time.Second, Options{Interval: 10 * time.Millisecond})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "https://"+endpoint+" does not speak TLS") {
		t.Fatalf("got %v", err)
	}
}

func TestFetchClusterInfoRejectsBadInput(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		pins     []string
		want     string
	}{
		{"no port", "10.0.0.1", []string{"sha256:" + strings.Repeat("ab", 32)},
			`API server endpoint "10.0.0.1": address 10.0.0.1: missing port in address; pass host:port, e.g. 10.0.0.10:6443`},
		{"short pin", "10.0.0.1:6443", []string{"sha256:abcd"}, `CA hash "sha256:abcd": want sha256: followed by 64 hex characters`},
		{"other algorithm", "10.0.0.1:6443", []string{"md5:" + strings.Repeat("ab", 32)},
			`CA hash "md5:` + strings.Repeat("ab", 32) + `": want sha256: followed by 64 hex characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FetchClusterInfo(t.Context(), tt.endpoint, realToken, tt.pins, false, time.Second, Options{})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// writeKubeconfig writes a discovery file; caFile, when set, names the CA instead of embedding it.
func writeKubeconfig(t *testing.T, dir, server string, ca testCA, caFile bool, clusters int) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	for i := range clusters {
		c := &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca.pem}
		if caFile {
			if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.pem, 0o600); err != nil {
				t.Fatal(err)
			}
			c.CertificateAuthorityData, c.CertificateAuthority = nil, "ca.crt"
		}
		cfg.Clusters[fmt.Sprintf("c%d", i)] = c
	}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{TokenFile: "token"}
	cfg.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c0", AuthInfo: "u"}
	cfg.CurrentContext = "ctx"
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(realToken.Value()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "discovery.conf")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFetchFile(t *testing.T) {
	real := newTestCA(t, "127.0.0.1")
	mitm := newTestCA(t, "127.0.0.1")
	forbidden := func(int) (int, any) {
		return http.StatusForbidden, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure",
			Message: "forbidden", Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden}
	}
	tests := []struct {
		name     string
		ca       testCA // the CA in the file
		caFile   bool
		clusters int
		answer   func(t *testing.T, url string) func(int) (int, any)
		wantErr  error
		wantMsg  string // exact, FILE and URL substituted
		wantOut  string
	}{
		{name: "embedded CA, anonymous read refused", ca: real, clusters: 1,
			answer: func(*testing.T, string) func(int) (int, any) { return forbidden }},
		{name: "CA file next to the kubeconfig", ca: real, caFile: true, clusters: 1,
			answer: func(t *testing.T, url string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, url, real)))
			}},
		{name: "cluster-info names another server", ca: real, clusters: 1,
			answer: func(t *testing.T, _ string) func(int) (int, any) {
				return always(clusterInfo(t, kubeconfigFor(t, "https://10.9.9.9:6443", real)))
			},
			wantOut: "  WARNING: discovery file FILE points at URL, but cluster-info names https://10.9.9.9:6443 as the API server"},
		{name: "two clusters", ca: real, clusters: 2,
			answer:  func(*testing.T, string) func(int) (int, any) { return forbidden },
			wantErr: ErrClusterCount,
			wantMsg: `kubeconfig does not hold exactly one cluster: discovery file FILE holds 2 clusters ["c0" "c1"]; exactly one is required, kubeboot will not guess which to trust`},
		{name: "server not signed by the file's CA", ca: mitm, clusters: 1,
			answer:  func(*testing.T, string) func(int) (int, any) { return forbidden },
			wantErr: ErrServerNotTrusted,
			wantMsg: "API server certificate not trusted: the server at URL presents a certificate not signed by the CA in discovery file FILE: " +
				"something between this node and the control plane intercepts TLS, or the endpoint is not this cluster's API server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var answer func(int) (int, any)
			srv := startAPIServer(t, real.tls, func(n int) (int, any) { return answer(n) })
			answer = tt.answer(t, srv.url())
			file := writeKubeconfig(t, t.TempDir(), srv.url(), tt.ca, tt.caFile, tt.clusters)
			var out bytes.Buffer
			kc, err := FetchFile(t.Context(), file, 5*time.Second, Options{Interval: 10 * time.Millisecond, Out: &out})
			subst := strings.NewReplacer("FILE", file, "URL", srv.url())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || err.Error() != subst.Replace(tt.wantMsg) {
					t.Fatalf("got %v\nwant %s", err, subst.Replace(tt.wantMsg))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := kc.Clusters["c0"]
			if c == nil || !bytes.Equal(c.CertificateAuthorityData, real.pem) || c.CertificateAuthority != "" {
				t.Fatalf("CA not embedded: %+v", c)
			}
			if u := kc.AuthInfos["u"]; u == nil || u.Token != realToken.Value() || u.TokenFile != "" {
				t.Fatal("token file not embedded")
			}
			if tt.wantOut != "" && !strings.Contains(out.String(), subst.Replace(tt.wantOut)) {
				t.Fatalf("output %q lacks %q", out.String(), subst.Replace(tt.wantOut))
			}
		})
	}
}

func TestFetchFileErrors(t *testing.T) {
	real := newTestCA(t, "127.0.0.1")
	srv := startAPIServer(t, real.tls, func(int) (int, any) { return http.StatusOK, "kubeconfig" })
	missing := filepath.Join(t.TempDir(), "nope.conf")
	tests := []struct {
		name     string
		location string
		wantErr  error
		wantMsg  string
	}{
		{"missing file", missing, nil,
			"discovery file " + missing + " does not exist: pass the path of a kubeconfig with the cluster's address and CA"},
		// The test server's CA is not among the machine's trusted roots: a URL must not be downloaded unverified.
		{"https URL not trusted by the machine", srv.url() + "/discovery.conf", ErrServerNotTrusted,
			"download the discovery file: API server certificate not trusted: the server at " + srv.url() + "/discovery.conf presents " +
				"a certificate not signed by a CA this machine trusts: something between this node and the control plane " +
				"intercepts TLS, or the endpoint is not this cluster's API server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FetchFile(t.Context(), tt.location, time.Second, Options{Interval: 10 * time.Millisecond})
			if err == nil || err.Error() != tt.wantMsg || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("got %v\nwant %s", err, tt.wantMsg)
			}
			if srv.requests() != 0 {
				t.Fatalf("the untrusted server got %d requests", srv.requests())
			}
		})
	}
}
