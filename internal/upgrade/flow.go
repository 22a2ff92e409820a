package upgrade

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/addons"
	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/clusterinfo"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodebootstrap"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// EtcdStatus lists the etcd members with their health (*etcd.Client).
type EtcdStatus interface {
	Status(ctx context.Context) ([]etcd.MemberStatus, error)
}

// ImagePuller pulls images into this node's container runtime (*cri.Client).
type ImagePuller interface {
	ImageStatus(ctx context.Context, ref string) (cri.Image, error)
	PullImage(ctx context.Context, ref string) error
}

// Data is what the phases of `upgrade apply` and `upgrade node` work on. Effects go through its fields.
type Data struct {
	Out    io.Writer
	FS     nodefs.FS
	Client kubernetes.Interface
	// Etcd is the cluster's etcd as this node reaches it; nil when etcd is external or not reachable from here.
	Etcd EtcdStatus
	// Engine replaces the static Pods; nil: EngineFor builds one once the configuration is known (the
	// certificates directory, etcd's kind), and its done releases what it holds.
	Engine    *Engine
	EngineFor func(ctx context.Context, d *Data) (e *Engine, done func(), err error)
	// Images pulls the target's images in preflight, before any static Pod is replaced, so that no component
	// waits for its image while it is down; nil: the kubelet pulls them.
	Images ImagePuller
	// HealthJob runs kubeadm's CreateJob check in preflight: a Job that must complete on the cluster.
	HealthJob bool
	// Confirm asks the user to go on (kubeadm's "Are you sure you want to proceed?"); nil: no question.
	Confirm func() error
	Now     func() time.Time

	// Version is the target of `upgrade apply`; "" for `upgrade node`, which takes kubeadm-config's.
	Version string
	// NodeFlow: `upgrade node` rather than `upgrade apply`.
	NodeFlow                   bool
	Force, DryRun, EtcdUpgrade bool
	AllowExperimental, AllowRC bool
	Patches                    *config.Patches
	Timeouts                   *config.Timeouts
	// ImagePullPolicy governs the preflight pull (the UpgradeConfiguration's apply or node imagePullPolicy, as
	// kubeadm's ImagePull check uses it): Never pulls nothing and refuses a missing image; "": IfNotPresent. The
	// static Pods say IfNotPresent whatever it is, as kubeadm's.
	ImagePullPolicy corev1.PullPolicy
	// PrintConfig prints the target ClusterConfiguration in preflight (--print-config).
	PrintConfig bool
	// NodeName is this node's; "" reads it from kubelet.conf's client certificate.
	NodeName string

	// What load finds, once.
	loaded  bool
	from    string // kubeadm-config's kubernetesVersion before the upgrade
	cluster *config.Cluster
	node    *config.Node
}

// ControlPlane says whether this node is a control-plane node: it has a kube-apiserver manifest, as kubeadm decides.
func (d *Data) ControlPlane() bool { return d.FS.Exists(staticpod.Path(staticpod.APIServerName)) }

// Target is the configuration this node's control plane is upgraded to (load must have run).
func (d *Data) Target() Target {
	return Target{Cluster: d.cluster, Node: d.node, Host: manifests.DetectHost(d.FS, d.cluster.CertificatesDir, nil)}
}

