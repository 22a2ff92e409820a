package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// InitFunc builds init's phase data for a rebuild from the archive's contents: its ClusterConfiguration and
// KubeletConfiguration, with this machine's own part (node name, address, runtime) from the caller's flags.
type InitFunc func(c *Contents) (*initflow.Data, error)

// rebuildSkips are init's phases a rebuild leaves out: what they make is in the restored etcd already
// (configuration, controller accounts, tokens and cluster-info, the addons), or is init's own (the join command).
// Init's preflight runs earlier, before the machine changes.
var rebuildSkips = []string{"preflight", "controller-accounts", "upload-config", "upload-certs", "bootstrap-token", "addon", "show-join-command"}

// FreshMachine says whether the node has no control plane and is no node: no etcd manifest (not even one moved
// aside), no kubelet.conf, no admin.conf. A restore there rebuilds the control plane from the archive.
func FreshMachine(fsys nodefs.FS) bool {
	for _, f := range []string{staticpod.Path(staticpod.EtcdName), StoppedManifest, config.KubeletKubeconfigFile, config.AdminKubeconfigFile} {
		if fsys.Exists(f) {
			return false
		}
	}
	return true
}

// RebuildPhases names the phases of a rebuild, in order: the first two only read and refuse.
func RebuildPhases() []string { return workflow.Paths(rebuildPhases()) }

func rebuildPhases() []workflow.Phase[*rebuildRun] {
	return []workflow.Phase[*rebuildRun]{{
		Name: "rebuild", Short: "Rebuild a control plane on a machine that has none from an archive",
		Phases: []workflow.Phase[*rebuildRun]{
			{Name: "verify", Short: "Check the archive's SHA-256, that it holds the PKI and the configuration, and any CA already here", Run: rebuildVerify},
			{Name: "preflight", Short: "Refuse while members of the old cluster run, without disk space, or where init's checks fail", Run: rebuildPreflight},
			{Name: "pki", Short: "Install the archive's CAs and service-account keys", Run: rebuildPKI},
			{Name: "data-dir", Short: "Restore the snapshot into the etcd data directory as a one-member cluster of this node", Run: rebuildDataDir},
			{Name: "control-plane", Short: "Write the certificates, kubeconfig files, static Pods and kubelet settings as init does, and wait for the control plane", Run: rebuildControlPlane},
		},
	}}
}

// rebuildRun is one rebuild's state, passed from phase to phase.
type rebuildRun struct {
	*Restorer
	file     string
	start    time.Time
	staged   string
	contents *Contents
	init     *initflow.Data
	// m is the etcd member init's manifest will run, rendered in memory.
	m        *localMember
	restored *Restored
}

// rebuild restores the archive onto a machine with no control plane (FreshMachine): see Restore.
func (r *Restorer) rebuild(ctx context.Context, file string) (*Restored, error) {
	// Init's phases run at once where they can: they and both runners share one locked writer.
	locked := *r
	locked.Out = workflow.Locked(r.Out)
	r = &locked
	d := &rebuildRun{Restorer: r, file: file, start: r.now()}
	defer func() {
		if d.staged != "" {
			os.Remove(d.staged)
		}
	}()
	fmt.Fprintf(r.Out, "[restore] this machine has no control plane: rebuilding one from %s\n", file)
	runner := workflow.Runner[*rebuildRun]{Phases: rebuildPhases(), Out: r.Out, Now: r.Now}
	if err := runner.Run(ctx, d, workflow.Options{}); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.Out, "[restore] done in %s\n", r.since(d.start))
	return d.restored, nil
}

// rebuildVerify reads the archive, staging its database, checks it holds what a rebuild needs, builds init's
// configuration from it and renders the etcd member init will run.
func rebuildVerify(ctx context.Context, d *rebuildRun) error {
	stageDir := path.Dir(config.DefaultEtcdDataDir)
	if err := d.Node.MkdirAll(stageDir, 0o755); err != nil {
		return refused(err)
	}
	staged, err := os.CreateTemp(d.Node.Path(stageDir), ".etcd-restore-*.db")
	if err != nil {
		return refused(fmt.Errorf("stage the snapshot in %s: %w", stageDir, err))
	}
	d.staged = staged.Name()
	c, err := Read(d.Files, d.file, d.Key, staged)
	if cerr := staged.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("stage the snapshot in %s: %w", stageDir, cerr)
	}
	if err != nil {
		return refused(err)
	}
	d.contents = c
	meta := c.Metadata
	d.say("archive %s verified: snapshot.db SHA-256 %s, etcd %s, taken %s", d.file, short(meta.SnapshotSHA256), meta.EtcdVersion, meta.Time.Format(time.RFC3339))
	if c.Config == nil {
		return refused(hint.With(errors.New("the archive holds no ClusterConfiguration, which a rebuild needs"),
			"restore it onto a control-plane node that still has its files; save archives with access to the cluster or with --config"))
	}
	var missing []string
	for _, f := range copycerts.Files(meta.CertificatesDir, nil) {
		rel := strings.TrimPrefix(f.Path, path.Clean(meta.CertificatesDir)+"/")
		if _, ok := c.PKI[rel]; !ok {
			missing = append(missing, rel)
		}
	}
	if len(missing) > 0 {
		return refused(hint.With(fmt.Errorf("the archive lacks %s, which a rebuilt control plane needs", strings.Join(missing, ", ")),
			"restore it onto a control-plane node that still has its PKI"))
	}
	if d.Init == nil {
		return refused(errors.New("no configuration for the rebuild"))
	}
	if d.init, err = d.Init(c); err != nil {
		return refused(err)
	}
	d.init.Out = d.Out
	cluster, node := d.init.Cfg.ClusterPart(), d.init.Cfg.NodePart()
	if cluster.Etcd.External != nil {
		return refused(errors.New("the archive's ClusterConfiguration uses external etcd: there is no stacked etcd member to restore"))
	}
	// The member init's manifest runs, rendered in memory: the restored data directory must be its.
	mem := nodefs.Overlay(d.Node)
	if _, err := manifests.WriteLocalEtcd(ctx, mem, cluster, node); err != nil {
		return refused(fmt.Errorf("render the etcd manifest: %w", err))
	}
	if d.m, err = findManifest(mem); err != nil {
		return refused(err)
	}
	switch checked, err := CheckCA(c, d.Node, cluster.CertificatesDir); {
	case err != nil:
		return refused(hint.With(err, "this machine has another cluster's CA under "+cluster.CertificatesDir+": run `kubeboot reset` here first, or restore this cluster's archive"))
	case checked:
		d.say("the archive's cluster CA and etcd CA are the ones already under %s", cluster.CertificatesDir)
	}
	d.say("this node will be etcd member %s at %s, data directory %s", d.m.Name, d.m.PeerURLs[0], d.m.DataDir)
	return nil
}

