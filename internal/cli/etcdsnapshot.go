package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/joinflow"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/reset"
	"kubeboot.dev/kubeboot/internal/restart"
	"kubeboot.dev/kubeboot/internal/snapshot"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/waiter"
)

// DefaultSnapshotDir is where `etcd snapshot save` puts archives without a FILE.
const DefaultSnapshotDir = "/var/lib/kubeboot/snapshots"

// snapshotEtcd is what the snapshot commands ask of etcd; *etcd.Client is one.
type snapshotEtcd interface {
	snapshot.Etcd
	snapshot.Membership
	snapshot.Local
	Close() error
}

// snapshotDeps are the snapshot commands' effects beyond the node's files; tests replace them.
type snapshotDeps struct {
	connect func(fsys nodefs.FS, certDir string, opts etcd.Options) (snapshotEtcd, error)
	// clusterConfig reads kube-system/kubeadm-config with the kubeconfig file at path.
	clusterConfig func(ctx context.Context, kubeconfig string) (*config.ClusterConfiguration, error)
	// kubeletConfig reads the KubeletConfiguration document of kube-system/kubelet-config the same way.
	kubeletConfig func(ctx context.Context, kubeconfig string) ([]byte, error)
	// runtime reaches the kubelet's container runtime; done releases it.
	runtime func(ctx context.Context, fsys nodefs.FS) (rt snapshot.Containers, done func(), err error)
	// diagnoser explains a component that does not turn healthy; nil: no diagnosis.
	diagnoser func(fsys nodefs.FS) waiter.Diagnoser
	now       func() time.Time
	// executable is the path of this kubeboot, which a schedule runs.
	executable func() (string, error)
	// run runs systemctl and systemd-analyze for schedule.
	run kubelet.Runner
}

func hostSnapshotDeps() snapshotDeps {
	return snapshotDeps{
		connect: func(fsys nodefs.FS, certDir string, opts etcd.Options) (snapshotEtcd, error) {
			c, err := etcd.Connect(fsys, certDir, opts)
			if err != nil {
				return nil, hint.With(err, "run this on a control-plane node with stacked etcd, or pass --cert-dir")
			}
			return c, nil
		},
		clusterConfig: func(ctx context.Context, kubeconfig string) (*config.ClusterConfiguration, error) {
			client, err := commandClient(kubeconfig)
			if err != nil {
				return nil, err
			}
			cc, err := uploadconfig.ReadClusterConfiguration(ctx, client, nil)
			if err != nil {
				return nil, err
			}
			return &cc, nil
		},
		kubeletConfig: func(ctx context.Context, kubeconfig string) ([]byte, error) {
			client, err := commandClient(kubeconfig)
			if err != nil {
				return nil, err
			}
			cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, uploadconfig.KubeletConfigMap, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("read %s/%s: %w", metav1.NamespaceSystem, uploadconfig.KubeletConfigMap, err)
			}
			doc, ok := cm.Data[uploadconfig.KubeletConfigKey]
			if !ok {
				return nil, fmt.Errorf("%s/%s has no key %q", metav1.NamespaceSystem, uploadconfig.KubeletConfigMap, uploadconfig.KubeletConfigKey)
			}
			return []byte(doc), nil
		},
		runtime: func(ctx context.Context, fsys nodefs.FS) (snapshot.Containers, func(), error) {
			socket := nodeCRISocket(fsys)
			rt, err := cri.Dial(ctx, socket)
			if err != nil {
				return nil, nil, hint.With(err, "the restore waits for etcd to stop through the kubelet's container runtime; nothing was changed")
			}
			return rt, func() { rt.Close() }, nil
		},
		diagnoser: func(fsys nodefs.FS) waiter.Diagnoser {
			socket := nodeCRISocket(fsys)
			return initflow.NewDiagnoser(socket, fsys, cri.DialRuntime)
		},
		now:        time.Now,
		executable: nodeenv.Executable,
		run:        kubelet.RunCommand,
	}
}

