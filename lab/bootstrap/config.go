package bootstrap

import (
	"bytes"
	"fmt"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/lab/node"
)

// ignoredPreflight lists the preflight checks lab nodes must ignore, each with its reason. kubeadm's
// preflight otherwise passes on lab nodes, warning that there is no systemd kubelet service (the lab
// supervises the kubelet itself).
var ignoredPreflight = []struct{ Check, Reason string }{
	// The lab machines run cgroup v1; kubeadm from v1.35 on makes that an error (the kubelet runs on it with
	// failCgroupV1: false, see kubeletConfiguration).
	{Check: "SystemVerification", Reason: "cgroup v1"},
}

func ignoredChecks() []string {
	var out []string
	for _, c := range ignoredPreflight {
		out = append(out, c.Check)
	}
	return out
}

const (
	kubeadmAPI   = "kubeadm.k8s.io/v1beta4"
	criSocket    = "unix:///run/containerd/containerd.sock"
	apiPort      = 6443
	patchesDir   = "patches"
	kubeletPatch = "kubeletconfiguration+merge.yaml"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

type arg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type nodeRegistration struct {
	Name                  string   `json:"name"`
	CRISocket             string   `json:"criSocket"`
	KubeletExtraArgs      []arg    `json:"kubeletExtraArgs,omitempty"`
	IgnorePreflightErrors []string `json:"ignorePreflightErrors,omitempty"`
	ImagePullPolicy       string   `json:"imagePullPolicy,omitempty"`
}

type apiEndpoint struct {
	AdvertiseAddress string `json:"advertiseAddress"`
	BindPort         int    `json:"bindPort"`
}

type patches struct {
	Directory string `json:"directory"`
}

type bootstrapToken struct {
	Token string `json:"token"`
}

type initConfiguration struct {
	typeMeta
	BootstrapTokens  []bootstrapToken `json:"bootstrapTokens"`
	NodeRegistration nodeRegistration `json:"nodeRegistration"`
	LocalAPIEndpoint apiEndpoint      `json:"localAPIEndpoint"`
	CertificateKey   string           `json:"certificateKey,omitempty"`
	Patches          patches          `json:"patches"`
}

type networking struct {
	PodSubnet     string `json:"podSubnet"`
	ServiceSubnet string `json:"serviceSubnet"`
}

type clusterConfiguration struct {
	typeMeta
	KubernetesVersion    string     `json:"kubernetesVersion"`
	ControlPlaneEndpoint string     `json:"controlPlaneEndpoint,omitempty"`
	Networking           networking `json:"networking"`
	// CertificateValidityPeriod is a duration string ("10m0s"); empty: the bootstrapper's default.
	CertificateValidityPeriod string `json:"certificateValidityPeriod,omitempty"`
}

type tokenDiscovery struct {
	Token             string   `json:"token"`
	APIServerEndpoint string   `json:"apiServerEndpoint"`
	CACertHashes      []string `json:"caCertHashes"`
}

type discovery struct {
	BootstrapToken tokenDiscovery `json:"bootstrapToken"`
}

type joinControlPlane struct {
	LocalAPIEndpoint apiEndpoint `json:"localAPIEndpoint"`
	CertificateKey   string      `json:"certificateKey"`
}

type joinConfiguration struct {
	typeMeta
	Discovery        discovery         `json:"discovery"`
	NodeRegistration nodeRegistration  `json:"nodeRegistration"`
	ControlPlane     *joinControlPlane `json:"controlPlane,omitempty"`
	Patches          patches           `json:"patches"`
}

// kubeletConfiguration holds what every lab kubelet needs: no systemd, so the cgroupfs driver; the
// machine may have swap; the machine runs cgroup v1, which kubelets from v1.35 on refuse unless
// failCgroupV1 is false. Its cgroupRoot differs per node and so comes from the node's patch.
//
// Every node's files sit on the machine's one disk, beside the Go caches and the components' builds,
// and the free share of that disk is the machine's, not the node's: seen here from 32% down to 0.1%.
// The kubelet's default thresholds are shares of it (DiskPressure, and so a NoSchedule taint and
// evictions, below 10% free for nodefs and 15% for imagefs; image garbage collection above 85% used,
// which deletes the imported images no Pod runs yet, and there is no registry to pull them again).
// So the lab's kubelets take absolute thresholds instead, every signal named (an evictionHard that
// names some sets the others to 0), and no image garbage collection (100 turns it off).
var kubeletConfiguration = map[string]any{
	"apiVersion":   "kubelet.config.k8s.io/v1beta1",
	"kind":         "KubeletConfiguration",
	"cgroupDriver": "cgroupfs",
	"failSwapOn":   false,
	"failCgroupV1": false,
	"evictionHard": map[string]string{
		"memory.available":   "100Mi",
		"nodefs.available":   "1Gi",
		"nodefs.inodesFree":  "5%",
		"imagefs.available":  "1Gi",
		"imagefs.inodesFree": "5%",
	},
	"imageGCHighThresholdPercent": 100,
}

// kubeProxyConfiguration: nf_conntrack_max is a machine-wide sysctl a namespace node may not set,
// so kube-proxy must leave it alone (LAB-FACTS §5).
var kubeProxyConfiguration = map[string]any{
	"apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
	"kind":       "KubeProxyConfiguration",
	"mode":       "iptables",
	"conntrack":  map[string]any{"maxPerCore": 0},
}

// validity is d as a kubeadm configuration's duration, "" for none.
func validity(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func registration(n node.Spec) nodeRegistration {
	return nodeRegistration{
		Name:      n.Name,
		CRISocket: criSocket,
		// The node has one interface, but say which address is the node's rather than have it guessed.
		KubeletExtraArgs:      []arg{{Name: "node-ip", Value: n.IP}},
		IgnorePreflightErrors: ignoredChecks(),
		// Every image was imported into the node's containerd; there is no registry to pull from.
		ImagePullPolicy: "Never",
	}
}

// PatchesDir is where a node's kubeadm patches live (inside and outside the node alike).
func PatchesDir(n node.Spec) string { return filepath.Join(n.Dir, patchesDir) }

// KubeletPatch is the node's own part of the kubelet configuration: its cgroupRoot, so that the
// kubelets of the lab's nodes do not share /kubepods.
func KubeletPatch(n node.Spec) []byte {
	return []byte("cgroupRoot: " + n.CgroupRoot + "\n")
}

// kubebootConfiguration turns on kubeboot's node-local API endpoint.
var kubebootConfiguration = map[string]any{
	"apiVersion":           "kubeboot.dev/v1alpha1",
	"kind":                 "KubebootConfiguration",
	"nodeLocalAPIEndpoint": map[string]any{"enabled": true},
}

// InitConfig is the kubeadm configuration for the first control plane.
func InitConfig(c Cluster, n node.Spec) ([]byte, error) {
	var extra []any
	if c.NodeLocalAPIEndpoint {
		extra = append(extra, kubebootConfiguration)
	}
	return documents(append([]any{
		initConfiguration{
			typeMeta:         typeMeta{kubeadmAPI, "InitConfiguration"},
			BootstrapTokens:  []bootstrapToken{{Token: c.Token}},
			NodeRegistration: registration(n),
			LocalAPIEndpoint: apiEndpoint{AdvertiseAddress: n.IP, BindPort: apiPort},
			CertificateKey:   c.CertificateKey,
			Patches:          patches{Directory: PatchesDir(n)},
		},
		clusterConfiguration{
			typeMeta:                  typeMeta{kubeadmAPI, "ClusterConfiguration"},
			KubernetesVersion:         c.KubernetesVersion,
			ControlPlaneEndpoint:      c.ControlPlaneEndpoint,
			Networking:                networking{PodSubnet: c.PodSubnet, ServiceSubnet: c.ServiceSubnet},
			CertificateValidityPeriod: validity(c.CertificateValidityPeriod),
		},
		kubeletConfiguration,
		kubeProxyConfiguration,
	}, extra...)...)
}

// JoinConfig is the kubeadm configuration for a joining node.
func JoinConfig(c Cluster, n node.Spec, j JoinInfo, controlPlane bool) ([]byte, error) {
	jc := joinConfiguration{
		typeMeta: typeMeta{kubeadmAPI, "JoinConfiguration"},
		Discovery: discovery{BootstrapToken: tokenDiscovery{
			Token: c.Token, APIServerEndpoint: j.APIServerEndpoint, CACertHashes: j.CACertHashes,
		}},
		NodeRegistration: registration(n),
		Patches:          patches{Directory: PatchesDir(n)},
	}
	if controlPlane {
		jc.ControlPlane = &joinControlPlane{
			LocalAPIEndpoint: apiEndpoint{AdvertiseAddress: n.IP, BindPort: apiPort},
			CertificateKey:   c.CertificateKey,
		}
	}
	return documents(jc)
}

func documents(docs ...any) ([]byte, error) {
	var out bytes.Buffer
	for i, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("render kubeadm config: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

// UpgradeConfig is the UpgradeConfiguration for `upgrade apply` and `upgrade node` on a lab node whose patches are in
// patchesDir (PatchesDir): the lab's images are imported, never pulled, and the node's kubelet configuration patch
// (its cgroupRoot) must survive the kubelet-config phase. kubeadm keeps neither in the cluster, so an upgrade, by
// kubeboot or by kubeadm, needs them again from here.
func UpgradeConfig(patchesDir string) []byte {
	return fmt.Appendf(nil, `apiVersion: %[1]s
kind: UpgradeConfiguration
apply:
  imagePullPolicy: Never
  patches: {directory: %[2]s}
node:
  imagePullPolicy: Never
  patches: {directory: %[2]s}
`, kubeadmAPI, patchesDir)
}
