package reset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// fakeRuntime is a container runtime holding sandboxes. It records every call, and at each stop whether the
// static Pod manifests were still on disk, to check the order of reset's steps.
type fakeRuntime struct {
	fsys      nodefs.FS
	pods      []cri.PodSandbox
	calls     []string
	failStop  map[string]error
	respawn   []cri.PodSandbox // added back after the first removal, like a kubelet restarting cached Pods
	respawned bool
	// manifestsAtStop records, for each StopPodSandbox, the manifests still present.
	manifestsAtStop [][]string
	closed          bool
	// onSecondList runs when the sandboxes are listed the second time (the sweep after the files are deleted),
	// like a kubelet still running that writes while the node is cleaned.
	onSecondList func()
	lists        int
	// apiServer, when set, is the ID of a running kube-apiserver container, which StopContainer stops.
	apiServer string
}

func (f *fakeRuntime) Version(context.Context) (cri.Version, error) { return cri.Version{}, nil }
func (f *fakeRuntime) Status(context.Context) (cri.Status, error)   { return cri.Status{}, nil }
func (f *fakeRuntime) RuntimeConfig(context.Context) (cri.RuntimeConfig, error) {
	return cri.RuntimeConfig{}, cri.ErrUnimplemented
}
func (f *fakeRuntime) ImageStatus(context.Context, string) (cri.Image, error) {
	return cri.Image{}, nil
}
func (f *fakeRuntime) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	if f.apiServer == "" || labels[cri.LabelContainerName] != staticpod.APIServerName || labels[cri.LabelPodNamespace] != "kube-system" {
		return nil, nil
	}
	return []cri.Container{{ID: f.apiServer, State: cri.ContainerRunning}}, nil
}
func (f *fakeRuntime) StopContainer(_ context.Context, id string, grace time.Duration) error {
	f.calls = append(f.calls, fmt.Sprintf("stop-container %s %s (its manifest there: %v, etcd's: %v)", id, grace,
		f.fsys.Exists(staticpod.Path(staticpod.APIServerName)), f.fsys.Exists(EtcdManifest)))
	return nil
}
func (f *fakeRuntime) ContainerStatus(context.Context, string) (cri.ContainerStatus, error) {
	return cri.ContainerStatus{}, nil
}
func (f *fakeRuntime) ListPodSandboxes(_ context.Context, labels map[string]string) ([]cri.PodSandbox, error) {
	f.calls = append(f.calls, "list")
	if f.lists++; f.lists == 2 && f.onSecondList != nil {
		f.onSecondList()
	}
	return slices.Clone(f.pods), nil
}
func (f *fakeRuntime) StopPodSandbox(_ context.Context, id string) error {
	f.calls = append(f.calls, "stop "+id)
	names, _ := os.ReadDir(f.fsys.Path(staticpod.Dir))
	var left []string
	for _, n := range names {
		left = append(left, n.Name())
	}
	f.manifestsAtStop = append(f.manifestsAtStop, left)
	return f.failStop[id]
}
func (f *fakeRuntime) RemovePodSandbox(_ context.Context, id string) error {
	f.calls = append(f.calls, "remove "+id)
	if f.failStop[id] != nil {
		return nil // the runtime refuses to stop it; removal is not what fails
	}
	f.pods = slices.DeleteFunc(f.pods, func(p cri.PodSandbox) bool { return p.ID == id })
	if len(f.pods) == 0 && !f.respawned {
		f.respawned = true
		f.pods = append(f.pods, f.respawn...)
	}
	return nil
}
func (f *fakeRuntime) Close() error { f.closed = true; return nil }

// fakeMounts is a mount table.
type fakeMounts struct {
	points   []string
	failOn   map[string]error
	unmounts []string
}

func (m *fakeMounts) MountPoints() ([]string, error) { return slices.Clone(m.points), nil }
func (m *fakeMounts) Unmount(target string, flags int) error {
	m.unmounts = append(m.unmounts, target)
	if err := m.failOn[target]; err != nil {
		return err
	}
	for j := len(m.points) - 1; j >= 0; j-- {
		if m.points[j] == target {
			m.points = slices.Delete(m.points, j, j+1)
			return nil
		}
	}
	return errors.New("not mounted")
}

type fakeInitSystem struct {
	name    string
	actions []string
	err     error
}

func (f *fakeInitSystem) Name() string { return f.name }
func (f *fakeInitSystem) Restart(_ context.Context, s string) error {
	f.actions = append(f.actions, "restart "+s)
	return f.err
}

// stoppingInitSystem can also stop services, as systemd can.
type stoppingInitSystem struct{ fakeInitSystem }

func (f *stoppingInitSystem) Stop(_ context.Context, s string) error {
	f.actions = append(f.actions, "stop "+s)
	return nil
}

// fakeEtcd is an etcd cluster as reset sees it. A nil *fakeEtcd cannot be reached.
type fakeEtcd struct {
	members []etcd.Member
	listErr error
	// silentAt makes the member list fail through a connection to any of these endpoints (a member that takes
	// connections but answers no linearizable read), while the other endpoints answer.
	silentAt  []string
	quorumErr error
	removeErr error
	opened    [][]string // the endpoints of each connection
	calls     []string
	// onRemove runs when Remove is called, to look at the node at that moment.
	onRemove func()
}

func (f *fakeEtcd) open(_ context.Context, _ nodefs.FS, _ *EtcdMember, endpoints []string, _ time.Duration) (EtcdMembership, error) {
	if f == nil {
		return nil, errors.New("dial tcp 127.0.0.1:2379: connect: connection refused")
	}
	f.opened = append(f.opened, endpoints)
	return &fakeEtcdConn{fakeEtcd: f, endpoints: endpoints}, nil
}

// fakeEtcdConn is a connection to fakeEtcd at some of its members' endpoints.
type fakeEtcdConn struct {
	*fakeEtcd
	endpoints []string
}

func (c *fakeEtcdConn) MemberList(context.Context) ([]etcd.Member, error) {
	c.calls = append(c.calls, "list")
	for _, ep := range c.endpoints {
		if slices.Contains(c.silentAt, ep) {
			return nil, fmt.Errorf("list the etcd members: no member reachable at %s: unreachable: context deadline exceeded", strings.Join(c.endpoints, ","))
		}
	}
	return slices.Clone(c.members), c.listErr
}

func (f *fakeEtcd) CheckQuorumSafeToRemove(_ context.Context, id uint64) error {
	f.calls = append(f.calls, fmt.Sprintf("check %x", id))
	return f.quorumErr
}

func (f *fakeEtcd) Remove(_ context.Context, id uint64) error {
	f.calls = append(f.calls, fmt.Sprintf("remove %x", id))
	if f.onRemove != nil {
		f.onRemove()
	}
	return f.removeErr
}

