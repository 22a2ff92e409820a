package upgrade

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Components are the static Pods an upgrade replaces, in kubeadm's order: etcd first, then its client the API
// server, then the API server's clients.
var Components = []string{staticpod.EtcdName, staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName}

// Target is what a node's control plane is upgraded to: the cluster's configuration with kubernetesVersion set to
// the target, and this node's part.
type Target struct {
	Cluster *config.Cluster
	Node    *config.Node
	Host    manifests.Host
}

// Rendered is one component's new manifest.
type Rendered struct {
	Component string
	Pod       *corev1.Pod
	YAML      []byte
	// Patches are the patches of patches.directory applied, to report.
	Patches []patches.Patch
}

// Render renders the new manifests of components with init's renderers (package manifests) and the node's
// patches, as init writes them; it writes nothing. etcd renders as kubeadm's upgrade renders it: a member of
// itself alone, whose --initial-cluster the member ignores once it has data.
func Render(fsys nodefs.FS, t Target, components []string) ([]Rendered, error) {
	set, err := patches.LoadConfigured(fsys, t.Node.Patches)
	if err != nil {
		return nil, err
	}
	var out []Rendered
	for _, c := range components {
		var pod *corev1.Pod
		switch c {
		case staticpod.EtcdName:
			if pod, err = manifests.Etcd(t.Cluster, t.Node, nil); err != nil {
				return nil, err
			}
		case staticpod.APIServerName:
			pod = manifests.APIServer(t.Cluster, t.Node, t.Host)
		case staticpod.ControllerManagerName:
			pod = manifests.ControllerManager(t.Cluster, t.Node, t.Host)
		case staticpod.SchedulerName:
			pod = manifests.Scheduler(t.Cluster, t.Node, t.Host)
		default:
			return nil, fmt.Errorf("%s is not a control-plane component", c)
		}
		pod, applied, err := manifests.PatchPod(set, pod)
		if err != nil {
			return nil, err
		}
		b, err := manifests.Marshal(pod)
		if err != nil {
			return nil, err
		}
		out = append(out, Rendered{Component: c, Pod: pod, YAML: b, Patches: applied})
	}
	return out, nil
}

// samePod says whether the manifests current (as read from disk) and next describe the same Pod: kubeadm compares
// the decoded Pods, so formatting and field order do not count.
func samePod(current, next []byte) bool {
	var a, b corev1.Pod
	if yaml.Unmarshal(current, &a) != nil || yaml.Unmarshal(next, &b) != nil {
		return false
	}
	return equality.Semantic.DeepEqual(&a, &b)
}
