package kubelet

import (
	"fmt"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// The kubelet's files are readable by everyone (no secrets in them) in a root-only directory, as kubeadm makes them.
const (
	kubeletDirMode  = 0o700
	kubeletFileMode = 0o644
)

// WriteConfig writes /var/lib/kubelet/config.yaml and, with NodeLocalCRISocket, instance-config.yaml, which
// kubeadm upgrade and join read back for this node's CRI socket.
func WriteConfig(fs nodefs.FS, cfg *config.Init) error {
	b, err := Config(cfg)
	if err != nil {
		return err
	}
	if NodeLocalCRISocket(cfg.Cluster.FeatureGates) {
		if err := writeFile(fs, InstanceConfigFile, InstanceConfig(cfg.Init.NodeRegistration.CRISocket)); err != nil {
			return err
		}
	}
	return writeFile(fs, config.KubeletConfigFile, b)
}

// WriteFlags writes /var/lib/kubelet/kubeadm-flags.env for the node running init on a machine called hostname.
func WriteFlags(fs nodefs.FS, cfg *config.Init, hostname string) error {
	return writeFile(fs, config.KubeletFlagsEnvFile, InitFlags(cfg, hostname))
}

func writeFile(fs nodefs.FS, p string, b []byte) error {
	if err := fs.MkdirAll(config.KubeletDir, kubeletDirMode); err != nil {
		return fmt.Errorf("create %s: %w", fs.Path(config.KubeletDir), err)
	}
	if err := fs.WriteFile(p, b, kubeletFileMode); err != nil {
		return fmt.Errorf("write the kubelet's %s: %w", p, err)
	}
	return nil
}
