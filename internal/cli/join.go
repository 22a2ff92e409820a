package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/dryrun"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/joinflow"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// joinOptions are join's flags before they become configuration.
type joinOptions struct {
	configFile string
	rootfs     string
	fs         *pflag.FlagSet
	// raw values behind the pointer fields of config.JoinFlags; only flags the user set are copied.
	token, discoveryToken, discoveryFile, tlsBootstrapToken, nodeName, criSocket, certKey, advertise, patches string
	caHashes, ignore, skip                                                                                    []string
	unsafeSkip, controlPlane, dryRun                                                                          bool
	bindPort                                                                                                  int32
}

func (o *joinOptions) register(fs *pflag.FlagSet, withSkipPhases bool) {
	o.fs = fs
	fs.StringVar(&o.configFile, "config", "", "path to a kubeadm configuration file with a JoinConfiguration (kubeadm.k8s.io/v1beta4 or v1beta3)")
	fs.StringVar(&o.token, "token", "", "the bootstrap token for both discovery and TLS bootstrap, unless --discovery-token or --tls-bootstrap-token is given")
	fs.StringVar(&o.discoveryToken, "discovery-token", "", "the bootstrap token that authenticates cluster-info during token discovery")
	fs.StringSliceVar(&o.caHashes, "discovery-token-ca-cert-hash", nil, "the cluster CA's public key pin, sha256:<hex> (repeatable); init prints it")
	fs.BoolVar(&o.unsafeSkip, "discovery-token-unsafe-skip-ca-verification", false, "trust cluster-info without a CA pin (anyone who knows the token can then impersonate the control plane)")
	fs.StringVar(&o.discoveryFile, "discovery-file", "", "a kubeconfig (file path or https URL) to discover and trust the cluster from, instead of token discovery")
	fs.StringVar(&o.tlsBootstrapToken, "tls-bootstrap-token", "", "the bootstrap token the kubelet authenticates with for its TLS bootstrap")
	fs.StringVar(&o.nodeName, "node-name", "", "the node's name; default: the hostname")
	fs.StringVar(&o.criSocket, "cri-socket", "", "the container runtime's CRI socket; default: "+config.DefaultCRISocket)
	fs.StringSliceVar(&o.ignore, "ignore-preflight-errors", nil, "checks whose errors become warnings, e.g. 'IsPrivilegedUser,Swap'; 'all' ignores every check")
	fs.BoolVar(&o.dryRun, "dry-run", false, "change nothing: read the cluster, render in memory and print what would be written (secrets named, not shown)")
	fs.BoolVar(&o.controlPlane, "control-plane", false, "join as a control-plane node: the cluster needs a controlPlaneEndpoint, and --certificate-key (or the shared certificates copied here)")
	fs.StringVar(&o.certKey, "certificate-key", "", "with --control-plane: the key that decrypts the uploaded certificates")
	fs.StringVar(&o.advertise, "apiserver-advertise-address", "", "with --control-plane: the address this node's API server advertises")
	fs.Int32Var(&o.bindPort, "apiserver-bind-port", config.DefaultAPIBindPort, "with --control-plane: the port this node's API server binds to")
	fs.StringVar(&o.patches, "patches", "", patchesUsage)
	if withSkipPhases {
		fs.StringSliceVar(&o.skip, "skip-phases", nil, "phases to skip, e.g. 'preflight'")
	}
}

// resolved turns the flags the user set, and the endpoint argument, into config.JoinFlags.
func (o *joinOptions) resolved(endpoint string) config.JoinFlags {
	set := o.fs.Changed
	str := func(name, v string) *string { return changedString(o.fs, name, v) }
	boolean := func(name string, v bool) *bool {
		if set(name) {
			return &v
		}
		return nil
	}
	f := config.JoinFlags{
		APIServerEndpoint:                      endpoint,
		Token:                                  str("token", o.token),
		DiscoveryToken:                         str("discovery-token", o.discoveryToken),
		DiscoveryTokenUnsafeSkipCAVerification: boolean("discovery-token-unsafe-skip-ca-verification", o.unsafeSkip),
		DiscoveryFile:                          str("discovery-file", o.discoveryFile),
		TLSBootstrapToken:                      str("tls-bootstrap-token", o.tlsBootstrapToken),
		ControlPlane:                           boolean("control-plane", o.controlPlane),
		CertificateKey:                         str("certificate-key", o.certKey),
		APIServerAdvertiseAddress:              str("apiserver-advertise-address", o.advertise),
		NodeName:                               str("node-name", o.nodeName),
		CRISocket:                              str("cri-socket", o.criSocket),
		IgnorePreflightErrors:                  o.ignore,
		SkipPhases:                             o.skip,
		DryRun:                                 boolean("dry-run", o.dryRun),
		Patches:                                str("patches", o.patches),
	}
	if set("discovery-token-ca-cert-hash") {
		f.DiscoveryTokenCACertHashes = o.caHashes
	}
	if set("apiserver-bind-port") {
		f.APIServerBindPort = &o.bindPort
	}
	return f
}

