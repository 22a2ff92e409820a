package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/renewal"
	"kubeboot.dev/kubeboot/internal/restart"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/upgrade"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// upgradeDeps are upgrade's effects beyond the node's files; tests replace them.
type upgradeDeps struct {
	in     io.Reader
	client func(kubeconfig string) (kubernetes.Interface, error)
	// etcd reaches the cluster's etcd from this control-plane node; done releases it.
	etcd func(fsys nodefs.FS, certDir string) (upgrade.EtcdStatus, func(), error)
	// images reaches this node's container runtime to pull the target's images; done releases it.
	images func(ctx context.Context, fsys nodefs.FS) (upgrade.ImagePuller, func(), error)
	// healthJob runs kubeadm's CreateJob check in apply's preflight.
	healthJob bool
	// engine builds the static Pod upgrade's effects (mirror Pods, health, CRI, renewal).
	engine func(ctx context.Context, d *upgrade.Data, kubeconfig string, renew bool, out io.Writer) (*upgrade.Engine, func(), error)
}

func hostUpgradeDeps() upgradeDeps {
	return upgradeDeps{
		in: os.Stdin,
		client: func(kubeconfig string) (kubernetes.Interface, error) {
			rc, err := kubeclient.LoadFile(kubeconfig)
			if err != nil {
				return nil, fmt.Errorf("couldn't create a Kubernetes client from file %q: %w", kubeconfig, err)
			}
			return kubeclient.New(rc, kubeclient.Init)
		},
		etcd: func(fsys nodefs.FS, certDir string) (upgrade.EtcdStatus, func(), error) {
			c, err := etcd.Connect(fsys, certDir, etcd.Options{})
			if err != nil {
				return nil, nil, err
			}
			return c, func() { c.Close() }, nil
		},
		engine:    hostEngine,
		healthJob: true,
		images: func(ctx context.Context, fsys nodefs.FS) (upgrade.ImagePuller, func(), error) {
			socket := nodeCRISocket(fsys)
			rt, err := cri.Dial(ctx, socket)
			if err != nil {
				return nil, nil, err
			}
			return rt, func() { rt.Close() }, nil
		},
	}
}

// hostEngine reaches this node's static Pods and their containers through its container runtime (their mirror
// Pods through the API when the runtime cannot be reached), its components' health endpoints and its certificates.
func hostEngine(ctx context.Context, d *upgrade.Data, kubeconfig string, renew bool, out io.Writer) (*upgrade.Engine, func(), error) {
	cluster := d.Cluster()
	name, err := upgrade.NodeNameFromKubeletConf(d.FS)
	if d.NodeName != "" {
		name, err = d.NodeName, nil
	}
	if err != nil {
		return nil, nil, err
	}
	socket := nodeCRISocket(d.FS)
	nc := &restart.NodeCluster{FS: d.FS, CertDir: cluster.CertificatesDir, Kubeconfig: kubeconfig}
	e := &upgrade.Engine{
		FS:       d.FS,
		Mirror:   &upgrade.APIMirror{Client: d.Client, NodeName: name},
		Probe:    &restart.NodeProber{FS: d.FS, Cluster: nc},
		Diagnose: initflow.NewDiagnoser(socket, d.FS, cri.DialRuntime),
		Out:      out,
	}
	if d.Timeouts != nil && d.Timeouts.UpgradeManifests != nil {
		e.Timeout = d.Timeouts.UpgradeManifests.Duration
	}
	if renew {
		set := renewal.NewSet(d.FS, cluster.CertificatesDir, config.KubernetesDir, cluster.Etcd.External != nil)
		e.Renew = upgrade.NewCertRenewer(set, &cluster.ClusterConfiguration, pki.SystemSource(), out)
	}
	done := func() {}
	if !d.DryRun {
		// Through the runtime the engine sees a new static Pod as soon as its container starts (RuntimeMirror);
		// without it, through the mirror Pods.
		if rt, err := cri.Dial(ctx, socket); err == nil {
			e.Mirror = &upgrade.RuntimeMirror{Runtime: rt}
			e.Containers = rt
			e.Restart = &restart.Restarter{Runtime: rt, Probe: e.Probe, Cluster: nc, Out: out}
			done = func() { rt.Close() }
		} else {
			fmt.Fprintf(out, "[upgrade] WARNING: %v; following the control plane's Pods through their mirror Pods instead\n", err)
		}
	}
	return e, done, nil
}

