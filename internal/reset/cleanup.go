package reset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Node paths reset knows besides those of package config.
const (
	TmpDir        = config.KubernetesDir + "/tmp"
	DockershimDir = "/var/lib/dockershim"
	CNIConfigDir  = "/etc/cni/net.d"
)

// KubeconfigFiles are the files kubeadm deletes from /etc/kubernetes; anything else there is the user's and stays.
var KubeconfigFiles = []string{
	config.AdminKubeconfigFile,
	config.SuperAdminKubeconfig,
	config.KubeletKubeconfigFile,
	config.BootstrapKubeletConf,
	config.ControllerManagerConfig,
	config.SchedulerConfig,
}

// runCleanupNode stops everything the kubelet ran and deletes the node's cluster files. The order matters:
// the static Pod manifests go first so the kubelet does not start the control plane again; Pod volumes are
// unmounted before /var/lib/kubelet is emptied so the deletion cannot reach through them. It carries on past
// failures and returns them all at the end, so one stubborn file does not leave the rest of the node as it was.
func runCleanupNode(ctx context.Context, d *Data) error {
	dry := d.Cfg.DryRun
	// Read before the manifests are deleted: the manifest says where etcd keeps its data.
	etcdDir := config.DefaultEtcdDataDir
	if m, err := ReadEtcdManifest(d.FS); err != nil {
		etcdDir = ""
		fmt.Fprintf(d.Out, "  WARNING: %v; the etcd data directory is left alone\n", err)
		d.leave(fmt.Sprintf("the etcd data directory: %v", err))
	} else if m != nil {
		etcdDir = m.DataDir
	}

	var errs []error
	stopped := d.stopKubelet(ctx)
	if err := d.removeManifests(); err != nil {
		// The kubelet would keep the control plane running: stopping its Pods would be undone at once. Leave the
		// node as it was, kubelet included.
		if stopped {
			d.restartKubelet(ctx, true)
		}
		return err
	}
	rt := d.removeSandboxes(ctx)
	if rt != nil {
		defer rt.Close()
	}
	kubeletDirSafe, err := d.unmountKubeletDir()
	if err != nil {
		errs = append(errs, err)
	}

	dirs := []string{staticpod.Dir, d.Cfg.CertificatesDir}
	if kubeletDirSafe {
		dirs = append(dirs, config.KubeletDir)
	}
	if etcdDir != "" {
		dirs = append(dirs, etcdDir)
	}
	if d.FS.Exists(DockershimDir) {
		dirs = append(dirs, DockershimDir)
	}
	if d.Cfg.CleanupTmpDir {
		dirs = append(dirs, TmpDir)
	}
	if d.Cfg.CertificatesDir != config.DefaultCertificatesDir {
		fmt.Fprintf(d.Out, "  WARNING: cleaning a non-default certificates directory: %s\n", d.Cfg.CertificatesDir)
	}
	errs = append(errs, d.emptyDirs(dirs)...)
	errs = append(errs, d.removeFiles(KubeconfigFiles)...)
	errs = append(errs, d.removeLocalEndpoint()...)

	d.restartKubelet(ctx, stopped)
	if rt != nil && !dry {
		// A kubelet that was not stopped may have started Pods again from its cache before it was restarted
		// without credentials; they would otherwise run on, orphaned.
		if n := d.sweepSandboxes(ctx, rt, "again"); n > 0 {
			fmt.Fprintf(d.Out, "  the kubelet had started %d pod sandbox(es) again; removed them\n", n)
		}
	}
	if !stopped && kubeletDirSafe && !dry {
		errs = append(errs, d.emptyKubeletDirAgain()...)
	}
	return errors.Join(errs...)
}

// emptyKubeletDirAgain deletes what a kubelet that could not be stopped wrote into /var/lib/kubelet while the
// node was cleaned: on its way out it checkpoints its state through a temporary file (".<digits>", seen in the
// lab with kubelet 1.37), and it may have set up a Pod's directory again before the second sweep.
func (d *Data) emptyKubeletDirAgain() []error {
	names, err := d.dirEntries(config.KubeletDir)
	if err != nil || len(names) == 0 {
		return nil
	}
	if err := d.emptyDir(config.KubeletDir); err != nil {
		d.leave(fmt.Sprintf("%s: %v", config.KubeletDir, err))
		return []error{err}
	}
	fmt.Fprintf(d.Out, "  the kubelet had written %s into %s while it ran; deleted them\n", plural(len(names), "entry", "entries"), config.KubeletDir)
	return nil
}

