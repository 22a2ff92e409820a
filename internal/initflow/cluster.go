package initflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"kubeboot.dev/kubeboot/internal/addons"
	"kubeboot.dev/kubeboot/internal/clusterinfo"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/controlleraccounts"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/markcontrolplane"
	"kubeboot.dev/kubeboot/internal/nodebootstrap"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/token"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/waiter"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Clients gives the phases that talk to the cluster their clients. Admin uses admin.conf; SuperAdmin uses
// super-admin.conf, needed only to create the kubeadm:cluster-admins binding that gives admin.conf its rights.
type Clients interface {
	Admin() (kubernetes.Interface, error)
	SuperAdmin() (kubernetes.Interface, error)
}

// FileClients builds clients from the kubeconfig files init wrote, once each.
type FileClients struct {
	FS nodefs.FS
	// Kubeconfig, when set, is a kubeconfig file on this machine (kubeadm's --kubeconfig) used instead of the
	// node's admin.conf; super-admin.conf is then not used.
	Kubeconfig string
	once       [2]sync.Once
	cache      [2]kubernetes.Interface
	errs       [2]error
}

func (c *FileClients) Admin() (kubernetes.Interface, error) {
	if c.Kubeconfig != "" {
		return c.get(0, c.Kubeconfig, c.Kubeconfig)
	}
	return c.get(0, config.AdminKubeconfigFile, c.FS.Path(config.AdminKubeconfigFile))
}

func (c *FileClients) SuperAdmin() (kubernetes.Interface, error) {
	if c.Kubeconfig != "" {
		return nil, fmt.Errorf("%s is not used with --kubeconfig %s", config.SuperAdminKubeconfig, c.Kubeconfig)
	}
	return c.get(1, config.SuperAdminKubeconfig, c.FS.Path(config.SuperAdminKubeconfig))
}

func (c *FileClients) get(i int, file, path string) (kubernetes.Interface, error) {
	c.once[i].Do(func() {
		rc, err := kubeclient.LoadFile(path)
		if err != nil {
			c.errs[i] = fmt.Errorf("load %s: %w", file, err)
			return
		}
		c.cache[i], c.errs[i] = kubeclient.New(rc, kubeclient.Init)
	})
	return c.cache[i], c.errs[i]
}