// load reads the cluster's configuration (kubeadm-config, kubelet-config, kube-proxy) and this node's part, and
// sets the target version, as kubeadm's FetchInitConfigurationFromCluster does; once.
func (d *Data) load(ctx context.Context) error {
	if d.loaded {
		return nil
	}
	fmt.Fprintf(d.Out, "[upgrade] Reading configuration from the %q ConfigMap in namespace %q...\n", uploadconfig.KubeadmConfigMap, metav1.NamespaceSystem)
	cc, err := ReadConfig(ctx, d.Client, d.Out)
	if err != nil {
		return err
	}
	d.from = cc.KubernetesVersion
	if d.Version == "" {
		d.Version = cc.KubernetesVersion
	}
	if !strings.HasPrefix(d.Version, "v") {
		d.Version = "v" + d.Version
	}
	cc.KubernetesVersion = d.Version
	cluster := &config.Cluster{ClusterConfiguration: cc}
	cm, err := d.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, uploadconfig.KubeletConfigMap, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read kube-system/%s: %w", uploadconfig.KubeletConfigMap, err)
	}
	if cluster.Kubelet, err = kubelet.ConfigFromCluster([]byte(cm.Data[uploadconfig.KubeletConfigKey])); err != nil {
		return fmt.Errorf("kube-system/%s: %w", uploadconfig.KubeletConfigMap, err)
	}
	switch cm, err := d.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, addons.KubeProxyName, metav1.GetOptions{}); {
	case err == nil:
		var kp kubeproxyv1alpha1.KubeProxyConfiguration
		if err := yaml.Unmarshal([]byte(cm.Data[addons.KubeProxyConfigKey]), &kp); err != nil {
			return fmt.Errorf("kube-system/%s: %w", addons.KubeProxyName, err)
		}
		cluster.KubeProxy = &kp
	case apierrors.IsForbidden(err) && !d.ControlPlane():
		// A worker reads with kubelet.conf, which may not read it; only the addon phase, a control plane's, needs it.
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("read kube-system/%s: %w", addons.KubeProxyName, err)
	}
	name := d.NodeName
	if name == "" {
		if name, err = NodeNameFromKubeletConf(d.FS); err != nil {
			return err
		}
	}
	socket := kubelet.CRISocket(d.FS)
	if socket == "" {
		socket = config.DefaultCRISocket
	}
	timeouts := d.Timeouts
	if timeouts == nil {
		u := &config.UpgradeConfiguration{}
		config.SetUpgradeDefaults(u)
		timeouts = u.Timeouts
	}
	node := &config.Node{Registration: config.NodeRegistrationOptions{Name: name, CRISocket: socket}, Patches: d.Patches, Timeouts: timeouts}
	if d.ControlPlane() {
		ep := SelfEndpoint(d.FS)
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return fmt.Errorf("find this node's API server endpoint in %s: %q: %w", staticpod.Path(staticpod.APIServerName), ep, err)
		}
		p, _ := strconv.Atoi(port)
		node.LocalAPIEndpoint = config.APIEndpoint{AdvertiseAddress: host, BindPort: int32(p)}
	}
	d.cluster, d.node, d.loaded = cluster, node, true
	return nil
}

// NodeNameFromKubeletConf is the node's name from the client certificate of kubelet.conf (CN system:node:<name>),
// embedded or in the file it names, as kubeadm finds it.
func NodeNameFromKubeletConf(fsys nodefs.FS) (string, error) {
	kc, err := kubeconfig.Read(fsys, config.KubeletKubeconfigFile)
	if err != nil {
		return "", fmt.Errorf("find this node's name: %w", err)
	}
	ctx, ok := kc.Contexts[kc.CurrentContext]
	if !ok || kc.AuthInfos[ctx.AuthInfo] == nil {
		return "", fmt.Errorf("find this node's name: %s has no user in its current context", config.KubeletKubeconfigFile)
	}
	user := kc.AuthInfos[ctx.AuthInfo]
	pem := user.ClientCertificateData
	if len(pem) == 0 && user.ClientCertificate != "" {
		if pem, err = fsys.ReadFile(user.ClientCertificate); err != nil {
			return "", fmt.Errorf("find this node's name: %w", err)
		}
	}
	certs, err := certutil.ParseCertsPEM(pem)
	if err != nil {
		return "", fmt.Errorf("find this node's name in %s: %w", config.KubeletKubeconfigFile, err)
	}
	return nodeNameOf(certs[0])
}

func nodeNameOf(c *x509.Certificate) (string, error) {
	name, ok := strings.CutPrefix(c.Subject.CommonName, "system:node:")
	if !ok || name == "" {
		return "", fmt.Errorf("the kubelet's client certificate has CN %q, not system:node:<name>", c.Subject.CommonName)
	}
	return name, nil
}

// SelfEndpoint is this node's API server endpoint from its manifest (host:port).
func SelfEndpoint(fsys nodefs.FS) string {
	m, err := staticpod.Read(fsys, staticpod.APIServerName)
	if err != nil {
		return ""
	}
	if ep := m.Pod.Annotations[staticpod.APIServerAdvertiseAddressAnnotation]; ep != "" {
		return ep
	}
	flags, err := m.Flags()
	if err != nil {
		return ""
	}
	port := flags.Get("secure-port")
	if port == "" {
		port = strconv.Itoa(staticpod.APIServerPort)
	}
	return net.JoinHostPort(flags.Get("advertise-address"), port)
}