// stopKubelet stops the kubelet when the init system can; it reports whether it did.
func (d *Data) stopKubelet(ctx context.Context) bool {
	s, ok := d.InitSystem.(Stopper)
	if !ok {
		return false
	}
	if d.Cfg.DryRun {
		fmt.Fprintf(d.Out, "  [dryrun] would stop the kubelet through %s\n", d.InitSystem.Name())
		return false
	}
	if err := s.Stop(ctx, kubelet.Service); err != nil {
		fmt.Fprintf(d.Out, "  WARNING: could not stop the kubelet through %s: %v; carrying on with it running\n", d.InitSystem.Name(), err)
		return false
	}
	fmt.Fprintf(d.Out, "  stopped the kubelet through %s\n", d.InitSystem.Name())
	return true
}

func (d *Data) removeManifests() error {
	names, err := d.dirEntries(staticpod.Dir)
	if err != nil {
		return fmt.Errorf("list the static Pod manifests: %w", err)
	}
	if len(names) == 0 {
		fmt.Fprintf(d.Out, "  no static Pod manifests in %s\n", staticpod.Dir)
		return nil
	}
	if d.Cfg.DryRun {
		fmt.Fprintf(d.Out, "  [dryrun] would remove the static Pod manifests in %s: %s\n", staticpod.Dir, strings.Join(names, ", "))
		return nil
	}
	if err := d.emptyDir(staticpod.Dir); err != nil {
		return fmt.Errorf("remove the static Pod manifests so the kubelet stops the control plane: %w", err)
	}
	fmt.Fprintf(d.Out, "  removed the static Pod manifests in %s: %s\n", staticpod.Dir, strings.Join(names, ", "))
	return nil
}

// removeSandboxes stops and removes every pod sandbox, which stops its containers. It returns the connection for
// a later sweep, or nil when the runtime cannot be reached (a warning, as in kubeadm: there may be nothing running).
func (d *Data) removeSandboxes(ctx context.Context) cri.Runtime {
	socket := d.Cfg.CRISocket
	rt, err := d.DialRuntime(ctx, socket)
	if err != nil {
		fmt.Fprintf(d.Out, "  WARNING: cannot reach the container runtime: %v\n", err)
		d.leave(fmt.Sprintf("containers: Pods the container runtime still runs, if any, were not stopped (%v); list them with 'crictl --runtime-endpoint %s pods'", err, socket))
		return nil
	}
	if d.Cfg.DryRun {
		pods, err := rt.ListPodSandboxes(ctx, nil)
		if err != nil {
			fmt.Fprintf(d.Out, "  [dryrun] would stop and remove every pod sandbox (listing them failed: %v)\n", err)
		} else {
			fmt.Fprintf(d.Out, "  [dryrun] would stop and remove %d pod sandbox(es)%s\n", len(pods), podList(pods))
		}
		rt.Close()
		return nil
	}
	d.stopAPIServer(ctx, rt)
	d.sweepSandboxes(ctx, rt, "")
	return rt
}

// retireAPIServer stops this node's API server while its etcd member is still one (just before the member is
// removed): a stacked API server talks to its local etcd only, and takes itself out of the EndpointSlice
// default/kubernetes on its way out only if that etcd still serves it (TestNodeLocalEndpoint saw the API server
// hang for its whole grace, and the endpoints keep it until its lease expired, when it was stopped after the member
// was gone). Its manifest goes first, so the kubelet does not start it again; cleanup-node removes the others. The
// returned function puts the manifest back, for a reset that stops because the member could not be removed: the
// kubelet then starts the API server again. Failures only warn: cleanup-node stops whatever still runs.
func (d *Data) retireAPIServer(ctx context.Context) (restore func()) {
	restore = func() {}
	manifest := staticpod.Path(staticpod.APIServerName)
	b, err := d.FS.ReadFile(manifest)
	if err != nil {
		return restore
	}
	if err := d.FS.Remove(manifest); err != nil {
		fmt.Fprintf(d.Out, "  WARNING: remove %s: %v\n", manifest, err)
		return restore
	}
	restore = func() {
		if err := d.FS.WriteFile(manifest, b, 0o600); err != nil {
			fmt.Fprintf(d.Out, "  WARNING: put %s back: %v\n", manifest, err)
			return
		}
		fmt.Fprintf(d.Out, "  put %s back: the kubelet starts the API server again\n", manifest)
	}
	fmt.Fprintf(d.Out, "  removed %s first: the API server stops while its etcd member still serves it\n", manifest)
	rt, err := d.DialRuntime(ctx, d.Cfg.CRISocket)
	if err != nil {
		fmt.Fprintf(d.Out, "  WARNING: cannot reach the container runtime to stop the API server: %v\n", err)
		return restore
	}
	defer rt.Close()
	d.stopAPIServer(ctx, rt)
	return restore
}