// upgradeOptions are the flags of the upgrade commands.
type upgradeOptions struct {
	fs                                *pflag.FlagSet
	configFile, kubeconfig, patches   string
	yes, force, dryRun                bool
	etcdUpgrade, certRenewal          bool
	allowExperimental, allowRC        bool
	skipPhases, ignorePreflightErrors []string
	output                            string
	printConfig                       bool
	contextLines                      int
}

func (o *upgradeOptions) register(fs *pflag.FlagSet, cmd string, withSkipPhases bool) {
	o.fs = fs
	fs.StringVar(&o.configFile, "config", "", "path to a kubeadm configuration file holding an UpgradeConfiguration (kubeadm.k8s.io/v1beta4)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", config.AdminKubeconfigFile, "the kubeconfig file to use when talking to the cluster")
	if cmd == "diff" {
		fs.IntVarP(&o.contextLines, "context-lines", "c", upgrade.DefaultContextLines, "how many lines of context in the diff")
		return
	}
	fs.BoolVar(&o.etcdUpgrade, "etcd-upgrade", true, "perform the upgrade of etcd")
	if cmd == "plan" || cmd == "apply" {
		fs.BoolVar(&o.printConfig, "print-config", false, "whether the configuration file that will be used in the upgrade should be printed or not")
	}
	if cmd == "plan" {
		fs.StringSliceVar(&o.ignorePreflightErrors, "ignore-preflight-errors", nil, "accepted for kubeadm compatibility; kubeboot's upgrade checks are refusals")
		fs.StringVarP(&o.output, "output", "o", "text", "output format: text, json or yaml")
		fs.BoolVar(&o.allowExperimental, "allow-experimental-upgrades", false, "show unstable versions of Kubernetes as an upgrade alternative")
		fs.BoolVar(&o.allowRC, "allow-release-candidate-upgrades", false, "show release candidate versions of Kubernetes as an upgrade alternative")
		return
	}
	fs.BoolVar(&o.dryRun, "dry-run", false, "do not change any state, just output what actions would be performed")
	fs.BoolVar(&o.certRenewal, "certificate-renewal", true, "perform the renewal of certificates used by components changed during upgrades")
	fs.StringVar(&o.patches, "patches", "", patchesUsage)
	fs.StringSliceVar(&o.ignorePreflightErrors, "ignore-preflight-errors", nil, "accepted for kubeadm compatibility; kubeboot's upgrade checks are refusals (see --force)")
	if withSkipPhases {
		fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip, e.g. 'addon/kube-proxy'")
	}
	if cmd == "apply" {
		fs.BoolVarP(&o.yes, "yes", "y", false, "perform the upgrade and do not prompt for confirmation (non-interactive mode)")
		fs.BoolVarP(&o.force, "force", "f", false, "force upgrading although some requirements might not be met; implies non-interactive mode")
		fs.BoolVar(&o.allowExperimental, "allow-experimental-upgrades", false, "allow upgrading to alpha/beta/release candidate versions of Kubernetes")
		fs.BoolVar(&o.allowRC, "allow-release-candidate-upgrades", false, "allow upgrading to a release candidate version of Kubernetes")
	}
}

// upgradeConfig loads --config's UpgradeConfiguration, defaulted; without --config, the defaults.
func (o *upgradeOptions) upgradeConfig() (*config.UpgradeConfiguration, error) {
	u := &config.UpgradeConfiguration{}
	if o.configFile != "" {
		b, err := readConfigFile(o.configFile, "upgrade-defaults")
		if err != nil {
			return nil, err
		}
		docs, err := config.Load(b)
		if err != nil {
			return nil, hint.With(fmt.Errorf("invalid configuration in %s: %w", o.configFile, err), "fix the fields named above; nothing was changed")
		}
		if docs.Upgrade == nil {
			return nil, hint.With(fmt.Errorf("%s holds no %s", o.configFile, config.KindUpgrade), "`kubeboot config print upgrade-defaults` prints one to start from")
		}
		u = docs.Upgrade
	}
	config.SetUpgradeDefaults(u)
	if err := config.ValidateUpgrade(u); err != nil {
		return nil, fmt.Errorf("invalid configuration in %s: %w", o.configFile, err)
	}
	return u, nil
}

