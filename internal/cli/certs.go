package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/copycerts"
)

func newCertsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Commands related to handling Kubernetes certificates",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCertsCertificateKeyCmd(stdout))
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
