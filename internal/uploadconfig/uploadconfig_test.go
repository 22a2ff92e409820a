package uploadconfig

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
)

func clusterConfig() config.ClusterConfiguration {
	return config.ClusterConfiguration{
		Etcd:                        config.Etcd{Local: &config.LocalEtcd{DataDir: "/var/lib/etcd"}},
		Networking:                  config.Networking{ServiceSubnet: "10.96.0.0/12", PodSubnet: "10.244.0.0/16", DNSDomain: "cluster.local"},
		KubernetesVersion:           "v1.37.2",
		ControlPlaneEndpoint:        "10.0.0.10:6443",
		APIServer:                   config.APIServer{CertSANs: []string{"cp.example"}},
		CertificatesDir:             "/etc/kubernetes/pki",
		ImageRepository:             "registry.k8s.io",
		ClusterName:                 "kubernetes",
		EncryptionAlgorithm:         config.EncryptionAlgorithmRSA2048,
		CertificateValidityPeriod:   &metav1.Duration{Duration: 8760 * time.Hour},
		CACertificateValidityPeriod: &metav1.Duration{Duration: 87600 * time.Hour},
	}
}

func kubeletConfig() *kubeletv1beta1.KubeletConfiguration {
	return &kubeletv1beta1.KubeletConfiguration{
		CgroupDriver:  "cgroupfs",
		ClusterDNS:    []string{"10.96.0.10"},
		ClusterDomain: "cluster.local",
		StaticPodPath: "/etc/kubernetes/manifests",
	}
}

func TestClusterConfigurationYAMLParsesBack(t *testing.T) {
	in := clusterConfig()
	b, err := ClusterConfigurationYAML(in)
	if err != nil {
		t.Fatal(err)
	}
	if in.APIVersion != "" || in.Kind != "" {
		t.Errorf("the caller's configuration was modified")
	}
	var back config.ClusterConfiguration
	if err := yaml.UnmarshalStrict(b, &back); err != nil {
		t.Fatalf("stored YAML does not decode strictly: %v\n%s", err, b)
	}
	want := clusterConfig()
	want.TypeMeta = metav1.TypeMeta{APIVersion: "kubeadm.k8s.io/v1beta4", Kind: "ClusterConfiguration"}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip:\n%#v\nwant\n%#v", back, want)
	}
	for _, noise := range []string{"creationTimestamp", "status", "null"} {
		if strings.Contains(string(b), noise) {
			t.Errorf("YAML contains %q:\n%s", noise, b)
		}
	}
}

func TestKubeletConfigurationYAML(t *testing.T) {
	in := kubeletConfig()
	b, err := KubeletConfigurationYAML(in)
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != "" {
		t.Errorf("the caller's configuration was modified")
	}
	var back kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(b, &back); err != nil {
		t.Fatalf("stored YAML does not decode strictly: %v\n%s", err, b)
	}
	if back.APIVersion != "kubelet.config.k8s.io/v1beta1" || back.Kind != "KubeletConfiguration" ||
		back.CgroupDriver != "cgroupfs" || !reflect.DeepEqual(back.ClusterDNS, []string{"10.96.0.10"}) {
		t.Errorf("round trip lost fields: %+v", back)
	}
	if _, err := KubeletConfigurationYAML(nil); err == nil || err.Error() != "encoding the KubeletConfiguration: there is none (the configuration was not defaulted)" {
		t.Errorf("nil config: %v", err)
	}
}