// ApplyPhases are the phases of `upgrade apply`, with kubeadm's names.
func ApplyPhases() []workflow.Phase[*Data] {
	return []workflow.Phase[*Data]{
		{Name: "preflight", Short: "Run preflight checks before upgrade", Run: runApplyPreflight},
		{Name: "control-plane", Short: "Upgrade the control plane", Run: runControlPlane},
		{Name: "upload-config", Short: "Upload the kubeadm and kubelet configurations to ConfigMaps", Phases: []workflow.Phase[*Data]{
			{Name: "kubeadm", Short: "Upload the kubeadm ClusterConfiguration to a ConfigMap", Run: runUploadKubeadm},
			{Name: "kubelet", Short: "Upload the kubelet configuration to a ConfigMap", Run: runUploadKubelet},
		}},
		{Name: "kubelet-config", Short: "Upgrade the kubelet configuration for this node", Run: runKubeletConfig},
		{Name: "bootstrap-token", Short: "Configures bootstrap token and cluster-info RBAC rules", Run: runBootstrapToken},
		{Name: "addon", Short: "Upgrade the default kubeadm addons", Phases: addonPhases()},
		{Name: "post-upgrade", Short: "Run post upgrade tasks", Run: runPostUpgrade},
	}
}

// NodePhases are the phases of `upgrade node`, with kubeadm's names.
func NodePhases() []workflow.Phase[*Data] {
	return []workflow.Phase[*Data]{
		{Name: "preflight", Short: "Run upgrade node pre-flight checks", Run: runNodePreflight},
		{Name: "control-plane", Short: "Upgrade the control plane instance deployed on this node, if any", Run: runControlPlane},
		{Name: "kubelet-config", Short: "Upgrade the kubelet configuration for this node", Run: runKubeletConfig},
		{Name: "addon", Short: "Upgrade the default kubeadm addons", Phases: addonPhases()},
		{Name: "post-upgrade", Short: "Run post upgrade tasks", Run: runPostUpgrade},
	}
}

func addonPhases() []workflow.Phase[*Data] {
	return []workflow.Phase[*Data]{
		{Name: "coredns", Short: "Upgrade the CoreDNS addon", Run: runCoreDNS},
		{Name: "kube-proxy", Short: "Upgrade the kube-proxy addon", Run: runKubeProxy},
	}
}

// ErrNotReady is wrapped by the preflight refusals of a cluster that is not healthy enough to upgrade.
var ErrNotReady = errors.New("the cluster is not healthy enough to upgrade")

func runApplyPreflight(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	if d.PrintConfig {
		b, err := config.MarshalClusterConfiguration(&d.cluster.ClusterConfiguration)
		if err != nil {
			return err
		}
		fmt.Fprintf(d.Out, "[upgrade/config] Configuration used:\n%s", b)
	}
	fmt.Fprintf(d.Out, "[upgrade/versions] Cluster version: %s\n", d.from)
	fmt.Fprintf(d.Out, "[upgrade/versions] Target version: %s\n", d.Version)
	if !d.ControlPlane() {
		return hint.With(errors.New("this node has no kube-apiserver manifest: `upgrade apply` runs on a control-plane node"),
			"run `kubeboot upgrade apply` on a control-plane node, and `kubeboot upgrade node` on workers")
	}
	if err := CheckHealth(ctx, d.Client, d.FS, d.Etcd, d.cluster.Etcd.External == nil); err != nil {
		return err
	}
	kubelets, err := kubeletVersions(ctx, d.Client)
	if err != nil {
		fmt.Fprintf(d.Out, "[upgrade/versions] WARNING: %v\n", err)
	}
	pe := Policy(PolicyInput{Cluster: d.from, Target: d.Version, Kubelets: kubelets, AllowExperimental: d.AllowExperimental, AllowRC: d.AllowRC})
	if err := pe.Err(d.Force); err != nil {
		return hint.With(err, "nothing was changed; upgrade one minor at a time, to a version `kubeboot upgrade plan` offers")
	}
	for _, w := range pe.Warnings(d.Force) {
		fmt.Fprintf(d.Out, "[upgrade/version] Found %s; ignored with --force\n", w)
	}
	if d.HealthJob && !d.DryRun {
		if err := RunHealthJob(ctx, d.Client, d.cluster, d.Out); err != nil {
			return err
		}
	}
	if d.Confirm != nil && !d.DryRun {
		if err := d.Confirm(); err != nil {
			return err
		}
	}
	return d.pullImages(ctx)
}