// clusterPhases are the phases after the static Pods are written: they need a running control plane.
//
// They do not depend on each other (each writes its own objects, or kubelet.conf), so they run at once rather
// than one after the other in kubeadm's order. The phases that write API objects do not wait for
// wait-control-plane either: they start once the node's files are written, and their first request waits until
// the API server lets admin.conf in (see Data.admin), which it does before it reports itself healthy (its RBAC
// bootstrap has made cluster-admin by then). So their requests overlap the end of the wait instead of following
// it. kubelet-finalize still follows the wait, and show-join-command comes last, after all of them: init ends, as
// kubeadm's does, only once the control plane is healthy. The cluster left is the same.
func clusterPhases() []workflow.Phase[*Data] {
	notDry := func(d *Data) bool { return !d.DryRun }
	afterWait := []string{"wait-control-plane"}
	afterFiles := []string{"preflight", "certs", "kubeconfig", "etcd", "control-plane", "local-endpoint", "kubelet-start"}
	return []workflow.Phase[*Data]{
		{Name: "wait-control-plane", Short: "Wait for the kubelet and the control plane to be healthy", Run: runWaitControlPlane, RunIf: notDry},
		{Name: "controller-accounts", Short: "Create the ServiceAccounts of the controller-manager's controllers before it starts them",
			RunIf: notDry, Run: withAPI(runControllerAccounts), Needs: afterFiles},
		{Name: "upload-config", Short: "Upload the kubeadm and kubelet configuration to ConfigMaps", RunIf: notDry, Needs: afterFiles, Phases: []workflow.Phase[*Data]{
			{Name: "kubeadm", Short: "Upload the kubeadm ClusterConfiguration to the kubeadm-config ConfigMap", Run: withAPI(func(ctx context.Context, d *Data, c kubernetes.Interface) error {
				return uploadconfig.UploadKubeadmConfig(ctx, c, d.Cfg.Cluster)
			}), RunIf: notDry},
			{Name: "kubelet", Short: "Upload the kubelet configuration to the kubelet-config ConfigMap", Run: withAPI(func(ctx context.Context, d *Data, c kubernetes.Interface) error {
				return uploadconfig.UploadKubeletConfig(ctx, c, d.Cfg.Kubelet)
			}), RunIf: notDry},
			{Name: "kubeboot", Short: "Upload the KubebootConfiguration to the kubeboot-config ConfigMap and let nodes follow the API servers",
				Run: withAPI(runUploadKubeboot), RunIf: func(d *Data) bool { _, ok := d.localEndpoint(); return ok && !d.DryRun }},
		}},
		{Name: "upload-certs", Short: "Upload the certificates control-plane nodes share to the " + copycerts.SecretName + " Secret",
			RunIf: func(d *Data) bool { return d.UploadCerts }, Run: runUploadCerts, Needs: afterFiles},
		{Name: "mark-control-plane", Short: "Label and taint this node as a control-plane node", RunIf: notDry, Needs: afterFiles, Run: withAPI(func(ctx context.Context, d *Data, c kubernetes.Interface) error {
			return markcontrolplane.Mark(ctx, c, d.Cfg.Init.NodeRegistration.Name, d.Cfg.Init.NodeRegistration.Taints)
		})},
		{Name: "bootstrap-token", Short: "Create bootstrap tokens, the RBAC rules that let nodes join with them, and the cluster-info ConfigMap", RunIf: notDry, Run: withAPI(runBootstrapToken),
			Needs: afterFiles},
		{Name: "kubelet-finalize", Short: "Point kubelet.conf at the kubelet's rotating client certificate", RunIf: notDry, Needs: afterWait, Phases: []workflow.Phase[*Data]{
			{Name: "enable-client-cert-rotation", Short: "Enable kubelet client certificate rotation", Run: runKubeletFinalize},
		}},
		// The addons go as soon as admin.conf is let in, alongside the phases before them in kubeadm's order (which
		// they do not depend on), and alongside each other: CoreDNS turns Ready only at a readiness probe after it
		// has synced, every 10s, so the seconds it starts earlier are the seconds DNS works earlier.
		{Name: "addon", Short: "Install the CoreDNS and kube-proxy addons", Needs: afterFiles,
			RunIf: func(d *Data) bool { return !d.DryRun || d.PrintManifest }, Phases: []workflow.Phase[*Data]{
				{Name: "coredns", Short: "Install the CoreDNS addon", RunIf: func(d *Data) bool { return !addons.CoreDNSDisabled(d.Cfg.ClusterPart()) }, Run: func(ctx context.Context, d *Data) error {
					set, err := patches.LoadConfigured(d.FS, d.Cfg.Init.Patches)
					if err != nil {
						return err
					}
					opt := addons.CoreDNSPatches(set, func(ps []patches.Patch) { ReportPatches(d.Out, ps) })
					if d.PrintManifest {
						return printAddon(d.Out)(addons.CoreDNSObjects(d.Cfg.ClusterPart(), opt))
					}
					return withAPI(func(ctx context.Context, d *Data, c kubernetes.Interface) error {
						return addons.EnsureCoreDNS(ctx, c, d.Cfg.ClusterPart(), opt)
					})(ctx, d)
				}},
				{Name: "kube-proxy", Short: "Install the kube-proxy addon", Needs: []string{}, RunIf: func(d *Data) bool { return !addons.KubeProxyDisabled(d.Cfg.ClusterPart()) }, Run: func(ctx context.Context, d *Data) error {
					endpoint, err := kubeconfig.ControlPlaneURL(d.Cfg.ClusterPart(), d.Cfg.NodePart())
					if err != nil {
						return err
					}
					if port, ok := d.localEndpoint(); ok {
						// kube-proxy runs in the host's network on every node: each reaches its own endpoint.
						endpoint = localendpoint.LocalServer(port)
					}
					set, err := patches.LoadConfigured(d.FS, d.Cfg.Init.Patches)
					if err != nil {
						return err
					}
					opt := addons.KubeProxyPatches(set, func(ps []patches.Patch) { ReportPatches(d.Out, ps) })
					if d.PrintManifest {
						return printAddon(d.Out)(addons.KubeProxyObjects(d.Cfg.ClusterPart(), endpoint, opt))
					}
					return withAPI(func(ctx context.Context, d *Data, c kubernetes.Interface) error {
						return addons.EnsureKubeProxy(ctx, c, d.Cfg.ClusterPart(), endpoint, opt)
					})(ctx, d)
				}},
			}},
		{Name: "show-join-command", Short: "Show the join command for control-plane and worker nodes", Run: runShowJoinCommand},
	}
}

