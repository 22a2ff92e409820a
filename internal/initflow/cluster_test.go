package initflow

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/workflow"
)

type fakeClients struct{ c *fake.Clientset }

func (f fakeClients) Admin() (kubernetes.Interface, error)      { return f.c, nil }
func (f fakeClients) SuperAdmin() (kubernetes.Interface, error) { return f.c, nil }

// TestClusterPhasesCreateKubeadmsObjects runs the API phases of init against a fake API server and checks the
// objects a kubeadm join and the controller-manager rely on.
func TestClusterPhasesCreateKubeadmsObjects(t *testing.T) {
	cfg := testConfig(t, config.EncryptionAlgorithmECDSAP256)
	fsys := nodefs.FS{Root: t.TempDir()}
	if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp-1", Labels: map[string]string{"kubernetes.io/hostname": "cp-1"}}})
	var out bytes.Buffer
	d := &Data{Env: nodeenv.Env{FS: fsys, Out: &out}, Cfg: cfg, Clients: fakeClients{client}}
	r := workflow.Runner[*Data]{Phases: Phases(), Out: &out}
	for _, only := range []string{"upload-config", "mark-control-plane", "bootstrap-token", "kubelet-finalize", "addon"} {
		if err := r.Run(t.Context(), d, workflow.Options{Only: only}); err != nil {
			t.Fatalf("%s: %v\n%s", only, err, out.String())
		}
	}
	ctx := t.Context()
	get := func(ns, kind, name string) {
		t.Helper()
		var err error
		switch kind {
		case "ConfigMap":
			_, err = client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		case "Secret":
			_, err = client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		case "ClusterRoleBinding":
			_, err = client.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
		case "RoleBinding":
			_, err = client.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{})
		case "Deployment":
			_, err = client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		case "DaemonSet":
			_, err = client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		case "Service":
			_, err = client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil {
			t.Errorf("%s %s/%s: %v", kind, ns, name, err)
		}
	}
	get("kube-system", "ConfigMap", "kubeadm-config")
	get("kube-system", "ConfigMap", "kubelet-config")
	get("kube-public", "ConfigMap", "cluster-info")
	get("kube-public", "RoleBinding", "kubeadm:bootstrap-signer-clusterinfo")
	tokID := strings.SplitN(cfg.Init.BootstrapTokens[0].Token, ".", 2)[0]
	get("kube-system", "Secret", "bootstrap-token-"+tokID)
	for _, crb := range []string{"kubeadm:cluster-admins", "kubeadm:kubelet-bootstrap", "kubeadm:node-autoapprove-bootstrap", "kubeadm:node-autoapprove-certificate-rotation", "kubeadm:get-nodes", "kubeadm:node-proxier"} {
		get("", "ClusterRoleBinding", crb)
	}
	get("kube-system", "Deployment", "coredns")
	get("kube-system", "Service", "kube-dns")
	get("kube-system", "DaemonSet", "kube-proxy")
	node, err := client.CoreV1().Nodes().Get(ctx, "cp-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := node.Labels["node-role.kubernetes.io/control-plane"]; !ok {
		t.Errorf("node labels %v", node.Labels)
	}
	if len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != "node-role.kubernetes.io/control-plane" {
		t.Errorf("node taints %v", node.Spec.Taints)
	}
	if !strings.Contains(out.String(), "client certificate rotation stays off") {
		t.Errorf("kubelet-finalize did not say why it changed nothing:\n%s", out.String())
	}
}

