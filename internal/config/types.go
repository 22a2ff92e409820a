// Package config holds kubeboot's view of the kubeadm configuration API (kubeadm.k8s.io/v1beta4, with
// v1beta3 readable) and turns user documents and flags into one defaulted, validated configuration.
//
// The types mirror kubeadm's wire format field for field so a kubeadm.yaml works unchanged; they are
// kubeboot's own because kubeadm's types live in k8s.io/kubernetes, which kubeboot must not depend on.
package config

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group and versions of the kubeadm configuration API.
const (
	GroupName       = "kubeadm.k8s.io"
	V1beta4         = GroupName + "/v1beta4"
	V1beta3         = GroupName + "/v1beta3"
	KubeletGroupVer = "kubelet.config.k8s.io/v1beta1"
	ProxyGroupVer   = "kubeproxy.config.k8s.io/v1alpha1"
)

// Kinds of documents kubeboot reads.
const (
	KindInit    = "InitConfiguration"
	KindCluster = "ClusterConfiguration"
	KindJoin    = "JoinConfiguration"
	KindReset   = "ResetConfiguration"
	KindUpgrade = "UpgradeConfiguration"
	KindKubelet = "KubeletConfiguration"
	KindProxy   = "KubeProxyConfiguration"
)

// InitConfiguration holds what is specific to the node running `init`.
type InitConfiguration struct {
	metav1.TypeMeta  `json:",inline"`
	BootstrapTokens  []BootstrapToken        `json:"bootstrapTokens,omitempty"`
	DryRun           bool                    `json:"dryRun,omitempty"`
	NodeRegistration NodeRegistrationOptions `json:"nodeRegistration,omitempty"`
	LocalAPIEndpoint APIEndpoint             `json:"localAPIEndpoint,omitempty"`
	CertificateKey   string                  `json:"certificateKey,omitempty"`
	SkipPhases       []string                `json:"skipPhases,omitempty"`
	Patches          *Patches                `json:"patches,omitempty"`
	Timeouts         *Timeouts               `json:"timeouts,omitempty"`
}

// ClusterConfiguration holds what every node of the cluster shares; it is stored in kube-system/kubeadm-config.
type ClusterConfiguration struct {
	metav1.TypeMeta             `json:",inline"`
	Etcd                        Etcd                    `json:"etcd,omitempty"`
	Networking                  Networking              `json:"networking,omitempty"`
	KubernetesVersion           string                  `json:"kubernetesVersion,omitempty"`
	ControlPlaneEndpoint        string                  `json:"controlPlaneEndpoint,omitempty"`
	APIServer                   APIServer               `json:"apiServer,omitempty"`
	ControllerManager           ControlPlaneComponent   `json:"controllerManager,omitempty"`
	Scheduler                   ControlPlaneComponent   `json:"scheduler,omitempty"`
	DNS                         DNS                     `json:"dns,omitempty"`
	Proxy                       Proxy                   `json:"proxy,omitempty"`
	CertificatesDir             string                  `json:"certificatesDir,omitempty"`
	ImageRepository             string                  `json:"imageRepository,omitempty"`
	FeatureGates                map[string]bool         `json:"featureGates,omitempty"`
	ClusterName                 string                  `json:"clusterName,omitempty"`
	EncryptionAlgorithm         EncryptionAlgorithmType `json:"encryptionAlgorithm,omitempty"`
	CertificateValidityPeriod   *metav1.Duration        `json:"certificateValidityPeriod,omitempty"`
	CACertificateValidityPeriod *metav1.Duration        `json:"caCertificateValidityPeriod,omitempty"`
}

// ControlPlaneComponent holds the user's additions to one static Pod.
type ControlPlaneComponent struct {
	ExtraArgs    []Arg           `json:"extraArgs,omitempty"`
	ExtraVolumes []HostPathMount `json:"extraVolumes,omitempty"`
	ExtraEnvs    []EnvVar        `json:"extraEnvs,omitempty"`
}

// APIServer is the kube-apiserver's component settings plus the extra names its serving certificate carries.
type APIServer struct {
	ControlPlaneComponent `json:",inline"`
	CertSANs              []string `json:"certSANs,omitempty"`
}