// pullImages pulls the images of the target that the runtime does not have yet (kubeadm's ImagePull check). A
// failed pull is a warning: the kubelet tries again when it starts the new static Pod. With ImagePullPolicy
// Never nothing is pulled, and a missing image refuses the upgrade before anything changes, naming it.
func (d *Data) pullImages(ctx context.Context) error {
	if d.Images == nil || d.DryRun || !d.ControlPlane() {
		return nil
	}
	images, err := d.cluster.Images()
	if err != nil {
		return err
	}
	if d.ImagePullPolicy == corev1.PullNever {
		var missing []string
		for _, ref := range images {
			if img, err := d.Images.ImageStatus(ctx, ref); err != nil || !img.Present {
				missing = append(missing, ref)
			}
		}
		if len(missing) > 0 {
			return hint.With(fmt.Errorf("[ImagePull]: image %s not found and the image pull policy is Never", strings.Join(missing, ", ")),
				"import the images into the container runtime, or set imagePullPolicy IfNotPresent in the UpgradeConfiguration")
		}
		return nil
	}
	fmt.Fprintln(d.Out, "[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster")
	for _, ref := range images {
		if img, err := d.Images.ImageStatus(ctx, ref); err == nil && img.Present {
			continue
		}
		start := d.now()
		if err := d.Images.PullImage(ctx, ref); err != nil {
			fmt.Fprintf(d.Out, "[upgrade/prepull] WARNING: pull %s: %v; the kubelet pulls it when it starts the new static Pod\n", ref, err)
			continue
		}
		fmt.Fprintf(d.Out, "[upgrade/prepull] Pulled %s (%s)\n", ref, d.now().Sub(start).Round(100*time.Millisecond))
	}
	return nil
}