// commandClient is a client of the cluster through the kubeconfig file at path.
func commandClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := kubeclient.LoadFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubeclient.New(rc, kubeclient.Command)
}

// keyFlags are --encryption-key and --encryption-key-file.
type keyFlags struct {
	key, keyFile string
}

func (k *keyFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&k.key, "encryption-key", "", what+" with this key: 64 hexadecimal characters, the form of kubeadm's certificate key, as kubeboot certs certificate-key makes")
	cmd.Flags().StringVar(&k.keyFile, "encryption-key-file", "", "read --encryption-key from this file (keeps the key out of the process list and the shell history)")
}

// parse returns the key, nil when none was given.
func (k *keyFlags) parse() ([]byte, error) {
	key := k.key
	if k.keyFile != "" {
		if key != "" {
			return nil, errors.New("--encryption-key and --encryption-key-file: pass one")
		}
		b, err := os.ReadFile(k.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--encryption-key-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" {
		return nil, nil
	}
	b, err := copycerts.ParseKey(key)
	if err != nil {
		return nil, fmt.Errorf("--encryption-key: %w", err)
	}
	return b, nil
}

// keyHint is the advice for an archive that needs a key.
func keyHint(err error) error {
	switch {
	case errors.Is(err, snapshot.ErrEncrypted):
		return hint.With(err, "pass the key it was saved with: --encryption-key or --encryption-key-file")
	case errors.Is(err, snapshot.ErrWrongKey):
		return hint.With(err, "pass the key it was saved with")
	case errors.Is(err, snapshot.ErrCorrupt):
		return hint.With(err, "use another archive; this one cannot be restored")
	}
	return err
}

// newEtcdSnapshotCmd is `etcd snapshot`; f are the etcd command's flags (--endpoints, --cert-dir, --timeout).
func newEtcdSnapshotCmd(stdout io.Writer, f *etcdFlags, deps snapshotDeps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up the cluster's etcd and PKI, and restore them",
		Long: `Back up the cluster's etcd and PKI, and restore them.

An archive holds a consistent snapshot of etcd, the CAs and service-account keys a rebuilt control-plane node
needs, the ClusterConfiguration and metadata (cluster, versions, members, time, the snapshot's SHA-256).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// ctx bounds a command by --timeout only when it was given: a snapshot of a large database, or a restore that
	// waits for the kubelet, takes longer than the member commands' default.
	ctx := func(cmd *cobra.Command) (context.Context, context.CancelFunc) {
		f.rootfs = rootfsOf(cmd)
		if cmd.Flags().Changed("timeout") {
			return context.WithTimeout(cmd.Context(), f.timeout)
		}
		return context.WithCancel(cmd.Context())
	}
	cmd.AddCommand(newSnapshotSaveCmd(stdout, f, deps, ctx), newSnapshotVerifyCmd(stdout, f, ctx),
		newSnapshotRestoreCmd(stdout, f, deps, ctx), newSnapshotRejoinCmd(stdout, f, deps, ctx), newSnapshotScheduleCmd(stdout, f, deps, ctx))
	return cmd
}

type cmdContext func(cmd *cobra.Command) (context.Context, context.CancelFunc)

func newSnapshotSaveCmd(stdout io.Writer, f *etcdFlags, deps snapshotDeps, cmdCtx cmdContext) *cobra.Command {
	var (
		keys       keyFlags
		keep       int
		kubeconfig string
		configFile string
	)
	cmd := &cobra.Command{
		Use:   "save [FILE|DIRECTORY]",
		Short: "Save a snapshot of etcd with the PKI and the ClusterConfiguration to an archive",
		Long: `Save a snapshot of etcd with the PKI and the ClusterConfiguration to an archive, mode 0600, written atomically.

Into a DIRECTORY (the default is ` + DefaultSnapshotDir + `) the archive is named with the time, and --keep N deletes
the oldest of the directory's archives beyond N. The ClusterConfiguration is read from kube-system/kubeadm-config
with --kubeconfig, or from --config; without either the archive holds none.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := DefaultSnapshotDir + "/"
			if len(args) == 1 {
				target = args[0]
			}
			key, err := keys.parse()
			if err != nil {
				return err
			}
			if keep < 0 {
				return fmt.Errorf("--keep %d: must be 0 (keep all) or more", keep)
			}
			ctx, cancel := cmdCtx(cmd)
			defer cancel()
			fsys, err := rootFS(f.rootfs)
			if err != nil {
				return err
			}
			cc, kc, err := saveClusterConfig(ctx, stdout, fsys, deps, kubeconfig, configFile)
			if err != nil {
				return err
			}
			api, err := deps.connect(fsys, f.certDir, etcd.Options{Endpoints: f.endpoints})
			if err != nil {
				return err
			}
			defer api.Close()
			s := &snapshot.Saver{Node: fsys, CertDir: f.certDir, Files: nodefs.Host, Etcd: api, Cluster: cc, Kubelet: kc, Key: key, Now: deps.now}
			saved, err := s.Save(ctx, target, keep)
			if err != nil {
				return err
			}
			m := saved.Metadata
			encrypted := ""
			if key != nil {
				encrypted = ", encrypted"
			}
			fmt.Fprintf(stdout, "[snapshot] saved %s: %s%s (snapshot.db %s from etcd %s, %d members) in %s\n", saved.File, humanBytes(saved.Size),
				encrypted, humanBytes(m.SnapshotSize), m.EtcdVersion, len(m.Members), saved.Took.Round(10*time.Millisecond))
			for _, r := range saved.Removed {
				fmt.Fprintf(stdout, "[snapshot] removed %s (--keep %d)\n", r, keep)
			}
			if key != nil {
				fmt.Fprintln(stdout, "[snapshot] keep the encryption key apart from the archive: without it the archive cannot be restored")
			}
			return nil
		},
	}
	keys.add(cmd, "encrypt the archive (AES-256-GCM)")
	cmd.Flags().IntVar(&keep, "keep", 0, "with a DIRECTORY: keep this many of its archives, deleting the oldest (0: keep all)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", config.AdminKubeconfigFile, "the kubeconfig to read kube-system/kubeadm-config with (under --rootfs)")
	cmd.Flags().StringVar(&configFile, "config", "", "read the ClusterConfiguration from this kubeadm configuration file instead of the cluster")
	return cmd
}

