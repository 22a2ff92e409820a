package manifests

import (
	"context"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// Phase names, public in the CLI (`kubeboot init phase control-plane apiserver`, --skip-phases).
const (
	PhaseAPIServer         = "control-plane/apiserver"
	PhaseControllerManager = "control-plane/controller-manager"
	PhaseScheduler         = "control-plane/scheduler"
	PhaseLocalEtcd         = "etcd/local"
)

// Path is the node path of the static Pod manifest called name.
func Path(name string) string { return path.Join(config.ManifestsDir, name+".yaml") }

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
	if err := fs.MkdirAll(config.ManifestsDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", fs.Path(config.ManifestsDir), err)
	}
	if err := fs.WriteFile(Path(name), b, 0o600); err != nil {
		return fmt.Errorf("write static Pod manifest for %s: %w", name, err)
	}
	return nil
}

// WriteAPIServer is the control-plane/apiserver phase.
func WriteAPIServer(ctx context.Context, fs nodefs.FS, cfg *config.Init, host Host) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return Write(fs, APIServerName, APIServer(cfg, host))
}

// WriteControllerManager is the control-plane/controller-manager phase.
func WriteControllerManager(ctx context.Context, fs nodefs.FS, cfg *config.Init, host Host) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return Write(fs, ControllerManagerName, ControllerManager(cfg, host))
}

// WriteScheduler is the control-plane/scheduler phase.
func WriteScheduler(ctx context.Context, fs nodefs.FS, cfg *config.Init, host Host) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return Write(fs, SchedulerName, Scheduler(cfg, host))
}

// WriteLocalEtcd is the etcd/local phase of init: a new single-member cluster on this node's advertise address.
// With an external etcd there is nothing to do, as in kubeadm.
func WriteLocalEtcd(ctx context.Context, fs nodefs.FS, cfg *config.Init) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cfg.Cluster.Etcd.External != nil {
		return nil
	}
	pod, err := Etcd(cfg, cfg.Init.LocalAPIEndpoint, nil)
	if err != nil {
		return err
	}
	return Write(fs, EtcdName, pod)
}
