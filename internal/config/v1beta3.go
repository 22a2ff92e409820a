package config

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The kubeadm.k8s.io/v1beta3 wire format, kept only to read old files; each type converts itself to v1beta4.
// Differences from v1beta4: extraArgs and kubeletExtraArgs are maps, apiServer.timeoutForControlPlane and
// discovery.timeout instead of a timeouts block, and no dryRun, proxy, dns.disabled, extraEnvs, imagePullSerial,
// encryptionAlgorithm, certificate validity periods, ResetConfiguration or UpgradeConfiguration.

type v1beta3InitConfiguration struct {
	metav1.TypeMeta  `json:",inline"`
	BootstrapTokens  []BootstrapToken               `json:"bootstrapTokens,omitempty"`
	NodeRegistration v1beta3NodeRegistrationOptions `json:"nodeRegistration,omitempty"`
	LocalAPIEndpoint APIEndpoint                    `json:"localAPIEndpoint,omitempty"`
	CertificateKey   string                         `json:"certificateKey,omitempty"`
	SkipPhases       []string                       `json:"skipPhases,omitempty"`
	Patches          *Patches                       `json:"patches,omitempty"`
}

type v1beta3ClusterConfiguration struct {
	metav1.TypeMeta      `json:",inline"`
	Etcd                 v1beta3Etcd                  `json:"etcd,omitempty"`
	Networking           Networking                   `json:"networking,omitempty"`
	KubernetesVersion    string                       `json:"kubernetesVersion,omitempty"`
	ControlPlaneEndpoint string                       `json:"controlPlaneEndpoint,omitempty"`
	APIServer            v1beta3APIServer             `json:"apiServer,omitempty"`
	ControllerManager    v1beta3ControlPlaneComponent `json:"controllerManager,omitempty"`
	Scheduler            v1beta3ControlPlaneComponent `json:"scheduler,omitempty"`
	DNS                  v1beta3DNS                   `json:"dns,omitempty"`
	CertificatesDir      string                       `json:"certificatesDir,omitempty"`
	ImageRepository      string                       `json:"imageRepository,omitempty"`
	FeatureGates         map[string]bool              `json:"featureGates,omitempty"`
	ClusterName          string                       `json:"clusterName,omitempty"`
}

type v1beta3ControlPlaneComponent struct {
	ExtraArgs    map[string]string `json:"extraArgs,omitempty"`
	ExtraVolumes []HostPathMount   `json:"extraVolumes,omitempty"`
}

type v1beta3APIServer struct {
	v1beta3ControlPlaneComponent `json:",inline"`
	CertSANs                     []string         `json:"certSANs,omitempty"`
	TimeoutForControlPlane       *metav1.Duration `json:"timeoutForControlPlane,omitempty"`
}

type v1beta3DNS struct {
	ImageMeta `json:",inline"`
}

type v1beta3NodeRegistrationOptions struct {
	Name                  string            `json:"name,omitempty"`
	CRISocket             string            `json:"criSocket,omitempty"`
	Taints                []corev1.Taint    `json:"taints"`
	KubeletExtraArgs      map[string]string `json:"kubeletExtraArgs,omitempty"`
	IgnorePreflightErrors []string          `json:"ignorePreflightErrors,omitempty"`
	ImagePullPolicy       corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
}

type v1beta3Etcd struct {
	Local    *v1beta3LocalEtcd `json:"local,omitempty"`
	External *ExternalEtcd     `json:"external,omitempty"`
}

type v1beta3LocalEtcd struct {
	ImageMeta      `json:",inline"`
	DataDir        string            `json:"dataDir"`
	ExtraArgs      map[string]string `json:"extraArgs,omitempty"`
	ServerCertSANs []string          `json:"serverCertSANs,omitempty"`
	PeerCertSANs   []string          `json:"peerCertSANs,omitempty"`
}

type v1beta3JoinConfiguration struct {
	metav1.TypeMeta  `json:",inline"`
	NodeRegistration v1beta3NodeRegistrationOptions `json:"nodeRegistration,omitempty"`
	CACertPath       string                         `json:"caCertPath,omitempty"`
	Discovery        v1beta3Discovery               `json:"discovery"`
	ControlPlane     *JoinControlPlane              `json:"controlPlane,omitempty"`
	SkipPhases       []string                       `json:"skipPhases,omitempty"`
	Patches          *Patches                       `json:"patches,omitempty"`
}