// saveClusterConfig is the ClusterConfiguration and the KubeletConfiguration document to save: --config's, else
// the cluster's through the kubeconfig, else none (said on out: the snapshot matters more than the configuration).
func saveClusterConfig(ctx context.Context, out io.Writer, fsys nodefs.FS, deps snapshotDeps, kubeconfig, configFile string) (*config.ClusterConfiguration, []byte, error) {
	if configFile != "" {
		cc, docs, err := clusterConfigFile(configFile)
		if err != nil || docs.Kubelet == nil {
			return cc, nil, err
		}
		kc, err := uploadconfig.KubeletConfigurationYAML(docs.Kubelet)
		return cc, kc, err
	}
	path := fsys.Path(kubeconfig)
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(out, "[snapshot] WARNING: no %s: the archive holds no ClusterConfiguration (pass --config to add one)\n", kubeconfig)
		return nil, nil, nil
	}
	cc, err := deps.clusterConfig(ctx, path)
	if err != nil {
		fmt.Fprintf(out, "[snapshot] WARNING: the archive holds no ClusterConfiguration: %v (pass --config to add one)\n", err)
		return nil, nil, nil
	}
	kc, err := deps.kubeletConfig(ctx, path)
	if err != nil {
		fmt.Fprintf(out, "[snapshot] WARNING: the archive holds no KubeletConfiguration: %v (a control plane rebuilt from it gets the kubelet's defaults)\n", err)
		return cc, nil, nil
	}
	return cc, kc, nil
}

