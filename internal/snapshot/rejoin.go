package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Membership is the restored cluster's etcd as a rejoining member uses it; *etcd.Client is one.
type Membership interface {
	MemberList(ctx context.Context) ([]etcd.Member, error)
	AddLearner(ctx context.Context, name, peerURL string) (id uint64, initialCluster string, err error)
	Promote(ctx context.Context, id uint64) error
	Endpoints() []string
}

// Rejoiner makes a former member of a restored cluster (cp2, cp3 after a restore on cp1) a member of it again:
// its old data belongs to the cluster before the restore.
type Rejoiner struct {
	// Node is the node's filesystem: its etcd manifest and data directory; nothing else is touched.
	Node       nodefs.FS
	Etcd       Membership
	Containers Containers
	// WriteManifest writes the node's etcd manifest for joining initialCluster ("name=peerURL,...") with
	// initial-cluster-state=existing: join's renderer (joinflow.WriteEtcdManifest).
	WriteManifest func(initialCluster string) error

	Out      io.Writer
	Now      func() time.Time
	Timeout  time.Duration
	Interval time.Duration
}

// Rejoined is what a rejoin did.
type Rejoined struct {
	ID uint64
	// OldDataDir is where the data directory was moved aside ("" when there was none).
	OldDataDir string
	// Already: the member was a voting member of the restored cluster already; nothing was done.
	Already bool
}

// Rejoin stops this node's etcd member (its manifest moved to StoppedManifest), moves its data directory aside
// (kept), adds the member to the restored cluster as a learner under the name and peer URL of its manifest,
// writes its manifest with the member list the cluster returned, and promotes it once it has caught up. Each
// phase says on Out what it did and how long it took; an error names its phase.
func (r *Rejoiner) Rejoin(ctx context.Context) (*Rejoined, error) {
	d := &rejoinRun{Rejoiner: r, start: r.now(), done: &Rejoined{}}
	runner := workflow.Runner[*rejoinRun]{Phases: rejoinPhases(), Out: r.Out, Now: r.Now}
	if err := runner.Run(ctx, d, workflow.Options{}); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.Out, "[rejoin] done in %s\n", r.since(d.start))
	return d.done, nil
}

// rejoinRun is one rejoin's state, passed from phase to phase.
type rejoinRun struct {
	*Rejoiner
	start time.Time
	m     *localMember
	done  *Rejoined
	// undo says how to go back once the node has changed.
	undo string
}

func rejoinPhases() []workflow.Phase[*rejoinRun] {
	return []workflow.Phase[*rejoinRun]{{
		Name: "rejoin", Short: "Make a former member a member of the restored cluster",
		Phases: []workflow.Phase[*rejoinRun]{
			{Name: "preflight", Short: "Read this node's member and the restored cluster's members", Run: rejoinPreflight},
			{Name: "member", Short: "Rejoin the restored cluster", RunIf: func(d *rejoinRun) bool { return !d.done.Already },
				Phases: []workflow.Phase[*rejoinRun]{
					{Name: "stop-etcd", Short: "Move the etcd manifest aside and wait until etcd has stopped", Run: rejoinStopEtcd},
					{Name: "data-dir", Short: "Move the data directory aside", Run: rejoinDataDir},
					{Name: "add-learner", Short: "Add the member as a learner and write its manifest", Run: rejoinAddLearner},
					{Name: "start-etcd", Short: "Wait until the kubelet runs etcd from the new manifest", Run: rejoinStartEtcd},
					{Name: "promote", Short: "Promote the learner once it has caught up", Run: rejoinPromote},
				}},
		},
	}}
}

// rejoinPreflight reads the node's member, refuses an --endpoints that is the node's own member, and finds out
// whether the member is a voting member of the restored cluster already.
func rejoinPreflight(ctx context.Context, d *rejoinRun) error {
	m, err := findManifest(d.Node)
	if err != nil {
		return err
	}
	d.m = m
	own := append(slices.Clone(m.ClientURLs), m.AdvertiseClientURLs...)
	if i := slices.IndexFunc(d.Etcd.Endpoints(), func(ep string) bool { return slices.Contains(own, ep) }); i >= 0 {
		return hint.With(fmt.Errorf("%s is this node's own etcd member, not the restored cluster", d.Etcd.Endpoints()[i]),
			"pass --endpoints with the client URL of the member restored on another node")
	}
	members, err := d.Etcd.MemberList(ctx)
	if err != nil {
		return hint.With(err, "is the restored member running? --endpoints names it")
	}
	peerURL := m.PeerURLs[0]
	if i := slices.IndexFunc(members, func(x etcd.Member) bool { return slices.Contains(x.PeerURLs, peerURL) }); i >= 0 {
		if x := members[i]; x.Started() && !x.IsLearner && m.manifest != StoppedManifest {
			d.say("%s (ID %s) is a voting member of the cluster at %s already: nothing to do", m.Name, x.IDString(), strings.Join(d.Etcd.Endpoints(), ","))
			d.done.ID, d.done.Already = x.ID, true
			return nil
		}
	}
	d.say("the restored cluster at %s has %d members; %s rejoins it at %s", strings.Join(d.Etcd.Endpoints(), ","), len(members), m.Name, peerURL)
	return nil
}

