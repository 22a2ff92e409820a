package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/token"
)

// tokenDeps are the token commands' effects; tests replace them.
type tokenDeps struct {
	// client builds a client from the kubeconfig file at path.
	client   func(path string) (kubernetes.Interface, error)
	now      func() time.Time
	generate func() (token.Token, error)
	// env is the machine, for defaulting `token create --config`'s InitConfiguration.
	env func() config.Environment
}

func hostTokenDeps() tokenDeps {
	return tokenDeps{client: clientFromKubeconfig, now: time.Now, generate: token.Generate, env: config.HostEnvironment}
}

func clientFromKubeconfig(path string) (kubernetes.Interface, error) {
	rc, err := kubeclient.LoadFile(path)
	if err != nil {
		return nil, hint.With(fmt.Errorf("load kubeconfig %s: %w", path, err),
			"pass --kubeconfig FILE or set KUBECONFIG; on a control-plane node the admin kubeconfig is "+config.AdminKubeconfigFile)
	}
	return kubeclient.New(rc, kubeclient.Command)
}

// kubeconfigPath picks the kubeconfig as kubeadm does: the flag; else the first existing file of $KUBECONFIG
// (or ~/.kube/config when it is unset), then /etc/kubernetes/admin.conf; else the first of those names.
func kubeconfigPath(flag string) string {
	if flag != "" {
		return flag
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.Precedence = append(rules.Precedence, config.AdminKubeconfigFile)
	return rules.GetDefaultFilename()
}

func newTokenCmd(stdout, stderr io.Writer) *cobra.Command {
	return newTokenCmdWith(stdout, stderr, hostTokenDeps())
}

func newTokenCmdWith(stdout, stderr io.Writer, deps tokenDeps) *cobra.Command {
	var kubeconfigFlag string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage bootstrap tokens",
		Long: `Manage bootstrap tokens: kube-system/bootstrap-token-<id> Secrets that let a new node find and trust the
cluster (usage "signing") and authenticate for its TLS bootstrap (usage "authentication").

A token has the form ` + token.Format + `: the first part is its public ID, the second its secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&kubeconfigFlag, "kubeconfig", "", "the kubeconfig file to reach the cluster with; default: $KUBECONFIG, ~/.kube/config, then "+config.AdminKubeconfigFile)
	cmd.PersistentFlags().Lookup("kubeconfig").DefValue = config.AdminKubeconfigFile
	var dryRun bool
	cmd.PersistentFlags().BoolVar(&dryRun, "dry-run", false, "change nothing: read the cluster, and print the objects that would be created or deleted")
	clientFor := func(ctx context.Context, out io.Writer) (kubernetes.Interface, string, error) {
		path := kubeconfigPath(kubeconfigFlag)
		c, err := deps.client(path)
		if err == nil && dryRun {
			c = dryRunClient(ctx, c, out)
		}
		return c, path, err
	}
	cmd.AddCommand(
		newTokenCreateCmd(stdout, deps, clientFor),
		newTokenListCmd(stdout, stderr, deps, clientFor),
		newTokenDeleteCmd(stdout, clientFor),
		newTokenGenerateCmd(stdout, deps),
	)
	return cmd
}

// tokenClientFunc builds the commands' client; with --dry-run its writes are printed to out instead of made.
type tokenClientFunc func(ctx context.Context, out io.Writer) (kubernetes.Interface, string, error)

// apiContext bounds the token commands' API calls: token.Create and friends retry while the API server is
// unreachable, which must not go on forever.
func apiContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, config.DefaultKubernetesAPICall)
}

func newTokenCreateCmd(stdout io.Writer, deps tokenDeps, clientFor tokenClientFunc) *cobra.Command {
	var (
		description, certKey, configFile string
		usages, groups                   []string
		ttl                              time.Duration
		printJoin                        bool
	)
	cmd := &cobra.Command{
		Use:   "create [TOKEN]",
		Short: "Create a bootstrap token on the cluster and print it",
		Long: `Create a bootstrap token on the cluster and print it.

TOKEN, when given, is the token to store (` + token.Format + `); otherwise a random one is generated.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if certKey != "" && !printJoin {
				return hint.With(errors.New("--certificate-key needs --print-join-command"), "add --print-join-command to print the control-plane join command")
			}
			if certKey != "" {
				if b, err := hex.DecodeString(certKey); err != nil || len(b) != 32 {
					return hint.With(fmt.Errorf("--certificate-key: not 64 hexadecimal characters (got %d characters)", len(certKey)),
						"pass the key printed by 'kubeboot init phase upload-certs --upload-certs' (or kubeadm's)")
				}
			}
			var tokens []config.BootstrapToken
			var err error
			if configFile != "" {
				if tokens, err = tokensFromConfig(cmd, configFile, args, deps.env()); err != nil {
					return err
				}
			} else {
				var tok token.Token
				if len(args) == 1 {
					if tok, err = token.Parse(args[0]); err != nil {
						return hint.With(fmt.Errorf("TOKEN argument: %w", err), "'kubeboot token generate' prints a valid random token")
					}
				} else if tok, err = deps.generate(); err != nil {
					return err
				}
				bt := config.BootstrapToken{
					Token:       tok.Value(),
					Description: description,
					TTL:         &metav1.Duration{Duration: ttl},
					Usages:      usages,
				}
				// The default group is for authenticating tokens only; token.Secret adds it when it applies, so a
				// --usages signing token is not refused over a group the user never asked for.
				if cmd.Flags().Changed("groups") {
					bt.Groups = groups
				}
				tokens = []config.BootstrapToken{bt}
			}
			for _, bt := range tokens {
				if err := token.Validate(bt); err != nil {
					return err
				}
			}
			first := tokens[0].Token
			ctx, cancel := apiContext(cmd.Context())
			defer cancel()
			client, path, err := clientFor(ctx, stdout)
			if err != nil {
				return err
			}
			var join string
			if printJoin {
				// Before creating the token, so a kubeconfig that cannot give a join command leaves no token behind.
				if join, err = joinCommand(ctx, path, client, first, certKey); err != nil {
					return err
				}
			}
			for _, bt := range tokens {
				if err := token.Create(ctx, client, bt); err != nil {
					return err
				}
			}
			if printJoin {
				fmt.Fprintln(stdout, join)
			} else {
				fmt.Fprintln(stdout, first)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&ttl, "ttl", token.DefaultTTL, "how long the token lives (e.g. 1s, 2m, 3h); 0 means forever")
	f.StringVar(&description, "description", "", "a human-friendly description of what the token is for")
	f.StringSliceVar(&usages, "usages", token.DefaultUsages(), "what the token may be used for: "+strings.Join(bootstrapapi.KnownTokenUsages, ","))
	f.StringSliceVar(&groups, "groups", []string{token.DefaultGroup}, "extra groups the token authenticates as; must match "+bootstrapapi.BootstrapGroupPattern)
	f.BoolVar(&printJoin, "print-join-command", false, "print the whole 'kubeboot join' command instead of just the token")
	f.StringVar(&certKey, "certificate-key", "", "with --print-join-command: print the control-plane join command with this certificate key")
	f.StringVar(&configFile, "config", "", "a kubeadm configuration file: create every token of its InitConfiguration.bootstrapTokens (a token without a value gets a random one) and print the first")
	return cmd
}

// tokensFromConfig reads the bootstrap tokens of `token create --config`, defaulted as init would default them.
// As in kubeadm, the file is the only source: the token's flags and the TOKEN argument cannot be added.
func tokensFromConfig(cmd *cobra.Command, file string, args []string, env config.Environment) ([]config.BootstrapToken, error) {
	var mixed []string
	for _, name := range []string{"ttl", "usages", "groups", "description"} {
		if cmd.Flags().Changed(name) {
			mixed = append(mixed, "--"+name)
		}
	}
	if len(args) > 0 {
		mixed = append(mixed, "the TOKEN argument")
	}
	if len(mixed) > 0 {
		return nil, hint.With(fmt.Errorf("cannot mix --config with %s", strings.Join(mixed, ", ")),
			"set the token in the file's InitConfiguration.bootstrapTokens instead")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read --config: %w", err)
	}
	cfg, _, err := config.ResolveInit(data, config.InitFlags{}, env)
	if err != nil {
		return nil, hint.With(fmt.Errorf("invalid configuration in %s: %w", file, err), "fix the fields named above; no token was created")
	}
	if len(cfg.Init.BootstrapTokens) == 0 {
		return nil, fmt.Errorf("%s: InitConfiguration.bootstrapTokens is empty: no token to create", file)
	}
	return cfg.Init.BootstrapTokens, nil
}

// joinCommand is the one-line join command for tok: the endpoint is the kubeconfig's server, the CA pins come
// from its CA (inline or as a file) or, if it has none, from the cluster-info ConfigMap.
func joinCommand(ctx context.Context, path string, client kubernetes.Interface, tok, certKey string) (string, error) {
	kc, err := clientcmd.LoadFromFile(path)
	if err == nil {
		// A relative certificate-authority path is relative to the kubeconfig file, not to the working directory.
		err = clientcmd.ResolveLocalPaths(kc)
	}
	if err != nil {
		return "", fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	cluster, _, err := kubeconfig.Current(kc)
	if err != nil {
		return "", fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("kubeconfig %s: server %q is not an https://HOST:PORT URL", path, cluster.Server)
	}
	var caPEM []byte
	var from string
	switch {
	case len(cluster.CertificateAuthorityData) > 0:
		caPEM, from = cluster.CertificateAuthorityData, "certificate-authority-data of "+path
	case cluster.CertificateAuthority != "":
		if caPEM, err = os.ReadFile(cluster.CertificateAuthority); err != nil {
			return "", fmt.Errorf("read the CA of kubeconfig %s: %w", path, err)
		}
		from = cluster.CertificateAuthority
	default:
		if caPEM, err = clusterInfoCA(ctx, client); err != nil {
			return "", fmt.Errorf("kubeconfig %s has no CA, and %w", path, err)
		}
		from = "the " + bootstrapapi.ConfigMapClusterInfo + " ConfigMap"
	}
	cas, err := certutil.ParseCertsPEM(caPEM)
	if err != nil {
		return "", fmt.Errorf("the CA in %s: %w", from, err)
	}
	line := fmt.Sprintf("kubeboot join %s --token %s", u.Host, tok)
	for _, ca := range cas {
		line += " --discovery-token-ca-cert-hash " + pki.DiscoveryHash(ca)
	}
	if certKey != "" {
		line += " --control-plane --certificate-key " + certKey
	}
	return line, nil
}

// clusterInfoCA reads the CA from kube-public/cluster-info, which holds a kubeconfig with exactly one cluster.
func clusterInfoCA(ctx context.Context, client kubernetes.Interface) ([]byte, error) {
	where := metav1.NamespacePublic + "/" + bootstrapapi.ConfigMapClusterInfo
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap %s failed: %w", where, err)
	}
	kc, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey]))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s, key %s: %w", where, bootstrapapi.KubeConfigKey, err)
	}
	if len(kc.Clusters) != 1 {
		return nil, fmt.Errorf("ConfigMap %s, key %s: %d clusters, want exactly one", where, bootstrapapi.KubeConfigKey, len(kc.Clusters))
	}
	var ca []byte
	for _, c := range kc.Clusters {
		ca = c.CertificateAuthorityData
	}
	if len(ca) == 0 {
		return nil, fmt.Errorf("ConfigMap %s, key %s: no certificate-authority-data", where, bootstrapapi.KubeConfigKey)
	}
	return ca, nil
}

