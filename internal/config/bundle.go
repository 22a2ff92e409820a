package config

import (
	"fmt"

	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Well-known defaults, identical to kubeadm's.
const (
	DefaultImageRepository  = "registry.k8s.io"
	DefaultCertificatesDir  = "/etc/kubernetes/pki"
	DefaultServiceSubnet    = "10.96.0.0/12"
	DefaultDNSDomain        = "cluster.local"
	DefaultClusterName      = "kubernetes"
	DefaultEtcdDataDir      = "/var/lib/etcd"
	DefaultAPIBindPort      = staticpod.APIServerPort
	DefaultCRISocket        = "unix:///var/run/containerd/containerd.sock"
	DefaultCACertPath       = "/etc/kubernetes/pki/ca.crt"
	KubernetesDir           = "/etc/kubernetes"
	KubeletDir              = "/var/lib/kubelet"
	KubeletConfigFile       = "/var/lib/kubelet/config.yaml"
	KubeletFlagsEnvFile     = "/var/lib/kubelet/kubeadm-flags.env"
	BootstrapKubeletConf    = "/etc/kubernetes/bootstrap-kubelet.conf"
	KubeletKubeconfigFile   = "/etc/kubernetes/kubelet.conf"
	AdminKubeconfigFile     = "/etc/kubernetes/admin.conf"
	SuperAdminKubeconfig    = "/etc/kubernetes/super-admin.conf"
	ControllerManagerConfig = "/etc/kubernetes/controller-manager.conf"
	SchedulerConfig         = "/etc/kubernetes/scheduler.conf"
)

// Init is the complete configuration of `kubeboot init` after loading, flag merging, defaulting and validation.
// Renderers may rely on every defaulted field being set: NodeRegistration.Name, CRISocket, Taints,
// LocalAPIEndpoint (AdvertiseAddress is an IP, BindPort > 0), Cluster.KubernetesVersion ("vX.Y.Z"),
// Networking.ServiceSubnet/DNSDomain, CertificatesDir, ImageRepository, ClusterName, EncryptionAlgorithm,
// both validity periods, Timeouts (every field), Etcd.Local (unless Etcd.External is set), Kubelet and Proxy
// (defaulted documents, never nil).
type Init struct {
	Init    InitConfiguration
	Cluster ClusterConfiguration
	Kubelet *kubeletv1beta1.KubeletConfiguration
	Proxy   *kubeproxyv1alpha1.KubeProxyConfiguration
}

// Join is the complete configuration of `kubeboot join` after loading, flag merging, defaulting and validation.
type Join struct {
	Join JoinConfiguration
}

// Release returns the facts of the Kubernetes release this cluster runs (its kubernetesVersion), or an error that
// names the versions kubeboot deploys. A validated Init always has one.
func (c *ClusterConfiguration) Release() (*release.Release, error) {
	r, err := release.For(c.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("%s: kubernetesVersion: %w", KindCluster, err)
	}
	return r, nil
}
