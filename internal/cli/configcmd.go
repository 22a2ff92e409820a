package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/config"
)

func newConfigCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Print and check kubeadm configuration files"}
	print := &cobra.Command{Use: "print", Short: "Print default configuration documents"}
	var components []string
	initDefaults := &cobra.Command{
		Use:   "init-defaults",
		Short: "Print the default InitConfiguration and ClusterConfiguration",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b, err := config.DefaultInitDocuments(components...)
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		},
	}
	initDefaults.Flags().StringSliceVar(&components, "component-configs", nil, "also print KubeletConfiguration and/or KubeProxyConfiguration defaults")
	joinDefaults := &cobra.Command{
		Use:   "join-defaults",
		Short: "Print the default JoinConfiguration",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b, err := config.DefaultJoinDocuments()
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		},
	}
	print.AddCommand(initDefaults, joinDefaults)

	var file string
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check a configuration file: strict decoding, defaults and validation, without touching the machine",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return withHint(fmt.Errorf("read --config: %w", err), "pass --config FILE")
			}
			docs, err := config.Load(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if _, err := docs.ForJoin(); err == nil {
				_, _, err = config.ResolveJoin(data, config.JoinFlags{}, config.HostEnvironment())
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
			} else if _, _, err := config.ResolveInit(data, config.InitFlags{}, config.HostEnvironment()); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			fmt.Fprintf(stdout, "ok\n")
			return nil
		},
	}
	validate.Flags().StringVar(&file, "config", "", "the configuration file to check")
	_ = validate.MarkFlagRequired("config")
	cmd.AddCommand(print, validate)
	return cmd
}
