package joinflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// EtcdCluster is the cluster's etcd as a joining control-plane node uses it; *etcd.Client is one. Tests put a
// fake here.
type EtcdCluster interface {
	MemberList(ctx context.Context) ([]etcd.Member, error)
	Status(ctx context.Context) ([]etcd.MemberStatus, error)
	CheckQuorumSafeToAdd(ctx context.Context) error
	AddLearner(ctx context.Context, name, peerURL string) (id uint64, initialCluster string, err error)
	Promote(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
	Endpoints() []string
	Close() error
}

func newEtcdClient(opts etcd.Options) (EtcdCluster, error) {
	c, err := etcd.New(opts)
	if err != nil {
		return nil, err // not c: a nil *etcd.Client in the interface would not compare equal to nil
	}
	return c, nil
}

// defaultMirrorPodLag is the kubelet's default syncFrequency.
const defaultMirrorPodLag = time.Minute

// etcdCluster connects to the cluster's etcd as the control-plane node whose files are in fsys: the members'
// client URLs come from the annotations of the etcd Pods (read with admin.conf), the client certificate is
// etcd/healthcheck-client (or apiserver-etcd-client).
func (d *Data) etcdCluster(ctx context.Context, fsys nodefs.FS, cp *controlPlaneJoin) (EtcdCluster, error) {
	admin, err := d.adminClient(fsys)
	if err != nil {
		return nil, err
	}
	// The etcd mirror Pods may lag the first control plane's init by up to the kubelet's syncFrequency (a kubelet
	// whose static Pods run steadily creates their mirror Pods at its next periodic sync after its Node registers;
	// seen in the lab: a join right after init waited a minute). Until they are there the API servers' addresses
	// stand in for them (etcd.MemberEndpoints), so this waits only when neither is: one such period longer than an
	// API call.
	timeouts := cp.node.Timeouts
	lag := d.MirrorPodLag
	if lag <= 0 {
		lag = defaultMirrorPodLag
	}
	actx, cancel := context.WithTimeout(ctx, timeouts.KubernetesAPICall.Duration+lag)
	defer cancel()
	endpoints, fromAPIServers, err := etcd.MemberEndpoints(actx, admin)
	if err != nil {
		return nil, err
	}
	if fromAPIServers {
		fmt.Fprintf(d.Out, "  no etcd Pod is in the API yet (the kubelet creates its mirror Pod after its Node registers): reaching the stacked etcd members at the API servers' addresses, %s\n",
			strings.Join(endpoints, ","))
	}
	opts, err := etcd.Options{Endpoints: endpoints, CallTimeout: timeouts.EtcdAPICall.Duration}.WithClientTLS(fsys, cp.cluster.CertificatesDir)
	if err != nil {
		return nil, err
	}
	newEtcd := d.NewEtcd
	if newEtcd == nil {
		newEtcd = newEtcdClient
	}
	return newEtcd(opts)
}

// runEtcdJoin is etcd-join: it adds this node's etcd member.
func runEtcdJoin(ctx context.Context, d *Data) error {
	return joinEtcd(ctx, d)
}

// joinEtcd adds this node's etcd member the way kubeadm does: as a learner (it cannot vote, so a member that
// never starts cannot cost the cluster its quorum), then its static Pod with the member list etcd returned and
// initial-cluster-state=existing, then, once the member runs and follows the leader, its promotion to a voter.
func joinEtcd(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	cluster, node := cp.cluster, cp.node
	if cluster.Etcd.External != nil {
		fmt.Fprintln(d.Out, "  the cluster uses an external etcd: this node runs no etcd member")
		return nil
	}
	name := node.Registration.Name
	peerURL := staticpod.EtcdPeerURL(node.LocalAPIEndpoint.AdvertiseAddress)
	ec, err := d.etcdCluster(ctx, d.FS, cp)
	if err != nil {
		return err
	}
	defer ec.Close()

	if d.DryRun {
		members, err := ec.MemberList(ctx)
		if err != nil {
			return err
		}
		initial := make([]manifests.EtcdMember, 0, len(members)+1)
		for _, m := range members {
			if m.PeerURL() != peerURL {
				initial = append(initial, manifests.EtcdMember{Name: orElse(m.Name, m.IDString()), PeerURL: m.PeerURL()})
			}
		}
		initial = append(initial, manifests.EtcdMember{Name: name, PeerURL: peerURL})
		if err := writeEtcdManifest(d, cp, initial); err != nil {
			return err
		}
		fmt.Fprintf(d.Out, "  dry run: would add %s as an etcd learner at %s through %s, wait for it to run, and promote it\n",
			name, peerURL, strings.Join(ec.Endpoints(), ","))
		return nil
	}

	admin, err := d.adminClient(d.FS)
	if err != nil {
		return err
	}
	turnStart := time.Now()
	turn, err := etcd.TakeTurn(ctx, etcd.TurnOptions{Client: admin, Holder: name, Out: d.Out, Interval: d.turnInterval()})
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := turn.Release(rctx); err != nil {
			fmt.Fprintf(d.Out, "  WARNING: %v\n", err)
		}
	}()
	if waited := time.Since(turnStart); waited > time.Second {
		fmt.Fprintf(d.Out, "  took the turn to add an etcd member after %s\n", waited.Round(10*time.Millisecond))
	}
	if turn.Stale != "" && turn.Stale != peerURL {
		if err := removeStaleLearner(ctx, d, ec, turn.Stale); err != nil {
			return err
		}
	}

	id, initialCluster, err := addLearnerInTurn(ctx, d, ec, name, peerURL)
	if err != nil {
		return err
	}
	hexID := fmt.Sprintf("%x", id)
	fmt.Fprintf(d.Out, "  added etcd member %s (ID %s) as a learner at %s through %s\n", name, hexID, peerURL, strings.Join(ec.Endpoints(), ","))
	if err := turn.Record(ctx, peerURL); err != nil {
		fmt.Fprintf(d.Out, "  WARNING: note the learner on the Lease kube-system/%s: %v\n", etcd.TurnLease, err)
	}
	// From here on a failure, or an interruption, takes the learner out again: a learner that never becomes a
	// voter would only hold the next control plane's turn.
	promoted := false
	defer func() {
		if promoted {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := ec.Remove(rctx, id); err != nil {
			fmt.Fprintf(d.Out, "  WARNING: the learner %s stays in the etcd member list: %v; `kubeboot reset` on this node removes it\n", hexID, err)
			return
		}
		if err := d.FS.Remove(staticpod.Path(staticpod.EtcdName)); err != nil {
			fmt.Fprintf(d.Out, "  WARNING: remove %s: %v\n", staticpod.Path(staticpod.EtcdName), err)
		}
		fmt.Fprintf(d.Out, "  the join did not finish: removed the learner %s from the etcd member list, and this node's etcd manifest\n", hexID)
	}()
	initial, err := ParseInitialCluster(initialCluster)
	if err != nil {
		return err
	}
	if err := d.FS.MkdirAll(cluster.Etcd.Local.DataDir, 0o700); err != nil {
		return fmt.Errorf("create the etcd data directory: %w", err)
	}
	if files := d.pendingKubelet; files != nil {
		// kubelet-start left the kubelet's start to here (Select).
		d.pendingKubelet = nil
		if err := startKubelet(ctx, d, *files); err != nil {
			return err
		}
	}
	if err := writeEtcdManifest(d, cp, initial); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  wrote %s: member %s of %d, initial-cluster-state=existing\n", staticpod.Path(staticpod.EtcdName), name, len(initial))
	if d.apiServerAfterEtcd(cp) {
		if err := writeAPIServer(ctx, d, cp); err != nil {
			return err
		}
	}

	start := time.Now()
	startTimeout := node.Timeouts.ControlPlaneComponentHealthCheck.Duration
	if err := waitMemberRunning(ctx, d, ec, id, node.Registration.CRISocket, startTimeout); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  the etcd learner %s runs and follows the leader after %s\n", hexID, time.Since(start).Round(10*time.Millisecond))
	if err := turn.Lost(); err != nil {
		return err
	}
	start = time.Now()
	if err := ec.Promote(ctx, id); err != nil {
		return err
	}
	promoted = true
	fmt.Fprintf(d.Out, "  promoted etcd member %s to a voting member after %s\n", hexID, time.Since(start).Round(10*time.Millisecond))
	return nil
}

// addLearnerInTurn adds the learner; while etcd refuses because another learner is there (a join that does not
// take turns, such as upstream kubeadm's), it waits for that one's promotion, naming it, for as long as a turn
// may be waited for.
func addLearnerInTurn(ctx context.Context, d *Data, ec EtcdCluster, name, peerURL string) (uint64, string, error) {
	deadline := time.Now().Add(etcd.DefaultTurnWait)
	said := ""
	for {
		id, initialCluster, err := ec.AddLearner(ctx, name, peerURL)
		if !errors.Is(err, rpctypes.ErrTooManyLearners) || time.Now().After(deadline) {
			return id, initialCluster, err
		}
		other := "another member"
		if members, lerr := ec.MemberList(ctx); lerr == nil {
			if i := slices.IndexFunc(members, func(m etcd.Member) bool { return m.IsLearner }); i >= 0 {
				other = fmt.Sprintf("%s (ID %s, %s)", orElse(members[i].Name, "not started yet"), members[i].IDString(), members[i].PeerURL())
			}
		}
		if other != said {
			fmt.Fprintf(d.Out, "  etcd takes one learner at a time: waiting for the learner %s to be promoted\n", other)
			said = other
		}
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(d.turnInterval()):
		}
	}
}

