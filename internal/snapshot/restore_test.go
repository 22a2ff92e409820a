package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// etcdManifest is a stacked etcd member's manifest as kubeadm writes it, reduced to what restore and rejoin read.
func etcdManifest(name, clientURL, peerURL, initialCluster, dataDir string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=` + clientURL + `
    - --data-dir=` + dataDir + `
    - --initial-advertise-peer-urls=` + peerURL + `
    - --initial-cluster=` + initialCluster + `
    - --listen-client-urls=https://127.0.0.1:2379,` + clientURL + `
    - --name=` + name + `
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.7.0-0
    name: etcd
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

// effects records what a restore does to the node, in order.
type effects struct {
	t     *testing.T
	fsys  nodefs.FS
	log   []string
	reach map[string]error // client URL: nil when a member answers there
	free  uint64
	// restoreErr fails the data directory's restore.
	restoreErr error
}

func (e *effects) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	e.log = append(e.log, fmt.Sprintf("list containers %s/%s", labels[cri.LabelPodNamespace], labels[cri.LabelContainerName]))
	if e.fsys.Exists(staticpod.Path(staticpod.EtcdName)) {
		return []cri.Container{{ID: "c0ffee", State: cri.ContainerRunning}}, nil
	}
	return []cri.Container{{ID: "c0ffee", State: cri.ContainerExited}}, nil
}

func (e *effects) Probe(_ context.Context, component string) error {
	e.log = append(e.log, "probe "+component)
	if !e.fsys.Exists(staticpod.Path(staticpod.EtcdName)) {
		return errors.New("no etcd manifest")
	}
	return nil
}

func (e *effects) Reach(_ context.Context, endpoints []string) map[string]error {
	e.log = append(e.log, "reach "+strings.Join(endpoints, " "))
	out := map[string]error{}
	for _, ep := range endpoints {
		err, ok := e.reach[ep]
		if !ok {
			err = errors.New("connection refused")
		}
		out[ep] = err
	}
	return out
}

func (e *effects) Free(p string) (uint64, error) {
	e.log = append(e.log, "free "+strings.TrimPrefix(p, e.fsys.Root))
	return e.free, nil
}

func (e *effects) restoreDataDir(db string, dir DataDir) error {
	e.log = append(e.log, fmt.Sprintf("restore into %s as %s=%s token %q", strings.TrimPrefix(dir.Path, e.fsys.Root), dir.Name, dir.PeerURL, dir.ClusterToken))
	if e.restoreErr != nil {
		return e.restoreErr
	}
	if _, err := os.Stat(dir.Path); err == nil {
		e.t.Errorf("the data directory %s exists at the restore", dir.Path)
	}
	data, err := os.ReadFile(db)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir.Path, "member", "snap"), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir.Path, "member", "snap", "db"), data, 0o600)
}

// restoreNode is cp1 of a three-member cluster with an archive of it.
type restoreNode struct {
	*testNode
	archive string
	fx      *effects
}

const (
	cp1Client = "https://10.77.0.10:2379"
	cp1Peer   = "https://10.77.0.10:2380"
)