// apiServerStopGrace is what this node's API server gets to exit at reset.
const apiServerStopGrace = 10 * time.Second

// stopAPIServer stops this node's API server with SIGTERM before its sandbox is torn down (which kills at once): on
// its way out it takes itself out of the cluster's EndpointSlice default/kubernetes, so clients and load balancers
// that follow the API servers drop it at once, instead of once its lease expires. Its manifest is already gone, so
// the kubelet does not start it again. Failures only warn: the sandbox sweep stops it anyway.
func (d *Data) stopAPIServer(ctx context.Context, rt cri.Runtime) {
	s, ok := rt.(cri.ContainerStopper)
	if !ok {
		return
	}
	ids, err := cri.RunningInKubeSystem(ctx, rt, staticpod.APIServerName)
	if err != nil {
		fmt.Fprintf(d.Out, "  WARNING: cannot list the API server's containers: %v\n", err)
		return
	}
	for _, id := range ids {
		start := time.Now()
		if err := s.StopContainer(ctx, id, apiServerStopGrace); err != nil {
			fmt.Fprintf(d.Out, "  WARNING: stop the API server's container %s: %v\n", shortID(id), err)
			continue
		}
		fmt.Fprintf(d.Out, "  stopped the API server (container %s, %s), which took itself out of the cluster's endpoints\n", shortID(id), time.Since(start).Round(10*time.Millisecond))
	}
}

// sweepSandboxes stops and removes the sandboxes that exist now and returns how many it removed. again is
// empty for the first sweep, which reports even when there is nothing to remove.
func (d *Data) sweepSandboxes(ctx context.Context, rt cri.Runtime, again string) int {
	pods, err := rt.ListPodSandboxes(ctx, nil)
	if err != nil {
		fmt.Fprintf(d.Out, "  WARNING: cannot list the pod sandboxes: %v\n", err)
		d.leave(fmt.Sprintf("containers: listing the pod sandboxes failed (%v); list them with 'crictl pods'", err))
		return 0
	}
	if len(pods) == 0 {
		if again == "" {
			fmt.Fprintln(d.Out, "  no pod sandboxes to remove")
		}
		return 0
	}
	var failed []string
	removed := 0
	for _, p := range pods {
		// Stop first: removing a running sandbox fails on older runtimes, and stopping tears down its network.
		stopErr := rt.StopPodSandbox(ctx, p.ID)
		rmErr := rt.RemovePodSandbox(ctx, p.ID)
		if err := errors.Join(stopErr, rmErr); err != nil {
			fmt.Fprintf(d.Out, "  WARNING: pod sandbox %s (%s): %v\n", shortID(p.ID), podName(p), err)
			failed = append(failed, podName(p))
			continue
		}
		removed++
	}
	if again == "" {
		fmt.Fprintf(d.Out, "  stopped and removed %d pod sandbox(es)%s\n", removed, podList(pods))
	}
	if len(failed) > 0 {
		d.leave(fmt.Sprintf("pod sandboxes that could not be removed: %s (see the warnings above; 'crictl rmp -f <ID>')", strings.Join(failed, ", ")))
	}
	return removed
}

func podName(p cri.PodSandbox) string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

func podList(pods []cri.PodSandbox) string {
	if len(pods) == 0 {
		return ""
	}
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = podName(p)
	}
	return ": " + strings.Join(names, ", ")
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