// clusterConfigFile reads the ClusterConfiguration of a kubeadm configuration file, defaulted as kubeadm's
// scheme does, and the file's other documents.
func clusterConfigFile(file string) (*config.ClusterConfiguration, *config.Documents, error) {
	b, err := readConfigFile(file, "init-defaults")
	if err != nil {
		return nil, nil, err
	}
	docs, err := config.Load(b)
	if err != nil {
		return nil, nil, fmt.Errorf("--config %s: %w", file, err)
	}
	if docs.Cluster == nil {
		return nil, nil, fmt.Errorf("--config %s: no %s", file, config.KindCluster)
	}
	config.SetClusterStaticDefaults(docs.Cluster)
	return docs.Cluster, docs, nil
}

// nodeOptionsFrom takes what join's etcd manifest renders from the node's own configuration, the patches
// directory, the health-check timeout and the image pull policy, from the InitConfiguration or
// JoinConfiguration of --config: the file the node was made with renders the manifest it had.
func nodeOptionsFrom(node *config.Node, docs *config.Documents) {
	switch {
	case docs == nil:
	case docs.Join != nil:
		node.Patches, node.Timeouts = docs.Join.Patches, docs.Join.Timeouts
		node.Registration.ImagePullPolicy = docs.Join.NodeRegistration.ImagePullPolicy
	case docs.Init != nil:
		node.Patches, node.Timeouts = docs.Init.Patches, docs.Init.Timeouts
		node.Registration.ImagePullPolicy = docs.Init.NodeRegistration.ImagePullPolicy
	}
}

