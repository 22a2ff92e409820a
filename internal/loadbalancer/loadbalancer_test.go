package loadbalancer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/pki"
)

// testPKI is a CA and a serving certificate for 127.0.0.1 signed by it.
type testPKI struct {
	pool *x509.CertPool
	cert tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	src := pki.SystemSource()
	caPair, err := pki.NewCA(src, pki.Request{CommonName: "test-ca", IsCA: true, Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(caPair.Cert, caPair.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.NewSignedCert(src, ca, pki.Request{
		CommonName: "kube-apiserver", IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Algorithm: config.EncryptionAlgorithmECDSAP256, Validity: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(leaf.Cert, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return testPKI{pool: pool, cert: cert}
}

// testBackend stands in for an API server on a real loopback port. A connection that starts with a TLS
// handshake gets HTTPS (/readyz, and /name answering the backend's name); any other connection is raw TCP:
// each line it sends is answered with "<name> <line>", so a test sees which backend a connection reached.
type testBackend struct {
	name  string
	ln    net.Listener
	ready atomic.Bool
	// hang: /readyz does not answer (a host that stopped answering, a wedged process).
	hang  atomic.Bool
	srv   *http.Server
	https *chanListener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startBackend(t *testing.T, name string, p testPKI) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{name: name, ln: ln, conns: map[net.Conn]struct{}{}, https: newChanListener(ln.Addr())}
	b.ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if b.hang.Load() {
			<-r.Context().Done()
			return
		}
		if !b.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/name", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })
	// The health checks of TestHealthCheckVerifiesWithTheCA fail handshakes on purpose: keep them out of the output.
	b.srv = &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	go b.srv.Serve(b.https)
	go b.accept(p)
	t.Cleanup(b.kill)
	return b
}

func (b *testBackend) addr() string { return b.ln.Addr().String() }

func (b *testBackend) accept(p testPKI) {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		go func() {
			r := bufio.NewReader(c)
			first, err := r.Peek(1)
			if err != nil {
				c.Close()
				return
			}
			pc := &peekedConn{Conn: c, r: r}
			if first[0] == 0x16 { // a TLS handshake record
				b.https.push(tls.Server(pc, &tls.Config{Certificates: []tls.Certificate{p.cert}}))
				return
			}
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					c.Close()
					return
				}
				fmt.Fprintf(c, "%s %s", b.name, line)
			}
		}()
	}
}

// stopListening closes the backend's listener and keeps its connections, like an API server in the last part
// of its graceful shutdown.
func (b *testBackend) stopListening() { b.ln.Close() }

// kill stops the backend like a dead API server: no listener, every connection cut.
func (b *testBackend) kill() {
	b.ln.Close()
	b.srv.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.Close()
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener hands connections accepted elsewhere to an http.Server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// syncBuffer is a log writer safe for the load balancer's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLB runs a load balancer on a random loopback port until the test ends.
func startLB(t *testing.T, opts Options) (*LoadBalancer, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	opts.Listen = "127.0.0.1:0"
	opts.Log = log
	lb, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- lb.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return 5s after its context ended")
		}
	})
	return lb, log
}

// dialRaw opens a raw connection through the load balancer.
func dialRaw(t *testing.T, lb *LoadBalancer) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", lb.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends one line on c and returns the name of the backend that answered.
func ask(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	name, _, _ := strings.Cut(line, " ")
	return name, nil
}

// whoAnswers opens a new connection through the load balancer and returns the backend that answered.
func whoAnswers(t *testing.T, lb *LoadBalancer) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", lb.Addr().String(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return ask(c)
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// logEventually waits up to a second for want in the load balancer's log: a line that reports connections
// closed is written once they are, so their clients may see the close a moment before it.
func logEventually(t *testing.T, log fmt.Stringer, want string) {
	t.Helper()
	start := time.Now()
	for !strings.Contains(log.String(), want) {
		if time.Since(start) > time.Second {
			t.Errorf("log lacks %q:\n%s", want, log)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoundRobinOverHealthyBackends(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr(), b.addr()}})
	eventually(t, time.Second, "both backends healthy", func() bool { return len(lb.Healthy()) == 2 })
	seen := map[string]int{}
	for range 10 {
		name, err := whoAnswers(t, lb)
		if err != nil {
			t.Fatal(err)
		}
		seen[name]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("connections per backend = %v, want 5 each", seen)
	}
	for _, want := range []string{"backend " + a.addr() + " is up\n", "backend " + b.addr() + " is up\n"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestTLSPassesThrough(t *testing.T) {
	p := newTestPKI(t)
	a := startBackend(t, "a", p)
	lb, _ := startLB(t, Options{Backends: []string{a.addr()}, RootCAs: p.pool})
	eventually(t, time.Second, "backend healthy with the CA", func() bool { return len(lb.Healthy()) == 1 })
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}
	resp, err := client.Get("https://" + lb.Addr().String() + "/name")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "a" || resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != "kube-apiserver" {
		t.Fatalf("got %q from %+v", body, resp.TLS)
	}
}

func TestHealthCheckVerifiesWithTheCA(t *testing.T) {
	p, other := newTestPKI(t), newTestPKI(t)
	a := startBackend(t, "a", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr()}, RootCAs: other.pool, CheckInterval: 50 * time.Millisecond})
	eventually(t, time.Second, "a down line", func() bool { return strings.Contains(log.String(), "is down") })
	if got := lb.Healthy(); len(got) != 0 {
		t.Fatalf("healthy = %v with a CA that did not sign the backend", got)
	}
	want := "backend " + a.addr() + " is down: Get \"https://" + a.addr() + "/readyz\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
	if !strings.Contains(log.String(), want) {
		t.Errorf("log:\n%s\nwant a line %q", log, want)
	}
}

