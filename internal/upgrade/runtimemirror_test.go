package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// listed is a container runtime that lists fixed containers, filtered by label as the CRI does.
type listed struct {
	cs  []cri.Container
	err error
}

func (l listed) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	var out []cri.Container
next:
	for _, c := range l.cs {
		for k, v := range labels {
			if c.Labels[k] != v {
				continue next
			}
		}
		out = append(out, c)
	}
	return out, l.err
}

func ctr(name, uid string, state cri.ContainerState, created int) cri.Container {
	return cri.Container{ID: name + "-" + uid, Name: name, State: state, CreatedAt: time.Unix(int64(created), 0),
		Labels: map[string]string{cri.LabelPodNamespace: "kube-system", cri.LabelContainerName: name, cri.LabelPodUID: uid}}
}

func TestRuntimeMirrorState(t *testing.T) {
	other := ctr("kube-apiserver", "other", cri.ContainerRunning, 9)
	other.Labels[cri.LabelPodNamespace] = "default"
	for _, tc := range []struct {
		name      string
		cs        []cri.Container
		wantHash  string
		wantReady bool
	}{
		{"no container", nil, "", false},
		{"a Pod of another namespace is not the static Pod", []cri.Container{other}, "", false},
		{"the running one", []cri.Container{ctr("kube-apiserver", "old", cri.ContainerRunning, 1)}, "old", true},
		{"the old Pod exited, the new one not started: the newest, not running",
			[]cri.Container{ctr("kube-apiserver", "old", cri.ContainerExited, 1), ctr("kube-apiserver", "new", cri.ContainerCreated, 2)}, "new", false},
		{"the new Pod runs beside the old one's exited container",
			[]cri.Container{ctr("kube-apiserver", "new", cri.ContainerRunning, 2), ctr("kube-apiserver", "old", cri.ContainerExited, 1)}, "new", true},
		{"a running container wins over a newer exited one (a crash-looping new Pod while the old one still runs)",
			[]cri.Container{ctr("kube-apiserver", "old", cri.ContainerRunning, 1), ctr("kube-apiserver", "new", cri.ContainerExited, 3)}, "old", true},
		{"another component's container is not this one's", []cri.Container{ctr("kube-scheduler", "s", cri.ContainerRunning, 5)}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &RuntimeMirror{Runtime: listed{cs: tc.cs}}
			hash, ready, err := m.State(t.Context(), "kube-apiserver")
			if err != nil || hash != tc.wantHash || ready != tc.wantReady {
				t.Errorf("State = %q, %v, %v; want %q, %v", hash, ready, err, tc.wantHash, tc.wantReady)
			}
		})
	}
	boom := errors.New("CRI ListContainers: connection refused")
	if _, _, err := (&RuntimeMirror{Runtime: listed{err: boom}}).State(t.Context(), "etcd"); !errors.Is(err, boom) {
		t.Errorf("an unreachable runtime: %v, want %v", err, boom)
	}
}

// oldAPIServer is the container runtime of a node whose old kube-apiserver container runs until it is stopped, and
// the prober of its API server. kubeletStops names the components whose old Pod the kubelet begins to stop once
// their new manifest is written: the old etcd's container is then gone; the old kube-apiserver fails /readyz until
// its container has been stopped.
type oldAPIServer struct {
	*fakeKubelet
	kubeletStops map[string]bool
	// sandboxHash, when set, holds the old Pods' UIDs by component (kube-apiserver, etcd): their sandboxes are
	// listed, ready until the kubelet has stopped them (the manifest gone and the container stopped). Unset, the
	// runtime lists no sandbox.
	sandboxHash map[string]string
	mu          sync.Mutex
	running     bool
	restarts    int // of the old kube-apiserver's container by the kubelet, after a stop before its new manifest
	stops       []string
}

// gone reports whether c's old Pod is on its way out: its manifest is the new release's, or removed.
func (o *oldAPIServer) gone(c string) bool {
	return o.replaced(c) || !o.fs.Exists(staticpod.Path(c))
}

// apiID is the running old kube-apiserver container's name: "old", then "restarted-N" once the kubelet has started
// it again N times.
func (o *oldAPIServer) apiID() string {
	if o.restarts == 0 {
		return "old"
	}
	return fmt.Sprintf("restarted-%d", o.restarts)
}

