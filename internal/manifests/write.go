package manifests

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Phase names, public in the CLI (`kubeboot init phase control-plane apiserver`, --skip-phases).
const (
	PhaseAPIServer         = "control-plane/apiserver"
	PhaseControllerManager = "control-plane/controller-manager"
	PhaseScheduler         = "control-plane/scheduler"
	PhaseLocalEtcd         = "etcd/local"
)

// Marshal serializes pod as the kubelet reads it from the manifests directory.
func Marshal(pod *corev1.Pod) ([]byte, error) {
	b, err := yaml.Marshal(pod)
	if err != nil {
		return nil, fmt.Errorf("serialize static Pod %s: %w", pod.Name, err)
	}
	return b, nil
}

// Write writes pod to /etc/kubernetes/manifests/<name>.yaml, 0600 like kubeadm: manifests may carry secrets
// in extraArgs or extraEnvs.
func Write(fs nodefs.FS, name string, pod *corev1.Pod) error {
	b, err := Marshal(pod)
	if err != nil {
		return err
	}
	// The kubelet watches this directory; only root needs to read it.
	if err := fs.MkdirAll(staticpod.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", fs.Path(staticpod.Dir), err)
	}
	if err := fs.WriteFile(staticpod.Path(name), b, 0o600); err != nil {
		return fmt.Errorf("write static Pod manifest for %s: %w", name, err)
	}
	return nil
}

// PatchPod applies set's patches for pod (the target is the Pod's name, as in kubeadm) and returns the patched
// Pod and the patches applied, in order. Like kubeadm, it reads the result back as a Pod without complaining about
// fields a Pod does not have; a result that is no longer a v1 Pod is an error. Without patches for pod it returns
// pod itself.
func PatchPod(set *patches.Set, pod *corev1.Pod) (*corev1.Pod, []patches.Patch, error) {
	applied := set.For(pod.Name)
	if len(applied) == 0 {
		return pod, nil, nil
	}
	b, err := Marshal(pod)
	if err != nil {
		return nil, nil, err
	}
	out, _, err := set.Apply(pod.Name, b, corev1.Pod{})
	if err != nil {
		return nil, nil, fmt.Errorf("patch static Pod %s: %w", pod.Name, err)
	}
	j, err := yaml.YAMLToJSON(out)
	if err != nil {
		return nil, nil, fmt.Errorf("patch static Pod %s: %w", pod.Name, err)
	}
	var patched corev1.Pod
	// Case-sensitive, as the kubelet and kubeadm decode it.
	if err := utiljson.Unmarshal(j, &patched); err != nil {
		return nil, nil, fmt.Errorf("patches for static Pod %s in %s leave no valid Pod: %w", pod.Name, set.Dir, err)
	}
	if patched.APIVersion != "v1" || patched.Kind != "Pod" {
		return nil, nil, fmt.Errorf("patches for static Pod %s in %s turn it into apiVersion %q kind %q; a static Pod must stay apiVersion v1 kind Pod",
			pod.Name, set.Dir, patched.APIVersion, patched.Kind)
	}
	return &patched, applied, nil
}

// writePatched applies the patches of the node's patches.directory to pod and writes it as name. It returns the
// patches applied, for the caller to report with Patch.Line, as kubeadm prints them.
func writePatched(fs nodefs.FS, node *config.Node, name string, pod *corev1.Pod) ([]patches.Patch, error) {
	set, err := patches.LoadConfigured(fs, node.Patches)
	if err != nil {
		return nil, fmt.Errorf("write static Pod manifest for %s: %w", name, err)
	}
	pod, applied, err := PatchPod(set, pod)
	if err != nil {
		return nil, err
	}
	if err := Write(fs, name, pod); err != nil {
		return nil, err
	}
	return applied, nil
}

// WriteAPIServer is the control-plane/apiserver phase. It returns the patches applied (see writePatched).
func WriteAPIServer(ctx context.Context, fs nodefs.FS, cluster *config.Cluster, node *config.Node, host Host) ([]patches.Patch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return writePatched(fs, node, staticpod.APIServerName, APIServer(cluster, node, host))
}

// WriteControllerManager is the control-plane/controller-manager phase. It returns the patches applied.
func WriteControllerManager(ctx context.Context, fs nodefs.FS, cluster *config.Cluster, node *config.Node, host Host) ([]patches.Patch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return writePatched(fs, node, staticpod.ControllerManagerName, ControllerManager(cluster, node, host))
}

// WriteScheduler is the control-plane/scheduler phase. It returns the patches applied.
func WriteScheduler(ctx context.Context, fs nodefs.FS, cluster *config.Cluster, node *config.Node, host Host) ([]patches.Patch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return writePatched(fs, node, staticpod.SchedulerName, Scheduler(cluster, node, host))
}

// WriteLocalEtcd is the etcd/local phase of init: a new single-member cluster on this node's advertise address.
// With an external etcd there is nothing to do, as in kubeadm. It returns the patches applied.
func WriteLocalEtcd(ctx context.Context, fs nodefs.FS, cluster *config.Cluster, node *config.Node) ([]patches.Patch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cluster.Etcd.External != nil {
		return nil, nil
	}
	pod, err := Etcd(cluster, node, nil)
	if err != nil {
		return nil, err
	}
	return writePatched(fs, node, staticpod.EtcdName, pod)
}
