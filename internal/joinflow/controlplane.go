package joinflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/markcontrolplane"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/waiter"
)

// ErrNoControlPlaneEndpoint refuses a control-plane join into a cluster without controlPlaneEndpoint: every
// node's kubeconfig files and the join instructions would point at the first API server alone. kubeadm's words.
var ErrNoControlPlaneEndpoint = errors.New("unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address")

// ErrSharedCertificatesMissing refuses a control-plane join without a certificate key whose node lacks the
// certificates control-plane nodes share.
var ErrSharedCertificatesMissing = errors.New("the certificates that must be shared among control plane instances are not provided")

// notReadyPrefix is kubeadm's introduction to both refusals above.
const notReadyPrefix = "one or more conditions for hosting a new control plane instance is not satisfied"

// file is one file a control-plane join writes.
type file struct {
	path string
	data []byte
	mode os.FileMode
}

// controlPlaneJoin is what a control-plane join learns, and checks, before it writes anything.
type controlPlaneJoin struct {
	// cluster is the cluster's configuration as kube-system/kubeadm-config and kubelet-config hold it; node is this
	// node's part of the JoinConfiguration. Certificates, kubeconfig files and static Pods render from both.
	cluster *config.Cluster
	node    *config.Node
	// shared are the files of kube-system/kubeadm-certs, decrypted with the certificate key; nil without a key
	// (the files are then on the node already).
	shared []file
}

// controlPlaneJoin discovers the cluster and prepares the control-plane join, once: it refuses a cluster without
// controlPlaneEndpoint, and decrypts the shared certificates (a wrong key, or a Secret that expired, stops here).
func (d *Data) controlPlaneJoin(ctx context.Context) (*controlPlaneJoin, error) {
	if d.cpJoin != nil {
		return d.cpJoin, nil
	}
	jc := &d.Cfg.Join
	if jc.ControlPlane == nil {
		return nil, errors.New("this phase is for a control-plane join: pass --control-plane")
	}
	cl, err := d.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	if cl.Config.ControlPlaneEndpoint == "" {
		return nil, fmt.Errorf("%s: %w (kube-system/kubeadm-config has no controlPlaneEndpoint): init a cluster that is to have several "+
			"control-plane nodes with --control-plane-endpoint (a load balancer or DNS name for every API server)", notReadyPrefix, ErrNoControlPlaneEndpoint)
	}
	// The cluster's configuration is used as init uploaded it, defaulted. It is checked here, once, because that
	// init may have been a kubeadm or kubeboot of a release this one cannot render (another Kubernetes minor): a
	// refused join writes nothing. ResolveJoin has checked the JoinConfiguration.
	cluster := &config.Cluster{ClusterConfiguration: cl.Config, Kubelet: cl.Kubelet}
	// The node-local API endpoints reach this API server at 127.0.0.1 too. A cluster whose init had the endpoint
	// has the address in apiServer.certSANs already.
	if sans := localendpoint.CertSANs(d.kubeboot(cl), &cluster.ClusterConfiguration); len(sans) > 0 {
		cluster.APIServer.CertSANs = append(slices.Clone(cluster.APIServer.CertSANs), sans...)
	}
	if err := config.ValidateCluster(cluster); err != nil {
		return nil, fmt.Errorf("the cluster's configuration (kube-system/%s, kube-system/%s): %w", uploadconfig.KubeadmConfigMap,
			uploadconfig.KubeletConfigMap, err)
	}
	cp := &controlPlaneJoin{cluster: cluster, node: jc.ControlPlaneNode()}
	if key := jc.ControlPlane.CertificateKey; key != "" {
		if cp.shared, err = downloadShared(ctx, cl.Client, cp, key); err != nil {
			return nil, err
		}
		fmt.Fprintf(d.Out, "  decrypted %d shared certificates and keys of kube-system/%s with the certificate key\n", len(cp.shared), copycerts.SecretName)
	} else if missing := missingShared(d.FS, cluster); len(missing) > 0 {
		return nil, fmt.Errorf("%s: %w: %s missing; pass the --certificate-key printed by `kubeboot init --upload-certs` "+
			"(or `kubeboot init phase upload-certs --upload-certs`), or copy them from a control-plane node", notReadyPrefix,
			ErrSharedCertificatesMissing, strings.Join(missing, ", "))
	}
	d.cpJoin = cp
	return cp, nil
}

// downloadShared decrypts kube-system/kubeadm-certs into memory: copycerts.Download checks everything before it
// writes, and writes to a filesystem, here one held in memory, so no CA key reaches a disk before download-certs.
func downloadShared(ctx context.Context, client kubernetes.Interface, cp *controlPlaneJoin, key string) ([]file, error) {
	mem := nodefs.Memory()
	ctx, cancel := context.WithTimeout(ctx, cp.node.Timeouts.KubernetesAPICall.Duration)
	defer cancel()
	certDir, external := cp.cluster.CertificatesDir, cp.cluster.Etcd.External
	if err := copycerts.Download(ctx, client, mem, certDir, key, external); err != nil {
		return nil, fmt.Errorf("download the shared certificates: %w", err)
	}
	var out []file
	for _, f := range copycerts.Files(certDir, external) {
		if f.Path == "" {
			continue
		}
		b, err := mem.ReadFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the uploading node did not have it (an external CA's key)
		}
		if err != nil {
			return nil, err
		}
		mode := pki.CertMode
		if f.Private {
			mode = pki.KeyMode
		}
		out = append(out, file{f.Path, b, mode})
	}
	return out, nil
}

