package initflow

import (
	"bytes"
	"os"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"

	"kubeboot.dev/kubeboot/internal/addons"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/testutil/staticelf"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// TestInitLocalEndpoint runs init but for the phases that need a machine or a running control plane, with and
// without the node-local API endpoint: with it, kubeboot is installed, its static Pod written, kubelet.conf and
// kube-proxy point at 127.0.0.1 and the cluster holds the document and the RBAC; without it, none of that.
func TestInitLocalEndpoint(t *testing.T) {
	const port = 7446
	for _, tc := range []struct {
		name     string
		kubeboot *config.KubebootConfiguration
	}{
		{name: "without the document"},
		{name: "disabled", kubeboot: &config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{}}},
		{name: "enabled", kubeboot: &config.KubebootConfiguration{NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{Enabled: true, Port: port}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, on := tc.kubeboot.NodeLocalAPIEndpointPort()
			cfg := testConfig(t, config.EncryptionAlgorithmECDSAP256)
			cfg.Kubeboot = tc.kubeboot
			fsys := nodefs.FS{Root: t.TempDir()}
			client := fake.NewClientset()
			var out bytes.Buffer
			w := workflow.Locked(&out)
			bin := staticelf.Write(t)
			d := &Data{Env: nodeenv.Env{FS: fsys, Out: w, Source: pki.SystemSource(), InitSystem: &fakeInitSystem{}}, Cfg: cfg,
				Hostname: "cp-1", Clients: fakeClients{client}, Executable: func() (string, error) { return bin, nil }}
			r := workflow.Runner[*Data]{Phases: Phases(), Out: w}
			skip := []string{"preflight", "wait-control-plane", "controller-accounts", "mark-control-plane", "kubelet-finalize"}
			if err := r.Run(t.Context(), d, workflow.Options{Skip: skip}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}

			if got := fsys.Exists(staticpod.Path(localendpoint.Name)); got != on {
				t.Errorf("%s written: %v, want %v", staticpod.Path(localendpoint.Name), got, on)
			}
			if got := fsys.Exists(localendpoint.HostBinaryPath); got != on {
				t.Errorf("%s installed: %v, want %v", localendpoint.HostBinaryPath, got, on)
			}
			wantKubelet, wantProxy := "https://10.1.2.3:6443", "https://10.1.2.3:6443"
			if on {
				wantKubelet, wantProxy = "https://127.0.0.1:7446", "https://127.0.0.1:7446"
			}
			checkServer(t, fsys, config.KubeletKubeconfigFile, wantKubelet)
			checkServer(t, fsys, config.AdminKubeconfigFile, "https://10.1.2.3:6443")

			ctx := t.Context()
			cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, addons.KubeProxyName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			kc, err := clientcmd.Load([]byte(cm.Data[addons.KubeProxyKubeconfigKey]))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range kc.Clusters {
				if c.Server != wantProxy {
					t.Errorf("kube-proxy's kubeconfig server %s, want %s", c.Server, wantProxy)
				}
			}
			ci, err := client.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ci.Data["kubeconfig"], "server: https://10.1.2.3:6443") {
				t.Errorf("cluster-info does not keep the control-plane endpoint:\n%s", ci.Data["kubeconfig"])
			}
			_, err = client.CoreV1().ConfigMaps("kube-system").Get(ctx, uploadconfig.KubebootConfigMap, metav1.GetOptions{})
			if got := err == nil; got != on {
				t.Errorf("kube-system/%s exists: %v (%v), want %v", uploadconfig.KubebootConfigMap, got, err, on)
			}
			_, err = client.RbacV1().RoleBindings("kube-system").Get(ctx, uploadconfig.KubebootConfigRBAC, metav1.GetOptions{})
			if got := err == nil; got != on {
				t.Errorf("RoleBinding %s exists: %v, want %v", uploadconfig.KubebootConfigRBAC, got, on)
			}
			_, err = client.RbacV1().ClusterRoleBindings().Get(ctx, localendpoint.RBACName, metav1.GetOptions{})
			if got := err == nil; got != on {
				t.Errorf("ClusterRoleBinding %s exists: %v, want %v", localendpoint.RBACName, got, on)
			}
			if !on {
				return
			}
			st, err := os.Stat(fsys.Path(localendpoint.HostBinaryPath))
			if err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("%s: %v, mode %v; want 0755", localendpoint.HostBinaryPath, err, st.Mode().Perm())
			}
			m, err := staticpod.Read(fsys, localendpoint.Name)
			if err != nil {
				t.Fatal(err)
			}
			c := m.Pod.Spec.Containers[0]
			cmd := strings.Join(c.Command, " ")
			for _, want := range []string{"--listen=127.0.0.1:7446", "--backend=10.1.2.3:6443", "--ca-file=/etc/kubernetes/pki/ca.crt"} {
				if !strings.Contains(cmd, want) {
					t.Errorf("the endpoint's command %q lacks %s", cmd, want)
				}
			}
			if !strings.HasPrefix(c.Image, "registry.k8s.io/pause:") {
				t.Errorf("image %s, want the release's pause image", c.Image)
			}
			k, err := uploadconfig.ReadKubebootConfig(ctx, client)
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := k.NodeLocalAPIEndpointPort(); !ok || p != port {
				t.Errorf("kube-system/%s: port %d, enabled %v", uploadconfig.KubebootConfigMap, p, ok)
			}
		})
	}
}

func checkServer(t *testing.T, fsys nodefs.FS, file, want string) {
	t.Helper()
	kc, err := kubeconfig.Read(fsys, file)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := kubeconfig.Current(kc)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != want {
		t.Errorf("%s: server %s, want %s", file, c.Server, want)
	}
}
