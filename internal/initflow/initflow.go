// Package initflow is the phase tree of `kubeboot init`: the same phases run for a whole init, for
// `kubeboot init phase <name>`, and under --skip-phases.
package initflow

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Data is what every init phase works on. Effects go through its fields, so tests and --dry-run substitute them.
type Data struct {
	// Env is the node: its filesystem, the output, the clock and randomness, the init system, the runtime.
	nodeenv.Env
	Cfg *config.Init
	// Hostname is the machine's hostname as the kubelet sees it (config.Environment.NodeHostname), for
	// kubeadm-flags.env's --hostname-override decision.
	Hostname string
	// DryRun means FS keeps every write in memory and nothing may touch the machine or the cluster.
	DryRun bool
	// UploadCerts is --upload-certs: the upload-certs phase stores the shared certificates in kube-system/kubeadm-certs,
	// encrypted with Cfg.Init.CertificateKey (a new key when it is empty).
	UploadCerts bool
	// SkipTokenPrint and SkipCertificateKeyPrint are kubeadm's --skip-token-print and --skip-certificate-key-print:
	// the join commands show "<value withheld>" instead of the secret.
	SkipTokenPrint, SkipCertificateKeyPrint bool
	// PrintManifest is kubeadm's --print-manifest: the addon phases print their objects instead of installing them.
	PrintManifest bool
	// KubeconfigDir is where the kubeconfig phases write (kubeadm's --kubeconfig-dir of `init phase kubeconfig`);
	// "" is /etc/kubernetes, where every other phase looks for them.
	KubeconfigDir string
	// Clients reach the new cluster (built from admin.conf and super-admin.conf).
	Clients Clients
	// Executable is the running kubeboot, which the local-endpoint phase installs for the node-local API
	// endpoint; nil: os.Executable.
	Executable func() (string, error)

	adminMu       sync.Mutex
	adminReady    bool // the kubeadm:cluster-admins binding is known to exist
	certsUploaded bool // upload-certs stored the certificates under Cfg.Init.CertificateKey in this run
	keyShown      bool // show-join-command printed the certificate key
}

// Phases is the init phase tree, in kubeadm's order and with kubeadm's names.
//
// In a whole init the phases that write files run as soon as what they use exists (see Needs), in the order
// that brings the API server up soonest. The kubelet goes first: it needs only the CA and kubelet.conf, so
// kubelet-start runs as soon as those two are written, and the rest is made while the kubelet starts (it picks
// the manifests up as they appear). Next come the certificates etcd and the API server read, and each of their
// manifests as soon as its own files exist (podReads). The keys nothing on that path reads (admin.conf,
// super-admin.conf, the controller-manager's and the scheduler's kubeconfig files, etcd's health-check client)
// are made after those two manifests: generating a key takes the CPU, and on a small machine making them
// alongside would delay the kubelet and the API server, which is what init waits for. The controller-manager and
// the scheduler are not on that path: they wait for the API server anyway.
func Phases() []workflow.Phase[*Data] {
	return append([]workflow.Phase[*Data]{
		{Name: "preflight", Short: "Run pre-flight checks", Run: runPreflight},
		{Name: "certs", Short: "Certificate generation", Phases: certPhases(), Needs: []string{"preflight"}},
		{Name: "kubeconfig", Short: "Generate all kubeconfig files necessary to establish the control plane and the admin kubeconfig file",
			Phases: kubeconfigPhases(), Needs: []string{"preflight", "certs/" + pki.CAPhase}},
		{Name: "etcd", Short: "Generate static Pod manifest file for local etcd", Needs: []string{"preflight"}, Phases: []workflow.Phase[*Data]{
			{Name: "local", Short: "Generate the static Pod manifest file for a local, single-node local etcd instance", Needs: podReads["etcd/local"], Run: func(ctx context.Context, d *Data) error {
				applied, err := manifests.WriteLocalEtcd(ctx, d.FS, d.Cfg.ClusterPart(), d.Cfg.NodePart())
				ReportPatches(d.Out, applied)
				return err
			}, RunIf: func(d *Data) bool { return d.Cfg.Cluster.Etcd.External == nil }},
		}},
		{Name: "control-plane", Short: "Generate all static Pod manifest files necessary to establish the control plane", Needs: []string{"preflight"},
			Phases: controlPlanePhases()},
		// kubeboot's own (KubebootConfiguration.nodeLocalAPIEndpoint): kubelet.conf points at the endpoint, so the
		// kubelet finds its static Pod with the control plane's. The kubelet does not wait for it: its Pods start
		// without an API server.
		{Name: "local-endpoint", Short: "Install kubeboot and write the static Pod manifest of the node-local API endpoint",
			RunIf: func(d *Data) bool { _, ok := d.localEndpoint(); return ok }, Run: runLocalEndpoint,
			Needs: []string{"preflight", "kubeconfig/" + kubeconfig.KubeletPhase}},
		{Name: "kubelet-start", Short: "Write kubelet settings and (re)start the kubelet", Run: runKubeletStart,
			Needs: []string{"preflight", "certs/" + pki.CAPhase, "kubeconfig/" + kubeconfig.KubeletPhase}},
	}, clusterPhases()...)
}