func newRestoreNode(t *testing.T) *restoreNode {
	t.Helper()
	n := newTestNode(t)
	archive := filepath.Join(n.dir, "backup.tar.gz")
	saveFake(t, n, archive, nil, 0, saveTime)
	files := map[string]string{
		staticpod.Path(staticpod.EtcdName):      etcdManifest("cp1", cp1Client, cp1Peer, "cp1="+cp1Peer, "/var/lib/etcd"),
		staticpod.Path(staticpod.APIServerName): "kube-apiserver manifest",
		"/var/lib/etcd/member/snap/db":          "old data",
		"/var/lib/etcd/member/wal/0.wal":        "old wal",
	}
	for p, data := range files {
		if err := n.fsys.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &restoreNode{testNode: n, archive: archive, fx: &effects{t: t, fsys: n.fsys, free: 1 << 40}}
}

func (n *restoreNode) restorer(out *bytes.Buffer) *Restorer {
	clock := saveTime.Add(30 * time.Minute)
	return &Restorer{Node: n.fsys, Files: nodefs.Host, Containers: n.fx, Probe: n.fx, Peers: n.fx, Disk: n.fx,
		RestoreDataDir: n.fx.restoreDataDir, Out: out, Interval: time.Millisecond, Timeout: time.Second,
		Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
}

// tree is every file under root with its content (certificates and keys by their hash would do; they are small).
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[strings.TrimPrefix(p, root)] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRestoreOrderOfEffects(t *testing.T) {
	n := newRestoreNode(t)
	before := tree(t, n.fsys.Root)
	var out bytes.Buffer
	restored, err := n.restorer(&out).Restore(t.Context(), n.archive)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	wantLog := []string{
		"reach https://10.77.0.11:2379 https://10.77.0.12:2379",
		"free /var/lib/etcd", // the data directory exists: its own filesystem, which a mount point (etcd on its own disk) restores into
		"list containers kube-system/etcd",
		// A new cluster token (RestoredClusterToken), from the restore's time.
		`restore into /var/lib/etcd as cp1=https://10.77.0.10:2380 token "etcd-cluster-restored-20261203T200009Z"`,
		"probe etcd",
		"probe kube-apiserver",
	}
	if diff := cmp.Diff(wantLog, n.fx.log); diff != "" {
		t.Errorf("effects (-want +got):\n%s", diff)
	}
	old := "/var/lib/etcd.before-restore-20261203T200009Z"
	if restored.OldDataDir != old || restored.ClientURL != cp1Client || len(restored.Others) != 2 ||
		restored.Others[0].Name != "cp2" || restored.Others[1].Name != "cp3" {
		t.Errorf("restored = %+v", restored)
	}
	after := tree(t, n.fsys.Root)
	want := map[string]string{}
	for p, data := range before {
		switch {
		case strings.HasPrefix(p, "/var/lib/etcd/"):
			want[old+strings.TrimPrefix(p, "/var/lib/etcd")] = data
		default:
			want[p] = data
		}
	}
	want["/var/lib/etcd/member/snap/db"] = string(fakeDB)
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("node after the restore (-want +got):\n%s", diff)
	}
	wantOut := `  archive ` + n.archive + ` verified: snapshot.db SHA-256 ` + short(restored.Metadata.SnapshotSHA256) + `, etcd 3.7.0, taken 2026-12-03T19:30:00Z
  the archive's cluster CA and etcd CA are this node's
[restore/verify] done in 1s
  no other member of the old cluster answers; 1099511627776 bytes free for 116736 needed
[restore/preflight] done in 1s
  etcd stopped (manifest moved to /etc/kubernetes/etcd.yaml.stopped)
[restore/stop-etcd] done in 1s
  moved the old data directory aside to /var/lib/etcd.before-restore-20261203T200009Z (kept; remove it once the cluster is whole)
  restored the snapshot into /var/lib/etcd as a one-member cluster: cp1 at https://10.77.0.10:2380
[restore/data-dir] done in 2s
  etcd is healthy
[restore/start-etcd] done in 1s
  the API server is ready
[restore/wait-apiserver] done in 1s
[restore] done in 14s
`
	if out.String() != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), wantOut)
	}
}

func TestRestoreRefusalsChangeNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, n *restoreNode, r *Restorer)
		want  string
		is    error
		hint  string
	}{
		{
			name: "truncated archive",
			setup: func(t *testing.T, n *restoreNode, _ *Restorer) {
				data, _ := os.ReadFile(n.archive)
				if err := os.WriteFile(n.archive, data[:len(data)-200], 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: "phase restore/verify: refusing to restore, nothing was changed: $ARCHIVE: the archive is corrupt or truncated: ",
			is:   ErrCorrupt,
		},
		{
			name: "snapshot of another cluster",
			setup: func(t *testing.T, n *restoreNode, _ *Restorer) {
				saveFake(t, newTestNode(t), n.archive, nil, 0, saveTime)
			},
			want: "phase restore/verify: refusing to restore, nothing was changed: snapshot of another cluster: the archive's ca.crt is not this node's /etc/kubernetes/pki/ca.crt",
			is:   ErrOtherCluster,
			hint: "restore a snapshot of this cluster, or pass --force to restore it with this node's PKI",
		},
		{
			name: "encrypted, no key",
			setup: func(t *testing.T, n *restoreNode, _ *Restorer) {
				saveFake(t, n.testNode, n.archive, bytes.Repeat([]byte{7}, 32), 0, saveTime)
			},
			want: "phase restore/verify: refusing to restore, nothing was changed: $ARCHIVE: the archive is encrypted",
			is:   ErrEncrypted,
		},
		{
			name: "another member still runs",
			setup: func(t *testing.T, n *restoreNode, _ *Restorer) {
				n.fx.reach = map[string]error{"https://10.77.0.12:2379": nil}
			},
			want: "phase restore/preflight: refusing to restore, nothing was changed: members of the old etcd cluster still run and would form a split brain with the restored member: cp3 (https://10.77.0.12:2379)",
			is:   ErrSplitBrain,
			hint: "stop etcd on each of them first: `mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.stopped` there (`kubeboot etcd snapshot rejoin` finds it there later)",
		},
		{
			name: "a member of the manifest's initial cluster still runs",
			setup: func(t *testing.T, n *restoreNode, _ *Restorer) {
				if err := n.fsys.WriteFile(staticpod.Path(staticpod.EtcdName), []byte(etcdManifest("cp1", cp1Client, cp1Peer,
					"cp1="+cp1Peer+",cp4=https://10.77.0.14:2380", "/var/lib/etcd")), 0o600); err != nil {
					t.Fatal(err)
				}
				n.fx.reach = map[string]error{"https://10.77.0.14:2379": nil, "https://10.77.0.11:2379": nil}
			},
			want: "phase restore/preflight: refusing to restore, nothing was changed: members of the old etcd cluster still run and would form a split brain with the restored member: cp2 (https://10.77.0.11:2379), cp4 (https://10.77.0.14:2379)",
			is:   ErrSplitBrain,
		},
		{
			name: "a member added after the snapshot still runs",
			setup: func(t *testing.T, n *restoreNode, r *Restorer) {
				cp4 := etcd.Member{ID: 4, Name: "cp4", PeerURLs: []string{"https://10.77.0.14:2380"}, ClientURLs: []string{"https://10.77.0.14:2379"}}
				r.Local = localMembers{cp1, cp2, cp4}
				n.fx.reach = map[string]error{"https://10.77.0.14:2379": nil}
			},
			want: "phase restore/preflight: refusing to restore, nothing was changed: members of the old etcd cluster still run and would form a split brain with the restored member: cp4 (https://10.77.0.14:2379)",
			is:   ErrSplitBrain,
		},
		{
			name:  "no space",
			setup: func(t *testing.T, n *restoreNode, _ *Restorer) { n.fx.free = 100_000 },
			want:  "phase restore/preflight: refusing to restore, nothing was changed: not enough free disk space under /var/lib/etcd for the new etcd data directory: 100000 bytes free, 116736 needed (1.5 times the snapshot's 77824 bytes)",
			is:    ErrNoSpace,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newRestoreNode(t)
			var out bytes.Buffer
			r := n.restorer(&out)
			tc.setup(t, n, r)
			before := tree(t, n.fsys.Root)
			_, err := r.Restore(t.Context(), n.archive)
			want := strings.ReplaceAll(tc.want, "$ARCHIVE", n.archive)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, tc.is) {
				t.Fatalf("error = %v\nwant    %s", err, want)
			}
			if tc.hint != "" && hint.Of(err) != tc.hint {
				t.Errorf("hint = %q\nwant   %q", hint.Of(err), tc.hint)
			}
			if diff := cmp.Diff(before, tree(t, n.fsys.Root)); diff != "" {
				t.Errorf("the refusal changed the node (-before +after):\n%s", diff)
			}
			for _, e := range n.fx.log {
				if !strings.HasPrefix(e, "reach ") && !strings.HasPrefix(e, "free ") {
					t.Errorf("a refusal did %q", e)
				}
			}
		})
	}
}

// localMembers is what this node's running member lists.
type localMembers []etcd.Member

func (l localMembers) LocalMemberList(context.Context) ([]etcd.Member, error) { return l, nil }

func TestRestoreForceAnotherCluster(t *testing.T) {
	n := newRestoreNode(t)
	saveFake(t, newTestNode(t), n.archive, nil, 0, saveTime)
	var out bytes.Buffer
	r := n.restorer(&out)
	r.Force = true
	if _, err := r.Restore(t.Context(), n.archive); err != nil {
		t.Fatal(err)
	}
	if want := "  WARNING: snapshot of another cluster: the archive's ca.crt is not this node's /etc/kubernetes/pki/ca.crt; restoring anyway (--force)\n"; !strings.Contains(out.String(), want) {
		t.Errorf("output:\n%s\nwant a line %s", out.String(), want)
	}
}