// CheckHealth is kubeadm's CheckClusterHealth without its Job (ControlPlaneNodesReady, StaticPodManifest), and
// kubeboot's etcd check: every voting member healthy. Each refusal wraps ErrNotReady and names what is wrong.
func CheckHealth(ctx context.Context, client kubernetes.Interface, fsys nodefs.FS, etcdc EtcdStatus, localEtcd bool) error {
	var problems []string
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "node-role.kubernetes.io/control-plane"})
	if err != nil {
		problems = append(problems, fmt.Sprintf("[ControlPlaneNodesReady]: couldn't list control-planes in cluster: %v", err))
	} else {
		var notReady []string
		for i := range nodes.Items {
			if !nodeReady(&nodes.Items[i]) {
				notReady = append(notReady, nodes.Items[i].Name)
			}
		}
		if len(notReady) > 0 {
			problems = append(problems, fmt.Sprintf("[ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: %v", notReady))
		}
	}
	for _, c := range []string{staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName} {
		if !fsys.Exists(staticpod.Path(c)) {
			problems = append(problems, fmt.Sprintf("[StaticPodManifest]: manifest for component %s is missing: %s", c, staticpod.Path(c)))
		}
	}
	if localEtcd && etcdc != nil {
		members, err := etcdc.Status(ctx)
		if err != nil {
			problems = append(problems, fmt.Sprintf("[EtcdMembersHealthy]: couldn't read etcd's members: %v", err))
		}
		for _, m := range members {
			if !m.IsLearner && !m.Healthy {
				name := m.Name
				if name == "" {
					name = m.IDString()
				}
				problems = append(problems, fmt.Sprintf("[EtcdMembersHealthy]: etcd member %s (%s) is not healthy: %s", name, m.PeerURL(), m.Problem))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return hint.With(fmt.Errorf("%w: the cluster did not pass the upgrade checks:\n- %s", ErrNotReady, strings.Join(problems, "\n- ")),
		"nothing was changed; make the control plane healthy (`kubectl get nodes`, `kubeboot etcd status`) and run the upgrade again")
}

func kubeletVersions(ctx context.Context, client kubernetes.Interface) (map[string][]string, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("couldn't list all nodes in cluster: %w", err)
	}
	out := map[string][]string{}
	for _, n := range nodes.Items {
		out[n.Status.NodeInfo.KubeletVersion] = append(out[n.Status.NodeInfo.KubeletVersion], n.Name)
	}
	return out, nil
}

// ErrBeforeApply refuses `upgrade node` on a node the cluster's configuration has not caught up with.
var ErrBeforeApply = errors.New("upgrade node before upgrade apply")

// runNodePreflight refuses, before anything changes, an `upgrade node` that would go backwards: this node's
// control plane or kubelet is newer than kube-system/kubeadm-config's kubernetesVersion, so `upgrade apply` has not
// run (or did not finish) for that version.
func runNodePreflight(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	target, err := version.ParseSemantic(strings.TrimPrefix(d.Version, "v"))
	if err != nil {
		return fmt.Errorf("kube-system/%s: kubernetesVersion %q: %w", uploadconfig.KubeadmConfigMap, d.Version, err)
	}
	if d.ControlPlane() {
		m, err := staticpod.Read(d.FS, staticpod.APIServerName)
		if err != nil {
			return err
		}
		if len(m.Pod.Spec.Containers) > 0 {
			v, err := version.ParseSemantic(strings.TrimPrefix(tagOf(m.Pod.Spec.Containers[0].Image), "v"))
			if err == nil && v.EqualTo(target) {
				// After `upgrade apply` on this node, or in a cluster no `upgrade apply` has moved yet: either way
				// the static Pods stay (equal manifests), and a rerun is harmless, so this is said, not refused.
				fmt.Fprintf(d.Out, "[upgrade/preflight] This node's control plane runs %s already, the version kube-system/%s holds; "+
					"to upgrade the cluster to a newer one, run `kubeboot upgrade apply VERSION` on one control-plane node first\n", d.Version, uploadconfig.KubeadmConfigMap)
			}
			if err == nil && target.LessThan(v) {
				return hint.With(fmt.Errorf("%w: this node's kube-apiserver runs v%s, newer than the cluster's kubernetesVersion %s in kube-system/%s: `upgrade node` would downgrade it",
					ErrBeforeApply, v, d.Version, uploadconfig.KubeadmConfigMap),
					fmt.Sprintf("an `upgrade apply v%s` did not finish (its upload-config phase stores the version): run it again on a control-plane node first; nothing was changed", v))
			}
		}
		if err := d.pullImages(ctx); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(d.Out, "[upgrade/preflight] Skipping prepull. Not a control plane node.")
	}
	kv, err := KubeletVersionOf(ctx, d.Client, d.node.Registration.Name)
	if err != nil {
		fmt.Fprintf(d.Out, "[upgrade/preflight] WARNING: read this node's kubelet version: %v\n", err)
		return nil
	}
	if v, err := version.ParseSemantic(strings.TrimPrefix(kv, "v")); err == nil && target.LessThan(v) {
		return hint.With(fmt.Errorf("%w: this node's kubelet is %s, newer than the cluster's kubernetesVersion %s in kube-system/%s",
			ErrBeforeApply, kv, d.Version, uploadconfig.KubeadmConfigMap),
			fmt.Sprintf("run `kubeboot upgrade apply %s` on one control-plane node first, then `kubeboot upgrade node` on the others; nothing was changed", kv))
	}
	return nil
}

func runControlPlane(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	if !d.ControlPlane() {
		fmt.Fprintln(d.Out, "[upgrade/control-plane] Skipping phase. Not a control plane node.")
		return nil
	}
	fmt.Fprintf(d.Out, "[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version %q...\n", d.Version)
	e := d.Engine
	if e == nil {
		var done func()
		var err error
		if e, done, err = d.EngineFor(ctx, d); err != nil {
			return err
		}
		defer done()
	}
	e.DryRun = e.DryRun || d.DryRun
	_, err := e.Upgrade(ctx, d.Target(), Options{EtcdUpgrade: d.EtcdUpgrade})
	return err
}

// Cluster is the target configuration (load must have run).
func (d *Data) Cluster() *config.Cluster { return d.cluster }

// Load reads the cluster's configuration and this node's part (see load).
func (d *Data) Load(ctx context.Context) error { return d.load(ctx) }

// Confirm asks "Are you sure you want to proceed?" on out and reads the answer from in: y or yes goes on.
func Confirm(in io.Reader, out io.Writer) func() error {
	return func() error {
		fmt.Fprint(out, "[upgrade] Are you sure you want to proceed? [y/N]: ")
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(out)
			return hint.With(errors.New("[upgrade] no answer on standard input: nothing was changed"), "pass -y (--yes) to upgrade without a question")
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return nil
		}
		return errors.New("[upgrade] won't proceed; aborting: nothing was changed")
	}
}

