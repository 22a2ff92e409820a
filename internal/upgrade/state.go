package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/addons"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
)

// State is the cluster as an upgrade finds it: the versions each node runs, and the configuration kubeadm-config
// holds. Versions map a version to the nodes that run it, as kubeadm's version getter does.
type State struct {
	// ClusterVersion is the newest kube-apiserver version running (kubeadm's cluster version).
	ClusterVersion string
	Config         config.ClusterConfiguration
	Kubelets       map[string][]string
	// Components holds the versions of kube-apiserver, kube-controller-manager, kube-scheduler and etcd, each from
	// its mirror Pods' image tags.
	Components map[string]map[string][]string
	// KubeProxy is the kube-proxy DaemonSet's image tag, DNS the CoreDNS Deployment's; "" when there is none.
	KubeProxy, DNS string
	// ConfigVersions are the component configs' API versions, as the plan's last table shows them.
	ConfigVersions []ConfigVersionState
}

// ErrNoKubeadmConfig is returned when kube-system/kubeadm-config does not exist (kubeadm's words).
var ErrNoKubeadmConfig = errors.New(`the ConfigMap "kubeadm-config" in the "kube-system" namespace was not found`)

// ReadConfig reads the ClusterConfiguration from kube-system/kubeadm-config through uploadconfig's reader; a
// missing ConfigMap is refused with kubeadm's hint.
func ReadConfig(ctx context.Context, client kubernetes.Interface, warn io.Writer) (config.ClusterConfiguration, error) {
	cc, err := uploadconfig.ReadClusterConfiguration(ctx, client, warn)
	if apierrors.IsNotFound(err) {
		return cc, hint.With(fmt.Errorf("[upgrade] FATAL: %w", ErrNoKubeadmConfig),
			fmt.Sprintf("in order to upgrade, a ConfigMap called %q in the %q namespace must exist. Use 'kubeboot init phase upload-config kubeadm --config your-config-file' to re-upload it",
				uploadconfig.KubeadmConfigMap, metav1.NamespaceSystem))
	}
	if err != nil {
		return cc, fmt.Errorf("[upgrade] FATAL: %w", err)
	}
	return cc, nil
}

// ReadState reads the cluster's State.
func ReadState(ctx context.Context, client kubernetes.Interface, warn io.Writer) (*State, error) {
	cc, err := ReadConfig(ctx, client, warn)
	if err != nil {
		return nil, err
	}
	s := &State{Config: cc, Components: map[string]map[string][]string{}}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("couldn't list all nodes in cluster: %w", err)
	}
	s.Kubelets = map[string][]string{}
	for _, n := range nodes.Items {
		v := n.Status.NodeInfo.KubeletVersion
		s.Kubelets[v] = append(s.Kubelets[v], n.Name)
	}
	for _, c := range Components {
		pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: staticpod.Selector(c)})
		if err != nil {
			return nil, fmt.Errorf("couldn't list pods in cluster: %w", err)
		}
		versions := map[string][]string{}
		for _, p := range pods.Items {
			if len(p.Spec.Containers) == 0 {
				continue
			}
			tag := tagOf(p.Spec.Containers[0].Image)
			versions[tag] = append(versions[tag], p.Spec.NodeName)
		}
		for _, ns := range versions {
			sort.Strings(ns)
		}
		s.Components[c] = versions
	}
	if s.ClusterVersion, err = newest(s.Components[staticpod.APIServerName]); err != nil {
		return nil, err
	}
	ds, err := client.AppsV1().DaemonSets(metav1.NamespaceSystem).Get(ctx, addons.KubeProxyName, metav1.GetOptions{})
	switch {
	case err == nil && len(ds.Spec.Template.Spec.Containers) > 0:
		s.KubeProxy = tagOf(ds.Spec.Template.Spec.Containers[0].Image)
	case err != nil && !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read the kube-proxy DaemonSet: %w", err)
	}
	dep, err := client.AppsV1().Deployments(metav1.NamespaceSystem).Get(ctx, addons.CoreDNSName, metav1.GetOptions{})
	switch {
	case err == nil && len(dep.Spec.Template.Spec.Containers) > 0:
		s.DNS = tagOf(dep.Spec.Template.Spec.Containers[0].Image)
	case err != nil && !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read the CoreDNS Deployment: %w", err)
	}
	s.ConfigVersions = []ConfigVersionState{
		configVersion(ctx, client, addons.KubeProxyName, addons.KubeProxyConfigKey, "kubeproxy.config.k8s.io", "v1alpha1"),
		configVersion(ctx, client, uploadconfig.KubeletConfigMap, uploadconfig.KubeletConfigKey, "kubelet.config.k8s.io", "v1beta1"),
	}
	return s, nil
}

// configVersion reads the API version of the component config in ConfigMap name's key.
func configVersion(ctx context.Context, client kubernetes.Interface, name, key, group, preferred string) ConfigVersionState {
	st := ConfigVersionState{Group: group, PreferredVersion: preferred}
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return st
	}
	var tm metav1.TypeMeta
	if yaml.Unmarshal([]byte(cm.Data[key]), &tm) == nil {
		if g, v, ok := strings.Cut(tm.APIVersion, "/"); ok && g == group {
			st.CurrentVersion = v
		}
	}
	st.ManualUpgradeRequired = st.CurrentVersion != "" && st.CurrentVersion != preferred
	return st
}

// tagOf is an image's tag, with kubeadm's "_" for "+" undone.
func tagOf(image string) string {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	return strings.ReplaceAll(image[i+1:], "_", "+")
}

// newest is the newest version of versions, as kubeadm's getLatestClusterVersion.
func newest(versions map[string][]string) (string, error) {
	var best *version.Version
	var bestStr string
	for v := range versions {
		pv, err := version.ParseSemantic(strings.TrimPrefix(v, "v"))
		if err != nil {
			return "", fmt.Errorf("couldn't parse kube-apiserver version %q: %w", v, err)
		}
		if best == nil || best.LessThan(pv) {
			best, bestStr = pv, v
		}
	}
	if best == nil {
		return "", errors.New("no kube-apiserver Pod found in kube-system: is this a kubeadm or kubeboot cluster?")
	}
	return bestStr, nil
}

// KubeletVersionOf returns the kubelet version of node name, from the Node object.
func KubeletVersionOf(ctx context.Context, client kubernetes.Interface, name string) (string, error) {
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return n.Status.NodeInfo.KubeletVersion, nil
}

// nodeReady says whether node's Ready condition is true.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