func TestRestoreAfterAStoppedManifest(t *testing.T) {
	n := newRestoreNode(t)
	if err := n.fsys.Rename(staticpod.Path(staticpod.EtcdName), StoppedManifest); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := n.restorer(&out).Restore(t.Context(), n.archive); err != nil {
		t.Fatal(err)
	}
	if !n.fsys.Exists(staticpod.Path(staticpod.EtcdName)) || n.fsys.Exists(StoppedManifest) {
		t.Error("the stopped manifest was not put back")
	}
}

func TestRestoreFailureSaysHowToGoBack(t *testing.T) {
	n := newRestoreNode(t)
	n.fx.restoreErr = errors.New("disk on fire")
	var out bytes.Buffer
	_, err := n.restorer(&out).Restore(t.Context(), n.archive)
	if err == nil || err.Error() != "phase restore/data-dir: disk on fire" {
		t.Fatalf("error = %v", err)
	}
	want := "etcd is stopped and its data directory is /var/lib/etcd.before-restore-20261203T200009Z: move it back to /var/lib/etcd and /etc/kubernetes/etcd.yaml.stopped back to /etc/kubernetes/manifests/etcd.yaml to start the old member again"
	if hint.Of(err) != want {
		t.Errorf("hint = %q\nwant   %q", hint.Of(err), want)
	}
	if !n.fsys.Exists(StoppedManifest) || !n.fsys.Exists("/var/lib/etcd.before-restore-20261203T200009Z/member/wal/0.wal") {
		t.Errorf("the node is not as the hint says: %v", slices.Sorted(mapKeys(tree(t, n.fsys.Root))))
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// stoppingEffects is a runtime that can also stop and remove containers.
type stoppingEffects struct{ *effects }

func (s stoppingEffects) StopContainer(_ context.Context, id string, grace time.Duration) error {
	s.log = append(s.log, fmt.Sprintf("stop %s (grace %s)", id, grace))
	return nil
}

func (s stoppingEffects) RemoveContainer(_ context.Context, id string) error {
	s.log = append(s.log, "remove "+id)
	return nil
}

// Once etcd is restored, this node's API server, which served the cluster before, is restarted: its container is
// stopped and removed (the kubelet starts a new one, with no crash-loop back-off) before the wait for it to be ready.
func TestRestoreRestartsTheAPIServer(t *testing.T) {
	n := newRestoreNode(t)
	var out bytes.Buffer
	r := n.restorer(&out)
	r.Containers = stoppingEffects{n.fx}
	if _, err := r.Restore(t.Context(), n.archive); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	tail := n.fx.log[len(n.fx.log)-8:]
	want := []string{
		// etcd's exited container goes before its manifest comes back.
		"list containers kube-system/etcd", "remove c0ffee", "probe etcd",
		"list containers kube-system/kube-apiserver", "stop c0ffee (grace 5s)", "remove c0ffee",
		// Then the exited ones (this fake lists the one it stopped as running still).
		"list containers kube-system/kube-apiserver", "probe kube-apiserver"}
	if diff := cmp.Diff(want, tail); diff != "" {
		t.Errorf("effects after etcd is healthy (-want +got):\n%s", diff)
	}
	if !strings.Contains(out.String(), "removed 1 exited etcd container(s), so that the kubelet starts the next member at once") {
		t.Errorf("output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "stopped and removed the API server's container c0ffee, which served the cluster before the restore; the kubelet starts a new one") {
		t.Errorf("output:\n%s", out.String())
	}
}

// apiServerDown is a prober to which the API server never answers, whatever the restore does.
type apiServerDown struct{ *effects }

func (a apiServerDown) Probe(ctx context.Context, component string) error {
	if component == staticpod.APIServerName {
		return errors.New("GET https://10.0.0.1:6443/readyz: HTTP 403")
	}
	return a.effects.Probe(ctx, component)
}

// diagnosis explains every component the same way, and records which it was asked about.
type diagnosis struct{ asked []string }

func (d *diagnosis) Diagnose(_ context.Context, component string) string {
	d.asked = append(d.asked, component)
	return "container " + component + " (3 attempts): running"
}

// An API server that does not turn ready after the restore is explained by its container's state, as init
// explains it, not by the last probe alone.
func TestRestoreDiagnosesAnAPIServerThatStaysDown(t *testing.T) {
	n := newRestoreNode(t)
	var out bytes.Buffer
	r := n.restorer(&out)
	r.Probe = apiServerDown{n.fx}
	d := &diagnosis{}
	r.Diagnose = d
	_, err := r.Restore(t.Context(), n.archive)
	if err == nil {
		t.Fatalf("restore succeeded with an API server that never answers:\n%s", out.String())
	}
	for _, want := range []string{"kube-apiserver is not healthy within 1s", "HTTP 403", "container kube-apiserver (3 attempts): running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !slices.Equal(d.asked, []string{staticpod.APIServerName}) {
		t.Errorf("diagnosed %v, want only the API server", d.asked)
	}
}

// etcdLostAfterStart: etcd answers healthy when the restore starts it, then no more, and the API server never turns
// ready (TestHA once saw "etcdserver: no leader" in the API server's log minutes after the restored etcd answered).
type etcdLostAfterStart struct {
	*effects
	etcdProbes int
}

func (e *etcdLostAfterStart) Probe(ctx context.Context, component string) error {
	switch component {
	case staticpod.APIServerName:
		return errors.New("GET https://10.0.0.1:6443/readyz: connection refused")
	case staticpod.EtcdName:
		e.etcdProbes++
		if e.etcdProbes > 1 {
			return errors.New("etcdserver: no leader")
		}
	}
	return e.effects.Probe(ctx, component)
}

// An API server that does not turn ready because the restored etcd stopped answering says so: the hint does not
// call etcd healthy, and etcd's container is explained.
func TestRestoreNamesAnEtcdLostAfterItsStart(t *testing.T) {
	n := newRestoreNode(t)
	var out bytes.Buffer
	r := n.restorer(&out)
	r.Probe = &etcdLostAfterStart{effects: n.fx}
	d := &diagnosis{}
	r.Diagnose = d
	_, err := r.Restore(t.Context(), n.archive)
	if err == nil {
		t.Fatalf("restore succeeded with an API server that never answers:\n%s", out.String())
	}
	msg := err.Error() + "\n" + hint.Of(err)
	for _, want := range []string{"kube-apiserver is not healthy within 1s", "etcd, healthy after its start, is not any more: etcdserver: no leader",
		"container etcd (3 attempts): running", "crictl ps -a --name etcd"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error and hint %q do not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "etcd is restored and healthy") {
		t.Errorf("error and hint %q call etcd healthy", msg)
	}
	if !slices.Equal(d.asked, []string{staticpod.APIServerName, staticpod.EtcdName}) {
		t.Errorf("diagnosed %v, want the API server, then etcd", d.asked)
	}
}

// diskAt records where free space was asked for.
type diskAt struct {
	free  uint64
	asked []string
}

func (d *diskAt) Free(p string) (uint64, error) {
	d.asked = append(d.asked, p)
	return d.free, nil
}

// The free space that counts is the filesystem the new data directory goes to: the data directory's own when it
// exists (a mount point is restored into itself), its parent's when it does not.
func TestCheckSpaceMeasuresWhereTheDataGoes(t *testing.T) {
	fsys := nodefs.Memory()
	if err := fsys.MkdirAll("/var/lib/etcd", 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dataDir, asked string
		free           uint64
		wantErr        bool
	}{
		{"/var/lib/etcd", "/var/lib/etcd", 1500, false},
		{"/var/lib/etcd", "/var/lib/etcd", 1499, true},
		{"/var/lib/etcd-new", "/var/lib", 1 << 20, false},
	} {
		d := &diskAt{free: tc.free}
		free, need, err := checkSpace(d, fsys, tc.dataDir, 1000)
		if len(d.asked) != 1 || d.asked[0] != fsys.Path(tc.asked) {
			t.Errorf("%s: free space asked for %q, want %q", tc.dataDir, d.asked, fsys.Path(tc.asked))
		}
		if need != 1500 || free != tc.free {
			t.Errorf("%s: free %d need %d, want %d and 1500", tc.dataDir, free, need, tc.free)
		}
		if (err != nil) != tc.wantErr || (err != nil && (!errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "under "+tc.asked+" "))) {
			t.Errorf("%s with %d free: error %v, want an ErrNoSpace naming %s: %v", tc.dataDir, tc.free, err, tc.asked, tc.wantErr)
		}
	}
}
