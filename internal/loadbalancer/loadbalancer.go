// Package loadbalancer is a small TCP load balancer for the control-plane endpoint of a highly available
// cluster: it forwards connections to the API servers that answer GET /readyz with 200, checks them every
// 500 ms, takes a failing one out of rotation and puts it back when it passes again. How it treats a failing
// backend depends on how it fails:
//
//   - One that says no (it answers /readyz with an error, refuses the connection, or closes it) leaves the rotation
//     at once. That is most often an API server shutting down (a restart after a certificate renewal, an upgrade):
//     it fails /readyz from the moment it is told to stop, then finishes the requests in flight and closes its
//     connections itself (HTTP/2 GOAWAY, which clients follow without losing a request). Cutting them there would
//     fail those requests, so they are left to it for Options.Drain, and closed only if it is still not ready
//     then (an API server that lost etcd, say, which would keep failing them).
//   - One that does not answer within the check timeout may be dead, or only slow: a loaded machine delays
//     health checks on servers that are fine. It leaves the rotation, its connections closed so their clients
//     reconnect instead of waiting on a dead host, only after Options.Failures such checks in a row; and never
//     when it is the last backend in rotation, since dropping it would turn every client away for nothing better.
//
// TLS passes through untouched: clients still verify the API server's certificate, which must carry the
// endpoint's address (controlPlaneEndpoint in certSANs).
package loadbalancer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Defaults: an API server that says it is not ready is out of rotation within about half a second; one that
// stops answering, within about Failures × CheckTimeout.
const (
	DefaultCheckInterval = 500 * time.Millisecond
	DefaultCheckTimeout  = 3 * time.Second
	DefaultFailures      = 3
	// DefaultDrain covers an API server's graceful shutdown under kubeadm's flags: it finishes the requests in
	// flight (the longest non-watch request times out after 60 s, most take milliseconds) and the kubelet kills
	// it after the Pod's 30 s grace period.
	DefaultDrain = 30 * time.Second
	dialTimeout  = time.Second
)

// Options configure a LoadBalancer.
type Options struct {
	// Listen is the ADDR:PORT clients connect to.
	Listen string
	// Backends are the API servers' HOST:PORT.
	Backends []string
	// RootCAs verifies the backends' certificates during health checks (the cluster CA); nil skips
	// verification, which only affects whether a backend is believed healthy, never the client's traffic.
	RootCAs *x509.CertPool
	// CheckInterval and CheckTimeout default to 500 ms and 3 s.
	CheckInterval, CheckTimeout time.Duration
	// Failures is how many health checks in a row a backend may leave unanswered before it leaves the rotation;
	// 0: DefaultFailures.
	Failures int
	// Drain is how long the connections of a backend that answers /readyz with an error are left open (see the
	// package comment); 0: DefaultDrain.
	Drain time.Duration
	// Log receives one line whenever a backend goes up or down; nil discards them.
	Log io.Writer
}

// LoadBalancer forwards TCP connections to healthy backends, round robin.
type LoadBalancer struct {
	opts   Options
	ln     net.Listener
	client *http.Client

	mu       sync.Mutex
	backends []*backend
	next     int
	closed   bool // Serve is returning: no new forwarded connections
	// serving is Serve's context and goroutines, for the health checks of backends added by SetBackends; nil
	// before Serve.
	serving context.Context
	wg      *sync.WaitGroup
	logMu   sync.Mutex
}

type backend struct {
	addr string
	// known is false until the first health check; healthy is meaningless before.
	known, healthy bool
	// drainingSince is when it last answered /readyz with an error after being healthy; zero when it is
	// healthy, or its connections are closed.
	drainingSince time.Time
	// silent counts the health checks in a row it left unanswered.
	silent int
	conns  map[*proxied]struct{}
	// retiring: SetBackends no longer lists it. It stays, and is used only when no listed backend is healthy,
	// until a listed one is: the last healthy backend is never dropped.
	retiring bool
	// stop ends its health checks.
	stop context.CancelFunc
}

// proxied is one client connection and the backend connection it is forwarded to.
type proxied struct {
	client, server net.Conn
	once           sync.Once
}

func (p *proxied) close() {
	p.once.Do(func() {
		p.client.Close()
		p.server.Close()
	})
}

