package cluster

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/lab/node"
)

func TestPlan(t *testing.T) {
	o := Options{StateDir: "/lab", BinDir: "/lab/bin", Self: "/lab/lab", ControlPlanes: 2, Workers: 2, WorkerBootstrapper: "kubeboot"}
	o.Defaults()
	st, err := plan(o)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, ip, pods, veth, bootstrapper string
		role                               node.Role
	}{
		{"kblab-cp1", "10.77.0.11", "10.244.1.0/24", "kbv-cp1", "kubeadm", node.ControlPlane},
		{"kblab-cp2", "10.77.0.12", "10.244.2.0/24", "kbv-cp2", "kubeadm", node.ControlPlane},
		{"kblab-w1", "10.77.0.21", "10.244.3.0/24", "kbv-w1", "kubeboot", node.Worker},
		{"kblab-w2", "10.77.0.22", "10.244.4.0/24", "kbv-w2", "kubeboot", node.Worker},
	}
	if len(st.Nodes) != len(want) {
		t.Fatalf("%d nodes, want %d", len(st.Nodes), len(want))
	}
	for i, w := range want {
		n := st.Nodes[i]
		if n.Name != w.name || n.IP != w.ip || n.PodSubnet != w.pods || n.HostVeth != w.veth || n.Bootstrapper != w.bootstrapper || n.Role != w.role {
			t.Errorf("node %d = %+v, want %+v", i, n, w)
		}
		// The default release's sandbox image, which containerd must use.
		if n.PauseImage != "registry.k8s.io/pause:"+release.Default().PauseVersion {
			t.Errorf("node %s pause image %q", w.name, n.PauseImage)
		}
		if n.Dir != "/lab/nodes/"+w.name || n.CgroupRoot != "/"+w.name || n.Gateway != "10.77.0.1" || n.PrefixLen != 24 || n.BinDir != "/lab/bin" {
			t.Errorf("node %s layout %+v", w.name, n.Spec)
		}
	}
	if st.Gateway != "10.77.0.1" || st.Subnet != "10.77.0.0/24" || st.Phase != "starting" {
		t.Errorf("state %+v", st)
	}
	// Two control planes: the load balancer is the endpoint, in front of both API servers.
	lb := st.LoadBalancer
	if lb == nil {
		t.Fatal("no load balancer with 2 control planes")
	}
	wantLB := node.Spec{Name: "kblab-lb", Role: node.LoadBalancer, IP: "10.77.0.5", PrefixLen: 24, Gateway: "10.77.0.1",
		Dir: "/lab/nodes/kblab-lb", BinDir: "/lab/bin", HostVeth: "kbv-lb",
		LoadBalancer: &node.LoadBalancerSpec{Listen: "10.77.0.5:6443", Backends: []string{"10.77.0.11:6443", "10.77.0.12:6443"},
			CAFile: "/lab/nodes/kblab-cp1/root/etc/kubernetes/pki/ca.crt"}}
	if !reflect.DeepEqual(lb.Spec, wantLB) {
		t.Errorf("load balancer %+v %+v, want %+v %+v", lb.Spec, lb.LoadBalancer, wantLB, wantLB.LoadBalancer)
	}
	if n, err := st.Node("lb"); err != nil || n.Name != "kblab-lb" {
		t.Errorf("Node(lb) = %v, %v", n.Name, err)
	}
	var names []string
	for _, m := range st.machines() {
		names = append(names, m.Name)
	}
	if want := []string{"kblab-cp1", "kblab-cp2", "kblab-w1", "kblab-w2", "kblab-lb"}; !slices.Equal(names, want) {
		t.Errorf("machines %v, want %v", names, want)
	}
}