// rebuildPreflight refuses while other members of the old cluster answer, when the data directory is in use or
// would not fit, or where init's preflight checks fail.
func rebuildPreflight(ctx context.Context, d *rebuildRun) error {
	meta := d.contents.Metadata
	if err := d.checkPeers(ctx, d.m, meta); err != nil {
		return refused(err)
	}
	// etcd's restore takes an absent or empty directory only: an empty subdirectory left behind counts too.
	if names, err := os.ReadDir(d.Node.Path(d.m.DataDir)); err == nil && len(names) > 0 {
		return refused(hint.With(fmt.Errorf("the etcd data directory %s is not empty", d.m.DataDir),
			"run `kubeboot reset` here first; it removes the data directory of an old member"))
	}
	parent := path.Dir(d.m.DataDir)
	if err := d.Node.MkdirAll(parent, 0o755); err != nil {
		return refused(err)
	}
	free, need, err := checkSpace(d.Disk, d.Node, d.m.DataDir, meta.SnapshotSize)
	if err != nil {
		return refused(err)
	}
	d.say("no other member of the old cluster answers; %d bytes free for %d needed", free, need)
	runner := workflow.Runner[*initflow.Data]{Phases: initflow.Phases(), Out: d.Out, Now: d.Now}
	if err := runner.Run(ctx, d.init, workflow.Options{Only: "preflight"}); err != nil {
		return refused(err)
	}
	return nil
}

// undoRebuild is what to do when a rebuild fails once it has changed the machine.
const undoRebuild = "`kubeboot reset` takes the machine back to empty; then run the restore again"

// rebuildPKI installs the archive's CAs and service-account keys under the configuration's certificates directory.
func rebuildPKI(_ context.Context, d *rebuildRun) error {
	certDir := d.init.Cfg.Cluster.CertificatesDir
	plain := map[string][]byte{}
	for _, f := range copycerts.Files(certDir, nil) {
		rel := strings.TrimPrefix(f.Path, path.Clean(certDir)+"/")
		if data, ok := d.contents.PKI[rel]; ok {
			plain[f.SecretKey] = data
		}
	}
	if err := copycerts.Install(d.Node, certDir, nil, plain); err != nil {
		return hint.With(fmt.Errorf("install the archive's PKI: %w", err), undoRebuild)
	}
	d.say("installed %d files of the archive's PKI under %s: the cluster, front-proxy and etcd CAs and the service-account keys", len(plain), certDir)
	return nil
}

// rebuildDataDir restores the staged snapshot into the data directory as a one-member cluster of this node.
func rebuildDataDir(_ context.Context, d *rebuildRun) error {
	restoreDir := d.RestoreDataDir
	if restoreDir == nil {
		restoreDir = RestoreDataDir
	}
	peerURL := d.m.PeerURLs[0]
	// Preflight found the data directory absent or empty; etcd's restore takes either, and an empty one may be
	// a mount point, which cannot be removed.
	if err := restoreDir(d.staged, DataDir{Path: d.Node.Path(d.m.DataDir), Name: d.m.Name, PeerURL: peerURL,
		ClusterToken: RestoredClusterToken(d.m.ClusterToken, d.now())}); err != nil {
		return hint.With(err, undoRebuild)
	}
	d.say("restored the snapshot into %s as a one-member cluster: %s at %s", d.m.DataDir, d.m.Name, peerURL)
	d.restored = &Restored{Metadata: d.contents.Metadata, ClientURL: firstOr(d.m.AdvertiseClientURLs, "")}
	for _, o := range d.contents.Metadata.Members {
		if !slices.Contains(o.PeerURLs, peerURL) {
			d.restored.Others = append(d.restored.Others, o)
		}
	}
	return nil
}

// rebuildControlPlane runs init's phases but those whose objects the restored etcd holds (rebuildSkips): the
// leaf certificates are signed by the installed CAs, and the etcd manifest runs the member whose data directory
// was just restored.
func rebuildControlPlane(ctx context.Context, d *rebuildRun) error {
	runner := workflow.Runner[*initflow.Data]{Phases: initflow.Phases(), Out: d.Out, Now: d.Now}
	if err := runner.Run(ctx, d.init, workflow.Options{Skip: rebuildSkips}); err != nil {
		return hint.With(err, undoRebuild)
	}
	return nil
}
