// Package release is kubeboot's one home for what differs between the Kubernetes releases it deploys. For each
// supported minor it records what upstream kubeadm of that minor (its newest patch release) does: the default patch
// version, the etcd, CoreDNS and pause image tags, kubeadm's feature gates, and every difference in the files and
// objects init, join and reset write. Renderers look the facts up by the configuration's kubernetesVersion (For);
// no other package holds a version constant.
//
// What kubeadm changed before the oldest supported minor is plain behaviour, not a table entry: every release here
// writes kubeadm-flags.env without --pod-infra-container-image and --container-runtime-endpoint (1.35) and always
// writes instance-config.yaml, never the cri-socket Node annotation (NodeLocalCRISocket, GA in 1.36); kubelet.conf
// of a control-plane node points at its own API server (ControlPlaneKubeletLocalMode, GA in 1.35);
// apiserver-kubelet-client.crt has no Organization and the ClusterRoleBinding kubeadm:apiserver-kubelet-client
// grants it system:kubelet-api-admin (1.36); the controller-manager has no flexvolume mount (1.36); etcd runs with
// --feature-gates=InitialCorruptCheck=true (etcd 3.6+); join has no control-plane-join/etcd phase and always runs
// etcd-join and kubelet-wait-bootstrap (1.36).
package release

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"
)

// Stage is a kubeadm feature gate's maturity, as kubeadm's --help prints it.
type Stage string

const (
	Alpha      Stage = "ALPHA"
	Beta       Stage = "BETA"
	GA         Stage = ""
	Deprecated Stage = "DEPRECATED"
)

// FeatureGate is one of kubeadm's own feature gates (ClusterConfiguration.featureGates, --feature-gates).
type FeatureGate struct {
	Name    string
	Default bool
	// Locked gates can only be set to their default (kubeadm's LockToDefault).
	Locked bool
	Stage  Stage
}

// Release is what kubeboot does for one minor of Kubernetes, taken from kubeadm of that minor.
type Release struct {
	// Minor is the Kubernetes minor, e.g. 37.
	Minor int
	// Version is the patch release deployed when kubernetesVersion is not set, e.g. "v1.37.2".
	Version string
	// Kubeadm is the upstream kubeadm release whose files and objects kubeboot reproduces for this minor; the byte-compare
	// tests and the lab's interop peers use it.
	Kubeadm string

	// Image tags besides the Kubernetes version itself (kubeadm's constants DefaultEtcdVersion, CoreDNSVersion and
	// PauseVersion).
	EtcdVersion    string
	CoreDNSVersion string
	PauseVersion   string

	// MinKubeletMinor is the oldest kubelet minor that may join a control plane of this minor (kubeadm's
	// MinimumKubeletVersion, three minors back).
	MinKubeletMinor int

	// FeatureGates are kubeadm's gates; a name not listed is an unknown gate.
	FeatureGates []FeatureGate

	// KubeProxyDefaultMode is written into the kube-proxy ConfigMap when KubeProxyConfiguration.mode is empty (kubeadm
	// 1.37 writes "iptables"; earlier releases leave it empty).
	KubeProxyDefaultMode string

	// ControllerServiceAccounts are the kube-system ServiceAccounts kube-controller-manager of this minor creates
	// with kubeadm's flags (--use-service-account-credentials=true --controllers=*,bootstrapsigner,tokencleaner) and
	// default feature gates, sorted. init creates them before the controller-manager starts its controllers; the
	// lab's TestLabKubeadm compares the list with a cluster made by upstream kubeadm. 1.36 added
	// device-taint-eviction-controller (DRADeviceTaints beta); 1.37 the accounts of the ClusterTrustBundle publisher,
	// the PodCertificateRequest cleaner and the storage version migrator (their gates went GA).
	ControllerServiceAccounts []string
}

// Facts about the kubelet on a node, which may be older than the control plane (down to MinKubeletMinor).
const (
	// CgroupV1FatalKubeletMinor is the first kubelet that refuses to start on cgroup v1 unless its
	// KubeletConfiguration sets failCgroupV1: false (kubeadm's SystemVerification errors from then on).
	CgroupV1FatalKubeletMinor = 35
	// Containerd2KubeletMinor is the first kubelet that does not support containerd 1.x.
	Containerd2KubeletMinor = 36
)

// controllers136 are kube-controller-manager v1.36's accounts (see Release.ControllerServiceAccounts).
var controllers136 = []string{
	"attachdetach-controller",
	"bootstrap-signer",
	"certificate-controller",
	"clusterrole-aggregation-controller",
	"cronjob-controller",
	"daemon-set-controller",
	"deployment-controller",
	"device-taint-eviction-controller",
	"disruption-controller",
	"endpoint-controller",
	"endpointslice-controller",
	"endpointslicemirroring-controller",
	"ephemeral-volume-controller",
	"expand-controller",
	"generic-garbage-collector",
	"horizontal-pod-autoscaler",
	"job-controller",
	"legacy-service-account-token-cleaner",
	"namespace-controller",
	"node-controller",
	"persistent-volume-binder",
	"pod-garbage-collector",
	"pv-protection-controller",
	"pvc-protection-controller",
	"replicaset-controller",
	"replication-controller",
	"resource-claim-controller",
	"resourcequota-controller",
	"root-ca-cert-publisher",
	"service-account-controller",
	"service-cidrs-controller",
	"statefulset-controller",
	"token-cleaner",
	"ttl-after-finished-controller",
	"ttl-controller",
	"validatingadmissionpolicy-status-controller",
	"volumeattributesclass-protection-controller",
}

