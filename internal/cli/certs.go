package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

func newCertsCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Commands related to handling Kubernetes certificates",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCertsCertificateKeyCmd(stdout), newCertsGenerateCSRCmd(stdout, config.HostEnvironment, pki.SystemSource),
		newCertsCheckExpirationCmd(stdout, stderr, time.Now), newCertsRenewCmd(stdout, hostRenewDeps()),
		newCertsAutoRenewCmd(stdout, hostAutoRenewDeps()))
	return cmd
}

func newCertsGenerateCSRCmd(stdout io.Writer, env func() config.Environment, src func() pki.Source) *cobra.Command {
	var configFile, certDir, kubeconfigDir string
	cmd := &cobra.Command{
		Use:   "generate-csr",
		Short: "Generate keys and certificate signing requests",
		Long: `Generate the keys and certificate signing requests of every certificate a control-plane node needs, for
a cluster whose CAs are external (kubeboot never holds their keys): <name>.key and <name>.csr in the certificates
directory for the leaf certificates, and in --kubeconfig-dir each kubeconfig file holding only its client key,
with <name>.conf.csr beside it. Sign the requests with the external CAs, put the certificates (and the CAs'
certificates, without their keys) in place, then run init. Nothing that exists is overwritten.`,
		Example: "  kubeboot certs generate-csr --config kubeadm.yaml --kubeconfig-dir /etc/kubernetes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := readConfigFile(configFile, "init-defaults")
			if err != nil {
				return err
			}
			cfg, _, err := resolveInitConfig(file, config.InitFlags{}, env())
			if err != nil {
				return hint.With(fmt.Errorf("invalid configuration: %w", err), "fix the fields named above; nothing was written")
			}
			if certDir != "" {
				// kubeadm lets --cert-dir override the file's certificatesDir here.
				cfg.Cluster.CertificatesDir = certDir
			}
			fsys := nodefs.Host
			if r := rootfsOf(cmd); r != "" {
				fsys = nodefs.FS{Root: r}
			}
			s := src().Freeze()
			cluster, node := cfg.ClusterPart(), cfg.NodePart()
			fmt.Fprintf(stdout, "generating keys and CSRs in %s\n", pki.Dir(cluster))
			certs, err := pki.WriteCSRs(fsys, cluster, node, s)
			for _, name := range certs {
				fmt.Fprintf(stdout, "  %s\n", name)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "generating keys and CSRs in %s\n", kubeconfigDir)
			files, err := kubeconfig.WriteCSRs(fsys, kubeconfigDir, cluster, node, s)
			for _, name := range files {
				fmt.Fprintf(stdout, "  %s\n", name)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "a kubeadm configuration file: the certificates' names and SANs follow it, as in init")
	f.StringVar(&certDir, "cert-dir", "", "where to write the certificates' keys and CSRs; default: the configuration's certificatesDir")
	f.StringVar(&kubeconfigDir, "kubeconfig-dir", config.KubernetesDir, "where to write the kubeconfig files and their CSRs")
	return cmd
}

func newCertsCertificateKeyCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "certificate-key",
		Short: "Generate a certificate key",
		Long: `Print a new random certificate key: 32 bytes from the system's secure random source, as 64 hex digits.

The key encrypts the certificates that control-plane nodes share (Secret kube-system/kubeadm-certs):
pass it to "kubeboot init --upload-certs --certificate-key KEY" and to "kubeboot join --control-plane
--certificate-key KEY". "init --upload-certs" without a key makes one and prints it. Keep the key secret:
with it and a bootstrap token, anyone can read the cluster's CA keys for 2 hours after the upload.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			key, err := copycerts.NewCertificateKey()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, key)
			return err
		},
	}
}