// boolFlag is the flag's value when the user set it, else the configuration's (kubeadm's ValueFromFlagsOrConfig).
func (o *upgradeOptions) boolFlag(name string, flag bool, cfg *bool) bool {
	if o.fs.Changed(name) || cfg == nil {
		return flag
	}
	return *cfg
}

func newUpgradeCmd(stdout io.Writer, deps upgradeDeps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade your cluster smoothly to a newer version with this command",
		Long: `Upgrade a kubeadm or kubeboot cluster one minor at a time, to a version of kubeboot's release table:
  kubeboot upgrade plan                  what can be upgraded, and to which versions
  kubeboot upgrade apply vX.Y.Z          on one control-plane node: its control plane, then the cluster's configuration and addons
  kubeboot upgrade node                  on every other node: its control plane if any, then its kubelet configuration
  kubeboot upgrade diff [vX.Y.Z]         the manifest changes an upgrade would make on this node
The kubelet binary is upgraded with the system's package manager, as with kubeadm.`,
	}
	cmd.AddCommand(newUpgradePlanCmd(stdout, deps), newUpgradeApplyCmd(stdout, deps), newUpgradeNodeCmd(stdout, deps), newUpgradeDiffCmd(stdout, deps))
	return cmd
}

func newUpgradePlanCmd(stdout io.Writer, deps upgradeDeps) *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "plan [version]",
		Short: "Check which versions are available to upgrade to and validate whether your current cluster is upgradeable",
		Long: `Check which versions are available to upgrade to, from kubeboot's release table (nothing is fetched from
the internet), and validate whether the cluster is upgradeable. With [version], plan for that version only.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.output != "text" && o.output != "json" && o.output != "yaml" {
				return fmt.Errorf("--output %q: kubeboot prints text, json or yaml", o.output)
			}
			u, err := o.upgradeConfig()
			if err != nil {
				return err
			}
			want := u.Plan.KubernetesVersion
			if len(args) == 1 {
				want = args[0]
			}
			client, err := deps.client(o.kubeconfig)
			if err != nil {
				return err
			}
			var progress io.Writer = io.Discard
			if o.output == "text" {
				progress = stdout
			}
			fmt.Fprintln(progress, "[upgrade/config] Making sure the configuration is correct:")
			st, err := upgrade.ReadState(cmd.Context(), client, progress)
			if err != nil {
				return err
			}
			fsys, err := rootFS(rootfsOf(cmd))
			if err != nil {
				return err
			}
			if err := upgrade.CheckHealth(cmd.Context(), client, fsys, nil, false); err != nil && fsys.Exists(staticpod.Path(staticpod.APIServerName)) {
				return err
			}
			if o.boolFlag("print-config", o.printConfig, u.Plan.PrintConfig) {
				if err := printClusterConfig(progress, &st.Config); err != nil {
					return err
				}
			}
			fmt.Fprintln(progress, "[upgrade] Fetching available versions to upgrade to")
			fmt.Fprintf(progress, "[upgrade/versions] Cluster version: %s\n", st.ClusterVersion)
			plan, err := upgrade.Plan(st, want, o.boolFlag("etcd-upgrade", o.etcdUpgrade, u.Plan.EtcdUpgrade))
			if err != nil {
				return err
			}
			if len(plan.AvailableUpgrades) == 0 {
				// kubeadm prints nothing then, in any output format (cmd/upgrade/plan.go).
				fmt.Fprintln(progress, "[upgrade/plan] Awesome, you're up-to-date! Enjoy!")
				return nil
			}
			if o.output != "text" {
				return printObject(stdout, o.output, plan)
			}
			fmt.Fprintln(stdout)
			return plan.PrintText(stdout)
		},
	}
	o.register(cmd.Flags(), "plan", false)
	addPrinterFlags(cmd)
	return cmd
}

func newUpgradeApplyCmd(stdout io.Writer, deps upgradeDeps) *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "apply [version]",
		Short: "Upgrade your Kubernetes cluster to the specified version",
		Long: `Upgrade this control-plane node and the cluster's configuration and addons to the specified version.