// TestUploadCerts runs upload-certs and show-join-command against a fake API server: the certificates land in
// kube-system/kubeadm-certs encrypted with the key, and the key, a secret, appears once: in the final join
// instructions.
func TestUploadCerts(t *testing.T) {
	const givenKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	tests := []struct {
		name     string
		endpoint string
		key      string
		only     []string
		wantKey  bool // shown in the join instructions
		unshown  bool // left for the caller to print
	}{
		{name: "a new key, shown with the control-plane join command", endpoint: "cp.lab:6443", only: []string{"upload-certs", "show-join-command"}, wantKey: true},
		{name: "the configured key", endpoint: "cp.lab", key: givenKey, only: []string{"upload-certs", "show-join-command"}, wantKey: true},
		{name: "no controlPlaneEndpoint: the key is withheld", only: []string{"upload-certs", "show-join-command"}},
		{name: "the phase alone: the caller prints the key", endpoint: "cp.lab:6443", only: []string{"upload-certs"}, unshown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, config.EncryptionAlgorithmECDSAP256)
			cfg.Cluster.ControlPlaneEndpoint = tt.endpoint
			cfg.Init.CertificateKey = tt.key
			fsys := nodefs.FS{Root: t.TempDir()}
			if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
				t.Fatal(err)
			}
			client := fake.NewClientset()
			var out bytes.Buffer
			d := &Data{Env: nodeenv.Env{FS: fsys, Out: &out}, Cfg: cfg, Clients: fakeClients{client}, UploadCerts: true}
			r := workflow.Runner[*Data]{Phases: Phases(), Out: &out}
			for _, only := range tt.only {
				if err := r.Run(t.Context(), d, workflow.Options{Only: only}); err != nil {
					t.Fatalf("%s: %v\n%s", only, err, out.String())
				}
			}
			key := cfg.Init.CertificateKey
			if tt.key != "" && key != tt.key {
				t.Fatalf("uploaded with key %q, want the configured one", key)
			}
			// The Secret decrypts with the key into the first node's files.
			joining := nodefs.FS{Root: t.TempDir()}
			if err := copycerts.Download(t.Context(), client, joining, "/etc/kubernetes/pki", key, nil); err != nil {
				t.Fatal(err)
			}
			for _, f := range copycerts.Files("/etc/kubernetes/pki", nil) {
				want, _ := fsys.ReadFile(f.Path)
				if got, _ := joining.ReadFile(f.Path); !bytes.Equal(got, want) {
					t.Errorf("%s does not round-trip through kubeadm-certs", f.Path)
				}
			}

			text := out.String()
			if want := "  uploaded the shared certificates to kube-system/kubeadm-certs, encrypted with the certificate key shown at the end; they are deleted after 2h\n[upload-certs] done in"; !strings.Contains(text, want) {
				t.Errorf("output lacks %q:\n%s", want, text)
			}
			progress, final, _ := strings.Cut(text, "Your Kubernetes control-plane has initialized successfully!")
			if strings.Contains(progress, key) {
				t.Errorf("the certificate key is in a progress line:\n%s", progress)
			}
			cpJoin := "--control-plane --certificate-key " + key + "\n"
			switch {
			case tt.wantKey && (strings.Count(final, key) != 1 || !strings.Contains(final, cpJoin)):
				t.Errorf("the join instructions lack %q (once):\n%s", cpJoin, final)
			case !tt.wantKey && strings.Contains(final, key):
				t.Errorf("the join instructions show the key:\n%s", final)
			}
			if tt.wantKey && !strings.Contains(final, "kubeboot join cp.lab:6443 --token ") {
				t.Errorf("the join commands do not use controlPlaneEndpoint:\n%s", final)
			}
			if got := d.UnshownCertificateKey(); (got == key) != tt.unshown || (got != "" && got != key) {
				t.Errorf("UnshownCertificateKey() = %q, want the key: %v", got, tt.unshown)
			}
		})
	}
}

// TestControllerAccounts runs controller-accounts on the controller-manager manifest init writes: with kubeadm's
// flags it creates every account; with a user's --controllers it leaves them to the controller-manager and says why.
func TestControllerAccounts(t *testing.T) {
	names := release.Default().ControllerServiceAccounts
	for _, tt := range []struct {
		name        string
		extra       []config.Arg
		wantCreated int
		wantOut     string
	}{
		{name: "kubeadm's flags", wantCreated: len(names),
			wantOut: fmt.Sprintf("created %d of the controller-manager's %d ServiceAccounts in kube-system", len(names), len(names))},
		{name: "a user's controllers", extra: []config.Arg{{Name: "controllers", Value: "*,-ttl"}},
			wantOut: "not needed: kube-controller-manager runs with --controllers=*,-ttl, not kubeadm's --controllers=*,bootstrapsigner,tokencleaner (/etc/kubernetes/manifests/kube-controller-manager.yaml)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, config.EncryptionAlgorithmECDSAP256)
			cfg.Cluster.ControllerManager.ExtraArgs = tt.extra
			fsys := nodefs.FS{Root: t.TempDir()}
			if _, err := manifests.WriteControllerManager(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), manifests.Host{}); err != nil {
				t.Fatal(err)
			}
			client := fake.NewClientset()
			var out bytes.Buffer
			d := &Data{Env: nodeenv.Env{FS: fsys, Out: &out}, Cfg: cfg, Clients: fakeClients{client}}
			r := workflow.Runner[*Data]{Phases: Phases(), Out: &out}
			if err := r.Run(t.Context(), d, workflow.Options{Only: "controller-accounts"}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			list, err := client.CoreV1().ServiceAccounts("kube-system").List(t.Context(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != tt.wantCreated || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("%d accounts, output:\n%s\nwant %d accounts and %q", len(list.Items), out.String(), tt.wantCreated, tt.wantOut)
			}
		})
	}
}

func TestControllerAccountsNeedTheManifest(t *testing.T) {
	cfg := testConfig(t, config.EncryptionAlgorithmECDSAP256)
	var out bytes.Buffer
	d := &Data{Env: nodeenv.Env{FS: nodefs.FS{Root: t.TempDir()}, Out: &out}, Cfg: cfg, Clients: fakeClients{fake.NewClientset()}}
	r := workflow.Runner[*Data]{Phases: Phases(), Out: &out}
	err := r.Run(t.Context(), d, workflow.Options{Only: "controller-accounts"})
	if err == nil || !strings.Contains(err.Error(), "controller-accounts") || !strings.Contains(err.Error(), "read the static Pod of kube-controller-manager") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v; want the phase named and the missing manifest", err)
	}
}