// removeStaleLearner removes the learner at peerURL that a join which lost its turn left behind, if it is still a
// learner: one that was promoted is a member like any other.
func removeStaleLearner(ctx context.Context, d *Data, ec EtcdCluster, peerURL string) error {
	members, err := ec.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.PeerURL() == peerURL && m.IsLearner {
			if err := ec.Remove(ctx, m.ID); err != nil {
				return fmt.Errorf("remove the learner %s at %s, left by a join whose turn ran out: %w", m.IDString(), peerURL, err)
			}
			fmt.Fprintf(d.Out, "  removed the learner %s at %s: the join that added it lost its turn before promoting it\n", m.IDString(), peerURL)
		}
	}
	return nil
}

func orElse(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// ParseInitialCluster splits etcd's --initial-cluster ("name=peerURL,...", what etcd.Client.AddLearner returns).
func ParseInitialCluster(s string) ([]manifests.EtcdMember, error) {
	var out []manifests.EtcdMember
	for _, part := range strings.Split(s, ",") {
		name, peer, ok := strings.Cut(part, "=")
		if !ok || name == "" || peer == "" {
			return nil, fmt.Errorf("etcd returned the member list %q, which has an entry that is not name=peerURL", s)
		}
		out = append(out, manifests.EtcdMember{Name: name, PeerURL: peer})
	}
	return out, nil
}

// writeEtcdManifest writes etcd.yaml for this node joining initial (WriteEtcdManifest).
func writeEtcdManifest(d *Data, cp *controlPlaneJoin, initial []manifests.EtcdMember) error {
	return WriteEtcdManifest(d.FS, d.Out, cp.cluster, cp.node, initial)
}

// WriteEtcdManifest writes the etcd static Pod of node joining the members initial (which include it) with
// initial-cluster-state=existing, with the node's etcd patches applied (reported on out): the manifest of
// join's etcd-join phase, and of a former member rejoining a restored cluster (`etcd snapshot rejoin`).
func WriteEtcdManifest(fsys nodefs.FS, out io.Writer, cluster *config.Cluster, node *config.Node, initial []manifests.EtcdMember) error {
	pod, err := manifests.Etcd(cluster, node, initial)
	if err != nil {
		return err
	}
	set, err := patches.LoadConfigured(fsys, node.Patches)
	if err != nil {
		return fmt.Errorf("write static Pod manifest for %s: %w", staticpod.EtcdName, err)
	}
	pod, applied, err := manifests.PatchPod(set, pod)
	if err != nil {
		return err
	}
	initflow.ReportPatches(out, applied)
	return manifests.Write(fsys, staticpod.EtcdName, pod)
}

// waitMemberRunning polls the member list and the members' status until the member id has started (it has
// published its name and client URL) and answers with a leader it follows: only then can it be promoted. A learner
// that waits on its own publish is restarted once (see publishWatch).
func waitMemberRunning(ctx context.Context, d *Data, ec EtcdCluster, id uint64, criSocket string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(d.interval())
	defer t.Stop()
	last := "not asked yet"
	pw := publishWatch{d: d, id: id, criSocket: criSocket}
	for {
		// Bounded: a member that accepts connections but does not serve yet holds each status call for the whole
		// handshake timeout, and a learner waiting on its own publish is found by polls.
		sctx, scancel := context.WithTimeout(ctx, memberPollBound)
		statuses, err := ec.Status(sctx)
		scancel()
		switch i := slices.IndexFunc(statuses, func(s etcd.MemberStatus) bool { return s.ID == id }); {
		case err != nil:
			last = err.Error()
		case i < 0:
			last = "it is not in the member list any more"
		case statuses[i].Healthy:
			return nil
		default:
			last = statuses[i].Problem
			if !statuses[i].Serving {
				pw.check(ctx)
			}
		}
		select {
		case <-ctx.Done():
			if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return ctx.Err()
			}
			return fmt.Errorf("the new etcd member %x did not start within %s (timeouts.controlPlaneComponentHealthCheck): %s; check that "+
				"the kubelet runs the static Pod %s and that the member reaches the other members' peer URLs (port %d)",
				id, timeout, last, staticpod.Path(staticpod.EtcdName), staticpod.EtcdPeerPort)
		case <-t.C:
		}
	}
}

