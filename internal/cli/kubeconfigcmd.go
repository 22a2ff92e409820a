package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

func newKubeconfigCmd(stdout io.Writer, env func() config.Environment, src func() pki.Source) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Make kubeconfig files for additional users",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var configFile, clientName, tok string
	var orgs []string
	var validity time.Duration
	user := &cobra.Command{
		Use:   "user",
		Short: "Print a kubeconfig file for an additional user",
		Long: `Print a kubeconfig file for an additional user: a client certificate for --client-name (CN) and --org (O),
signed by the cluster CA of this control-plane node, or with --token a bearer token. The server is the
controlPlaneEndpoint, else this node's API server. Run it on a control-plane node (the CA key is needed for a
certificate). The output holds the user's credentials: keep it secret.`,
		Example: "  kubeboot kubeconfig user --client-name alice --org team-a > alice.conf",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientName == "" {
				return hint.With(fmt.Errorf("--client-name is required"), "name the user: --client-name NAME")
			}
			file, err := readConfigFile(configFile, "init-defaults")
			if err != nil {
				return err
			}
			cfg, _, err := resolveInitConfig(file, config.InitFlags{}, env())
			if err != nil {
				return hint.With(fmt.Errorf("invalid configuration: %w", err), "fix the fields named above")
			}
			cluster := cfg.ClusterPart()
			server, err := kubeconfig.ControlPlaneURL(cluster, cfg.NodePart())
			if err != nil {
				return err
			}
			fsys := nodefs.Host
			if r := rootfsOf(cmd); r != "" {
				fsys = nodefs.FS{Root: r}
			}
			s := src().Freeze()
			ca, err := pki.LoadCA(fsys, cluster, pki.CAPhase, s.Now())
			if err != nil {
				return hint.With(err, "run this on a control-plane node, or pass --config with its certificatesDir")
			}
			var kc = kubeconfig.WithToken(server, cfg.Cluster.ClusterName, clientName, ca.PEM, tok)
			if tok == "" {
				if ca.Key == nil {
					return hint.With(fmt.Errorf("the cluster CA's key is not in %s", pki.Dir(cluster)),
						"with an external CA, pass --token, or sign the user's certificate with the CA yourself")
				}
				req := pki.ClientRequest(cluster, ca, clientName, orgs)
				req.Validity = validity
				kp, err := pki.NewSignedCert(s, ca, req)
				if err != nil {
					return err
				}
				kc = kubeconfig.WithCerts(server, cfg.Cluster.ClusterName, clientName, ca.PEM, kp.Cert, kp.Key)
			}
			b, err := clientcmd.Write(*kc)
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		},
	}
	f := user.Flags()
	f.StringVar(&configFile, "config", "", "a kubeadm configuration file: its certificatesDir, controlPlaneEndpoint, clusterName and encryptionAlgorithm are used")
	f.StringVar(&clientName, "client-name", "", "the user's name, the certificate's CN (required)")
	f.StringSliceVar(&orgs, "org", nil, "the user's groups, the certificate's O")
	f.StringVar(&tok, "token", "", "authenticate with this bearer token instead of a client certificate")
	f.DurationVar(&validity, "validity-period", config.DefaultCertificateValidityPeriod, "how long the client certificate is valid, from now")
	cmd.AddCommand(user)
	return cmd
}
