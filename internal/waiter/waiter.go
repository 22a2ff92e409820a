// Package waiter waits for the kubelet and the control-plane components to report healthy, polling their health
// endpoints quickly (no fixed sleeps) and, on timeout, explaining which component is unhealthy and why.
package waiter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Endpoint is one health endpoint that must answer 200.
type Endpoint struct {
	Component string // kubelet, kube-apiserver, kube-controller-manager, kube-scheduler, etcd
	URL       string
}

// Diagnoser explains why a component is not healthy (e.g. its container's state and last log lines from the CRI).
type Diagnoser interface {
	Diagnose(ctx context.Context, component string) string
}

// Waiter polls endpoints.
type Waiter struct {
	Client   *http.Client  // nil: a client that skips TLS verification (health endpoints only, as kubeadm does)
	Interval time.Duration // between polls of one endpoint; 0 means 100ms
	Out      io.Writer     // one line per component when it becomes healthy
	Diagnose Diagnoser     // optional
	Now      func() time.Time
}

// UnhealthyError lists the components that did not become healthy in time, with the last error seen for each and
// the diagnosis, if any.
type UnhealthyError struct {
	Timeout    time.Duration
	Components []ComponentState
}

// ComponentState is the last known state of one component that never became healthy.
type ComponentState struct {
	Endpoint  Endpoint
	LastError string
	Diagnosis string
}

func (e *UnhealthyError) Error() string {
	var b strings.Builder
	names := make([]string, 0, len(e.Components))
	for _, c := range e.Components {
		names = append(names, c.Endpoint.Component)
	}
	fmt.Fprintf(&b, "not healthy after %s: %s", e.Timeout, strings.Join(names, ", "))
	for _, c := range e.Components {
		fmt.Fprintf(&b, "\n  %s (%s): %s", c.Endpoint.Component, c.Endpoint.URL, c.LastError)
		if c.Diagnosis != "" {
			for _, line := range strings.Split(strings.TrimRight(c.Diagnosis, "\n"), "\n") {
				fmt.Fprintf(&b, "\n    %s", line)
			}
		}
	}
	return b.String()
}

// Wait polls every endpoint concurrently until all answer 200 or timeout passes.
func (w *Waiter) Wait(ctx context.Context, timeout time.Duration, endpoints ...Endpoint) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := w.Client
	if client == nil {
		client = insecureClient()
	}
	interval := w.Interval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	now := w.Now
	if now == nil {
		now = time.Now
	}
	start := now()

	var mu sync.Mutex
	var failed []ComponentState
	var wg sync.WaitGroup
	for _, ep := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := poll(ctx, client, ep.URL, interval)
			mu.Lock()
			defer mu.Unlock()
			if last == nil {
				if w.Out != nil {
					fmt.Fprintf(w.Out, "  %s healthy after %s\n", ep.Component, now().Sub(start).Round(10*time.Millisecond))
				}
				return
			}
			failed = append(failed, ComponentState{Endpoint: ep, LastError: last.Error()})
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
		return parent
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].Endpoint.Component < failed[j].Endpoint.Component })
	if w.Diagnose != nil {
		// The wait's context is spent; give the diagnosis a short budget of its own.
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer dcancel()
		for i := range failed {
			failed[i].Diagnosis = w.Diagnose.Diagnose(dctx, failed[i].Endpoint.Component)
		}
	}
	return &UnhealthyError{Timeout: timeout, Components: failed}
}

// errNotChecked is a component's state before its first answer.
var errNotChecked = errors.New("not checked yet")

// poll returns nil once url answers 200, or the last error when ctx ends.
func poll(ctx context.Context, client *http.Client, url string, interval time.Duration) error {
	var last error = errNotChecked
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		err := probe(ctx, client, url)
		if err == nil {
			return nil
		}
		// A probe cut short by the end of the wait says nothing about the component: keep the previous answer.
		if ctx.Err() == nil || last == errNotChecked {
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-ticker.C:
		}
	}
}

func probe(ctx context.Context, client *http.Client, url string) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			return uerr.Unwrap()
		}
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func insecureClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			// Health endpoints are probed before any trust is set up, exactly like the kubelet's own probes.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
			DialContext:       (&net.Dialer{Timeout: time.Second}).DialContext,
			DisableKeepAlives: true,
			Proxy:             nil, // never send health checks through a proxy
		},
	}
}

// Kubelet is the kubelet's healthz endpoint.
func Kubelet(address string, port int32) Endpoint {
	return Endpoint{Component: "kubelet", URL: fmt.Sprintf("http://%s/healthz", net.JoinHostPort(address, fmt.Sprint(port)))}
}

// ControlPlane derives the liveness endpoints of kube-apiserver, kube-controller-manager, kube-scheduler and, when
// its Pod is given, the local etcd (staticpod.Component) from their static Pods, keyed by component name, so user
// extraArgs that move an address or port are honoured.
func ControlPlane(pods map[string]*corev1.Pod) ([]Endpoint, error) {
	comps := []struct {
		staticpod.Component
		addrFlag string // where the component is reached; on loopback when unset or unspecified
	}{
		{staticpod.APIServer, "advertise-address"},
		{staticpod.ControllerManager, "bind-address"},
		{staticpod.Scheduler, "bind-address"},
	}
	var out []Endpoint
	for _, c := range comps {
		pod, ok := pods[c.Name]
		if !ok {
			continue
		}
		command, err := staticpod.Command(pod)
		if err != nil {
			return nil, fmt.Errorf("static Pod %s: %w", c.Name, err)
		}
		flags := staticpod.ParseFlags(command)
		addr := flags.Get(c.addrFlag)
		if addr == "" || addr == "0.0.0.0" || addr == "::" {
			addr = "127.0.0.1"
		}
		port := flags.Get("secure-port")
		if port == "" {
			port = strconv.Itoa(int(c.Port))
		}
		u := url.URL{Scheme: strings.ToLower(string(c.Scheme)), Host: net.JoinHostPort(addr, port), Path: c.LivenessPath}
		out = append(out, Endpoint{Component: c.Name, URL: u.String()})
	}
	// The local etcd (stacked), when there is one: an API server that cannot reach it never turns healthy, and the
	// diagnosis must then show etcd's container, not only the API server's.
	if pod, ok := pods[staticpod.EtcdName]; ok {
		command, err := staticpod.Command(pod)
		if err != nil {
			return nil, fmt.Errorf("static Pod %s: %w", staticpod.EtcdName, err)
		}
		host := net.JoinHostPort("127.0.0.1", strconv.Itoa(staticpod.EtcdMetricsPort))
		scheme := strings.ToLower(string(staticpod.Etcd.Scheme))
		// --listen-metrics-urls: the first URL; its probes use the same (plain HTTP on loopback in kubeadm's manifest).
		if first, _, _ := strings.Cut(staticpod.ParseFlags(command).Get("listen-metrics-urls"), ","); first != "" {
			if u, err := url.Parse(first); err == nil && u.Host != "" {
				host, scheme = u.Host, u.Scheme
			}
		}
		u := url.URL{Scheme: scheme, Host: host, Path: staticpod.Etcd.LivenessPath}
		out = append(out, Endpoint{Component: staticpod.EtcdName, URL: u.String()})
	}
	return out, nil
}
