package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/reset"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/waiter"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// StoppedManifest is where restore and rejoin move the etcd manifest to stop the member (the kubelet stops a
// static Pod whose file leaves its directory), and where they find it if it was moved there before: by an
// interrupted run, or by the user stopping the other members before a restore.
var StoppedManifest = path.Join(path.Dir(staticpod.Dir), staticpod.EtcdName+".yaml.stopped")

// Containers lists the node's containers (*cri.Client is one): a stopped etcd is one with no running container.
type Containers interface {
	ListContainers(ctx context.Context, labels map[string]string) ([]cri.Container, error)
}

// Prober says whether a component of this node is healthy (restart.NodeProber is one).
type Prober interface {
	Probe(ctx context.Context, component string) error
}

// Reacher says which etcd client URLs answer, with a TLS handshake (NodeReacher is one).
type Reacher interface {
	Reach(ctx context.Context, endpoints []string) map[string]error
}

// Local lists the members as this node's etcd member knows them, without quorum (*etcd.Client's
// LocalMemberList): the members of the cluster now, which may be more than the snapshot's.
type Local interface {
	LocalMemberList(ctx context.Context) ([]etcd.Member, error)
}

// Disk says how much space is free for a path (StatFS is one).
type Disk interface {
	Free(path string) (uint64, error)
}

// Defaults of a Restorer.
const (
	DefaultTimeout  = 4 * time.Minute
	defaultInterval = 500 * time.Millisecond
	// spaceFactor: the new data directory needs the snapshot's size and room for the WAL and for writes after.
	spaceFactor = 1.5
)

// ErrSplitBrain is wrapped when members of the old cluster still run.
var ErrSplitBrain = errors.New("members of the old etcd cluster still run")

// ErrNoSpace is wrapped when the new data directory would not fit.
var ErrNoSpace = errors.New("not enough free disk space")

// Restorer restores an archive on a control-plane node. Every check runs before anything is stopped.
type Restorer struct {
	// Node is the node's filesystem: the manifests, the PKI, the etcd data directory.
	Node nodefs.FS
	// Files is where the archive is read (nodefs.Host for the paths users give).
	Files nodefs.FS
	// Key decrypts an encrypted archive.
	Key []byte
	// Force restores a snapshot of another cluster (a different CA).
	Force bool

	Containers Containers
	Probe      Prober
	// Diagnose explains a component that does not turn healthy (its container's state and last log lines); nil:
	// the probe's last error alone.
	Diagnose waiter.Diagnoser
	Peers    Reacher
	// Local asks this node's running member for the current members; nil, or a member that does not answer,
	// leaves the snapshot's members and the manifest's to check.
	Local Local
	Disk  Disk
	// RestoreDataDir makes the new data directory (RestoreDataDir when nil).
	RestoreDataDir func(db string, dir DataDir) error
	// Init, when set, lets a restore on a machine with no control plane (FreshMachine) rebuild one from the
	// archive: it builds init's configuration from the archive's.
	Init InitFunc

	// Out gets a line per step, with its time.
	Out io.Writer
	Now func() time.Time
	// Timeout bounds each wait (etcd stopped, etcd healthy, the API server ready); 0: DefaultTimeout.
	Timeout  time.Duration
	Interval time.Duration
}

// Restored is what a restore did.
type Restored struct {
	Metadata Metadata
	// OldDataDir is where the data directory was moved aside ("" when there was none).
	OldDataDir string
	// Others are the other members of the snapshot's cluster, to rejoin.
	Others []Member
	// ClientURL is this member's client URL, the endpoint for their rejoin.
	ClientURL string
}

// localMember is this node's etcd member as its manifest describes it, and where the manifest is.
type localMember struct {
	*reset.EtcdMember
	manifest string
	certDir  string
}

// LocalMember is this node's etcd member as its manifest says, read from the manifests directory or, when only
// that exists, from StoppedManifest; and the manifest's path.
func LocalMember(fsys nodefs.FS) (*reset.EtcdMember, string, error) {
	m, err := findManifest(fsys)
	if err != nil {
		return nil, "", err
	}
	return m.EtcdMember, m.manifest, nil
}