// unmountKubeletDir unmounts everything below /var/lib/kubelet, most recent first (nested and stacked mounts
// come off in the right order), and checks that nothing is left. It reports whether emptying the directory is
// safe: not while any mount is left below it.
func (d *Data) unmountKubeletDir() (bool, error) {
	dir, err := filepath.EvalSymlinks(d.FS.Path(config.KubeletDir))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		d.leave(fmt.Sprintf("%s: %v", config.KubeletDir, err))
		return false, fmt.Errorf("resolve %s: %w", config.KubeletDir, err)
	}
	points, err := d.Mounts.MountPoints()
	if err != nil {
		d.leave(fmt.Sprintf("%s was not emptied: the mounts below it could not be listed (%v)", config.KubeletDir, err))
		return false, fmt.Errorf("%s not emptied: %w", config.KubeletDir, err)
	}
	below := mountsBelow(points, dir)
	if len(below) == 0 {
		return true, nil
	}
	if d.Cfg.DryRun {
		fmt.Fprintf(d.Out, "  [dryrun] would unmount %d mount(s) below %s: %s\n", len(below), config.KubeletDir, strings.Join(below, ", "))
		return true, nil
	}
	flags := flagsOf(d.Cfg.UnmountFlags)
	var failed []error
	for _, p := range slices.Backward(below) {
		if err := d.Mounts.Unmount(p, flags); err != nil {
			failed = append(failed, err)
		}
	}
	points, err = d.Mounts.MountPoints()
	if err != nil {
		d.leave(fmt.Sprintf("%s was not emptied: the mounts below it could not be listed again (%v)", config.KubeletDir, err))
		return false, fmt.Errorf("%s not emptied: %w", config.KubeletDir, err)
	}
	if left := mountsBelow(points, dir); len(left) > 0 {
		d.leave(fmt.Sprintf("%s was not emptied: still mounted below it: %s", config.KubeletDir, strings.Join(left, ", ")))
		return false, hint.With(fmt.Errorf("%s not emptied: %d mount(s) below it could not be unmounted: %w", config.KubeletDir, len(left), errors.Join(failed...)),
			"unmount them by hand (a busy mount may need unmountFlags: [MNT_DETACH] in a ResetConfiguration), then run reset again")
	}
	fmt.Fprintf(d.Out, "  unmounted %d mount(s) below %s\n", len(below), config.KubeletDir)
	return true, nil
}

