//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The node-local API endpoint (issue 18): kubeboot loadbalancer on 127.0.0.1:7445 of every node, as a static Pod.
const (
	localEndpoint      = "https://127.0.0.1:7445"
	localEndpointState = "/var/lib/kubeboot/local-endpoint/backends.json"
)

// localBackends is the backend list a node's endpoint keeps on disk (nil when there is none yet).
func localBackends(t *testing.T, node string) []string {
	t.Helper()
	b, err := os.ReadFile(nodeHostPath(node, localEndpointState))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Backends []string `json:"backends"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		// Written atomically: a partial file is a defect.
		t.Fatalf("%s of %s: %v\n%s", localEndpointState, node, err, b)
	}
	return st.Backends
}

// waitBackends waits until every node's endpoint lists exactly want (sorted HOST:PORTs), and returns how long it took.
func waitBackends(t *testing.T, timeout time.Duration, nodes []string, want []string) time.Duration {
	t.Helper()
	start := time.Now()
	var last map[string][]string
	if !poll(t.Context(), timeout, func() bool {
		last = map[string][]string{}
		ok := true
		for _, n := range nodes {
			got := localBackends(t, n)
			last[n] = got
			ok = ok && slices.Equal(got, want)
		}
		return ok
	}) {
		t.Fatalf("the nodes' endpoints do not list %v within %s: %v", want, timeout, last)
	}
	return time.Since(start)
}

// TestNodeLocalEndpoint brings up three control planes and two workers with no load balancer (no kblab-lb, no
// VIP): every node reaches the API servers through its own kubeboot loadbalancer on 127.0.0.1:7445, which follows
// them. It kills every process of cp1 and checks the workers stay Ready, a new Deployment runs on them behind a
// Service, and kubectl works on cp2; then resets cp3 and joins it again, each node's list following.
func TestNodeLocalEndpoint(t *testing.T) {
	ctx := t.Context()
	cp1, cp2, cp3 := haControlPlanes[0], haControlPlanes[1], haControlPlanes[2]
	nodes := []string{cp1.name, cp2.name, cp3.name, "kblab-w1", "kblab-w2"}
	all := []string{cp1.ip + ":6443", cp2.ip + ":6443", cp3.ip + ":6443"}
	out := startLab(t, "--control-planes", "3", "--workers", "2", "--node-local-endpoint", "--concurrent-joins")
	if m := regexp.MustCompile(`lab: lab up: done \(([^)]+)\)`).FindStringSubmatch(out); m != nil {
		t.Logf("FIGURE nothing to three Ready control planes and two workers with the node-local API endpoint, no load balancer: %s (concurrent control-plane joins; lab network to every Node Ready)", m[1])
	}

	t.Run("5 Nodes Ready", func(t *testing.T) { checkNodesReady(t, nodes...) })
	t.Run("no load balancer: every kubelet and kube-proxy use their node's endpoint, which lists every API server", func(t *testing.T) {
		if _, err := os.Stat(nodeDir(haLB)); !os.IsNotExist(err) {
			t.Errorf("the lab has a load balancer (%s: %v)", nodeDir(haLB), err)
		}
		for _, n := range nodes {
			if s := kubeconfigServer(t, nodeHostPath(n, "/etc/kubernetes/kubelet.conf")); s != localEndpoint {
				t.Errorf("%s's kubelet.conf names %s, want %s", n, s, localEndpoint)
			}
			if _, err := os.Stat(nodeHostPath(n, "/etc/kubernetes/bootstrap-kubelet.conf")); !os.IsNotExist(err) {
				t.Errorf("%s has a bootstrap-kubelet.conf (kubeboot did the TLS bootstrap itself): %v", n, err)
			}
			var p corev1.Pod
			if err := kubectl(ctx, &p, "-n", "kube-system", "get", "pod", "kubeboot-local-endpoint-"+n, "-o", "json"); err != nil || !podReady(p) {
				t.Errorf("the endpoint's Pod on %s is not Ready: %v %s", n, err, p.Status.Phase)
			}
		}
		d := waitBackends(t, 30*time.Second, nodes, all)
		t.Logf("every node's endpoint lists the 3 API servers (%s after the lab was up)", d.Round(100*time.Millisecond))
		var cm corev1.ConfigMap
		kubectlJSON(t, &cm, "-n", "kube-system", "get", "configmap", "kube-proxy", "-o", "json")
		if !strings.Contains(cm.Data["kubeconfig.conf"], "server: "+localEndpoint) {
			t.Errorf("kube-proxy's kubeconfig does not name %s:\n%s", localEndpoint, cm.Data["kubeconfig.conf"])
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// CoreDNS's two replicas started on cp1, the only node at init: spread them (its preferred anti-affinity) as an
	// operator of an HA cluster would, or losing cp1 takes DNS down until their eviction, 5 minutes later.
	if out, err := lab(ctx, "kubectl", "-n", "kube-system", "rollout", "restart", "deployment", "coredns"); err != nil {
		t.Fatalf("restart CoreDNS: %v\n%s", err, out)
	}
	if out, err := lab(ctx, "kubectl", "-n", "kube-system", "rollout", "status", "deployment", "coredns", "--timeout=2m"); err != nil {
		t.Fatalf("CoreDNS rollout: %v\n%s", err, out)
	}

	if out, err := lab(ctx, "kill", cp1.name); err != nil {
		t.Fatalf("lab kill %s: %v\n%s", cp1.name, err, out)
	}
	killed := time.Now()
	rest := []string{cp2.name, cp3.name, "kblab-w1", "kblab-w2"}
	t.Run("losing cp1: every other node's endpoint drops it", func(t *testing.T) {
		waitBackends(t, 90*time.Second, rest, all[1:])
		// Upstream's bound: the API servers' lease reconciler removes a dead API server from the EndpointSlice once
		// its lease expires; the endpoints' health checks take it out of their rotation before that.
		t.Logf("FIGURE every node's endpoint list dropped the killed cp1 %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	})
	t.Run("losing cp1: the workers stay Ready once the cluster sees cp1 NotReady", func(t *testing.T) {
		var nl corev1.NodeList
		if !poll(ctx, 3*time.Minute, func() bool {
			nl = corev1.NodeList{}
			if kubectl(ctx, &nl, "get", "nodes", "-o", "json") != nil {
				return false
			}
			for _, n := range nl.Items {
				if n.Name == cp1.name {
					return !nodeReady(n)
				}
			}
			return false
		}) {
			t.Fatalf("%s is still Ready 3m after it was killed", cp1.name)
		}
		t.Logf("%s NotReady %s after the kill", cp1.name, time.Since(killed).Round(time.Second))
		for _, n := range nl.Items {
			if n.Name != cp1.name && !nodeReady(n) {
				t.Errorf("%s is not Ready without cp1", n.Name)
			}
		}
	})
	t.Run("losing cp1: a Deployment spreads over the workers and its Service routes to it", func(t *testing.T) { checkDeploymentAndService(t) })
	t.Run("losing cp1: kubectl on cp2 through its endpoint", func(t *testing.T) {
		out, err := inNode(ctx, cp2.name, kubectlIn, "--kubeconfig", "/etc/kubernetes/admin.conf", "--server", localEndpoint, "get", "nodes")
		if err != nil || !strings.Contains(out, "kblab-w2") {
			t.Errorf("kubectl on cp2 through %s: %v\n%s", localEndpoint, err, out)
		}
	})

	if out, err := lab(ctx, "start", cp1.name); err != nil {
		t.Fatalf("lab start %s: %v\n%s", cp1.name, err, out)
	}
	started := time.Now()
	t.Run("cp1 back: every endpoint lists it again", func(t *testing.T) {
		waitNodesReady(t, 3*time.Minute, nodes...)
		waitBackends(t, 2*time.Minute, nodes, all)
		t.Logf("every node Ready and every endpoint listing cp1 %s after lab start", time.Since(started).Round(100*time.Millisecond))
	})

	others := []string{cp1.name, cp2.name, "kblab-w1", "kblab-w2"}
	joinFile := filepath.Join(nodeDir(cp3.name), "kubeboot-join.yaml")
	t.Run("a control plane reset leaves every endpoint's list", func(t *testing.T) {
		start := time.Now()
		out, err := inNode(ctx, cp3.name, kubeboot, "reset", "-f")
		if err != nil {
			t.Fatalf("kubeboot reset on %s: %v\n%s", cp3.name, err, out)
		}
		reset := time.Since(start)
		for line := range strings.Lines(out) {
			if strings.Contains(line, "stopped the API server") {
				t.Logf("reset: %s", strings.TrimSpace(line))
			}
		}
		d := waitBackends(t, time.Minute, others, []string{all[0], all[1]})
		t.Logf("FIGURE a control plane reset left every endpoint's list %s after its reset ended (the reset took %s)", d.Round(100*time.Millisecond), reset.Round(100*time.Millisecond))
		if d > 10*time.Second {
			t.Errorf("the lists dropped the reset control plane %s after its reset, want within 10s", d.Round(100*time.Millisecond))
		}
		for _, p := range []string{localEndpointState, "/var/lib/kubeboot/bin/kubeboot"} {
			if _, err := os.Stat(nodeHostPath(cp3.name, p)); !os.IsNotExist(err) {
				t.Errorf("reset left %s on %s (%v)", p, cp3.name, err)
			}
		}
	})
	// Issue 19's fault table: the etcd leader killed while cp3's join has its learner in the member list.
	t.Run("the etcd leader killed during a control-plane join: it fails cleanly or succeeds, no learner or ghost member left", func(t *testing.T) {
		waitKubeletStopped(t, cp3.name)
		if out, err := lab(ctx, "kubectl", "delete", "node", cp3.name, "--ignore-not-found", "--wait=true"); err != nil {
			t.Fatalf("delete Node %s: %v\n%s", cp3.name, err, out)
		}
		checkJoinEtcdLeaderKilled(t, cp3.name, joinFile, cp1, cp2, cp3)
	})
	t.Run("a control plane that joins enters every endpoint's list", func(t *testing.T) {
		waitKubeletStopped(t, cp3.name)
		if out, err := lab(ctx, "kubectl", "delete", "node", cp3.name, "--ignore-not-found", "--wait=true"); err != nil {
			t.Fatalf("delete Node %s: %v\n%s", cp3.name, err, out)
		}
		start := time.Now()
		out, err := inNode(ctx, cp3.name, kubeboot, "join", "--config", joinFile)
		if err != nil {
			t.Fatalf("kubeboot join --control-plane on %s again: %v\n%s", cp3.name, err, out)
		}
		joined := time.Since(start)
		d := waitBackends(t, time.Minute, nodes, all)
		t.Logf("FIGURE a control plane that joined entered every endpoint's list %s after its join ended (the join took %s)", d.Round(100*time.Millisecond), joined.Round(100*time.Millisecond))
		if d > 10*time.Second {
			t.Errorf("the lists took %s to list the joined control plane, want within 10s", d.Round(100*time.Millisecond))
		}
		waitNodesReady(t, 2*time.Minute, nodes...)
		checkMembers(t, etcdMembers(t, cp2.name), cp1, cp2, cp3)
	})
}