// Listen validates opts and binds the listening socket; Serve then runs the load balancer.
func Listen(opts Options) (*LoadBalancer, error) {
	if err := validBackends(opts.Backends); err != nil {
		return nil, err
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	if opts.Failures <= 0 {
		opts.Failures = DefaultFailures
	}
	if opts.Drain <= 0 {
		opts.Drain = DefaultDrain
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs, InsecureSkipVerify: opts.RootCAs == nil}
	lb := &LoadBalancer{
		opts: opts,
		ln:   ln,
		client: &http.Client{
			Timeout: opts.CheckTimeout,
			// A fresh connection per check: a pooled one could outlive the API server it came from.
			Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true},
		},
	}
	for _, b := range opts.Backends {
		lb.backends = append(lb.backends, newBackend(b))
	}
	return lb, nil
}

func newBackend(addr string) *backend {
	return &backend{addr: addr, conns: map[*proxied]struct{}{}, stop: func() {}}
}

// validBackends checks a backend list: at least one, each HOST:PORT, none twice.
func validBackends(addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("no backend: give at least one API server HOST:PORT")
	}
	seen := map[string]bool{}
	for _, b := range addrs {
		if err := validHostPort(b); err != nil {
			return fmt.Errorf("backend %q: %w", b, err)
		}
		if seen[b] {
			return fmt.Errorf("backend %q is listed twice", b)
		}
		seen[b] = true
	}
	return nil
}

// Backends lists the backends the load balancer knows, in rotation or not, retiring ones included.
func (lb *LoadBalancer) Backends() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	out := make([]string, 0, len(lb.backends))
	for _, b := range lb.backends {
		out = append(out, b.addr)
	}
	return out
}

// SetBackends replaces the backend list: new backends are health-checked at once and join the rotation when
// they pass; backends no longer listed retire, leaving as soon as a listed backend is healthy (never the last
// healthy one before), their connections left to finish for Options.Drain. It reports whether anything changed.
func (lb *LoadBalancer) SetBackends(addrs []string) (bool, error) {
	if err := validBackends(addrs); err != nil {
		return false, err
	}
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	lb.mu.Lock()
	changed := false
	have := map[string]bool{}
	for _, b := range lb.backends {
		have[b.addr] = true
		if retiring := !want[b.addr]; retiring != b.retiring {
			b.retiring, changed = retiring, true
		}
	}
	var added []*backend
	for _, a := range addrs {
		if !have[a] {
			b := newBackend(a)
			lb.backends = append(lb.backends, b)
			added = append(added, b)
			changed = true
		}
	}
	ctx, wg := lb.serving, lb.wg
	if ctx != nil && !lb.closed {
		for _, b := range added {
			lb.startWatch(ctx, wg, b)
		}
	}
	lb.mu.Unlock()
	for _, b := range added {
		lb.logf("backend %s added", b.addr)
	}
	lb.retire()
	return changed, nil
}

// startWatch starts b's health checks under Serve's context; lb.mu is held.
func (lb *LoadBalancer) startWatch(ctx context.Context, wg *sync.WaitGroup, b *backend) {
	ctx, b.stop = context.WithCancel(ctx)
	wg.Go(func() {
		lb.check(ctx, b)
		lb.watch(ctx, b)
	})
}

// retire drops the retiring backends once a listed backend is healthy. Their health checks stop; their
// connections are closed after Options.Drain unless they finished first.
func (lb *LoadBalancer) retire() {
	lb.mu.Lock()
	if !slices.ContainsFunc(lb.backends, func(b *backend) bool { return !b.retiring && b.healthy }) {
		lb.mu.Unlock()
		return
	}
	var gone []*backend
	lb.backends = slices.DeleteFunc(lb.backends, func(b *backend) bool {
		if b.retiring {
			gone = append(gone, b)
		}
		return b.retiring
	})
	lb.next = 0
	lb.mu.Unlock()
	for _, b := range gone {
		b.stop()
		lb.mu.Lock()
		open := len(b.conns)
		lb.mu.Unlock()
		lb.logf("backend %s removed: no longer listed (%d connections left to finish, for up to %s)", b.addr, open, lb.opts.Drain)
		if open > 0 {
			time.AfterFunc(lb.opts.Drain, func() { lb.markDown(b, errors.New("no longer listed")) })
		}
	}
}

// validHostPort accepts HOST:PORT with a port number.
func validHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be HOST:PORT: %w", err)
	}
	if host == "" {
		return errors.New("must be HOST:PORT: the host is empty")
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "0" {
		return fmt.Errorf("must be HOST:PORT: bad port %q", port)
	}
	return nil
}

