package kubelet

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
)

// The kubelet's files are readable by everyone (no secrets in them) in a root-only directory, as kubeadm makes them.
const (
	kubeletDirMode  = 0o700
	kubeletFileMode = 0o644
)

// WriteConfig writes /var/lib/kubelet/config.yaml and instance-config.yaml, which
// kubeadm upgrade and join read back for this node's CRI socket. The kubeletconfiguration patches of the node's
// patches.directory apply to config.yaml (see PatchConfig); WriteConfig returns them for the caller to report with
// Patch.Line, as kubeadm prints them.
func WriteConfig(fs nodefs.FS, cluster *config.Cluster, node *config.Node) ([]patches.Patch, error) {
	b, err := Config(cluster, node)
	if err != nil {
		return nil, err
	}
	set, err := patches.LoadConfigured(fs, node.Patches)
	if err != nil {
		return nil, fmt.Errorf("write the kubelet's %s: %w", config.KubeletConfigFile, err)
	}
	criSocket := node.Registration.CRISocket
	b, applied, err := PatchConfig(set, b, criSocket)
	if err != nil {
		return nil, err
	}
	if err := writeFile(fs, InstanceConfigFile, InstanceConfig(criSocket)); err != nil {
		return nil, err
	}
	if err := writeFile(fs, config.KubeletConfigFile, b); err != nil {
		return nil, err
	}
	return applied, nil
}

// PatchConfig applies set's kubeletconfiguration patches to b, a rendered config.yaml, and returns the result and
// the patches applied. criSocket is the node's CRI socket: it is applied
// again afterwards, because kubeadm patches config.yaml with instance-config.yaml after the user's patches, so
// nodeRegistration.criSocket wins over a patched containerRuntimeEndpoint. Without patches it returns b itself.
func PatchConfig(set *patches.Set, b []byte, criSocket string) ([]byte, []patches.Patch, error) {
	schema := kubeletv1beta1.KubeletConfiguration{}
	b, applied, err := set.Apply(patches.KubeletConfiguration, b, schema)
	if err != nil {
		return nil, nil, fmt.Errorf("patch the kubelet's %s: %w", config.KubeletConfigFile, err)
	}
	if !applied {
		return b, nil, nil
	}
	if criSocket != "" {
		instance, err := json.Marshal(map[string]string{"containerRuntimeEndpoint": criSocket})
		if err != nil {
			return nil, nil, fmt.Errorf("patch the kubelet's %s: %w", config.KubeletConfigFile, err)
		}
		socket := patches.NewSet(patches.Patch{
			File: InstanceConfigFile, Doc: 1, Target: patches.KubeletConfiguration,
			Type: types.StrategicMergePatchType, Data: instance,
		})
		if b, _, err = socket.Apply(patches.KubeletConfiguration, b, schema); err != nil {
			return nil, nil, fmt.Errorf("patch the kubelet's %s: %w", config.KubeletConfigFile, err)
		}
	}
	return b, set.For(patches.KubeletConfiguration), nil
}

// WriteFlags writes /var/lib/kubelet/kubeadm-flags.env for the node running init on a machine called hostname.
func WriteFlags(fs nodefs.FS, node *config.Node, hostname string) error {
	return writeFile(fs, config.KubeletFlagsEnvFile, InitFlags(node, hostname))
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