// findManifest reads this node's etcd manifest from the manifests directory, or from StoppedManifest when only
// that exists.
func findManifest(fsys nodefs.FS) (*localMember, error) {
	file := staticpod.Path(staticpod.EtcdName)
	if !fsys.Exists(file) && fsys.Exists(StoppedManifest) {
		file = StoppedManifest
	}
	mf, err := staticpod.ReadFile(fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, hint.With(fmt.Errorf("this node runs no stacked etcd member: %w", err),
			"run this on a control-plane node with stacked etcd (its "+staticpod.Path(staticpod.EtcdName)+")")
	}
	if err != nil {
		return nil, err
	}
	m, err := reset.EtcdMemberOf(mf)
	if err != nil {
		return nil, err
	}
	if m.Name == "" || len(m.PeerURLs) == 0 {
		return nil, fmt.Errorf("%s: no --name or --initial-advertise-peer-urls", file)
	}
	certDir, err := m.CertDir()
	if err != nil {
		return nil, err
	}
	return &localMember{EtcdMember: m, manifest: file, certDir: certDir}, nil
}

// Restore restores the archive file on this node, refusing before it stops anything when the archive is corrupt,
// of another cluster (unless Force), when members of the old cluster still run (a split brain), or when the new
// data directory would not fit. Then it stops the node's etcd (its manifest moved to StoppedManifest), moves the
// data directory aside (kept: Restored.OldDataDir), restores the snapshot into a new one as a one-member cluster
// of this node's member, puts the manifest back and waits until etcd is healthy and the API server ready. Each
// phase (RestorePhases) says on Out what it did and how long it took; an error names its phase.
//
// On a machine with no control plane (FreshMachine) and with Init set, it rebuilds one instead: it installs the
// archive's PKI, restores the snapshot into the data directory of this node's member as init's manifest will run
// it, and runs init's phases that write files and start the kubelet, then waits for the control plane. The
// cluster's objects are the snapshot's, so a worker whose CA and tokens are the archive's is Ready again
// without joining anew.
func (r *Restorer) Restore(ctx context.Context, file string) (*Restored, error) {
	if r.Init != nil && FreshMachine(r.Node) {
		return r.rebuild(ctx, file)
	}
	d := &restoreRun{Restorer: r, file: file, start: r.now()}
	defer func() {
		if d.staged != "" {
			os.Remove(d.staged)
		}
	}()
	runner := workflow.Runner[*restoreRun]{Phases: restorePhases(), Out: r.Out, Now: r.Now}
	if err := runner.Run(ctx, d, workflow.Options{}); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.Out, "[restore] done in %s\n", r.since(d.start))
	return d.restored, nil
}

// restoreRun is one restore's state, passed from phase to phase.
type restoreRun struct {
	*Restorer
	file  string
	start time.Time
	m     *localMember
	// staged is the snapshot.db extracted beside the data directory.
	staged   string
	contents *Contents
	restored *Restored
	// undo says how to go back once the node has changed.
	undo string
}

// RestorePhases names the phases of a restore, in order: the first two only read and refuse.
func RestorePhases() []string { return workflow.Paths(restorePhases()) }

func restorePhases() []workflow.Phase[*restoreRun] {
	return []workflow.Phase[*restoreRun]{{
		Name: "restore", Short: "Restore an etcd snapshot as a one-member cluster",
		Phases: []workflow.Phase[*restoreRun]{
			{Name: "verify", Short: "Check the archive's SHA-256 and its CA against this node's", Run: restoreVerify},
			{Name: "preflight", Short: "Refuse while other members of the old cluster run, or without disk space", Run: restorePreflight},
			{Name: "stop-etcd", Short: "Move the etcd manifest aside and wait until etcd has stopped", Run: restoreStopEtcd},
			{Name: "data-dir", Short: "Move the data directory aside and restore the snapshot into a new one", Run: restoreNewDataDir},
			{Name: "start-etcd", Short: "Put the etcd manifest back and wait until etcd is healthy", Run: restoreStartEtcd},
			{Name: "wait-apiserver", Short: "Restart the API server, which served the cluster before the restore, and wait until it is ready", Run: restoreWaitAPIServer,
				RunIf: func(d *restoreRun) bool { return d.Node.Exists(staticpod.Path(staticpod.APIServerName)) }},
		},
	}}
}

