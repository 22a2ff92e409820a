// Package uploadconfig stores the cluster-wide configuration in kube-system where joining nodes and
// `upgrade` read it: kubeadm-config (the ClusterConfiguration) and kubelet-config (the KubeletConfiguration),
// each with a Role and RoleBinding that let bootstrap tokens and nodes get it.
package uploadconfig

import (
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
)

// Names and keys kubeadm uses; join, upgrade and kubeadm itself read exactly these.
const (
	KubeadmConfigMap    = "kubeadm-config"
	KubeadmConfigKey    = "ClusterConfiguration"
	KubeadmConfigRBAC   = "kubeadm:nodes-kubeadm-config"
	KubeletConfigMap    = "kubelet-config"
	KubeletConfigKey    = "kubelet"
	KubeletConfigRBAC   = "kubeadm:kubelet-config"
	bootstrapTokenGroup = "system:bootstrappers:kubeadm:default-node-token"
	nodesGroup          = "system:nodes"
)

// ClusterConfigurationYAML renders cluster as kubeadm stores it: a kubeadm.k8s.io/v1beta4 ClusterConfiguration.
func ClusterConfigurationYAML(cluster config.ClusterConfiguration) ([]byte, error) {
	cluster.TypeMeta = metav1.TypeMeta{APIVersion: config.V1beta4, Kind: config.KindCluster}
	b, err := yaml.Marshal(cluster)
	if err != nil {
		return nil, fmt.Errorf("encoding the ClusterConfiguration: %w", err)
	}
	return b, nil
}

// KubeletConfigurationYAML renders the cluster-wide kubelet configuration as a kubelet.config.k8s.io/v1beta1
// KubeletConfiguration.
func KubeletConfigurationYAML(kc *kubeletv1beta1.KubeletConfiguration) ([]byte, error) {
	if kc == nil {
		return nil, errors.New("encoding the KubeletConfiguration: there is none (the configuration was not defaulted)")
	}
	out := kc.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: config.KubeletGroupVer, Kind: config.KindKubelet}
	b, err := yaml.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding the KubeletConfiguration: %w", err)
	}
	return b, nil
}

// KubeadmConfigObjects are kube-system/kubeadm-config and the Role and RoleBinding kubeadm:nodes-kubeadm-config.
func KubeadmConfigObjects(cluster config.ClusterConfiguration) ([]runtime.Object, error) {
	b, err := ClusterConfigurationYAML(cluster)
	if err != nil {
		return nil, err
	}
	return readableConfigMap(KubeadmConfigMap, KubeadmConfigKey, b, KubeadmConfigRBAC, bootstrapTokenGroup, nodesGroup), nil
}

// KubeletConfigObjects are kube-system/kubelet-config and the Role and RoleBinding kubeadm:kubelet-config.
func KubeletConfigObjects(kc *kubeletv1beta1.KubeletConfiguration) ([]runtime.Object, error) {
	b, err := KubeletConfigurationYAML(kc)
	if err != nil {
		return nil, err
	}
	// kubeadm lists system:nodes first here and the bootstrappers first for kubeadm-config; kept as is.
	return readableConfigMap(KubeletConfigMap, KubeletConfigKey, b, KubeletConfigRBAC, nodesGroup, bootstrapTokenGroup), nil
}

// UploadKubeadmConfig writes KubeadmConfigObjects (init phase upload-config/kubeadm).
func UploadKubeadmConfig(ctx context.Context, c kubernetes.Interface, cluster config.ClusterConfiguration) error {
	objs, err := KubeadmConfigObjects(cluster)
	if err != nil {
		return err
	}
	return apply.Objects(ctx, c, objs...)
}

// UploadKubeletConfig writes KubeletConfigObjects (init phase upload-config/kubelet).
func UploadKubeletConfig(ctx context.Context, c kubernetes.Interface, kc *kubeletv1beta1.KubeletConfiguration) error {
	objs, err := KubeletConfigObjects(kc)
	if err != nil {
		return err
	}
	return apply.Objects(ctx, c, objs...)
}

// readableConfigMap is a kube-system ConfigMap holding one document, a Role allowing get on that ConfigMap
// only, and a RoleBinding granting the Role to groups.
func readableConfigMap(name, key string, doc []byte, rbacName string, groups ...string) []runtime.Object {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: name},
		Data:       map[string]string{key: string(doc)},
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: rbacName},
		Rules: []rbacv1.PolicyRule{{
			Verbs:         []string{"get"},
			APIGroups:     []string{""},
			Resources:     []string{"configmaps"},
			ResourceNames: []string{name},
		}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: rbacName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: rbacName},
	}
	for _, g := range groups {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, Name: g})
	}
	return []runtime.Object{cm, role, binding}
}

// ReadClusterConfiguration reads the ClusterConfiguration back from kube-system/kubeadm-config
// (ParseClusterConfiguration), with the defaults kubeadm's scheme gives unset fields.
func ReadClusterConfiguration(ctx context.Context, client kubernetes.Interface, warn io.Writer) (config.ClusterConfiguration, error) {
	object := "kube-system/" + KubeadmConfigMap
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, KubeadmConfigMap, metav1.GetOptions{})
	if err != nil {
		return config.ClusterConfiguration{}, fmt.Errorf("read %s: %w", object, err)
	}
	doc, ok := cm.Data[KubeadmConfigKey]
	if !ok {
		return config.ClusterConfiguration{}, fmt.Errorf("%s has no key %s", object, KubeadmConfigKey)
	}
	cc, err := ParseClusterConfiguration(doc, warn)
	if err != nil {
		return cc, err
	}
	config.SetClusterStaticDefaults(&cc)
	return cc, nil
}

// ParseClusterConfiguration decodes the ClusterConfiguration key of kube-system/kubeadm-config. A document this
// kubeboot cannot decode strictly (a newer kubeadm's field) is read for the fields it knows, with a warning to
// warn, so that a node can still join a cluster whose configuration carries more than it knows.
func ParseClusterConfiguration(doc string, warn io.Writer) (config.ClusterConfiguration, error) {
	var cc config.ClusterConfiguration
	object := "kube-system/" + KubeadmConfigMap
	docs, err := config.Load([]byte(doc))
	switch {
	case err == nil && docs.Cluster != nil:
		cc = *docs.Cluster
	case err == nil:
		return cc, fmt.Errorf("%s: no %s in key %s", object, config.KindCluster, KubeadmConfigKey)
	default:
		if lerr := yaml.Unmarshal([]byte(doc), &cc); lerr != nil || cc.Kind != config.KindCluster {
			return cc, fmt.Errorf("%s: %w", object, err)
		}
		if warn != nil {
			fmt.Fprintf(warn, "  WARNING: %s: %v; reading the fields kubeboot knows\n", object, err)
		}
	}
	if cc.ImageRepository == "" {
		cc.ImageRepository = config.DefaultImageRepository
	}
	if cc.ClusterName == "" {
		cc.ClusterName = config.DefaultClusterName
	}
	return cc, nil
}
