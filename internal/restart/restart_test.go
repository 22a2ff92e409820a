package restart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

func TestComponents(t *testing.T) {
	tests := []struct {
		name  string
		certs []string
		want  []string
	}{
		{name: "nothing renewed", certs: nil, want: nil},
		{name: "the admin's kubeconfigs restart nothing", certs: []string{"admin.conf", "super-admin.conf"}, want: nil},
		{name: "every certificate, in Order whatever the order renewed",
			certs: []string{"admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager.conf",
				"etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf", "super-admin.conf"},
			want: []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}},
		{name: "etcd's", certs: []string{"etcd-peer"}, want: []string{"etcd"}},
		{name: "the healthcheck client is etcd's", certs: []string{"etcd-healthcheck-client"}, want: []string{"etcd"}},
		{name: "the API server's clients", certs: []string{"front-proxy-client", "apiserver-etcd-client"}, want: []string{"kube-apiserver"}},
		{name: "the kubeconfigs of the controller manager and the scheduler", certs: []string{"scheduler.conf", "controller-manager.conf"},
			want: []string{"kube-controller-manager", "kube-scheduler"}},
		{name: "an unknown name", certs: []string{"kubelet.conf"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, Components(tt.certs)); d != "" {
				t.Errorf("Components(%q) (-want +got):\n%s", tt.certs, d)
			}
		})
	}
}

func TestOnNode(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	for _, c := range []string{staticpod.EtcdName, staticpod.APIServerName, staticpod.SchedulerName} {
		writeManifest(t, fsys, c, "apiVersion: v1\nkind: Pod\n")
	}
	if got, want := OnNode(fsys, Order, false), []string{"etcd", "kube-apiserver", "kube-scheduler"}; !cmp.Equal(got, want) {
		t.Errorf("OnNode = %q, want %q", got, want)
	}
	if got, want := OnNode(fsys, Order, true), []string{"kube-apiserver", "kube-scheduler"}; !cmp.Equal(got, want) {
		t.Errorf("OnNode with an external etcd = %q, want %q", got, want)
	}
}

func writeManifest(t *testing.T, fsys nodefs.FS, component, content string) {
	t.Helper()
	p := fsys.Path(staticpod.Path(component))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// events is what the fakes saw, in order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(format string, a ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, fmt.Sprintf(format, a...))
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

// idPrefix names the fake containers of each component: "<prefix>-<n>".
var idPrefix = map[string]string{"etcd": "etcd", "kube-apiserver": "api", "kube-controller-manager": "kcm", "kube-scheduler": "sched"}

// fakeRuntime runs one container per component, "<prefix>-<n>", as the kubelet would: a stopped container is
// replaced by the next after startAfter more lists of that component.
type fakeRuntime struct {
	ev *events
	// running is the running container of each component; absent: none.
	running map[string]string
	// startAfter is the number of lists after a stop before the new container runs; never: for these
	// components it never does.
	startAfter int
	never      map[string]bool
	stopErr    map[string]error // by container ID

	pending map[string]int // component: lists left before its new container runs
	next    map[string]int
}

func newFakeRuntime(ev *events, components ...string) *fakeRuntime {
	f := &fakeRuntime{ev: ev, running: map[string]string{}, pending: map[string]int{}, next: map[string]int{}}
	for _, c := range components {
		f.running[c] = idPrefix[c] + "-0"
		f.next[c] = 1
	}
	return f
}

func (f *fakeRuntime) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	if labels[cri.LabelPodNamespace] != "kube-system" {
		return nil, fmt.Errorf("listed containers outside kube-system: %v", labels)
	}
	c := labels[cri.LabelContainerName]
	if n, ok := f.pending[c]; ok && !f.never[c] {
		if n <= 0 {
			delete(f.pending, c)
			f.running[c] = fmt.Sprintf("%s-%d", idPrefix[c], f.next[c])
			f.next[c]++
			f.ev.add("kubelet started %s", f.running[c])
		} else {
			f.pending[c] = n - 1
		}
	}
	out := []cri.Container{{ID: "exited-" + c, Name: c, State: cri.ContainerExited}}
	if id, ok := f.running[c]; ok {
		out = append(out, cri.Container{ID: id, Name: c, State: cri.ContainerRunning})
	}
	return out, nil
}

