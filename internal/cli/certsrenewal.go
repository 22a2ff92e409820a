package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/renewal"
	"kubeboot.dev/kubeboot/internal/restart"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
)

// certsFlags are the flags check-expiration and renew share with kubeadm.
type certsFlags struct {
	config, certDir, kubeconfig string
}

func (f *certsFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "path to a kubeadm configuration file; without it the cluster's kube-system/kubeadm-config is read through --kubeconfig")
	fl.StringVar(&f.certDir, "cert-dir", config.DefaultCertificatesDir, "the path where to save the certificates")
	fl.StringVar(&f.kubeconfig, "kubeconfig", config.AdminKubeconfigFile, "the kubeconfig file to use when talking to the cluster")
}

// clusterConfigReadTimeout bounds the read of kube-system/kubeadm-config: certificates are checked and renewed
// on clusters whose API server is down too (often because a certificate expired), as kubeadm allows.
const clusterConfigReadTimeout = 5 * time.Second

// clusterConfig finds the ClusterConfiguration as kubeadm's certs commands do: the cluster's, read through
// --kubeconfig when no --config is given; else --config, or the defaults. --cert-dir always applies. Progress
// lines go to out, which is nil for -o json|yaml.
func (f *certsFlags) clusterConfig(ctx context.Context, out io.Writer, prefix string) (*config.ClusterConfiguration, error) {
	say := func(format string, a ...any) {
		if out != nil {
			fmt.Fprintf(out, format, a...)
		}
	}
	if f.config == "" {
		if rc, err := kubeclient.LoadFile(f.kubeconfig); err == nil {
			say("[%s] Reading configuration from the %q ConfigMap in namespace %q...\n", prefix, uploadconfig.KubeadmConfigMap, metav1.NamespaceSystem)
			say("[%s] Use 'kubeboot init phase upload-config kubeadm --config your-config-file' to re-upload it.\n", prefix)
			client, err := kubeclient.New(rc, kubeclient.Command)
			if err == nil {
				rctx, cancel := context.WithTimeout(ctx, clusterConfigReadTimeout)
				var cc config.ClusterConfiguration
				cc, err = uploadconfig.ReadClusterConfiguration(rctx, client, out)
				cancel()
				if err == nil {
					say("\n")
					cc.CertificatesDir = f.certDir
					return &cc, nil
				}
			}
			say("[%s] Error reading configuration from the Cluster. Falling back to default configuration\n\n", prefix)
		}
	}
	file, err := readConfigFile(f.config, "init-defaults")
	if err != nil {
		return nil, err
	}
	cfg, _, err := resolveInitConfig(file, config.InitFlags{}, config.HostEnvironment())
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", f.config, err)
	}
	cfg.Cluster.CertificatesDir = f.certDir
	return &cfg.Cluster, nil
}

func (f *certsFlags) set(cmd *cobra.Command, cc *config.ClusterConfiguration) (*renewal.Set, error) {
	fsys, err := rootFS(rootfsOf(cmd))
	if err != nil {
		return nil, err
	}
	return renewal.NewSet(fsys, cc.CertificatesDir, config.KubernetesDir, cc.Etcd.External != nil), nil
}