func (f *fakeEtcd) Close() error { return nil }

// members are etcd members with IDs a, b, c...; cp1 (ID b) is this node's, with the manifest's peer URL.
func members(names ...string) []etcd.Member {
	var out []etcd.Member
	for i, n := range names {
		ip := fmt.Sprintf("10.77.0.%d", 9+i)
		out = append(out, etcd.Member{ID: uint64(0xa + i), Name: n, PeerURLs: []string{"https://" + ip + ":2380"}, ClientURLs: []string{"https://" + ip + ":2379"}})
	}
	return out
}

// etcdManifest is a stacked etcd member's manifest as kubeadm writes it, reduced to what reset reads.
func etcdManifest(name, initialCluster, dataDir string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.77.0.10:2379
    - --data-dir=` + dataDir + `
    - --initial-advertise-peer-urls=https://10.77.0.10:2380
    - --initial-cluster=` + initialCluster + `
    - --listen-client-urls=https://127.0.0.1:2379,https://10.77.0.10:2379
    - --name=` + name + `
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.7.0-0
    name: etcd
    volumeMounts:
    - mountPath: ` + dataDir + `
      name: etcd-data
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: ` + dataDir + `
      type: DirectoryOrCreate
    name: etcd-data
`
}

// node is a control-plane node's files after init, plus files reset must keep.
func node(etcd string) map[string]string {
	return map[string]string{
		"/etc/kubernetes/admin.conf":                             "admin",
		"/etc/kubernetes/super-admin.conf":                       "super-admin",
		"/etc/kubernetes/kubelet.conf":                           "kubelet",
		"/etc/kubernetes/bootstrap-kubelet.conf":                 "bootstrap",
		"/etc/kubernetes/controller-manager.conf":                "cm",
		"/etc/kubernetes/scheduler.conf":                         "sched",
		"/etc/kubernetes/manifests/etcd.yaml":                    etcd,
		"/etc/kubernetes/manifests/kube-apiserver.yaml":          "apiserver",
		"/etc/kubernetes/manifests/kube-controller-manager.yaml": "cm",
		"/etc/kubernetes/manifests/kube-scheduler.yaml":          "sched",
		"/etc/kubernetes/pki/ca.crt":                             "ca",
		"/etc/kubernetes/pki/ca.key":                             "key",
		"/etc/kubernetes/pki/etcd/ca.crt":                        "etcd ca",
		"/var/lib/kubelet/config.yaml":                           "kind: KubeletConfiguration",
		"/var/lib/kubelet/kubeadm-flags.env":                     `KUBELET_KUBEADM_ARGS=""`,
		"/var/lib/kubelet/pki/kubelet-client-current.pem":        "pem",
		"/var/lib/kubelet/pods/uid1/volumes/x/token":             "secret",
		"/var/lib/etcd/member/snap/db":                           "db",
		"/var/lib/dockershim/sandbox/abc":                        "old",
		// Kept: not the cluster's, or not reset's to clean.
		"/etc/kubernetes/notes.txt":                       "the user's",
		"/etc/kubernetes/tmp/kubeadm-backup-etcd/etcd.db": "backup",
		"/etc/cni/net.d/10-bridge.conflist":               "{}",
		"/root/.kube/config":                              "user kubeconfig",
		"/var/lib/other/keep.txt":                         "keep",
	}
}

func writeTree(t *testing.T, fsys nodefs.FS, files map[string]string) {
	t.Helper()
	for p, content := range files {
		if err := fsys.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// tree lists every file (with its content) and directory (with a trailing slash) under the root.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		if rel == "" {
			return nil
		}
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pods(names ...string) []cri.PodSandbox {
	var out []cri.PodSandbox
	for _, n := range names {
		out = append(out, cri.PodSandbox{ID: "id-" + n, Name: n, Namespace: "kube-system"})
	}
	return out
}

type env struct {
	root  string // resolved, as the mount table shows it
	fsys  nodefs.FS
	rt    *fakeRuntime
	mnt   *fakeMounts
	init  kubelet.InitSystem
	out   bytes.Buffer
	euid  int
	stdin string
	tty   bool
	count func(ctx context.Context, fsys nodefs.FS, m *EtcdMember) ([]etcd.Member, error)
	etcd  *fakeEtcd
}

func newEnv(t *testing.T, files map[string]string) *env {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, fsys: nodefs.FS{Root: root}, init: &fakeInitSystem{name: "fake"}}
	writeTree(t, e.fsys, files)
	e.rt = &fakeRuntime{fsys: e.fsys, pods: pods("etcd-cp1", "kube-apiserver-cp1", "coredns-abc")}
	e.mnt = &fakeMounts{points: []string{
		"/",
		"/proc",
		root + "/var/lib/kubelet", // the kubelet's bind mount of its own directory: stays
		root + "/var/lib/kubelet/pods/uid1/volumes/x",
		root + "/var/lib/kubelet/pods/uid1/volumes/x/sub",
		root + "/var/lib/kubeletfoo/m", // shares a prefix but is not below /var/lib/kubelet
	}}
	return e
}

func (e *env) data(cfg config.ResetConfiguration) *Data {
	config.SetResetDefaults(&cfg)
	return &Data{
		Env: nodeenv.Env{
			FS:        e.fsys,
			Out:       &e.out,
			Preflight: preflight.Env{FS: e.fsys, Geteuid: func() int { return e.euid }},
			DialRuntime: func(ctx context.Context, socket string) (cri.Runtime, error) {
				if e.rt == nil {
					return nil, errors.New("dial unix /run/containerd/containerd.sock: connect: no such file or directory")
				}
				return e.rt, nil
			},
			InitSystem: e.init,
		},
		Cfg:         &cfg,
		In:          strings.NewReader(e.stdin),
		InTerminal:  e.tty,
		Mounts:      e.mnt,
		EtcdMembers: e.count,
		Etcd:        e.etcd.open,
	}
}

func (e *env) run(t *testing.T, cfg config.ResetConfiguration) (*Data, error) {
	t.Helper()
	d := e.data(cfg)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := workflow.Runner[*Data]{Phases: Phases(), Out: &e.out, Now: func() time.Time { return at }}
	return d, r.Run(t.Context(), d, workflow.Options{Skip: cfg.SkipPhases})
}

func TestResetControlPlane(t *testing.T) {
	// The first control-plane node: its manifest lists only itself, but two more members joined since.
	e := newEnv(t, node(etcdManifest("cp1", "cp1=https://10.77.0.10:2380", "/var/lib/etcd")))
	e.etcd = &fakeEtcd{members: members("cp0", "cp1", "cp2")}
	e.etcd.onRemove = func() {
		// The member goes while its Pod still runs: the kubelet has not been told to stop anything yet.
		if len(e.rt.calls) > 0 || !e.fsys.Exists(EtcdManifest) {
			t.Errorf("the etcd member was removed after cleanup-node started (runtime calls %q)", e.rt.calls)
		}
	}
	d, err := e.run(t, config.ResetConfiguration{Force: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.out.String())
	}

	want := map[string]string{
		"/etc/":                      "",
		"/etc/cni/":                  "",
		"/etc/cni/net.d/":            "",
		"/etc/kubernetes/":           "",
		"/etc/kubernetes/manifests/": "",
		"/etc/kubernetes/pki/":       "",
		"/etc/kubernetes/tmp/":       "",
		"/etc/kubernetes/tmp/kubeadm-backup-etcd/":        "",
		"/etc/kubernetes/tmp/kubeadm-backup-etcd/etcd.db": "backup",
		"/etc/kubernetes/notes.txt":                       "the user's",
		"/etc/cni/net.d/10-bridge.conflist":               "{}",
		"/root/":                                          "",
		"/root/.kube/":                                    "",
		"/root/.kube/config":                              "user kubeconfig",
		"/var/":                                           "",
		"/var/lib/":                                       "",
		"/var/lib/dockershim/":                            "",
		"/var/lib/etcd/":                                  "",
		"/var/lib/kubelet/":                               "",
		"/var/lib/other/":                                 "",
		"/var/lib/other/keep.txt":                         "keep",
	}
	got := tree(t, e.root)
	for p := range want {
		if _, ok := got[p]; !ok {
			t.Errorf("%s was deleted; reset must keep it", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is left; reset must delete it", p)
		}
	}

	wantCalls := []string{"list",
		"stop id-etcd-cp1", "remove id-etcd-cp1",
		"stop id-kube-apiserver-cp1", "remove id-kube-apiserver-cp1",
		"stop id-coredns-abc", "remove id-coredns-abc",
		"list"}
	if !slices.Equal(e.rt.calls, wantCalls) {
		t.Errorf("runtime calls:\n got %q\nwant %q", e.rt.calls, wantCalls)
	}
	for i, left := range e.rt.manifestsAtStop {
		if len(left) > 0 {
			t.Errorf("stop %d happened while manifests %v were still there: the kubelet would start the Pod again", i, left)
		}
	}
	if !e.rt.closed {
		t.Error("the runtime connection was not closed")
	}
	wantUnmounts := []string{e.root + "/var/lib/kubelet/pods/uid1/volumes/x/sub", e.root + "/var/lib/kubelet/pods/uid1/volumes/x"}
	if !slices.Equal(e.mnt.unmounts, wantUnmounts) {
		t.Errorf("unmounted %q, want %q (deepest first, nothing outside /var/lib/kubelet)", e.mnt.unmounts, wantUnmounts)
	}
	if got := e.init.(*fakeInitSystem).actions; !slices.Equal(got, []string{"restart kubelet"}) {
		t.Errorf("init system actions %q, want the kubelet restarted once", got)
	}

	if want := []string{"list", "check b", "remove b"}; !slices.Equal(e.etcd.calls, want) {
		t.Errorf("etcd calls %q, want %q", e.etcd.calls, want)
	}
	// The list through the local member, the removal through the others (the local one stops once removed).
	if want := [][]string{{"https://127.0.0.1:2379"}, {"https://10.77.0.9:2379", "https://10.77.0.11:2379"}}; fmt.Sprint(e.etcd.opened) != fmt.Sprint(want) {
		t.Errorf("etcd connections %q, want %q", e.etcd.opened, want)
	}
	wantOut := `[preflight] done in 0s
  removed /etc/kubernetes/manifests/kube-apiserver.yaml first: the API server stops while its etcd member still serves it
  removed etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380) from the etcd cluster: 2 members remain
