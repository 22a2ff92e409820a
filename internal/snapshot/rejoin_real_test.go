package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/testutil/labbin"
)

// kubelet plays the kubelet of one node for its etcd static Pod: the member runs while its manifest is in the
// manifests directory, from the data directory of the manifest.
type kubelet struct {
	mu     sync.Mutex // the test's own kubelet loop runs beside the restore's or rejoin's calls
	t      *testing.T
	node   *testNode
	member *realEtcd
	binary string
	// initialCluster is what the member starts with when its data directory is new ("" alone).
	initialCluster string
}

func (k *kubelet) sync() {
	k.mu.Lock()
	defer k.mu.Unlock()
	present := k.node.fsys.Exists(staticpod.Path(staticpod.EtcdName))
	switch {
	case !present && k.member.running():
		k.member.stop()
	case present && !k.member.running():
		k.member.start(k.t, k.node, k.binary, k.initialCluster)
	}
}

func (k *kubelet) ListContainers(context.Context, map[string]string) ([]cri.Container, error) {
	k.sync()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.member.running() {
		return []cri.Container{{ID: k.member.name, State: cri.ContainerRunning}}, nil
	}
	return nil, nil
}

func (k *kubelet) setInitialCluster(ic string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.initialCluster = ic
}

func (k *kubelet) Probe(ctx context.Context, component string) error {
	k.sync()
	if component != staticpod.EtcdName {
		return fmt.Errorf("no %s on this test node", component)
	}
	c, err := etcd.New(etcd.Options{Endpoints: []string{k.member.clientURL}, TLS: k.node.tls})
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		if !s.Healthy {
			return fmt.Errorf("%s: %s", s.Name, s.Problem)
		}
	}
	return nil
}

