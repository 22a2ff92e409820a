package addons

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
)

const testEndpoint = "https://10.0.0.1:6443"

func TestKubeProxyObjectsGolden(t *testing.T) {
	lab := testInit()
	lab.Proxy.Conntrack.MaxPerCore = ptr.To[int32](0)
	lab.Cluster.ImageRepository = "lab.local:5000"
	for _, tc := range []struct {
		name, golden, endpoint string
		cfg                    *config.Init
		opts                   []KubeProxyOption
	}{
		{name: "kubeadm defaults", golden: "kube-proxy.yaml", endpoint: testEndpoint, cfg: testInit(), opts: []KubeProxyOption{WithGeneratedConfig()}},
		{name: "lab: user config, proxies in the environment", golden: "kube-proxy-lab.yaml", endpoint: "https://cp.lab.local:6443", cfg: lab,
			opts: []KubeProxyOption{WithProxyEnvironment([]string{"PATH=/usr/bin", "https_proxy=http://10.1.0.1:3128", "NO_PROXY=10.0.0.0/8"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := KubeProxyObjects(tc.cfg.ClusterPart(), tc.endpoint, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, objs)
		})
	}
}

func TestKubeProxyConfigRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxPerCore *int32
		wantLine   string
	}{
		// Namespace nodes cannot write the machine-wide nf_conntrack_max: 0 tells kube-proxy to leave it alone and
		// must survive, not turn into "unset" (which kube-proxy defaults to 32768).
		{name: "maxPerCore 0 kept", maxPerCore: ptr.To[int32](0), wantLine: "  maxPerCore: 0\n"},
		{name: "maxPerCore set", maxPerCore: ptr.To[int32](65536), wantLine: "  maxPerCore: 65536\n"},
		{name: "maxPerCore unset stays unset", wantLine: "  maxPerCore: null\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testInit()
			cfg.Proxy.Conntrack.MaxPerCore = tc.maxPerCore
			cfg.Proxy.Mode = "iptables"
			cfg.Proxy.FeatureGates = map[string]bool{"SomeGate": true}
			objs, err := KubeProxyObjects(cfg.ClusterPart(), testEndpoint)
			if err != nil {
				t.Fatal(err)
			}
			conf := find[*corev1.ConfigMap](t, objs).Data["config.conf"]
			if !strings.Contains(conf, tc.wantLine) {
				t.Errorf("config.conf lacks %q:\n%s", tc.wantLine, conf)
			}

			var got kubeproxyv1alpha1.KubeProxyConfiguration
			if err := yaml.UnmarshalStrict([]byte(conf), &got); err != nil {
				t.Fatalf("config.conf does not decode strictly: %v\n%s", err, conf)
			}
			want := cfg.Proxy.DeepCopy()
			want.APIVersion, want.Kind = "kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"
			if diff := cmp.Diff(want, &got); diff != "" {
				t.Errorf("config.conf round trip (-want +got):\n%s", diff)
			}
			if (got.Conntrack.MaxPerCore == nil) != (tc.maxPerCore == nil) ||
				(tc.maxPerCore != nil && *got.Conntrack.MaxPerCore != *tc.maxPerCore) {
				t.Errorf("conntrack.maxPerCore = %v after the round trip, want %v", got.Conntrack.MaxPerCore, tc.maxPerCore)
			}
			if cfg.Proxy.APIVersion != "" {
				t.Errorf("the caller's configuration was modified: apiVersion %q", cfg.Proxy.APIVersion)
			}
		})
	}
}

