package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
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
// writes its manifest with the member list the cluster returned, and promotes it once it has caught up.
func (r *Rejoiner) Rejoin(ctx context.Context) (*Rejoined, error) {
	start := r.now()
	m, err := findManifest(r.Node)
	if err != nil {
		return nil, err
	}
	peerURL := m.PeerURLs[0]
	own := append(slices.Clone(m.ClientURLs), m.AdvertiseClientURLs...)
	if i := slices.IndexFunc(r.Etcd.Endpoints(), func(ep string) bool { return slices.Contains(own, ep) }); i >= 0 {
		return nil, hint.With(fmt.Errorf("%s is this node's own etcd member, not the restored cluster", r.Etcd.Endpoints()[i]),
			"pass --endpoints with the client URL of the member restored on another node")
	}
	members, err := r.Etcd.MemberList(ctx)
	if err != nil {
		return nil, hint.With(err, "is the restored member running? --endpoints names it")
	}
	if i := slices.IndexFunc(members, func(x etcd.Member) bool { return slices.Contains(x.PeerURLs, peerURL) }); i >= 0 {
		if x := members[i]; x.Started() && !x.IsLearner && m.manifest != StoppedManifest {
			r.say("%s (ID %s) is a voting member of the cluster at %s already: nothing to do", m.Name, x.IDString(), strings.Join(r.Etcd.Endpoints(), ","))
			return &Rejoined{ID: x.ID, Already: true}, nil
		}
	}
	r.say("the restored cluster at %s has %d members; %s rejoins it at %s", strings.Join(r.Etcd.Endpoints(), ","), len(members), m.Name, peerURL)

	step := r.now()
	if m.manifest != StoppedManifest {
		if err := r.Node.Rename(m.manifest, StoppedManifest); err != nil {
			return nil, fmt.Errorf("stop etcd: move %s to %s: %w", m.manifest, StoppedManifest, err)
		}
	}
	restorer := &Restorer{Containers: r.Containers, Timeout: r.Timeout, Interval: r.Interval}
	undo := fmt.Sprintf("etcd is stopped: its manifest is %s", StoppedManifest)
	if err := restorer.waitStopped(ctx); err != nil {
		return nil, hint.With(err, undo)
	}
	r.say("etcd stopped (manifest moved to %s) in %s", StoppedManifest, r.since(step))
	done := &Rejoined{}
	if r.Node.Exists(m.DataDir) {
		done.OldDataDir = fmt.Sprintf("%s.before-rejoin-%s", m.DataDir, r.now().UTC().Format(timeFormat))
		if err := r.Node.Rename(m.DataDir, done.OldDataDir); err != nil {
			return nil, hint.With(fmt.Errorf("move the etcd data directory %s aside: %w", m.DataDir, err), undo)
		}
		r.say("moved the old data directory aside to %s (kept; remove it once the cluster is whole)", done.OldDataDir)
	}
	if err := r.Node.MkdirAll(m.DataDir, 0o700); err != nil {
		return nil, err
	}

	id, initialCluster, err := r.Etcd.AddLearner(ctx, m.Name, peerURL)
	if err != nil {
		return nil, hint.With(err, undo+"; run rejoin again once the restored cluster is healthy")
	}
	done.ID = id
	hexID := fmt.Sprintf("%x", id)
	r.say("added %s (ID %s) as a learner", m.Name, hexID)
	undo = fmt.Sprintf("the learner %s is in the member list; run rejoin again, or remove it with etcdctl member remove %s", hexID, hexID)
	if err := r.WriteManifest(initialCluster); err != nil {
		return nil, hint.With(err, undo)
	}
	if err := r.Node.Remove(StoppedManifest); err != nil {
		return nil, err
	}
	r.say("wrote %s: initial-cluster %s, initial-cluster-state=existing", staticpod.Path(staticpod.EtcdName), initialCluster)

	step = r.now()
	if err := r.Etcd.Promote(ctx, id); err != nil {
		if errors.Is(err, etcd.ErrMemberNotFound) {
			return nil, err
		}
		return nil, hint.With(err, "check that the kubelet runs etcd on this node (`crictl ps -a --name etcd`) and that it reaches the other members' peer URLs; then run rejoin again")
	}
	r.say("the learner caught up and was promoted to a voting member after %s", r.since(step))
	r.say("rejoin done in %s", r.since(start))
	return done, nil
}

func (r *Rejoiner) say(format string, args ...any) {
	fmt.Fprintf(r.Out, "[rejoin] "+format+"\n", args...)
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