func newSnapshotVerifyCmd(stdout io.Writer, f *etcdFlags, cmdCtx cmdContext) *cobra.Command {
	var (
		keys   keyFlags
		force  bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an archive and print its metadata",
		Long: `Check an archive and print its metadata: the snapshot's SHA-256 against the metadata (a truncated or altered
archive is refused), and, on a node with a PKI, that the archive's cluster CA and etcd CA are this node's (a
snapshot of another cluster is refused unless --force).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkEtcdOutput(output); err != nil {
				return err
			}
			key, err := keys.parse()
			if err != nil {
				return err
			}
			_, cancel := cmdCtx(cmd)
			defer cancel()
			fsys, err := rootFS(f.rootfs)
			if err != nil {
				return err
			}
			c, err := snapshot.Read(nodefs.Host, args[0], key, io.Discard)
			if err != nil {
				return keyHint(err)
			}
			checked, caErr := snapshot.CheckCA(c, fsys, f.certDir)
			if caErr != nil && !force {
				return hint.With(fmt.Errorf("%s: %w", args[0], caErr), "this archive is not of this node's cluster; --force verifies it anyway")
			}
			if output == "json" {
				return writeJSON(stdout, c.Metadata)
			}
			if err := writeMetadata(stdout, args[0], c); err != nil {
				return err
			}
			switch {
			case caErr != nil:
				fmt.Fprintf(stdout, "\nWARNING: %v (--force)\n", caErr)
			case !checked:
				fmt.Fprintf(stdout, "\nthis node has no cluster CA under %s: the archive's was not compared\n", f.certDir)
			default:
				fmt.Fprintf(stdout, "\nthe archive's cluster CA and etcd CA are this node's\n")
			}
			return nil
		},
	}
	keys.add(cmd, "decrypt the archive")
	cmd.Flags().BoolVar(&force, "force", false, "verify an archive of another cluster (a different CA) too")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// writeMetadata prints what an archive holds.
func writeMetadata(w io.Writer, file string, c *snapshot.Contents) error {
	m := c.Metadata
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "archive:\t%s (verified: snapshot.db matches its SHA-256)\n", file)
	fmt.Fprintf(tw, "taken:\t%s by kubeboot %s\n", m.Time.Format(time.RFC3339), m.KubebootVersion)
	fmt.Fprintf(tw, "cluster:\t%s, Kubernetes %s\n", orDash(m.ClusterName), orDash(m.KubernetesVersion))
	fmt.Fprintf(tw, "etcd:\t%s, snapshot.db %s, SHA-256 %s\n", m.EtcdVersion, humanBytes(m.SnapshotSize), m.SnapshotSHA256)
	fmt.Fprintf(tw, "PKI:\t%s (from %s)\n", strings.Join(m.Files, ", "), m.CertificatesDir)
	cfg := "none"
	if c.Config != nil {
		cfg = "kube-system/kubeadm-config's ClusterConfiguration"
	}
	fmt.Fprintf(tw, "configuration:\t%s\n", cfg)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "members:")
	members := make([]etcd.Member, 0, len(m.Members))
	for _, x := range m.Members {
		members = append(members, etcd.Member{Name: x.Name, PeerURLs: x.PeerURLs, ClientURLs: x.ClientURLs, IsLearner: x.IsLearner})
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tNAME\tLEARNER\tPEER URLS\tCLIENT URLS")
	for i, x := range m.Members {
		fmt.Fprintf(tw, "  %s\t%s\t%t\t%s\t%s\n", x.ID, orDash(x.Name), x.IsLearner, orDash(strings.Join(members[i].PeerURLs, ",")),
			orDash(strings.Join(members[i].ClientURLs, ",")))
	}
	return tw.Flush()
}

func newSnapshotRestoreCmd(stdout io.Writer, f *etcdFlags, deps snapshotDeps, cmdCtx cmdContext) *cobra.Command {
	var (
		keys        keyFlags
		force       bool
		waitTimeout time.Duration
		rb          rebuildOptions
	)
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore an archive's etcd snapshot on this control-plane node as a one-member cluster",
		Long: `Restore an archive's etcd snapshot on this control-plane node as a one-member cluster.

Before it stops anything it refuses a corrupt or truncated archive, a snapshot of another cluster (a different
CA; --force restores it anyway), a restore while other members of the old cluster still run (they would form a
split brain: stop their etcd first), and a data directory that would not fit on the disk. Then it stops this
node's etcd (its manifest moved to ` + snapshot.StoppedManifest + `), moves the data directory aside (kept), restores
the snapshot into a new one with etcdutl as a one-member cluster with this node's member name and peer URL, puts
the manifest back and waits until etcd is healthy and the API server ready. The other control-plane nodes then
rejoin with ` + "`kubeboot etcd snapshot rejoin`" + `.

On a machine with no control plane (no etcd manifest, no kubelet.conf, no admin.conf: a new machine, or one
wiped by ` + "`kubeboot reset`" + `) it rebuilds the control plane from the archive alone: it installs the archive's
CAs and service-account keys, restores the snapshot as this node's one-member etcd, and writes the rest as init
does from the archive's ClusterConfiguration and KubeletConfiguration: certificates signed by the saved CAs,
kubeconfig files, static Pods and the kubelet's settings. This machine's own part (node name, address, runtime)
comes from --config (an InitConfiguration) and the flags, as for init; give it the lost node's address so that
the other nodes find it again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := keys.parse()
			if err != nil {
				return err
			}
			ctx, cancel := cmdCtx(cmd)
			defer cancel()
			fsys, err := rootFS(f.rootfs)
			if err != nil {
				return err
			}
			release, err := lockNode(fsys, cmd)
			if err != nil {
				return err
			}
			defer release()
			rt, done, err := deps.runtime(ctx, fsys)
			if err != nil {
				return err
			}
			defer done()
			// This node's member, while it runs, lists the members of the cluster now: more than the snapshot's
			// when some joined after it.
			var local snapshot.Local
			if api, err := deps.connect(fsys, f.certDir, etcd.Options{Endpoints: f.endpoints}); err == nil {
				defer api.Close()
				local = api
			}
			r := &snapshot.Restorer{Node: fsys, Files: nodefs.Host, Key: key, Force: force, Containers: rt, Local: local,
				Probe: &restart.NodeProber{FS: fsys}, Peers: snapshot.NodeReacher{FS: fsys, CertDir: f.certDir}, Disk: snapshot.StatFS{},
				Init: rb.initFunc(fsys, stdout, cmd.Flags()), Out: stdout, Now: deps.now, Timeout: waitTimeout}
			if deps.diagnoser != nil {
				r.Diagnose = deps.diagnoser(fsys)
			}
			restored, err := r.Restore(ctx, args[0])
			if err != nil {
				return keyHint(err)
			}
			writeRejoinAdvice(stdout, restored)
			return nil
		},
	}
	keys.add(cmd, "decrypt the archive")
	cmd.Flags().BoolVar(&force, "force", false, "restore a snapshot of another cluster (a different CA) with this node's PKI")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", snapshot.DefaultTimeout, "give up waiting for etcd to stop, for etcd to be healthy, or for the API server to be ready after this long")
	rb.register(cmd.Flags())
	return cmd
}