// restoreVerify reads this node's etcd manifest and the archive, staging its database beside the data directory, and
// compares the archive's CA with the node's.
func restoreVerify(ctx context.Context, d *restoreRun) error {
	m, err := findManifest(d.Node)
	if errors.Is(err, fs.ErrNotExist) && d.Init != nil {
		return hint.With(fmt.Errorf("this node runs no stacked etcd member (no %s) and is no empty machine (it has %s or %s)",
			staticpod.Path(staticpod.EtcdName), config.KubeletKubeconfigFile, config.AdminKubeconfigFile),
			"run this on a control-plane node with stacked etcd, or run `kubeboot reset` on this machine first to rebuild a control plane on it from the archive")
	}
	if err != nil {
		return err
	}
	d.m = m
	parent := path.Dir(m.DataDir)
	if err := d.Node.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// The database is staged beside the data directory: on the disk it goes to.
	staged, err := os.CreateTemp(d.Node.Path(parent), ".etcd-restore-*.db")
	if err != nil {
		return fmt.Errorf("stage the snapshot beside %s: %w", m.DataDir, err)
	}
	d.staged = staged.Name()
	c, err := Read(d.Files, d.file, d.Key, staged)
	if cerr := staged.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("stage the snapshot beside %s: %w", m.DataDir, cerr)
	}
	if err != nil {
		return refused(err)
	}
	d.contents = c
	meta := c.Metadata
	d.say("archive %s verified: snapshot.db SHA-256 %s, etcd %s, taken %s", d.file, short(meta.SnapshotSHA256), meta.EtcdVersion, meta.Time.Format(time.RFC3339))

	switch checked, err := CheckCA(c, d.Node, m.certDir); {
	case err != nil && d.Force:
		d.say("WARNING: %v; restoring anyway (--force)", err)
	case err != nil:
		return refused(hint.With(err, "restore a snapshot of this cluster, or pass --force to restore it with this node's PKI"))
	case !checked:
		return refused(hint.With(fmt.Errorf("this node has no cluster CA (%s) to compare the archive's with", path.Join(m.certDir, "ca.crt")),
			"restore onto a control-plane node of the cluster the snapshot was taken of"))
	default:
		d.say("the archive's cluster CA and etcd CA are this node's")
	}
	return nil
}

// restorePreflight refuses while other members of the old cluster answer, or when the new data directory would not fit.
func restorePreflight(ctx context.Context, d *restoreRun) error {
	meta := d.contents.Metadata
	if err := d.checkPeers(ctx, d.m, meta); err != nil {
		return refused(err)
	}
	free, need, err := checkSpace(d.Disk, d.Node, d.m.DataDir, meta.SnapshotSize)
	if err != nil {
		return refused(err)
	}
	d.say("no other member of the old cluster answers; %d bytes free for %d needed", free, need)
	return nil
}

// checkSpace refuses when the new data directory for a snapshot of size bytes would not fit on the filesystem it
// goes to: the data directory's own when it exists (a mount point, etcd on its own disk, is restored into
// itself; a plain directory is on its parent's filesystem anyway), else its parent's.
func checkSpace(disk Disk, fsys nodefs.FS, dataDir string, size int64) (free, need uint64, err error) {
	where := dataDir
	if !fsys.Exists(dataDir) {
		where = path.Dir(dataDir)
	}
	need = uint64(float64(size) * spaceFactor)
	free, err = disk.Free(fsys.Path(where))
	if err != nil {
		return 0, need, fmt.Errorf("free space under %s: %w", where, err)
	}
	if free < need {
		return free, need, fmt.Errorf("%w under %s for the new etcd data directory: %d bytes free, %d needed (1.5 times the snapshot's %d bytes)",
			ErrNoSpace, where, free, need, size)
	}
	return free, need, nil
}