// Addr is the address the load balancer listens on.
func (lb *LoadBalancer) Addr() net.Addr { return lb.ln.Addr() }

// Healthy lists the backends in rotation, in the order they were given.
func (lb *LoadBalancer) Healthy() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []string
	for _, b := range lb.backends {
		if b.healthy {
			out = append(out, b.addr)
		}
	}
	return out
}

// Serve checks the backends once, then accepts connections and checks the backends every CheckInterval,
// until ctx ends; then it closes the listener and every forwarded connection and returns nil.
func (lb *LoadBalancer) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // also on an accept error: stops the health checks before wg.Wait
	defer lb.closeAll()

	// A first round before accepting, so the first clients are not turned away while nothing is known.
	lb.mu.Lock()
	first := slices.Clone(lb.backends)
	lb.mu.Unlock()
	for _, b := range first {
		wg.Go(func() { lb.check(ctx, b) })
	}
	wg.Wait()
	lb.mu.Lock()
	lb.serving, lb.wg = ctx, &wg
	for _, b := range lb.backends {
		lb.startWatch(ctx, &wg, b)
	}
	lb.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { lb.ln.Close() })
	defer stop()
	for {
		conn, err := lb.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			lb.ln.Close()
			return fmt.Errorf("accept on %s: %w", lb.ln.Addr(), err)
		}
		wg.Go(func() { lb.forward(ctx, conn) })
	}
}

func (lb *LoadBalancer) watch(ctx context.Context, b *backend) {
	t := time.NewTicker(lb.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lb.check(ctx, b)
		}
	}
}

// check asks the backend's /readyz and updates its state.
func (lb *LoadBalancer) check(ctx context.Context, b *backend) {
	answered, err := lb.readyz(ctx, b.addr)
	if ctx.Err() != nil {
		return // shutting down: the failure is ours
	}
	switch {
	case err == nil:
		lb.markUp(b)
	case answered || !silent(err):
		lb.markDraining(b, err)
	default:
		lb.markSilent(b, err)
	}
}

// silent is a failure to reach a backend that says nothing of it: no answer within the timeout, or no route to
// its host. Anything else (a refused connection, one closed or reset, a failed handshake) is an answer from a
// live host that does not serve, often an API server in the last part of its graceful shutdown: it closed its
// listener and still finishes the requests of the connections it has.
func silent(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, context.DeadlineExceeded)
}

// readyz asks the API server at addr the question its own readiness probe asks; answered says whether it gave
// an HTTP answer at all.
func (lb *LoadBalancer) readyz(ctx context.Context, addr string) (answered bool, err error) {
	path := staticpod.APIServer.ReadinessPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return false, err
	}
	resp, err := lb.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return true, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return true, nil
}

func (lb *LoadBalancer) markUp(b *backend) {
	lb.mu.Lock()
	changed := !b.known || !b.healthy
	b.known, b.healthy = true, true
	b.drainingSince = time.Time{}
	b.silent = 0
	lb.mu.Unlock()
	if changed {
		lb.logf("backend %s is up", b.addr)
		lb.retire()
	}
}

// markSilent counts a health check b left unanswered; after Options.Failures in a row it takes b out of rotation
// and closes its connections (markDown), unless b is the last backend in rotation.
func (lb *LoadBalancer) markSilent(b *backend, why error) {
	lb.mu.Lock()
	b.silent++
	n := b.silent
	last := b.healthy
	for _, o := range lb.backends {
		if o != b && o.healthy {
			last = false
		}
	}
	lb.mu.Unlock()
	switch {
	case n < lb.opts.Failures && b.known:
		return
	case last:
		if n == lb.opts.Failures {
			lb.logf("backend %s left %d health checks unanswered (%v), but it is the last one in rotation: kept", b.addr, n, why)
		}
		return
	}
	lb.markDown(b, fmt.Errorf("%w (%d checks in a row unanswered)", why, n))
}