func (o *oldAPIServer) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch labels[cri.LabelContainerName] {
	case "kube-apiserver":
		if o.running {
			return []cri.Container{ctr("kube-apiserver", o.apiID(), cri.ContainerRunning, 1)}, nil
		}
	case "etcd":
		if !o.kubeletStops["etcd"] || !o.gone("etcd") {
			return []cri.Container{ctr("etcd", "old", cri.ContainerRunning, 1)}, nil
		}
	}
	return nil, nil
}

// replaced reports whether c's manifest is the new release's.
func (o *oldAPIServer) replaced(c string) bool {
	b, _ := o.fs.ReadFile(staticpod.Path(c))
	return bytes.Contains(b, []byte("v1.37.2")) || (c == "etcd" && bytes.Contains(b, []byte("etcd:3.7.0-0")))
}

func (o *oldAPIServer) StopContainer(_ context.Context, id string, grace time.Duration) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stops = append(o.stops, fmt.Sprintf("%s %s", id, grace))
	if o.gone("kube-apiserver") {
		o.running = false // the kubelet runs the new Pod instead, or none
	} else {
		o.restarts++ // the kubelet starts the same Pod's container again
	}
	return nil
}

func (o *oldAPIServer) Probe(ctx context.Context, c string) error {
	o.mu.Lock()
	shuttingDown := c == "kube-apiserver" && o.kubeletStops[c] && o.running
	o.mu.Unlock()
	if shuttingDown && o.gone(c) {
		return errors.New("GET https://127.0.0.1:6443/readyz: 500: [-]shutdown failed")
	}
	return o.fakeKubelet.Probe(ctx, c)
}

// Before etcd is replaced, this node's API server is stopped (drained) while etcd still serves it, and the kubelet
// starts it again; then hurry stops the old one once the kubelet has begun to replace it, or, once the old etcd has
// stopped, the one that would hold the kubelet.
func TestUpgradeStopsTheOldAPIServerOnceTheKubeletBegins(t *testing.T) {
	drained := "[upgrade/staticpods] Stopped this node's kube-apiserver (container kube-apiserve, 5s grace period) before its etcd is replaced, so that its clients move to another API server while its etcd still serves them"
	etcdLeft := "[upgrade/staticpods] The kubelet has not begun to stop the old etcd within 100ms (the old etcd still runs: the kubelet has not begun to stop it); leaving it to the kubelet"
	for _, tc := range []struct {
		name         string
		kubeletStops map[string]bool
		wantStops    []string
		wantLines    []string
	}{
		{"the kubelet begins to stop the old kube-apiserver: stopped with the short grace", map[string]bool{"kube-apiserver": true},
			[]string{"kube-apiserver-old 5s", "kube-apiserver-restarted-1 5s"}, []string{drained, etcdLeft,
				"[upgrade/staticpods] The kubelet is stopping the old kube-apiserver: stopped the kube-apiserver's container kube-apiserve with a 5s grace period"}},
		{"the old etcd has stopped: the API server that would hold the kubelet is stopped", map[string]bool{"etcd": true},
			[]string{"kube-apiserver-old 5s", "kube-apiserver-restarted-1 5s"}, []string{drained,
				"[upgrade/staticpods] The old etcd has stopped; this node's kube-apiserver would hold the kubelet's start of the new one until its requests time out: stopped the kube-apiserver's container kube-apiserve with a 5s grace period"}},
		{"the old ones keep running: left to the kubelet", nil, []string{"kube-apiserver-old 5s"}, []string{drained, etcdLeft,
			"[upgrade/staticpods] The kubelet has not begun to stop the old kube-apiserver within 100ms (the old kube-apiserver still runs: the kubelet has not begun to stop it); leaving it to the kubelet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := node(t)
			o := &oldAPIServer{fakeKubelet: &fakeKubelet{fs: fsys}, kubeletStops: tc.kubeletStops, running: true}
			var out bytes.Buffer
			e := engine(fsys, o.fakeKubelet, &renewer{}, &out)
			e.Probe, e.Containers = o, o
			if _, err := e.Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: true}); err != nil {
				t.Fatalf("Upgrade: %v\n%s", err, out.String())
			}
			if d := cmp.Diff(tc.wantStops, o.stops); d != "" {
				t.Errorf("stops (-want +got):\n%s", d)
			}
			for _, l := range tc.wantLines {
				if !strings.Contains(out.String(), l) {
					t.Errorf("output lacks %q:\n%s", l, out.String())
				}
			}
			if i, j := strings.Index(out.String(), drained), strings.Index(out.String(), "manifests/etcd.yaml\""); i < 0 || j < 0 || i > j {
				t.Errorf("the API server was not stopped before etcd's new manifest was written:\n%s", out.String())
			}
		})
	}
}

