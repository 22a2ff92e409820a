package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/renewal"
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
				cc, err = uploadconfig.ReadClusterConfiguration(rctx, client)
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
	cfg, _, err := config.ResolveInit(file, config.InitFlags{}, config.HostEnvironment())
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

func newCertsRenewCmd(stdout io.Writer, src func() pki.Source) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "Renew certificates for a Kubernetes cluster",
		Long: `Renew the certificates kubeadm manages: a new key, the same subject and SANs, signed by the CA on this
node, valid for the cluster's certificateValidityPeriod from now. Certificates embedded in kubeconfig files are
replaced in place, the rest of each file kept. A certificate whose CA key is not on this node is skipped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	run := func(cmd *cobra.Command, f *certsFlags, name string) error {
		cc, err := f.clusterConfig(cmd.Context(), stdout, "renew")
		if err != nil {
			return err
		}
		s, err := f.set(cmd, cc)
		if err != nil {
			return err
		}
		policy, source := renewal.PolicyOf(cc), src().Freeze()
		for _, c := range renewList.Certs {
			if name != "all" && c.Name != name {
				continue
			}
			i := slices.IndexFunc(s.Certs, func(o renewal.Cert) bool { return o.Name == c.Name })
			if i < 0 {
				// Not a certificate of this cluster (an etcd one with an external etcd): kubeadm reports it missing.
				fmt.Fprintln(stdout, renewal.Missing.Line(c))
				continue
			}
			out, err := s.Renew(s.Certs[i], policy, source)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, out.Line(s.Certs[i]))
		}
		if name == "all" {
			fmt.Fprint(stdout, renewAllDone)
		}
		return nil
	}
	// One subcommand per certificate, as in kubeadm.
	for _, c := range renewList.Certs {
		var f certsFlags
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
	var f certsFlags
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
