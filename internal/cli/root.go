// Package cli is kubeboot's command tree. Commands parse flags into plain structs and hand them to the
// packages that do the work; only Main turns an error into an exit code and a hint.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/version"
)

// readConfigFile reads --config: nothing when path is empty, a hinted error naming the flag when it cannot be read.
// printDefaults names the `config print` document that starts such a file ("init-defaults").
func readConfigFile(path, printDefaults string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, hint.With(fmt.Errorf("read --config: %w", err),
			"pass the path of a kubeadm.k8s.io/v1beta4 configuration file; `kubeboot config print "+printDefaults+"` prints one to start from")
	}
	return b, nil
}

// changedString is v when the flag name was given on the command line, nil otherwise: a flag overrides the
// configuration only when the user set it.
func changedString(fs *pflag.FlagSet, name, v string) *string {
	if fs.Changed(name) {
		return &v
	}
	return nil
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
	if h := hint.Of(err); h != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h)
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
	addGlobalFlags(root)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newVersionCmd(stdout),
		newInitCmd(stdout),
		newJoinCmd(stdout),
		newConfigCmd(stdout),
		newTokenCmd(stdout, stderr),
		newResetCmd(stdout),
		newCertsCmd(stdout, stderr),
		newEtcdCmd(stdout),
		newLoadBalancerCmd(stdout),
		newKubeconfigCmd(stdout, config.HostEnvironment, pki.SystemSource),
		newUpgradeCmd(stdout, hostUpgradeDeps()),
	)
	// kubeadm's completion command: cobra's, which kubeboot otherwise adds only when it runs.
	root.InitDefaultCompletionCmd()
	applyDifferences(root, differences)
	return root
}

// addGlobalFlags adds kubeadm's global flags to the root command.
func addGlobalFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.String("rootfs", "", "the node's root directory: kubeboot reads and writes the node's files (/etc/kubernetes, "+
		"/var/lib/kubelet, ...) under it instead of / (kubeadm chroots into it; kubeboot does not, so paths given in "+
		"flags such as --config are read as given)")
	// kubeadm's klog flags: scripts pass them, so they are accepted. kubeboot's detail lines are always printed; the
	// level only matters to the client libraries' own logging, which kubeboot does not enable.
	var v logLevel
	pf.VarP(&v, "v", "v", "number for the log level verbosity (accepted for kubeadm compatibility)")
	var vmodule moduleSpec
	pf.Var(&vmodule, "vmodule", "comma-separated list of pattern=N settings for file-filtered logging (accepted for kubeadm compatibility)")
}

// rootfsOf is the global --rootfs of the command line cmd runs in.
func rootfsOf(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("rootfs"); f != nil {
		return f.Value.String()
	}
	return ""
}

// logLevel is klog's -v, with klog's type name so that --help reads as kubeadm's.
type logLevel int32

func (l *logLevel) String() string { return strconv.Itoa(int(*l)) }
func (l *logLevel) Type() string   { return "Level" }
func (l *logLevel) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return fmt.Errorf("a log level is a number: %w", err)
	}
	*l = logLevel(n)
	return nil
}

// moduleSpec is klog's --vmodule, kept as given.
type moduleSpec string

func (m *moduleSpec) String() string     { return string(*m) }
func (m *moduleSpec) Type() string       { return "moduleSpec" }
func (m *moduleSpec) Set(s string) error { *m = moduleSpec(s); return nil }

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