func TestDeadBackendLeavesRotation(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr(), b.addr()}})
	eventually(t, time.Second, "both backends healthy", func() bool { return len(lb.Healthy()) == 2 })

	b.kill()
	killed := time.Now()
	// New connections must reach only a, within about a second.
	streak := 0
	for streak < 20 {
		if time.Since(killed) > time.Second {
			t.Fatalf("new connections still failed or reached b 1s after b died")
		}
		name, err := whoAnswers(t, lb)
		if err == nil && name == "a" {
			streak++
		} else {
			streak = 0
		}
	}
	t.Logf("20 consecutive new connections reached a %v after b died", time.Since(killed).Round(time.Millisecond))
	if got := lb.Healthy(); len(got) != 1 || got[0] != a.addr() {
		t.Errorf("healthy = %v", got)
	}
	if want := "backend " + b.addr() + " is down: "; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
}

// openToEach opens a raw connection through lb to each backend, keyed by the backend's name.
func openToEach(t *testing.T, lb *LoadBalancer, n int) map[string]net.Conn {
	t.Helper()
	open := map[string]net.Conn{}
	for len(open) < n {
		c := dialRaw(t, lb)
		name, err := ask(c)
		if err != nil {
			t.Fatal(err)
		}
		open[name] = c
	}
	return open
}

// onlyReaches checks that new connections through lb reach the backend named want, and no other.
func onlyReaches(t *testing.T, lb *LoadBalancer, want string) {
	t.Helper()
	for range 6 {
		if name, err := whoAnswers(t, lb); err != nil || name != want {
			t.Fatalf("new connection reached %q, %v; want %s only", name, err, want)
		}
	}
}

// closedWithin waits for the load balancer to close c, failing the test after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on the connection = %v after %v, want EOF within %v", err, time.Since(start).Round(time.Millisecond), limit)
	}
	return time.Since(start)
}