// restoreStopEtcd moves the etcd manifest to StoppedManifest, unless it is there already, and waits until the kubelet
// has stopped the container. From here on the node changes; each failure says how to go back.
func restoreStopEtcd(ctx context.Context, d *restoreRun) error {
	if d.m.manifest != StoppedManifest {
		if err := d.Node.Rename(d.m.manifest, StoppedManifest); err != nil {
			return fmt.Errorf("stop etcd: move %s to %s: %w", d.m.manifest, StoppedManifest, err)
		}
	}
	d.undo = fmt.Sprintf("etcd is stopped: its manifest is %s; move it back to %s to start the old member again", StoppedManifest, staticpod.Path(staticpod.EtcdName))
	if err := d.waitStopped(ctx); err != nil {
		return hint.With(err, d.undo)
	}
	d.say("etcd stopped (manifest moved to %s)", StoppedManifest)
	return nil
}

// restoreNewDataDir moves the old data directory aside and restores the staged snapshot into a new one.
func restoreNewDataDir(ctx context.Context, d *restoreRun) error {
	dataDir := d.m.DataDir
	d.restored = &Restored{Metadata: d.contents.Metadata}
	at := d.now()
	stamp := at.UTC().Format(timeFormat)
	old, err := moveAside(d.Node, dataDir, "before-restore-"+stamp)
	if err != nil {
		return hint.With(err, d.undo)
	}
	if old != "" {
		d.restored.OldDataDir = old
		d.say("moved the old data directory aside to %s (kept; remove it once the cluster is whole)", old)
		back := fmt.Sprintf("etcd is stopped and its data directory is %s: move it back to %s", old, dataDir)
		if path.Dir(old) == dataDir {
			back = fmt.Sprintf("etcd is stopped and its data is in %s: empty %s of everything else and move what %s holds back into it", old, dataDir, old)
		}
		d.undo = fmt.Sprintf("%s and %s back to %s to start the old member again", back, StoppedManifest, staticpod.Path(staticpod.EtcdName))
	}
	restoreDir := d.RestoreDataDir
	if restoreDir == nil {
		restoreDir = RestoreDataDir
	}
	peerURL := d.m.PeerURLs[0]
	if err := restoreInto(d.Node, restoreDir, d.staged, DataDir{Path: dataDir, Name: d.m.Name, PeerURL: peerURL,
		ClusterToken: RestoredClusterToken(d.m.ClusterToken, at)}, stamp); err != nil {
		return hint.With(err, d.undo)
	}
	d.say("restored the snapshot into %s as a one-member cluster: %s at %s", dataDir, d.m.Name, peerURL)
	for _, o := range d.contents.Metadata.Members {
		if !slices.Contains(o.PeerURLs, peerURL) {
			d.restored.Others = append(d.restored.Others, o)
		}
	}
	d.restored.ClientURL = firstOr(d.m.AdvertiseClientURLs, "")
	return nil
}

// removeExitedEtcd removes etcd's exited containers on this node, when containers can remove: the kubelet finds
// the old member's exited container when a manifest like the old one comes back (same content, same Pod UID), and
// holds the new one back by its crash-loop back-off, which after a few restarts of etcd on this node is over a
// minute (seen in TestHA: 1m9s for a restore, 27-54 s for a rejoin).
func removeExitedEtcd(ctx context.Context, c Containers, say func(string, ...any)) error {
	ids, err := cri.RemoveExitedInKubeSystemIfAble(ctx, c, staticpod.EtcdName)
	if err != nil {
		return fmt.Errorf("remove the stopped member's containers: %w", err)
	}
	if len(ids) > 0 {
		say("removed %d exited etcd container(s), so that the kubelet starts the next member at once", len(ids))
	}
	return nil
}

// restoreStartEtcd puts the manifest back and waits until etcd is healthy.
func restoreStartEtcd(ctx context.Context, d *restoreRun) error {
	if err := removeExitedEtcd(ctx, d.Containers, d.say); err != nil {
		return hint.With(fmt.Errorf("start etcd: %w", err), d.undo)
	}
	if err := d.Node.Rename(StoppedManifest, staticpod.Path(staticpod.EtcdName)); err != nil {
		return fmt.Errorf("start etcd: move %s back to %s: %w", StoppedManifest, staticpod.Path(staticpod.EtcdName), err)
	}
	if err := d.waitHealthy(ctx, staticpod.EtcdName); err != nil {
		return hint.With(err, "look at it with `crictl ps -a --name etcd` and `crictl logs CONTAINER`")
	}
	d.say("etcd is healthy")
	return nil
}

