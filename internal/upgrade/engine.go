package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Where kubeadm keeps what an upgrade replaces, and how it names each run's directories.
const (
	TmpDir              = "/etc/kubernetes/tmp"
	BackupManifestsBase = "kubeadm-backup-manifests-"
	BackupEtcdBase      = "kubeadm-backup-etcd-"
	TimestampFormat     = "2006-01-02-15-04-05"
	// ConfigHashAnnotation is the annotation of a mirror Pod that holds the hash the kubelet computed of its static
	// Pod: it changes once the kubelet runs the new manifest.
	ConfigHashAnnotation = "kubernetes.io/config.hash"
)

// Mirror reads the static Pods of this node as the kubelet runs them: from the container runtime (RuntimeMirror)
// or from their mirror Pods (APIMirror).
type Mirror interface {
	// State returns the config hash (kubernetes.io/config.hash) of component's static Pod on this node, and
	// whether it runs: its container runs (RuntimeMirror), its mirror Pod is Ready (APIMirror). A Pod that does
	// not exist (yet) is "", false, nil.
	State(ctx context.Context, component string) (hash string, ready bool, err error)
}

// Prober says whether a component of this node is healthy (restart.NodeProber).
type Prober interface {
	Probe(ctx context.Context, component string) error
}

// Diagnoser explains a component that is not healthy: its container's state and last log lines through the CRI
// (initflow.NewDiagnoser).
type Diagnoser interface {
	Diagnose(ctx context.Context, component string) string
}

// Renewer renews certificates as kubeadm's upgrade does (CertRenewer).
type Renewer interface {
	// RenewFor renews the certificates component reads.
	RenewFor(component string) error
	// RenewAdmin renews admin.conf and, where it exists, super-admin.conf.
	RenewAdmin() error
}

// Restarter restarts components of this node whose manifest is unchanged (restart.Restarter): etcd, when only its
// renewed certificates are new.
type Restarter interface {
	Restart(ctx context.Context, components []string) error
}

// Engine replaces this node's control-plane static Pods one at a time, as kubeadm's upgrade does, and puts the old
// ones back when a new one does not come up.
type Engine struct {
	FS       nodefs.FS
	Mirror   Mirror
	Probe    Prober
	Diagnose Diagnoser // nil: no diagnosis
	// Renew is nil when certificate renewal is off (--certificate-renewal=false).
	Renew Renewer
	// Restart is nil when nothing can restart a component in place.
	Restart Restarter
	// Containers lists and stops this node's containers (*cri.Client); nil: the kubelet replaces the static Pods
	// at its own pace (see hurry).
	Containers Containers
	// Out gets kubeadm's [upgrade/staticpods] lines, with times.
	Out io.Writer
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Timeout bounds each component's wait (timeouts.upgradeManifests); 0: 5 minutes.
	Timeout time.Duration
	// Interval is between two looks at the mirror Pod or the health; 0: 500 ms.
	Interval time.Duration
	// DryRun renders and compares, and changes nothing.
	DryRun bool
}

// Containers lists and stops containers, and lists sandboxes (*cri.Client).
type Containers interface {
	cri.ContainerLister
	cri.ContainerStopper
	cri.SandboxLister
}

// Options of one upgrade.
type Options struct {
	// EtcdUpgrade is --etcd-upgrade: a local etcd is upgraded too.
	EtcdUpgrade bool
}

// Result is what an upgrade did.
type Result struct {
	Upgraded, Unchanged []string
	// BackupDir holds the manifests replaced; EtcdBackupDir the etcd data copied ("" when etcd did not change).
	BackupDir, EtcdBackupDir string
}

// ComponentError is a component that did not come up after its upgrade; the manifests replaced in this run were put
// back.
type ComponentError struct {
	Component string
	Err       error
	// Diagnosis is the container's state and last log lines, read before the rollback.
	Diagnosis string
	// RolledBack are the components whose old manifest was put back; RollbackErr what went wrong doing so.
	RolledBack  []string
	RollbackErr error
	BackupDir   string
	// EtcdDataRestored: etcd's data directory was put back from EtcdBackupDir.
	EtcdDataRestored bool
	EtcdBackupDir    string
}

