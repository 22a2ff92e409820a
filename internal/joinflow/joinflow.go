// Package joinflow is the phase tree of `kubeboot join`, with kubeadm's phase names: preflight (machine
// checks, then discovery of the cluster and its configuration), kubelet-start (the kubelet's client certificate,
// which kubeboot requests or signs in the kubelet's place, its files and a restart) and kubelet-wait-bootstrap
// (the kubelet running with them) for every node; and for a control-plane node
// (--control-plane) control-plane-prepare (the shared certificates from kube-system/kubeadm-certs, this node's
// own certificates, kubeconfig files and static Pods), etcd-join or control-plane-join/etcd (a new etcd member,
// added as a learner and promoted once it runs), control-plane-join/mark-control-plane and wait-control-plane.
//
// A refused join writes nothing: discovery, the token's access to the cluster, the Node name and, for a control
// plane, the cluster's controlPlaneEndpoint, the certificate key and the health of etcd are all checked, and every
// file rendered, before the first file is written.
package joinflow

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Data is what every join phase works on. Effects go through its fields, so tests and --dry-run substitute them.
type Data struct {
	// Env is the node: its filesystem, the output, the clock and randomness (a control-plane node's certificates),
	// the init system, the runtime (to explain a control plane that does not come up; nil: no diagnosis).
	nodeenv.Env
	Cfg *config.Join
	// Hostname is the machine's hostname as the kubelet derives it, for the node name and --hostname-override.
	Hostname string
	// SystemdResolved says systemd-resolved manages DNS on this machine.
	SystemdResolved bool
	// DryRun means FS keeps every write in memory: the cluster is only read, the kubelet is left alone.
	DryRun bool
	// Discover finds and authenticates the cluster; nil means Discover (over the network).
	Discover func(ctx context.Context, jc *config.JoinConfiguration, out io.Writer) (*clientcmdapi.Config, error)
	// NewClient builds an API client from a kubeconfig (the TLS bootstrap one, and a control plane's admin.conf);
	// nil means client-go over the network.
	NewClient func(kc *clientcmdapi.Config) (kubernetes.Interface, error)
	// PollInterval is how often the kubelet's and etcd's progress is checked; 0 means 100ms.
	PollInterval time.Duration
	// MirrorPodLag is how much longer than an API call a control-plane join waits for the etcd Pods to appear in
	// the API; 0 means the kubelet's default syncFrequency, a minute (see etcdCluster).
	MirrorPodLag time.Duration
	// NewEtcd connects to the cluster's etcd; nil means internal/etcd over the network.
	NewEtcd func(opts etcd.Options) (EtcdCluster, error)
	// LearnerSnapshots reads how many raft snapshots this node's new etcd member has received (its metrics on
	// loopback); nil means etcd.SnapshotsReceived.
	LearnerSnapshots func(ctx context.Context) (int, error)
	// Executable is the running kubeboot, which kubelet-start installs for the node-local API endpoint; nil:
	// os.Executable.
	Executable func() (string, error)

	cluster      *Cluster
	cpJoin       *controlPlaneJoin
	bootstrapped bool
	// apiServerWithEtcd: the control-plane phase leaves the kube-apiserver manifest to etcd-join (see Select).
	apiServerWithEtcd bool
	// kubeletWithEtcd: kubelet-start leaves the kubelet's flags and config, and its start, to etcd-join (see
	// Select); pendingKubelet is what kubelet-start rendered for it.
	kubeletWithEtcd bool
	pendingKubelet  *kubelet.JoinFiles
}

// Select tells d which phases the run with opts runs, before it starts. When it runs both control-plane-prepare's
// control-plane phase and etcd-join, the kube-apiserver manifest is written by etcd-join, right after this node's
// etcd manifest, instead of with the controller-manager's and the scheduler's. Written earlier, the API server
// starts with the kubelet and finds no etcd until this join has had its turn to add a member: its etcd client's
// reconnect back-off then grows, and it served 10.7 s after its etcd was ready in a join that had waited 13 s for
// the turn. The files a join leaves are the same.
//
// Likewise, when it runs both kubelet-start and etcd-join, a control plane's kubelet starts in etcd-join, once this
// node's etcd member is added, rather than in kubelet-start. The kubelet registers its Node with this node's own API
// server, which serves only once the member is promoted, and it retries with a growing back-off (0.1 s doubling to
// 7 s). Started before a join that waits its turn for etcd (8 s, then etcd's 5 s health interval after the previous
// member's promotion), the kubelet registered 5 s after its API server served, which held up mark-control-plane
// and the Node's readiness; started when the member is added, its retries are still short when the API server
// serves.
func (d *Data) Select(opts workflow.Options) {
	phases := Phases()
	d.apiServerWithEtcd = workflow.Selected(phases, opts, "control-plane-prepare/control-plane") &&
		workflow.Selected(phases, opts, "etcd-join")
	d.kubeletWithEtcd = workflow.Selected(phases, opts, "kubelet-start") && workflow.Selected(phases, opts, "etcd-join")
}

