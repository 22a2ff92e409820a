package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/reset"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// resetOptions are reset's flags.
type resetOptions struct {
	configFile, rootfs, certDir, criSocket string
	force, dryRun, cleanupTmpDir           bool
	ignorePreflightErrors, skipPhases      []string
	fs                                     *pflag.FlagSet
}

func (o *resetOptions) register(fs *pflag.FlagSet, withSkipPhases bool) {
	o.fs = fs
	fs.StringVar(&o.configFile, "config", "", "path to a kubeadm ResetConfiguration file (kubeadm.k8s.io/v1beta4)")
	fs.StringVar(&o.certDir, "cert-dir", config.DefaultCertificatesDir, "the certificates directory to empty")
	fs.StringVar(&o.criSocket, "cri-socket", "", "the container runtime's CRI socket; default: the one the kubelet was configured with, else "+config.DefaultCRISocket)
	fs.BoolVarP(&o.force, "force", "f", false, "reset without asking for confirmation (and past a stacked etcd member of a larger cluster)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "change nothing; print what would be done")
	fs.BoolVar(&o.cleanupTmpDir, "cleanup-tmp-dir", false, "also empty "+reset.TmpDir+" (it may hold backups made by upgrades)")
	// kubeadm reads the cluster's ClusterConfiguration through it, for the etcd member to remove and the certificates
	// directory; kubeboot finds both in the node's own files (the etcd manifest, --cert-dir), so it needs no cluster.
	fs.String("kubeconfig", "", "accepted for kubeadm compatibility: kubeboot's reset reads what it needs from the node's own files, not from the cluster")
	fs.Lookup("kubeconfig").DefValue = config.AdminKubeconfigFile
	fs.StringSliceVar(&o.ignorePreflightErrors, "ignore-preflight-errors", nil, "checks whose errors become warnings, e.g. 'IsPrivilegedUser'; 'all' ignores every check")
	if withSkipPhases {
		fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip, e.g. 'remove-etcd-member'")
	}
}

// resetDeps are reset's effects; tests replace them.
type resetDeps struct {
	in         io.Reader
	inTerminal bool
	// node is the machine with its files under fsys.
	node        func(fsys nodefs.FS, out io.Writer) nodeenv.Env
	mounts      reset.Mounter
	etcdMembers func(ctx context.Context, fsys nodefs.FS, m *reset.EtcdMember) ([]etcd.Member, error)
	etcd        func(ctx context.Context, fsys nodefs.FS, m *reset.EtcdMember, endpoints []string, callTimeout time.Duration) (reset.EtcdMembership, error)
}

func hostResetDeps() resetDeps {
	return resetDeps{
		in:         os.Stdin,
		inTerminal: term.IsTerminal(int(os.Stdin.Fd())),
		node: func(fsys nodefs.FS, out io.Writer) nodeenv.Env {
			env := nodeenv.Host(fsys, out)
			if sd, ok := env.InitSystem.(kubelet.Systemd); ok {
				env.InitSystem = systemdStopper{sd}
			}
			return env
		},
		mounts:      reset.HostMounts{},
		etcdMembers: reset.LocalEtcdMembers,
		etcd:        reset.OpenEtcd,
	}
}

// systemdStopper adds stopping to systemd, so reset can keep the kubelet from restarting Pods while it removes them.
type systemdStopper struct{ kubelet.Systemd }

func (s systemdStopper) Stop(ctx context.Context, service string) error {
	run := s.Run
	if run == nil {
		run = kubelet.RunCommand
	}
	// RunCommand names the command in its error: "systemctl stop kubelet: exit status 5: ...".
	return run(ctx, "systemctl", "stop", service)
}

// data loads the configuration and builds the phases' data.
func (o *resetOptions) data(stdout io.Writer, deps resetDeps) (*reset.Data, error) {
	cfg := &config.ResetConfiguration{}
	if o.configFile != "" {
		file, err := os.ReadFile(o.configFile)
		if err != nil {
			return nil, hint.With(fmt.Errorf("read --config: %w", err), "pass the path of a file holding a kubeadm.k8s.io/v1beta4 ResetConfiguration")
		}
		if cfg, err = config.LoadReset(file); err != nil {
			return nil, hint.With(fmt.Errorf("invalid configuration in %s: %w", o.configFile, err), "fix the fields named above; nothing was changed")
		}
	}
	// Flags the user set win over the file, as in kubeadm.
	set := o.fs.Changed
	if set("cert-dir") {
		cfg.CertificatesDir = o.certDir
	}
	if set("cri-socket") {
		cfg.CRISocket = o.criSocket
	}
	if set("force") {
		cfg.Force = o.force
	}
	if set("dry-run") {
		cfg.DryRun = o.dryRun
	}
	if set("cleanup-tmp-dir") {
		cfg.CleanupTmpDir = o.cleanupTmpDir
	}
	if set("skip-phases") {
		cfg.SkipPhases = o.skipPhases
	}
	cfg.IgnorePreflightErrors = append(cfg.IgnorePreflightErrors, o.ignorePreflightErrors...)

	fsys, err := rootFS(o.rootfs)
	if err != nil {
		return nil, err
	}
	if cfg.CRISocket == "" {
		cfg.CRISocket = kubelet.CRISocket(fsys)
	}
	config.SetResetDefaults(cfg)
	if err := config.ValidateReset(cfg); err != nil {
		where := "the flags"
		if o.configFile != "" {
			where = o.configFile + " and the flags"
		}
		return nil, hint.With(fmt.Errorf("invalid configuration in %s: %w", where, err), "fix the fields named above; nothing was changed")
	}
	etcdMembers := deps.etcdMembers
	remote := fsys.Root != "/" && fsys.Root != ""
	if remote {
		// 127.0.0.1 here is not the loopback of the node under --rootfs: its member is asked on its advertised URLs.
		etcdMembers = nil
	}
	return &reset.Data{
		Env:            deps.node(fsys, stdout),
		Cfg:            cfg,
		In:             deps.in,
		InTerminal:     deps.inTerminal,
		Mounts:         deps.mounts,
		EtcdMembers:    etcdMembers,
		Etcd:           deps.etcd,
		EtcdRemoteNode: remote,
	}, nil
}

func newResetCmd(stdout io.Writer) *cobra.Command {
	return newResetCmdWith(stdout, hostResetDeps())
}

func newResetCmdWith(stdout io.Writer, deps resetDeps) *cobra.Command {
	o := &resetOptions{}
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Undo what 'kubeboot init' or 'kubeboot join' did to this machine, so either can run again",
		Long: `Undo what 'kubeboot init' or 'kubeboot join' (or kubeadm's) did to this machine, so either can run again.

Runs, in order (each is also 'kubeboot reset phase <name>' and can be left out with --skip-phases):
` + resetPhaseList(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.rootfs = rootfsOf(cmd)
			d, err := runReset(cmd, o, stdout, deps, "")
			if err != nil {
				return err
			}
			d.NotCleaned(stdout)
			return nil
		},
	}
	o.register(cmd.Flags(), true)

	phaseCmd := &cobra.Command{Use: "phase", Short: "Run one phase of reset"}
	for _, p := range reset.Phases() {
		po := &resetOptions{}
		c := &cobra.Command{
			Use:   p.Name,
			Short: p.Short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				po.rootfs = rootfsOf(cmd)
				_, err := runReset(cmd, po, stdout, deps, p.Name)
				return err
			},
		}
		po.register(c.Flags(), false)
		phaseCmd.AddCommand(c)
	}
	cmd.AddCommand(phaseCmd)
	return cmd
}

func runReset(cmd *cobra.Command, o *resetOptions, stdout io.Writer, deps resetDeps, only string) (*reset.Data, error) {
	ctx := cmd.Context()
	d, err := o.data(stdout, deps)
	if err != nil {
		return nil, err
	}
	runner := workflow.Runner[*reset.Data]{Phases: reset.Phases(), Out: stdout}
	if err := runner.Run(ctx, d, workflow.Options{Skip: d.Cfg.SkipPhases, Only: only, Hold: holdNode(d.FS, cmd, d.Cfg.DryRun)}); err != nil {
		return nil, err
	}
	return d, nil
}

func resetPhaseList() string {
	var b strings.Builder
	for _, p := range reset.Phases() {
		fmt.Fprintf(&b, "  %-22s %s\n", p.Name, p.Short)
	}
	return b.String()
}
