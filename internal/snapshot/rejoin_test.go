package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// fakeMembership is the restored cluster, recording what a rejoin asks.
type fakeMembership struct {
	fx        *effects
	endpoints []string
	members   []etcd.Member
}

func (f *fakeMembership) MemberList(context.Context) ([]etcd.Member, error) {
	f.fx.log = append(f.fx.log, "member list")
	return f.members, nil
}

func (f *fakeMembership) AddLearner(_ context.Context, name, peerURL string) (uint64, string, error) {
	f.fx.log = append(f.fx.log, "add learner "+name+" "+peerURL)
	return 0x42, "cp1=https://10.77.0.10:2380," + name + "=" + peerURL, nil
}

func (f *fakeMembership) Promote(_ context.Context, id uint64) error {
	f.fx.log = append(f.fx.log, fmt.Sprintf("promote %x", id))
	return nil
}

func (f *fakeMembership) Endpoints() []string { return f.endpoints }

const (
	cp2Client = "https://10.77.0.11:2379"
	cp2Peer   = "https://10.77.0.11:2380"
)

func newRejoinNode(t *testing.T) (*restoreNode, *Rejoiner, *bytes.Buffer) {
	t.Helper()
	n := newRestoreNode(t)
	if err := n.fsys.WriteFile(staticpod.Path(staticpod.EtcdName), []byte(etcdManifest("cp2", cp2Client, cp2Peer, "cp1="+cp1Peer+",cp2="+cp2Peer, "/var/lib/etcd")), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	clock := saveTime.Add(time.Hour)
	api := &fakeMembership{fx: n.fx, endpoints: []string{cp1Client}, members: []etcd.Member{cp1}}
	r := &Rejoiner{Node: n.fsys, Etcd: api, Containers: n.fx, Out: &out, Interval: time.Millisecond, Timeout: time.Second,
		Now: func() time.Time { clock = clock.Add(time.Second); return clock },
		WriteManifest: func(initialCluster string) error {
			n.fx.log = append(n.fx.log, "write manifest "+initialCluster)
			return n.fsys.WriteFile(staticpod.Path(staticpod.EtcdName), []byte("new manifest "+initialCluster), 0o600)
		}}
	return n, r, &out
}

func TestRejoinOrderOfEffects(t *testing.T) {
	n, r, out := newRejoinNode(t)
	before := tree(t, n.fsys.Root)
	done, err := r.Rejoin(t.Context())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantLog := []string{
		"member list",
		"list containers kube-system/etcd",
		"add learner cp2 " + cp2Peer,
		"write manifest cp1=" + cp1Peer + ",cp2=" + cp2Peer,
		"list containers kube-system/etcd",
		"promote 42",
	}
	if diff := cmp.Diff(wantLog, n.fx.log); diff != "" {
		t.Errorf("effects (-want +got):\n%s", diff)
	}
	old := "/var/lib/etcd.before-rejoin-20261203T203007Z"
	if done.OldDataDir != old || done.ID != 0x42 {
		t.Errorf("rejoined = %+v", done)
	}
	// Only the manifest and the data directory change.
	want := map[string]string{}
	for p, data := range before {
		switch {
		case strings.HasPrefix(p, "/var/lib/etcd/"):
			want[old+strings.TrimPrefix(p, "/var/lib/etcd")] = data
		case p == staticpod.Path(staticpod.EtcdName):
			want[p] = "new manifest cp1=" + cp1Peer + ",cp2=" + cp2Peer
		default:
			want[p] = data
		}
	}
	if diff := cmp.Diff(want, tree(t, n.fsys.Root)); diff != "" {
		t.Errorf("node after the rejoin (-want +got):\n%s", diff)
	}
	if !n.fsys.Exists("/var/lib/etcd") {
		t.Error("no new data directory")
	}
}

func TestRejoinRefusesItsOwnMember(t *testing.T) {
	n, r, _ := newRejoinNode(t)
	r.Etcd.(*fakeMembership).endpoints = []string{cp2Client}
	before := tree(t, n.fsys.Root)
	_, err := r.Rejoin(t.Context())
	if want := "phase rejoin/preflight: " + cp2Client + " is this node's own etcd member, not the restored cluster"; err == nil || err.Error() != want ||
		hint.Of(err) != "pass --endpoints with the client URL of the member restored on another node" {
		t.Fatalf("error = %v, want %s", err, want)
	}
	if diff := cmp.Diff(before, tree(t, n.fsys.Root)); diff != "" || len(n.fx.log) > 0 {
		t.Errorf("the refusal changed the node: %s %v", diff, n.fx.log)
	}
}

// A kubelet that never starts the new etcd: the rejoin stops before promote, saying where the learner is.
func TestRejoinKubeletNeverStartsEtcd(t *testing.T) {
	n, r, out := newRejoinNode(t)
	r.WriteManifest = func(string) error { return nil } // nothing for the kubelet to start
	_, err := r.Rejoin(t.Context())
	want := "phase rejoin/member/start-etcd: the kubelet did not start etcd within 1s: no etcd container runs yet"
	if err == nil || err.Error() != want || !strings.Contains(hint.Of(err), "the learner 42 is in the member list") {
		t.Fatalf("error = %v\nhint: %s\nwant %s\n%s", err, hint.Of(err), want, out)
	}
	for _, e := range n.fx.log {
		if strings.HasPrefix(e, "promote") {
			t.Errorf("promoted a learner whose etcd never ran: %v", n.fx.log)
		}
	}
}

// With a runtime that stops and removes containers, the stopped member's exited container goes as soon as it has
// stopped, before the new manifest is written (the kubelet would otherwise hold the new member back by its
// crash-loop back-off when the manifest matches the old one), and this node's API server is stopped once the new
// manifest is there.
func TestRejoinRemovesTheExitedMember(t *testing.T) {
	n, r, out := newRejoinNode(t)
	r.Containers = stoppingEffects{n.fx}
	if _, err := r.Rejoin(t.Context()); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantLog := []string{
		"member list",
		"list containers kube-system/etcd",
		"list containers kube-system/etcd",
		"remove c0ffee",
		"add learner cp2 " + cp2Peer,
		"write manifest cp1=" + cp1Peer + ",cp2=" + cp2Peer,
		// This node's API server, without etcd until now, is stopped so that the kubelet's calls through it fail
		// at once.
		"list containers kube-system/kube-apiserver",
		"stop c0ffee (grace 5s)",
		"list containers kube-system/etcd",
		"promote 42",
	}
	if diff := cmp.Diff(wantLog, n.fx.log); diff != "" {
		t.Errorf("effects (-want +got):\n%s", diff)
	}
	if !strings.Contains(out.String(), "stopped this node's kube-apiserver (container c0ffee)") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(out.String(), "removed 1 exited etcd container(s)") {
		t.Errorf("output:\n%s", out)
	}
}