// sortedUnion returns a new sorted list of base and more.
func sortedUnion(base []string, more ...string) []string {
	out := append(slices.Clone(base), more...)
	slices.Sort(out)
	return out
}

// releases is the table, newest first.
var releases = []*Release{
	{
		Minor:           37,
		Version:         "v1.37.2",
		Kubeadm:         "v1.37.2",
		EtcdVersion:     "3.7.0-0",
		CoreDNSVersion:  "v1.14.6",
		PauseVersion:    "3.10.2",
		MinKubeletMinor: 34,
		FeatureGates: []FeatureGate{
			{Name: "RootlessControlPlane", Default: false, Stage: Alpha},
		},
		KubeProxyDefaultMode: "iptables",
		ControllerServiceAccounts: sortedUnion(controllers136,
			"kube-apiserver-serving-clustertrustbundle-publisher", "podcertificaterequestcleaner", "storage-version-migrator-controller"),
	},
	{
		Minor:           36,
		Version:         "v1.36.3",
		Kubeadm:         "v1.36.3",
		EtcdVersion:     "3.6.8-0",
		CoreDNSVersion:  "v1.14.2",
		PauseVersion:    "3.10.2",
		MinKubeletMinor: 33,
		FeatureGates: []FeatureGate{
			{Name: "NodeLocalCRISocket", Default: true, Locked: true, Stage: GA},
			{Name: "PublicKeysECDSA", Default: false, Stage: Deprecated},
			{Name: "RootlessControlPlane", Default: false, Stage: Alpha},
		},
		ControllerServiceAccounts: controllers136,
	},
}

// Default is the release deployed when kubernetesVersion is not set: the newest.
func Default() *Release { return releases[0] }

// DefaultVersion is Default().Version, the version used in examples and defaults.
func DefaultVersion() string { return Default().Version }

// All returns the supported releases, newest first.
func All() []*Release { return slices.Clone(releases) }

// Oldest is the oldest control-plane minor kubeboot deploys.
func Oldest() *Release { return releases[len(releases)-1] }

// UnsupportedError says that kubeboot has no facts for a control-plane version.
type UnsupportedError struct{ Version string }

func (e *UnsupportedError) Error() string {
	oldest, newest := Oldest(), Default()
	v, err := version.ParseGeneric(e.Version)
	if err == nil && v.Major() == 1 && v.Minor() < uint(oldest.Minor) {
		// kubeadm's own message for a control plane below its floor.
		return fmt.Sprintf("this version of kubeboot only supports deploying clusters with the control plane version >= v1.%d.0. Current version: %s",
			oldest.Minor, e.Version)
	}
	return fmt.Sprintf("this version of kubeboot supports control planes v1.%d.x to v1.%d.x (default %s), not %s",
		oldest.Minor, newest.Minor, newest.Version, e.Version)
}

// For returns the release of a Kubernetes version such as "v1.36.3" or "1.36.3"; only the minor matters.
func For(kubernetesVersion string) (*Release, error) {
	v, err := version.ParseGeneric(strings.TrimPrefix(kubernetesVersion, "v"))
	if err != nil {
		return nil, fmt.Errorf("kubernetesVersion %q is not a version such as %s: %w", kubernetesVersion, DefaultVersion(), err)
	}
	if v.Major() == 1 {
		for _, r := range releases {
			if uint(r.Minor) == v.Minor() {
				return r, nil
			}
		}
	}
	return nil, &UnsupportedError{Version: kubernetesVersion}
}

// FeatureGate returns the named gate of this release, or false when kubeadm of this minor has no such gate.
func (r *Release) FeatureGate(name string) (FeatureGate, bool) {
	for _, g := range r.FeatureGates {
		if g.Name == name {
			return g, true
		}
	}
	return FeatureGate{}, false
}

// FeatureGateNames lists the gates' names, sorted.
func (r *Release) FeatureGateNames() []string {
	names := make([]string, 0, len(r.FeatureGates))
	for _, g := range r.FeatureGates {
		names = append(names, g.Name)
	}
	slices.Sort(names)
	return names
}

// Enabled says whether a gate is on, given the configuration's featureGates; an unknown gate is off.
func (r *Release) Enabled(gates map[string]bool, name string) bool {
	g, ok := r.FeatureGate(name)
	if !ok {
		return false
	}
	if on, set := gates[name]; set && !g.Locked {
		return on
	}
	return g.Default
}

// EtcdServerVersion is the etcd release inside the etcd image, e.g. "v3.7.0" for tag "3.7.0-0".
func (r *Release) EtcdServerVersion() string {
	tag, _, _ := strings.Cut(r.EtcdVersion, "-")
	return "v" + tag
}