func (e *ComponentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "couldn't upgrade control plane: %s: %v", e.Component, e.Err)
	if e.Diagnosis != "" {
		b.WriteString("\n" + e.Diagnosis)
	}
	switch {
	case e.RollbackErr != nil:
		fmt.Fprintf(&b, "\nthe rollback failed too: %v (the old manifests are in %s)", e.RollbackErr, e.BackupDir)
	case len(e.RolledBack) > 0:
		fmt.Fprintf(&b, "\nkubeboot has put back the earlier manifests of %s from %s, and they are healthy", strings.Join(e.RolledBack, ", "), e.BackupDir)
	}
	if e.EtcdDataRestored {
		fmt.Fprintf(&b, "; etcd's data was restored from %s", e.EtcdBackupDir)
	}
	return b.String()
}

func (e *ComponentError) Unwrap() error { return e.Err }

// change is one component replaced in this run, kept for its rollback.
type change struct {
	component string
	old       []byte
	oldHash   string
}

// Upgrade replaces the static Pods of t's node: etcd (when local and opts.EtcdUpgrade), kube-apiserver,
// kube-controller-manager and kube-scheduler, in that order. For each it renders the new manifest; an equal one is
// left alone. Otherwise it renews the component's certificates, keeps the old manifest in the backup directory
// (etcd's data in its own), writes the new one in place (atomically; the controller-manager's and the scheduler's
// once their old Pod has stopped, see stopOldFirst), and waits for the kubelet to run it (the static Pod's config
// hash changes and it runs) and for the component's health endpoint to answer, with no fixed waits but
// stopOldFirst's oldPodSettle. A component that is not up within the timeout is diagnosed through the CRI, and every
// manifest replaced in this run is put back (etcd's data too when etcd failed) and waited for.
func (e *Engine) Upgrade(ctx context.Context, t Target, opts Options) (*Result, error) {
	components := e.components(t, opts)
	rendered, err := Render(e.FS, t, components)
	if err != nil {
		return nil, err
	}
	current := map[string][]byte{}
	for _, c := range components {
		b, err := e.FS.ReadFile(staticpod.Path(c))
		if err != nil {
			return nil, hint.With(fmt.Errorf("read the current manifest of %s: %w", c, err),
				"upgrade replaces the static Pods of a control-plane node made by kubeadm or kubeboot; nothing was changed")
		}
		current[c] = b
	}
	ts := e.now().Format(TimestampFormat)
	res := &Result{BackupDir: path.Join(TmpDir, BackupManifestsBase+ts)}
	apiServerChanges := false
	for _, r := range rendered {
		if r.Component == staticpod.APIServerName && !samePod(current[r.Component], r.YAML) {
			apiServerChanges = true
		}
	}
	if e.DryRun {
		for _, r := range rendered {
			if samePod(current[r.Component], r.YAML) {
				fmt.Fprintf(e.Out, "[dryrun] Current and new manifests of %s are equal, skipping upgrade\n", r.Component)
				res.Unchanged = append(res.Unchanged, r.Component)
				continue
			}
			fmt.Fprintf(e.Out, "[dryrun] Would replace %s with a new manifest (see `kubeboot upgrade diff`)\n", staticpod.Path(r.Component))
			res.Upgraded = append(res.Upgraded, r.Component)
		}
		return res, nil
	}
	if err := e.FS.MkdirAll(res.BackupDir, 0o700); err != nil {
		return nil, fmt.Errorf("create the backup directory: %w", err)
	}
	fmt.Fprintf(e.Out, "[upgrade/staticpods] Moving the old manifests of this node to %q\n", e.FS.Path(res.BackupDir))
	var done []change
	for _, r := range rendered {
		c := r.Component
		for _, p := range r.Patches {
			fmt.Fprintln(e.Out, "  "+p.Line())
		}
		if samePod(current[c], r.YAML) {
			if c == staticpod.EtcdName && e.Renew != nil && apiServerChanges {
				// kubeadm's exception: the API server's renewed etcd client certificate comes with etcd's renewed ones.
				if err := e.renewUnchanged(ctx, c); err != nil {
					return res, err
				}
				res.Upgraded = append(res.Upgraded, c)
				continue
			}
			fmt.Fprintf(e.Out, "[upgrade/staticpods] Current and new manifests of %s are equal, skipping upgrade\n", c)
			res.Unchanged = append(res.Unchanged, c)
			continue
		}
		start := e.now()
		ch := change{component: c, old: current[c]}
		fail := func(err error, etcdFailed bool) (*Result, error) {
			return res, e.fail(ctx, t, res, done, ch, err, etcdFailed)
		}
		if c == staticpod.EtcdName {
			res.EtcdBackupDir = path.Join(TmpDir, BackupEtcdBase+ts)
			if err := e.backupEtcd(t, res.EtcdBackupDir); err != nil {
				return fail(err, false)
			}
		}
		hash, _, err := e.Mirror.State(ctx, c)
		if err != nil {
			return fail(fmt.Errorf("read the static Pod of %s: %w", c, err), false)
		}
		ch.oldHash = hash
		if e.Renew != nil {
			if err := e.Renew.RenewFor(c); err != nil {
				return fail(err, false)
			}
		}
		if err := e.FS.WriteFile(path.Join(res.BackupDir, c+".yaml"), current[c], 0o600); err != nil {
			return fail(fmt.Errorf("back up the manifest of %s: %w", c, err), false)
		}
		var oldContainers []string
		if e.Containers != nil {
			if oldContainers, err = cri.RunningInKubeSystem(ctx, e.Containers, c); err != nil {
				return fail(fmt.Errorf("list the containers of %s: %w", c, err), false)
			}
		}
		if c == staticpod.EtcdName && len(oldContainers) > 0 {
			e.drainAPIServer(ctx)
		}
		stoppedFirst, apiServerStopped := e.stopOldFirst(ctx, c, hash, oldContainers)
		if err := e.FS.WriteFile(staticpod.Path(c), r.YAML, 0o600); err != nil {
			return fail(fmt.Errorf("write the new manifest of %s: %w", c, err), false)
		}
		done = append(done, ch)
		fmt.Fprintf(e.Out, "[upgrade/staticpods] Moved new manifest to %q and backed up old manifest to %q\n",
			e.FS.Path(staticpod.Path(c)), e.FS.Path(path.Join(res.BackupDir, c+".yaml")))
		if !stoppedFirst {
			// Once the old Pod has stopped, the containers running are the new Pod's: hurry must not stop them.
			apiServerStopped = e.hurry(ctx, c, oldContainers, "after the new manifest")
		}
		if err := e.waitRunning(ctx, c, hash, true); err != nil {
			return res, e.fail(ctx, t, res, done[:len(done)-1], ch, err, c == staticpod.EtcdName)
		}
		if c == staticpod.EtcdName && apiServerStopped && !apiServerChanges {
			// No new API server follows to wait for: the kubelet's restart of this one is waited for here, without
			// the crash-loop back-off the stops above would cost it (no exited container left to hold it back).
			e.removeExitedAPIServers(ctx)
			if err := e.waitHealthy(ctx, staticpod.APIServerName); err != nil {
				return res, err
			}
		}
		fmt.Fprintf(e.Out, "[upgrade/staticpods] Component %q upgraded successfully! (%s)\n", c, e.now().Sub(start).Round(100*time.Millisecond))
		res.Upgraded = append(res.Upgraded, c)
	}
	if e.Renew != nil {
		if err := e.Renew.RenewAdmin(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// components are the components this node upgrades.
func (e *Engine) components(t Target, opts Options) []string {
	var out []string
	for _, c := range Components {
		if c == staticpod.EtcdName && (!opts.EtcdUpgrade || t.Cluster.Etcd.External != nil || !e.FS.Exists(staticpod.Path(c))) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// renewUnchanged renews the certificates of a component whose manifest stays, and restarts it in place.
func (e *Engine) renewUnchanged(ctx context.Context, c string) error {
	if err := e.Renew.RenewFor(c); err != nil {
		return err
	}
	if e.Restart == nil {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] The manifest of %s is unchanged; its certificates were renewed: restart it to use them\n", c)
		return nil
	}
	if err := e.Restart.Restart(ctx, []string{c}); err != nil {
		return fmt.Errorf("restart %s after renewing its certificates: %w", c, err)
	}
	return nil
}

// waitRunning waits, up to the timeout, for the kubelet to run component's manifest: the static Pod's hash differs
// from oldHash (or, changed false, equals it again: a rollback), it runs, and the component's health endpoint
// answers.
func (e *Engine) waitRunning(ctx context.Context, component, oldHash string, changed bool) error {
	timeout := e.timeout()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stage := "the kubelet to run its new manifest"
	err := e.poll(ctx, wctx, func() error {
		hash, ready, err := e.Mirror.State(wctx, component)
		switch {
		case err != nil:
			return err
		case hash == "":
			return errors.New("its static Pod does not exist")
		case changed && hash == oldHash:
			return fmt.Errorf("the static Pod hash is still %s", oldHash)
		case !changed && oldHash != "" && hash != oldHash:
			return fmt.Errorf("the static Pod hash is %s, not yet its earlier %s", hash, oldHash)
		case !ready:
			stage = "its new Pod to run"
			return errors.New("its static Pod does not run")
		}
		stage = "its health endpoint"
		return e.Probe.Probe(wctx, component)
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, stage, err)
}

// waitHealthy waits, up to the timeout, until component's health endpoint answers.
func (e *Engine) waitHealthy(ctx context.Context, component string) error {
	wctx, cancel := context.WithTimeout(ctx, e.timeout())
	defer cancel()
	err := e.poll(ctx, wctx, func() error { return e.Probe.Probe(wctx, component) })
	switch {
	case err == nil:
		fmt.Fprintf(e.Out, "[upgrade/staticpods] %s answers again\n", component)
		return nil
	case ctx.Err() != nil:
		return context.Cause(ctx)
	}
	return hint.With(fmt.Errorf("%s, stopped for etcd's upgrade, did not answer again within %s: %w", component, e.timeout(), err),
		"etcd is upgraded and healthy; look at the API server with `crictl ps -a --name kube-apiserver` and `crictl logs CONTAINER`")
}

// drainAPIServer stops this node's kube-apiserver (cri.APIServerStopGrace) before its etcd is replaced. A stacked
// API server reads only this node's etcd: while that etcd is replaced it holds every request sent to it until the
// request times out, and then it is stopped itself, cutting the rest; a client's HTTP/2 connection, which a TCP
// load balancer cannot move, stays pinned to it all along (TestUpgrade and `bench upgrade-ha` saw each failed write
// that way, for kubeadm too). Stopped first, it fails /readyz, sends its clients away (GOAWAY) and finishes its
// requests while its etcd still serves them; they reconnect through the endpoint to another API server. The kubelet
// starts it again from the same manifest, and hurry stops it once more when the old etcd has stopped. This is
// certs renew --restart's order for the same reason (internal/restart). Nothing here fails the upgrade.
func (e *Engine) drainAPIServer(ctx context.Context) {
	if e.Containers == nil {
		return
	}
	start := e.now()
	ids, err := cri.RunningInKubeSystem(ctx, e.Containers, staticpod.APIServerName)
	if err != nil {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] WARNING: could not list the kube-apiserver's containers: %v; its clients may wait on it while etcd is replaced\n", err)
		return
	}
	for _, id := range ids {
		if err := e.Containers.StopContainer(ctx, id, cri.APIServerStopGrace); err != nil {
			fmt.Fprintf(e.Out, "[upgrade/staticpods] WARNING: could not stop the kube-apiserver's container %.13s: %v; its clients may wait on it while etcd is replaced\n", id, err)
			continue
		}
		fmt.Fprintf(e.Out, "[upgrade/staticpods] Stopped this node's kube-apiserver (container %.13s, %s grace period) before its etcd is replaced, so that its clients move to another API server while its etcd still serves them (%s)\n",
			id, cri.APIServerStopGrace, e.now().Sub(start).Round(100*time.Millisecond))
	}
}

// removeExitedAPIServers removes this node's exited kube-apiserver containers, when the runtime can, so that the
// kubelet's crash-loop back-off does not hold the next one (cri.RemoveExitedInKubeSystem).
func (e *Engine) removeExitedAPIServers(ctx context.Context) {
	if e.Containers == nil {
		return
	}
	if _, err := cri.RemoveExitedInKubeSystemIfAble(ctx, e.Containers, staticpod.APIServerName); err != nil {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] WARNING: could not remove the kube-apiserver's exited containers: %v; the kubelet starts it after its crash-loop back-off\n", err)
	}
}

// stopOldFirst lets the kubelet stop the old static Pod of a component before its new manifest is written, and
// reports whether it did, and whether it stopped this node's API server for etcd (see hurry): when the old Pod's
// sandbox is ready, it removes the manifest (its backup is written), shortens the stop as hurry does, waits, up to
// oldStopBound, until the sandbox has stopped, and then waits oldPodSettle. A static Pod whose manifest changes
// gets a new UID (its config hash), and the kubelet starts it only once the old one has finished terminating; its
// first attempt comes while the old one still runs, and the next one 10-15 s later (the pod workers' back-off
// period, jittered). Written after the old Pod stopped, the new one starts at once. The kubelet stops the old Pod
// on a new manifest anyway; removed first, it is stopped the same way, without the wait. The old API server may
// even be down already, held by the crash-loop back-off after etcd's replacement stopped it (TestUpgrade: its
// replacement then took 15-20 s, etcd's 21-28 s). Nothing here fails the upgrade: whatever the wait finds, and
// even if the upgrade is interrupted during it, the caller writes the new manifest next.
func (e *Engine) stopOldFirst(ctx context.Context, component, oldHash string, old []string) (stoppedFirst, apiServerStopped bool) {
	if e.Containers == nil || oldHash == "" {
		return false, false
	}
	sandboxReady := func(ctx context.Context) (bool, error) {
		sandboxes, err := e.Containers.ListPodSandboxes(ctx, map[string]string{cri.LabelPodNamespace: "kube-system", cri.LabelPodUID: oldHash})
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(sandboxes, func(s cri.PodSandbox) bool { return s.Ready }), nil
	}
	if ready, err := sandboxReady(ctx); err != nil || !ready {
		return false, false // nothing for the kubelet to stop first, or the runtime cannot tell: the kubelet's own pace
	}
	start := e.now()
	if err := e.FS.Remove(staticpod.Path(component)); err != nil {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] WARNING: could not remove the old manifest of %s first: %v; the kubelet replaces its Pod at its own pace\n", component, err)
		return false, false
	}
	apiServerStopped = e.hurry(ctx, component, old, "after its manifest's removal")
	wctx, cancel := context.WithTimeout(ctx, min(oldStopBound, e.timeout()))
	defer cancel()
	err := e.poll(ctx, wctx, func() error {
		ready, err := sandboxReady(wctx)
		if err != nil {
			return err
		}
		if ready {
			return fmt.Errorf("the old Pod of %s still runs", component)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] The old Pod of %s did not stop within %s of its manifest's removal (%v); writing the new one anyway\n",
			component, min(oldStopBound, e.timeout()), err)
		return true, apiServerStopped
	}
	// The kubelet's termination of the old Pod goes on after its sandbox stopped: it unmounts its volumes and
	// removes its cgroup, and only then lets the new Pod start.
	select {
	case <-ctx.Done():
	case <-time.After(oldPodSettle):
	}
	fmt.Fprintf(e.Out, "[upgrade/staticpods] The kubelet stopped the old %s before its new manifest, so that it starts the new one at once (%s)\n",
		component, e.now().Sub(start).Round(100*time.Millisecond))
	return true, apiServerStopped
}

// oldPodSettle is how long stopOldFirst gives the kubelet to finish an old Pod's termination once its sandbox has
// stopped. Measured on a lab node (TestUpgrade, kblab-cp3): containerd's StopPodSandbox returned at 35.959 s, the
// kubelet had the old Pod's volumes detached at 36.281 s; the new manifest, which it saw at 36.157 s (0.2 s after
// the stop), still waited out the back-off: its Pod started 12.8 s later.
const oldPodSettle = time.Second

// oldStopBound bounds the wait for the kubelet to begin stopping an old static Pod (see hurry).
const oldStopBound = 15 * time.Second

// hurry shortens two waits of the kubelet's that a static Pod's replacement runs into, once the kubelet has begun
// to stop component's old containers (old, listed before its manifest was replaced or removed, see stopOldFirst):
//   - kube-apiserver: its watches would hold the old one for the kubelet's whole grace period (30 s), and the
//     kubelet starts the new Pod only once the old one has stopped, retrying that every 10-15 s. Once the old one
//     fails /readyz (it does at once on SIGTERM) or has stopped, its containers are stopped with
//     cri.APIServerStopGrace.
//   - etcd: before it starts the new etcd Pod, or once the old one's manifest is removed, the kubelet deletes the
//     old mirror Pod through this node's API server, which cannot answer without etcd and holds the request until
//     it times out (34 s in the lab). Once
//     the old etcd has stopped, this node's API server is stopped (cri.APIServerStopGrace): the request fails at
//     once and the kubelet starts etcd; it starts the API server again too.
//
// Stopping anything before the kubelet acts would make it restart the old Pod, hence the wait. hurry reports
// whether it stopped this node's API server. Nothing here fails the upgrade: a stop that does not happen leaves
// the kubelet's own pace, and waitRunning follows either.
func (e *Engine) hurry(ctx context.Context, component string, old []string, since string) bool {
	if e.Containers == nil || len(old) == 0 || (component != staticpod.APIServerName && component != staticpod.EtcdName) {
		return false
	}
	start := e.now()
	bound := min(oldStopBound, e.timeout())
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	err := e.poll(ctx, wctx, func() error {
		ids, err := cri.RunningInKubeSystem(wctx, e.Containers, component)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(old, id) }) {
			return nil
		}
		if component == staticpod.APIServerName && e.Probe.Probe(wctx, component) != nil {
			return nil
		}
		return fmt.Errorf("the old %s still runs: the kubelet has not begun to stop it", component)
	})
	if err != nil {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] The kubelet has not begun to stop the old %s within %s (%v); leaving it to the kubelet\n", component, bound, err)
		return false
	}
	ids, err := cri.RunningInKubeSystem(ctx, e.Containers, staticpod.APIServerName)
	if err != nil {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] WARNING: could not list the kube-apiserver's containers: %v; leaving them to the kubelet\n", err)
		return false
	}
	why := "The kubelet is stopping the old kube-apiserver"
	if component == staticpod.EtcdName {
		why = "The old etcd has stopped; this node's kube-apiserver would hold the kubelet's start of the new one until its requests time out"
	}
	stopped := false
	for _, id := range ids {
		if err := e.Containers.StopContainer(ctx, id, cri.APIServerStopGrace); err != nil {
			fmt.Fprintf(e.Out, "[upgrade/staticpods] WARNING: could not stop the kube-apiserver's container %.13s: %v; leaving it to the kubelet\n", id, err)
			continue
		}
		stopped = true
		fmt.Fprintf(e.Out, "[upgrade/staticpods] %s: stopped the kube-apiserver's container %.13s with a %s grace period (%s %s)\n",
			why, id, cri.APIServerStopGrace, e.now().Sub(start).Round(100*time.Millisecond), since)
	}
	return stopped
}