func newCertsCheckExpirationCmd(stdout, stderr io.Writer, now func() time.Time) *cobra.Command {
	var f certsFlags
	var output string
	cmd := &cobra.Command{
		Use:   "check-expiration",
		Short: "Check certificates expiration for a Kubernetes cluster",
		Long: `Checks expiration for the certificates in the local PKI managed by kubeadm (and kubeboot), and, beyond
kubeadm, the kubelet's client and serving certificates. Anything that expires within 30 days gets a warning on
standard error that says what to do.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" && output != "yaml" {
				return fmt.Errorf("--output %q: kubeboot prints text, json or yaml", output)
			}
			var progress io.Writer
			if output == "text" {
				progress = stdout
			}
			cc, err := f.clusterConfig(cmd.Context(), progress, "check-expiration")
			if err != nil {
				return err
			}
			s, err := f.set(cmd, cc)
			if err != nil {
				return err
			}
			t := now()
			info, err := s.Expiration(t)
			if err != nil {
				return err
			}
			kubelet, err := renewal.KubeletCerts(s, t)
			if err != nil {
				return err
			}
			if output != "text" {
				return printObject(stdout, output, info)
			}
			if err := info.PrintText(stdout); err != nil {
				return err
			}
			if err := renewal.PrintKubelet(stdout, kubelet); err != nil {
				return err
			}
			for _, w := range renewal.Warnings(info, kubelet) {
				fmt.Fprintf(stderr, "WARNING: %s\n", w)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	addPrinterFlags(cmd)
	return cmd
}

// renewList names every certificate renew knows, those of a stacked etcd included, in kubeadm's order.
var renewList = renewal.NewSet(nodefs.Host, config.DefaultCertificatesDir, config.KubernetesDir, false)

// renewAllDone is kubeadm's last line of `certs renew all`.
const renewAllDone = "\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.\n"

// renewDeps are renew's effects beyond the node's files; tests replace them.
type renewDeps struct {
	now    func() time.Time
	source func() pki.Source
	// restarter builds the restart of this node's components for --restart; done releases what it holds.
	restarter func(ctx context.Context, n restartNode) (r *restart.Restarter, done func(), err error)
}

// restartNode is what --restart works on.
type restartNode struct {
	fsys                nodefs.FS
	certDir, kubeconfig string
	out                 io.Writer
	timeout             time.Duration
}

func hostRenewDeps() renewDeps {
	return renewDeps{now: time.Now, source: pki.SystemSource, restarter: hostRestarter}
}

// hostRestarter reaches this node's container runtime (the kubelet's, from its configuration files), the
// components' health endpoints, etcd with this node's certificates and the API with --kubeconfig.
func hostRestarter(ctx context.Context, n restartNode) (*restart.Restarter, func(), error) {
	socket := nodeCRISocket(n.fsys)
	rt, err := cri.Dial(ctx, socket)
	if err != nil {
		return nil, nil, hint.With(fmt.Errorf("--restart: %w", err),
			"--restart stops the components' containers through the kubelet's container runtime; nothing was renewed")
	}
	cluster := &restart.NodeCluster{FS: n.fsys, CertDir: n.certDir, Kubeconfig: n.kubeconfig}
	r := &restart.Restarter{Runtime: rt, Probe: &restart.NodeProber{FS: n.fsys, Cluster: cluster}, Cluster: cluster, Out: n.out, Timeout: n.timeout}
	return r, func() { rt.Close() }, nil
}

// renewFlags are renew's flags: kubeadm's, and kubeboot's restart and expiry window.
type renewFlags struct {
	certsFlags
	restart        bool
	restartTimeout time.Duration
	within         time.Duration
}

func (f *renewFlags) add(cmd *cobra.Command) {
	f.certsFlags.add(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.restart, "restart", false, "(beyond kubeadm) then restart this node's control-plane components that read a renewed certificate, "+
		"one at a time, each once the one before is healthy again; refused, before anything is renewed, while another control plane is unhealthy")
	fl.DurationVar(&f.restartTimeout, "restart-timeout", restart.DefaultTimeout, "(beyond kubeadm) how long each restarted component has to be healthy again")
	fl.DurationVar(&f.within, "if-expires-within", 0, "(beyond kubeadm) renew only the certificates that expire within this long (e.g. 720h) or have expired; "+
		"when none does, do nothing")
}

// renewRefusedHint is the advice for a --restart refused before anything was renewed.
const renewRefusedHint = "nothing was renewed. Bring the control plane back to health first (`kubeboot etcd status`, " +
	"`kubectl -n kube-system get pods -l tier=control-plane -o wide`), then run this again; or renew without --restart and restart " +
	"the components when the cluster can spare them (also when the certificates have already expired, which keeps these checks from passing)"

func newCertsRenewCmd(stdout io.Writer, deps renewDeps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "Renew certificates for a Kubernetes cluster",
		Long: `Renew the certificates kubeadm manages: a new key, the same subject and SANs, signed by the CA on this
node, valid for the cluster's certificateValidityPeriod from now. Certificates embedded in kubeconfig files are
replaced in place, the rest of each file kept. A certificate whose CA key is not on this node is skipped.

Beyond kubeadm, --restart then restarts this node's control-plane components that read a renewed certificate
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, in that order), one at a time and each only once
the one before is healthy again: the kubelet runs a new container from the unchanged manifest. It refuses, before
renewing anything, while another control plane's etcd member or API server is unhealthy. --if-expires-within
renews only what is due, so that "renew all --if-expires-within 720h --restart" can run daily
('kubeboot certs auto-renew install' installs that).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	run := func(cmd *cobra.Command, f *renewFlags, name string) error {
		ctx := cmd.Context()
		cc, err := f.clusterConfig(ctx, stdout, "renew")
		if err != nil {
			return err
		}
		s, err := f.set(cmd, cc)
		if err != nil {
			return err
		}
		release, err := lockNode(s.FS, cmd)
		if err != nil {
			return err
		}
		defer release()
		externalEtcd := cc.Etcd.External != nil
		onlyDue := cmd.Flags().Changed("if-expires-within")
		// What to do, in kubeadm's order: renew a certificate of this cluster, or say it is missing (an etcd one
		// with an external etcd, as kubeadm does); with --if-expires-within, only what is due.
		type step struct {
			cert      renewal.Cert
			inCluster bool
		}
		var steps []step
		now := deps.now()
		for _, c := range renewList.Certs {
			if name != "all" && c.Name != name {
				continue
			}
			i := slices.IndexFunc(s.Certs, func(o renewal.Cert) bool { return o.Name == c.Name })
			if i < 0 {
				if !onlyDue {
					steps = append(steps, step{cert: c})
				}
				continue
			}
			if onlyDue {
				due, err := s.Due(s.Certs[i], now, f.within)
				if err != nil {
					return err
				}
				if !due {
					continue
				}
			}
			steps = append(steps, step{cert: s.Certs[i], inCluster: true})
		}
		if onlyDue && len(steps) == 0 {
			fmt.Fprintf(stdout, "[renew] No certificate expires within %s: nothing to renew\n", f.within)
			return nil
		}

		var restarter *restart.Restarter
		if f.restart {
			// Refuse before renewing anything when the cluster cannot spare the components that will restart.
			var renewing []string
			for _, st := range steps {
				if st.inCluster && s.FS.Exists(st.cert.File) && !s.ExternallyManaged(st.cert.CAName) {
					renewing = append(renewing, st.cert.Name)
				}
			}
			if components := restart.OnNode(s.FS, restart.Components(renewing), externalEtcd); len(components) > 0 {
				r, done, err := deps.restarter(ctx, restartNode{fsys: s.FS, certDir: cc.CertificatesDir, kubeconfig: f.kubeconfig, out: stdout, timeout: f.restartTimeout})
				if err != nil {
					return err
				}
				defer done()
				if err := r.Check(ctx, components); err != nil {
					return hint.With(err, renewRefusedHint)
				}
				restarter = r
			}
		}

		policy, source := renewal.PolicyOf(cc), deps.source().Freeze()
		var renewed []string
		for _, st := range steps {
			if !st.inCluster {
				fmt.Fprintln(stdout, renewal.Missing.Line(st.cert))
				continue
			}
			out, err := s.Renew(st.cert, policy, source)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, out.Line(st.cert))
			if out == renewal.Renewed {
				renewed = append(renewed, st.cert.Name)
			}
		}
		if !f.restart {
			if name == "all" && (!onlyDue || len(renewed) > 0) {
				fmt.Fprint(stdout, renewAllDone)
			}
			return nil
		}
		components := restart.OnNode(s.FS, restart.Components(renewed), externalEtcd)
		if len(components) == 0 {
			fmt.Fprintln(stdout, "[restart] No component of this node reads a renewed certificate: nothing to restart")
			return nil
		}
		if restarter == nil {
			// What was renewed is part of what was checked above; never restart what was not checked.
			return fmt.Errorf("--restart: %s were not checked before renewing", strings.Join(components, ", "))
		}
		return restarter.Restart(ctx, components)
	}
	// One subcommand per certificate, as in kubeadm.
	for _, c := range renewList.Certs {
		var f renewFlags
		sub := &cobra.Command{
			Use:   c.Name,
			Short: "Renew the " + c.LongName,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return run(cmd, &f, c.Name)
			},
		}
		f.add(sub)
		cmd.AddCommand(sub)
	}
	var f renewFlags
	allCmd := &cobra.Command{
		Use:   "all",
		Short: "Renew all available certificates",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return run(cmd, &f, "all") },
	}
	f.add(allCmd)
	cmd.AddCommand(allCmd)
	return cmd
}