func runUploadKubeadm(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	if d.DryRun {
		fmt.Fprintf(d.Out, "[dryrun] Would upload the ClusterConfiguration with kubernetesVersion %s to kube-system/%s\n", d.Version, uploadconfig.KubeadmConfigMap)
		return nil
	}
	fmt.Fprintf(d.Out, "[upload-config] Storing the configuration used in ConfigMap %q in the %q Namespace\n", uploadconfig.KubeadmConfigMap, metav1.NamespaceSystem)
	return uploadconfig.UploadKubeadmConfig(ctx, d.Client, d.cluster.ClusterConfiguration)
}

func runUploadKubelet(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	if d.DryRun {
		fmt.Fprintf(d.Out, "[dryrun] Would upload the KubeletConfiguration to kube-system/%s\n", uploadconfig.KubeletConfigMap)
		return nil
	}
	fmt.Fprintf(d.Out, "[kubelet] Creating a ConfigMap %q in namespace %s with the configuration for the kubelets in the cluster\n", uploadconfig.KubeletConfigMap, metav1.NamespaceSystem)
	return uploadconfig.UploadKubeletConfig(ctx, d.Client, d.cluster.Kubelet)
}

// KubeletConfigBackupBase is kubeadm's (1.35+) backup directory of config.yaml under TmpDir, with a timestamp.
const KubeletConfigBackupBase = "kubeadm-kubelet-config-"

// runKubeletConfig backs up /var/lib/kubelet/config.yaml and writes it anew from the cluster's
// KubeletConfiguration with init's writer; kubeadm does not restart the kubelet here: its package upgrade does.
func runKubeletConfig(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	if d.DryRun {
		fmt.Fprintf(d.Out, "[dryrun] Would back up and rewrite %s\n", config.KubeletConfigFile)
		return nil
	}
	if old, err := d.FS.ReadFile(config.KubeletConfigFile); err == nil {
		dir := path.Join(TmpDir, KubeletConfigBackupBase+d.now().Format(TimestampFormat))
		if err := d.FS.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := d.FS.WriteFile(path.Join(dir, "config.yaml"), old, 0o644); err != nil {
			return fmt.Errorf("back up %s: %w", config.KubeletConfigFile, err)
		}
		fmt.Fprintf(d.Out, "[upgrade] Backing up kubelet config file to %s\n", d.FS.Path(path.Join(dir, "config.yaml")))
	}
	applied, err := kubelet.WriteConfig(d.FS, d.cluster, d.node)
	if err != nil {
		return err
	}
	reportPatches(d.Out, applied)
	fmt.Fprintf(d.Out, "[kubelet-start] Writing kubelet configuration to file %q\n", d.FS.Path(config.KubeletConfigFile))
	fmt.Fprintln(d.Out, "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!")
	return nil
}

func runBootstrapToken(ctx context.Context, d *Data) error {
	if d.DryRun {
		fmt.Fprintln(d.Out, "[dryrun] Would re-apply the bootstrap token and cluster-info RBAC rules")
		return nil
	}
	fmt.Fprintln(d.Out, "[bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules")
	if err := nodebootstrap.Apply(ctx, d.Client); err != nil {
		return err
	}
	return apply.Objects(ctx, d.Client, clusterinfo.RBAC()...)
}

// addonsAllowed says whether the addons may be upgraded from this control-plane node: once every kube-apiserver
// Pod of the cluster runs this node's image (kubeadm's rule); it says why not otherwise. This node's own Pod is not
// looked at: its image is the one read from its manifest, and the control-plane phase saw it run through the
// container runtime. Its mirror Pod may still show the old image for a while: while this node's API server is
// replaced the kubelet cannot update it through a single control plane's API, and it retries only at its next sync
// of the Pod, once the new API server's startup probe passes (10 s and more). kubeadm waits for the mirror Pod in its
// control-plane phase, so its own is never behind here.
func addonsAllowed(ctx context.Context, d *Data) (bool, error) {
	m, err := staticpod.Read(d.FS, staticpod.APIServerName)
	if err != nil {
		return false, err
	}
	if d.DryRun {
		return true, nil
	}
	mine := m.Pod.Spec.Containers[0].Image
	pods, err := d.Client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: staticpod.Selector(staticpod.APIServerName)})
	if err != nil {
		return false, fmt.Errorf("list the kube-apiserver Pods: %w", err)
	}
	var behind []string
	for _, p := range pods.Items {
		if p.Spec.NodeName == d.node.Registration.Name {
			continue
		}
		if len(p.Spec.Containers) > 0 && p.Spec.Containers[0].Image != mine {
			behind = append(behind, p.Name)
		}
	}
	if len(behind) > 0 {
		fmt.Fprintf(d.Out, "[upgrade/addon] Skipping upgrade of addons because control plane instances %v have not been upgraded\n", behind)
		return false, nil
	}
	return true, nil
}