// rebuildOptions are restore's flags for a machine with no control plane: this machine's part of init's
// configuration.
type rebuildOptions struct {
	configFile, nodeName, advertise string
	ignorePreflight                 []string
	// env answers questions about the machine; nil: config.HostEnvironment.
	env func() config.Environment
}

func (o *rebuildOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.configFile, "config", "", "rebuilding a control plane: a kubeadm configuration file with this machine's InitConfiguration (the ClusterConfiguration and KubeletConfiguration come from the archive)")
	fs.StringVar(&o.nodeName, "node-name", "", "rebuilding a control plane: the node's name; default: the hostname")
	fs.StringVar(&o.advertise, "apiserver-advertise-address", "", "rebuilding a control plane: the IP address the API server advertises; default: the address of the default route's interface")
	fs.StringSliceVar(&o.ignorePreflight, "ignore-preflight-errors", nil, "rebuilding a control plane: init's checks whose errors become warnings")
}

// initFunc builds init's data for a rebuild from the archive's configuration documents and this machine's.
func (o *rebuildOptions) initFunc(fsys nodefs.FS, stdout io.Writer, fs *pflag.FlagSet) snapshot.InitFunc {
	return func(c *snapshot.Contents) (*initflow.Data, error) {
		user, err := readConfigFile(o.configFile, "init-defaults")
		if err != nil {
			return nil, err
		}
		// The archive's configuration is a file, and kubeadm takes no node flags beside a file: the node's flags
		// become the InitConfiguration's fields instead.
		if user, err = o.nodeDocument(user, fs); err != nil {
			return nil, err
		}
		file, err := rebuildConfig(c, user, o.configFile)
		if err != nil {
			return nil, err
		}
		flags := config.InitFlags{IgnorePreflightErrors: o.ignorePreflight}
		env := config.HostEnvironment
		if o.env != nil {
			env = o.env
		}
		host := env()
		cfg, err := resolveInit(stdout, file, "the archive's configuration with this machine's", flags, host)
		if err != nil {
			return nil, err
		}
		return &initflow.Data{Env: nodeenv.Host(fsys, stdout), Cfg: cfg, Clients: &initflow.FileClients{FS: fsys},
			Hostname: kubeletHostname(host, stdout)}, nil
	}
}