// markDraining takes b, which said it does not serve, out of rotation and leaves its connections to it
// for Options.Drain (see the package comment); after that it closes them as markDown does.
func (lb *LoadBalancer) markDraining(b *backend, why error) {
	lb.mu.Lock()
	changed := !b.known || b.healthy
	b.known, b.healthy = true, false
	now := time.Now()
	if changed || b.drainingSince.IsZero() && len(b.conns) > 0 {
		b.drainingSince = now
	}
	since, open := b.drainingSince, len(b.conns)
	lb.mu.Unlock()
	if !since.IsZero() && now.Sub(since) >= lb.opts.Drain {
		lb.markDown(b, fmt.Errorf("%w, still after %s", why, lb.opts.Drain))
		return
	}
	if changed {
		msg := fmt.Sprintf("backend %s is down: %v", b.addr, why)
		if open > 0 {
			msg += fmt.Sprintf(" (%d connections left to finish, for up to %s)", open, lb.opts.Drain)
		}
		lb.logf("%s", msg)
	}
}

// markDown takes b out of rotation and closes the connections forwarded to it, so their clients reconnect
// through the load balancer to a healthy backend instead of waiting on a dead one.
func (lb *LoadBalancer) markDown(b *backend, why error) {
	lb.mu.Lock()
	changed := !b.known || b.healthy || !b.drainingSince.IsZero()
	b.known, b.healthy = true, false
	b.drainingSince = time.Time{}
	b.silent = 0
	conns := make([]*proxied, 0, len(b.conns))
	for p := range b.conns {
		conns = append(conns, p)
	}
	lb.mu.Unlock()
	for _, p := range conns {
		p.close()
	}
	if changed {
		msg := fmt.Sprintf("backend %s is down: %v", b.addr, why)
		if len(conns) > 0 {
			msg += fmt.Sprintf(" (closed %d connections)", len(conns))
		}
		lb.logf("%s", msg)
	}
}

// pick returns the next healthy backend after the last one picked, skipping those in tried.
// Listed backends come first: a retiring one is picked only when no listed one is healthy.
func (lb *LoadBalancer) pick(tried map[*backend]bool) *backend {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	n := len(lb.backends)
	for _, retiring := range []bool{false, true} {
		for i := range n {
			b := lb.backends[(lb.next+i)%n]
			if b.healthy && b.retiring == retiring && !tried[b] {
				lb.next = (lb.next + i + 1) % n
				return b
			}
		}
	}
	return nil
}

// forward connects client to a healthy backend and copies bytes both ways. A backend that cannot be dialed is
// taken out of rotation at once and the next one is tried; with none left the client is closed.
func (lb *LoadBalancer) forward(ctx context.Context, client net.Conn) {
	tried := map[*backend]bool{}
	for {
		b := lb.pick(tried)
		if b == nil {
			client.Close()
			return
		}
		tried[b] = true
		d := net.Dialer{Timeout: dialTimeout}
		server, err := d.DialContext(ctx, "tcp", b.addr)
		if err != nil {
			if ctx.Err() != nil {
				client.Close()
				return
			}
			if silent(err) {
				lb.markSilent(b, err)
			} else {
				lb.markDraining(b, err)
			}
			continue
		}
		p := &proxied{client: client, server: server}
		lb.mu.Lock()
		if lb.closed {
			lb.mu.Unlock()
			server.Close()
			client.Close()
			return
		}
		if !b.healthy {
			// Marked down while we dialed.
			lb.mu.Unlock()
			server.Close()
			continue
		}
		b.conns[p] = struct{}{}
		lb.mu.Unlock()
		pipe(p)
		lb.mu.Lock()
		delete(b.conns, p)
		lb.mu.Unlock()
		return
	}
}

// pipe copies both ways; when one side finishes sending, the other is told with a half close, and when both
// are done (or either fails) both connections are closed.
func pipe(p *proxied) {
	var wg sync.WaitGroup
	one := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if err != nil {
			p.close()
			return
		}
		if hc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		}
	}
	wg.Go(func() { one(p.server, p.client) })
	wg.Go(func() { one(p.client, p.server) })
	wg.Wait()
	p.close()
}

func (lb *LoadBalancer) closeAll() {
	lb.ln.Close()
	lb.mu.Lock()
	lb.closed = true
	var all []*proxied
	for _, b := range lb.backends {
		for p := range b.conns {
			all = append(all, p)
		}
	}
	lb.mu.Unlock()
	for _, p := range all {
		p.close()
	}
}

func (lb *LoadBalancer) logf(format string, args ...any) {
	lb.logMu.Lock()
	defer lb.logMu.Unlock()
	line := fmt.Sprintf(format, args...)
	fmt.Fprintln(lb.opts.Log, strings.TrimRight(line, "\n"))
}