// tokenOutput is one token as kubeadm prints it with -o json|yaml (output.kubeadm.k8s.io/v1alpha3 BootstrapToken).
type tokenOutput struct {
	Kind        string       `json:"kind"`
	APIVersion  string       `json:"apiVersion"`
	Token       string       `json:"token"`
	Description string       `json:"description,omitempty"`
	Expires     *metav1.Time `json:"expires,omitempty"`
	Usages      []string     `json:"usages,omitempty"`
	Groups      []string     `json:"groups,omitempty"`
}

func newTokenListCmd(stdout, stderr io.Writer, deps tokenDeps, clientFor tokenClientFunc) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the bootstrap tokens on the cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "text", "json", "yaml":
			default:
				return fmt.Errorf("--output %q: must be one of text, json, yaml", output)
			}
			ctx, cancel := apiContext(cmd.Context())
			defer cancel()
			client, _, err := clientFor(ctx, stdout)
			if err != nil {
				return err
			}
			tokens, skipped, err := token.List(ctx, client)
			if err != nil {
				return err
			}
			for _, err := range skipped {
				fmt.Fprintf(stderr, "skipped: %v\n", err) // names the Secret, never its value
			}
			if output == "text" {
				return token.FormatList(stdout, tokens, deps.now())
			}
			for i, t := range tokens {
				o := tokenOutput{
					Kind: "BootstrapToken", APIVersion: "output.kubeadm.k8s.io/v1alpha3",
					Token: t.Token.Value(), Description: t.Description, Usages: t.Usages, Groups: t.Groups,
				}
				if t.Expires != nil {
					o.Expires = &metav1.Time{Time: *t.Expires}
				}
				var b []byte
				if output == "json" {
					b, err = json.MarshalIndent(o, "", "    ")
					b = append(b, '\n')
				} else {
					b, err = yaml.Marshal(o)
					if i > 0 {
						b = append([]byte("---\n"), b...)
					}
				}
				if err != nil {
					return fmt.Errorf("print token %s: %w", t.Token.ID, err)
				}
				if _, err := stdout.Write(b); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	addPrinterFlags(cmd)
	return cmd
}