// printAddon writes an addon's objects as YAML instead of installing them (--print-manifest).
func printAddon(w io.Writer) func(objs []runtime.Object, err error) error {
	return func(objs []runtime.Object, err error) error {
		if err != nil {
			return err
		}
		b, err := addons.MarshalYAML(objs...)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "---\n%s", b)
		return err
	}
}

// withAPI runs f with the admin client once the API server lets it in (see Data.admin); f's requests are bounded
// by timeouts.kubernetesAPICall.
func withAPI(f func(ctx context.Context, d *Data, c kubernetes.Interface) error) func(context.Context, *Data) error {
	return func(ctx context.Context, d *Data) error {
		c, err := d.admin(ctx)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, d.Cfg.Init.Timeouts.KubernetesAPICall.Duration)
		defer cancel()
		return f(ctx, d, c)
	}
}

// admin returns the admin.conf client after making sure it has its rights: admin.conf's identity is in the group
// kubeadm:cluster-admins, which is bound to cluster-admin only once the kubeadm:cluster-admins binding exists;
// creating that binding may need super-admin.conf. Done once per run, before the first API phase.
//
// In a whole init the API phases call it while the control plane is still starting, so it waits for the API
// server as long as wait-control-plane waits for the control plane, and a little longer (the API call timeout):
// an API server that never starts is then reported by the wait, with its diagnosis, not here.
func (d *Data) admin(ctx context.Context) (kubernetes.Interface, error) {
	if d.Clients == nil {
		return nil, errors.New("init's data has no API clients: this run cannot reach the cluster")
	}
	admin, err := d.Clients.Admin()
	if err != nil {
		return nil, err
	}
	// Phases that run alongside each other share the answer.
	d.adminMu.Lock()
	defer d.adminMu.Unlock()
	if d.adminReady {
		return admin, nil
	}
	super, err := d.Clients.SuperAdmin()
	if err != nil {
		super = nil // a node without super-admin.conf relies on the binding existing already
	}
	t := d.Cfg.Init.Timeouts
	ctx, cancel := context.WithTimeout(ctx, t.ControlPlaneComponentHealthCheck.Duration+t.KubernetesAPICall.Duration)
	defer cancel()
	if err := nodebootstrap.EnsureClusterAdmins(ctx, admin, super); err != nil {
		return nil, err
	}
	d.adminReady = true
	return admin, nil
}

func runWaitControlPlane(ctx context.Context, d *Data) error {
	eps, err := ControlPlaneHealth(d.FS)
	if err != nil {
		return err
	}
	w := &waiter.Waiter{Out: d.Out, Diagnose: NewDiagnoser(d.Cfg.Init.NodeRegistration.CRISocket, d.FS, d.DialRuntime)}
	addr, port := "127.0.0.1", int32(10248)
	if kc := d.Cfg.Kubelet; kc != nil {
		if kc.HealthzBindAddress != "" {
			addr = kc.HealthzBindAddress
		}
		if kc.HealthzPort != nil {
			port = *kc.HealthzPort
		}
	}
	fmt.Fprintf(d.Out, "  waiting for the kubelet and the control plane (up to %s)\n", d.Cfg.Init.Timeouts.ControlPlaneComponentHealthCheck.Duration)
	all := append([]waiter.Endpoint{waiter.Kubelet(addr, port)}, eps...)
	if err := w.Wait(ctx, d.Cfg.Init.Timeouts.ControlPlaneComponentHealthCheck.Duration, all...); err != nil {
		return hint.With(err, "the diagnosis comes from the container runtime; the kubelet's log says why a static Pod did not start")
	}
	return nil
}

// ControlPlaneHealth reads the static Pods of kube-apiserver, kube-controller-manager, kube-scheduler and, when
// this node has one (stacked etcd), etcd, and returns their health endpoints (a joining control-plane node waits
// for the same ones).
func ControlPlaneHealth(fsys nodefs.FS) ([]waiter.Endpoint, error) {
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName, staticpod.EtcdName} {
		m, err := staticpod.Read(fsys, name)
		if name == staticpod.EtcdName && errors.Is(err, fs.ErrNotExist) {
			continue // external etcd
		}
		if err != nil {
			return nil, err
		}
		pods[name] = m.Pod
	}
	return waiter.ControlPlane(pods)
}