// podReads lists, by the path of the phase that writes a static Pod's manifest, the phases that write what the
// Pod reads when it starts: in a whole init the manifest is written as soon as they are done, and no sooner (a Pod
// started without its files crash-loops into the kubelet's back-off).
var podReads = map[string][]string{
	"etcd/local": {"certs/etcd-ca", "certs/etcd-server", "certs/etcd-peer"},
	"control-plane/apiserver": {"certs/" + pki.CAPhase, "certs/apiserver", "certs/apiserver-kubelet-client", "certs/front-proxy-ca",
		"certs/front-proxy-client", "certs/etcd-ca", "certs/apiserver-etcd-client", "certs/" + pki.SAPhase},
	"control-plane/controller-manager": {"certs/" + pki.CAPhase, "certs/front-proxy-ca", "certs/" + pki.SAPhase, "kubeconfig/controller-manager"},
	"control-plane/scheduler":          {"kubeconfig/scheduler"},
}

// afterTheAPIServer are the key-making phases that etcd and the API server do not read: in a whole init they wait
// for those two manifests (see Phases).
var afterTheAPIServer = map[string]bool{
	"certs/etcd-healthcheck-client": true, "kubeconfig/admin": true, "kubeconfig/super-admin": true,
	"kubeconfig/controller-manager": true, "kubeconfig/scheduler": true,
}

// deferred returns the Needs that hold the phase at path until the etcd and API server manifests are written,
// when it is one of afterTheAPIServer.
func deferred(path string) []string {
	if afterTheAPIServer[path] {
		return []string{"etcd/local", "control-plane/apiserver"}
	}
	return nil
}

// certPhases are the certificate phases; each waits only for its CA (and, but for the cluster CA, for
// kubelet-start; some for the API server's manifest: see Phases), so they run at once.
func certPhases() []workflow.Phase[*Data] {
	var out []workflow.Phase[*Data]
	for _, p := range pki.Phases() {
		needs := []string{}
		if p.Name != pki.CAPhase {
			needs = append(needs, "kubelet-start")
		}
		if s, ok := pki.SpecByName(p.Name); ok && s.CAName != "" {
			needs = append(needs, "certs/"+s.CAName)
		}
		needs = append(needs, deferred("certs/"+p.Name)...)
		out = append(out, workflow.Phase[*Data]{Name: p.Name, Short: p.Short, Needs: needs, Run: func(ctx context.Context, d *Data) error {
			res, err := pki.Ensure(ctx, d.FS, d.Cfg.ClusterPart(), d.Cfg.NodePart(), p.Name, d.Source)
			if err != nil {
				return err
			}
			ReportPKI(d.Out, res)
			return nil
		}})
	}
	return out
}