// missingShared lists the shared files a control-plane node must have before it makes its own certificates:
// every CA certificate and the service-account key pair. CA keys may be absent (an external CA).
func missingShared(fsys nodefs.FS, cluster *config.Cluster) []string {
	var missing []string
	for _, f := range copycerts.Files(cluster.CertificatesDir, cluster.Etcd.External) {
		required := !f.Private || f.SecretKey == pki.ServiceAccountKeyName
		if f.Path != "" && required && !fsys.Exists(f.Path) {
			missing = append(missing, f.Path)
		}
	}
	return missing
}

// checkControlPlane is preflight's part for a control-plane join: everything it refuses, it refuses before the
// first file is written.
func checkControlPlane(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	if cp.cluster.Etcd.External != nil {
		fmt.Fprintln(d.Out, "  the cluster uses an external etcd: this node runs no etcd member")
		return nil
	}
	return checkEtcdBeforeWriting(ctx, d, cp)
}

// checkEtcdBeforeWriting asks the cluster's etcd whether it can take a new member. It needs an etcd client
// certificate and an admin kubeconfig (to find the etcd members from their Pods); both are issued from the shared
// CAs into memory, so the node stays untouched and no key reaches a disk.
func checkEtcdBeforeWriting(ctx context.Context, d *Data, cp *controlPlaneJoin) error {
	sfs := nodefs.Memory()
	files := cp.shared
	if files == nil {
		for _, f := range copycerts.Files(cp.cluster.CertificatesDir, nil) {
			if b, err := d.FS.ReadFile(f.Path); err == nil {
				files = append(files, file{f.Path, b, pki.KeyMode})
			}
		}
	}
	for _, f := range files {
		if err := sfs.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	dir := cp.cluster.CertificatesDir
	for _, key := range []string{path.Join(dir, "ca.key"), path.Join(dir, "etcd", "ca.key")} {
		if !sfs.Exists(key) {
			fmt.Fprintf(d.Out, "  no %s (an external CA): the etcd cluster is checked by check-etcd, once this node has its certificates\n", key)
			return nil
		}
	}
	if _, err := pki.Ensure(ctx, sfs, cp.cluster, cp.node, "etcd-healthcheck-client", d.Source); err != nil {
		return err
	}
	if _, err := kubeconfig.Ensure(ctx, sfs, cp.cluster, cp.node, "admin", d.Source); err != nil {
		return err
	}
	ec, err := d.etcdCluster(ctx, sfs, cp)
	if err != nil {
		return err
	}
	defer ec.Close()
	return checkEtcdCanGrow(ctx, d, ec)
}

func checkEtcdCanGrow(ctx context.Context, d *Data, ec EtcdCluster) error {
	if err := ec.CheckQuorumSafeToAdd(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  the etcd cluster at %s is healthy enough to add a member\n", strings.Join(ec.Endpoints(), ","))
	return nil
}

func runDownloadCerts(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	var paths []string
	for _, f := range cp.shared {
		// WriteFile gives a key its 0600 mode before its content goes in.
		if err := d.FS.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
		paths = append(paths, f.path)
	}
	fmt.Fprintf(d.Out, "  wrote %s\n", strings.Join(paths, ", "))
	return nil
}

func runControlPlaneCerts(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	// EnsureAll would make new CAs where the shared ones are missing: a node with its own CAs cannot join.
	if missing := missingShared(d.FS, cp.cluster); len(missing) > 0 {
		return fmt.Errorf("%w: %s missing; run the control-plane-prepare/download-certs phase with --certificate-key first, or copy them from a control-plane node",
			ErrSharedCertificatesMissing, strings.Join(missing, ", "))
	}
	res, err := pki.EnsureAll(ctx, d.FS, cp.cluster, cp.node, d.Source)
	for _, r := range res {
		initflow.ReportPKI(d.Out, r)
	}
	return err
}

// controlPlaneKubeconfigs are the kubeconfig files a joining control-plane node writes: kubelet.conf comes from
// the kubelet's TLS bootstrap, and super-admin.conf exists on the first control-plane node only.
var controlPlaneKubeconfigs = []string{"admin", "controller-manager", "scheduler"}

func runControlPlaneKubeconfigs(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	res, err := kubeconfig.EnsureSome(ctx, d.FS, cp.cluster, cp.node, controlPlaneKubeconfigs, d.Source)
	for _, r := range res {
		initflow.ReportPKI(d.Out, r)
	}
	return err
}

func runControlPlaneManifests(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	host := manifests.DetectHost(d.FS, cp.cluster.CertificatesDir, os.Environ())
	writes := []func(context.Context, nodefs.FS, *config.Cluster, *config.Node, manifests.Host) ([]patches.Patch, error){
		manifests.WriteAPIServer, manifests.WriteControllerManager, manifests.WriteScheduler,
	}
	later := d.apiServerAfterEtcd(cp)
	if later {
		writes = writes[1:]
	}
	for _, write := range writes {
		applied, err := write(ctx, d.FS, cp.cluster, cp.node, host)
		initflow.ReportPatches(d.Out, applied)
		if err != nil {
			return err
		}
	}
	if later {
		fmt.Fprintf(d.Out, "  wrote the static Pods of %s and %s in %s; etcd-join writes %s's with this node's etcd member, so that it does not start before its etcd\n",
			staticpod.ControllerManagerName, staticpod.SchedulerName, staticpod.Dir, staticpod.APIServerName)
		return nil
	}
	fmt.Fprintf(d.Out, "  wrote the static Pods of %s, %s and %s in %s\n", staticpod.APIServerName, staticpod.ControllerManagerName,
		staticpod.SchedulerName, staticpod.Dir)
	return nil
}

// apiServerAfterEtcd says whether etcd-join, not the control-plane phase, writes the kube-apiserver manifest: when
// this run has both phases (Select), the API server's etcd is this node's own stacked member, and the run is real
// (a dry run shows the files in the control-plane phase's order).
func (d *Data) apiServerAfterEtcd(cp *controlPlaneJoin) bool {
	return d.apiServerWithEtcd && cp.cluster.Etcd.External == nil && !d.DryRun
}

// writeAPIServer writes this node's kube-apiserver manifest, for etcd-join.
func writeAPIServer(ctx context.Context, d *Data, cp *controlPlaneJoin) error {
	applied, err := manifests.WriteAPIServer(ctx, d.FS, cp.cluster, cp.node, manifests.DetectHost(d.FS, cp.cluster.CertificatesDir, os.Environ()))
	initflow.ReportPatches(d.Out, applied)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  wrote %s\n", staticpod.Path(staticpod.APIServerName))
	return nil
}

func runCheckEtcd(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	if cp.cluster.Etcd.External != nil {
		fmt.Fprintln(d.Out, "  external etcd: nothing to check")
		return nil
	}
	ec, err := d.etcdCluster(ctx, d.FS, cp)
	if err != nil {
		return err
	}
	defer ec.Close()
	return checkEtcdCanGrow(ctx, d, ec)
}

func runMarkControlPlane(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	name := kubelet.NodeName(d.Cfg.Join.NodeRegistration, d.Hostname)
	if d.DryRun {
		fmt.Fprintf(d.Out, "  dry run: would label and taint Node %s as a control-plane node\n", name)
		return nil
	}
	admin, err := d.adminClient(d.FS)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cp.node.Timeouts.KubernetesAPICall.Duration)
	defer cancel()
	if err := markcontrolplane.Mark(ctx, admin, name, cp.node.Registration.Taints); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  labelled Node %s %s and %s; %s\n", name, markcontrolplane.LabelControlPlane,
		markcontrolplane.LabelExcludeFromExternalLB, taintList(cp.node.Registration.Taints))
	return nil
}

