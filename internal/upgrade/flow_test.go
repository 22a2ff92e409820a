package upgrade

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// clusterKubelet is fakeKubelet that also keeps this node's mirror Pods in the fake API in step with the manifests,
// as the kubelet does.
type clusterKubelet struct {
	*fakeKubelet
	client kubernetes.Interface
	node   string
}

func (k *clusterKubelet) State(ctx context.Context, c string) (string, bool, error) {
	m, err := staticpod.Read(k.fs, c)
	if err == nil {
		pods := k.client.CoreV1().Pods("kube-system")
		if p, err := pods.Get(ctx, c+"-"+k.node, metav1.GetOptions{}); err == nil {
			p.Spec.Containers[0].Image = m.Pod.Spec.Containers[0].Image
			if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
				return "", false, err
			}
		}
	}
	return k.fakeKubelet.State(ctx, c)
}

type etcdMembers []etcd.MemberStatus

func (m etcdMembers) Status(context.Context) ([]etcd.MemberStatus, error) { return m, nil }

func healthyEtcd() etcdMembers {
	return etcdMembers{{Member: etcd.Member{ID: 1, Name: "cp-1", PeerURLs: []string{"https://10.1.2.3:2380"}}, Healthy: true}}
}

// flowData is cp-1 of cluster c (its files at v1.36.3) with the fakes.
func flowData(t *testing.T, c fakeCluster, target string, out *bytes.Buffer) (*Data, *fake.Clientset) {
	t.Helper()
	fsys := node(t)
	if err := fsys.WriteFile(config.KubeletConfigFile, []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n# old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := c.client(t)
	k := &clusterKubelet{fakeKubelet: &fakeKubelet{fs: fsys}, client: client, node: "cp-1"}
	e := engine(fsys, k.fakeKubelet, &renewer{}, out)
	e.Mirror = k
	clock := time.Date(2026, 12, 3, 20, 1, 2, 0, time.UTC)
	return &Data{Out: out, FS: fsys, Client: client, Etcd: healthyEtcd(), Engine: e, Now: func() time.Time { return clock },
		Version: target, EtcdUpgrade: true, NodeName: "cp-1"}, client
}

func run(t *testing.T, phases []workflow.Phase[*Data], d *Data) error {
	t.Helper()
	r := workflow.Runner[*Data]{Phases: phases, Out: d.Out}
	return r.Run(t.Context(), d, workflow.Options{})
}

// TestApplyKeepsKubeProxyOnTheLocalEndpoint: in a cluster made with the node-local API endpoint
// (kube-system/kubeboot-config), upgrade apply renders kube-proxy's kubeconfig for 127.0.0.1 again, not for the
// controlPlaneEndpoint.
func TestApplyKeepsKubeProxyOnTheLocalEndpoint(t *testing.T) {
	c := threeNodes()
	c.controlPlanes = []string{"cp-1"}
	var out bytes.Buffer
	d, client := flowData(t, c, "v1.37.2", &out)
	if err := uploadconfig.UploadKubebootConfig(t.Context(), client, &config.KubebootConfiguration{
		NodeLocalAPIEndpoint: &config.NodeLocalAPIEndpoint{Enabled: true, Port: 7446}}); err != nil {
		t.Fatal(err)
	}
	if err := run(t, ApplyPhases(), d); err != nil {
		t.Fatalf("upgrade apply: %v\n%s", err, out.String())
	}
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(t.Context(), "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["kubeconfig.conf"]; !strings.Contains(got, "server: https://127.0.0.1:7446\n") {
		t.Errorf("kube-proxy's kubeconfig:\n%s\nwant the server https://127.0.0.1:7446", got)
	}
}

func TestApplySingleControlPlane(t *testing.T) {
	c := threeNodes()
	c.controlPlanes = []string{"cp-1"}
	var out bytes.Buffer
	d, client := flowData(t, c, "v1.37.2", &out)
	if err := run(t, ApplyPhases(), d); err != nil {
		t.Fatalf("upgrade apply: %v\n%s", err, out.String())
	}
	cc, err := uploadconfig.ReadClusterConfiguration(t.Context(), client, nil)
	if err != nil || cc.KubernetesVersion != "v1.37.2" {
		t.Errorf("kubeadm-config's kubernetesVersion %q, %v", cc.KubernetesVersion, err)
	}
	if b, _ := d.FS.ReadFile("/etc/kubernetes/tmp/kubeadm-kubelet-config-2026-12-03-20-01-02/config.yaml"); !strings.Contains(string(b), "# old") {
		t.Errorf("kubelet config backup: %q", b)
	}
	if b, _ := d.FS.ReadFile(config.KubeletConfigFile); strings.Contains(string(b), "# old") {
		t.Error("config.yaml was not rewritten")
	}
	ds, err := client.AppsV1().DaemonSets("kube-system").Get(t.Context(), "kube-proxy", metav1.GetOptions{})
	if err != nil || ds.Spec.Template.Spec.Containers[0].Image != "registry.k8s.io/kube-proxy:v1.37.2" {
		t.Errorf("kube-proxy DaemonSet: %v", err)
	}
	dep, err := client.AppsV1().Deployments("kube-system").Get(t.Context(), "coredns", metav1.GetOptions{})
	if err != nil || dep.Spec.Template.Spec.Containers[0].Image != "registry.k8s.io/coredns/coredns:v1.14.6" {
		t.Errorf("CoreDNS Deployment: %v", err)
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Get(t.Context(), "kubeadm:get-nodes", metav1.GetOptions{}); err != nil {
		t.Errorf("bootstrap RBAC: %v", err)
	}
	if _, err := client.RbacV1().Roles("kube-public").Get(t.Context(), "kubeadm:bootstrap-signer-clusterinfo", metav1.GetOptions{}); err != nil {
		t.Errorf("cluster-info RBAC: %v", err)
	}
	for _, line := range []string{"[upgrade/versions] Cluster version: v1.36.3", `[upgrade/staticpods] Component "kube-scheduler" upgraded successfully!`,
		"[addons] Applied essential addon: CoreDNS", "[addons] Applied essential addon: kube-proxy"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
}

// This node's mirror Pod still shows the old kube-apiserver (the kubelet updates it at its next sync of the Pod): the
// addons are upgraded all the same, since this node's manifest, which the control-plane phase saw run, is the new one.
func TestApplySingleControlPlaneStaleOwnMirrorPod(t *testing.T) {
	c := threeNodes()
	c.controlPlanes = []string{"cp-1"}
	var out bytes.Buffer
	d, client := flowData(t, c, "v1.37.2", &out)
	d.Engine.Mirror = d.Engine.Probe.(*fakeKubelet) // runs the new manifests, never updates the mirror Pods
	if err := run(t, ApplyPhases(), d); err != nil {
		t.Fatalf("upgrade apply: %v\n%s", err, out.String())
	}
	p, err := client.CoreV1().Pods("kube-system").Get(t.Context(), "kube-apiserver-cp-1", metav1.GetOptions{})
	if err != nil || p.Spec.Containers[0].Image != "registry.k8s.io/kube-apiserver:v1.36.3" {
		t.Fatalf("the fake's mirror Pod was updated (%v): the test needs a stale one", err)
	}
	ds, _ := client.AppsV1().DaemonSets("kube-system").Get(t.Context(), "kube-proxy", metav1.GetOptions{})
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != "registry.k8s.io/kube-proxy:v1.37.2" {
		t.Errorf("kube-proxy %s, want v1.37.2:\n%s", got, out.String())
	}
	if strings.Contains(out.String(), "Skipping upgrade of addons") {
		t.Errorf("the addons were skipped for this node's own mirror Pod:\n%s", out.String())
	}
}

func TestApplyHASkipsAddons(t *testing.T) {
	var out bytes.Buffer
	d, client := flowData(t, threeNodes(), "v1.37.2", &out)
	if err := run(t, ApplyPhases(), d); err != nil {
		t.Fatalf("upgrade apply: %v\n%s", err, out.String())
	}
	want := "[upgrade/addon] Skipping upgrade of addons because control plane instances [kube-apiserver-cp-2 kube-apiserver-cp-3] have not been upgraded"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	ds, _ := client.AppsV1().DaemonSets("kube-system").Get(t.Context(), "kube-proxy", metav1.GetOptions{})
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != "registry.k8s.io/kube-proxy:v1.36.3" {
		t.Errorf("kube-proxy upgraded to %s before every API server", got)
	}
}

// TestApplyRefusals: each refusal happens in preflight, before any file or object changes.
func TestApplyRefusals(t *testing.T) {
	notReady := threeNodes()
	notReady.notReady = map[string]bool{"cp-3": true}
	noConfig := threeNodes()
	noConfig.noConfig = true
	sick := etcdMembers{healthyEtcd()[0], {Member: etcd.Member{ID: 2, Name: "cp-2", PeerURLs: []string{"https://10.1.2.4:2380"}}, Problem: "context deadline exceeded"}}
	tests := []struct {
		name     string
		cluster  fakeCluster
		target   string
		etcd     etcdMembers
		force    bool
		want     string
		wantIs   error
		wantHint string
	}{
		{name: "two minors ahead", cluster: threeNodes(), target: "v1.38.0", wantIs: ErrVersionPolicy,
			want: "the version policy refuses this upgrade: the upgrade version policy:\n- Specified version to upgrade to \"v1.38.0\" is too high; kubeboot can upgrade only 1 minor version at a time\n" +
				"- Specified version to upgrade to \"v1.38.0\" is at least one minor release higher than the kubeboot minor release (38 > 37). Such an upgrade is not supported"},
		{name: "two minors ahead, forced", cluster: threeNodes(), target: "v1.38.0", force: true, wantIs: ErrVersionPolicy,
			want: "the version policy refuses this upgrade: the upgrade version policy:\n- Specified version to upgrade to \"v1.38.0\" is too high; kubeboot can upgrade only 1 minor version at a time\n" +
				"- Specified version to upgrade to \"v1.38.0\" is at least one minor release higher than the kubeboot minor release (38 > 37). Such an upgrade is not supported"},
		{name: "a patch the release table does not know", cluster: threeNodes(), target: "v1.37.9", wantIs: ErrVersionPolicy,
			want: "the version policy refuses this upgrade: the upgrade version policy (can be skipped with --force):\n" +
				"- Specified version to upgrade to \"v1.37.9\" is higher than the kubeboot version \"v1.37.2\". Upgrade kubeboot first using the tool you used to install kubeboot"},
		{name: "a control-plane node not Ready", cluster: notReady, target: "v1.37.2", wantIs: ErrNotReady,
			want: "the cluster is not healthy enough to upgrade: the cluster did not pass the upgrade checks:\n- [ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [cp-3]"},
		{name: "an unhealthy etcd member", cluster: threeNodes(), target: "v1.37.2", etcd: sick, wantIs: ErrNotReady,
			want: "the cluster is not healthy enough to upgrade: the cluster did not pass the upgrade checks:\n- [EtcdMembersHealthy]: etcd member cp-2 (https://10.1.2.4:2380) is not healthy: context deadline exceeded"},
		{name: "kubeadm-config missing", cluster: noConfig, target: "v1.37.2", wantIs: ErrNoKubeadmConfig,
			want:     `[upgrade] FATAL: the ConfigMap "kubeadm-config" in the "kube-system" namespace was not found`,
			wantHint: "Use 'kubeboot init phase upload-config kubeadm --config your-config-file' to re-upload it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			d, client := flowData(t, tt.cluster, tt.target, &out)
			d.Force = tt.force
			if tt.etcd != nil {
				d.Etcd = tt.etcd
			}
			before := manifestsOf(t, d.FS)
			err := run(t, ApplyPhases(), d)
			var pe *workflow.PhaseError
			if !errors.As(err, &pe) || pe.Phase != "preflight" {
				t.Fatalf("error %v, want one of phase preflight", err)
			}
			if pe.Err.Error() != tt.want || !errors.Is(err, tt.wantIs) {
				t.Errorf("error\n%s\nwant\n%s", pe.Err, tt.want)
			}
			if tt.wantHint != "" && !strings.Contains(hint.Of(err), tt.wantHint) {
				t.Errorf("hint %q lacks %q", hint.Of(err), tt.wantHint)
			}
			for _, a := range client.Actions() {
				if a.GetVerb() != "get" && a.GetVerb() != "list" {
					t.Errorf("preflight wrote to the API: %s %s", a.GetVerb(), a.GetResource().Resource)
				}
			}
			if d := manifestsOf(t, d.FS); !equalManifests(before, d) {
				t.Error("preflight changed a manifest")
			}
			if d.FS.Exists("/etc/kubernetes/tmp") {
				t.Error("preflight made /etc/kubernetes/tmp")
			}
		})
	}
}

func TestNodeWorker(t *testing.T) {
	var out bytes.Buffer
	fsys := nodefs.FS{Root: t.TempDir()}
	if err := fsys.WriteFile(config.KubeletConfigFile, []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n# old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := threeNodes()
	c.version = "v1.37.2" // upgrade apply has run
	c.kubelets = map[string]string{"w-1": "v1.37.2"}
	client := c.client(t)
	d := &Data{Out: &out, FS: fsys, Client: client, Engine: &Engine{FS: fsys, Out: &out}, NodeFlow: true, NodeName: "w-1", EtcdUpgrade: true,
		Now: func() time.Time { return time.Date(2026, 12, 3, 20, 1, 2, 0, time.UTC) }}
	if err := run(t, NodePhases(), d); err != nil {
		t.Fatalf("upgrade node: %v\n%s", err, out.String())
	}
	for _, line := range []string{"[upgrade/preflight] Skipping prepull. Not a control plane node.",
		"[upgrade/control-plane] Skipping phase. Not a control plane node.",
		"[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!",
		"[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.",
		"[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node."} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
	if !fsys.Exists("/etc/kubernetes/tmp/kubeadm-kubelet-config-2026-12-03-20-01-02/config.yaml") {
		t.Error("no kubelet config backup")
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Errorf("a worker's upgrade node wrote to the API: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestNodeControlPlaneAfterApply(t *testing.T) {
	c := threeNodes()
	c.version = "v1.37.2" // kubeadm-config after cp-1's upgrade apply
	c.apiserver = map[string]string{"cp-1": "v1.36.3", "cp-2": "v1.37.2", "cp-3": "v1.37.2"}
	var out bytes.Buffer
	d, client := flowData(t, c, "", &out)
	d.NodeFlow = true
	if err := run(t, NodePhases(), d); err != nil {
		t.Fatalf("upgrade node: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `[upgrade/staticpods] Component "kube-apiserver" upgraded successfully!`) {
		t.Errorf("output:\n%s", out.String())
	}
	// the last control plane: the addons follow
	ds, _ := client.AppsV1().DaemonSets("kube-system").Get(t.Context(), "kube-proxy", metav1.GetOptions{})
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != "registry.k8s.io/kube-proxy:v1.37.2" {
		t.Errorf("kube-proxy %s after the last control plane's upgrade node", got)
	}
	if wrote(client, "configmaps", "kubeadm-config") {
		t.Error("upgrade node wrote kubeadm-config")
	}
}

func TestNodeBeforeApply(t *testing.T) {
	tests := []struct {
		name    string
		cluster func() fakeCluster
		files   string // the version this node's manifests are at
		want    string
	}{
		{name: "the kubelet was upgraded, kubeadm-config was not", files: "v1.36.3", cluster: func() fakeCluster {
			c := threeNodes()
			c.kubelets = map[string]string{"cp-1": "v1.37.2"}
			return c
		}, want: "upgrade node before upgrade apply: this node's kubelet is v1.37.2, newer than the cluster's kubernetesVersion v1.36.3 in kube-system/kubeadm-config"},
		{name: "this node runs a newer control plane than kubeadm-config says", files: "v1.37.2", cluster: threeNodes,
			want: "upgrade node before upgrade apply: this node's kube-apiserver runs v1.37.2, newer than the cluster's kubernetesVersion v1.36.3 in kube-system/kubeadm-config: `upgrade node` would downgrade it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			d, client := flowData(t, tt.cluster(), "", &out)
			rendered, err := Render(d.FS, targetOf(testInit(t, tt.files)), Components)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rendered {
				if err := d.FS.WriteFile(staticpod.Path(r.Component), r.YAML, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := manifestsOf(t, d.FS)
			d.NodeFlow = true
			err = run(t, NodePhases(), d)
			if err == nil || !errors.Is(err, ErrBeforeApply) || !strings.HasSuffix(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant %s", err, tt.want)
			}
			if hint.Of(err) == "" {
				t.Error("no hint")
			}
			if !equalManifests(before, manifestsOf(t, d.FS)) {
				t.Error("a refused upgrade node changed a manifest")
			}
			for _, a := range client.Actions() {
				if a.GetVerb() != "get" && a.GetVerb() != "list" {
					t.Errorf("a refused upgrade node wrote to the API: %s", a.GetVerb())
				}
			}
		})
	}
}

func wrote(client *fake.Clientset, resource, name string) bool {
	for _, a := range client.Actions() {
		if a.GetResource().Resource != resource {
			continue
		}
		switch a := a.(type) {
		case k8stesting.CreateAction:
			if o, ok := a.GetObject().(metav1.Object); ok && o.GetName() == name {
				return true
			}
		case k8stesting.UpdateAction:
			if o, ok := a.GetObject().(metav1.Object); ok && o.GetName() == name {
				return true
			}
		}
	}
	return false
}

func equalManifests(a, b map[string][]byte) bool {
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestNodeNothingToUpgrade: kubeadm-config holds the version this control plane runs (no `upgrade apply` yet, or
// a rerun): nothing changes, and the output says what to run to upgrade.
func TestNodeNothingToUpgrade(t *testing.T) {
	var out bytes.Buffer
	d, _ := flowData(t, threeNodes(), "", &out)
	d.NodeFlow = true
	before := manifestsOf(t, d.FS)
	if err := run(t, NodePhases(), d); err != nil {
		t.Fatalf("upgrade node: %v\n%s", err, out.String())
	}
	if !equalManifests(before, manifestsOf(t, d.FS)) {
		t.Error("a manifest changed")
	}
	want := "[upgrade/preflight] This node's control plane runs v1.36.3 already, the version kube-system/kubeadm-config holds; " +
		"to upgrade the cluster to a newer one, run `kubeboot upgrade apply VERSION` on one control-plane node first"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}