func newTokenDeleteCmd(stdout io.Writer, clientFor tokenClientFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TOKEN|ID...",
		Short: "Delete bootstrap tokens from the cluster",
		Long: `Delete bootstrap tokens from the cluster, each named by its whole token (` + token.Format + `) or its
ID (` + token.IDFormat + `).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return hint.With(fmt.Errorf("missing argument: name the tokens to delete, each as %s or %s", token.Format, token.IDFormat),
					"'kubeboot token list' shows the tokens that exist")
			}
			// Check every argument before deleting anything: a typo should not leave half the list deleted.
			ids := make([]string, len(args))
			for i, a := range args {
				id, err := token.ParseID(a)
				if err != nil {
					return fmt.Errorf("argument %d: %w; nothing was deleted", i+1, err)
				}
				ids[i] = id
			}
			ctx, cancel := apiContext(cmd.Context())
			defer cancel()
			client, _, err := clientFor(ctx, stdout)
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range ids {
				if err := token.Delete(ctx, client, id); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(stdout, "bootstrap token %q deleted\n", id)
			}
			return errors.Join(errs...)
		},
	}
}

func newTokenGenerateCmd(stdout io.Writer, deps tokenDeps) *cobra.Command {
	return &cobra.Command{
		Use:   "generate",
		Short: "Print a random bootstrap token without storing it in the cluster",
		Long: `Print a random bootstrap token (` + token.Format + `) without storing it in the cluster: pass it to
'kubeboot init --token' or 'kubeboot token create'.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tok, err := deps.generate()
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, tok.Value())
			return nil
		},
	}
}