[remove-etcd-member] done in 0s
  removed the static Pod manifests in /etc/kubernetes/manifests: etcd.yaml, kube-controller-manager.yaml, kube-scheduler.yaml
  stopped and removed 3 pod sandbox(es): kube-system/etcd-cp1, kube-system/kube-apiserver-cp1, kube-system/coredns-abc
  unmounted 2 mount(s) below /var/lib/kubelet
  deleted the contents of /etc/kubernetes/pki, /var/lib/kubelet, /var/lib/etcd, /var/lib/dockershim
  deleted /etc/kubernetes/admin.conf, /etc/kubernetes/super-admin.conf, /etc/kubernetes/kubelet.conf, /etc/kubernetes/bootstrap-kubelet.conf, /etc/kubernetes/controller-manager.conf, /etc/kubernetes/scheduler.conf
  restarted the kubelet through fake
[cleanup-node] done in 0s
`
	if e.out.String() != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", e.out.String(), wantOut)
	}

	var summary bytes.Buffer
	d.NotCleaned(&summary)
	wantSummary := `The reset process does not clean up:
  - the CNI configuration in /etc/cni/net.d (10-bridge.conflist): remove it if this node is to use another network plugin
  - iptables, nftables and IPVS rules written by kube-proxy and the network plugin: flush them by hand,
    e.g. 'iptables -F && iptables -t nat -F && iptables -t mangle -F && iptables -X' and 'ipvsadm --clear'
  - kubeconfig files copied for users, such as $HOME/.kube/config
  - /etc/kubernetes/tmp (kubeadm-backup-etcd), where upgrades keep backups: pass --cleanup-tmp-dir to delete it
