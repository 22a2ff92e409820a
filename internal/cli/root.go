// Package cli is kubeboot's command tree. Commands parse flags into plain structs and hand them to the
// packages that do the work; only Main turns an error into an exit code and a hint.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/version"
)

// Hinted is an error that carries advice for the user, printed after the error itself.
type Hinted interface {
	error
	Hint() string
}

// hintError attaches a hint to an error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
func (e *hintError) Hint() string  { return e.hint }

// withHint wraps err with advice shown to the user.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// Main runs kubeboot with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	var h Hinted
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h.Hint())
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubeboot",
		Short: "kubeboot: bootstrap a Kubernetes cluster, kubeadm-compatible",
		Long: `kubeboot makes machines into a Kubernetes cluster.

  kubeboot init                         make this machine the first control-plane node
  kubeboot join HOST:PORT --token ...   make this machine a node of an existing cluster

kubeboot reads and writes the same files, objects and config format (kubeadm.k8s.io/v1beta4) as kubeadm,
so clusters, scripts and nodes made with either tool work with the other.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var verbosity int
	// kubeadm's -v/--v: scripts pass it, so it is accepted. kubeboot's detail lines are always printed; the level
	// only matters to the client libraries' own logging, which kubeboot does not enable.
	root.PersistentFlags().IntVarP(&verbosity, "v", "v", 0, "log level verbosity (accepted for kubeadm compatibility)")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newVersionCmd(stdout),
		newInitCmd(stdout),
		newJoinCmd(stdout),
		newConfigCmd(stdout),
		newTokenCmd(stdout, stderr),
		newResetCmd(stdout),
		newCertsCmd(stdout),
		newEtcdCmd(stdout),
		newLoadBalancerCmd(stdout),
	)
	return root
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kubeboot's version and the Kubernetes release it installs by default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			switch output {
			case "":
				fmt.Fprintf(stdout, "kubeboot %s (Kubernetes %s, etcd %s, CoreDNS %s)\n", info.Version, info.KubernetesVersion, info.EtcdVersion, info.CoreDNSVersion)
			case "short":
				fmt.Fprintln(stdout, info.Version)
			case "json":
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			default:
				return fmt.Errorf("--output %q: must be one of \"\", short, json", output)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: short or json")
	return cmd
}