// runControllerAccounts creates the accounts the controller-manager this node runs would create one by one,
// throttled, before its CSR signer starts (see package controlleraccounts).
func runControllerAccounts(ctx context.Context, d *Data, c kubernetes.Interface) error {
	m, err := staticpod.Read(d.FS, staticpod.ControllerManagerName)
	if err != nil {
		return err
	}
	command, err := m.Command()
	if err != nil {
		return err
	}
	names, reason := controlleraccounts.Plan(command, d.Cfg.Cluster.KubernetesVersion)
	if len(names) == 0 {
		fmt.Fprintf(d.Out, "  not needed: %s (%s)\n", reason, m.File)
		return nil
	}
	created, err := controlleraccounts.Create(ctx, c, names)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  created %d of the controller-manager's %d ServiceAccounts in %s\n", created, len(names), controlleraccounts.Namespace)
	return nil
}

func runBootstrapToken(ctx context.Context, d *Data, admin kubernetes.Interface) error {
	for _, bt := range d.Cfg.Init.BootstrapTokens {
		if err := token.Create(ctx, admin, bt); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.Out, "  created %d bootstrap token(s)\n", len(d.Cfg.Init.BootstrapTokens))
	if err := nodebootstrap.Apply(ctx, admin); err != nil {
		return err
	}
	caPEM, err := d.FS.ReadFile(path.Join(d.Cfg.Cluster.CertificatesDir, "ca.crt"))
	if err != nil {
		return err
	}
	server, err := kubeconfig.ControlPlaneURL(d.Cfg.ClusterPart(), d.Cfg.NodePart())
	if err != nil {
		return err
	}
	// Signed now with the tokens just created, as the controller-manager's bootstrapsigner would sign it once it
	// runs: a node may join the moment init returns.
	signers := token.Signing(d.Cfg.Init.BootstrapTokens, time.Now())
	if err := clusterinfo.Publish(ctx, admin, server, caPEM, signers); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  published %s/%s, signed for %d bootstrap token(s)\n", metav1.NamespacePublic, bootstrapapi.ConfigMapClusterInfo, len(signers))
	return nil
}

func runKubeletFinalize(ctx context.Context, d *Data) error {
	pem := path.Join(config.KubeletDir, "pki", "kubelet-client-current.pem")
	for _, a := range d.Cfg.Init.NodeRegistration.KubeletExtraArgs {
		if a.Name == "cert-dir" {
			pem = path.Join(a.Value, "kubelet-client-current.pem")
		}
	}
	if !d.FS.Exists(pem) {
		fmt.Fprintf(d.Out, "  %s does not exist: client certificate rotation stays off, kubelet.conf keeps its embedded certificate\n", pem)
		return nil
	}
	kc, err := kubeconfig.Read(d.FS, config.KubeletKubeconfigFile)
	if err != nil {
		return err
	}
	ctxName := kc.CurrentContext
	kctx, ok := kc.Contexts[ctxName]
	if !ok || kctx.AuthInfo == "" {
		return fmt.Errorf("%s has no usable current context %q", config.KubeletKubeconfigFile, ctxName)
	}
	user, ok := kc.AuthInfos[kctx.AuthInfo]
	if !ok {
		return fmt.Errorf("%s has no user %q", config.KubeletKubeconfigFile, kctx.AuthInfo)
	}
	user.ClientCertificateData, user.ClientKeyData = nil, nil
	user.ClientCertificate, user.ClientKey = pem, pem
	if err := kubeconfig.Write(d.FS, config.KubeletKubeconfigFile, kc); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  %s now uses the rotating certificate %s\n", config.KubeletKubeconfigFile, pem)
	return restartKubelet(ctx, d)
}