// nodeDocument is the user's --config, or without one an InitConfiguration of --node-name and
// --apiserver-advertise-address (nil when neither is set); both a file and those flags are refused, as init does.
func (o *rebuildOptions) nodeDocument(user []byte, fs *pflag.FlagSet) ([]byte, error) {
	var set []string
	for _, name := range []string{"node-name", "apiserver-advertise-address"} {
		if fs.Changed(name) {
			set = append(set, "--"+name)
		}
	}
	switch {
	case len(set) == 0:
		return user, nil
	case user != nil:
		return nil, hint.With(fmt.Errorf("cannot mix --config with %s", strings.Join(set, " and ")),
			"set nodeRegistration.name and localAPIEndpoint.advertiseAddress in the file instead")
	}
	doc := map[string]any{"apiVersion": config.V1beta4, "kind": config.KindInit}
	if fs.Changed("node-name") {
		doc["nodeRegistration"] = map[string]any{"name": o.nodeName}
	}
	if fs.Changed("apiserver-advertise-address") {
		doc["localAPIEndpoint"] = map[string]any{"advertiseAddress": o.advertise}
	}
	return yaml.Marshal(doc)
}

// rebuildConfig is the configuration a rebuild resolves: the archive's ClusterConfiguration and
// KubeletConfiguration, then the user's documents (from --config where; nil: none), which must not repeat them.
func rebuildConfig(c *snapshot.Contents, user []byte, where string) ([]byte, error) {
	docs := [][]byte{c.Config}
	if c.Kubelet != nil {
		docs = append(docs, c.Kubelet)
	}
	if user != nil {
		d, err := config.Load(user)
		if err != nil {
			return nil, fmt.Errorf("--config %s: %w", where, err)
		}
		keep := "the InitConfiguration"
		if c.Kubelet == nil {
			keep += " and a KubeletConfiguration"
		}
		switch {
		case d.Cluster != nil:
			return nil, hint.With(fmt.Errorf("--config %s holds a %s, which a rebuild takes from the archive", where, config.KindCluster), "keep only "+keep+" in it")
		case d.Kubelet != nil && c.Kubelet != nil:
			return nil, hint.With(fmt.Errorf("--config %s holds a KubeletConfiguration, which a rebuild takes from the archive", where), "keep only "+keep+" in it")
		}
		docs = append(docs, user)
	}
	return bytes.Join(docs, []byte("\n---\n")), nil
}

// writeRejoinAdvice says what to do with the other control-plane nodes after a restore.
func writeRejoinAdvice(w io.Writer, r *snapshot.Restored) {
	fmt.Fprintf(w, "\netcd is this node's member alone now, with the snapshot's data.\n")
	if len(r.Others) > 0 {
		var names []string
		for _, o := range r.Others {
			names = append(names, fmt.Sprintf("%s (%s)", orDash(o.Name), strings.Join(o.PeerURLs, ",")))
		}
		fmt.Fprintf(w, "The snapshot's other members must rejoin: %s. On each of those nodes, with its etcd stopped, run:\n\n", strings.Join(names, ", "))
		fmt.Fprintf(w, "  kubeboot etcd snapshot rejoin --endpoints %s\n\n", r.ClientURL)
		fmt.Fprintf(w, "one node at a time: each becomes a learner, then a voting member once it has caught up.\n")
	}
	if r.OldDataDir != "" {
		fmt.Fprintf(w, "The old data directory is kept at %s: remove it once the cluster is whole.\n", r.OldDataDir)
	}
}