// copyPKI makes a second node with the same PKI: another control-plane node of the same cluster.
func copyPKI(t *testing.T, from *testNode) *testNode {
	t.Helper()
	dir := t.TempDir()
	to := &testNode{dir: dir, fsys: nodefs.FS{Root: filepath.Join(dir, "root")}, tls: from.tls}
	files, err := from.fsys.List(testCertDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := from.fsys.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.fsys.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func writeManifest(t *testing.T, n *testNode, m *realEtcd, initialCluster string) {
	t.Helper()
	if err := n.fsys.WriteFile(staticpod.Path(staticpod.EtcdName), []byte(etcdManifest(m.name, m.clientURL, m.peerURL, initialCluster, "/var/lib/etcd")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreAndRejoinRealEtcd runs the whole story on real etcd members of each release: a two-member
// cluster is saved, changed, refused a restore while its second member runs, restored on the first node once it
// is stopped, and the second node rejoins as a learner that is promoted; both then serve the snapshot's keys.
func TestRestoreAndRejoinRealEtcd(t *testing.T) {
	for _, rel := range []struct{ name, version string }{{"default release", ""}, {"v1.36 (etcd 3.6)", "v1.36.3"}} {
		t.Run(rel.name, func(t *testing.T) { restoreAndRejoin(t, labbin.Require(t, rel.version, "etcd")) })
	}
}

func restoreAndRejoin(t *testing.T, binary string) {
	ctx := t.Context()
	n1 := newTestNode(t)
	n2 := copyPKI(t, n1)
	m1 := newRealEtcd(t, n1, "cp1", n1.fsys.Path("/var/lib/etcd"))
	m2 := newRealEtcd(t, n2, "cp2", n2.fsys.Path("/var/lib/etcd"))
	m2.logFile = filepath.Join(n2.dir, "cp2.log")
	k1 := &kubelet{t: t, node: n1, member: m1, binary: binary}
	k2 := &kubelet{t: t, node: n2, member: m2, binary: binary}
	defer func() {
		if t.Failed() {
			t.Logf("cp1:\n%s\ncp2:\n%s", m1.logTail(), m2.logTail())
		}
	}()

	// The cluster before: cp1, then cp2 joined as a learner and promoted.
	writeManifest(t, n1, m1, "cp1="+m1.peerURL)
	k1.sync()
	kv1 := m1.kv(t, n1)
	c1 := m1.client(t, n1)
	id2, ic, err := c1.AddLearner(ctx, "cp2", m2.peerURL)
	if err != nil {
		t.Fatal(err)
	}
	writeManifest(t, n2, m2, ic)
	k2.initialCluster = ic
	k2.sync()
	if err := c1.Promote(ctx, id2); err != nil {
		t.Fatal(err)
	}
	put(t, kv1, 500, "/registry/configmaps/default/cm-")
	oldIDs := etcdIDs(t, kv1)

	archive := filepath.Join(n1.dir, "backup.tar.gz")
	saved, err := (&Saver{Node: n1.fsys, CertDir: testCertDir, Files: nodefs.Host, Etcd: c1}).Save(ctx, archive, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %d bytes in %v", saved.Size, saved.Took)
	put(t, kv1, 10, "/registry/later/")

	var out bytes.Buffer
	restorer := &Restorer{Node: n1.fsys, Files: nodefs.Host, Containers: k1, Probe: k1, Peers: NodeReacher{FS: n1.fsys, CertDir: testCertDir}, Local: c1,
		Disk: StatFS{}, Out: &out, Interval: 100 * time.Millisecond, Timeout: 30 * time.Second}
	_, err = restorer.Restore(ctx, archive)
	want := fmt.Sprintf("phase restore/preflight: refusing to restore, nothing was changed: members of the old etcd cluster still run and would form a split brain with the restored member: cp2 (%s)", m2.clientURL)
	if err == nil || err.Error() != want || !errors.Is(err, ErrSplitBrain) {
		t.Fatalf("restore while cp2 runs: %v\nwant %s", err, want)
	}
	if !m1.running() || !n1.fsys.Exists(staticpod.Path(staticpod.EtcdName)) {
		t.Fatal("the refusal stopped cp1")
	}

	// The user stops cp2 as the refusal's hint says.
	if err := n2.fsys.Rename(staticpod.Path(staticpod.EtcdName), StoppedManifest); err != nil {
		t.Fatal(err)
	}
	k2.sync()
	out.Reset()
	restored, err := restorer.Restore(ctx, archive)
	if err != nil {
		t.Fatalf("%v (%s)\n%s", err, hint.Of(err), out.String())
	}
	t.Logf("restore:\n%s", out.String())
	if len(restored.Others) != 1 || restored.Others[0].Name != "cp2" || !n1.fsys.Exists(restored.OldDataDir+"/member") {
		t.Errorf("restored = %+v", restored)
	}
	kv1 = m1.kv(t, n1)
	// A new cluster and member ID (RestoredClusterToken): etcd refuses the raft messages of a member of the old
	// cluster that still runs, which would otherwise win the restored member's vote and send it the old data.
	if ids := etcdIDs(t, kv1); ids.cluster == oldIDs.cluster || ids.member == oldIDs.member {
		t.Errorf("after the restore: cluster ID %x and member ID %x; before: %x and %x; want both new", ids.cluster, ids.member, oldIDs.cluster, oldIDs.member)
	}
	if got := count(t, kv1, "/registry/configmaps/"); got != 500 {
		t.Errorf("restored cluster has %d configmaps, want 500", got)
	}
	if got := count(t, kv1, "/registry/later/"); got != 0 {
		t.Errorf("restored cluster has %d later keys, want 0", got)
	}
	c1 = m1.client(t, n1)
	if members, err := c1.MemberList(ctx); err != nil || len(members) != 1 {
		t.Fatalf("members after the restore = %+v, %v", members, err)
	}

	// cp2 rejoins: a new data directory, as a learner of the restored cluster, then promoted.
	out.Reset()
	pkiBefore, _ := n2.fsys.List(testCertDir)
	rejoiner := &Rejoiner{Node: n2.fsys, Etcd: c1, Containers: k2, Out: &out, Interval: 100 * time.Millisecond, Timeout: 30 * time.Second,
		WriteManifest: func(initialCluster string) error {
			k2.setInitialCluster(initialCluster)
			return n2.fsys.WriteFile(staticpod.Path(staticpod.EtcdName), []byte(etcdManifest("cp2", m2.clientURL, m2.peerURL, initialCluster, "/var/lib/etcd")), 0o600)
		}}
	// The kubelet starts the member as soon as its manifest is back.
	stop := make(chan struct{})
	var loop sync.WaitGroup
	defer func() { close(stop); loop.Wait() }()
	loop.Add(1)
	go func() {
		defer loop.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				k2.sync()
			}
		}
	}()
	rejoined, err := rejoiner.Rejoin(ctx)
	if err != nil {
		t.Fatalf("%v (%s)\n%s", err, hint.Of(err), out.String())
	}
	t.Logf("rejoin:\n%s", out.String())
	if rejoined.OldDataDir == "" || !n2.fsys.Exists(rejoined.OldDataDir+"/member") || n2.fsys.Exists(StoppedManifest) {
		t.Errorf("rejoined = %+v", rejoined)
	}
	members, err := c1.MemberList(ctx)
	if err != nil || len(members) != 2 || slices.ContainsFunc(members, func(m etcd.Member) bool { return m.IsLearner }) {
		t.Fatalf("members after the rejoin = %+v, %v", members, err)
	}
	kv2 := m2.kv(t, n2)
	resp, err := kv2.Get(ctx, "/registry/configmaps/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
	if err != nil || resp.Count != 500 {
		t.Errorf("cp2 serves %v configmaps (%v), want 500", resp, err)
	}
	if pkiAfter, _ := n2.fsys.List(testCertDir); !slices.Equal(pkiBefore, pkiAfter) {
		t.Errorf("rejoin changed the PKI: %v -> %v", pkiBefore, pkiAfter)
	}

	// Again: nothing to do.
	out.Reset()
	again, err := rejoiner.Rejoin(ctx)
	if err != nil || !again.Already || !strings.Contains(out.String(), "is a voting member of the cluster at "+m1.clientURL+" already: nothing to do") {
		t.Errorf("second rejoin = %+v, %v\n%s", again, err, out.String())
	}
}

// etcdIDs are the cluster ID and the ID of the member that answered, from a response header.
func etcdIDs(t *testing.T, c *clientv3.Client) (ids struct{ cluster, member uint64 }) {
	t.Helper()
	resp, err := c.Get(t.Context(), "health")
	if err != nil {
		t.Fatal(err)
	}
	ids.cluster, ids.member = resp.Header.ClusterId, resp.Header.MemberId
	return ids
}