func (f *fakeRuntime) StopContainer(_ context.Context, id string, grace time.Duration) error {
	f.ev.add("stop %s (grace %s)", id, grace)
	if err := f.stopErr[id]; err != nil {
		return err
	}
	for c, running := range f.running {
		if running == id {
			delete(f.running, c)
			f.pending[c] = f.startAfter
		}
	}
	return nil
}

// fakeProber answers for a component unhealthy until it was asked failures more times, or always with err.
type fakeProber struct {
	ev       *events
	rt       *fakeRuntime
	failures int
	always   map[string]error
	asked    map[string]int
}

func (p *fakeProber) Probe(_ context.Context, c string) error {
	if err := p.always[c]; err != nil {
		return err
	}
	if p.asked == nil {
		p.asked = map[string]int{}
	}
	p.asked[c]++
	if p.asked[c] <= p.failures {
		return errors.New("not yet")
	}
	p.ev.add("%s healthy, running %s", c, p.rt.running[c])
	p.asked[c] = 0
	return nil
}

// fakeCluster answers with members and servers; each call of a kind takes the next answer, the last one staying.
type fakeCluster struct {
	ev        *events
	members   [][]etcd.MemberStatus
	etcdErr   error
	servers   [][]APIServer
	serverErr error
}

func (c *fakeCluster) EtcdMembers(context.Context) ([]etcd.MemberStatus, error) {
	c.ev.add("check etcd")
	if c.etcdErr != nil {
		return nil, c.etcdErr
	}
	m := c.members[0]
	if len(c.members) > 1 {
		c.members = c.members[1:]
	}
	return m, nil
}

func (c *fakeCluster) APIServers(context.Context) ([]APIServer, error) {
	c.ev.add("check API servers")
	if c.serverErr != nil {
		return nil, c.serverErr
	}
	s := c.servers[0]
	if len(c.servers) > 1 {
		c.servers = c.servers[1:]
	}
	return s, nil
}

func member(id uint64, name string, healthy bool, problem string) etcd.MemberStatus {
	return etcd.MemberStatus{Member: etcd.Member{ID: id, Name: name, PeerURLs: []string{"https://10.0.0." + fmt.Sprint(id) + ":2380"}},
		Healthy: healthy, Problem: problem}
}

var (
	healthyMembers = []etcd.MemberStatus{member(1, "cp-1", true, ""), member(2, "cp-2", true, ""), member(3, "cp-3", true, "")}
	readyServers   = []APIServer{
		{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true},
		{Name: "kube-apiserver-cp-2", Endpoint: "10.0.0.2:6443", Ready: true},
		{Name: "kube-apiserver-cp-3", Endpoint: "10.0.0.3:6443", Ready: true},
	}
)