See https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/ for the manual cleanup.
`
	if summary.String() != wantSummary {
		t.Errorf("summary:\n%s\nwant:\n%s", summary.String(), wantSummary)
	}
}

func TestConfirmation(t *testing.T) {
	cases := []struct {
		name    string
		stdin   string
		tty     bool
		wantErr string
		hint    string
	}{
		{name: "yes", stdin: "y\n"},
		{name: "YES without a newline", stdin: "YES"},
		{name: "no", stdin: "n\n", wantErr: "phase preflight: reset not confirmed: the answer was not y or yes; nothing was changed"},
		{name: "empty line", stdin: "\n", wantErr: "phase preflight: reset not confirmed: the answer was not y or yes; nothing was changed"},
		{name: "not a terminal, nothing to read", stdin: "",
			wantErr: "phase preflight: reset not confirmed: standard input is not a terminal and gave no answer",
			hint:    "run 'kubeboot reset --force' to reset without a question (or answer y on standard input)"},
		{name: "terminal closed", stdin: "", tty: true,
			wantErr: "phase preflight: reset not confirmed: standard input is closed",
			hint:    "run 'kubeboot reset --force' to reset without a question (or answer y on standard input)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := node(etcdManifest("cp1", "cp1=https://10.77.0.10:2380", "/var/lib/etcd"))
			e := newEnv(t, files)
			e.stdin, e.tty = c.stdin, c.tty
			before := tree(t, e.root)
			_, err := e.run(t, config.ResetConfiguration{})
			if !strings.Contains(e.out.String(), "[reset] Are you sure you want to proceed? [y/N]: ") {
				t.Errorf("no question asked:\n%s", e.out.String())
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("%v\n%s", err, e.out.String())
				}
				if e.fsys.Exists("/etc/kubernetes/admin.conf") {
					t.Error("confirmed, but admin.conf is still there")
				}
				return
			}
			if err == nil || err.Error() != c.wantErr || !errors.Is(err, ErrNotConfirmed) {
				t.Fatalf("error = %v\nwant    %s", err, c.wantErr)
			}
			if c.hint != "" && hint.Of(err) != c.hint {
				t.Errorf("hint missing or wrong, want %q", c.hint)
			}
			if after := tree(t, e.root); !maps.Equal(before, after) {
				t.Error("refused, yet the node's files changed")
			}
			if len(e.rt.calls) > 0 {
				t.Errorf("refused, yet the runtime was called: %q", e.rt.calls)
			}
		})
	}
}

func TestPreflightNotRoot(t *testing.T) {
	e := newEnv(t, node(""))
	e.euid = 1000
	_, err := e.run(t, config.ResetConfiguration{Force: true})
	want := "phase preflight: preflight checks failed:\n\t[ERROR IsPrivilegedUser]: user is not running as root, run kubeboot as root (e.g. with sudo)\nTo ignore these, use --ignore-preflight-errors=IsPrivilegedUser"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	if !e.fsys.Exists("/etc/kubernetes/admin.conf") {
		t.Error("the check failed, yet admin.conf was deleted")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t, node(etcdManifest("cp1", "cp0=https://10.77.0.9:2380,cp1=https://10.77.0.10:2380", "/var/lib/etcd")))
	e.etcd = &fakeEtcd{members: members("cp0", "cp1")}
	stopper := &stoppingInitSystem{fakeInitSystem{name: "systemd"}}
	e.init = stopper
	before := tree(t, e.root)
	mountsBefore := slices.Clone(e.mnt.points)
	if _, err := e.run(t, config.ResetConfiguration{DryRun: true}); err != nil {
		t.Fatalf("%v\n%s", err, e.out.String())
	}
	if after := tree(t, e.root); !maps.Equal(before, after) {
		t.Error("the node's files changed in a dry run")
	}
	if !slices.Equal(e.rt.calls, []string{"list"}) {
		t.Errorf("runtime calls %q, want only a list", e.rt.calls)
	}
	if len(e.mnt.unmounts) > 0 || !slices.Equal(e.mnt.points, mountsBefore) {
		t.Errorf("unmounted %q in a dry run", e.mnt.unmounts)
	}
	if len(stopper.actions) > 0 {
		t.Errorf("init system actions %q in a dry run", stopper.actions)
	}
	if slices.ContainsFunc(e.etcd.calls, func(c string) bool { return strings.HasPrefix(c, "remove") }) {
		t.Errorf("etcd calls %q in a dry run", e.etcd.calls)
	}
	want := `  [dryrun] would ask for confirmation; nothing is changed
[preflight] done in 0s
  [dryrun] would remove etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380) from the 2-member etcd cluster
[remove-etcd-member] done in 0s
  [dryrun] would stop the kubelet through systemd
  [dryrun] would remove the static Pod manifests in /etc/kubernetes/manifests: etcd.yaml, kube-apiserver.yaml, kube-controller-manager.yaml, kube-scheduler.yaml
  [dryrun] would stop and remove 3 pod sandbox(es): kube-system/etcd-cp1, kube-system/kube-apiserver-cp1, kube-system/coredns-abc
  [dryrun] would unmount 2 mount(s) below /var/lib/kubelet: ` + e.root + `/var/lib/kubelet/pods/uid1/volumes/x, ` + e.root + `/var/lib/kubelet/pods/uid1/volumes/x/sub
  [dryrun] would delete the contents of /etc/kubernetes/manifests (4 entries)
  [dryrun] would delete the contents of /etc/kubernetes/pki (3 entries)
  [dryrun] would delete the contents of /var/lib/kubelet (4 entries)
  [dryrun] would delete the contents of /var/lib/etcd (1 entry)
  [dryrun] would delete the contents of /var/lib/dockershim (1 entry)
  [dryrun] would delete /etc/kubernetes/admin.conf, /etc/kubernetes/super-admin.conf, /etc/kubernetes/kubelet.conf, /etc/kubernetes/bootstrap-kubelet.conf, /etc/kubernetes/controller-manager.conf, /etc/kubernetes/scheduler.conf
  [dryrun] would restart the kubelet through systemd