func TestUnreadyBackendDrainsThenIsCutAndComesBack(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	const drain = 1500 * time.Millisecond
	lb, log := startLB(t, Options{Backends: []string{a.addr(), b.addr()}, Drain: drain})
	eventually(t, time.Second, "both backends healthy", func() bool { return len(lb.Healthy()) == 2 })
	open := openToEach(t, lb, 2)

	// a stays up but says it is not ready (an API server shutting down): it leaves the rotation, and its open
	// connection is left to it while it drains.
	a.ready.Store(false)
	cut := time.Now()
	eventually(t, 1200*time.Millisecond, "a out of rotation", func() bool { return len(lb.Healthy()) == 1 })
	onlyReaches(t, lb, "b")
	if name, err := ask(open["a"]); err != nil || name != "a" {
		t.Fatalf("the connection to the draining backend a broke %v after it became unready: %q, %v", time.Since(cut).Round(time.Millisecond), name, err)
	}
	if name, err := ask(open["b"]); err != nil || name != "b" {
		t.Fatalf("the connection to b broke: %q, %v", name, err)
	}
	if want := "backend " + a.addr() + " is down: GET /readyz: 503 Service Unavailable (1 connections left to finish, for up to 1.5s)\n"; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}

	// Still unready once the drain time has passed: its connection is closed.
	closedWithin(t, open["a"], drain+time.Second)
	took := time.Since(cut)
	if took < drain {
		t.Errorf("the connection to a was closed %v after it became unready, before the drain time %v", took, drain)
	}
	t.Logf("connection to the unready backend closed %v after it became unready (drain %v)", took.Round(time.Millisecond), drain)
	logEventually(t, log, "backend "+a.addr()+" is down: GET /readyz: 503 Service Unavailable, still after 1.5s (closed 1 connections)\n")

	a.ready.Store(true)
	back := eventually(t, 1200*time.Millisecond, "a back in rotation", func() bool { return len(lb.Healthy()) == 2 })
	t.Logf("a back in rotation %v after it was ready again", back.Round(time.Millisecond))
	seen := map[string]bool{}
	for range 4 {
		name, err := whoAnswers(t, lb)
		if err != nil {
			t.Fatal(err)
		}
		seen[name] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("backends reached after a came back: %v", seen)
	}
}

// An API server that closed its listener still finishes the requests of its open connections: they stay.
func TestBackendThatStoppedListeningKeepsItsConnections(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr(), b.addr()}})
	eventually(t, time.Second, "both backends healthy", func() bool { return len(lb.Healthy()) == 2 })
	open := openToEach(t, lb, 2)

	a.stopListening()
	eventually(t, 1200*time.Millisecond, "a out of rotation", func() bool { return len(lb.Healthy()) == 1 })
	onlyReaches(t, lb, "b")
	time.Sleep(time.Second) // two more failed checks
	if name, err := ask(open["a"]); err != nil || name != "a" {
		t.Fatalf("the connection to a, which only stopped listening, broke: %q, %v", name, err)
	}
	if want := "backend " + a.addr() + " is down: "; !strings.Contains(log.String(), want) || strings.Contains(log.String(), "closed 1 connections") {
		t.Errorf("log should say a is down and close nothing:\n%s", log)
	}
}

// A backend that does not answer its health checks is cut, its connections closed so their clients do not wait
// on a dead host; but only after Failures checks in a row, since a loaded machine delays the checks of servers
// that are fine.
func TestUnansweringBackendIsCutAfterFailuresInARow(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr(), b.addr()}, CheckTimeout: 200 * time.Millisecond, Failures: 4})
	eventually(t, time.Second, "both backends healthy", func() bool { return len(lb.Healthy()) == 2 })
	open := openToEach(t, lb, 2)

	a.hang.Store(true)
	start := time.Now()
	// Checks every 500 ms, each unanswered after 200 ms: the fourth fails about 2 s from now.
	time.Sleep(1200 * time.Millisecond)
	if got := lb.Healthy(); len(got) != 2 {
		t.Fatalf("a left the rotation after %v, fewer than 4 unanswered checks: healthy = %v", time.Since(start).Round(time.Millisecond), got)
	}
	if name, err := ask(open["a"]); err != nil || name != "a" {
		t.Fatalf("the connection to a was cut before 4 unanswered checks: %q, %v", name, err)
	}
	took := time.Since(start) + closedWithin(t, open["a"], 3*time.Second)
	t.Logf("connection to the unanswering backend closed %v after it stopped answering", took.Round(time.Millisecond))
	onlyReaches(t, lb, "b")
	if name, err := ask(open["b"]); err != nil || name != "b" {
		t.Fatalf("the connection to b broke: %q, %v", name, err)
	}
	logEventually(t, log, "(4 checks in a row unanswered) (closed 1 connections)")
}

