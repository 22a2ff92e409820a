package addons

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/patches"
)

// Names of the kube-proxy objects, as kubeadm creates them.
const (
	KubeProxyName               = "kube-proxy" // ServiceAccount, Role, RoleBinding, ConfigMap, DaemonSet
	KubeProxyClusterRoleBinding = "kubeadm:node-proxier"
	KubeProxyClusterRole        = "system:node-proxier"
	KubeProxyConfigKey          = "config.conf"
	KubeProxyKubeconfigKey      = "kubeconfig.conf"

	// ComponentConfigHashAnnotation marks a component ConfigMap kubeadm generated itself (not user-supplied);
	// kubeadm upgrade regenerates such a config instead of refusing an old API version.
	ComponentConfigHashAnnotation = "kubeadm.kubernetes.io/component-config.hash"

	// bootstrappersGroup is the group of kubeadm's default bootstrap tokens: joining nodes read the kube-proxy
	// ConfigMap with such a token.
	bootstrappersGroup = "system:bootstrappers:kubeadm:default-node-token"

	kubeProxyConfigDir = "/var/lib/kube-proxy"
	saTokenDir         = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// KubeProxyOption changes the rendered kube-proxy addon.
type KubeProxyOption func(*kubeProxyOptions)

type kubeProxyOptions struct {
	generated     bool
	environ       []string
	patches       *patches.Set
	reportPatches Patched
}

// WithGeneratedConfig says the KubeProxyConfiguration was not supplied by the user, so the ConfigMap carries
// kubeadm's component-config hash annotation, exactly as kubeadm marks configs it generated.
func WithGeneratedConfig() KubeProxyOption {
	return func(o *kubeProxyOptions) { o.generated = true }
}

// WithProxyEnvironment passes the *_proxy variables of environ (in os.Environ form) to the kube-proxy container,
// as kubeadm does with its own environment.
func WithProxyEnvironment(environ []string) KubeProxyOption {
	return func(o *kubeProxyOptions) { o.environ = environ }
}

// KubeProxyObjects renders the kube-proxy addon in the order it should be applied: ServiceAccount,
// ClusterRoleBinding, Role, RoleBinding, ConfigMap, DaemonSet. controlPlaneEndpoint is the API server URL the
// kube-proxies use ("https://host:port"), normally the cluster's controlPlaneEndpoint.
func KubeProxyObjects(cluster *config.Cluster, controlPlaneEndpoint string, opts ...KubeProxyOption) ([]runtime.Object, error) {
	var o kubeProxyOptions
	for _, opt := range opts {
		opt(&o)
	}
	if cluster.KubeProxy == nil {
		return nil, errors.New("no KubeProxyConfiguration: the configuration must be defaulted before rendering the kube-proxy addon")
	}
	if cluster.ImageRepository == "" || cluster.KubernetesVersion == "" {
		return nil, errors.New("imageRepository or kubernetesVersion is empty: the configuration must be defaulted before rendering the kube-proxy addon")
	}
	if u, err := url.Parse(controlPlaneEndpoint); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kube-proxy API server endpoint %q: want an https URL such as https://10.0.0.1:6443", controlPlaneEndpoint)
	}

	proxyCfg := cluster.KubeProxy.DeepCopy()
	proxyCfg.TypeMeta = metav1.TypeMeta{APIVersion: config.ProxyGroupVer, Kind: config.KindProxy}
	proxyYAML, err := yaml.Marshal(proxyCfg)
	if err != nil {
		return nil, fmt.Errorf("marshal KubeProxyConfiguration: %w", err)
	}
	kubeconfigYAML, err := yaml.Marshal(kubeProxyKubeconfig(controlPlaneEndpoint))
	if err != nil {
		return nil, fmt.Errorf("marshal kube-proxy kubeconfig: %w", err)
	}

	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: systemNamespace},
	}
	crb := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyClusterRoleBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: KubeProxyClusterRole},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Name: KubeProxyName, Namespace: systemNamespace},
		},
	}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: systemNamespace},
		Rules: []rbacv1.PolicyRule{{
			Verbs:         []string{"get"},
			APIGroups:     []string{""},
			Resources:     []string{"configmaps"},
			ResourceNames: []string{KubeProxyName},
		}},
	}
	// kubeadm binds only the bootstrappers group: nodes need the config while joining, kube-proxy
	// itself gets it mounted.
	rb := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: systemNamespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: KubeProxyName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: bootstrappersGroup}},
	}
	cm := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      KubeProxyName,
			Namespace: systemNamespace,
			Labels:    map[string]string{"app": KubeProxyName},
		},
		// kubeadm stores both documents without their final newline.
		Data: map[string]string{
			KubeProxyKubeconfigKey: strings.TrimSuffix(string(kubeconfigYAML), "\n"),
			KubeProxyConfigKey:     strings.TrimSuffix(string(proxyYAML), "\n"),
		},
	}
	if o.generated {
		cm.Annotations = map[string]string{ComponentConfigHashAnnotation: configMapHash(cm.Data)}
	}

	appLabels := map[string]string{"k8s-app": KubeProxyName}
	ds := &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: systemNamespace, Labels: appLabels},
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: appLabels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: appLabels},
				Spec:       kubeProxyPodSpec(cluster.KubernetesImage(config.ImageProxy), proxyEnv(o.environ)),
			},
		},
	}

	objs := []runtime.Object{sa, crb, role, rb, cm, ds}
	if err := patchWorkload[appsv1.DaemonSet](objs, o.patches, patches.KubeProxyDaemonSet, o.reportPatches); err != nil {
		return nil, err
	}
	return objs, nil
}