func TestUploadKubeadmConfig(t *testing.T) {
	c := fake.NewClientset()
	if err := UploadKubeadmConfig(t.Context(), c, clusterConfig()); err != nil {
		t.Fatal(err)
	}
	cm, err := c.CoreV1().ConfigMaps("kube-system").Get(t.Context(), "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ClusterConfigurationYAML(clusterConfig())
	if len(cm.Data) != 1 || cm.Data["ClusterConfiguration"] != string(want) {
		t.Errorf("kubeadm-config data = %v", cm.Data)
	}
	checkRBAC(t, c, "kubeadm:nodes-kubeadm-config", "kubeadm-config",
		[]rbacv1.Subject{{Kind: "Group", Name: "system:bootstrappers:kubeadm:default-node-token"}, {Kind: "Group", Name: "system:nodes"}})
}

func TestUploadKubeletConfig(t *testing.T) {
	c := fake.NewClientset()
	if err := UploadKubeletConfig(t.Context(), c, kubeletConfig()); err != nil {
		t.Fatal(err)
	}
	cm, err := c.CoreV1().ConfigMaps("kube-system").Get(t.Context(), "kubelet-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := KubeletConfigurationYAML(kubeletConfig())
	if len(cm.Data) != 1 || cm.Data["kubelet"] != string(want) {
		t.Errorf("kubelet-config data = %v", cm.Data)
	}
	checkRBAC(t, c, "kubeadm:kubelet-config", "kubelet-config",
		[]rbacv1.Subject{{Kind: "Group", Name: "system:nodes"}, {Kind: "Group", Name: "system:bootstrappers:kubeadm:default-node-token"}})
}

func checkRBAC(t *testing.T, c *fake.Clientset, name, configMap string, subjects []rbacv1.Subject) {
	t.Helper()
	role, err := c.RbacV1().Roles("kube-system").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRules := []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{configMap}}}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("Role %s rules = %+v", name, role.Rules)
	}
	rb, err := c.RbacV1().RoleBindings("kube-system").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name}) || !reflect.DeepEqual(rb.Subjects, subjects) {
		t.Errorf("RoleBinding %s = %+v %+v\nwant subjects %+v", name, rb.RoleRef, rb.Subjects, subjects)
	}
}

func TestUploadReplacesStoredConfig(t *testing.T) {
	c := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config", ResourceVersion: "12"},
		Data:       map[string]string{"ClusterConfiguration": "kubernetesVersion: v1.33.0\n"},
	})
	cfg := clusterConfig()
	if err := UploadKubeadmConfig(t.Context(), c, cfg); err != nil {
		t.Fatal(err)
	}
	cm, err := c.CoreV1().ConfigMaps("kube-system").Get(t.Context(), "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["ClusterConfiguration"], "kubernetesVersion: v1.37.2") {
		t.Errorf("stored config not replaced: %s", cm.Data["ClusterConfiguration"])
	}
}

func TestUploadAPIErrors(t *testing.T) {
	t.Run("transient 500 then success", func(t *testing.T) {
		c := fake.NewClientset()
		failed := false
		c.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			if !failed {
				failed = true
				return true, nil, apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
			}
			return false, nil, nil
		})
		if err := UploadKubeletConfig(t.Context(), c, kubeletConfig()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().ConfigMaps("kube-system").Get(t.Context(), "kubelet-config", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		c := fake.NewClientset()
		c.PrependReactor("create", "roles", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "roles"}, "kubeadm:nodes-kubeadm-config", errors.New("no"))
		})
		err := UploadKubeadmConfig(t.Context(), c, clusterConfig())
		want := `apply Role kube-system/kubeadm:nodes-kubeadm-config: create: roles.rbac.authorization.k8s.io "kubeadm:nodes-kubeadm-config" is forbidden: no`
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		c := fake.NewClientset()
		c.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewServiceUnavailable("apiserver shutting down")
		})
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		err := UploadKubeadmConfig(ctx, c, clusterConfig())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want a deadline", err)
		}
		// One failure per object, all three reported.
		for _, what := range []string{"ConfigMap kube-system/kubeadm-config", "Role kube-system/kubeadm:nodes-kubeadm-config", "RoleBinding kube-system/kubeadm:nodes-kubeadm-config"} {
			if !strings.Contains(err.Error(), "apply "+what+": gave up after") {
				t.Errorf("error does not report %s: %v", what, err)
			}
		}
	})
}
