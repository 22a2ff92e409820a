package config

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// KubebootGroupVer is the group and version of kubeboot's own configuration document: settings kubeadm has no
// field for. It sits in the same file as the kubeadm documents; kubeadm ignores a document of a group it does not
// know (with a warning), so a file that has one still works with kubeadm, without the setting.
const KubebootGroupVer = "kubeboot.dev/v1alpha1"

// KindKubeboot is the kind of kubeboot's own configuration document.
const KindKubeboot = "KubebootConfiguration"

// DefaultNodeLocalAPIEndpointPort is where the node-local API endpoint listens on 127.0.0.1 unless
// nodeLocalAPIEndpoint.port says otherwise.
const DefaultNodeLocalAPIEndpointPort = 7445

// KubebootConfiguration holds kubeboot's settings that kubeadm has no field for. Every setting is opt-in: a file
// without this document, or a document without a setting, behaves as kubeadm does.
type KubebootConfiguration struct {
	metav1.TypeMeta `json:",inline"`
	// NodeLocalAPIEndpoint runs a load balancer in front of the API servers on every node, on loopback, for the
	// kubelet and kube-proxy of that node, so that they need no external load balancer.
	NodeLocalAPIEndpoint *NodeLocalAPIEndpoint `json:"nodeLocalAPIEndpoint,omitempty"`
}

// NodeLocalAPIEndpoint configures the node-local API endpoint (package localendpoint).
type NodeLocalAPIEndpoint struct {
	Enabled bool `json:"enabled,omitempty"`
	// Port is the port on 127.0.0.1; 0: DefaultNodeLocalAPIEndpointPort once defaulted.
	Port int32 `json:"port,omitempty"`
}

// NodeLocalAPIEndpointPort returns the port of the node-local API endpoint and true when it is enabled; k may
// be nil (no KubebootConfiguration: disabled).
func (k *KubebootConfiguration) NodeLocalAPIEndpointPort() (int32, bool) {
	if k == nil || k.NodeLocalAPIEndpoint == nil || !k.NodeLocalAPIEndpoint.Enabled {
		return 0, false
	}
	return k.NodeLocalAPIEndpoint.Port, true
}

// clone returns a deep copy of k, so that Init and Join do not share one document; nil stays nil.
func (k *KubebootConfiguration) clone() *KubebootConfiguration {
	if k == nil {
		return nil
	}
	c := *k
	if k.NodeLocalAPIEndpoint != nil {
		e := *k.NodeLocalAPIEndpoint
		c.NodeLocalAPIEndpoint = &e
	}
	return &c
}

func kubebootTypeMeta() metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: KubebootGroupVer, Kind: KindKubeboot}
}

// SetKubebootDefaults fills the unset fields of k; nil is left alone (nothing is enabled).
func SetKubebootDefaults(k *KubebootConfiguration) {
	if k == nil {
		return
	}
	k.TypeMeta = kubebootTypeMeta()
	if e := k.NodeLocalAPIEndpoint; e != nil && e.Enabled && e.Port == 0 {
		e.Port = DefaultNodeLocalAPIEndpointPort
	}
}

// ValidateKubeboot checks a defaulted KubebootConfiguration; nil is valid. apiServerPort is the bind port of the
// API server on the same node (localAPIEndpoint.bindPort of init or of a control-plane join), 0 on a node without
// one: the node-local endpoint cannot listen there too.
func ValidateKubeboot(k *KubebootConfiguration, apiServerPort int32) error {
	var errs []error
	for _, e := range validateKubeboot(k, apiServerPort) {
		errs = append(errs, fmt.Errorf("%s: %w", KindKubeboot, e))
	}
	return errors.Join(errs...)
}

func validateKubeboot(k *KubebootConfiguration, apiServerPort int32) field.ErrorList {
	if k == nil || k.NodeLocalAPIEndpoint == nil {
		return nil
	}
	var l field.ErrorList
	e, p := k.NodeLocalAPIEndpoint, field.NewPath("nodeLocalAPIEndpoint", "port")
	switch {
	case !e.Enabled && e.Port == 0:
	case e.Port < 1 || e.Port > 65535:
		l = append(l, field.Invalid(p, e.Port, "must be between 1 and 65535"))
	case e.Enabled && e.Port == apiServerPort:
		l = append(l, field.Invalid(p, e.Port, "the API server of this node listens on this port (localAPIEndpoint.bindPort); choose another, e.g. the default 7445"))
	}
	return l
}
