package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/upgrade"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
)

// upgradeInit is cp-1's resolved configuration at version.
func upgradeInit(t *testing.T, version string) *config.Init {
	t.Helper()
	env := config.Environment{
		Hostname:              func() (string, error) { return "cp-1", nil },
		AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.1.2.3"), nil },
		SystemdResolvedActive: func() bool { return false },
		Random:                strings.NewReader(strings.Repeat("k", 256)),
	}
	file := []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.1.2.3}\nnodeRegistration: {name: cp-1}\n" +
		"---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: " + version + "\n")
	cfg, _, err := config.ResolveInit(file, config.InitFlags{}, env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// upgradeNode is cp-1 at v1.36.3 under a temporary root: its manifests and a kubelet.conf naming it.
func upgradeNode(t *testing.T) nodefs.FS {
	t.Helper()
	fsys := nodefs.FS{Root: t.TempDir()}
	cfg := upgradeInit(t, "v1.36.3")
	rendered, err := upgrade.Render(fsys, upgrade.Target{Cluster: cfg.ClusterPart(), Node: cfg.NodePart(), Host: manifests.Host{}}, upgrade.Components)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rendered {
		if err := fsys.WriteFile(staticpod.Path(r.Component), r.YAML, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:node:cp-1", Organization: []string{"system:nodes"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kc := kubeconfig.WithCerts("https://10.1.2.3:6443", "kubernetes", "system:node:cp-1", certPEM, certPEM, []byte("unused"))
	if err := kubeconfig.Write(fsys, config.KubeletKubeconfigFile, kc); err != nil {
		t.Fatal(err)
	}
	return fsys
}

// upgradeCluster is a one-node cluster at v1.36.3 for the fake clientset.
func upgradeCluster(t *testing.T) *fake.Clientset {
	t.Helper()
	doc, err := uploadconfig.ClusterConfigurationYAML(upgradeInit(t, "v1.36.3").Cluster)
	if err != nil {
		t.Fatal(err)
	}
	objs := []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config", Namespace: "kube-system"}, Data: map[string]string{"ClusterConfiguration": string(doc)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubelet-config", Namespace: "kube-system"},
			Data: map[string]string{"kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp-1", Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.36.3"},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}},
	}
	for _, c := range upgrade.Components {
		image := "registry.k8s.io/" + c + ":v1.36.3"
		if c == staticpod.EtcdName {
			image = "registry.k8s.io/etcd:3.6.8-0"
		}
		objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: c + "-cp-1", Namespace: "kube-system", Labels: staticpod.Labels(c)},
			Spec: corev1.PodSpec{NodeName: "cp-1", Containers: []corev1.Container{{Name: c, Image: image}}}})
	}
	return fake.NewClientset(objs...)
}

type healthyMembers struct{}

func (healthyMembers) Status(context.Context) ([]etcd.MemberStatus, error) {
	return []etcd.MemberStatus{{Member: etcd.Member{ID: 1, Name: "cp-1"}, Healthy: true}}, nil
}

func fakeUpgradeDeps(client kubernetes.Interface) upgradeDeps {
	return upgradeDeps{
		in:     strings.NewReader(""),
		client: func(string) (kubernetes.Interface, error) { return client, nil },
		etcd: func(nodefs.FS, string) (upgrade.EtcdStatus, func(), error) {
			return healthyMembers{}, func() {}, nil
		},
		engine: func(context.Context, *upgrade.Data, string, bool, io.Writer) (*upgrade.Engine, func(), error) {
			panic("the engine is not built in these tests")
		},
	}
}