func newSnapshotRejoinCmd(stdout io.Writer, f *etcdFlags, deps snapshotDeps, cmdCtx cmdContext) *cobra.Command {
	var (
		kubeconfig, configFile string
		waitTimeout            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rejoin --endpoints URL",
		Short: "Make this former member rejoin the cluster restored on another control-plane node",
		Long: `Make this node's etcd member, a member of the cluster before a restore on another control-plane node, a member of
the restored cluster: its etcd is stopped, its data directory moved aside (kept), the member added to the restored
cluster as a learner under its name and peer URL, its manifest written as join writes it (initial-cluster-state
existing), and the learner promoted once it has caught up. No other file of the node is touched.

--endpoints is the client URL of the restored member. The ClusterConfiguration the manifest is rendered from is
read from kube-system/kubeadm-config with --kubeconfig, or from --config; the node's patches directory, timeouts
and image pull policy come from the InitConfiguration or JoinConfiguration of --config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("endpoints") {
				return hint.With(errors.New("rejoin needs --endpoints: the client URL of the member restored on another node"),
					"`kubeboot etcd snapshot restore` prints the command with it")
			}
			ctx, cancel := cmdCtx(cmd)
			defer cancel()
			fsys, err := rootFS(f.rootfs)
			if err != nil {
				return err
			}
			release, err := lockNode(fsys, cmd)
			if err != nil {
				return err
			}
			defer release()
			m, _, err := snapshot.LocalMember(fsys)
			if err != nil {
				return err
			}
			var cc *config.ClusterConfiguration
			var docs *config.Documents
			if configFile != "" {
				cc, docs, err = clusterConfigFile(configFile)
			} else {
				cc, err = deps.clusterConfig(ctx, fsys.Path(kubeconfig))
				if err != nil {
					err = hint.With(fmt.Errorf("read the ClusterConfiguration with %s: %w", kubeconfig, err), "pass --config with the cluster's ClusterConfiguration")
				}
			}
			if err != nil {
				return err
			}
			node, err := rejoinNode(m, cc)
			if err != nil {
				return err
			}
			nodeOptionsFrom(node, docs)
			rt, done, err := deps.runtime(ctx, fsys)
			if err != nil {
				return err
			}
			defer done()
			api, err := deps.connect(fsys, f.certDir, etcd.Options{Endpoints: f.endpoints, CallTimeout: waitTimeout})
			if err != nil {
				return err
			}
			defer api.Close()
			r := &snapshot.Rejoiner{Node: fsys, Etcd: api, Containers: rt, Out: stdout, Now: deps.now, Timeout: waitTimeout,
				WriteManifest: func(initialCluster string) error {
					initial, err := joinflow.ParseInitialCluster(initialCluster)
					if err != nil {
						return err
					}
					return joinflow.WriteEtcdManifest(fsys, stdout, &config.Cluster{ClusterConfiguration: *cc}, node, initial)
				}}
			_, err = r.Rejoin(ctx)
			return err
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", config.AdminKubeconfigFile, "the kubeconfig to read kube-system/kubeadm-config with (under --rootfs)")
	cmd.Flags().StringVar(&configFile, "config", "", "read the ClusterConfiguration from this kubeadm configuration file instead of the cluster")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", snapshot.DefaultTimeout, "give up waiting for etcd to stop, or for the learner to catch up, after this long")
	return cmd
}

// rejoinNode is the node part join's renderer needs, from the member's manifest: its name and advertise address.
// It refuses a configuration that would render another member than the manifest's: another data directory,
// certificates directory or peer URL.
func rejoinNode(m *reset.EtcdMember, cc *config.ClusterConfiguration) (*config.Node, error) {
	if cc.Etcd.Local == nil {
		return nil, errors.New("the ClusterConfiguration has an external etcd: there is no member to rejoin")
	}
	peer := m.PeerURLs[0]
	u, err := url.Parse(peer)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("the etcd manifest's peer URL %q is not a URL", peer)
	}
	node := &config.Node{Registration: config.NodeRegistrationOptions{Name: m.Name}, LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: u.Hostname()}}
	switch {
	case staticpod.EtcdPeerURL(u.Hostname()) != peer:
		return nil, fmt.Errorf("the etcd manifest's peer URL %s is not on port %d, which join's manifest would give the member", peer, staticpod.EtcdPeerPort)
	case cc.Etcd.Local.DataDir != m.DataDir:
		return nil, fmt.Errorf("the ClusterConfiguration's etcd.local.dataDir %s is not the etcd manifest's data directory %s", cc.Etcd.Local.DataDir, m.DataDir)
	case m.TrustedCAFile != path.Join(cc.CertificatesDir, "etcd", "ca.crt"):
		return nil, fmt.Errorf("the ClusterConfiguration's certificatesDir %s does not hold the etcd manifest's CA %s", cc.CertificatesDir, m.TrustedCAFile)
	}
	return node, nil
}