func TestPlanOneControlPlaneHasNoLoadBalancer(t *testing.T) {
	o := Options{StateDir: "/lab", BinDir: "/lab/bin", Self: "/lab/lab", ControlPlanes: 1, Workers: 1}
	o.Defaults()
	st, err := plan(o)
	if err != nil {
		t.Fatal(err)
	}
	if st.LoadBalancer != nil || len(st.machines()) != 2 {
		t.Errorf("one control plane: load balancer %+v, %d machines; want none and 2", st.LoadBalancer, len(st.machines()))
	}
}

func TestBackendStates(t *testing.T) {
	log := filepath.Join(t.TempDir(), "loadbalancer.log")
	content := `=== 2025-01-01T00:00:00Z /lab/bin/kubeboot [loadbalancer --listen 10.77.0.5:6443 --backend 10.77.0.11:6443]
listening on 10.77.0.5:6443, forwarding to 10.77.0.11:6443, 10.77.0.12:6443, 10.77.0.13:6443
backend 10.77.0.11:6443 is down: dial tcp 10.77.0.11:6443: connect: connection refused
backend 10.77.0.11:6443 is up
backend 10.77.0.12:6443 is up
backend 10.77.0.11:6443 is down: Get "https://10.77.0.11:6443/readyz": EOF (closed 3 connections)
`
	if err := os.WriteFile(log, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.77.0.11:6443": "down", "10.77.0.12:6443": "up"}
	if got := backendStates(log); !reflect.DeepEqual(got, want) {
		t.Errorf("backend states %v, want %v", got, want)
	}
	if got := backendStates(filepath.Join(t.TempDir(), "none")); len(got) != 0 {
		t.Errorf("no log: %v", got)
	}
}

func TestRunningAndStartRefusals(t *testing.T) {
	self, err := node.NSInode(os.Getpid(), "mnt")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := &State{StateDir: dir, Nodes: []NodeState{
		// This test process stands in for a running supervisor.
		{Spec: node.Spec{Name: "kblab-cp1"}, PID: os.Getpid(), MntNS: self},
		// A PID of some other mount namespace: reused, so the node is down.
		{Spec: node.Spec{Name: "kblab-cp2"}, PID: os.Getpid(), MntNS: self + 1},
		// Not a name `lab up` gives: Start looks for the node's processes on the machine, and a lab may be up.
		{Spec: node.Spec{Name: "kblab-unit-w1"}},
	}}
	for _, tt := range []struct {
		name string
		want bool
	}{{"kblab-cp1", true}, {"kblab-cp2", false}, {"kblab-unit-w1", false}} {
		n, _ := st.Node(tt.name)
		if got := Running(n); got != tt.want {
			t.Errorf("Running(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
	err = Start(t.Context(), st, "cp1", "/nonexistent/lab")
	if want := "node kblab-cp1 is running (node-run pid " + strconv.Itoa(os.Getpid()) + "): `lab kill kblab-cp1` first"; err == nil || err.Error() != want {
		t.Errorf("Start of a running node: %v, want %q", err, want)
	}
	err = Start(t.Context(), st, "unit-w1", "/nonexistent/lab")
	if want := "node kblab-unit-w1: its netns is gone (stat /run/netns/kblab-unit-w1: no such file or directory): the lab is not whole, take it down with `lab down`"; err == nil || err.Error() != want {
		t.Errorf("Start without a netns: %v, want %q", err, want)
	}
	if _, err := Kill(st, "w9"); err == nil || err.Error() != `no lab node "w9"; nodes: [kblab-cp1 kblab-cp2 kblab-unit-w1]` {
		t.Errorf("Kill(w9): %v", err)
	}
}

func TestEmptyDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "containerd.sock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := emptyDir(dir); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("after emptyDir: %v, %v; want the directory, empty", entries, err)
	}
}

func TestPlanSubnetTooSmall(t *testing.T) {
	o := Options{ControlPlanes: 1, Workers: 1, Subnet: netip.MustParsePrefix("10.77.0.0/28")}
	o.Defaults()
	_, err := plan(o)
	if err == nil || err.Error() != "address number 21 is outside 10.77.0.0/28" {
		t.Errorf("error %v", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadState(dir); !errors.Is(err, ErrNoLab) {
		t.Fatalf("LoadState of nothing: %v, want ErrNoLab", err)
	}
	st := &State{StateDir: dir, Phase: "up", Nodes: []NodeState{
		{Spec: node.Spec{Name: "kblab-cp1", Role: node.ControlPlane, CgroupRoot: "/kblab-cp1"}, PID: 42, MntNS: 7},
		{Spec: node.Spec{Name: "kblab-w1", Role: node.Worker}},
	}}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 2 || got.Nodes[0].PID != 42 || got.Nodes[0].MntNS != 7 || got.Nodes[0].Spec.CgroupRoot != "/kblab-cp1" {
		t.Errorf("state read back %+v", got)
	}
	for _, name := range []string{"w1", "kblab-w1"} {
		if n, err := got.Node(name); err != nil || n.Name != "kblab-w1" {
			t.Errorf("Node(%q) = %v, %v", name, n.Name, err)
		}
	}
	if _, err := got.Node("w9"); err == nil || err.Error() != `no lab node "w9"; nodes: [kblab-cp1 kblab-w1]` {
		t.Errorf("Node(w9) error %v", err)
	}
	if err := os.WriteFile(StateFile(dir), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir); err == nil || errors.Is(err, ErrNoLab) {
		t.Errorf("corrupt state: %v", err)
	}
}

func TestRemoveCreatedPaths(t *testing.T) {
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, d := range []string{"a", "a/b", "keep", "keep/x"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p("keep/x/somebody-elses"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("written"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	created := []string{p("a"), p("a/b"), p("keep"), p("keep/x"), p("lock"), p("written"), p("gone")}
	if err := removeCreatedPaths(created); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{p("a"): false, p("a/b"): false, p("lock"): false, p("keep/x/somebody-elses"): true, p("keep"): true, p("written"): true} {
		if _, err := os.Lstat(path); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", path, err == nil, want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x`: "/tab\tx", `/odd\09`: `/odd\09`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlanRefusesAnUnsupportedRelease(t *testing.T) {
	o := Options{StateDir: "/lab", BinDir: "/lab/bin", Self: "/lab/lab", KubernetesVersion: "v1.34.4"}
	o.Defaults()
	_, err := plan(o)
	var unsupported *release.UnsupportedError
	if !errors.As(err, &unsupported) || unsupported.Version != "v1.34.4" {
		t.Errorf("plan(v1.34.4) = %v, want a release.UnsupportedError", err)
	}
}

// A worker gets the images it runs (pause, kube-proxy, CoreDNS, the tests' busybox), a control plane every one.
func TestImagesFor(t *testing.T) {
	all := []Image{
		{Ref: "registry.k8s.io/kube-apiserver:v1.37.2"}, {Ref: "registry.k8s.io/kube-controller-manager:v1.37.2"},
		{Ref: "registry.k8s.io/kube-scheduler:v1.37.2"}, {Ref: "registry.k8s.io/kube-proxy:v1.37.2"},
		{Ref: "registry.k8s.io/etcd:3.7.0-0"}, {Ref: "registry.k8s.io/coredns/coredns:v1.14.6"},
		{Ref: "registry.k8s.io/pause:3.10.2"}, {Ref: "kubeboot.lab/busybox:1"},
	}
	refs := func(images []Image) []string {
		var out []string
		for _, img := range images {
			out = append(out, img.Ref)
		}
		return out
	}
	if got := imagesFor(node.ControlPlane, all); !slices.Equal(refs(got), refs(all)) {
		t.Errorf("control plane: %v, want every image", refs(got))
	}
	want := []string{"registry.k8s.io/kube-proxy:v1.37.2", "registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/pause:3.10.2", "kubeboot.lab/busybox:1"}
	if got := imagesFor(node.Worker, all); !slices.Equal(refs(got), want) {
		t.Errorf("worker: %v, want %v", refs(got), want)
	}
}