// The last backend in rotation stays when it stops answering its health checks: it may be only slow, and
// without it every client would be turned away.
func TestLastBackendIsKeptWhenItStopsAnswering(t *testing.T) {
	p := newTestPKI(t)
	a := startBackend(t, "a", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr()}, CheckTimeout: 200 * time.Millisecond, Failures: 2})
	eventually(t, time.Second, "a healthy", func() bool { return len(lb.Healthy()) == 1 })
	c := dialRaw(t, lb)
	a.hang.Store(true)
	want := "backend " + a.addr() + " left 2 health checks unanswered"
	eventually(t, 3*time.Second, "the log saying a was kept", func() bool { return strings.Contains(log.String(), want) })
	time.Sleep(time.Second)
	if got := lb.Healthy(); len(got) != 1 {
		t.Fatalf("the last backend left the rotation: healthy = %v\n%s", got, log)
	}
	if name, err := ask(c); err != nil || name != "a" {
		t.Fatalf("the connection to the last backend was cut: %q, %v", name, err)
	}
	if name, err := whoAnswers(t, lb); err != nil || name != "a" {
		t.Fatalf("a new connection did not reach the last backend: %q, %v", name, err)
	}
	if !strings.Contains(log.String(), "but it is the last one in rotation: kept") || strings.Contains(log.String(), "is down") {
		t.Errorf("log:\n%s", log)
	}
}

func TestAllBackendsDown(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	lb, _ := startLB(t, Options{Backends: []string{a.addr(), b.addr()}})
	eventually(t, time.Second, "both backends healthy", func() bool { return len(lb.Healthy()) == 2 })
	a.kill()
	b.kill()
	start := time.Now()
	for range 3 {
		c, err := net.DialTimeout("tcp", lb.Addr().String(), time.Second)
		if err != nil {
			continue // refused is fine too
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "hello\n")
		n, err := c.Read(make([]byte, 64))
		c.Close()
		if n != 0 || err == nil {
			t.Fatalf("read %d bytes, %v: want the connection closed", n, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection hung: %v", err)
		}
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("three connections took %v to be turned away", took)
	}
	if got := lb.Healthy(); len(got) != 0 {
		t.Errorf("healthy = %v", got)
	}
}

func TestListenRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no backend", Options{Listen: "127.0.0.1:0"}, "no backend: give at least one API server HOST:PORT"},
		{"no port", Options{Listen: "127.0.0.1:0", Backends: []string{"10.0.0.1"}}, `backend "10.0.0.1": must be HOST:PORT: address 10.0.0.1: missing port in address`},
		{"bad port", Options{Listen: "127.0.0.1:0", Backends: []string{"10.0.0.1:http-ish"}}, `backend "10.0.0.1:http-ish": must be HOST:PORT: bad port "http-ish"`},
		{"port 0", Options{Listen: "127.0.0.1:0", Backends: []string{"10.0.0.1:0"}}, `backend "10.0.0.1:0": must be HOST:PORT: bad port "0"`},
		{"no host", Options{Listen: "127.0.0.1:0", Backends: []string{":6443"}}, `backend ":6443": must be HOST:PORT: the host is empty`},
		{"twice", Options{Listen: "127.0.0.1:0", Backends: []string{"10.0.0.1:6443", "10.0.0.1:6443"}}, `backend "10.0.0.1:6443" is listed twice`},
		{"bad listen", Options{Listen: "127.0.0.1", Backends: []string{"10.0.0.1:6443"}}, "listen on 127.0.0.1: listen tcp: address 127.0.0.1: missing port in address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb, err := Listen(tt.opts)
			if err == nil {
				lb.ln.Close()
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}