func runCoreDNS(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	// kubeadm's messages, phase by phase.
	const skip = "[upgrade/addon] Skipping the addon/coredns phase."
	if !d.ControlPlane() {
		fmt.Fprintln(d.Out, skip+" Not a control plane node.")
		return nil
	}
	if addons.CoreDNSDisabled(d.cluster) {
		fmt.Fprintln(d.Out, skip+" The addon is disabled.")
		return nil
	}
	if ok, err := addonsAllowed(ctx, d); !ok || err != nil {
		return err
	}
	if d.DryRun {
		fmt.Fprintln(d.Out, "[dryrun] Would upgrade the CoreDNS addon")
		return nil
	}
	set, err := patches.LoadConfigured(d.FS, d.Patches)
	if err != nil {
		return err
	}
	if err := addons.EnsureCoreDNS(ctx, d.Client, d.cluster, addons.CoreDNSPatches(set, func(ps []patches.Patch) { reportPatches(d.Out, ps) })); err != nil {
		return err
	}
	fmt.Fprintln(d.Out, "[addons] Applied essential addon: CoreDNS")
	return nil
}

func runKubeProxy(ctx context.Context, d *Data) error {
	if err := d.load(ctx); err != nil {
		return err
	}
	const skip = "[upgrade/addon] Skipping the addon/kube-proxy phase."
	if !d.ControlPlane() {
		fmt.Fprintln(d.Out, skip+" Not a control plane node.")
		return nil
	}
	if addons.KubeProxyDisabled(d.cluster) {
		fmt.Fprintln(d.Out, skip+" The addon is disabled.")
		return nil
	}
	if d.cluster.KubeProxy == nil {
		fmt.Fprintln(d.Out, skip+" The cluster has no kube-system/kube-proxy ConfigMap to upgrade it from.")
		return nil
	}
	if ok, err := addonsAllowed(ctx, d); !ok || err != nil {
		return err
	}
	if d.DryRun {
		fmt.Fprintln(d.Out, "[dryrun] Would upgrade the kube-proxy addon")
		return nil
	}
	endpoint, err := kubeconfig.ControlPlaneURL(d.cluster, d.node)
	if err != nil {
		return err
	}
	// A cluster made with the node-local API endpoint keeps kube-proxy on it (see initflow's addon/kube-proxy).
	kb, err := uploadconfig.ReadKubebootConfig(ctx, d.Client)
	if err != nil {
		return fmt.Errorf("read kube-system/%s: %w", uploadconfig.KubebootConfigMap, err)
	}
	if port, ok := kb.NodeLocalAPIEndpointPort(); ok {
		endpoint = localendpoint.LocalServer(port)
	}
	set, err := patches.LoadConfigured(d.FS, d.Patches)
	if err != nil {
		return err
	}
	if err := addons.EnsureKubeProxy(ctx, d.Client, d.cluster, endpoint, addons.KubeProxyPatches(set, func(ps []patches.Patch) { reportPatches(d.Out, ps) })); err != nil {
		return err
	}
	fmt.Fprintln(d.Out, "[addons] Applied essential addon: kube-proxy")
	return nil
}

// runPostUpgrade is kubeadm's post-upgrade: removing the kubelet flags of its list from kubeadm-flags.env, a list
// that is empty in 1.36 and 1.37.
func runPostUpgrade(_ context.Context, d *Data) error {
	fmt.Fprintln(d.Out, "[upgrade/post-upgrade] No kubelet flags to remove from "+config.KubeletFlagsEnvFile)
	return nil
}

func reportPatches(w io.Writer, applied []patches.Patch) {
	for _, p := range applied {
		fmt.Fprintln(w, "  "+p.Line())
	}
}

func (d *Data) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}
