package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/dryrun"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// initOptions are init's flags before they become configuration.
type initOptions struct {
	configFile string
	rootfs     string
	flags      config.InitFlags
	fs         *pflag.FlagSet
	// raw values behind the pointer fields of flags; only flags the user set are copied into flags.
	advertise, endpoint, podCIDR, svcCIDR, dnsDomain, version, nodeName, certDir, criSocket, imageRepo, token, certKey string
	featureGates, patches                                                                                              string
	certSANs                                                                                                           []string
	bindPort                                                                                                           int32
	tokenTTL                                                                                                           time.Duration
	uploadCerts, dryRun                                                                                                bool
	// not configuration: how this run prints and where it finds its files
	kubeconfigDir, kubeconfig                              string
	skipTokenPrint, skipCertificateKeyPrint, printManifest bool
	// env answers questions about the machine; nil: config.HostEnvironment.
	env func() config.Environment
}

// register adds init's flags; phase is the phase path of `init phase ...` ("" for init itself).
func (o *initOptions) register(fs *pflag.FlagSet, phase string) {
	o.fs = fs
	fs.StringVar(&o.configFile, "config", "", "path to a kubeadm configuration file (kubeadm.k8s.io/v1beta4 or v1beta3)")
	fs.StringVar(&o.advertise, "apiserver-advertise-address", "", "the IP address the API server advertises; default: the address of the default route's interface")
	fs.Int32Var(&o.bindPort, "apiserver-bind-port", config.DefaultAPIBindPort, "port the API server binds to")
	fs.StringVar(&o.endpoint, "control-plane-endpoint", "", "a stable IP or DNS name (with optional port) for the control plane, e.g. a load balancer")
	fs.StringVar(&o.podCIDR, "pod-network-cidr", "", "the range of IP addresses for the pod network; the controller-manager allocates a subnet of it to every node")
	fs.StringVar(&o.svcCIDR, "service-cidr", config.DefaultServiceSubnet, "the range of IP addresses for Services")
	fs.StringVar(&o.dnsDomain, "service-dns-domain", config.DefaultDNSDomain, "the DNS domain of Services")
	fs.StringVar(&o.version, "kubernetes-version", release.DefaultVersion(), "the Kubernetes version of the control plane (kubeboot deploys v1.36.x and v1.37.x)")
	fs.StringVar(&o.nodeName, "node-name", "", "the node's name; default: the hostname")
	fs.StringVar(&o.certDir, "cert-dir", config.DefaultCertificatesDir, "where certificates are stored")
	fs.StringVar(&o.criSocket, "cri-socket", "", "the container runtime's CRI socket; default: "+config.DefaultCRISocket)
	fs.StringVar(&o.imageRepo, "image-repository", config.DefaultImageRepository, "where control-plane images come from")
	fs.StringVar(&o.token, "token", "", "the bootstrap token to create, [a-z0-9]{6}.[a-z0-9]{16}; default: a random one")
	fs.DurationVar(&o.tokenTTL, "token-ttl", 24*time.Hour, "how long the bootstrap token lives; 0 means forever")
	fs.BoolVar(&o.uploadCerts, "upload-certs", false, "upload the control-plane certificates to the kubeadm-certs Secret")
	fs.StringVar(&o.certKey, "certificate-key", "", "the key that encrypts the uploaded certificates (64 hex characters)")
	fs.StringSliceVar(&o.flags.IgnorePreflightErrors, "ignore-preflight-errors", nil, "checks whose errors become warnings, e.g. 'IsPrivilegedUser,Swap'; 'all' ignores every check")
	fs.BoolVar(&o.dryRun, "dry-run", false, "change nothing: render in memory and print what would be written (secrets named, not shown)")
	fs.StringVar(&o.featureGates, "feature-gates", "", featureGatesUsage)
	fs.StringSliceVar(&o.certSANs, "apiserver-cert-extra-sans", nil, "extra Subject Alternative Names (IP addresses or DNS names) for the API server's serving certificate")
	fs.StringVar(&o.patches, "patches", "", patchesUsage)
	fs.BoolVar(&o.skipTokenPrint, "skip-token-print", false, "print \""+initflow.Withheld+"\" instead of the bootstrap token in the join commands")
	fs.BoolVar(&o.skipCertificateKeyPrint, "skip-certificate-key-print", false, "print \""+initflow.Withheld+"\" instead of the certificate key in the join command")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "the kubeconfig file the phases that talk to the cluster use; default: the node's "+config.AdminKubeconfigFile)
	fs.Lookup("kubeconfig").DefValue = config.AdminKubeconfigFile
	if phase == "" {
		fs.StringSliceVar(&o.flags.SkipPhases, "skip-phases", nil, "phases to skip, e.g. 'addon/kube-proxy'")
	}
	if phase == "kubeconfig" || strings.HasPrefix(phase, "kubeconfig/") {
		// Only here, as in kubeadm: every other phase finds the kubeconfig files in /etc/kubernetes.
		fs.StringVar(&o.kubeconfigDir, "kubeconfig-dir", config.KubernetesDir, "where to write the kubeconfig files")
	}
	if phase == "addon" || strings.HasPrefix(phase, "addon/") {
		fs.BoolVar(&o.printManifest, "print-manifest", false, "print the addon's objects as YAML instead of installing them")
	}
}