// stepClock advances by step at each reading.
func stepClock(step time.Duration) func() time.Time {
	t := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

func newTestRestarter(rt *fakeRuntime, probe Prober, cluster Cluster, out *bytes.Buffer) *Restarter {
	return &Restarter{Runtime: rt, Probe: probe, Cluster: cluster, Out: out, Now: stepClock(1600 * time.Millisecond),
		Timeout: 5 * time.Second, Interval: time.Millisecond, Grace: 30 * time.Second}
}

func TestRestartOneAtATimeInOrder(t *testing.T) {
	ev := &events{}
	rt := newFakeRuntime(ev, Order...)
	rt.startAfter = 2
	probe := &fakeProber{ev: ev, rt: rt, failures: 3}
	cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: [][]APIServer{readyServers}}
	var out bytes.Buffer
	r := newTestRestarter(rt, probe, cluster, &out)
	if err := r.Restart(t.Context(), Order); err != nil {
		t.Fatal(err)
	}
	want := []string{
		// etcd and the API server together: the API server stops first, and comes back after etcd.
		"check etcd", "check API servers",
		"stop api-0 (grace 30s)",
		"stop etcd-0 (grace 30s)", "kubelet started etcd-1", "etcd healthy, running etcd-1",
		"kubelet started api-1", "kube-apiserver healthy, running api-1", "check API servers",
		"stop kcm-0 (grace 30s)", "kubelet started kcm-1", "kube-controller-manager healthy, running kcm-1",
		"stop sched-0 (grace 30s)", "kubelet started sched-1", "kube-scheduler healthy, running sched-1",
	}
	if d := cmp.Diff(want, ev.get()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	wantOut := `[restart] kube-apiserver: stopped first, so that it finishes its requests before etcd, which it reads, restarts (1.6s)
[restart] etcd: restarted and healthy (1.6s)
[restart] kube-apiserver: restarted and healthy (6.4s)
[restart] kube-apiserver: Ready in the cluster (1.6s later)
[restart] kube-controller-manager: restarted and healthy (1.6s)
[restart] kube-scheduler: restarted and healthy (1.6s)
`
	if d := cmp.Diff(wantOut, out.String()); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
}

// Without a Grace set, the API server gets the upgrade's short grace (its watches would hold it for 30 s); the
// others get the kubelet's default.
func TestRestartDefaultGraces(t *testing.T) {
	ev := &events{}
	rt := newFakeRuntime(ev, Order...)
	probe := &fakeProber{ev: ev, rt: rt}
	cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: [][]APIServer{readyServers}}
	var out bytes.Buffer
	r := newTestRestarter(rt, probe, cluster, &out)
	r.Grace = 0
	if err := r.Restart(t.Context(), Order); err != nil {
		t.Fatal(err)
	}
	var stops []string
	for _, e := range ev.get() {
		if strings.HasPrefix(e, "stop ") {
			stops = append(stops, e)
		}
	}
	want := []string{"stop api-0 (grace 5s)", "stop etcd-0 (grace 30s)", "stop kcm-0 (grace 30s)", "stop sched-0 (grace 30s)"}
	if d := cmp.Diff(want, stops); d != "" {
		t.Errorf("stops (-want +got):\n%s", d)
	}
}

func TestRestartOnlyTheChangedComponents(t *testing.T) {
	ev := &events{}
	rt := newFakeRuntime(ev, Order...)
	probe := &fakeProber{ev: ev, rt: rt}
	cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: [][]APIServer{readyServers}}
	var out bytes.Buffer
	r := newTestRestarter(rt, probe, cluster, &out)
	if err := r.Restart(t.Context(), Components([]string{"scheduler.conf", "admin.conf"})); err != nil {
		t.Fatal(err)
	}
	want := []string{"stop sched-0 (grace 30s)", "kubelet started sched-1", "kube-scheduler healthy, running sched-1"}
	if d := cmp.Diff(want, ev.get()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if got := out.String(); got != "[restart] kube-scheduler: restarted and healthy (1.6s)\n" {
		t.Errorf("output %q", got)
	}
}