func (o *oldAPIServer) ListPodSandboxes(_ context.Context, labels map[string]string) ([]cri.PodSandbox, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	uid := labels[cri.LabelPodUID]
	switch uid {
	case "":
	case o.sandboxHash["kube-apiserver"]:
		ready := o.running || !o.gone("kube-apiserver")
		return []cri.PodSandbox{{ID: "sb-api", UID: uid, Namespace: "kube-system", Ready: ready}}, nil
	case o.sandboxHash["etcd"]:
		ready := !o.kubeletStops["etcd"] || !o.gone("etcd")
		return []cri.PodSandbox{{ID: "sb-etcd", UID: uid, Namespace: "kube-system", Ready: ready}}, nil
	}
	return nil, nil
}

// The old API server's Pod is stopped before its new manifest is written, as the controller-manager's is: the
// manifest is removed, the old container stopped with the short grace once the kubelet has begun (it fails
// /readyz), and the new manifest written once the sandbox has stopped; the new Pod's container is not stopped.
func TestUpgradeStopsTheOldAPIServerFirst(t *testing.T) {
	fsys := node(t)
	k := &fakeKubelet{fs: fsys}
	oldHash, _, _ := k.State(t.Context(), "kube-apiserver")
	o := &oldAPIServer{fakeKubelet: k, kubeletStops: map[string]bool{"kube-apiserver": true}, running: true,
		sandboxHash: map[string]string{"kube-apiserver": oldHash}}
	var out bytes.Buffer
	e := engine(fsys, k, &renewer{}, &out)
	e.Probe, e.Containers = o, o
	if _, err := e.Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{}); err != nil {
		t.Fatalf("Upgrade: %v\n%s", err, out.String())
	}
	if d := cmp.Diff([]string{"kube-apiserver-old 5s"}, o.stops); d != "" {
		t.Errorf("stops (-want +got):\n%s", d)
	}
	got := out.String()
	stopped := strings.Index(got, "[upgrade/staticpods] The kubelet is stopping the old kube-apiserver: stopped the kube-apiserver's container kube-apiserve with a 5s grace period (")
	first := strings.Index(got, "[upgrade/staticpods] The kubelet stopped the old kube-apiserver before its new manifest, so that it starts the new one at once")
	written := strings.Index(got, "manifests/kube-apiserver.yaml\" and backed up old manifest")
	if stopped < 0 || first < stopped || written < first || !strings.Contains(got, "after its manifest's removal)") {
		t.Errorf("the old API server was not stopped, after its manifest's removal, before the new manifest was written:\n%s", got)
	}
	if !o.replaced("kube-apiserver") {
		t.Errorf("the API server's manifest after the upgrade is not the new one")
	}
}

// etcd's old Pod is stopped before its new manifest is written too: after the drain, its manifest is removed, this
// node's API server stopped once the old etcd has stopped (hurry), and the new manifest written once the old
// sandbox has stopped.
func TestUpgradeStopsTheOldEtcdFirst(t *testing.T) {
	fsys := node(t)
	k := &fakeKubelet{fs: fsys}
	etcdHash, _, _ := k.State(t.Context(), "etcd")
	o := &oldAPIServer{fakeKubelet: k, kubeletStops: map[string]bool{"etcd": true}, running: true,
		sandboxHash: map[string]string{"etcd": etcdHash}}
	var out bytes.Buffer
	e := engine(fsys, k, &renewer{}, &out)
	e.Probe, e.Containers = o, o
	if _, err := e.Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: true}); err != nil {
		t.Fatalf("Upgrade: %v\n%s", err, out.String())
	}
	got := out.String()
	drained := strings.Index(got, "[upgrade/staticpods] Stopped this node's kube-apiserver (container kube-apiserve, 5s grace period) before its etcd is replaced")
	hurried := strings.Index(got, "[upgrade/staticpods] The old etcd has stopped; this node's kube-apiserver would hold the kubelet's start of the new one until its requests time out: stopped the kube-apiserver's container kube-apiserve with a 5s grace period (")
	first := strings.Index(got, "[upgrade/staticpods] The kubelet stopped the old etcd before its new manifest, so that it starts the new one at once")
	written := strings.Index(got, "manifests/etcd.yaml\" and backed up old manifest")
	if drained < 0 || hurried < drained || first < hurried || written < first || !strings.Contains(got, "after its manifest's removal)") {
		t.Errorf("etcd's old Pod was not stopped, after the drain and its manifest's removal, before its new manifest was written:\n%s", got)
	}
	if d := cmp.Diff([]string{"kube-apiserver-old 5s", "kube-apiserver-restarted-1 5s"}, o.stops); d != "" {
		t.Errorf("stops (-want +got):\n%s", d)
	}
	if !o.replaced("etcd") {
		t.Errorf("etcd's manifest after the upgrade is not the new one")
	}
}