// runUploadCerts stores the shared certificates in kube-system/kubeadm-certs, encrypted with the configured
// certificate key or a new one. The key is a secret: it is printed once, with the join command at the end.
func runUploadCerts(ctx context.Context, d *Data) error {
	if d.DryRun {
		fmt.Fprintf(d.Out, "  dry run: would upload the shared certificates to %s/%s, encrypted with a certificate key\n",
			metav1.NamespaceSystem, copycerts.SecretName)
		return nil
	}
	key := d.Cfg.Init.CertificateKey
	if key == "" {
		var err error
		if key, err = copycerts.NewCertificateKey(); err != nil {
			return err
		}
	}
	upload := withAPI(func(ctx context.Context, d *Data, c kubernetes.Interface) error {
		return copycerts.Upload(ctx, c, d.FS, d.Cfg.Cluster.CertificatesDir, key, d.Cfg.Cluster.Etcd.External)
	})
	if err := upload(ctx, d); err != nil {
		return err
	}
	d.Cfg.Init.CertificateKey = key
	d.certsUploaded = true
	fmt.Fprintf(d.Out, "  uploaded the shared certificates to %s/%s, encrypted with the certificate key shown at the end; they are deleted after %s\n",
		metav1.NamespaceSystem, copycerts.SecretName, Hours(copycerts.TokenTTL))
	return nil
}

// Hours formats a whole number of hours as people write it: "2h", not "2h0m0s".
func Hours(d time.Duration) string { return fmt.Sprintf("%gh", d.Hours()) }

// UnshownCertificateKey returns the certificate key this run uploaded the certificates with when the join
// instructions did not show it (show-join-command did not run): the caller prints it last, or it is lost.
func (d *Data) UnshownCertificateKey() string {
	if !d.certsUploaded || d.keyShown || d.SkipCertificateKeyPrint {
		return ""
	}
	return d.Cfg.Init.CertificateKey
}

// Withheld stands in for a secret the user asked not to print, as in kubeadm.
const Withheld = "<value withheld>"

func runShowJoinCommand(_ context.Context, d *Data) error {
	caPEM, err := d.FS.ReadFile(path.Join(d.Cfg.Cluster.CertificatesDir, "ca.crt"))
	if err != nil {
		return err
	}
	cas, err := certutil.ParseCertsPEM(caPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Join(d.Cfg.Cluster.CertificatesDir, "ca.crt"), err)
	}
	ca := cas[0]
	endpoint := d.Cfg.Cluster.ControlPlaneEndpoint
	if endpoint == "" {
		ep := d.Cfg.Init.LocalAPIEndpoint
		endpoint = net.JoinHostPort(ep.AdvertiseAddress, strconv.Itoa(int(ep.BindPort)))
	} else if _, _, err := net.SplitHostPort(endpoint); err != nil {
		endpoint = net.JoinHostPort(endpoint, strconv.Itoa(int(d.Cfg.Init.LocalAPIEndpoint.BindPort)))
	}
	tok := ""
	if len(d.Cfg.Init.BootstrapTokens) > 0 {
		tok = d.Cfg.Init.BootstrapTokens[0].Token
	}
	if d.SkipTokenPrint {
		tok = Withheld
	}
	join := fmt.Sprintf("kubeboot join %s --token %s \\\n\t--discovery-token-ca-cert-hash %s", endpoint, tok, pki.DiscoveryHash(ca))
	fmt.Fprintf(d.Out, `
Your Kubernetes control-plane has initialized successfully!

To start using your cluster, run as a regular user:

  mkdir -p $HOME/.kube
  sudo cp -i %s $HOME/.kube/config
  sudo chown $(id -u):$(id -g) $HOME/.kube/config

`, config.AdminKubeconfigFile)
	switch {
	case d.Cfg.Cluster.ControlPlaneEndpoint == "" && d.UploadCerts:
		fmt.Fprintf(d.Out, `The certificates were uploaded, but the cluster has no controlPlaneEndpoint: other control-plane nodes
cannot join it (kubeadm and kubeboot refuse), so the certificate key is not shown. Set controlPlaneEndpoint
(--control-plane-endpoint) when you init a cluster that is to have several control-plane nodes.

`)
		d.keyShown = true // Withheld on purpose: no node could use it
	case d.Cfg.Cluster.ControlPlaneEndpoint != "" && d.UploadCerts:
		key := d.Cfg.Init.CertificateKey
		if key == "" {
			key = "<the certificate key upload-certs makes>" // a dry run uploads nothing and makes no key
		}
		if d.SkipCertificateKeyPrint {
			key = Withheld
		}
		fmt.Fprintf(d.Out, `You can now join any number of control-plane nodes by running on each as root:

  %s \
	--control-plane --certificate-key %s

The certificate key decrypts the cluster's CA keys: keep it secret. The uploaded certificates are deleted
after %s; 'kubeboot init phase upload-certs --upload-certs' uploads them again (with a new key).

`, join, key, Hours(copycerts.TokenTTL))
		d.keyShown = true
	case d.Cfg.Cluster.ControlPlaneEndpoint != "":
		fmt.Fprintf(d.Out, `You can join any number of control-plane nodes by copying the certificate authorities and the
service-account keys (%s/{ca,front-proxy-ca,etcd/ca}.{crt,key}, sa.{key,pub}) to each and then running as root:

  %s \
	--control-plane

`, d.Cfg.Cluster.CertificatesDir, join)
	}
	fmt.Fprintf(d.Out, `Then you can join any number of worker nodes by running on each as root
(upstream 'kubeadm join' takes the same arguments):

  %s

`, join)
	return nil
}