// fail diagnoses the failed component, puts back the manifests replaced in this run (failed last, then done in
// reverse order), etcd's data first when etcd failed, and waits for them.
func (e *Engine) fail(ctx context.Context, t Target, res *Result, done []change, failed change, cause error, etcdFailed bool) error {
	ce := &ComponentError{Component: failed.component, Err: cause, BackupDir: e.FS.Path(res.BackupDir), EtcdBackupDir: e.FS.Path(res.EtcdBackupDir)}
	if e.Diagnose != nil {
		ce.Diagnosis = e.Diagnose.Diagnose(ctx, failed.component)
	}
	all := slices.Clone(done)
	if e.FS.Exists(path.Join(res.BackupDir, failed.component+".yaml")) {
		all = append(all, failed)
	}
	var errs []error
	if etcdFailed && res.EtcdBackupDir != "" {
		if err := e.restoreEtcd(t, res.EtcdBackupDir); err != nil {
			errs = append(errs, err)
		} else {
			ce.EtcdDataRestored = true
		}
	}
	for _, ch := range slices.Backward(all) {
		fmt.Fprintf(e.Out, "[upgrade/staticpods] Rolling back %s to its earlier manifest\n", ch.component)
		if err := e.FS.WriteFile(staticpod.Path(ch.component), ch.old, 0o600); err != nil {
			errs = append(errs, fmt.Errorf("put back the manifest of %s: %w", ch.component, err))
			continue
		}
		ce.RolledBack = append(ce.RolledBack, ch.component)
	}
	for _, c := range ce.RolledBack {
		var oldHash string
		for _, ch := range all {
			if ch.component == c {
				oldHash = ch.oldHash
			}
		}
		if err := e.waitRunning(ctx, c, oldHash, false); err != nil {
			errs = append(errs, fmt.Errorf("%s after its rollback: %w", c, err))
		}
	}
	ce.RollbackErr = errors.Join(errs...)
	slices.Reverse(ce.RolledBack)
	return hint.With(ce, fmt.Sprintf("the failed manifest of %s is not kept; `kubeboot upgrade diff` shows it; look at `crictl ps -a --name %s`, "+
		"`crictl logs CONTAINER` and the kubelet's log (`journalctl -u kubelet`), fix the cause (a patch? the image?) and run the upgrade again",
		failed.component, failed.component))
}