// Usages shared by the commands that take these flags.
var (
	featureGatesUsage = "kubeadm feature gates to set, as Name=true|false pairs separated by commas; known: " + strings.Join(config.FeatureGateNames(), ", ")
	patchesUsage      = "a directory of patches for the rendered files, as kubeadm's patches.directory: files named " +
		"target[suffix][+patchtype].(yaml|json), target one of " + strings.Join(patches.Targets(), ", ") +
		", patchtype strategic (the default), merge or json"
)

// resolved turns the flags the user set into config.InitFlags.
func (o *initOptions) resolved() config.InitFlags {
	f := o.flags
	set := o.fs.Changed
	str := func(name, v string) *string { return changedString(o.fs, name, v) }
	f.APIServerAdvertiseAddress = str("apiserver-advertise-address", o.advertise)
	f.ControlPlaneEndpoint = str("control-plane-endpoint", o.endpoint)
	f.PodNetworkCIDR = str("pod-network-cidr", o.podCIDR)
	f.ServiceCIDR = str("service-cidr", o.svcCIDR)
	f.ServiceDNSDomain = str("service-dns-domain", o.dnsDomain)
	f.KubernetesVersion = str("kubernetes-version", o.version)
	f.NodeName = str("node-name", o.nodeName)
	f.CertDir = str("cert-dir", o.certDir)
	f.CRISocket = str("cri-socket", o.criSocket)
	f.ImageRepository = str("image-repository", o.imageRepo)
	f.Token = str("token", o.token)
	f.CertificateKey = str("certificate-key", o.certKey)
	if set("apiserver-bind-port") {
		f.APIServerBindPort = &o.bindPort
	}
	if set("token-ttl") {
		f.TokenTTL = &o.tokenTTL
	}
	if set("upload-certs") {
		f.UploadCerts = &o.uploadCerts
	}
	if set("dry-run") {
		f.DryRun = &o.dryRun
	}
	f.FeatureGates = str("feature-gates", o.featureGates)
	f.Patches = str("patches", o.patches)
	if set("apiserver-cert-extra-sans") {
		f.APIServerCertSANs = o.certSANs
	}
	return f
}

// data loads the configuration and builds the phases' data.
func (o *initOptions) data(stdout io.Writer) (*initflow.Data, error) {
	file, err := readConfigFile(o.configFile, "init-defaults")
	if err != nil {
		return nil, err
	}
	env := config.HostEnvironment
	if o.env != nil {
		env = o.env
	}
	host := env()
	where := "the flags"
	if o.configFile != "" {
		where = o.configFile
	}
	cfg, err := resolveInit(stdout, file, where, o.resolved(), host)
	if err != nil {
		return nil, err
	}
	fsys, err := nodeRoot(o.rootfs, cfg.Init.DryRun)
	if err != nil {
		return nil, err
	}
	dry := cfg.Init.DryRun
	hostname := kubeletHostname(host, stdout)
	return &initflow.Data{
		Env:         nodeenv.Host(fsys, stdout),
		Cfg:         cfg,
		Clients:     &initflow.FileClients{FS: fsys, Kubeconfig: o.kubeconfig},
		Executable:  nodeenv.Executable,
		Hostname:    hostname,
		DryRun:      dry,
		UploadCerts: o.uploadCerts,

		SkipTokenPrint:          o.skipTokenPrint,
		SkipCertificateKeyPrint: o.skipCertificateKeyPrint,
		PrintManifest:           o.printManifest,
		KubeconfigDir:           o.kubeconfigDir,
	}, nil
}

func newInitCmd(stdout io.Writer) *cobra.Command {
	o := &initOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make this machine the first control-plane node of a new cluster",
		Long: `Make this machine the first control-plane node of a new cluster.

Runs these phases (each is also 'kubeboot init phase <name>' and can be left out with --skip-phases); the file
phases run concurrently where they are independent: the kubelet starts once the CA and kubelet.conf exist, etcd
and the API server as soon as the files they read do. The phases that write API objects (controller-accounts,
upload-config, upload-certs, mark-control-plane, bootstrap-token, addon) then start at once, alongside
wait-control-plane: each waits for the API server to let admin.conf in. kubelet-finalize follows the wait, and
show-join-command comes last, once the control plane is healthy:
` + phaseList(initflow.Phases()),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(cmd, o, stdout, "")
		},
	}
	o.register(cmd.Flags(), "")
	cmd.AddCommand(newPhaseCmd(stdout, initflow.Phases()))
	return cmd
}

