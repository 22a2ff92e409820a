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
// Renderers take its ClusterPart and NodePart, and may rely on every defaulted field being set: NodeRegistration.Name, CRISocket, Taints,
// LocalAPIEndpoint (AdvertiseAddress is an IP, BindPort > 0), Cluster.KubernetesVersion ("vX.Y.Z"),
// Networking.ServiceSubnet/DNSDomain, CertificatesDir, ImageRepository, ClusterName, EncryptionAlgorithm,
// both validity periods, Timeouts (every field), Etcd.Local (unless Etcd.External is set), Kubelet and Proxy
// (defaulted documents, never nil). Kubeboot is nil when the file has no KubebootConfiguration: every kubeboot
// setting is then off.
type Init struct {
	Init     InitConfiguration
	Cluster  ClusterConfiguration
	Kubelet  *kubeletv1beta1.KubeletConfiguration
	Proxy    *kubeproxyv1alpha1.KubeProxyConfiguration
	Kubeboot *KubebootConfiguration
}

// Join is the complete configuration of `kubeboot join` after loading, flag merging, defaulting and validation.
// Kubeboot is nil when the file has no KubebootConfiguration.
type Join struct {
	Join     JoinConfiguration
	Kubeboot *KubebootConfiguration
}

// Cluster is the configuration every node of a cluster shares, what certificates, kubeconfig files, static Pods,
// the kubelet's files and the addons render from alongside the Node: the ClusterConfiguration (kept in
// kube-system/kubeadm-config) and the component configurations (kube-system/kubelet-config and kube-system/kube-proxy).
// A joining node reads it from the cluster; it then has no KubeProxy, which only init renders.
type Cluster struct {
	ClusterConfiguration
	Kubelet   *kubeletv1beta1.KubeletConfiguration
	KubeProxy *kubeproxyv1alpha1.KubeProxyConfiguration
}

// Node is one node's own part of the configuration: how it registers, where its API server listens (on a
// control-plane node), the patches for what is rendered for it and how long it waits.
type Node struct {
	Registration     NodeRegistrationOptions
	LocalAPIEndpoint APIEndpoint
	Patches          *Patches
	Timeouts         *Timeouts
	// KubeletServer is the server of this node's kubelet.conf when it is not the node's own API server: the
	// node-local API endpoint (KubebootConfiguration.nodeLocalAPIEndpoint). "": the API server at LocalAPIEndpoint.
	KubeletServer string
}

// ClusterPart is the part of c every node shares. It shares c's memory: renderers only read it.
func (c *Init) ClusterPart() *Cluster {
	return &Cluster{ClusterConfiguration: c.Cluster, Kubelet: c.Kubelet, KubeProxy: c.Proxy}
}

// NodePart is the part of c that belongs to the node running init. It shares c's memory.
func (c *Init) NodePart() *Node {
	return &Node{Registration: c.Init.NodeRegistration, LocalAPIEndpoint: c.Init.LocalAPIEndpoint, Patches: c.Init.Patches,
		Timeouts: c.Init.Timeouts}
}

// ControlPlaneNode is the part of a control-plane join that belongs to the joining node; nil for a worker. It
// shares c's memory.
func (c *JoinConfiguration) ControlPlaneNode() *Node {
	if c.ControlPlane == nil {
		return nil
	}
	return &Node{Registration: c.NodeRegistration, LocalAPIEndpoint: c.ControlPlane.LocalAPIEndpoint, Patches: c.Patches,
		Timeouts: c.Timeouts}
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
