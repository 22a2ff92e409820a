package upgrade

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
)

// fakeCluster describes a cluster for the fake clientset.
type fakeCluster struct {
	version       string // kubeadm-config's kubernetesVersion
	controlPlanes []string
	workers       []string
	// apiserver overrides the kube-apiserver version of some control-plane nodes (default: version).
	apiserver map[string]string
	kubelets  map[string]string // node: kubelet version (default: version)
	notReady  map[string]bool
	noConfig  bool
	etcdTag   string
	dnsTag    string
}

func threeNodes() fakeCluster {
	return fakeCluster{version: "v1.36.3", controlPlanes: []string{"cp-1", "cp-2", "cp-3"}, workers: []string{"w-1"},
		etcdTag: "3.6.8-0", dnsTag: "v1.14.2"}
}

func (f fakeCluster) objects(t *testing.T) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	if !f.noConfig {
		cc := testInit(t, f.version).Cluster
		doc, err := uploadconfig.ClusterConfigurationYAML(cc)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, configMap(uploadconfig.KubeadmConfigMap, uploadconfig.KubeadmConfigKey, string(doc)))
	}
	objs = append(objs,
		configMap(uploadconfig.KubeletConfigMap, uploadconfig.KubeletConfigKey, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"),
		configMap("kube-proxy", "config.conf", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"))
	node := func(name string, cp bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if cp {
			n.Labels["node-role.kubernetes.io/control-plane"] = ""
		}
		n.Status.NodeInfo.KubeletVersion = or(f.kubelets[name], f.version)
		status := corev1.ConditionTrue
		if f.notReady[name] {
			status = corev1.ConditionFalse
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
		return n
	}
	for _, n := range f.controlPlanes {
		objs = append(objs, node(n, true))
		for _, c := range Components {
			image := "registry.k8s.io/" + c + ":" + or(f.apiserver[n], f.version)
			if c == staticpod.EtcdName {
				image = "registry.k8s.io/etcd:" + f.etcdTag
			}
			objs = append(objs, mirrorPod(c, n, image))
		}
	}
	for _, n := range f.workers {
		objs = append(objs, node(n, false))
	}
	objs = append(objs,
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"},
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:" + f.version}}}}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "coredns", Image: "registry.k8s.io/coredns/coredns:" + f.dnsTag}}}}}},
	)
	return objs
}

func (f fakeCluster) client(t *testing.T) *fake.Clientset {
	return fake.NewClientset(f.objects(t)...)
}

func mirrorPod(component, node, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: component + "-" + node, Namespace: "kube-system", Labels: staticpod.Labels(component),
			Annotations: map[string]string{ConfigHashAnnotation: "hash-" + image}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: component, Image: image}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func configMap(name, key, value string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"}, Data: map[string]string{key: value}}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var _ = config.DefaultCRISocket