func TestKubeProxyObjectsFacts(t *testing.T) {
	cfg := testInit()
	cfg.Cluster.KubernetesVersion = "v1.37.2+lab.1"
	objs, err := KubeProxyObjects(cfg.ClusterPart(), testEndpoint, WithGeneratedConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 6 {
		t.Errorf("got %d objects, want 6", len(objs))
	}

	cm := find[*corev1.ConfigMap](t, objs)
	if cm.Namespace != "kube-system" || cm.Name != "kube-proxy" || cm.Labels["app"] != "kube-proxy" {
		t.Errorf("ConfigMap %s/%s labels %v", cm.Namespace, cm.Name, cm.Labels)
	}
	sum := sha256.Sum256([]byte(cm.Data["config.conf"] + cm.Data["kubeconfig.conf"]))
	if want := fmt.Sprintf("sha256:%x", sum); cm.Annotations["kubeadm.kubernetes.io/component-config.hash"] != want {
		t.Errorf("hash annotation = %q, want %q", cm.Annotations["kubeadm.kubernetes.io/component-config.hash"], want)
	}

	kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig.conf"]))
	if err != nil {
		t.Fatalf("kubeconfig.conf: %v", err)
	}
	cur := kc.Contexts[kc.CurrentContext]
	if cur == nil {
		t.Fatalf("kubeconfig.conf has no current context %q", kc.CurrentContext)
	}
	cluster, user := kc.Clusters[cur.Cluster], kc.AuthInfos[cur.AuthInfo]
	if cluster == nil || user == nil {
		t.Fatalf("kubeconfig.conf context %q points at a missing cluster or user", kc.CurrentContext)
	}
	if cluster.Server != testEndpoint || cluster.CertificateAuthority != "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" {
		t.Errorf("kubeconfig cluster = %s, CA %s", cluster.Server, cluster.CertificateAuthority)
	}
	if user.TokenFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("kubeconfig tokenFile = %s", user.TokenFile)
	}

	ds := find[*appsv1.DaemonSet](t, objs)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "registry.k8s.io/kube-proxy:v1.37.2_lab.1" {
		t.Errorf("image = %s", c.Image)
	}
	wantCmd := []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"}
	if diff := cmp.Diff(wantCmd, c.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env = %+v", c.Env)
	}
	if c.SecurityContext == nil || !ptr.Deref(c.SecurityContext.Privileged, false) || !pod.HostNetwork {
		t.Errorf("want privileged and hostNetwork: %+v, %v", c.SecurityContext, pod.HostNetwork)
	}
	if diff := cmp.Diff([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, pod.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	if pod.PriorityClassName != "system-node-critical" || pod.NodeSelector["kubernetes.io/os"] != "linux" ||
		ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("priorityClassName %q nodeSelector %v updateStrategy %q", pod.PriorityClassName, pod.NodeSelector, ds.Spec.UpdateStrategy.Type)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for _, v := range pod.Volumes {
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
	}
	if diff := cmp.Diff(map[string]string{"kube-proxy": "/var/lib/kube-proxy", "xtables-lock": "/run/xtables.lock", "lib-modules": "/lib/modules"}, mounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}

	crb := find[*rbacv1.ClusterRoleBinding](t, objs)
	if crb.Name != "kubeadm:node-proxier" || crb.RoleRef.Name != "system:node-proxier" ||
		crb.Subjects[0].Kind != "ServiceAccount" || crb.Subjects[0].Name != "kube-proxy" {
		t.Errorf("ClusterRoleBinding %+v", crb)
	}
	role := find[*rbacv1.Role](t, objs)
	if diff := cmp.Diff([]rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"kube-proxy"}}}, role.Rules); diff != "" {
		t.Errorf("Role rules (-want +got):\n%s", diff)
	}
	rb := find[*rbacv1.RoleBinding](t, objs)
	if diff := cmp.Diff([]rbacv1.Subject{{Kind: "Group", Name: "system:bootstrappers:kubeadm:default-node-token"}}, rb.Subjects); diff != "" {
		t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
	}
}

func TestKubeProxyEnv(t *testing.T) {
	objs, err := KubeProxyObjects(testInit().ClusterPart(), testEndpoint, WithProxyEnvironment([]string{
		"PATH=/usr/bin", "no_proxy=localhost", "HTTP_PROXY=http://a:3128", "EMPTY_PROXY=", "broken", "HTTP_PROXY=http://b:3128",
	}))
	if err != nil {
		t.Fatal(err)
	}
	env := find[*appsv1.DaemonSet](t, objs).Spec.Template.Spec.Containers[0].Env
	var got []string
	for _, e := range env[1:] {
		got = append(got, e.Name+"="+e.Value)
	}
	if diff := cmp.Diff([]string{"HTTP_PROXY=http://b:3128", "no_proxy=localhost"}, got); diff != "" {
		t.Errorf("proxy env (-want +got):\n%s", diff)
	}
}

func TestKubeProxyObjectsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, endpoint string
		mutate         func(*config.Init)
		wantErr        string
	}{
		{name: "no proxy config", endpoint: testEndpoint, mutate: func(c *config.Init) { c.Proxy = nil },
			wantErr: "no KubeProxyConfiguration: the configuration must be defaulted before rendering the kube-proxy addon"},
		{name: "no version", endpoint: testEndpoint, mutate: func(c *config.Init) { c.Cluster.KubernetesVersion = "" },
			wantErr: "imageRepository or kubernetesVersion is empty: the configuration must be defaulted before rendering the kube-proxy addon"},
		{name: "host:port without scheme", endpoint: "10.0.0.1:6443",
			wantErr: `kube-proxy API server endpoint "10.0.0.1:6443": want an https URL such as https://10.0.0.1:6443`},
		{name: "plain http", endpoint: "http://10.0.0.1:6443",
			wantErr: `kube-proxy API server endpoint "http://10.0.0.1:6443": want an https URL such as https://10.0.0.1:6443`},
		{name: "empty", endpoint: "",
			wantErr: `kube-proxy API server endpoint "": want an https URL such as https://10.0.0.1:6443`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testInit()
			if tc.mutate != nil {
				tc.mutate(cfg)
			}
			_, err := KubeProxyObjects(cfg.ClusterPart(), tc.endpoint)
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %s", err, tc.wantErr)
			}
		})
	}
}

func TestEnsureKubeProxy(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset()
	if err := EnsureKubeProxy(ctx, client, testInit().ClusterPart(), testEndpoint); err != nil {
		t.Fatal(err)
	}
	for _, get := range []func() error{
		func() error {
			_, err := client.CoreV1().ServiceAccounts("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().ClusterRoleBindings().Get(ctx, "kubeadm:node-proxier", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().Roles("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().RoleBindings("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); err != nil {
			t.Error(err)
		}
	}

	// Unlike CoreDNS's Corefile, kubeadm rewrites kube-proxy's ConfigMap from the configuration on every apply.
	cfg := testInit()
	cfg.Proxy.Conntrack.MaxPerCore = ptr.To[int32](0)
	if err := EnsureKubeProxy(ctx, client, cfg.ClusterPart(), testEndpoint); err != nil {
		t.Fatal(err)
	}
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["config.conf"], "  maxPerCore: 0\n") {
		t.Errorf("ConfigMap not updated:\n%s", cm.Data["config.conf"])
	}
}