// Bootstrapped reports whether this run saw the kubelet finish its TLS bootstrap.
func (d *Data) Bootstrapped() bool { return d.bootstrapped }

// ControlPlane reports whether this join makes a control-plane node.
func (d *Data) ControlPlane() bool { return d.Cfg.Join.ControlPlane != nil }

// Phases is the join phase tree, in kubeadm's order and with its names (1.36 and later: control-plane-join has no
// etcd subphase). The control-plane phases are skipped for a worker. The kubelet of a control-plane node bootstraps
// against this node's own API server, which needs the local etcd member, so etcd-join adds the member between
// kubelet-start and kubelet-wait-bootstrap.
func Phases() []workflow.Phase[*Data] {
	cp := (*Data).ControlPlane
	return []workflow.Phase[*Data]{
		{Name: "preflight", Short: "Run join pre-flight checks, then discover the cluster and read its configuration", Run: runPreflight},
		{Name: "control-plane-prepare", Short: "Prepare the machine for serving a control plane", RunIf: cp, Phases: []workflow.Phase[*Data]{
			{Name: "download-certs", Short: "Download certificates shared among control-plane nodes from the " + copycerts.SecretName + " Secret",
				Run: runDownloadCerts, RunIf: func(d *Data) bool { return cp(d) && d.Cfg.Join.ControlPlane.CertificateKey != "" }},
			{Name: "certs", Short: "Generate the certificates for the new control plane components", Run: runControlPlaneCerts},
			{Name: "kubeconfig", Short: "Generate the kubeconfig for the new control plane components", Run: runControlPlaneKubeconfigs},
			{Name: "control-plane", Short: "Generate the manifests for the new control plane components", Run: runControlPlaneManifests},
		}},
		// Hidden as in kubeadm; preflight has checked the same before anything was written.
		{Name: "check-etcd", Short: "Check that the etcd cluster can take a new member", Run: runCheckEtcd, RunIf: cp, Hidden: true},
		{Name: "kubelet-start", Short: "Write kubelet settings, certificates and (re)start the kubelet", Run: runKubeletStart},
		{Name: "etcd-join", Short: "Join etcd for control plane nodes", Run: runEtcdJoin, RunIf: cp},
		{Name: "kubelet-wait-bootstrap", Short: "Wait for the kubelet to bootstrap itself", Run: runKubeletWaitBootstrap},
		{Name: "control-plane-join", Short: "Join a machine as a control plane instance", RunIf: cp, Phases: []workflow.Phase[*Data]{
			{Name: "mark-control-plane", Short: "Mark a node as a control-plane", Run: runMarkControlPlane},
		}},
		{Name: "wait-control-plane", Short: "Wait for the control plane to start", Run: runWaitControlPlane,
			RunIf: func(d *Data) bool { return cp(d) && !d.DryRun }},
	}
}

func runPreflight(ctx context.Context, d *Data) error {
	if d.DryRun {
		fmt.Fprintln(d.Out, "  dry run: checks that need the machine are still run, the cluster is only read, nothing is changed")
	}
	jc := d.Cfg.Join
	if err := preflight.Run(ctx, preflight.JoinChecks(*d.Cfg, d.Preflight, d.ControlPlane()), jc.NodeRegistration.IgnorePreflightErrors, d.Out); err != nil {
		return err
	}
	// As kubeadm's preflight does: a join that cannot trust or read the cluster stops here.
	if _, err := d.Cluster(ctx); err != nil {
		return err
	}
	if !d.ControlPlane() {
		return nil
	}
	return checkControlPlane(ctx, d)
}

func (d *Data) interval() time.Duration {
	if d.PollInterval > 0 {
		return d.PollInterval
	}
	return 100 * time.Millisecond
}

// turnInterval is how often a join waiting for its turn to add an etcd member asks again.
func (d *Data) turnInterval() time.Duration {
	if d.PollInterval > 0 {
		return d.PollInterval
	}
	return time.Second
}