// memberPollBound bounds each status call while a new member starts.
const memberPollBound = 500 * time.Millisecond

// publishGrace is how long a new member that has installed its leader's snapshot may take to serve clients before it
// counts as waiting on its own publish: it normally serves within tens of milliseconds of the snapshot (50 ms in the lab).
const publishGrace = 500 * time.Millisecond

// publishWatch finds a learner that waits on its own publish, and restarts it. A new member of etcd 3.6 or later
// always installs its leader's snapshot (the leader's raft log no longer starts at its first entry after its first
// hundred). It proposes its publish (name and client URLs) as soon as it knows the leader; when the leader commits
// that entry and then sends a snapshot that already holds it, the member applies the publish through the snapshot
// and never sees its own request applied. The member list shows it published, but the member serves no client
// until etcd gives up on the request and publishes again, after its request timeout (7 s with kubeadm's flags;
// "failed to publish local member to cluster through raft" in its log), and the next control plane's turn waits.
// Seen in the lab on about one learner in two. A restarted member has the snapshot on disk and publishes at once;
// the kubelet starts its container again without back-off once it is removed. Once per join; anything that does
// not work here leaves the member to etcd's own retry.
type publishWatch struct {
	d         *Data
	id        uint64
	criSocket string

	snapshotSeen time.Time // when the member was first seen with the leader's snapshot installed
	done         bool
}

