package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/release"
)

// imagePuller is the one CRI call `config images pull` makes; tests replace it.
type imagePuller interface {
	PullImage(ctx context.Context, ref string) error
	Close() error
}

// configDeps are the config commands' effects; tests replace them.
type configDeps struct {
	env    func() config.Environment
	dialer func(ctx context.Context, criSocket string) (imagePuller, error)
}

func hostConfigDeps() configDeps {
	return configDeps{
		env: config.HostEnvironment,
		dialer: func(ctx context.Context, criSocket string) (imagePuller, error) {
			c, err := cri.Dial(ctx, criSocket)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

func newConfigCmd(stdout io.Writer) *cobra.Command {
	return newConfigCmdWith(stdout, hostConfigDeps())
}

func newConfigCmdWith(stdout io.Writer, deps configDeps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print, check and convert kubeadm configuration files; list and pull the images they need",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// kubeadm has --kubeconfig here for subcommands that once read the cluster's kubeadm-config; none does now.
	var kubeconfigFlag string
	cmd.PersistentFlags().StringVar(&kubeconfigFlag, "kubeconfig", "", "the kubeconfig file to use when talking to the cluster (no config subcommand talks to it; accepted as kubeadm accepts it)")
	cmd.PersistentFlags().Lookup("kubeconfig").DefValue = config.AdminKubeconfigFile

	cmd.AddCommand(newConfigPrintCmd(stdout), newConfigMigrateCmd(stdout, deps), newConfigValidateCmd(stdout, deps),
		newConfigImagesCmd(stdout, deps))
	return cmd
}

func newConfigPrintCmd(stdout io.Writer) *cobra.Command {
	print := &cobra.Command{
		Use:   "print",
		Short: "Print default configuration documents",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	printer := func(action string, docs func() ([]byte, error)) *cobra.Command {
		return &cobra.Command{
			Use:   action + "-defaults",
			Short: fmt.Sprintf("Print the default configuration of 'kubeboot %s'", action),
			Long: fmt.Sprintf(`Print the default configuration of 'kubeboot %s', as kubeadm.k8s.io/v1beta4 documents.

Secrets such as bootstrap tokens are replaced with placeholders like %q.`, action, config.PlaceholderToken),
			Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				b, err := docs()
				if err != nil {
					return err
				}
				_, err = stdout.Write(b)
				return err
			},
		}
	}
	var components []string
	initDefaults := printer("init", func() ([]byte, error) { return config.DefaultInitDocuments(components...) })
	initDefaults.Flags().StringSliceVar(&components, "component-configs", nil,
		"also print the defaults of these component configs: "+config.KindKubelet+", "+config.KindProxy)
	print.AddCommand(initDefaults,
		printer("join", config.DefaultJoinDocuments),
		printer("reset", config.DefaultResetDocuments),
		// The defaults of the UpgradeConfiguration that `kubeboot upgrade --config` reads.
		printer("upgrade", config.DefaultUpgradeDocuments),
	)
	return print
}

func newConfigMigrateCmd(stdout io.Writer, deps configDeps) *cobra.Command {
	var oldConfig, newConfig string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Convert a kubeadm.k8s.io/v1beta3 or v1beta4 configuration file to v1beta4, defaulted and validated",
		Long: `Read a configuration file of kubeadm.k8s.io/v1beta3 or v1beta4 documents and write it as ` + config.V1beta4 + `:
every document is read, defaulted, validated and written again, so the output is what kubeboot would use if the
file were passed to 'kubeboot init' (InitConfiguration and ClusterConfiguration), 'kubeboot join'
(JoinConfiguration) or 'kubeboot reset' (ResetConfiguration). KubeletConfiguration and KubeProxyConfiguration
documents are left out, as kubeadm leaves them out.

Defaulting generates a bootstrap token when an InitConfiguration has none: keep the output secret.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if oldConfig == "" {
				return hint.With(fmt.Errorf("--old-config is required"), "pass the file to convert: --old-config FILE")
			}
			data, err := os.ReadFile(oldConfig)
			if err != nil {
				return fmt.Errorf("read --old-config: %w", err)
			}
			out, err := config.Migrate(data, deps.env())
			if err != nil {
				return hint.With(fmt.Errorf("%s: %w", oldConfig, err), "fix the fields named above; nothing was written")
			}
			if newConfig == "" {
				_, err = stdout.Write(out)
				return err
			}
			// The output may hold a bootstrap token: readable by its owner only (kubeadm writes 0644).
			if err := os.WriteFile(newConfig, out, 0o600); err != nil {
				return fmt.Errorf("write --new-config: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&oldConfig, "old-config", "", "the configuration file to convert (required)")
	cmd.Flags().StringVar(&newConfig, "new-config", "", "where to write the converted file; default: standard output")
	return cmd
}

func newConfigValidateCmd(stdout io.Writer, deps configDeps) *cobra.Command {
	var file string
	var allowDeprecated bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a configuration file: strict decoding, defaults and validation, without touching the machine",
		Long: `Check a configuration file as the commands that read it would: every document is decoded strictly (unknown
fields, duplicates and wrong types are errors with the field's path and line), defaulted and validated. Prints
"ok" and exits 0 when there is nothing to fix.

The deprecated kubeadm.k8s.io/v1beta3 is an error unless --allow-deprecated-api is given; 'kubeboot config
migrate' converts it.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if file == "" {
				return hint.With(fmt.Errorf("--config is required"), "pass the file to check: --config FILE")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read --config: %w", err)
			}
			r, err := config.ResolveFile(data, deps.env())
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if r.Deprecated && !allowDeprecated {
				return fmt.Errorf("%s: %w", file, config.DeprecatedAPIError(r.Warnings))
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(stdout, "[config] WARNING: %s\n", w)
			}
			fmt.Fprintln(stdout, "ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "the configuration file to check (required)")
	cmd.Flags().BoolVar(&allowDeprecated, "allow-deprecated-api", false, "accept the deprecated kubeadm.k8s.io/v1beta3 (with a warning)")
	return cmd
}

// imagesOptions are the flags `config images list` and `pull` share with init.
type imagesOptions struct {
	configFile, version, imageRepo, featureGates, criSocket string
	cmd                                                     *cobra.Command
}

func (o *imagesOptions) register(cmd *cobra.Command) {
	o.cmd = cmd
	fs := cmd.PersistentFlags()
	fs.StringVar(&o.configFile, "config", "", "path to a kubeadm configuration file; its images, image repositories and version are used")
	fs.StringVar(&o.version, "kubernetes-version", release.DefaultVersion(), "the Kubernetes version of the control plane (kubeboot deploys v1.36.x and v1.37.x)")
	fs.StringVar(&o.imageRepo, "image-repository", config.DefaultImageRepository, "where control-plane images come from")
	fs.StringVar(&o.featureGates, "feature-gates", "", featureGatesUsage)
}

// cluster resolves the configuration the images follow, as init would.
func (o *imagesOptions) cluster(env config.Environment) (*config.Init, error) {
	file, err := readConfigFile(o.configFile, "init-defaults")
	if err != nil {
		return nil, err
	}
	fs := o.cmd.Flags()
	f := config.InitFlags{
		KubernetesVersion: changedString(fs, "kubernetes-version", o.version),
		ImageRepository:   changedString(fs, "image-repository", o.imageRepo),
		FeatureGates:      changedString(fs, "feature-gates", o.featureGates),
		CRISocket:         changedString(fs, "cri-socket", o.criSocket),
	}
	cfg, _, err := config.ResolveInit(file, f, env)
	if err != nil {
		where := "the flags"
		if o.configFile != "" {
			where = o.configFile
		}
		return nil, hint.With(fmt.Errorf("invalid configuration in %s: %w", where, err), "fix the fields named above")
	}
	return cfg, nil
}

func newConfigImagesCmd(stdout io.Writer, deps configDeps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List or pull the container images init and join use",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}

	lo := &imagesOptions{}
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "Print the images init uses: the control-plane components, kube-proxy, CoreDNS, pause and etcd",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := lo.cluster(deps.env())
			if err != nil {
				return err
			}
			images, err := cfg.Cluster.Images()
			if err != nil {
				return err
			}
			return printImages(stdout, output, images)
		},
	}
	lo.register(list)
	list.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	addPrinterFlags(list)

	po := &imagesOptions{}
	pull := &cobra.Command{
		Use:   "pull",
		Short: "Pull the images init uses through the container runtime (CRI)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := po.cluster(deps.env())
			if err != nil {
				return err
			}
			images, err := cfg.Cluster.Images()
			if err != nil {
				return err
			}
			rt, err := deps.dialer(cmd.Context(), cfg.Init.NodeRegistration.CRISocket)
			if err != nil {
				return hint.With(err, "start the container runtime, or pass --cri-socket")
			}
			defer rt.Close()
			for _, image := range images {
				if err := rt.PullImage(cmd.Context(), image); err != nil {
					return fmt.Errorf("pull %s: %w", image, err)
				}
				fmt.Fprintf(stdout, "[config/images] Pulled %s\n", image)
			}
			return nil
		},
	}
	po.register(pull)
	pull.PersistentFlags().StringVar(&po.criSocket, "cri-socket", "", "the container runtime's CRI socket; default: "+config.DefaultCRISocket)
	cmd.AddCommand(list, pull)
	return cmd
}

// printImages prints the image list as kubeadm does: one per line, or output.kubeadm.k8s.io/v1alpha3 Images.
func printImages(w io.Writer, format string, images []string) error {
	obj := struct {
		Kind       string   `json:"kind"`
		APIVersion string   `json:"apiVersion"`
		Images     []string `json:"images"`
	}{"Images", "output.kubeadm.k8s.io/v1alpha3", images}
	if format == "text" {
		_, err := fmt.Fprintln(w, strings.Join(images, "\n"))
		return err
	}
	return printObject(w, format, obj)
}

// printObject prints one of kubeadm's output.kubeadm.k8s.io objects as kubeadm's -o json (indented by four
// spaces) or -o yaml does.
func printObject(w io.Writer, format string, obj any) error {
	var b []byte
	var err error
	switch format {
	case "json":
		b, err = json.MarshalIndent(obj, "", "    ")
		b = append(b, '\n')
	case "yaml":
		b, err = yaml.Marshal(obj)
	default:
		return fmt.Errorf("--output %q: kubeboot prints text, json or yaml", format)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// addPrinterFlags adds kubeadm's printer flags for template output. kubeboot prints text, json and yaml, where they
// change nothing, so they are accepted and unused.
func addPrinterFlags(cmd *cobra.Command) {
	cmd.Flags().Bool("allow-missing-template-keys", true, "accepted for kubeadm compatibility; only template output uses it, which kubeboot does not have")
	cmd.Flags().Bool("show-managed-fields", false, "accepted for kubeadm compatibility; kubeboot's output has no managed fields")
}