// etcdDataDir is the local member's data directory.
func etcdDataDir(t Target) string {
	if l := t.Cluster.Etcd.Local; l != nil && l.DataDir != "" {
		return l.DataDir
	}
	return config.DefaultEtcdDataDir
}

// backupEtcd copies etcd's data directory into dir, as kubeadm's `cp -r <dataDir> <dir>` does.
func (e *Engine) backupEtcd(t Target, dir string) error {
	src := etcdDataDir(t)
	if err := copyTree(e.FS, src, path.Join(dir, path.Base(src))); err != nil {
		return fmt.Errorf("back up etcd's data %s: %w", src, err)
	}
	fmt.Fprintf(e.Out, "[upgrade/etcd] Backed up etcd's data %s to %q\n", src, e.FS.Path(dir))
	return nil
}

// restoreEtcd replaces etcd's data directory with its backup.
func (e *Engine) restoreEtcd(t Target, dir string) error {
	dst := etcdDataDir(t)
	if err := e.FS.RemoveAll(dst); err != nil {
		return fmt.Errorf("restore etcd's data: remove %s: %w", dst, err)
	}
	if err := copyTree(e.FS, path.Join(dir, path.Base(dst)), dst); err != nil {
		return fmt.Errorf("restore etcd's data from %s: %w", dir, err)
	}
	fmt.Fprintf(e.Out, "[upgrade/etcd] Restored etcd's data %s from %q\n", dst, e.FS.Path(dir))
	return nil
}

// copyTree copies the regular files under src to dst, directories 0700 and files 0600 as etcd keeps them.
func copyTree(fsys nodefs.FS, src, dst string) error {
	files, err := fsys.List(src)
	if err != nil {
		return err
	}
	if err := fsys.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f, strings.TrimSuffix(src, "/")+"/")
		to := path.Join(dst, rel)
		if err := fsys.MkdirAll(path.Dir(to), 0o700); err != nil {
			return err
		}
		b, err := fsys.ReadFile(f)
		if err != nil {
			return err
		}
		if err := fsys.WriteFile(to, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) poll(ctx, wctx context.Context, f func() error) error {
	interval := e.Interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A call the deadline cut short says only that time ran out ("rate: Wait(n=1) would exceed context
		// deadline"); the attempt before it says why the component was not running.
		if wctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-wctx.Done():
			return last
		case <-t.C:
		}
	}
}

func (e *Engine) timeout() time.Duration {
	if e.Timeout <= 0 {
		return config.DefaultUpgradeManifests
	}
	return e.Timeout
}

func (e *Engine) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}