func TestRestartAComponentThatWasNotRunning(t *testing.T) {
	ev := &events{}
	rt := newFakeRuntime(ev)
	// The kubelet runs the controller manager's container again after a back-off, with the renewed kubeconfig.
	rt.pending[staticpod.ControllerManagerName] = 2
	rt.next[staticpod.ControllerManagerName] = 4
	probe := &fakeProber{ev: ev, rt: rt}
	var out bytes.Buffer
	r := newTestRestarter(rt, probe, &fakeCluster{ev: ev}, &out)
	if err := r.Restart(t.Context(), []string{staticpod.ControllerManagerName}); err != nil {
		t.Fatal(err)
	}
	want := []string{"kubelet started kcm-4", "kube-controller-manager healthy, running kcm-4"}
	if d := cmp.Diff(want, ev.get()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if got := out.String(); got != "[restart] kube-controller-manager: was not running; started by the kubelet and healthy (1.6s)\n" {
		t.Errorf("output %q", got)
	}
}

func TestCheck(t *testing.T) {
	all := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	learner := member(4, "", false, "not started: it has no client URL yet")
	learner.IsLearner = true
	tests := []struct {
		name       string
		components []string
		members    []etcd.MemberStatus
		etcdErr    error
		servers    []APIServer
		serverErr  error
		wantErr    string
		wantOut    string
		wantEvents []string
	}{
		{name: "all healthy", components: all, members: healthyMembers, servers: readyServers,
			wantEvents: []string{"check etcd", "check API servers"}},
		{name: "a learner that has not started does not count", components: all, members: append(healthyMembers[:3:3], learner), servers: readyServers,
			wantEvents: []string{"check etcd", "check API servers"}},
		{name: "this node's API server not ready is no reason to refuse", components: all, members: healthyMembers,
			servers:    []APIServer{{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Problem: "its Pod is not Ready"}, readyServers[1]},
			wantEvents: []string{"check etcd", "check API servers"}},
		{name: "an etcd member down", components: all,
			members: []etcd.MemberStatus{healthyMembers[0], member(2, "cp-2", false, "unreachable: dial tcp 10.0.0.2:2379: connect: connection refused"), healthyMembers[2]},
			servers: readyServers,
			wantErr: "refusing to restart etcd, kube-apiserver, kube-controller-manager, kube-scheduler on this node: the rest of the control plane is not healthy: " +
				"etcd member cp-2 (https://10.0.0.2:2380) is not healthy: unreachable: dial tcp 10.0.0.2:2379: connect: connection refused"},
		{name: "etcd does not answer", components: []string{"etcd"}, etcdErr: errors.New("list the etcd members: no member reachable at https://127.0.0.1:2379: unreachable: connection refused"),
			wantErr: "refusing to restart etcd on this node: the rest of the control plane is not healthy: " +
				"etcd's health is unknown: list the etcd members: no member reachable at https://127.0.0.1:2379: unreachable: connection refused"},
		{name: "another API server not ready, and a member without a name", components: []string{"etcd", "kube-apiserver"},
			members: []etcd.MemberStatus{healthyMembers[0], member(10, "", false, "knows no leader")},
			servers: []APIServer{readyServers[0], readyServers[1], {Name: "kube-apiserver-cp-3", Endpoint: "10.0.0.3:6443",
				Problem: "it is not a ready endpoint of the EndpointSlice default/kubernetes, where every running API server keeps its address"}},
			wantErr: "refusing to restart etcd, kube-apiserver on this node: the rest of the control plane is not healthy: " +
				"etcd member a (https://10.0.0.10:2380) is not healthy: knows no leader; " +
				"API server kube-apiserver-cp-3 (10.0.0.3:6443) is not ready: it is not a ready endpoint of the EndpointSlice default/kubernetes, where every running API server keeps its address"},
		{name: "the API cannot be asked", components: []string{"kube-apiserver"}, serverErr: errors.New(`list the kube-apiserver Pods in kube-system: Unauthorized`),
			wantErr: "refusing to restart kube-apiserver on this node: the rest of the control plane is not healthy: " +
				"the API servers' readiness is unknown: list the kube-apiserver Pods in kube-system: Unauthorized"},
		{name: "the controller manager and the scheduler need no check", components: []string{"kube-controller-manager", "kube-scheduler"},
			etcdErr: errors.New("down"), serverErr: errors.New("down")},
		{name: "a single control plane: said, not refused", components: all,
			members: healthyMembers[:1], servers: readyServers[:1],
			wantOut: "[restart] etcd has this node's member only: etcd, and the API with it, is unavailable while it restarts\n" +
				"[restart] this node's API server is the cluster's only one: the API is unavailable while it restarts\n",
			wantEvents: []string{"check etcd", "check API servers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{tt.members}, etcdErr: tt.etcdErr,
				servers: [][]APIServer{tt.servers}, serverErr: tt.serverErr}
			var out bytes.Buffer
			r := newTestRestarter(newFakeRuntime(ev), &fakeProber{}, cluster, &out)
			err := r.Check(t.Context(), tt.components)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
			} else if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Check error:\n%v\nwant, wrapping ErrUnsafe:\n%s", err, tt.wantErr)
			}
			if got := out.String(); got != tt.wantOut {
				t.Errorf("Check printed %q, want %q", got, tt.wantOut)
			}
			if tt.wantEvents != nil {
				if d := cmp.Diff(tt.wantEvents, ev.get()); d != "" {
					t.Errorf("events (-want +got):\n%s", d)
				}
			}
			if tt.wantErr == "" && tt.wantEvents == nil && len(ev.get()) != 0 {
				t.Errorf("asked the cluster: %q", ev.get())
			}
		})
	}
}