[cleanup-node] done in 0s
`
	if e.out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", e.out.String(), want)
	}
}

func TestRemoveEtcdMember(t *testing.T) {
	one := "cp1=https://10.77.0.10:2380"
	three := "cp0=https://10.77.0.9:2380,cp1=https://10.77.0.10:2380,cp2=https://10.77.0.11:2380"
	unhealthy := fmt.Errorf("%w to remove cp1 (ID b, peer https://10.77.0.10:2380): 0 of the 1 voting members left would be healthy, "+
		"and quorum needs 1 (down: cp0 (ID a, peer https://10.77.0.9:2380): unreachable); bring them back first", etcd.ErrUnhealthy)
	quorumHint := "bring the members that are down back first; or pass --force to remove this member anyway, at the risk of the cluster losing its quorum (and with it the API)"
	unreachableHint := "start the member again (the kubelet runs it from /etc/kubernetes/manifests/etcd.yaml) so that reset can remove it; " +
		"or remove it from another control-plane node ('etcdctl member remove <ID>'); or pass --force to reset anyway, and the member " +
		"stays in the member list, where the other members count it toward quorum"
	refused := "could not read the etcd member list (dial tcp 127.0.0.1:2379: connect: connection refused); relying on "
	cases := []struct {
		name      string
		manifest  string
		cfg       config.ResetConfiguration
		etcd      *fakeEtcd
		count     func(ctx context.Context, fsys nodefs.FS, m *EtcdMember) ([]etcd.Member, error)
		wantErr   string
		wantOpen  [][]string
		wantIs    error
		wantHint  string
		wantLine  string
		wantCalls []string
		left      string
	}{
		{name: "no manifest", cfg: config.ResetConfiguration{Force: true},
			wantLine: "  no /etc/kubernetes/manifests/etcd.yaml: this node runs no stacked etcd member (an external etcd must be cleaned up by hand)\n"},
		{name: "only member", manifest: etcdManifest("cp1", one, "/var/lib/etcd"), etcd: &fakeEtcd{members: members("cp0", "cp1")[1:2]},
			wantLine:  `  etcd member "cp1" is the only member (per the member list of the local etcd member): nothing to remove; cleanup-node deletes /var/lib/etcd` + "\n",
			wantCalls: []string{"list"}},
		{name: "member of three", manifest: etcdManifest("cp1", three, "/var/lib/etcd"), etcd: &fakeEtcd{members: members("cp0", "cp1", "cp2")},
			wantLine:  `  removed etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380) from the etcd cluster: 2 members remain` + "\n",
			wantCalls: []string{"list", "check b", "remove b"}},
		{name: "first member, the others joined later", manifest: etcdManifest("cp1", one, "/var/lib/etcd"), etcd: &fakeEtcd{members: members("cp0", "cp1")},
			wantLine:  `  removed etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380) from the etcd cluster: 1 members remain` + "\n",
			wantCalls: []string{"list", "check b", "remove b"}},
		{name: "already removed", manifest: etcdManifest("cp1", three, "/var/lib/etcd"), etcd: &fakeEtcd{members: slices.Delete(members("cp0", "cp1", "cp2"), 1, 2)},
			wantLine:  `  etcd member "cp1" (peer URL https://10.77.0.10:2380) is not in the member list: it was removed already; cleanup-node deletes /var/lib/etcd` + "\n",
			wantCalls: []string{"list"}},
		{name: "removal would lose quorum", manifest: etcdManifest("cp1", three, "/var/lib/etcd"), etcd: &fakeEtcd{members: members("cp0", "cp1"), quorumErr: unhealthy},
			wantErr: "phase remove-etcd-member: " + unhealthy.Error(), wantIs: etcd.ErrUnhealthy, wantHint: quorumHint,
			wantCalls: []string{"list", "check b"}},
		{name: "removal would lose quorum, forced", manifest: etcdManifest("cp1", three, "/var/lib/etcd"), cfg: config.ResetConfiguration{Force: true},
			etcd: &fakeEtcd{members: members("cp0", "cp1"), quorumErr: unhealthy},
			wantLine: "  WARNING (--force): " + unhealthy.Error() + `; removing etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380) anyway` + "\n" +
				`  removed etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380) from the etcd cluster: 1 members remain` + "\n",
			wantCalls: []string{"list", "check b", "remove b"}},
		{name: "removal would lose quorum, dry run", manifest: etcdManifest("cp1", three, "/var/lib/etcd"), cfg: config.ResetConfiguration{DryRun: true},
			etcd:      &fakeEtcd{members: members("cp0", "cp1"), quorumErr: unhealthy},
			wantLine:  "  [dryrun] " + unhealthy.Error() + ": without --force a reset stops here\n",
			wantCalls: []string{"list", "check b"}},
		{name: "the removal fails", manifest: etcdManifest("cp1", three, "/var/lib/etcd"),
			etcd:    &fakeEtcd{members: members("cp0", "cp1", "cp2"), removeErr: errors.New("remove etcd member b: gave up after 2m0s: etcdserver: request timed out")},
			wantErr: "phase remove-etcd-member: remove etcd member b: gave up after 2m0s: etcdserver: request timed out",
			wantHint: "retry the reset; or pass --force to reset anyway, and the member stays in the member list (remove it from another " +
				"control-plane node: 'etcdctl member remove b')",
			wantCalls: []string{"list", "check b", "remove b"}},
		{name: "the removal fails, forced", manifest: etcdManifest("cp1", three, "/var/lib/etcd"), cfg: config.ResetConfiguration{Force: true},
			etcd:      &fakeEtcd{members: members("cp0", "cp1", "cp2"), removeErr: errors.New("etcdserver: request timed out")},
			wantLine:  "  WARNING (--force): etcdserver: request timed out; the member stays in the member list\n",
			wantCalls: []string{"list", "check b", "remove b"},
			left:      `etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380): it is still in the member list; run 'etcdctl member remove b' on another control-plane node`},
		{name: "etcd down, the manifest lists only this member", manifest: etcdManifest("cp1", one, "/var/lib/etcd"),
			wantLine: "  " + refused + "the --initial-cluster of /etc/kubernetes/manifests/etcd.yaml\n" +
				`  etcd member "cp1" is the only member (per the --initial-cluster of /etc/kubernetes/manifests/etcd.yaml): nothing to remove; cleanup-node deletes /var/lib/etcd` + "\n"},
		{name: "quorum lost: the local member's own list tells", manifest: etcdManifest("cp1", one, "/var/lib/etcd"),
			etcd: &fakeEtcd{listErr: errors.New("list the etcd members at https://127.0.0.1:2379: context deadline exceeded")},
			count: func(context.Context, nodefs.FS, *EtcdMember) ([]etcd.Member, error) {
				return members("cp0", "cp1"), nil
			},
			wantErr: `phase remove-etcd-member: cannot remove etcd member "cp1" from its 2-member cluster (per the local etcd member's own member list): ` +
				"list the etcd members at https://127.0.0.1:2379: context deadline exceeded",
			// The other member is asked too, and does not answer either.
			wantHint: unreachableHint, wantCalls: []string{"list", "list"},
			wantOpen: [][]string{{"https://127.0.0.1:2379"}, {"https://10.77.0.9:2379"}}},
		// The local member takes connections but answers no linearizable read (seen in the lab right after `etcd
		// snapshot rejoin`, a member not yet serving its own publish): the others it knows remove it.
		{name: "the local member does not answer the member list, the others do", manifest: etcdManifest("cp1", three, "/var/lib/etcd"),
			etcd: &fakeEtcd{members: members("cp0", "cp1", "cp2"), silentAt: []string{"https://127.0.0.1:2379"}},
			count: func(context.Context, nodefs.FS, *EtcdMember) ([]etcd.Member, error) {
				return members("cp0", "cp1", "cp2"), nil
			},
			wantLine: "  this node's etcd member did not answer the member list (list the etcd members: no member reachable at https://127.0.0.1:2379: " +
				"unreachable: context deadline exceeded): asked the other members it knows\n" +
				`  removed etcd member "cp1" (ID b, peer URL https://10.77.0.10:2380) from the etcd cluster: 2 members remain` + "\n",
			wantCalls: []string{"list", "list", "check b", "remove b"},
			wantOpen:  [][]string{{"https://127.0.0.1:2379"}, {"https://10.77.0.9:2379", "https://10.77.0.11:2379"}, {"https://10.77.0.9:2379", "https://10.77.0.11:2379"}}},
		{name: "etcd down, member of three", manifest: etcdManifest("cp1", three, "/var/lib/etcd"),
			wantErr: `phase remove-etcd-member: cannot remove etcd member "cp1" from its 3-member cluster (per the --initial-cluster of ` +
				"/etc/kubernetes/manifests/etcd.yaml): dial tcp 127.0.0.1:2379: connect: connection refused",
			wantHint: unreachableHint},
		{name: "etcd down, member of three, forced", manifest: etcdManifest("cp1", three, "/var/lib/etcd"), cfg: config.ResetConfiguration{Force: true},
			wantLine: "  " + refused + "the --initial-cluster of /etc/kubernetes/manifests/etcd.yaml\n" +
				`  WARNING (--force): cannot remove etcd member "cp1" from its 3-member cluster (per the --initial-cluster of /etc/kubernetes/manifests/etcd.yaml): ` +
				"dial tcp 127.0.0.1:2379: connect: connection refused; the member stays in the member list\n",
			left: `etcd member "cp1": it is still in the member list of the other 2 members; run 'etcdctl member remove <ID>' on another control-plane node`},
		{name: "unreadable manifest, no force", manifest: "kind: Pod\nspec: [",
			wantErr:  "phase remove-etcd-member: cannot tell whether this node runs a member of a larger etcd cluster: /etc/kubernetes/manifests/etcd.yaml: error converting YAML to JSON: yaml: line 2: did not find expected node content",
			wantHint: "fix or remove /etc/kubernetes/manifests/etcd.yaml, or pass --force to reset anyway (a member of a larger cluster would then stay in its member list)"},
		{name: "no peer URL in the manifest", manifest: strings.Replace(etcdManifest("cp1", three, "/var/lib/etcd"), "    - --initial-advertise-peer-urls=https://10.77.0.10:2380\n", "", 1),
			wantErr: "phase remove-etcd-member: cannot tell whether this node runs a member of a larger etcd cluster: /etc/kubernetes/manifests/etcd.yaml: " +
				"no --initial-advertise-peer-urls, so this member's peer URL is unknown",
			wantHint: "fix or remove /etc/kubernetes/manifests/etcd.yaml, or pass --force to reset anyway (a member of a larger cluster would then stay in its member list)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := node(c.manifest)
			if c.manifest == "" {
				delete(files, "/etc/kubernetes/manifests/etcd.yaml")
			}
			e := newEnv(t, files)
			e.stdin = "y\n"
			e.count = c.count
			e.etcd = c.etcd
			before := tree(t, e.root)
			d := e.data(c.cfg)
			err := (&workflow.Runner[*Data]{Phases: Phases(), Out: &e.out}).Run(t.Context(), d, workflow.Options{Only: "remove-etcd-member"})
			if c.etcd != nil && !slices.Equal(c.etcd.calls, c.wantCalls) {
				t.Errorf("etcd calls %q, want %q", c.etcd.calls, c.wantCalls)
			}
			if c.wantOpen != nil && !slices.EqualFunc(c.etcd.opened, c.wantOpen, slices.Equal) {
				t.Errorf("etcd connections at %q, want %q", c.etcd.opened, c.wantOpen)
			}
			if c.wantErr != "" {
				if err == nil || err.Error() != c.wantErr {
					t.Fatalf("error = %v\nwant    %s", err, c.wantErr)
				}
				if c.wantIs != nil && !errors.Is(err, c.wantIs) {
					t.Errorf("errors.Is(%v, %v) is false", err, c.wantIs)
				}
				if hint.Of(err) != c.wantHint {
					t.Errorf("hint missing or wrong: %v", err)
				}
				if after := tree(t, e.root); !maps.Equal(before, after) {
					t.Error("refused, yet the node's files changed")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, e.out.String())
			}
			got := strings.SplitAfterN(e.out.String(), "[remove-etcd-member]", 2)[0]
			// The API server goes first whenever a removal is attempted (see TestResetStopsTheAPIServerFirst).
			const retired = "  removed /etc/kubernetes/manifests/kube-apiserver.yaml first: the API server stops while its etcd member still serves it\n"
			attempted := strings.Contains(c.wantLine, "removed etcd member") ||
				(strings.Contains(c.wantLine, "the member stays in the member list") && !strings.Contains(c.wantLine, "could not read the etcd member list"))
			if strings.Contains(got, retired) != attempted {
				t.Errorf("the API server's manifest removed first: %v, want %v:\n%s", strings.Contains(got, retired), attempted, got)
			}
			if got = strings.Replace(got, retired, "", 1); got != c.wantLine+"[remove-etcd-member]" {
				t.Errorf("output:\n%s\nwant:\n%s", got, c.wantLine)
			}
			if c.left != "" && !slices.Contains(d.left, c.left) {
				t.Errorf("not-cleaned list %q lacks %q", d.left, c.left)
			}
		})
	}
}