// kubeProxyKubeconfig is an in-cluster style kubeconfig: the Pod's service account token and CA, but an
// explicit server, because kube-proxy is what makes the in-cluster Service address work.
func kubeProxyKubeconfig(server string) *clientcmdv1.Config {
	return &clientcmdv1.Config{
		APIVersion: "v1",
		Kind:       "Config",
		Clusters: []clientcmdv1.NamedCluster{{Name: "default", Cluster: clientcmdv1.Cluster{
			Server:               server,
			CertificateAuthority: saTokenDir + "/ca.crt",
		}}},
		Contexts: []clientcmdv1.NamedContext{{Name: "default", Context: clientcmdv1.Context{
			Cluster: "default", Namespace: "default", AuthInfo: "default",
		}}},
		CurrentContext: "default",
		AuthInfos: []clientcmdv1.NamedAuthInfo{{Name: "default", AuthInfo: clientcmdv1.AuthInfo{
			TokenFile: saTokenDir + "/token",
		}}},
	}
}

// configMapHash is kubeadm's component-config checksum: sha256 over the values in key order.
func configMapHash(data map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		h.Write([]byte(data[k]))
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// proxyEnv picks the non-empty *_proxy variables (any case), sorted by name, the last value of a name winning.
func proxyEnv(environ []string) []corev1.EnvVar {
	byName := map[string]string{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || value == "" || !strings.HasSuffix(strings.ToLower(name), "_proxy") {
			continue
		}
		byName[name] = value
	}
	env := make([]corev1.EnvVar, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		env = append(env, corev1.EnvVar{Name: name, Value: byName[name]})
	}
	return env
}

func kubeProxyPodSpec(image string, extraEnv []corev1.EnvVar) corev1.PodSpec {
	env := append([]corev1.EnvVar{{
		Name:      "NODE_NAME",
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}},
	}}, extraEnv...)
	return corev1.PodSpec{
		PriorityClassName: "system-node-critical",
		Containers: []corev1.Container{{
			Name:            KubeProxyName,
			Image:           image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{
				"/usr/local/bin/kube-proxy",
				"--config=" + kubeProxyConfigDir + "/" + KubeProxyConfigKey,
				"--hostname-override=$(NODE_NAME)",
			},
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			VolumeMounts: []corev1.VolumeMount{
				{Name: KubeProxyName, MountPath: kubeProxyConfigDir},
				{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
				{Name: "lib-modules", MountPath: "/lib/modules", ReadOnly: true},
			},
			Env: env,
		}},
		HostNetwork:        true,
		ServiceAccountName: KubeProxyName,
		Volumes: []corev1.Volume{
			{Name: KubeProxyName, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: KubeProxyName},
			}}},
			// Shared with the host's iptables so kube-proxy and other writers do not interleave rule updates.
			{Name: "xtables-lock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/run/xtables.lock", Type: ptr.To(corev1.HostPathFileOrCreate),
			}}},
			{Name: "lib-modules", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/lib/modules",
			}}},
		},
		Tolerations:  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		NodeSelector: map[string]string{corev1.LabelOSStable: "linux"},
	}
}

// EnsureKubeProxy installs or updates the kube-proxy addon; unlike CoreDNS's, its ConfigMap is always rewritten
// from the configuration, as kubeadm does.
func EnsureKubeProxy(ctx context.Context, client kubernetes.Interface, cluster *config.Cluster, controlPlaneEndpoint string, opts ...KubeProxyOption) error {
	objs, err := KubeProxyObjects(cluster, controlPlaneEndpoint, opts...)
	if err != nil {
		return err
	}
	if err := applyInWaves(ctx, client, objs); err != nil {
		return fmt.Errorf("apply the kube-proxy addon: %w", err)
	}
	return nil
}