// kubeconfigPhases are the kubeconfig phases; they need only the CA (through their parent), and but for
// kubelet.conf wait for kubelet-start and the API server's manifest (see Phases).
func kubeconfigPhases() []workflow.Phase[*Data] {
	var out []workflow.Phase[*Data]
	for _, p := range kubeconfig.Phases() {
		needs := []string{}
		if p.Name != kubeconfig.KubeletPhase {
			needs = append(needs, "kubelet-start")
		}
		needs = append(needs, deferred("kubeconfig/"+p.Name)...)
		out = append(out, workflow.Phase[*Data]{Name: p.Name, Short: p.Short, Needs: needs, Run: func(ctx context.Context, d *Data) error {
			dir := d.KubeconfigDir
			if dir == "" {
				dir = config.KubernetesDir
			}
			res, err := kubeconfig.EnsureIn(ctx, d.FS, d.Cfg.ClusterPart(), d.nodePart(), dir, p.Name, d.Source)
			if err != nil {
				return err
			}
			ReportPKI(d.Out, res)
			return nil
		}})
	}
	return out
}

func controlPlanePhases() []workflow.Phase[*Data] {
	write := func(f func(context.Context, nodefs.FS, *config.Cluster, *config.Node, manifests.Host) ([]patches.Patch, error)) func(context.Context, *Data) error {
		return func(ctx context.Context, d *Data) error {
			host := manifests.DetectHost(d.FS, d.Cfg.Cluster.CertificatesDir, os.Environ())
			applied, err := f(ctx, d.FS, d.Cfg.ClusterPart(), d.Cfg.NodePart(), host)
			ReportPatches(d.Out, applied)
			return err
		}
	}
	return []workflow.Phase[*Data]{
		{Name: "apiserver", Short: "Generate the kube-apiserver static Pod manifest", Run: write(manifests.WriteAPIServer),
			Needs: podReads["control-plane/apiserver"]},
		{Name: "controller-manager", Short: "Generate the kube-controller-manager static Pod manifest", Run: write(manifests.WriteControllerManager),
			Needs: podReads["control-plane/controller-manager"]},
		{Name: "scheduler", Short: "Generate the kube-scheduler static Pod manifest", Run: write(manifests.WriteScheduler),
			Needs: podReads["control-plane/scheduler"]},
	}
}

func runPreflight(ctx context.Context, d *Data) error {
	if d.DryRun {
		fmt.Fprintln(d.Out, "  dry run: checks that need the machine are still run, nothing is changed")
	}
	return preflight.Run(ctx, preflight.InitChecks(*d.Cfg, d.Preflight), d.Cfg.Init.NodeRegistration.IgnorePreflightErrors, d.Out)
}

func runKubeletStart(ctx context.Context, d *Data) error {
	// In a whole init the kubelet starts before the static Pods are written: it must find their directory to
	// watch it.
	if err := d.FS.MkdirAll(staticpod.Dir, 0o755); err != nil {
		return err
	}
	node := d.Cfg.NodePart()
	if err := kubelet.WriteFlags(d.FS, node, d.Hostname); err != nil {
		return err
	}
	applied, err := kubelet.WriteConfig(d.FS, d.Cfg.ClusterPart(), node)
	if err != nil {
		return err
	}
	ReportPatches(d.Out, applied)
	fmt.Fprintf(d.Out, "  wrote %s and %s\n", config.KubeletFlagsEnvFile, config.KubeletConfigFile)
	return restartKubelet(ctx, d)
}

// ReportPatches prints kubeadm's line for each patch of patches.directory a phase applied (join uses it too).
func ReportPatches(w io.Writer, applied []patches.Patch) {
	for _, p := range applied {
		fmt.Fprintln(w, "  "+p.Line())
	}
}

// ReportPKI prints one line for a certificate or kubeconfig phase: what was done to which files.
func ReportPKI(w io.Writer, r pki.Result) {
	line := fmt.Sprintf("  %s %s", r.Action, strings.Join(r.Files, ", "))
	if len(r.SANs) > 0 {
		line += " (serving for " + strings.Join(r.SANs, ", ") + ")"
	}
	if r.Note != "" {
		line += ": " + r.Note
	}
	fmt.Fprintln(w, line)
}