// Another node may start its own restart while this one runs: the check before the API server sees it, and waits
// for that node's API server to be ready again, up to the timeout.
func TestRestartChecksAgainBeforeTheAPIServer(t *testing.T) {
	cp2Restarting := []APIServer{readyServers[0], {Name: "kube-apiserver-cp-2", Endpoint: "10.0.0.2:6443",
		Problem: "its Pod is not Ready (ContainersNotReady: containers with unready status: [kube-apiserver])"}, readyServers[2]}
	const refusal = "refusing to restart kube-apiserver on this node: the rest of the control plane is not healthy: API server kube-apiserver-cp-2 (10.0.0.2:6443) is not ready: " +
		"its Pod is not Ready (ContainersNotReady: containers with unready status: [kube-apiserver])"
	const waiting = "[restart] kube-apiserver: waiting until the control plane can spare it: " + refusal + "\n"
	etcdRestart := []string{"stop etcd-0 (grace 30s)", "kubelet started etcd-1", "etcd healthy, running etcd-1"}
	tests := []struct {
		name       string
		servers    [][]APIServer
		wantErr    string
		wantEvents []string
		wantOut    string
	}{
		{name: "cp-2 comes back: the restart goes on", servers: [][]APIServer{cp2Restarting, cp2Restarting, readyServers},
			wantEvents: slices.Concat([]string{"check etcd", "check API servers", "check API servers", "check API servers", "stop api-0 (grace 30s)"}, etcdRestart,
				[]string{"kubelet started api-1", "kube-apiserver healthy, running api-1", "check API servers"}),
			wantOut: waiting + "[restart] kube-apiserver: stopped first, so that it finishes its requests before etcd, which it reads, restarts (1.6s)\n" +
				"[restart] etcd: restarted and healthy (1.6s)\n[restart] kube-apiserver: restarted and healthy (6.4s)\n" +
				"[restart] kube-apiserver: Ready in the cluster (1.6s later)\n"},
		{name: "cp-2 does not come back within the timeout: refused, neither etcd nor the API server restarted", servers: [][]APIServer{cp2Restarting},
			wantErr: refusal,
			wantOut: waiting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			rt := newFakeRuntime(ev, Order...)
			probe := &fakeProber{ev: ev, rt: rt}
			cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: tt.servers}
			var out bytes.Buffer
			r := newTestRestarter(rt, probe, cluster, &out)
			r.Timeout = 50 * time.Millisecond
			err := r.Restart(t.Context(), Order[:2])
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tt.wantEvents, ev.get()); d != "" {
					t.Errorf("events (-want +got):\n%s", d)
				}
			} else {
				wantHint := "the certificates are renewed; not restarted: etcd, kube-apiserver; " +
					"restart the rest once the control plane is healthy again (see `kubeboot etcd status`, `kubectl -n kube-system get pods -l tier=control-plane -o wide`)"
				if err == nil || err.Error() != tt.wantErr || hint.Of(err) != wantHint || !errors.Is(err, ErrUnsafe) {
					t.Fatalf("Restart error:\n%v\nhint: %s\nwant:\n%s\nhint: %s", err, hint.Of(err), tt.wantErr, wantHint)
				}
				for _, e := range ev.get() {
					if e == "stop api-0 (grace 30s)" || e == "stop etcd-0 (grace 30s)" {
						t.Errorf("etcd or the API server was stopped: %q", ev.get())
					}
				}
			}
			if d := cmp.Diff(tt.wantOut, out.String()); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
		})
	}
}