// data loads the configuration and builds the phases' data.
func (o *joinOptions) data(stdout io.Writer, args []string) (*joinflow.Data, error) {
	endpoint := ""
	if len(args) > 0 {
		endpoint = args[0]
	}
	file, err := readConfigFile(o.configFile, "join-defaults")
	if err != nil {
		return nil, err
	}
	host := config.HostEnvironment()
	cfg, warnings, err := config.ResolveJoin(file, o.resolved(endpoint), host)
	if err != nil {
		where := "the flags"
		if o.configFile != "" {
			where = o.configFile
		}
		return nil, hint.With(fmt.Errorf("invalid configuration in %s: %w", where, err), "fix the fields named above; nothing was written")
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "[config] WARNING: %s\n", w)
	}
	// An existing ca.crt is kept on a dry run, as on a real join.
	fsys, err := nodeRoot(o.rootfs, cfg.Join.DryRun)
	if err != nil {
		return nil, err
	}
	dry := cfg.Join.DryRun
	hostname := kubeletHostname(host, stdout)
	return &joinflow.Data{
		Env:             nodeenv.Host(fsys, stdout),
		Cfg:             cfg,
		Hostname:        hostname,
		SystemdResolved: host.SystemdResolvedActive != nil && host.SystemdResolvedActive(),
		DryRun:          dry,
		Executable:      nodeenv.Executable,
	}, nil
}

func newJoinCmd(stdout io.Writer) *cobra.Command {
	o := &joinOptions{}
	cmd := &cobra.Command{
		Use:   "join [api-server-endpoint]",
		Short: "Make this machine a worker or control-plane node of an existing cluster",
		Long: `Make this machine a worker node, or with --control-plane a control-plane node, of an existing cluster.

The cluster is discovered and authenticated before anything is written: with a bootstrap token, cluster-info must
be signed with it and its CA must match --discovery-token-ca-cert-hash; with --discovery-file, the kubeconfig given
is trusted. Then kubeboot requests the kubelet's client certificate with the bootstrap token (a
CertificateSigningRequest, which the cluster approves and signs as it would the kubelet's own), writes kubelet.conf
with it and the kubelet's configuration from the cluster's kubelet-config, starts the kubelet and waits until it is
healthy. The kubelet so registers its Node at once, and the token is never written to disk.

With --control-plane (the cluster must have a controlPlaneEndpoint), the certificates control-plane nodes share
are decrypted from kube-system/kubeadm-certs with --certificate-key before anything is written, and the etcd cluster
must be healthy enough to grow; then this node gets its own certificates, kubeconfig files and static Pods, and its
etcd member is added as a learner and promoted once it runs.

Runs, in order (each is also 'kubeboot join phase <name>' and can be left out with --skip-phases):
` + phaseList(joinflow.Phases()),
		Example: "  kubeboot join 10.0.0.10:6443 --token abcdef.0123456789abcdef \\\n" +
			"      --discovery-token-ca-cert-hash sha256:<hex printed by init>\n" +
			"  kubeboot join lb.example:6443 --token abcdef.0123456789abcdef \\\n" +
			"      --discovery-token-ca-cert-hash sha256:<hex printed by init> --control-plane --certificate-key <key printed by init>",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runJoin(cmd, o, stdout, "", args)
		},
	}
	o.register(cmd.Flags(), true)
	cmd.AddCommand(newJoinPhaseCmd(stdout, joinflow.Phases()))
	return cmd
}

func runJoin(cmd *cobra.Command, o *joinOptions, stdout io.Writer, only string, args []string) error {
	o.rootfs = rootfsOf(cmd)
	d, err := o.data(stdout, args)
	if err != nil {
		return err
	}
	runner := workflow.Runner[*joinflow.Data]{Phases: joinflow.Phases(), Out: stdout}
	opts := workflow.Options{Skip: d.Cfg.Join.SkipPhases, Only: only, Hold: holdNode(d.FS, cmd, d.DryRun)}
	d.Select(opts)
	start := time.Now()
	if err := runner.Run(cmd.Context(), d, opts); err != nil {
		return interrupted(cmd, err)
	}
	if d.DryRun {
		return dryrun.Report(stdout, d.FS)
	}
	if !d.Bootstrapped() {
		if only == "" {
			fmt.Fprintf(stdout, "\nThe kubelet's files are written, but this run did not wait for its TLS bootstrap: check that %s appears.\n",
				config.KubeletKubeconfigFile)
		}
		return nil
	}
	if only != "" {
		return nil
	}
	took := time.Since(start).Round(10 * time.Millisecond)
	if d.ControlPlane() {
		fmt.Fprintf(stdout, `
This node has joined the cluster and a new control plane instance was created (in %s):
* The shared certificates were downloaded (or found here) and this node's own certificates made from them.
* With stacked etcd, this node's etcd member joined as a learner and was promoted to a voting member.
* The kubelet received its client certificate (%s).
* The control-plane label and taint were applied to this node's Node.
* This node's API server, controller-manager and scheduler are healthy.

To administer the cluster from this node, run as a regular user:

  mkdir -p $HOME/.kube
  sudo cp -i %s $HOME/.kube/config
  sudo chown $(id -u):$(id -g) $HOME/.kube/config

Run 'kubectl get nodes' to see this node join the cluster.
`, took, config.KubeletKubeconfigFile, config.AdminKubeconfigFile)
		return nil
	}
	fmt.Fprintf(stdout, `
This node has joined the cluster (in %s):
* A certificate signing request was sent to the API server and the kubelet's client certificate received.
* The kubelet talks to the API server with it now (%s).

Run 'kubectl get nodes' on a control-plane node to see this node join the cluster.
`, took, config.KubeletKubeconfigFile)
	return nil
}

// newJoinPhaseCmd builds `join phase <name> [<sub>|all] [api-server-endpoint]` from the phase tree, as kubeadm does.
func newJoinPhaseCmd(stdout io.Writer, phases []workflow.Phase[*joinflow.Data]) *cobra.Command {
	return phaseCommands("join", phases, func(use, short, path string) *cobra.Command {
		o := &joinOptions{}
		c := &cobra.Command{
			Use:   use + " [api-server-endpoint]",
			Short: short,
			Args:  cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runJoin(cmd, o, stdout, path, args)
			},
		}
		o.register(c.Flags(), false)
		return c
	})
}