// DNS configures the CoreDNS addon.
type DNS struct {
	ImageMeta `json:",inline"`
	Disabled  bool `json:"disabled,omitempty"`
}

// Proxy configures the kube-proxy addon.
type Proxy struct {
	Disabled bool `json:"disabled,omitempty"`
}

// ImageMeta overrides the repository or tag of one image.
type ImageMeta struct {
	ImageRepository string `json:"imageRepository,omitempty"`
	ImageTag        string `json:"imageTag,omitempty"`
}

// APIEndpoint is where this node's kube-apiserver listens.
type APIEndpoint struct {
	AdvertiseAddress string `json:"advertiseAddress,omitempty"`
	BindPort         int32  `json:"bindPort,omitempty"`
}

// NodeRegistrationOptions describes how the node registers itself.
type NodeRegistrationOptions struct {
	Name                  string            `json:"name,omitempty"`
	CRISocket             string            `json:"criSocket,omitempty"`
	Taints                []corev1.Taint    `json:"taints"`
	KubeletExtraArgs      []Arg             `json:"kubeletExtraArgs,omitempty"`
	IgnorePreflightErrors []string          `json:"ignorePreflightErrors,omitempty"`
	ImagePullPolicy       corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	ImagePullSerial       *bool             `json:"imagePullSerial,omitempty"`
}

// Networking holds the cluster's address ranges and DNS domain.
type Networking struct {
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
	PodSubnet     string `json:"podSubnet,omitempty"`
	DNSDomain     string `json:"dnsDomain,omitempty"`
}

// Etcd is either a local (stacked) etcd or an external one; exactly one is set after defaulting.
type Etcd struct {
	Local    *LocalEtcd    `json:"local,omitempty"`
	External *ExternalEtcd `json:"external,omitempty"`
}

// LocalEtcd is an etcd member run as a static Pod on each control-plane node.
type LocalEtcd struct {
	ImageMeta      `json:",inline"`
	DataDir        string   `json:"dataDir"`
	ExtraArgs      []Arg    `json:"extraArgs,omitempty"`
	ExtraEnvs      []EnvVar `json:"extraEnvs,omitempty"`
	ServerCertSANs []string `json:"serverCertSANs,omitempty"`
	PeerCertSANs   []string `json:"peerCertSANs,omitempty"`
}

// ExternalEtcd is an etcd cluster kubeboot does not manage.
type ExternalEtcd struct {
	Endpoints []string `json:"endpoints"`
	// HTTPEndpoints are the members' HTTP(S) URLs for /version and health checks (kubeadm 1.35+); they default to
	// Endpoints.
	HTTPEndpoints []string `json:"httpEndpoints,omitempty"`
	CAFile        string   `json:"caFile"`
	CertFile      string   `json:"certFile"`
	KeyFile       string   `json:"keyFile"`
}

// JoinConfiguration holds what a joining node needs.
type JoinConfiguration struct {
	metav1.TypeMeta  `json:",inline"`
	DryRun           bool                    `json:"dryRun,omitempty"`
	NodeRegistration NodeRegistrationOptions `json:"nodeRegistration,omitempty"`
	CACertPath       string                  `json:"caCertPath,omitempty"`
	Discovery        Discovery               `json:"discovery"`
	ControlPlane     *JoinControlPlane       `json:"controlPlane,omitempty"`
	SkipPhases       []string                `json:"skipPhases,omitempty"`
	Patches          *Patches                `json:"patches,omitempty"`
	Timeouts         *Timeouts               `json:"timeouts,omitempty"`
}

// JoinControlPlane is set when the joining node becomes a control-plane node.
type JoinControlPlane struct {
	LocalAPIEndpoint APIEndpoint `json:"localAPIEndpoint,omitempty"`
	CertificateKey   string      `json:"certificateKey,omitempty"`
}

// Discovery says how a joining node learns to trust the cluster.
type Discovery struct {
	BootstrapToken    *BootstrapTokenDiscovery `json:"bootstrapToken,omitempty"`
	File              *FileDiscovery           `json:"file,omitempty"`
	TLSBootstrapToken string                   `json:"tlsBootstrapToken,omitempty"`
}