func runWaitControlPlane(ctx context.Context, d *Data) error {
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return err
	}
	eps, err := initflow.ControlPlaneHealth(d.FS)
	if err != nil {
		return err
	}
	timeout := cp.node.Timeouts.ControlPlaneComponentHealthCheck.Duration
	fmt.Fprintf(d.Out, "  waiting for this node's control plane (up to %s)\n", timeout)
	w := &waiter.Waiter{Interval: d.interval(), Out: d.Out,
		Diagnose: initflow.NewDiagnoser(cp.node.Registration.CRISocket, d.FS, d.DialRuntime)}
	if err := w.Wait(ctx, timeout, eps...); err != nil {
		return hint.With(err, "the diagnosis comes from the container runtime; the kubelet's log says why a static Pod did not start")
	}
	return nil
}

// adminClient acts as admin.conf of fsys: the identity a control-plane node uses for the cluster's objects.
func (d *Data) adminClient(fsys nodefs.FS) (kubernetes.Interface, error) {
	kc, err := kubeconfig.Read(fsys, config.AdminKubeconfigFile)
	if err != nil {
		return nil, err
	}
	newClient := d.NewClient
	if newClient == nil {
		newClient = bootstrapClient
	}
	c, err := newClient(kc)
	if err != nil {
		return nil, fmt.Errorf("build a client from %s: %w", config.AdminKubeconfigFile, err)
	}
	return c, nil
}

func taintList(taints []corev1.Taint) string {
	if len(taints) == 0 {
		return "no taint (nodeRegistration.taints is empty)"
	}
	out := make([]string, 0, len(taints))
	for _, t := range taints {
		out = append(out, t.ToString())
	}
	return "tainted " + strings.Join(out, ",")
}