// The API server's restart ends once the cluster, not only its own /readyz, sees it ready: that is what the next
// node's restart checks.
func TestRestartWaitsUntilTheClusterSeesTheAPIServerReady(t *testing.T) {
	selfNotReady := []APIServer{{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true,
		Problem: "its Pod is not Ready (ContainersNotReady: containers with unready status: [kube-apiserver])"}, readyServers[1], readyServers[2]}
	selfOld := []APIServer{{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true, ContainerID: "api-0"}, readyServers[1], readyServers[2]}
	selfNew := []APIServer{{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true, ContainerID: "api-1"}, readyServers[1], readyServers[2]}
	tests := []struct {
		name    string
		servers [][]APIServer
		wantErr string
		wantOut string
	}{
		{name: "its Pod turns Ready after two looks", servers: [][]APIServer{readyServers, selfNotReady, selfNotReady, readyServers},
			wantOut: "[restart] kube-apiserver: restarted and healthy (1.6s)\n[restart] kube-apiserver: Ready in the cluster (1.6s later)\n" +
				"[restart] kube-scheduler: restarted and healthy (1.6s)\n"},
		{name: "its Pod says Ready for the container stopped until its kubelet reports the new one", servers: [][]APIServer{readyServers, selfOld, selfOld, selfNew},
			wantOut: "[restart] kube-apiserver: restarted and healthy (1.6s)\n[restart] kube-apiserver: Ready in the cluster (1.6s later)\n" +
				"[restart] kube-scheduler: restarted and healthy (1.6s)\n"},
		{name: "the kubelet never reports the new container: the restart fails, saying so", servers: [][]APIServer{readyServers, selfOld},
			wantErr: "kube-apiserver did not turn Ready in the cluster within 50ms: API server kube-apiserver-cp-1 (10.0.0.1:6443): the cluster's view still reports its container api-0, not the new api-1: its kubelet has not reported the restart yet",
			wantOut: "[restart] kube-apiserver: restarted and healthy (1.6s)\n"},
		{name: "never: the restart fails, naming what the cluster sees", servers: [][]APIServer{readyServers, selfNotReady},
			wantErr: "kube-apiserver did not turn Ready in the cluster within 50ms: API server kube-apiserver-cp-1 (10.0.0.1:6443) is not ready in the cluster's view: " +
				"its Pod is not Ready (ContainersNotReady: containers with unready status: [kube-apiserver])",
			wantOut: "[restart] kube-apiserver: restarted and healthy (1.6s)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			rt := newFakeRuntime(ev, Order...)
			cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: tt.servers}
			var out bytes.Buffer
			r := newTestRestarter(rt, &fakeProber{ev: ev, rt: rt}, cluster, &out)
			r.Timeout = 50 * time.Millisecond
			err := r.Restart(t.Context(), []string{staticpod.APIServerName, staticpod.SchedulerName})
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !strings.Contains(hint.Of(err), "not restarted: kube-scheduler") {
					t.Fatalf("Restart error:\n%v\nhint: %s\nwant:\n%s", err, hint.Of(err), tt.wantErr)
				}
				if slices.Contains(ev.get(), "stop sched-0 (grace 30s)") {
					t.Errorf("the scheduler was restarted after the API server failed: %q", ev.get())
				}
			} else if !slices.Contains(ev.get(), "stop sched-0 (grace 30s)") {
				t.Errorf("the scheduler was not restarted: %q", ev.get())
			}
			if d := cmp.Diff(tt.wantOut, out.String()); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
		})
	}
}

