// Package joinflow is the phase tree of `kubeboot join` for worker nodes, with kubeadm v1.34's phase names:
// preflight (machine checks, then discovery of the cluster and its configuration), kubelet-start (the kubelet's
// files and a restart) and kubelet-wait-bootstrap (the kubelet's TLS bootstrap).
//
// A refused join writes nothing: discovery, the token's access to the cluster and the Node name are all checked,
// and every file rendered, before the first file is written.
package joinflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Data is what every join phase works on. Effects go through its fields, so tests and --dry-run substitute them.
type Data struct {
	Cfg *config.Join
	// FS is the node's filesystem: the real root, a --rootfs directory, or a --dry-run scratch directory.
	FS nodefs.FS
	// Out receives the phases' detail lines (the runner prints one progress line per phase).
	Out io.Writer
	// Preflight is the machine as preflight checks see it.
	Preflight preflight.Env
	// InitSystem restarts the kubelet.
	InitSystem kubelet.InitSystem
	// Hostname is the machine's hostname as the kubelet derives it, for the node name and --hostname-override.
	Hostname string
	// SystemdResolved says systemd-resolved manages DNS on this machine.
	SystemdResolved bool
	// DryRun means FS is a scratch directory: the cluster is only read, the kubelet is left alone.
	DryRun bool
	// Discover finds and authenticates the cluster; nil means Discover (over the network).
	Discover func(ctx context.Context, jc *config.JoinConfiguration, out io.Writer) (*clientcmdapi.Config, error)
	// NewClient builds an API client from the TLS bootstrap kubeconfig; nil means client-go over the network.
	NewClient func(kc *clientcmdapi.Config) (kubernetes.Interface, error)
	// PollInterval is how often the kubelet's progress is checked; 0 means 100ms.
	PollInterval time.Duration

	cluster      *Cluster
	bootstrapped bool
}

// Bootstrapped reports whether this run saw the kubelet finish its TLS bootstrap.
func (d *Data) Bootstrapped() bool { return d.bootstrapped }

// ErrControlPlaneUnsupported refuses `join --control-plane` until kubeboot can join control-plane nodes.
var ErrControlPlaneUnsupported = errors.New("joining a control-plane node (--control-plane, or controlPlane in the " +
	"JoinConfiguration) is not supported yet")

// CheckSupported refuses what this join workflow cannot do, before any phase runs.
func CheckSupported(cfg *config.Join) error {
	if cfg.Join.ControlPlane != nil {
		return ErrControlPlaneUnsupported
	}
	return nil
}

// Phases is the join phase tree, in kubeadm's order and with kubeadm's names. kubeadm's control-plane phases
// (control-plane-prepare, check-etcd, etcd-join, control-plane-join, wait-control-plane) are left out: they only
// run for --control-plane, which is refused.
func Phases() []workflow.Phase[*Data] {
	return []workflow.Phase[*Data]{
		{Name: "preflight", Short: "Run join pre-flight checks, then discover the cluster and read its configuration", Run: runPreflight},
		{Name: "kubelet-start", Short: "Write kubelet settings, certificates and (re)start the kubelet", Run: runKubeletStart},
		// Hidden as in kubeadm: it is the tail of kubelet-start, split off so a control-plane join can run
		// etcd-join in between.
		{Name: "kubelet-wait-bootstrap", Short: "Wait for the kubelet to bootstrap itself", Run: runKubeletWaitBootstrap,
			RunIf: func(d *Data) bool { return d.cluster == nil || kubeletLocalMode(d.cluster.Config.FeatureGates) }, Hidden: true},
	}
}

func runPreflight(ctx context.Context, d *Data) error {
	if err := CheckSupported(d.Cfg); err != nil {
		return err
	}
	if d.DryRun {
		fmt.Fprintln(d.Out, "  dry run: checks that need the machine are still run, the cluster is only read, nothing is changed")
	}
	jc := d.Cfg.Join
	if err := preflight.Run(ctx, preflight.JoinChecks(*d.Cfg, d.Preflight, false), jc.NodeRegistration.IgnorePreflightErrors, d.Out); err != nil {
		return err
	}
	// As kubeadm's preflight does: a join that cannot trust or read the cluster stops here.
	_, err := d.Cluster(ctx)
	return err
}

func (d *Data) interval() time.Duration {
	if d.PollInterval > 0 {
		return d.PollInterval
	}
	return 100 * time.Millisecond
}