func restartKubelet(ctx context.Context, d *Data) error {
	return kubelet.Restart(ctx, d.InitSystem, d.Out, d.DryRun)
}

// NewDiagnoser explains a component that does not become healthy from its container's state and last log lines,
// read through the container runtime at criSocket. dial may be nil: then there is no diagnosis.
func NewDiagnoser(criSocket string, fsys nodefs.FS, dial func(ctx context.Context, criSocket string) (cri.Runtime, error)) waiter.Diagnoser {
	return &criDiagnoser{socket: criSocket, fs: fsys, dial: dial}
}

// criDiagnoser reads a component's container state and last log lines through the CRI.
type criDiagnoser struct {
	socket string
	fs     nodefs.FS
	dial   func(ctx context.Context, socket string) (cri.Runtime, error)
}

func (c *criDiagnoser) Diagnose(ctx context.Context, component string) string {
	if component == "kubelet" {
		return "the kubelet is not answering on its healthz port: is it running, and does it read " + config.KubeletConfigFile + "?"
	}
	if c.dial == nil {
		return ""
	}
	rt, err := c.dial(ctx, c.socket)
	if err != nil {
		return "cannot ask the container runtime: " + err.Error()
	}
	defer rt.Close()
	ctrs, err := rt.ListContainers(ctx, map[string]string{"io.kubernetes.container.name": component, "io.kubernetes.pod.namespace": "kube-system"})
	if err != nil {
		return "cannot list containers: " + err.Error()
	}
	if len(ctrs) == 0 {
		return fmt.Sprintf("no %s container exists: the kubelet has not started its static Pod (missing image? see the kubelet's log)", component)
	}
	// The newest attempt says the most.
	latest := ctrs[0]
	for _, ct := range ctrs[1:] {
		if ct.CreatedAt.After(latest.CreatedAt) {
			latest = ct
		}
	}
	st, err := rt.ContainerStatus(ctx, latest.ID)
	if err != nil {
		return "cannot read container status: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "container %s (%d attempts): %s", component, len(ctrs), st.State)
	if st.State == cri.ContainerExited {
		fmt.Fprintf(&b, ", exit code %d", st.ExitCode)
	}
	if st.Reason != "" {
		fmt.Fprintf(&b, ", %s", st.Reason)
	}
	if st.Message != "" {
		fmt.Fprintf(&b, ": %s", st.Message)
	}
	if st.LogPath != "" {
		lines, err := cri.TailLog(c.fs, st.LogPath, 10)
		if err == nil && len(lines) > 0 {
			// A container that stopped may have said why long before its last lines (a program refusing a flag
			// prints its usage after the reason): its first error lines too, unless the last lines hold them.
			if st.State == cri.ContainerExited {
				first, _ := cri.ErrorLogMessages(c.fs, st.LogPath, 3)
				var shown []string
				for _, l := range first {
					if !slices.Contains(lines, l) {
						shown = append(shown, l)
					}
				}
				if len(shown) > 0 {
					b.WriteString("\nfirst error lines:")
					for _, l := range shown {
						b.WriteString("\n  " + l)
					}
				}
			}
			b.WriteString("\nlast log lines:")
			for _, l := range lines {
				b.WriteString("\n  " + l)
			}
		}
	}
	return b.String()
}
