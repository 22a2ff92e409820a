//go:build e2e

// Package e2e brings real clusters up on this machine with the lab and checks them from the
// outside, through the lab's own commands. It needs root and takes minutes.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/controlleraccounts"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/lab/cluster"
)

const stateDir = "/var/lib/kubeboot-lab"

var (
	labBin   string // the lab binary built by TestMain
	repoRoot string
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == fakeAPIServerArg {
		os.Exit(runFakeAPIServer(os.Args[2:]))
	}
	os.Exit(func() int {
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		repoRoot = filepath.Join(wd, "..", "..")
		dir, err := os.MkdirTemp("", "kubeboot-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		labBin = filepath.Join(dir, "lab")
		build := exec.Command("go", "build", "-o", labBin, "./lab/cmd/lab")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build lab: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

// lab runs the lab binary and returns its combined output.
func lab(ctx context.Context, args ...string) (string, error) {
	out, err := execLab(ctx, args...).CombinedOutput()
	return string(out), err
}

func execLab(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, labBin, args...)
	cmd.Dir = repoRoot
	return cmd
}

// startLab brings a lab up with args and registers its teardown, which also runs when the test fails, and checks
// that the teardown left nothing behind. It returns the output of `lab up`.
func startLab(t *testing.T, args ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the lab needs root")
	}
	if _, err := os.Stat(filepath.Join(stateDir, "lab.json")); err == nil {
		t.Fatalf("a lab is already up (%s/lab.json): run `lab down` first; this test will not take down a lab it did not start", stateDir)
	}
	before := snapshotMachine(t)
	start := time.Now()
	t.Cleanup(func() {
		// Namespaces of the lab's nodes, to look for survivors after down.
		nss := labNamespaces(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := lab(ctx, "down")
		t.Logf("lab down:\n%s", out)
		if err != nil {
			t.Errorf("lab down: %v", err)
		}
		if t.Failed() {
			keepFailedLogs(t, start)
		}
		checkNothingLeft(t, before, nss)
	})
	out, err := lab(t.Context(), append([]string{"up"}, args...)...)
	t.Logf("lab up %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return out
}

// keepFailedLogs moves the logs `lab down` kept of a failed test's lab (the nodes' and their Pods', in last-logs)
// to failed-logs/TEST-HHMMSS under the lab's state directory, where the next test's `lab down` does not replace them.
func keepFailedLogs(t *testing.T, labStart time.Time) {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-" + labStart.Format("150405")
	dst := filepath.Join(stateDir, "failed-logs", name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Logf("keep the failed lab's logs: %v", err)
		return
	}
	if err := os.Rename(cluster.LastLogsDir(stateDir), dst); err != nil {
		t.Logf("keep the failed lab's logs: %v", err)
		return
	}
	t.Logf("the failed lab's logs (nodes' and Pods'): %s", dst)
}

func TestLabKubeadm(t *testing.T) {
	ctx := t.Context()
	startLab(t, "--control-planes", "1", "--workers", "2", "--bootstrapper", "kubeadm")

	t.Run("up again is refused", func(t *testing.T) {
		out, err := lab(ctx, "up")
		if err == nil || !strings.Contains(out, "a lab is already up") || !strings.Contains(out, "lab down") {
			t.Errorf("second lab up: err %v, output %q; want a refusal pointing at `lab down`", err, out)
		}
	})

	t.Run("nodes Ready", func(t *testing.T) { checkNodesReady(t, "kblab-cp1", "kblab-w1", "kblab-w2") })

	t.Run("exec runs in the node", func(t *testing.T) {
		out, err := lab(ctx, "exec", "kblab-w1", "--", "hostname")
		if err != nil || strings.TrimSpace(out) != "kblab-w1" {
			t.Errorf("lab exec kblab-w1 -- hostname: %q, %v; want kblab-w1", out, err)
		}
	})

	t.Run("kube-system Pods Running", func(t *testing.T) { checkKubeSystem(t, 1, 3) })

	// The reference for kubeboot's list: what the controller-manager created itself in a kubeadm cluster.
	t.Run("the controller-manager's ServiceAccounts are the ones kubeboot creates ahead of it", checkControllerAccounts)

	t.Run("Pod resolves through CoreDNS and reaches the API through its Service IP", func(t *testing.T) { checkDNSAndServiceIP(t, "kblab-w1") })

	t.Run("certs check-expiration: kubeboot's tables are upstream kubeadm's", func(t *testing.T) { checkExpirationAgrees(t, "kblab-cp1") })
	t.Run("kubeboot certs renew all on a kubeadm control plane", func(t *testing.T) { checkRenewAll(t, "kblab-cp1") })
	t.Run("kubeboot join works against a kubeadm control plane", func(t *testing.T) {
		p := labJoinParams(t, "kblab-w2", "10.77.0.22")
		resetWorker(t, kubeadm, "kblab-w2")
		d := joinWithConfig(t, kubeboot, p)
		t.Logf("kubeboot join of kblab-w2 to Node Ready under a kubeadm control plane: %s", d.Round(10*time.Millisecond))
	})
}

// checkDNSAndServiceIP runs a Pod on node that resolves kubernetes.default through CoreDNS and reaches the API
// server by name and through its Service IP (kube-proxy's rules on that node), which must run the default release.
func checkDNSAndServiceIP(t *testing.T, node string) {
	checkDNSAndServiceIPAt(t, node, release.DefaultVersion())
}

// checkDNSAndServiceIPAt is checkDNSAndServiceIP for an API server of the given version.
func checkDNSAndServiceIPAt(t *testing.T, node, version string) {
	ctx := t.Context()
	// On a worker, so that DNS crosses nodes (CoreDNS runs on the control plane or the other
	// worker) and Service traffic goes through kube-proxy's rules on that worker.
	pod := strings.ReplaceAll(`apiVersion: v1
kind: Pod
metadata: {name: e2e-probe, namespace: default}
spec:
  restartPolicy: Never
  nodeName: NODE
  containers:
  - name: probe
    image: kubeboot.lab/busybox:1
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      set -e
      echo "== nslookup"
      # kube-proxy on this node may program the kube-dns Service a moment after CoreDNS turns Ready; a resolver retries.
      i=0; until nslookup kubernetes.default.svc.cluster.local; do i=$((i+1)); [ $i -lt 20 ] || exit 1; sleep 0.5; done
      # The kubernetes Service's endpoints change as API servers come and go (a node reset, a restart): a
      # connection may meet one that just left. Up to 5 tries, each failure shown.
      get() { i=0; until curl -sSk --max-time 10 "$1"; do i=$((i+1)); [ $i -lt 5 ] || exit 1; echo "(try $i failed)"; sleep 1; done; }
      echo "== by name"
      get https://kubernetes.default/version
      echo
      echo "== by service IP"
      get https://10.96.0.1:443/version
`, "NODE", node)
	// A probe Pod of an earlier check must go first: applied again unchanged, it would not run again, and its old
	// logs would be read as this check's.
	if out, err := lab(ctx, "kubectl", "delete", "pod", "e2e-probe", "--ignore-not-found", "--wait=true"); err != nil {
		t.Fatalf("delete the earlier probe Pod: %v\n%s", err, out)
	}
	apply := exec.CommandContext(ctx, labBin, "kubectl", "apply", "-f", "-")
	apply.Stdin = strings.NewReader(pod)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("create probe Pod: %v\n%s", err, out)
	}
	var phase corev1.PodPhase
	ok := poll(ctx, 2*time.Minute, func() bool {
		var p corev1.Pod
		if err := kubectl(ctx, &p, "get", "pod", "e2e-probe", "-o", "json"); err != nil {
			return false
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed
	})
	logs, _ := lab(ctx, "kubectl", "logs", "e2e-probe")
	t.Logf("probe Pod %s:\n%s", phase, logs)
	if !ok || phase != corev1.PodSucceeded {
		t.Fatalf("probe Pod ended %q, want Succeeded", phase)
	}
	sections := splitSections(logs)
	if s := sections["nslookup"]; !strings.Contains(s, "Server:\t\t10.96.0.10") || !strings.Contains(s, "Address: 10.96.0.1\n") {
		t.Errorf("nslookup did not resolve kubernetes.default to 10.96.0.1 through CoreDNS at 10.96.0.10:\n%s", s)
	}
	for _, name := range []string{"by name", "by service IP"} {
		if want := `"gitVersion": "` + version + `"`; !strings.Contains(sections[name], want) {
			t.Errorf("GET /version %s: no %s in:\n%s", name, want, sections[name])
		}
	}
}

// checkControllerAccounts compares kube-system's ServiceAccounts, other than the addons' and "default", with
// the release table's ControllerServiceAccounts for the lab's Kubernetes version. Call it once a worker has joined:
// the CSR signer runs, so every controller has started and has its account.
func checkControllerAccounts(t *testing.T) {
	var list corev1.ServiceAccountList
	kubectlJSON(t, &list, "-n", controlleraccounts.Namespace, "get", "serviceaccounts", "-o", "json")
	var got []string
	for _, sa := range list.Items {
		switch sa.Name {
		case "default", "coredns", "kube-proxy":
		default:
			got = append(got, sa.Name)
		}
	}
	slices.Sort(got)
	if want := release.Default().ControllerServiceAccounts; !slices.Equal(got, want) {
		t.Errorf("controller accounts in kube-system:\n%v\nkubeboot's list (internal/release, ControllerServiceAccounts of %s):\n%v", got, release.DefaultVersion(), want)
	}
}

// waitNodesReady waits up to timeout until the named Nodes are all Ready, logs how long that took, and then checks
// them as checkNodesReady does.
func waitNodesReady(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	start := time.Now()
	poll(t.Context(), timeout, func() bool {
		var nodes corev1.NodeList
		if err := kubectl(t.Context(), &nodes, "get", "nodes", "-o", "json"); err != nil {
			return false
		}
		ready := 0
		for _, n := range nodes.Items {
			if slices.Contains(want, n.Name) && nodeReady(n) {
				ready++
			}
		}
		return ready == len(want)
	})
	t.Logf("%d Nodes Ready %s later", len(want), time.Since(start).Round(100*time.Millisecond))
	checkNodesReady(t, want...)
}

// checkNodesReady checks that exactly the named Nodes exist and are Ready.
func checkNodesReady(t *testing.T, want ...string) {
	var nodes corev1.NodeList
	kubectlJSON(t, &nodes, "get", "nodes", "-o", "json")
	var got []string
	for _, n := range nodes.Items {
		got = append(got, n.Name)
		if !nodeReady(n) {
			t.Errorf("node %s is not Ready: %+v", n.Name, n.Status.Conditions)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("nodes %v, want %v", got, want)
	}
}

// checkKubeSystem waits until kube-system holds the control-plane Pods of controlPlanes nodes, kube-proxy on
// every node and two CoreDNS replicas, all Running and Ready.
func checkKubeSystem(t *testing.T, controlPlanes, nodes int) {
	ctx := t.Context()
	// CoreDNS is Running at once but only Ready once it reached the API; later probes need it Ready.
	var last string
	ok := poll(ctx, 3*time.Minute, func() bool {
		var pods corev1.PodList
		if err := kubectl(ctx, &pods, "-n", "kube-system", "get", "pods", "-o", "json"); err != nil {
			last = err.Error()
			return false
		}
		var bad []string
		components := map[string]int{}
		for _, p := range pods.Items {
			components[p.Labels["component"]+p.Labels["k8s-app"]]++
			if p.Status.Phase != corev1.PodRunning || !podReady(p) {
				bad = append(bad, fmt.Sprintf("%s %s ready=%v", p.Name, p.Status.Phase, podReady(p)))
			}
		}
		want := map[string]int{"etcd": controlPlanes, "kube-apiserver": controlPlanes, "kube-controller-manager": controlPlanes,
			"kube-scheduler": controlPlanes, "kube-proxy": nodes, "kube-dns": 2}
		for c, n := range want {
			if components[c] != n {
				bad = append(bad, fmt.Sprintf("%d %s Pods, want %d", components[c], c, n))
			}
		}
		last = strings.Join(bad, "; ")
		return len(bad) == 0
	})
	if !ok {
		t.Fatalf("kube-system not all Running and Ready after 3m: %s", last)
	}
}

func splitSections(logs string) map[string]string {
	out := map[string]string{}
	var name string
	for _, line := range strings.SplitAfter(logs, "\n") {
		if h, ok := strings.CutPrefix(line, "== "); ok {
			name = strings.TrimSpace(h)
			continue
		}
		out[name] += line
	}
	return out
}

func kubectl(ctx context.Context, into any, args ...string) error {
	cmd := exec.CommandContext(ctx, labBin, append([]string{"kubectl"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("lab kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return json.Unmarshal(out, into)
}

func kubectlJSON(t *testing.T, into any, args ...string) {
	t.Helper()
	if err := kubectl(t.Context(), into, args...); err != nil {
		t.Fatal(err)
	}
}

func poll(ctx context.Context, timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// machine is what the lab may change while up and must restore.
type machine struct {
	mounts   []string // mount points of the root namespace
	links    []string
	netns    []string
	iptables string // filter and nat rules of the root namespace
	routes   string
	paths    map[string]bool // machine paths the nodes bind over: existed or not
}

// boundPaths mirrors the paths lab nodes bind over (lab/node.BoundDirs and BoundFiles).
var boundPaths = []string{"/etc/kubernetes", "/etc/containerd", "/etc/cni", "/etc/cni/net.d", "/var/lib/kubelet",
	"/var/lib/containerd", "/var/lib/cni", "/var/lib/etcd", "/var/log/pods", "/var/log/containers",
	"/run/containerd", "/run/netns", "/usr/libexec/kubernetes", "/opt/containerd", "/run/xtables.lock"}

func snapshotMachine(t *testing.T) machine {
	t.Helper()
	m := machine{paths: map[string]bool{}}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			m.mounts = append(m.mounts, f[4])
		}
	}
	slices.Sort(m.mounts)
	entries, _ := os.ReadDir("/sys/class/net")
	for _, e := range entries {
		m.links = append(m.links, e.Name())
	}
	entries, _ = os.ReadDir("/run/netns")
	for _, e := range entries {
		m.netns = append(m.netns, e.Name())
	}
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		if err != nil {
			t.Fatalf("iptables -t %s -S: %v", table, err)
		}
		m.iptables += string(out)
	}
	out, err := exec.Command("ip", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	m.routes = string(out)
	// kubectl writes a cache to ~/.kube unless told otherwise.
	home, _ := os.UserHomeDir()
	for _, p := range append(slices.Clone(boundPaths), filepath.Join(home, ".kube")) {
		_, err := os.Lstat(p)
		m.paths[p] = err == nil
	}
	return m
}

// labNamespaces reads the lab's state for the mount and network namespaces of its nodes and its load balancer.
func labNamespaces(t *testing.T) map[string]uint64 {
	b, err := os.ReadFile(filepath.Join(stateDir, "lab.json"))
	if err != nil {
		t.Logf("no lab state to learn namespaces from: %v", err)
		return nil
	}
	type namespaces struct {
		Name  string `json:"name"`
		MntNS uint64 `json:"mntNS"`
		NetNS uint64 `json:"netNS"`
	}
	var st struct {
		Nodes        []namespaces `json:"nodes"`
		LoadBalancer *namespaces  `json:"loadBalancer"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Errorf("lab state: %v", err)
		return nil
	}
	if st.LoadBalancer != nil {
		st.Nodes = append(st.Nodes, *st.LoadBalancer)
	}
	nss := map[string]uint64{}
	for _, n := range st.Nodes {
		nss["mnt "+n.Name] = n.MntNS
		nss["net "+n.Name] = n.NetNS
	}
	return nss
}

// labMarks are strings that only the lab's mounts, links, rules and routes contain. Other work on
// the machine may change its mounts or rules meanwhile; only changes carrying these fail the test.
var labMarks = []string{"kblab", "kbv-", stateDir, "/run/netns", "10.77.0.", "10.244.", "10.96."}

func labLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, m := range labMarks {
			if strings.Contains(l, m) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func checkNothingLeft(t *testing.T, before machine, nss map[string]uint64) {
	t.Helper()
	after := snapshotMachine(t)
	boundMounts := func(ms []string) []string {
		var out []string
		for _, m := range ms {
			if slices.Contains(boundPaths, m) || slices.ContainsFunc(boundPaths, func(p string) bool { return strings.HasPrefix(m, p+"/") }) {
				out = append(out, m)
			}
		}
		return append(out, labLines(ms)...)
	}
	checks := []struct {
		what          string
		before, after []string
	}{
		{"mounts", boundMounts(before.mounts), boundMounts(after.mounts)},
		{"links", labLines(before.links), labLines(after.links)},
		{"named netns", labLines(before.netns), labLines(after.netns)},
		{"iptables rules", labLines(strings.Split(before.iptables, "\n")), labLines(strings.Split(after.iptables, "\n"))},
		{"routes", labLines(strings.Split(before.routes, "\n")), labLines(strings.Split(after.routes, "\n"))},
	}
	for _, c := range checks {
		if d := diff(c.before, c.after); d != "" {
			t.Errorf("%s changed: %s", c.what, d)
		}
	}
	if d := diff(strings.Split(before.iptables, "\n"), strings.Split(after.iptables, "\n")); d != "" {
		t.Logf("iptables rules changed by something else meanwhile: %s", d)
	}
	for p, existed := range before.paths {
		_, err := os.Lstat(p)
		if exists := err == nil; exists != existed {
			t.Errorf("%s: existed before %v, after %v", p, existed, exists)
		}
	}
	if ms, _ := filepath.Glob("/sys/fs/cgroup/*/kblab-*"); len(ms) > 0 {
		t.Errorf("cgroups left: %v", ms)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "nodes")); err == nil {
		t.Errorf("%s/nodes is left", stateDir)
	}
	for _, f := range []string{"lab.json", "kubectl-cache"} {
		if _, err := os.Stat(filepath.Join(stateDir, f)); err == nil {
			t.Errorf("%s/%s is left", stateDir, f)
		}
	}
	if left := labProcesses(nss); len(left) > 0 {
		t.Errorf("processes of the lab left:\n%s", strings.Join(left, "\n"))
	}
}

// labProcesses lists live processes that belong to the lab: in a node's namespaces or cgroups, a
// node-run, or one whose command line names a node's directory.
func labProcesses(nss map[string]uint64) []string {
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if zombie(dir) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		cmd := strings.ReplaceAll(string(cmdline), "\x00", " ")
		why := ""
		switch {
		case strings.Contains(cmd, " node-run "):
			why = "is a node-run"
		case strings.Contains(cmd, stateDir+"/nodes/"):
			why = "names a node's directory"
		}
		for name, ino := range nss {
			kind, _, _ := strings.Cut(name, " ")
			if fi, err := os.Stat(filepath.Join(dir, "ns", kind)); err == nil && ino != 0 && inode(fi) == ino {
				why = "is in " + name
			}
		}
		if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil && strings.Contains(string(cg), ":/kblab-") {
			why = "is in a lab cgroup"
		}
		if why != "" {
			left = append(left, fmt.Sprintf("pid %d %s: %s", pid, why, cmd))
		}
	}
	return left
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func zombie(procDir string) bool {
	f, err := os.Open(filepath.Join(procDir, "status"))
	if err != nil {
		return true // gone
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if state, ok := strings.CutPrefix(sc.Text(), "State:"); ok {
			s := strings.TrimSpace(state)
			return strings.HasPrefix(s, "Z") || strings.HasPrefix(s, "X")
		}
	}
	return false
}

func diff(before, after []string) string {
	var added, removed []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			added = append(added, a)
		}
	}
	for _, b := range before {
		if !slices.Contains(after, b) {
			removed = append(removed, b)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return ""
	}
	return fmt.Sprintf("added %v, removed %v", added, removed)
}