func (w *publishWatch) check(ctx context.Context) {
	if w.done {
		return
	}
	snapshots := w.d.LearnerSnapshots
	if snapshots == nil {
		snapshots = func(ctx context.Context) (int, error) {
			return etcd.SnapshotsReceived(ctx, staticpod.EtcdMetricsURL("127.0.0.1"))
		}
	}
	if n, err := snapshots(ctx); err != nil || n == 0 {
		return // not started yet, or still waiting for the snapshot
	}
	now := time.Now()
	if w.snapshotSeen.IsZero() {
		w.snapshotSeen = now
	}
	if now.Sub(w.snapshotSeen) < publishGrace {
		return
	}
	w.done = true
	if w.d.DialRuntime == nil {
		return
	}
	rt, err := w.d.DialRuntime(ctx, w.criSocket)
	if err != nil {
		fmt.Fprintf(w.d.Out, "  WARNING: the etcd learner %x has the leader's snapshot but serves no client after %s, "+
			"and the container runtime cannot be reached to restart it (%v): etcd tries again after its request timeout\n", w.id, publishGrace, err)
		return
	}
	defer rt.Close()
	stopper, ok := rt.(cri.ContainerStopper)
	if !ok {
		return
	}
	ids, err := cri.RunningInKubeSystem(ctx, rt, staticpod.EtcdName)
	if err != nil || len(ids) != 1 {
		fmt.Fprintf(w.d.Out, "  WARNING: the etcd learner %x has the leader's snapshot but serves no client after %s, "+
			"and its container was not found to restart it (%d running, %v): etcd tries again after its request timeout\n", w.id, publishGrace, len(ids), err)
		return
	}
	if _, err := cri.Recycle(ctx, stopper, ids[0], etcdStopGrace); err != nil {
		fmt.Fprintf(w.d.Out, "  WARNING: restart the etcd learner %x (container %.13s): %v: etcd tries again after its request timeout\n", w.id, ids[0], err)
		return
	}
	fmt.Fprintf(w.d.Out, "  the etcd learner %x has the leader's snapshot but serves no client: it waits on its own publish, which "+
		"came to it through the snapshot (etcd gives up on it only after its request timeout); restarted its container %.13s, "+
		"which publishes at once\n", w.id, ids[0])
}

// etcdStopGrace is what a learner being restarted gets to exit: none, it is killed. It serves no client and does not
// vote, etcd recovers from a kill as from a crash (its log and snapshot are synced), and on SIGTERM it waits out its
// own publish request first (seen in the lab: 6 s from the stop to the next container, most of etcd's 7 s retry).
const etcdStopGrace = 0
