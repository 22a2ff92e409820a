package kubelet

import (
	"fmt"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
)

// ConfigFromCluster decodes the KubeletConfiguration kubeadm stores under the "kubelet" key of
// kube-system/kubelet-config. Unknown fields are tolerated: a newer control plane may know fields this kubeboot
// does not, and the kubelet reading config.yaml is the one that must understand them.
func ConfigFromCluster(doc []byte) (*kubeletv1beta1.KubeletConfiguration, error) {
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.Unmarshal(doc, &kc); err != nil {
		return nil, fmt.Errorf("the cluster's KubeletConfiguration does not decode: %w", err)
	}
	if kc.APIVersion != config.KubeletGroupVer || kc.Kind != config.KindKubelet {
		return nil, fmt.Errorf("the cluster's kubelet configuration is %s %s, want %s %s",
			kc.APIVersion, kc.Kind, config.KubeletGroupVer, config.KindKubelet)
	}
	return &kc, nil
}

// JoinInput is everything the kubelet files of a joining node depend on.
type JoinInput struct {
	// NodeRegistration is the JoinConfiguration's (defaulted): name, CRI socket, taints, kubeletExtraArgs.
	NodeRegistration config.NodeRegistrationOptions
	// Cluster is the ClusterConfiguration read from kube-system/kubeadm-config.
	Cluster config.ClusterConfiguration
	// Kubelet is the KubeletConfiguration read from kube-system/kubelet-config.
	Kubelet *kubeletv1beta1.KubeletConfiguration
	// Hostname is the machine's hostname as the kubelet derives it (config.Environment.NodeHostname).
	Hostname string
	// ControlPlane is true for a joining control-plane node, which is tainted by an API call instead of
	// --register-with-taints.
	ControlPlane bool
	// SystemdResolved says systemd-resolved manages DNS here: as kubeadm does, the kubelet is then pointed at its
	// upstream resolv.conf unless the cluster's configuration names one.
	SystemdResolved bool
	// Patches are the node's patches.directory; its kubeletconfiguration patches apply to config.yaml. nil: none.
	Patches *patches.Set
}

// JoinFiles are the kubelet files of a joining node, rendered before anything is written so that a join that
// fails to render writes nothing.
type JoinFiles struct {
	Config         []byte // /var/lib/kubelet/config.yaml
	InstanceConfig []byte // /var/lib/kubelet/instance-config.yaml
	Flags          []byte // /var/lib/kubelet/kubeadm-flags.env
	// Applied are the patches of patches.directory applied to Config, for the caller to report with Patch.Line.
	Applied []patches.Patch
}

// RenderJoin renders the kubelet files kubeadm join writes: the cluster's KubeletConfiguration with the node's
// kubeletconfiguration patches applied and then the node's CRI socket (kubeadm patches it in from
// instance-config.yaml after the user's patches), instance-config.yaml, and kubeadm-flags.env with
// --hostname-override when the node name is not the hostname, --register-with-taints for a worker with taints, and
// kubeletExtraArgs.
func RenderJoin(in JoinInput) (JoinFiles, error) {
	if in.Kubelet == nil {
		return JoinFiles{}, fmt.Errorf("render %s: the cluster's KubeletConfiguration is missing", config.KubeletConfigFile)
	}
	kc := in.Kubelet.DeepCopy()
	if in.SystemdResolved && kc.ResolverConfig == nil {
		kc.ResolverConfig = ptr.To(config.KubeletSystemdResolverConfig)
	}
	criSocket := in.NodeRegistration.CRISocket
	kc.ContainerRuntimeEndpoint = criSocket
	files := JoinFiles{InstanceConfig: InstanceConfig(criSocket)}
	b, err := MarshalConfig(kc)
	if err != nil {
		return JoinFiles{}, err
	}
	if files.Config, files.Applied, err = PatchConfig(in.Patches, b, criSocket); err != nil {
		return JoinFiles{}, err
	}
	files.Flags = Flags(FlagsInput{
		NodeRegistration: in.NodeRegistration,
		Hostname:         in.Hostname,
		RegisterTaints:   !in.ControlPlane,
	})
	return files, nil
}

// WriteJoin writes files in the order the kubelet's supervisor should see them: instance-config.yaml, then
// config.yaml, then kubeadm-flags.env.
func WriteJoin(fs nodefs.FS, files JoinFiles) error {
	if files.InstanceConfig != nil {
		if err := writeFile(fs, InstanceConfigFile, files.InstanceConfig); err != nil {
			return err
		}
	}
	if err := writeFile(fs, config.KubeletConfigFile, files.Config); err != nil {
		return err
	}
	return writeFile(fs, config.KubeletFlagsEnvFile, files.Flags)
}