type v1beta3Discovery struct {
	BootstrapToken    *BootstrapTokenDiscovery `json:"bootstrapToken,omitempty"`
	File              *FileDiscovery           `json:"file,omitempty"`
	TLSBootstrapToken string                   `json:"tlsBootstrapToken,omitempty"`
	Timeout           *metav1.Duration         `json:"timeout,omitempty"`
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: V1beta4, Kind: kind}
}

func (in *v1beta3InitConfiguration) convert() *InitConfiguration {
	return &InitConfiguration{
		TypeMeta:         typeMeta(KindInit),
		BootstrapTokens:  in.BootstrapTokens,
		NodeRegistration: in.NodeRegistration.convert(),
		LocalAPIEndpoint: in.LocalAPIEndpoint,
		CertificateKey:   in.CertificateKey,
		SkipPhases:       in.SkipPhases,
		Patches:          in.Patches,
	}
}

// convert leaves apiServer.timeoutForControlPlane to the caller: it belongs to the InitConfiguration in v1beta4.
func (in *v1beta3ClusterConfiguration) convert() *ClusterConfiguration {
	out := &ClusterConfiguration{
		TypeMeta:             typeMeta(KindCluster),
		Networking:           in.Networking,
		KubernetesVersion:    in.KubernetesVersion,
		ControlPlaneEndpoint: in.ControlPlaneEndpoint,
		APIServer: APIServer{
			ControlPlaneComponent: in.APIServer.v1beta3ControlPlaneComponent.convert(),
			CertSANs:              in.APIServer.CertSANs,
		},
		ControllerManager: in.ControllerManager.convert(),
		Scheduler:         in.Scheduler.convert(),
		DNS:               DNS{ImageMeta: in.DNS.ImageMeta},
		CertificatesDir:   in.CertificatesDir,
		ImageRepository:   in.ImageRepository,
		FeatureGates:      in.FeatureGates,
		ClusterName:       in.ClusterName,
	}
	out.Etcd.External = in.Etcd.External
	if l := in.Etcd.Local; l != nil {
		out.Etcd.Local = &LocalEtcd{
			ImageMeta:      l.ImageMeta,
			DataDir:        l.DataDir,
			ExtraArgs:      argsFromMap(l.ExtraArgs),
			ServerCertSANs: l.ServerCertSANs,
			PeerCertSANs:   l.PeerCertSANs,
		}
	}
	return out
}

func (in *v1beta3ControlPlaneComponent) convert() ControlPlaneComponent {
	return ControlPlaneComponent{ExtraArgs: argsFromMap(in.ExtraArgs), ExtraVolumes: in.ExtraVolumes}
}

func (in *v1beta3NodeRegistrationOptions) convert() NodeRegistrationOptions {
	return NodeRegistrationOptions{
		Name:                  in.Name,
		CRISocket:             in.CRISocket,
		Taints:                in.Taints,
		KubeletExtraArgs:      argsFromMap(in.KubeletExtraArgs),
		IgnorePreflightErrors: in.IgnorePreflightErrors,
		ImagePullPolicy:       in.ImagePullPolicy,
		// v1beta3 always pulled images one at a time.
		ImagePullSerial: ptr.To(true),
	}
}

func (in *v1beta3JoinConfiguration) convert() *JoinConfiguration {
	out := &JoinConfiguration{
		TypeMeta:         typeMeta(KindJoin),
		NodeRegistration: in.NodeRegistration.convert(),
		CACertPath:       in.CACertPath,
		Discovery: Discovery{
			BootstrapToken:    in.Discovery.BootstrapToken,
			File:              in.Discovery.File,
			TLSBootstrapToken: in.Discovery.TLSBootstrapToken,
		},
		ControlPlane: in.ControlPlane,
		SkipPhases:   in.SkipPhases,
		Patches:      in.Patches,
	}
	if in.Discovery.Timeout != nil {
		out.Timeouts = &Timeouts{Discovery: &metav1.Duration{Duration: in.Discovery.Timeout.Duration}}
	}
	return out
}

// argsFromMap turns a v1beta3 argument map into v1beta4's list, sorted by name so the result is stable.
func argsFromMap(m map[string]string) []Arg {
	if m == nil {
		return nil
	}
	args := make([]Arg, 0, len(m))
	for k, v := range m {
		args = append(args, Arg{Name: k, Value: v})
	}
	sort.Slice(args, func(i, j int) bool { return args[i].Name < args[j].Name })
	return args
}