// BootstrapTokenDiscovery trusts the cluster through a token-signed cluster-info and a CA public key pin.
type BootstrapTokenDiscovery struct {
	Token                    string   `json:"token"`
	APIServerEndpoint        string   `json:"apiServerEndpoint,omitempty"`
	CACertHashes             []string `json:"caCertHashes,omitempty"`
	UnsafeSkipCAVerification bool     `json:"unsafeSkipCAVerification,omitempty"`
}

// FileDiscovery trusts the cluster through a kubeconfig file (a path or an https URL).
type FileDiscovery struct {
	KubeConfigPath string `json:"kubeConfigPath"`
}

// HostPathMount is an extra hostPath volume for a static Pod.
type HostPathMount struct {
	Name      string              `json:"name"`
	HostPath  string              `json:"hostPath"`
	MountPath string              `json:"mountPath"`
	ReadOnly  bool                `json:"readOnly,omitempty"`
	PathType  corev1.HostPathType `json:"pathType,omitempty"`
}

// Patches points at a directory of patches for the rendered manifests.
type Patches struct {
	Directory string `json:"directory,omitempty"`
}

// ResetConfiguration configures `kubeboot reset`.
type ResetConfiguration struct {
	metav1.TypeMeta       `json:",inline"`
	CleanupTmpDir         bool      `json:"cleanupTmpDir,omitempty"`
	CertificatesDir       string    `json:"certificatesDir,omitempty"`
	CRISocket             string    `json:"criSocket,omitempty"`
	DryRun                bool      `json:"dryRun,omitempty"`
	Force                 bool      `json:"force,omitempty"`
	IgnorePreflightErrors []string  `json:"ignorePreflightErrors,omitempty"`
	SkipPhases            []string  `json:"skipPhases,omitempty"`
	UnmountFlags          []string  `json:"unmountFlags,omitempty"`
	Timeouts              *Timeouts `json:"timeouts,omitempty"`
}

// Arg is one command-line argument; order and repetition are kept, as in kubeadm v1beta4.
type Arg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// EnvVar is an extra environment variable for a static Pod's container.
type EnvVar struct {
	corev1.EnvVar `json:",inline"`
}

// EncryptionAlgorithmType names the key type of generated keys.
type EncryptionAlgorithmType string

// Supported key algorithms.
const (
	EncryptionAlgorithmECDSAP256 EncryptionAlgorithmType = "ECDSA-P256"
	EncryptionAlgorithmECDSAP384 EncryptionAlgorithmType = "ECDSA-P384"
	EncryptionAlgorithmRSA2048   EncryptionAlgorithmType = "RSA-2048"
	EncryptionAlgorithmRSA3072   EncryptionAlgorithmType = "RSA-3072"
	EncryptionAlgorithmRSA4096   EncryptionAlgorithmType = "RSA-4096"
)

// Timeouts bounds each kind of wait.
type Timeouts struct {
	ControlPlaneComponentHealthCheck *metav1.Duration `json:"controlPlaneComponentHealthCheck,omitempty"`
	KubeletHealthCheck               *metav1.Duration `json:"kubeletHealthCheck,omitempty"`
	KubernetesAPICall                *metav1.Duration `json:"kubernetesAPICall,omitempty"`
	EtcdAPICall                      *metav1.Duration `json:"etcdAPICall,omitempty"`
	TLSBootstrap                     *metav1.Duration `json:"tlsBootstrap,omitempty"`
	Discovery                        *metav1.Duration `json:"discovery,omitempty"`
	UpgradeManifests                 *metav1.Duration `json:"upgradeManifests,omitempty"`
}

// BootstrapToken is a token created by init (bootstrapTokens[]).
type BootstrapToken struct {
	// Token is "[a-z0-9]{6}.[a-z0-9]{16}"; a secret, never logged.
	Token       string           `json:"token"`
	Description string           `json:"description,omitempty"`
	TTL         *metav1.Duration `json:"ttl,omitempty"`
	Expires     *metav1.Time     `json:"expires,omitempty"`
	Usages      []string         `json:"usages,omitempty"`
	Groups      []string         `json:"groups,omitempty"`
}