// stoppingKubelet is the runtime of a node whose kubelet stops the old controller-manager's Pod once its manifest is
// gone (unless stuck), and records what each look at the old Pod's sandbox saw.
type stoppingKubelet struct {
	*fakeKubelet
	stuck   bool
	mu      sync.Mutex
	oldHash string
	looks   []string
}

func (s *stoppingKubelet) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	if labels[cri.LabelContainerName] == "kube-controller-manager" {
		return []cri.Container{ctr("kube-controller-manager", "old", cri.ContainerRunning, 1)}, nil
	}
	return nil, nil
}

func (s *stoppingKubelet) StopContainer(context.Context, string, time.Duration) error { return nil }

func (s *stoppingKubelet) ListPodSandboxes(_ context.Context, labels map[string]string) ([]cri.PodSandbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if labels[cri.LabelPodUID] != s.oldHash || labels[cri.LabelPodNamespace] != "kube-system" {
		return nil, nil
	}
	_, err := s.fs.ReadFile(staticpod.Path("kube-controller-manager"))
	ready := err == nil || s.stuck
	s.looks = append(s.looks, fmt.Sprintf("manifest present %v, sandbox ready %v", err == nil, ready))
	return []cri.PodSandbox{{ID: "sb-old", UID: s.oldHash, Namespace: "kube-system", Ready: ready}}, nil
}

// The controller-manager's old Pod is stopped before its new manifest is written (the kubelet would otherwise start
// the new one 10-15 s late); a Pod that does not stop only delays the new manifest by the bound.
func TestUpgradeStopsTheOldControllerManagerFirst(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stuck     bool
		wantLine  string
		wantLooks []string
	}{
		{"the kubelet stops it", false, "[upgrade/staticpods] The kubelet stopped the old kube-controller-manager before its new manifest, so that it starts the new one at once",
			[]string{"manifest present true, sandbox ready true", "manifest present false, sandbox ready false"}},
		{"it does not stop", true, "[upgrade/staticpods] The old Pod of kube-controller-manager did not stop within 100ms of its manifest's removal (the old Pod of kube-controller-manager still runs); writing the new one anyway",
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := node(t)
			k := &fakeKubelet{fs: fsys}
			oldHash, _, _ := k.State(t.Context(), "kube-controller-manager")
			s := &stoppingKubelet{fakeKubelet: k, stuck: tc.stuck, oldHash: oldHash}
			var out bytes.Buffer
			e := engine(fsys, k, &renewer{}, &out)
			e.Containers = s
			if _, err := e.Upgrade(t.Context(), targetOf(testInit(t, "v1.37.2")), Options{EtcdUpgrade: true}); err != nil {
				t.Fatalf("Upgrade: %v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), tc.wantLine) {
				t.Errorf("output lacks %q:\n%s", tc.wantLine, out.String())
			}
			// The first look finds a Pod to stop; every later one waits for it with its manifest removed.
			if len(s.looks) < 2 || s.looks[0] != "manifest present true, sandbox ready true" ||
				slices.Contains(s.looks[1:], "manifest present true, sandbox ready true") {
				t.Errorf("the old Pod was not looked at first, or waited for with its manifest still there: %q", s.looks)
			}
			if tc.wantLooks != nil {
				if d := cmp.Diff(tc.wantLooks, s.looks); d != "" {
					t.Errorf("looks at the old Pod (-want +got):\n%s", d)
				}
			}
			b, err := fsys.ReadFile(staticpod.Path("kube-controller-manager"))
			if err != nil || !bytes.Contains(b, []byte("v1.37.2")) {
				t.Errorf("the controller-manager's manifest after the upgrade (%v) is not the new one", err)
			}
			if strings.Contains(out.String(), "the old kube-scheduler") {
				t.Errorf("the scheduler, which runs no container here, was waited for:\n%s", out.String())
			}
		})
	}
}