// A refusal in remove-etcd-member must come before cleanup-node has touched anything.
func TestEtcdRefusalChangesNothing(t *testing.T) {
	e := newEnv(t, node(etcdManifest("cp1", "cp0=https://10.77.0.9:2380,cp1=https://10.77.0.10:2380", "/var/lib/etcd")))
	e.stdin = "y\n"
	e.etcd = &fakeEtcd{members: members("cp0", "cp1"), quorumErr: fmt.Errorf("%w to remove cp1", etcd.ErrUnhealthy)}
	before := tree(t, e.root)
	_, err := e.run(t, config.ResetConfiguration{})
	if !errors.Is(err, etcd.ErrUnhealthy) {
		t.Fatalf("error = %v, want etcd.ErrUnhealthy", err)
	}
	if after := tree(t, e.root); !maps.Equal(before, after) {
		t.Error("the node's files changed")
	}
	if len(e.rt.calls) > 0 {
		t.Errorf("runtime calls %q", e.rt.calls)
	}
}

func TestCleanupNode(t *testing.T) {
	t.Run("etcd data directory from the manifest", func(t *testing.T) {
		files := node(etcdManifest("cp1", "cp1=https://10.77.0.10:2380", "/data/etcd"))
		files["/data/etcd/member/wal/0.wal"] = "wal"
		e := newEnv(t, files)
		if _, err := e.run(t, config.ResetConfiguration{Force: true}); err != nil {
			t.Fatalf("%v\n%s", err, e.out.String())
		}
		if e.fsys.Exists("/data/etcd/member") || !e.fsys.Exists("/data/etcd") {
			t.Error("/data/etcd was not emptied (or was removed itself)")
		}
		if got, _ := e.fsys.ReadFile("/var/lib/etcd/member/snap/db"); string(got) != "db" {
			t.Error("/var/lib/etcd is not this node's etcd directory, yet it was emptied")
		}
	})
	t.Run("the node-local API endpoint's files", func(t *testing.T) {
		files := node("")
		files["/etc/kubernetes/manifests/kubeboot-local-endpoint.yaml"] = "endpoint"
		files["/var/lib/kubeboot/local-endpoint/backends.json"] = "[]"
		files["/var/lib/kubeboot/bin/kubeboot"] = "ELF"
		files["/var/lib/kubeboot/keep.txt"] = "not the endpoint's"
		e := newEnv(t, files)
		if _, err := e.run(t, config.ResetConfiguration{Force: true}); err != nil {
			t.Fatalf("%v\n%s", err, e.out.String())
		}
		for _, p := range []string{"/etc/kubernetes/manifests/kubeboot-local-endpoint.yaml", "/var/lib/kubeboot/local-endpoint", "/var/lib/kubeboot/bin/kubeboot"} {
			if e.fsys.Exists(p) {
				t.Errorf("%s was not deleted", p)
			}
		}
		if !e.fsys.Exists("/var/lib/kubeboot/keep.txt") {
			t.Error("/var/lib/kubeboot was emptied beyond the endpoint's files")
		}
		for _, want := range []string{"  deleted /var/lib/kubeboot/local-endpoint\n", "  deleted /var/lib/kubeboot/bin/kubeboot\n"} {
			if !strings.Contains(e.out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, e.out.String())
			}
		}
	})
	t.Run("a mount that will not go keeps /var/lib/kubelet", func(t *testing.T) {
		e := newEnv(t, node(""))
		busy := e.root + "/var/lib/kubelet/pods/uid1/volumes/x"
		e.mnt.failOn = map[string]error{busy: errors.New("unmount " + busy + ": device or resource busy")}
		d, err := e.run(t, config.ResetConfiguration{Force: true})
		want := "phase cleanup-node: /var/lib/kubelet not emptied: 1 mount(s) below it could not be unmounted: unmount " + busy + ": device or resource busy"
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		if got, _ := e.fsys.ReadFile("/var/lib/kubelet/pods/uid1/volumes/x/token"); string(got) != "secret" {
			t.Error("files below a mount that is still there were deleted")
		}
		if e.fsys.Exists("/etc/kubernetes/pki/ca.key") || e.fsys.Exists("/etc/kubernetes/admin.conf") {
			t.Error("the rest of the node was not cleaned")
		}
		wantLeft := "/var/lib/kubelet was not emptied: still mounted below it: " + busy
		if !slices.Contains(d.left, wantLeft) {
			t.Errorf("not-cleaned list %q lacks %q", d.left, wantLeft)
		}
	})
	t.Run("runtime unreachable", func(t *testing.T) {
		e := newEnv(t, node(""))
		e.rt = nil
		d, err := e.run(t, config.ResetConfiguration{Force: true})
		if err != nil {
			t.Fatalf("an unreachable runtime is a warning, as in kubeadm: %v", err)
		}
		if e.fsys.Exists("/etc/kubernetes/admin.conf") {
			t.Error("admin.conf not deleted")
		}
		var sum bytes.Buffer
		d.NotCleaned(&sum)
		want := "  - containers: Pods the container runtime still runs, if any, were not stopped (dial unix /run/containerd/containerd.sock: connect: no such file or directory); list them with 'crictl --runtime-endpoint unix:///var/run/containerd/containerd.sock pods'\n"
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary:\n%s\nlacks:\n%s", sum.String(), want)
		}
	})
	t.Run("kubelet stopped first, started last, Pods it restarted removed", func(t *testing.T) {
		e := newEnv(t, node(""))
		stopper := &stoppingInitSystem{fakeInitSystem{name: "systemd"}}
		e.init = stopper
		e.rt.respawn = pods("kube-proxy-xyz")
		if _, err := e.run(t, config.ResetConfiguration{Force: true}); err != nil {
			t.Fatalf("%v\n%s", err, e.out.String())
		}
		if !slices.Equal(stopper.actions, []string{"stop kubelet", "restart kubelet"}) {
			t.Errorf("init system actions %q", stopper.actions)
		}
		if len(e.rt.pods) != 0 {
			t.Errorf("sandboxes left: %v", e.rt.pods)
		}
		for _, line := range []string{"  stopped the kubelet through systemd\n", "  started the kubelet through systemd\n", "  the kubelet had started 1 pod sandbox(es) again; removed them\n"} {
			if !strings.Contains(e.out.String(), line) {
				t.Errorf("output lacks %q:\n%s", line, e.out.String())
			}
		}
	})
	t.Run("no init system", func(t *testing.T) {
		e := newEnv(t, node(""))
		e.init = kubelet.None{}
		d, err := e.run(t, config.ResetConfiguration{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if line := "  no init system found: restart the kubelet yourself so it drops the removed cluster's credentials and Pods\n"; !strings.Contains(e.out.String(), line) {
			t.Errorf("output lacks %q", line)
		}
		if !slices.Contains(d.left, "the kubelet: no init system could restart it; restart it yourself, or it keeps the removed cluster's credentials") {
			t.Errorf("not-cleaned list %q", d.left)
		}
	})
	t.Run("no init system: what the running kubelet wrote during the cleanup is deleted too", func(t *testing.T) {
		e := newEnv(t, node(""))
		e.init = kubelet.None{}
		e.rt.onSecondList = func() {
			// The kubelet's checkpoint store writes through a temporary file next to the checkpoint.
			if err := e.fsys.WriteFile("/var/lib/kubelet/.3978591233", []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.run(t, config.ResetConfiguration{Force: true}); err != nil {
			t.Fatalf("%v\n%s", err, e.out.String())
		}
		if e.rt.lists < 2 {
			t.Fatalf("the runtime was listed %d time(s); the test's kubelet never wrote", e.rt.lists)
		}
		if e.fsys.Exists("/var/lib/kubelet/.3978591233") {
			t.Error("the file the kubelet wrote during the cleanup is still there")
		}
		if line := "  the kubelet had written 1 entry into /var/lib/kubelet while it ran; deleted them\n"; !strings.Contains(e.out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, e.out.String())
		}
	})
	t.Run("a sandbox that will not stop", func(t *testing.T) {
		e := newEnv(t, node(""))
		e.rt.failStop = map[string]error{"id-coredns-abc": errors.New("rpc error: code = DeadlineExceeded")}
		d, err := e.run(t, config.ResetConfiguration{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if line := "  WARNING: pod sandbox id-coredns-ab (kube-system/coredns-abc): rpc error: code = DeadlineExceeded\n"; !strings.Contains(e.out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, e.out.String())
		}
		if want := "pod sandboxes that could not be removed: kube-system/coredns-abc (see the warnings above; 'crictl rmp -f <ID>')"; !slices.Contains(d.left, want) {
			t.Errorf("not-cleaned list %q lacks %q", d.left, want)
		}
	})
	t.Run("--cleanup-tmp-dir", func(t *testing.T) {
		e := newEnv(t, node(""))
		if _, err := e.run(t, config.ResetConfiguration{Force: true, CleanupTmpDir: true}); err != nil {
			t.Fatal(err)
		}
		if e.fsys.Exists("/etc/kubernetes/tmp/kubeadm-backup-etcd") || !e.fsys.Exists("/etc/kubernetes/tmp") {
			t.Error("/etc/kubernetes/tmp was not emptied (or was removed itself)")
		}
	})
	t.Run("a certificates directory that is not the cluster's", func(t *testing.T) {
		e := newEnv(t, node(""))
		_, err := e.run(t, config.ResetConfiguration{Force: true, CertificatesDir: "/etc"})
		want := `phase cleanup-node: refusing to delete the contents of "/etc": not an absolute path at least two levels deep`
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		if !e.fsys.Exists("/etc/cni/net.d/10-bridge.conflist") {
			t.Error("/etc was emptied")
		}
	})
}

func TestParseMountInfo(t *testing.T) {
	data := []byte(`22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
310 22 0:52 / /var/lib/kubelet/pods/a\040b/volumes/kubernetes.io~projected/kube-api-access rw,relatime - tmpfs tmpfs rw,size=1g
311 22 8:1 /var/lib/kubelet /var/lib/kubelet rw shared:1 - ext4 /dev/sda1 rw
`)
	got, err := ParseMountInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/var/lib/kubelet/pods/a b/volumes/kubernetes.io~projected/kube-api-access", "/var/lib/kubelet"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ParseMountInfo([]byte("1 2 3\n")); err == nil || err.Error() != "mountinfo line 1: 3 fields, want at least 5" {
		t.Errorf("error = %v", err)
	}
	// The real table parses too, and holds at least the root.
	real, err := HostMounts{}.MountPoints()
	if err != nil || !slices.Contains(real, "/") {
		t.Errorf("host mounts: %v, %v", real, err)
	}
}

// TestRemoveAllRetriedOutlastsAWriter: a kubelet still running (no init system) can add a file to a Pod's
// directory between RemoveAll's last read and its rmdir; the removal is tried again, a bounded number of times,
// and other errors are returned at once.
func TestRemoveAllRetriedOutlastsAWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pods")
	if err := os.MkdirAll(filepath.Join(dir, "uid", "volumes"), 0o755); err != nil {
		t.Fatal(err)
	}
	notEmpty := &fs.PathError{Op: "unlinkat", Path: dir, Err: syscall.ENOTEMPTY}
	for _, tt := range []struct {
		name      string
		failures  int
		fail      error
		wantCalls int
		wantErr   error
	}{
		{name: "a writer that stops", failures: 2, fail: notEmpty, wantCalls: 3},
		{name: "a writer that never stops", failures: 100, fail: notEmpty, wantCalls: removeRetries, wantErr: notEmpty},
		{name: "permission denied is not retried", failures: 100, fail: fs.ErrPermission, wantCalls: 1, wantErr: fs.ErrPermission},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			d := &Data{removeAll: func(p string) error {
				calls++
				if calls <= tt.failures {
					return tt.fail
				}
				return os.RemoveAll(p)
			}}
			err := d.removeAllRetried(dir)
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("%d calls, error %v; want %d calls, error %v", calls, err, tt.wantCalls, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists after the writer stopped: %v", dir, err)
	}
}

// TestRemoveAllRetriedUnmountsAVolumeMountedAgain: a kubelet still running may mount a Pod's volume again after
// reset unmounted everything below /var/lib/kubelet; the busy entry is unmounted once more and the removal
// retried.
func TestRemoveAllRetriedUnmountsAVolumeMountedAgain(t *testing.T) {
	root := t.TempDir()
	fsys := nodefs.FS{Root: root}
	vol := filepath.Join(fsys.Path(config.KubeletDir), "pods", "uid", "volumes", "kubernetes.io~projected", "token")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	busy := &fs.PathError{Op: "unlinkat", Path: vol, Err: syscall.EBUSY}
	mounts := &fakeMounts{points: []string{vol}}
	calls := 0
	d := &Data{Env: nodeenv.Env{FS: fsys, Out: io.Discard}, Mounts: mounts, Cfg: &config.ResetConfiguration{}, removeAll: func(p string) error {
		calls++
		if slices.Contains(mounts.points, vol) {
			return busy
		}
		return os.RemoveAll(p)
	}}
	if err := d.removeAllRetried(filepath.Join(fsys.Path(config.KubeletDir), "pods")); err != nil || calls != 2 {
		t.Fatalf("%d calls, error %v; want 2 calls and no error", calls, err)
	}
	if !slices.Equal(mounts.unmounts, []string{vol}) {
		t.Errorf("unmounted %v, want the volume mounted again", mounts.unmounts)
	}

	// A mount that cannot come off stops the retries at once with the original error.
	mounts = &fakeMounts{points: []string{vol}, failOn: map[string]error{vol: syscall.EBUSY}}
	calls = 0
	d.Mounts = mounts
	if err := d.removeAllRetried(filepath.Join(fsys.Path(config.KubeletDir), "pods")); !errors.Is(err, syscall.EBUSY) || calls != 1 {
		t.Errorf("%d calls, error %v; want 1 call and EBUSY", calls, err)
	}
}

// The API server is stopped with SIGTERM, after its manifest is gone and before the sandboxes are torn down, so that
// it takes itself out of the cluster's endpoints instead of being killed: on a node whose etcd member leaves a larger
// cluster, before the member is removed (its local etcd must still serve it for that), otherwise in cleanup-node.
func TestResetStopsTheAPIServerFirst(t *testing.T) {
	for _, c := range []struct {
		name    string
		members []string
		want    string
	}{
		{"member of a larger etcd cluster", []string{"cp0", "cp1", "cp2"}, "stop-container c0ffee0123456789 10s (its manifest there: false, etcd's: true)"},
		{"only etcd member", []string{"cp1"}, "stop-container c0ffee0123456789 10s (its manifest there: false, etcd's: false)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, node(etcdManifest("cp1", "cp1=https://10.77.0.10:2380", "/var/lib/etcd")))
			e.etcd = &fakeEtcd{members: members(c.members...)}
			e.rt.apiServer = "c0ffee0123456789"
			stopsAtRemove := -1
			e.etcd.onRemove = func() { stopsAtRemove = len(e.rt.calls) }
			if _, err := e.run(t, config.ResetConfiguration{Force: true}); err != nil {
				t.Fatalf("%v\n%s", err, e.out.String())
			}
			i := slices.Index(e.rt.calls, c.want)
			first := slices.IndexFunc(e.rt.calls, func(c string) bool { return strings.HasPrefix(c, "stop ") })
			if i < 0 || first < 0 || i > first {
				t.Fatalf("the API server was not stopped as %q before the sandboxes: calls %q", c.want, e.rt.calls)
			}
			if len(c.members) > 1 && stopsAtRemove != i+1 {
				t.Errorf("the etcd member was removed after %d runtime calls, want right after the API server stopped (call %d): %q", stopsAtRemove, i, e.rt.calls)
			}
			if !strings.Contains(e.out.String(), "stopped the API server (container c0ffee012345") {
				t.Errorf("reset does not say it stopped the API server:\n%s", e.out.String())
			}
		})
	}
}