func restoreWaitAPIServer(ctx context.Context, d *restoreRun) error {
	// This node's API server ran through the restore with its caches of the cluster before it: it is restarted, as
	// the Kubernetes documentation asks of every API server after an etcd restore (TestHA once saw one that never
	// turned ready again by itself).
	if s, ok := d.Containers.(cri.ContainerStopper); ok {
		ids, err := cri.RunningInKubeSystem(ctx, d.Containers, staticpod.APIServerName)
		if err != nil {
			return fmt.Errorf("list the kube-apiserver containers: %w", err)
		}
		for _, id := range ids {
			// Removed too, not only stopped: the kubelet would hold the new one back by its crash-loop back-off,
			// which an API server that lost its etcd for the restore may have run up to minutes (seen in CI: more
			// than the 4-minute wait).
			removed, err := cri.Recycle(ctx, s, id, cri.APIServerStopGrace)
			if err != nil {
				return hint.With(fmt.Errorf("restart the API server: stop and remove its container %.13s: %w", id, err), "etcd is restored and healthy; restart the API server with `crictl stop CONTAINER` and `crictl rm CONTAINER`")
			}
			what := "stopped"
			if removed {
				what = "stopped and removed"
			}
			d.say("%s the API server's container %.13s, which served the cluster before the restore; the kubelet starts a new one", what, id)
		}
		// One that had exited while etcd was away would hold the next back the same way.
		if _, err := cri.RemoveExitedInKubeSystemIfAble(ctx, d.Containers, staticpod.APIServerName); err != nil {
			return hint.With(fmt.Errorf("restart the API server: remove its exited containers: %w", err), "etcd is restored and healthy; remove them with `crictl rm CONTAINER`")
		}
	}
	if err := d.waitHealthy(ctx, staticpod.APIServerName); err != nil {
		return apiServerNotReady(ctx, d, err)
	}
	d.say("the API server is ready")
	return nil
}

// apiServerNotReady reports an API server that did not turn ready after the restore, with etcd's state now: an API
// server that waits on its etcd is a symptom (TestHA once saw one fail its post-start hooks on "etcdserver: no
// leader" minutes after the restored etcd had answered healthy), and the hint must not call etcd healthy then.
func apiServerNotReady(ctx context.Context, d *restoreRun, err error) error {
	if ctx.Err() != nil {
		return err
	}
	etcdErr := d.Probe.Probe(ctx, staticpod.EtcdName)
	if etcdErr == nil {
		return hint.With(err, "etcd is restored and healthy; look at the API server with `crictl ps -a --name kube-apiserver` and `crictl logs CONTAINER`")
	}
	detail := ""
	if d.Diagnose != nil {
		if s := d.Diagnose.Diagnose(ctx, staticpod.EtcdName); s != "" {
			detail = "\n" + s
		}
	}
	return hint.With(fmt.Errorf("%w\netcd, healthy after its start, is not any more: %v%s", err, etcdErr, detail),
		"the restored etcd stopped answering: look at it with `crictl ps -a --name etcd` and `crictl logs CONTAINER`, then run the restore again")
}

// refused marks a refusal: nothing was changed.
func refused(err error) error {
	return fmt.Errorf("refusing to restore, nothing was changed: %w", err)
}