func TestRestartTimeout(t *testing.T) {
	const look = "look at it with `crictl ps -a --name kube-apiserver`, `crictl logs CONTAINER` and the kubelet's log (`journalctl -u kubelet`); " +
		"the certificates are renewed; restarted: etcd; not restarted: kube-controller-manager, kube-scheduler"
	tests := []struct {
		name       string
		never      bool
		unhealthy  error
		stopErr    error
		wantErr    string
		wantHint   string
		wantEvents []string
	}{
		{name: "the kubelet runs no new container", never: true,
			wantErr:    "kube-apiserver did not come back healthy within 50ms: the kubelet ran no new container after its container api-0 was stopped",
			wantHint:   look,
			wantEvents: []string{"check etcd", "check API servers", "stop api-0 (grace 30s)", "stop etcd-0 (grace 30s)", "kubelet started etcd-1", "etcd healthy, running etcd-1"}},
		{name: "the new container never gets healthy",
			unhealthy:  errors.New(`GET https://10.0.0.1:6443/readyz: HTTP 500: [-]etcd failed: reason withheld`),
			wantErr:    "kube-apiserver did not come back healthy within 50ms: its new container api-1 runs, but: GET https://10.0.0.1:6443/readyz: HTTP 500: [-]etcd failed: reason withheld",
			wantHint:   look,
			wantEvents: []string{"check etcd", "check API servers", "stop api-0 (grace 30s)", "stop etcd-0 (grace 30s)", "kubelet started etcd-1", "etcd healthy, running etcd-1", "kubelet started api-1"}},
		{name: "the runtime cannot stop it", stopErr: errors.New("CRI StopContainer api-0 at unix:///run/containerd/containerd.sock: rpc error: code = Unavailable"),
			wantErr: "restart kube-apiserver: stop its container api-0: CRI StopContainer api-0 at unix:///run/containerd/containerd.sock: rpc error: code = Unavailable",
			// The API server stops first: nothing is restarted.
			wantHint: "look at it with `crictl ps -a --name kube-apiserver`, `crictl logs CONTAINER` and the kubelet's log (`journalctl -u kubelet`); " +
				"the certificates are renewed; not restarted: etcd, kube-apiserver, kube-controller-manager, kube-scheduler",
			wantEvents: []string{"check etcd", "check API servers", "stop api-0 (grace 30s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			rt := newFakeRuntime(ev, Order...)
			rt.never = map[string]bool{staticpod.APIServerName: tt.never}
			probe := &fakeProber{ev: ev, rt: rt, always: map[string]error{staticpod.APIServerName: tt.unhealthy}}
			cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: [][]APIServer{readyServers}}
			var out bytes.Buffer
			r := newTestRestarter(rt, probe, cluster, &out)
			r.Timeout = 50 * time.Millisecond
			rt.stopErr = map[string]error{"api-0": tt.stopErr}
			// etcd comes back; the API server does not, and nothing after it is restarted.
			err := r.Restart(t.Context(), Order)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Restart error:\n%v\nwant:\n%s", err, tt.wantErr)
			}
			var te *TimeoutError
			if isTimeout := errors.As(err, &te); isTimeout != (tt.stopErr == nil) || isTimeout && te.Component != staticpod.APIServerName {
				t.Errorf("Restart error %#v: a *TimeoutError of kube-apiserver: %v", err, isTimeout)
			}
			if got := hint.Of(err); got != tt.wantHint {
				t.Errorf("hint:\n%s\nwant:\n%s", got, tt.wantHint)
			}
			if d := cmp.Diff(tt.wantEvents, ev.get()); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			want := "[restart] kube-apiserver: stopped first, so that it finishes its requests before etcd, which it reads, restarts (1.6s)\n" +
				"[restart] etcd: restarted and healthy (1.6s)\n"
			if tt.stopErr != nil {
				want = ""
			}
			if got := out.String(); got != want {
				t.Errorf("output %q, want %q", got, want)
			}
		})
	}
}