func runUpgradeCmd(t *testing.T, deps upgradeDeps, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := &cobra.Command{Use: "kubeboot", SilenceUsage: true, SilenceErrors: true}
	addGlobalFlags(root)
	root.AddCommand(newUpgradeCmd(&out, deps))
	root.SetArgs(append([]string{"upgrade"}, args...))
	root.SetOut(&out)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestUpgradePlanCLI(t *testing.T) {
	fsys := upgradeNode(t)
	out, err := runUpgradeCmd(t, fakeUpgradeDeps(upgradeCluster(t)), "plan", "--rootfs", fsys.Root, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind": "UpgradePlan"`, `"apiVersion": "output.kubeadm.k8s.io/v1alpha3"`, `"description": "stable version"`, `"newVersion": "v1.37.2"`} {
		if !strings.Contains(out, want) {
			t.Errorf("plan -o json lacks %s:\n%s", want, out)
		}
	}
	out, err = runUpgradeCmd(t, fakeUpgradeDeps(upgradeCluster(t)), "plan", "--rootfs", fsys.Root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\tkubeboot upgrade apply v1.37.2\n") {
		t.Errorf("plan lacks the suggested command:\n%s", out)
	}
}

func TestUpgradeApplyCLIRefusals(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-y"}, "missing one or more required arguments. Required arguments: [version]"},
		{[]string{"apply", "v1.38.0", "-y"}, `Specified version to upgrade to "v1.38.0" is too high; kubeboot can upgrade only 1 minor version at a time`},
		{[]string{"apply", "v1.37.2"}, "[upgrade] no answer on standard input: nothing was changed"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fsys := upgradeNode(t)
			client := upgradeCluster(t)
			before, err := fsys.List("/etc/kubernetes")
			if err != nil {
				t.Fatal(err)
			}
			_, err = runUpgradeCmd(t, fakeUpgradeDeps(client), append(tt.args, "--rootfs", fsys.Root)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant %s", err, tt.want)
			}
			after, _ := fsys.List("/etc/kubernetes")
			if len(before) != len(after) {
				t.Errorf("files before %q, after %q", before, after)
			}
			for _, a := range client.Actions() {
				if a.GetVerb() != "get" && a.GetVerb() != "list" {
					t.Errorf("a refused upgrade wrote to the API: %s %s", a.GetVerb(), a.GetResource().Resource)
				}
			}
		})
	}
}

func TestUpgradeDiffCLI(t *testing.T) {
	fsys := upgradeNode(t)
	out, err := runUpgradeCmd(t, fakeUpgradeDeps(upgradeCluster(t)), "diff", "v1.37.2", "--rootfs", fsys.Root, "-c", "0")
	if err != nil {
		t.Fatal(err)
	}
	want := "--- /etc/kubernetes/manifests/kube-apiserver.yaml\n+++ new manifest\n@@ -42 +42 @@\n-    image: registry.k8s.io/kube-apiserver:v1.36.3\n+    image: registry.k8s.io/kube-apiserver:v1.37.2\n"
	if !strings.Contains(out, want) {
		t.Errorf("diff lacks\n%s\ngot\n%s", want, out)
	}
}

func TestUpgradePhaseCommands(t *testing.T) {
	out, err := runUpgradeCmd(t, fakeUpgradeDeps(nil), "apply", "phase", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"preflight", "control-plane", "upload-config", "kubelet-config", "bootstrap-token", "addon", "post-upgrade"} {
		if !strings.Contains(out, "  "+p) {
			t.Errorf("upgrade apply phase --help lacks %s:\n%s", p, out)
		}
	}
	out, err = runUpgradeCmd(t, fakeUpgradeDeps(nil), "node", "phase", "addon", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"coredns", "kube-proxy", "all"} {
		if !strings.Contains(out, p) {
			t.Errorf("upgrade node phase addon --help lacks %s:\n%s", p, out)
		}
	}
}

// TestUpgradeApplyConfigFile: --config's UpgradeConfiguration gives the version, the manifests' timeout,
// certificateRenewal and the preflight pull's imagePullPolicy; a flag the user sets wins over it.
func TestUpgradeApplyConfigFile(t *testing.T) {
	file := t.TempDir() + "/upgrade.yaml"
	if err := os.WriteFile(file, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\napply:\n  kubernetesVersion: v1.37.2\n  certificateRenewal: false\n  imagePullPolicy: Never\n"+
		"timeouts:\n  upgradeManifests: 2m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args      []string
		wantRenew bool
	}{
		{nil, false},
		{[]string{"--certificate-renewal=true"}, true},
	} {
		fsys := upgradeNode(t)
		deps := fakeUpgradeDeps(upgradeCluster(t))
		var gotVersion string
		var gotTimeout time.Duration
		var gotRenew bool
		var gotPull corev1.PullPolicy
		deps.engine = func(_ context.Context, d *upgrade.Data, _ string, renew bool, _ io.Writer) (*upgrade.Engine, func(), error) {
			gotVersion, gotTimeout, gotRenew = d.Cluster().KubernetesVersion, d.Timeouts.UpgradeManifests.Duration, renew
			gotPull = d.ImagePullPolicy
			return nil, nil, errors.New("stop here")
		}
		args := append([]string{"apply", "phase", "control-plane", "--config", file, "--rootfs", fsys.Root}, tt.args...)
		_, err := runUpgradeCmd(t, deps, args...)
		if err == nil || !strings.Contains(err.Error(), "stop here") {
			t.Fatalf("error %v", err)
		}
		if gotVersion != "v1.37.2" || gotTimeout != 2*time.Minute || gotRenew != tt.wantRenew || gotPull != corev1.PullNever {
			t.Errorf("%q: version %s, timeout %s, renew %v, imagePullPolicy %q", tt.args, gotVersion, gotTimeout, gotRenew, gotPull)
		}
	}
}