// emptyDirs deletes the contents of each node directory and keeps the directory itself, as kubeadm does.
func (d *Data) emptyDirs(dirs []string) []error {
	var errs []error
	var done []string
	for _, dir := range dirs {
		names, err := d.dirEntries(dir)
		if err != nil {
			errs = append(errs, err)
			d.leave(fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		if len(names) == 0 {
			continue
		}
		if d.Cfg.DryRun {
			fmt.Fprintf(d.Out, "  [dryrun] would delete the contents of %s (%s)\n", dir, plural(len(names), "entry", "entries"))
			continue
		}
		if err := d.emptyDir(dir); err != nil {
			errs = append(errs, err)
			d.leave(fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		done = append(done, dir)
	}
	if len(done) > 0 {
		fmt.Fprintf(d.Out, "  deleted the contents of %s\n", strings.Join(done, ", "))
	}
	return errs
}

// dirEntries names what is in the node directory dir; a missing directory is empty.
func (d *Data) dirEntries(dir string) ([]string, error) {
	if err := safeToEmpty(dir); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(d.FS.Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (d *Data) emptyDir(dir string) error {
	names, err := d.dirEntries(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := d.removeAllRetried(filepath.Join(d.FS.Path(dir), n)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete the contents of %s: %w", dir, err)
	}
	return nil
}

// removeRetries bounds removeAllRetried: a kubelet that writes into a Pod's directory does it in a short burst.
const (
	removeRetries    = 5
	removeRetryPause = 20 * time.Millisecond
)

// removeAllRetried deletes p like os.RemoveAll, again when a directory was not empty at the end: a kubelet that
// could not be stopped (no init system) may still be creating files in a Pod's directory while it is deleted. It
// may also have mounted a Pod's volume again after unmountKubeletDir (EBUSY: seen with kubelet 1.37 in the lab),
// so a busy entry gets the mounts below /var/lib/kubelet taken off once more before the next try.
func (d *Data) removeAllRetried(p string) error {
	removeAll := d.removeAll
	if removeAll == nil {
		removeAll = os.RemoveAll
	}
	for attempt := 1; ; attempt++ {
		err := removeAll(p)
		busy := errors.Is(err, syscall.EBUSY)
		if err == nil || (!errors.Is(err, syscall.ENOTEMPTY) && !busy) || attempt == removeRetries {
			return err
		}
		if busy {
			if safe, uerr := d.unmountKubeletDir(); !safe || uerr != nil {
				return err
			}
		}
		time.Sleep(removeRetryPause)
	}
}

// safeToEmpty refuses directories whose contents are the machine's, not the cluster's: a typo in --cert-dir or
// a hand-edited etcd manifest must not empty / or /var.
func safeToEmpty(dir string) error {
	clean := path.Clean(dir)
	if !path.IsAbs(dir) || strings.Count(clean, "/") < 2 {
		return fmt.Errorf("refusing to delete the contents of %q: not an absolute path at least two levels deep", dir)
	}
	return nil
}

func (d *Data) removeFiles(files []string) []error {
	var errs, present []string
	for _, f := range files {
		if !d.FS.Exists(f) {
			continue
		}
		if d.Cfg.DryRun {
			present = append(present, f)
			continue
		}
		if err := d.FS.Remove(f); err != nil {
			errs = append(errs, err.Error())
			d.leave(fmt.Sprintf("%s: %v", f, err))
			continue
		}
		present = append(present, f)
	}
	switch {
	case len(present) > 0 && d.Cfg.DryRun:
		fmt.Fprintf(d.Out, "  [dryrun] would delete %s\n", strings.Join(present, ", "))
	case len(present) > 0:
		fmt.Fprintf(d.Out, "  deleted %s\n", strings.Join(present, ", "))
	}
	if len(errs) > 0 {
		return []error{fmt.Errorf("delete kubeconfig files: %s", strings.Join(errs, "; "))}
	}
	return nil
}

// removeLocalEndpoint deletes what the node-local API endpoint left besides its manifest (which went with the
// others): its state directory and the kubeboot it ran. Only present on a node that ran it.
func (d *Data) removeLocalEndpoint() []error {
	var errs []error
	for _, p := range []string{localendpoint.StateDir, localendpoint.HostBinaryPath} {
		if !d.FS.Exists(p) {
			continue
		}
		if d.Cfg.DryRun {
			fmt.Fprintf(d.Out, "  [dryrun] would delete %s\n", p)
			continue
		}
		if err := d.FS.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("delete %s of the node-local API endpoint: %w", p, err))
			d.leave(fmt.Sprintf("%s: %v", p, err))
			continue
		}
		fmt.Fprintf(d.Out, "  deleted %s\n", p)
	}
	return errs
}

// restartKubelet restarts the kubelet (starts it, if stopped) so that it drops the credentials and Pods of the
// cluster that was just removed.
func (d *Data) restartKubelet(ctx context.Context, stopped bool) {
	verb := "restart"
	if stopped {
		verb = "start"
	}
	if d.Cfg.DryRun {
		if _, none := d.InitSystem.(kubelet.None); none {
			fmt.Fprintln(d.Out, "  [dryrun] no init system found: would ask you to restart the kubelet")
		} else {
			fmt.Fprintf(d.Out, "  [dryrun] would %s the kubelet through %s\n", verb, d.InitSystem.Name())
		}
		return
	}
	err := d.InitSystem.Restart(ctx, kubelet.Service)
	switch {
	case errors.Is(err, kubelet.ErrNoInitSystem):
		fmt.Fprintln(d.Out, "  no init system found: restart the kubelet yourself so it drops the removed cluster's credentials and Pods")
		d.leave("the kubelet: no init system could restart it; restart it yourself, or it keeps the removed cluster's credentials")
	case err != nil:
		fmt.Fprintf(d.Out, "  WARNING: could not %s the kubelet through %s: %v\n", verb, d.InitSystem.Name(), err)
		d.leave(fmt.Sprintf("the kubelet: %s through %s failed (%v); restart it yourself", verb, d.InitSystem.Name(), err))
	default:
		fmt.Fprintf(d.Out, "  %sed the kubelet through %s\n", verb, d.InitSystem.Name())
	}
}

// NotCleaned writes what reset leaves behind: what kubeadm's reset never cleans (the CNI configuration,
// packet filtering rules, users' kubeconfig files) and whatever this run could not clean.
func (d *Data) NotCleaned(w io.Writer) {
	fmt.Fprintln(w, "The reset process does not clean up:")
	cni := "  - the CNI configuration in " + CNIConfigDir
	if names := entryNames(d.FS.Path(CNIConfigDir)); names != "" {
		cni += " (" + names + ")"
	}
	fmt.Fprintln(w, cni+": remove it if this node is to use another network plugin")
	fmt.Fprintln(w, "  - iptables, nftables and IPVS rules written by kube-proxy and the network plugin: flush them by hand,")
	fmt.Fprintln(w, "    e.g. 'iptables -F && iptables -t nat -F && iptables -t mangle -F && iptables -X' and 'ipvsadm --clear'")
	fmt.Fprintln(w, "  - kubeconfig files copied for users, such as $HOME/.kube/config")
	if !d.Cfg.CleanupTmpDir {
		if names := entryNames(d.FS.Path(TmpDir)); names != "" {
			fmt.Fprintf(w, "  - %s (%s), where upgrades keep backups: pass --cleanup-tmp-dir to delete it\n", TmpDir, names)
		}
	}
	for _, l := range d.left {
		fmt.Fprintf(w, "  - %s\n", l)
	}
	fmt.Fprintln(w, "See https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/ for the manual cleanup.")
}

// entryNames lists what is in the directory at the machine path dir, "" if it is empty or unreadable.
func entryNames(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return strings.Join(names, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