// resolveInitConfig is config.ResolveInit, with what the KubebootConfiguration adds to the ClusterConfiguration:
// 127.0.0.1 in apiServer.certSANs when the node-local API endpoint is on, whose clients connect to that address
// with TLS passed through to the API servers. It goes into the ClusterConfiguration itself, so that kubeadm-config
// carries it to certificate renewals, upgrades and control-plane joins, kubeadm's too.
func resolveInitConfig(file []byte, flags config.InitFlags, host config.Environment) (*config.Init, []string, error) {
	cfg, warnings, err := config.ResolveInit(file, flags, host)
	if err != nil {
		return cfg, warnings, err
	}
	if sans := localendpoint.CertSANs(cfg.Kubeboot, &cfg.Cluster); len(sans) > 0 {
		cfg.Cluster.APIServer.CertSANs = append(slices.Clone(cfg.Cluster.APIServer.CertSANs), sans...)
	}
	return cfg, warnings, nil
}

// resolveInit resolves init's configuration from file (nil: none) and the flags, printing its warnings; where
// names the configuration's source in an error.
func resolveInit(stdout io.Writer, file []byte, where string, flags config.InitFlags, host config.Environment) (*config.Init, error) {
	cfg, warnings, err := resolveInitConfig(file, flags, host)
	if err != nil {
		return nil, hint.With(fmt.Errorf("invalid configuration in %s: %w", where, err), "fix the fields named above; nothing was written")
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "[config] WARNING: %s\n", w)
	}
	return cfg, nil
}

func runInit(cmd *cobra.Command, o *initOptions, stdout io.Writer, only string) error {
	// Phases run concurrently where they can (see initflow.Phases): they and the runner share one locked writer.
	stdout = workflow.Locked(stdout)
	o.rootfs = rootfsOf(cmd)
	d, err := o.data(stdout)
	if err != nil {
		return err
	}
	if only == "" && !d.DryRun {
		// The kubelet starts once the CA and kubelet.conf exist (see initflow.Phases): their two keys are made at
		// once, on two CPUs, rather than one after the other.
		d.Source = d.Source.WithSpareKey()
	}
	runner := workflow.Runner[*initflow.Data]{Phases: initflow.Phases(), Out: stdout}
	skip := d.Cfg.Init.SkipPhases
	start := time.Now()
	if err := runner.Run(cmd.Context(), d, workflow.Options{Skip: skip, Only: only, Hold: holdNode(d.FS, cmd, d.DryRun)}); err != nil {
		return interrupted(cmd, err)
	}
	if d.DryRun {
		if err := dryrun.Report(stdout, d.FS); err != nil {
			return err
		}
	}
	if key := d.UnshownCertificateKey(); key != "" {
		// `init phase upload-certs`, or an init without show-join-command: the key exists nowhere else.
		fmt.Fprintf(stdout, "\nThe certificates are in kube-system/%s for %s; a joining control-plane node decrypts them with "+
			"--certificate-key (keep it secret):\n%s\n", copycerts.SecretName, initflow.Hours(copycerts.TokenTTL), key)
	}
	if only == "" {
		fmt.Fprintf(stdout, "init finished in %s\n", time.Since(start).Round(10*time.Millisecond))
	}
	return nil
}

// newPhaseCmd builds `init phase <name> [<sub>|all]`.
func newPhaseCmd(stdout io.Writer, phases []workflow.Phase[*initflow.Data]) *cobra.Command {
	return phaseCommands("init", phases, func(use, short, path string) *cobra.Command {
		o := &initOptions{}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runInit(cmd, o, stdout, path)
			},
		}
		o.register(c.Flags(), path)
		return c
	})
}

// kubeletHostname is the hostname init and join compare the node name with to decide on --hostname-override,
// as kubeadm does. If it cannot be read the user is told, and --hostname-override is set to the node name.
func kubeletHostname(host config.Environment, stdout io.Writer) string {
	h, err := host.NodeHostname()
	if err != nil {
		fmt.Fprintf(stdout, "[config] WARNING: read the hostname: %v; --hostname-override is set to the node name\n", err)
	}
	return h
}

// nodeRoot is the filesystem a command works on: the machine's root, or --rootfs; with --dry-run an overlay of it
// that reads its files (so reuse decisions are the real ones) and keeps every write, keys included, in memory.
func nodeRoot(rootfs string, dryRun bool) (nodefs.FS, error) {
	fsys, err := rootFS(rootfs)
	if err != nil || !dryRun {
		return fsys, err
	}
	return nodefs.Overlay(fsys), nil
}

// rootFS is the node's filesystem: the machine's root, or --rootfs (made absolute).
func rootFS(rootfs string) (nodefs.FS, error) {
	if rootfs == "" {
		return nodefs.Host, nil
	}
	abs, err := filepath.Abs(rootfs)
	if err != nil {
		return nodefs.Host, err
	}
	return nodefs.FS{Root: abs}, nil
}