Runs these phases (each is also 'kubeboot upgrade apply phase <name>' and can be left out with --skip-phases):
` + phaseList(upgrade.ApplyPhases()),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpgrade(cmd, o, args, stdout, deps, false, "")
		},
	}
	o.register(cmd.Flags(), "apply", true)
	cmd.AddCommand(phaseCommands("upgrade apply", upgrade.ApplyPhases(), func(use, short, path string) *cobra.Command {
		po := &upgradeOptions{}
		c := &cobra.Command{Use: use + " [version]", Short: short, Args: cobra.MaximumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			return runUpgrade(cmd, po, args, stdout, deps, false, path)
		}}
		po.register(c.Flags(), "apply", false)
		return c
	}))
	return cmd
}

func newUpgradeNodeCmd(stdout io.Writer, deps upgradeDeps) *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Upgrade commands for a node in the cluster",
		Long: `Upgrade this node to the version kube-system/kubeadm-config holds (set by 'upgrade apply'): on a control-plane
node its static Pods as 'upgrade apply' does, on every node its kubelet configuration. Runs these phases:
` + phaseList(upgrade.NodePhases()),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUpgrade(cmd, o, nil, stdout, deps, true, "")
		},
	}
	o.register(cmd.Flags(), "node", true)
	cmd.AddCommand(phaseCommands("upgrade node", upgrade.NodePhases(), func(use, short, path string) *cobra.Command {
		po := &upgradeOptions{}
		c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			return runUpgrade(cmd, po, nil, stdout, deps, true, path)
		}}
		po.register(c.Flags(), "node", false)
		return c
	}))
	return cmd
}

// runUpgrade runs `upgrade apply` (node false) or `upgrade node`, or one of their phases (only).
func runUpgrade(cmd *cobra.Command, o *upgradeOptions, args []string, stdout io.Writer, deps upgradeDeps, node bool, only string) error {
	u, err := o.upgradeConfig()
	if err != nil {
		return err
	}
	fsys, err := rootFS(rootfsOf(cmd))
	if err != nil {
		return err
	}
	d := &upgrade.Data{Out: stdout, FS: fsys, NodeFlow: node, Timeouts: u.Timeouts}
	var skip []string
	var renew bool
	if node {
		d.DryRun = o.boolFlag("dry-run", o.dryRun, u.Node.DryRun)
		d.EtcdUpgrade = o.boolFlag("etcd-upgrade", o.etcdUpgrade, u.Node.EtcdUpgrade)
		renew = o.boolFlag("certificate-renewal", o.certRenewal, u.Node.CertificateRenewal)
		d.Patches = u.Node.Patches
		d.ImagePullPolicy = u.Node.ImagePullPolicy
		skip = u.Node.SkipPhases
	} else {
		d.Version = u.Apply.KubernetesVersion
		if len(args) == 1 {
			d.Version = args[0]
		}
		if d.Version == "" && (only == "" || only == "preflight" || only == "control-plane" || only == "upload-config" || only == "upload-config/kubeadm") {
			return hint.With(fmt.Errorf("missing one or more required arguments. Required arguments: [version]"),
				"`kubeboot upgrade plan` lists the versions to upgrade to")
		}
		d.DryRun = o.boolFlag("dry-run", o.dryRun, u.Apply.DryRun)
		d.EtcdUpgrade = o.boolFlag("etcd-upgrade", o.etcdUpgrade, u.Apply.EtcdUpgrade)
		renew = o.boolFlag("certificate-renewal", o.certRenewal, u.Apply.CertificateRenewal)
		d.Force = o.boolFlag("force", o.force, u.Apply.ForceUpgrade)
		d.AllowExperimental = o.boolFlag("allow-experimental-upgrades", o.allowExperimental, u.Apply.AllowExperimentalUpgrades)
		d.AllowRC = o.boolFlag("allow-release-candidate-upgrades", o.allowRC, u.Apply.AllowRCUpgrades)
		d.Patches = u.Apply.Patches
		d.ImagePullPolicy = u.Apply.ImagePullPolicy
		d.PrintConfig = o.boolFlag("print-config", o.printConfig, u.Apply.PrintConfig)
		skip = u.Apply.SkipPhases
		if !o.yes && !d.Force && !d.DryRun && only == "" {
			d.Confirm = upgrade.Confirm(deps.in, stdout)
		}
	}
	if o.fs.Changed("patches") {
		d.Patches = &config.Patches{Directory: o.patches}
	}
	if o.fs.Changed("skip-phases") {
		skip = o.skipPhases
	}
	if d.DryRun {
		d.FS = nodefs.Overlay(fsys)
	}
	kc := o.kubeconfig
	if node && !o.fs.Changed("kubeconfig") && !fsys.Exists(staticpod.Path(staticpod.APIServerName)) {
		// kubeadm's default for a node without a control plane: the kubelet's credentials.
		kc = config.KubeletKubeconfigFile
	}
	if d.Client, err = deps.client(kc); err != nil {
		return err
	}
	if fsys.Exists(staticpod.Path(staticpod.EtcdName)) {
		if err := d.Load(cmd.Context()); err != nil {
			return err
		}
		if d.Cluster().Etcd.External == nil {
			ec, done, err := deps.etcd(fsys, d.Cluster().CertificatesDir)
			if err != nil {
				return fmt.Errorf("reach etcd from this node: %w", err)
			}
			defer done()
			d.Etcd = ec
		}
	}
	if !d.DryRun && fsys.Exists(staticpod.Path(staticpod.APIServerName)) && deps.images != nil {
		p, done, err := deps.images(cmd.Context(), fsys)
		if err != nil {
			fmt.Fprintf(stdout, "[upgrade/prepull] WARNING: %v; the kubelet pulls the images when it starts the new static Pods\n", err)
		} else {
			defer done()
			d.Images = p
		}
	}
	d.HealthJob = !node && deps.healthJob
	d.EngineFor = func(ctx context.Context, d *upgrade.Data) (*upgrade.Engine, func(), error) {
		return deps.engine(ctx, d, o.kubeconfig, renew, stdout)
	}
	phases := upgrade.ApplyPhases()
	if node {
		phases = upgrade.NodePhases()
	}
	start := time.Now()
	out := workflow.Locked(stdout)
	d.Out = out
	runner := workflow.Runner[*upgrade.Data]{Phases: phases, Out: out}
	if err := runner.Run(cmd.Context(), d, workflow.Options{Skip: skip, Only: only, Hold: holdNode(fsys, cmd, d.DryRun)}); err != nil {
		return err
	}
	if only != "" {
		return nil
	}
	if d.DryRun {
		fmt.Fprintln(stdout, "[upgrade/successful] Finished dryrunning successfully!")
		return nil
	}
	if node {
		fmt.Fprintf(stdout, "[upgrade] The configuration for this node was successfully upgraded! (%s)\n", time.Since(start).Round(10*time.Millisecond))
		fmt.Fprintln(stdout, "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
		return nil
	}
	fmt.Fprintf(stdout, "\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to %q. (%s)\n", d.Version, time.Since(start).Round(10*time.Millisecond))
	fmt.Fprintln(stdout, "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.")
	return nil
}

func newUpgradeDiffCmd(stdout io.Writer, deps upgradeDeps) *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "diff [version]",
		Short: "Show what differences would be applied to existing static pod manifests. See also: kubeboot upgrade apply --dry-run",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := o.upgradeConfig()
			if err != nil {
				return err
			}
			fsys, err := rootFS(rootfsOf(cmd))
			if err != nil {
				return err
			}
			client, err := deps.client(o.kubeconfig)
			if err != nil {
				return err
			}
			d := &upgrade.Data{Out: io.Discard, FS: fsys, Client: client, Version: u.Diff.KubernetesVersion, Timeouts: u.Timeouts}
			if len(args) == 1 {
				d.Version = args[0]
			}
			if err := d.Load(cmd.Context()); err != nil {
				return err
			}
			context := upgrade.DefaultContextLines
			if o.fs.Changed("context-lines") || u.Diff.DiffContextLines == 0 {
				context = o.contextLines
			} else {
				context = u.Diff.DiffContextLines
			}
			return upgrade.Diff(stdout, fsys, d.Target(), context)
		},
	}
	o.register(cmd.Flags(), "diff", false)
	return cmd
}

// printClusterConfig prints the ClusterConfiguration an upgrade uses (--print-config).
func printClusterConfig(w io.Writer, cc *config.ClusterConfiguration) error {
	b, err := config.MarshalClusterConfiguration(cc)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "[upgrade/config] Configuration used:")
	_, err = w.Write(b)
	return err
}