// handingCluster is a fakeCluster that can hand the etcd leadership over (LeaderHandOff).
type handingCluster struct {
	*fakeCluster
	to  string
	err error
}

func (c *handingCluster) HandOffEtcdLeadership(context.Context) (string, error) {
	c.ev.add("hand off etcd leadership")
	return c.to, c.err
}

// TestRestartHandsTheEtcdLeadershipOver: before this node's etcd member stops, it hands the leadership to
// another member, once, and says to whom; a failed hand-off is a warning and the restart goes on.
func TestRestartHandsTheEtcdLeadershipOver(t *testing.T) {
	for _, tc := range []struct {
		name    string
		to      string
		err     error
		wantOut string
	}{
		{"handed over", "kblab-cp2", nil, "[restart] etcd: handed the leadership to kblab-cp2\n"},
		{"not the leader", "", nil, ""},
		{"hand-off failed", "", errors.New("hand the etcd leadership to kblab-cp2: context deadline exceeded"),
			"[restart] etcd: WARNING: hand the etcd leadership to kblab-cp2: context deadline exceeded; the members elect a new leader when it stops\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			rt := newFakeRuntime(ev, Order...)
			probe := &fakeProber{ev: ev, rt: rt}
			cluster := &handingCluster{fakeCluster: &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: [][]APIServer{readyServers}}, to: tc.to, err: tc.err}
			var out bytes.Buffer
			r := newTestRestarter(rt, probe, cluster, &out)
			if err := r.Restart(t.Context(), []string{staticpod.EtcdName, staticpod.SchedulerName}); err != nil {
				t.Fatal(err)
			}
			want := []string{
				"check etcd", "hand off etcd leadership",
				"stop etcd-0 (grace 30s)", "kubelet started etcd-1", "etcd healthy, running etcd-1",
				"stop sched-0 (grace 30s)", "kubelet started sched-1", "kube-scheduler healthy, running sched-1",
			}
			if d := cmp.Diff(want, ev.get()); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			if !strings.HasPrefix(out.String(), tc.wantOut+"[restart] etcd: restarted and healthy") {
				t.Errorf("output:\n%s\nwant it to start with:\n%s", out.String(), tc.wantOut)
			}
		})
	}
}

// removingRuntime is a fakeRuntime that can also remove containers, as the CRI client can.
type removingRuntime struct{ *fakeRuntime }

func (r removingRuntime) RemoveContainer(_ context.Context, id string) error {
	r.ev.add("remove %s", id)
	return nil
}

// With a runtime that removes containers, each component's stopped container is removed, so that the kubelet's
// crash-loop back-off has no exited container to hold the next one back; the API server, stopped before etcd so
// that it drains, is only stopped, and its exited containers are removed once etcd is back.
func TestRestartRemovesTheStoppedContainers(t *testing.T) {
	ev := &events{}
	rt := newFakeRuntime(ev, Order...)
	rt.startAfter = 2
	probe := &fakeProber{ev: ev, rt: rt}
	cluster := &fakeCluster{ev: ev, members: [][]etcd.MemberStatus{healthyMembers}, servers: [][]APIServer{readyServers}}
	var out bytes.Buffer
	r := newTestRestarter(rt, probe, cluster, &out)
	r.Runtime = removingRuntime{rt}
	if err := r.Restart(t.Context(), Order); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"check etcd", "check API servers",
		"stop api-0 (grace 30s)",
		"stop etcd-0 (grace 30s)", "remove etcd-0", "kubelet started etcd-1", "etcd healthy, running etcd-1",
		"remove exited-kube-apiserver",
		"kubelet started api-1", "kube-apiserver healthy, running api-1", "check API servers",
		"stop kcm-0 (grace 30s)", "remove kcm-0", "kubelet started kcm-1", "kube-controller-manager healthy, running kcm-1",
		"stop sched-0 (grace 30s)", "remove sched-0", "kubelet started sched-1", "kube-scheduler healthy, running sched-1",
	}
	if d := cmp.Diff(want, ev.get()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}