func rejoinStopEtcd(ctx context.Context, d *rejoinRun) error {
	if d.m.manifest != StoppedManifest {
		if err := d.Node.Rename(d.m.manifest, StoppedManifest); err != nil {
			return fmt.Errorf("stop etcd: move %s to %s: %w", d.m.manifest, StoppedManifest, err)
		}
	}
	d.undo = fmt.Sprintf("etcd is stopped: its manifest is %s", StoppedManifest)
	waiter := &Restorer{Containers: d.Containers, Timeout: d.Timeout, Interval: d.Interval}
	if err := waiter.waitStopped(ctx); err != nil {
		return hint.With(err, d.undo)
	}
	d.say("etcd stopped (manifest moved to %s)", StoppedManifest)
	if err := removeExitedEtcd(ctx, d.Containers, d.say); err != nil {
		return hint.With(err, d.undo)
	}
	return nil
}

// rejoinDataDir moves the old data directory aside: its data is the cluster's before the restore.
func rejoinDataDir(_ context.Context, d *rejoinRun) error {
	dataDir := d.m.DataDir
	old, err := moveAside(d.Node, dataDir, "before-rejoin-"+d.now().UTC().Format(timeFormat))
	if err != nil {
		return hint.With(err, d.undo)
	}
	if old != "" {
		d.done.OldDataDir = old
		d.say("moved the old data directory aside to %s (kept; remove it once the cluster is whole)", old)
	}
	return d.Node.MkdirAll(dataDir, 0o700)
}

// rejoinAddLearner adds the member as a learner and writes its manifest with the members etcd returned; the
// kubelet then starts it.
func rejoinAddLearner(ctx context.Context, d *rejoinRun) error {
	peerURL := d.m.PeerURLs[0]
	id, initialCluster, err := d.Etcd.AddLearner(ctx, d.m.Name, peerURL)
	if err != nil {
		return hint.With(err, d.undo+"; run rejoin again once the restored cluster is healthy")
	}
	d.done.ID = id
	hexID := fmt.Sprintf("%x", id)
	d.say("added %s (ID %s) as a learner at %s", d.m.Name, hexID, peerURL)
	d.undo = fmt.Sprintf("the learner %s is in the member list; run rejoin again, or remove it with etcdctl member remove %s", hexID, hexID)
	if err := d.WriteManifest(initialCluster); err != nil {
		return hint.With(err, d.undo)
	}
	if err := d.Node.Remove(StoppedManifest); err != nil {
		return err
	}
	d.say("wrote %s: initial-cluster %s, initial-cluster-state=existing", staticpod.Path(staticpod.EtcdName), initialCluster)
	return nil
}

// rejoinStartEtcd waits until the kubelet runs the new etcd container, within the wait timeout: the kubelet, whose
// own API server has no etcd while this one is down, may take a while (seen in TestHA: 54 s to 2 minutes on the
// first node to rejoin, most of it the crash-loop back-off that the stop phase now takes away by removing the
// exited container), and promote's bound is for the learner to catch up, not for that.
func rejoinStartEtcd(ctx context.Context, d *rejoinRun) error {
	start := d.now()
	stopLocalAPIServer(ctx, d)
	waiter := &Restorer{Containers: d.Containers, Timeout: d.Timeout, Interval: d.Interval}
	id, err := waiter.waitRunning(ctx)
	if err != nil {
		return hint.With(err, d.undo+"; look at the kubelet's log, and at `crictl ps -a --name etcd`")
	}
	d.say("the kubelet started etcd (container %.13s) after %s", id, d.since(start))
	return nil
}

// stopLocalAPIServer stops this node's kube-apiserver, when containers can stop: it has had no etcd since the
// member stopped, and the kubelet's calls through it (a control plane's kubelet.conf points at it), such as the
// delete of etcd's old mirror Pod, wait for their timeout before the kubelet starts the new member (seen in
// TestHA: two such timeouts, 58.5 s in all). Stopped, it refuses them at once; the kubelet starts it again after
// its back-off, by which time etcd runs. Only stopped, not removed: a removed one would be started again at once,
// without etcd. A failure here only costs that time, so it is reported and the rejoin goes on.
func stopLocalAPIServer(ctx context.Context, d *rejoinRun) {
	s, ok := d.Containers.(cri.ContainerStopper)
	if !ok {
		return
	}
	ids, err := cri.RunningInKubeSystem(ctx, d.Containers, staticpod.APIServerName)
	if err != nil {
		d.say("WARNING: could not list this node's kube-apiserver containers (%v): the kubelet's calls through it may hold etcd's start", err)
		return
	}
	for _, id := range ids {
		if err := s.StopContainer(ctx, id, cri.APIServerStopGrace); err != nil {
			d.say("WARNING: could not stop this node's kube-apiserver (container %.13s): %v", id, err)
			continue
		}
		d.say("stopped this node's kube-apiserver (container %.13s), which has no etcd until the new member runs, so that the kubelet's calls through it fail at once instead of holding etcd's start; the kubelet starts it again", id)
	}
}

// rejoinPromote promotes the learner; etcd refuses until it has caught up with the leader, and Promote retries.
func rejoinPromote(ctx context.Context, d *rejoinRun) error {
	if err := d.Etcd.Promote(ctx, d.done.ID); err != nil {
		if errors.Is(err, etcd.ErrMemberNotFound) {
			return err
		}
		return hint.With(err, "check that the kubelet runs etcd on this node (`crictl ps -a --name etcd`) and that it reaches the other members' peer URLs; then run rejoin again")
	}
	d.say("the learner caught up and is a voting member now")
	return nil
}

func (r *Rejoiner) say(format string, args ...any) {
	fmt.Fprintf(r.Out, "  "+format+"\n", args...)
}

func (r *Rejoiner) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Rejoiner) since(t time.Time) time.Duration {
	return r.now().Sub(t).Round(10 * time.Millisecond)
}