// checkPeers refuses while another member of the old cluster answers at its client URL: the members in the
// archive's metadata, those this node's running member lists now (members added after the snapshot), and those of
// this member's --initial-cluster (their client URLs on the client port of the same host). A member that runs on would go on serving the old data beside the restored one: a split brain.
func (r *Restorer) checkPeers(ctx context.Context, m *localMember, meta Metadata) error {
	own := append(slices.Clone(m.ClientURLs), m.AdvertiseClientURLs...)
	names := map[string]string{} // client URL: member name
	add := func(name, clientURL string) {
		if clientURL != "" && !slices.Contains(own, clientURL) {
			if _, ok := names[clientURL]; !ok {
				names[clientURL] = name
			}
		}
	}
	for _, o := range meta.Members {
		if slices.ContainsFunc(o.PeerURLs, func(u string) bool { return slices.Contains(m.PeerURLs, u) }) {
			continue
		}
		for _, u := range o.ClientURLs {
			add(o.Name, u)
		}
	}
	if r.Local != nil {
		current, err := r.Local.LocalMemberList(ctx)
		if err != nil {
			r.say("this node's etcd member does not list the current members (%v): checking the snapshot's and the manifest's", err)
		}
		for _, o := range current {
			if !slices.ContainsFunc(o.PeerURLs, func(u string) bool { return slices.Contains(m.PeerURLs, u) }) {
				for _, u := range o.ClientURLs {
					add(o.Name, u)
				}
			}
		}
	}
	for _, entry := range m.InitialCluster {
		name, peer, ok := strings.Cut(entry, "=")
		if !ok || slices.Contains(m.PeerURLs, peer) {
			continue
		}
		if u, err := url.Parse(peer); err == nil && u.Hostname() != "" {
			add(name, staticpod.EtcdClientURL(u.Hostname()))
		}
	}
	if len(names) == 0 {
		return nil
	}
	urls := make([]string, 0, len(names))
	for u := range names {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	reached := r.Peers.Reach(ctx, urls)
	var running []string
	for _, u := range urls {
		if reached[u] == nil {
			running = append(running, fmt.Sprintf("%s (%s)", names[u], u))
		}
	}
	if len(running) == 0 {
		return nil
	}
	return hint.With(fmt.Errorf("%w and would form a split brain with the restored member: %s", ErrSplitBrain, strings.Join(running, ", ")),
		fmt.Sprintf("stop etcd on each of them first: `mv %s %s` there (`kubeboot etcd snapshot rejoin` finds it there later)",
			staticpod.Path(staticpod.EtcdName), StoppedManifest))
}

// waitStopped waits until no etcd container runs: the kubelet stops the static Pod of a manifest that left its
// directory at its next look (about every 20 s).
func (r *Restorer) waitStopped(ctx context.Context) error {
	return poll(ctx, r.timeout(), r.interval(), func() error {
		ids, err := cri.RunningInKubeSystem(ctx, r.Containers, staticpod.EtcdName)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			return fmt.Errorf("its container %s still runs", ids[0])
		}
		return nil
	}, "etcd did not stop")
}

// waitRunning waits until an etcd container runs, and returns its ID.
func (r *Restorer) waitRunning(ctx context.Context) (string, error) {
	var id string
	err := poll(ctx, r.timeout(), r.interval(), func() error {
		ids, err := cri.RunningInKubeSystem(ctx, r.Containers, staticpod.EtcdName)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return errors.New("no etcd container runs yet")
		}
		id = ids[0]
		return nil
	}, "the kubelet did not start etcd")
	return id, err
}

func (r *Restorer) waitHealthy(ctx context.Context, component string) error {
	err := poll(ctx, r.timeout(), r.interval(), func() error { return r.Probe.Probe(ctx, component) }, component+" is not healthy")
	if err != nil && r.Diagnose != nil && ctx.Err() == nil {
		if d := r.Diagnose.Diagnose(ctx, component); d != "" {
			err = fmt.Errorf("%w\n%s", err, d)
		}
	}
	return err
}

// poll calls f every interval until it returns nil, or timeout has passed: then it returns what f last said.
func poll(ctx context.Context, timeout, interval time.Duration, f func() error, what string) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wctx.Done():
			return fmt.Errorf("%s within %s: %w", what, timeout, err)
		case <-t.C:
		}
	}
}

func (r *Restorer) say(format string, args ...any) {
	fmt.Fprintf(r.Out, "  "+format+"\n", args...)
}

func (r *Restorer) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Restorer) since(t time.Time) time.Duration {
	return r.now().Sub(t).Round(10 * time.Millisecond)
}

func (r *Restorer) timeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultTimeout
	}
	return r.Timeout
}

func (r *Restorer) interval() time.Duration {
	if r.Interval <= 0 {
		return defaultInterval
	}
	return r.Interval
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return sum
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}
